# Shared settings and helpers for scripts/e2e/*.sh (sourced, not run).
# shellcheck disable=SC2034  # variables are used by the scripts that source this file
# shellcheck shell=bash

E2E_STATE=${IMAGESPEC_E2E_STATE:-/tmp/imagespec-e2e}
E2E_CACHE=${IMAGESPEC_E2E_CACHE:-/var/cache/imagespec-e2e}
E2E_ENV_FILE=$E2E_STATE/e2e.env

# Debian's docker.io CLI (20.10). /usr/local/bin/docker (28, no buildx) comes first on PATH.
DOCKER=/usr/bin/docker
DOCKERD=/usr/sbin/dockerd
DOCKER_SOCK=/var/run/docker.sock
# dockerd also listens here (loopback only, plain HTTP) for DOCKER_HOST=tcp:// tests.
DOCKER_TCP=127.0.0.1:2375
export DOCKER_HOST=unix://$DOCKER_SOCK
# Debian's docker-registry package: distribution 2.8, `docker-registry serve CONFIG.yml`.
REGISTRY_BIN=/usr/bin/docker-registry

PLAIN_PORT=5000
AUTH_PORT=5001
TLS_PORT=5443
# Token-auth registry (distribution `auth: token`) and its token server (token_server.py).
TOKEN_PORT=5002
TOKEN_SERVER_PORT=5003
TOKEN_SERVICE=imagespec-e2e-token
TOKEN_ISSUER=imagespec-e2e-token-issuer
# Seconds a token lives: short, so that builds and pushes outlive their first token.
TOKEN_TTL=${IMAGESPEC_E2E_TOKEN_TTL:-5}
TOKEN_RW_USER=imagespec-rw
TOKEN_RW_PASSWORD=rw-s3cret-pass
TOKEN_RO_USER=imagespec-ro
TOKEN_RO_PASSWORD=ro-s3cret-pass
PYTHON=/usr/bin/python3
TLS_NAME=registry.test
AUTH_USER=imagespec
AUTH_PASSWORD=s3cret-pass
HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
HOST_CA_DIR=/usr/local/share/ca-certificates

# Base images (see base-images.sh).
BASE_PYTHON_IMAGE=localhost:$PLAIN_PORT/debian-python:bookworm
# The same for linux/amd64 and linux/arm64: an index (the multi-platform tests). A name of its
# own, so that the single-platform base stays one manifest.
MULTI_PYTHON_IMAGE=localhost:$PLAIN_PORT/debian-python-multi:bookworm
UV_IMAGE=localhost:$PLAIN_PORT/uv:0.5
BUSYBOX_IMAGE=localhost:$PLAIN_PORT/busybox:stable
# The base of envd builds: in the TLS registry, because envd resolves base images over HTTPS
# itself while dockerd treats localhost registries as plain HTTP.
ENVD_BASE_IMAGE=$TLS_NAME:$TLS_PORT/envd-python:bookworm

# The envd CLI (scripts/e2e/envd.sh): PyPI's envd wheel, in a venv.
ENVD_VERSION=${IMAGESPEC_E2E_ENVD_VERSION:-1.3.6}
ENVD_VENV=$E2E_CACHE/envd-$ENVD_VERSION
ENVD_BIN=$ENVD_VENV/bin/envd

# Registries: name port. Config, data, log and PID file paths derive from the name.
REGISTRIES=("plain $PLAIN_PORT" "auth $AUTH_PORT" "tls $TLS_PORT" "token $TOKEN_PORT")

E2E_SCRIPT=$(basename "$0")
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf '[%s %s] %s\n' "$E2E_SCRIPT" "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$E2E_SCRIPT" "$*" >&2; exit 1; }

need_root() { [[ $(id -u) == 0 ]] || die "must run as root"; }

need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || [[ -x $c ]] \
            || die "'$c' not found: run scripts/e2e/install.sh first"
    done
}

# pid_of PIDFILE EXE: prints the PID recorded in PIDFILE if that process is alive and runs
# EXE (guards against a recycled PID); returns 1 otherwise.
pid_of() {
    local pidfile=$1 exe=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -d /proc/$pid ]] || return 1
    [[ $(readlink -f "/proc/$pid/exe" 2>/dev/null) == "$(readlink -f "$exe")" ]] || return 1
    echo "$pid"
}

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

docker_ping() {
    [[ $(curl -s -m 2 --unix-socket "$DOCKER_SOCK" http://localhost/_ping 2>/dev/null) == OK ]]
}

# wait_for SECONDS DESCRIPTION CMD...: polls CMD every 0.2 s until it succeeds or time runs out.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@"; do
        ((SECONDS < deadline)) || { log "timed out after ${secs}s waiting for $what"; return 1; }
        sleep 0.2
    done
}
