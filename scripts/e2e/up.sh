#!/usr/bin/env bash
# Starts the end-to-end test services, each only if it is not running already:
#   dockerd (Debian docker.io 20.10, embedded BuildKit) on /var/run/docker.sock
#   registry, plain HTTP         127.0.0.1:5000
#   registry, htpasswd auth      127.0.0.1:5001  (imagespec / s3cret-pass)
#   registry, TLS                registry.test:5443 (self-signed, trusted system-wide)
#   registry, token auth         127.0.0.1:5002  (token server token_server.py on 127.0.0.1:5003)
#   buildkitd (remote builder)   127.0.0.1:5070  (mTLS; buildkitd.sh, built from its Go module)
# and installs the SBOM witnesses (oras, spdx-tools: sbom-tools.sh, cached; not syft),
# then writes $IMAGESPEC_E2E_STATE/e2e.env (default /tmp/imagespec-e2e/e2e.env) and prints it.
# Stop with scripts/e2e/down.sh. Usage: scripts/e2e/up.sh [--quiet]
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

quiet=0
[[ ${1:-} == --quiet ]] && quiet=1

WAIT_SECS=${IMAGESPEC_E2E_WAIT:-60}

need_root
need_cmd "$DOCKERD" "$DOCKER" "$REGISTRY_BIN" iptables containerd runc curl openssl htpasswd \
    update-ca-certificates setsid

mkdir -p "$E2E_STATE" "$E2E_CACHE"
started=()

# wait_up NAME PIDFILE LOG CHECK...: waits (bounded) until CHECK succeeds; fails at once,
# showing the log's tail, if the process in PIDFILE exits meanwhile.
wait_up() {
    local name=$1 pidfile=$2 logf=$3
    shift 3
    local deadline=$((SECONDS + WAIT_SECS))
    until "$@"; do
        if [[ -s $pidfile ]] && ! kill -0 "$(<"$pidfile")" 2>/dev/null; then
            tail -n 20 "$logf" >&2 || true
            die "$name exited during start-up; see $logf"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$logf" >&2 || true
            die "$name did not answer within ${WAIT_SECS}s; see $logf"
        fi
        sleep 0.2
    done
}

# ---------------------------------------------------------------- dockerd
start_dockerd() {
    local pidfile=$E2E_STATE/dockerd.pid logf=$E2E_STATE/dockerd.log pid
    if pid=$(pid_of "$pidfile" "$DOCKERD"); then
        wait_for "$WAIT_SECS" "dockerd (pid $pid) to answer on $DOCKER_SOCK" docker_ping \
            || die "dockerd (pid $pid) runs but does not answer; see $logf"
        log "dockerd already running (pid $pid)"
        return
    fi
    rm -f "$pidfile"
    if docker_ping; then
        log "a dockerd not started by up.sh answers on $DOCKER_SOCK: using it (down.sh leaves it alone)"
        return
    fi
    # Defaults on purpose: bridge docker0 + iptables NAT, so containers and BuildKit RUN
    # steps reach the package registries.
    log "starting dockerd (log: $logf)"
    echo "=== $(date -Is) up.sh starts dockerd" >>"$logf"
    # shellcheck disable=SC2016  # $$ and $@ expand in the child shell
    # Also on loopback TCP (no TLS: 127.0.0.1 only), for the DOCKER_HOST=tcp:// tests.
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidfile" "$DOCKERD" \
        -H "unix://$DOCKER_SOCK" -H "tcp://$DOCKER_TCP" >>"$logf" 2>&1 </dev/null &
    wait_up dockerd "$pidfile" "$logf" docker_ping
    # dockerd runs its own containerd child; record it so down.sh can reap it by PID if needed.
    if [[ -s /var/run/docker/containerd/containerd.pid ]]; then
        cp /var/run/docker/containerd/containerd.pid "$E2E_STATE/containerd.pid"
    fi
    started+=("dockerd(pid $(<"$pidfile"))")
}

# ---------------------------------------------------------------- TLS material
setup_tls() {
    local dir=$E2E_CACHE/tls
    TLS_CA=$dir/imagespec-e2e-ca.crt
    TLS_CRT=$dir/$TLS_NAME.crt
    TLS_KEY=$dir/$TLS_NAME.key
    mkdir -p "$dir"
    # A CA and a server certificate it signs: strict TLS stacks (rustls/webpki) refuse a
    # self-signed CA certificate used as the server's own ("CaUsedAsEndEntity").
    if [[ ! -s $TLS_CA || ! -s $TLS_CRT || ! -s $TLS_KEY ]] \
        || ! openssl x509 -checkend 86400 -noout -in "$TLS_CRT" >/dev/null 2>&1 \
        || ! openssl verify -CAfile "$TLS_CA" "$TLS_CRT" >/dev/null 2>&1; then
        log "creating a test CA and a certificate for $TLS_NAME"
        local ext=$dir/server.ext
        printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\n' "$TLS_NAME" >"$ext"
        openssl req -x509 -newkey rsa:2048 -sha256 -days 3650 -nodes \
            -keyout "$dir/ca.key" -out "$TLS_CA.tmp" -subj "/CN=imagespec e2e test CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1 \
            && openssl req -newkey rsa:2048 -sha256 -nodes -keyout "$TLS_KEY.tmp" -out "$dir/server.csr" \
                -subj "/CN=$TLS_NAME" >/dev/null 2>&1 \
            && openssl x509 -req -in "$dir/server.csr" -CA "$TLS_CA.tmp" -CAkey "$dir/ca.key" -CAcreateserial \
                -days 3650 -sha256 -extfile "$ext" -out "$TLS_CRT.tmp" >/dev/null 2>&1 \
            || die "openssl could not create the certificates"
        chmod 600 "$TLS_KEY.tmp" "$dir/ca.key"
        mv "$TLS_KEY.tmp" "$TLS_KEY"
        mv "$TLS_CRT.tmp" "$TLS_CRT"
        mv "$TLS_CA.tmp" "$TLS_CA"
    fi
    # Trust the CA system-wide (skopeo, curl, Rust with native roots) and in dockerd.
    local sys=$HOST_CA_DIR/imagespec-e2e-$TLS_NAME.crt
    if ! cmp -s "$TLS_CA" "$sys"; then
        log "adding the test CA to the system CA store"
        mkdir -p "$HOST_CA_DIR"
        cp "$TLS_CA" "$sys"
        update-ca-certificates --fresh >/dev/null 2>&1 || die "update-ca-certificates failed"
    fi
    local dcert=/etc/docker/certs.d/$TLS_NAME:$TLS_PORT/ca.crt
    if ! cmp -s "$TLS_CA" "$dcert"; then
        mkdir -p "$(dirname "$dcert")"
        cp "$TLS_CA" "$dcert"
    fi
    # The name must resolve on the host (dockerd, skopeo and tests connect to it).
    if ! grep -Eq "^[[:space:]]*127\.0\.0\.1[[:space:]](.*[[:space:]])?$TLS_NAME([[:space:]]|\$)" /etc/hosts; then
        log "adding '127.0.0.1 $TLS_NAME' to /etc/hosts"
        echo "127.0.0.1 $TLS_NAME" >>/etc/hosts
    fi
}

# ---------------------------------------------------------------- auth material
setup_auth() {
    local dir=$E2E_STATE/auth
    HTPASSWD_FILE=$dir/htpasswd
    AUTH_CONFIG_DIR=$dir/docker
    mkdir -p "$AUTH_CONFIG_DIR"
    if ! htpasswd -vb "$HTPASSWD_FILE" "$AUTH_USER" "$AUTH_PASSWORD" >/dev/null 2>&1; then
        # bcrypt: the only hash distribution's htpasswd backend accepts.
        htpasswd -Bbc "$HTPASSWD_FILE" "$AUTH_USER" "$AUTH_PASSWORD" >/dev/null 2>&1 \
            || die "htpasswd failed"
    fi
    local b64
    b64=$(printf '%s:%s' "$AUTH_USER" "$AUTH_PASSWORD" | base64 -w0)
    cat >"$AUTH_CONFIG_DIR/config.json.tmp" <<EOF
{
  "auths": {
    "127.0.0.1:$AUTH_PORT": { "auth": "$b64" },
    "localhost:$AUTH_PORT": { "auth": "$b64" }
  }
}
EOF
    mv "$AUTH_CONFIG_DIR/config.json.tmp" "$AUTH_CONFIG_DIR/config.json"
}

# ---------------------------------------------------------------- token auth material
# The token server's signing key and self-signed certificate (the registry's rootcertbundle),
# its users and the refresh tokens ("identity tokens") it knows: made once, kept.
setup_token() {
    local dir=$E2E_STATE/token
    TOKEN_DIR=$dir
    TOKEN_KEY=$dir/signing.key
    TOKEN_CERT=$dir/signing.crt
    TOKEN_LOG=$dir/requests.log
    mkdir -p "$dir"
    if [[ ! -s $TOKEN_KEY || ! -s $TOKEN_CERT ]] \
        || ! openssl x509 -checkend 86400 -noout -in "$TOKEN_CERT" >/dev/null 2>&1; then
        log "creating the token server's signing certificate"
        openssl req -x509 -newkey rsa:2048 -sha256 -days 3650 -nodes -keyout "$TOKEN_KEY.tmp" \
            -out "$TOKEN_CERT.tmp" -subj "/CN=$TOKEN_ISSUER" >/dev/null 2>&1 \
            || die "openssl could not create the token signing certificate"
        chmod 600 "$TOKEN_KEY.tmp"
        mv "$TOKEN_KEY.tmp" "$TOKEN_KEY"
        mv "$TOKEN_CERT.tmp" "$TOKEN_CERT"
    fi
    printf '{"%s": {"password": "%s", "actions": ["pull", "push"]},\n "%s": {"password": "%s", "actions": ["pull"]}}\n' \
        "$TOKEN_RW_USER" "$TOKEN_RW_PASSWORD" "$TOKEN_RO_USER" "$TOKEN_RO_PASSWORD" \
        >"$dir/users.json"
    if [[ ! -s $dir/identity-rw || ! -s $dir/identity-ro ]]; then
        openssl rand -hex 24 >"$dir/identity-rw"
        openssl rand -hex 24 >"$dir/identity-ro"
    fi
    TOKEN_IDENTITY_RW=$(<"$dir/identity-rw")
    TOKEN_IDENTITY_RO=$(<"$dir/identity-ro")
    printf '{"%s": "%s", "%s": "%s"}\n' "$TOKEN_IDENTITY_RW" "$TOKEN_RW_USER" \
        "$TOKEN_IDENTITY_RO" "$TOKEN_RO_USER" >"$dir/refresh-tokens.json"
}

token_server_ready() {
    [[ $(curl -s --noproxy '*' -m 2 -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:$TOKEN_SERVER_PORT/token?service=$TOKEN_SERVICE") == 200 ]]
}

start_token_server() {
    local pidfile=$E2E_STATE/token-server.pid logf=$E2E_STATE/token-server.log pid
    if pid=$(pid_of "$pidfile" "$PYTHON"); then
        log "token server already running (pid $pid, 127.0.0.1:$TOKEN_SERVER_PORT)"
        return
    fi
    rm -f "$pidfile"
    port_open "$TOKEN_SERVER_PORT" \
        && die "127.0.0.1:$TOKEN_SERVER_PORT is taken by a process up.sh did not start (token server)"
    log "starting the token server on 127.0.0.1:$TOKEN_SERVER_PORT (log: $logf)"
    echo "=== $(date -Is) up.sh starts the token server" >>"$logf"
    # shellcheck disable=SC2016  # $$ and $@ expand in the child shell
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidfile" "$PYTHON" \
        "$E2E_DIR/token_server.py" --listen "127.0.0.1:$TOKEN_SERVER_PORT" \
        --key "$TOKEN_KEY" --cert "$TOKEN_CERT" --issuer "$TOKEN_ISSUER" --ttl "$TOKEN_TTL" \
        --users "$TOKEN_DIR/users.json" --refresh-tokens "$TOKEN_DIR/refresh-tokens.json" \
        --log "$TOKEN_LOG" >>"$logf" 2>&1 </dev/null &
    wait_up "token server" "$pidfile" "$logf" token_server_ready
    started+=("token-server")
}

# ---------------------------------------------------------------- registries
write_registry_config() {
    local name=$1 port=$2 cfg=$3 data=$4
    {
        cat <<EOF
# Written by scripts/e2e/up.sh; distribution 2.8 (Debian docker-registry) format.
version: 0.1
log:
  level: info
  fields:
    service: registry-$name
storage:
  filesystem:
    rootdirectory: $data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
  secret: imagespec-e2e-$name
  headers:
    X-Content-Type-Options: [nosniff]
EOF
        if [[ $name == tls ]]; then
            cat <<EOF
  tls:
    certificate: $TLS_CRT
    key: $TLS_KEY
EOF
        fi
        if [[ $name == auth ]]; then
            cat <<EOF
auth:
  htpasswd:
    realm: imagespec-e2e
    path: $HTPASSWD_FILE
EOF
        fi
        if [[ $name == token ]]; then
            cat <<EOF
auth:
  token:
    realm: http://127.0.0.1:$TOKEN_SERVER_PORT/token
    service: $TOKEN_SERVICE
    issuer: $TOKEN_ISSUER
    rootcertbundle: $TOKEN_CERT
EOF
        fi
    } >"$cfg"
}

registry_ready() {
    local name=$1 port=$2 code
    case $name in
        plain) code=$(curl -s --noproxy '*' -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/") ;;
        auth) code=$(curl -s --noproxy '*' -m 2 -o /dev/null -w '%{http_code}' -u "$AUTH_USER:$AUTH_PASSWORD" "http://127.0.0.1:$port/v2/") ;;
        tls) code=$(curl -s --noproxy '*' -m 2 -o /dev/null -w '%{http_code}' --cacert "$TLS_CA" "https://$TLS_NAME:$port/v2/") ;;
        # Without a token: the challenge that names the token server.
        token)
            code=$(curl -s --noproxy '*' -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/")
            [[ $code == 401 ]] && code=200
            ;;
    esac
    [[ $code == 200 ]]
}

# The repositories base-images.sh fills (kept by trim_registry): the last path component of
# each base image's name, without its tag.
BASE_REPOSITORIES=()
for ref in "$BASE_PYTHON_IMAGE" "$MULTI_PYTHON_IMAGE" "$UV_IMAGE" "$BUSYBOX_IMAGE" "$ENVD_BASE_IMAGE"; do
    repo=${ref#*/}
    BASE_REPOSITORIES+=("${repo%:*}")
done

# trim_registry NAME CFG DATA: the tests leave a repository behind per run (a new name each
# time), so a registry kept between CI runs grows without end. Past
# $IMAGESPEC_E2E_REGISTRY_MAX_MB (default 4096) of data, every repository but the base
# images' is removed and the registry's own garbage collection deletes the blobs nothing
# names any more; the base images stay, so base-images.sh has nothing to redo. Runs only
# while the registry is stopped.
trim_registry() {
    local name=$1 cfg=$2 data=$3 max=${IMAGESPEC_E2E_REGISTRY_MAX_MB:-4096} size repos dir keep b t0=$SECONDS
    repos=$data/docker/registry/v2/repositories
    [[ -d $repos ]] || return 0
    size=$(du -sm "$data" | cut -f1)
    ((size > max)) || return 0
    log "registry-$name holds ${size} MB (over ${max} MB): removing the tests' repositories"
    for dir in "$repos"/*; do
        [[ -d $dir ]] || continue
        keep=0
        for b in "${BASE_REPOSITORIES[@]}"; do [[ ${dir##*/} == "$b" ]] && keep=1; done
        ((keep)) || rm -rf "$dir"
    done
    "$REGISTRY_BIN" garbage-collect "$cfg" >>"$E2E_STATE/registry-$name.log" 2>&1 \
        || die "registry-$name: garbage collection failed (log: $E2E_STATE/registry-$name.log)"
    log "registry-$name: $(du -sm "$data" | cut -f1) MB left after $((SECONDS - t0))s"
}

start_registry() {
    local name=$1 port=$2
    local cfg=$E2E_STATE/registry-$name.yml data=$E2E_STATE/registry/$name
    local pidfile=$E2E_STATE/registry-$name.pid logf=$E2E_STATE/registry-$name.log pid
    mkdir -p "$data"
    if pid=$(pid_of "$pidfile" "$REGISTRY_BIN"); then
        log "registry-$name already running (pid $pid, 127.0.0.1:$port)"
        return
    fi
    rm -f "$pidfile"
    port_open "$port" && die "127.0.0.1:$port is taken by a process up.sh did not start (registry-$name)"
    write_registry_config "$name" "$port" "$cfg" "$data"
    trim_registry "$name" "$cfg" "$data"
    log "starting registry-$name on 127.0.0.1:$port (log: $logf)"
    echo "=== $(date -Is) up.sh starts registry-$name" >>"$logf"
    # shellcheck disable=SC2016  # $$ and $@ expand in the child shell
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidfile" "$REGISTRY_BIN" serve "$cfg" \
        >>"$logf" 2>&1 </dev/null &
    started+=("registry-$name")
}

# ---------------------------------------------------------------- main
start_dockerd
setup_tls
setup_auth
setup_token
start_token_server
for r in "${REGISTRIES[@]}"; do
    # shellcheck disable=SC2086
    start_registry $r
done
for r in "${REGISTRIES[@]}"; do
    read -r name port <<<"$r"
    wait_up "registry-$name" "$E2E_STATE/registry-$name.pid" "$E2E_STATE/registry-$name.log" \
        registry_ready "$name" "$port"
done

cat >"$E2E_ENV_FILE.tmp" <<EOF
# Written by scripts/e2e/up.sh: KEY=VALUE lines (source with 'set -a; . FILE; set +a').
# Use Debian's docker CLI (/usr/bin/docker, 20.10): /usr/local/bin/docker comes first on PATH.
DOCKER_HOST=$DOCKER_HOST
# The same dockerd over loopback TCP (plain HTTP).
IMAGESPEC_E2E_DOCKER_TCP=tcp://$DOCKER_TCP
IMAGESPEC_E2E_DOCKER=$DOCKER
# Plain-HTTP registry; localhost:$PLAIN_PORT names the same registry.
IMAGESPEC_E2E_REGISTRY=127.0.0.1:$PLAIN_PORT
# Basic-auth registry (htpasswd); IMAGESPEC_E2E_AUTH_CONFIG is a DOCKER_CONFIG dir whose
# config.json holds the credentials for 127.0.0.1:$AUTH_PORT and localhost:$AUTH_PORT.
IMAGESPEC_E2E_AUTH_REGISTRY=127.0.0.1:$AUTH_PORT
IMAGESPEC_E2E_AUTH_USER=$AUTH_USER
IMAGESPEC_E2E_AUTH_PASSWORD=$AUTH_PASSWORD
IMAGESPEC_E2E_AUTH_CONFIG=$AUTH_CONFIG_DIR
# TLS registry; its self-signed certificate is in the system CA store and in
# /etc/docker/certs.d/$TLS_NAME:$TLS_PORT/ca.crt.
IMAGESPEC_E2E_TLS_REGISTRY=$TLS_NAME:$TLS_PORT
IMAGESPEC_E2E_TLS_CA=$TLS_CA
# Token-auth registry (distribution auth: token; tokens live TOKEN_TTL s) and its token
# server (realm http://127.0.0.1:$TOKEN_SERVER_PORT/token: GET with basic auth, POST
# grant_type=password|refresh_token). RW may pull and push, RO only pull, anyone pulls public/*.
# IDENTITY_* are refresh tokens the server knows (what an identitytoken in auths holds);
# TOKEN_LOG has one JSON line per token request (user, grant, scopes; never a secret).
IMAGESPEC_E2E_TOKEN_REGISTRY=127.0.0.1:$TOKEN_PORT
IMAGESPEC_E2E_TOKEN_REALM=http://127.0.0.1:$TOKEN_SERVER_PORT/token
IMAGESPEC_E2E_TOKEN_SERVICE=$TOKEN_SERVICE
IMAGESPEC_E2E_TOKEN_TTL=$TOKEN_TTL
IMAGESPEC_E2E_TOKEN_RW_USER=$TOKEN_RW_USER
IMAGESPEC_E2E_TOKEN_RW_PASSWORD=$TOKEN_RW_PASSWORD
IMAGESPEC_E2E_TOKEN_RO_USER=$TOKEN_RO_USER
IMAGESPEC_E2E_TOKEN_RO_PASSWORD=$TOKEN_RO_PASSWORD
IMAGESPEC_E2E_TOKEN_IDENTITY_RW=$TOKEN_IDENTITY_RW
IMAGESPEC_E2E_TOKEN_IDENTITY_RO=$TOKEN_IDENTITY_RO
IMAGESPEC_E2E_TOKEN_LOG=$TOKEN_LOG
# Host CA bundle (includes the egress proxy CA; baked into the base images).
IMAGESPEC_E2E_CA_BUNDLE=$HOST_CA_BUNDLE
# Base images made by scripts/e2e/base-images.sh.
IMAGESPEC_E2E_BASE_PYTHON=$BASE_PYTHON_IMAGE
# The same as an index of linux/amd64 and linux/arm64 (arm64 runs under qemu: binfmt.sh).
IMAGESPEC_E2E_BASE_PYTHON_MULTI=$MULTI_PYTHON_IMAGE
IMAGESPEC_E2E_UV_IMAGE=$UV_IMAGE
IMAGESPEC_E2E_BUSYBOX=$BUSYBOX_IMAGE
# The envd builder: the CLI (scripts/e2e/envd.sh, run by base-images.sh) and its base image.
IMAGESPEC_ENVD=$ENVD_BIN
IMAGESPEC_E2E_ENVD_BASE=$ENVD_BASE_IMAGE
IMAGESPEC_E2E_STATE=$E2E_STATE
IMAGESPEC_E2E_CACHE=$E2E_CACHE
EOF
mv "$E2E_ENV_FILE.tmp" "$E2E_ENV_FILE"

# The remote BuildKit builder (tests/e2e_remote.rs): its own script, also runnable alone; it
# adds its lines to the env file. Without it only those tests fail (under CI), not the rest.
"$E2E_DIR/buildkitd.sh" up \
    || log "warning: no remote buildkitd (scripts/e2e/buildkitd.sh up failed): tests/e2e_remote.rs cannot run"

# The SBOM witnesses (tests/e2e_sbom.rs): oras, PyPI's spdx-tools and CycloneDX validator, a
# registry with the referrers API (a few seconds of Go build), pinned and cached under $E2E_CACHE, so only a first run downloads them. cosign and syft are
# Go builds of many minutes on a new machine: started here in the background (their log in
# $E2E_CACHE/go-witnesses.log); a test that needs one runs sbom-tools.sh, which waits for it.
"$E2E_DIR/sbom-tools.sh" oras spdx-tools cyclonedx referrers-registry >/dev/null \
    || log "warning: scripts/e2e/sbom-tools.sh failed: tests/e2e_sbom.rs fails under CI without oras and pyspdxtools"
if [[ ! -x $E2E_CACHE/cosign-2.6.5/bin/cosign || ! -x $E2E_CACHE/syft-1.18.1/bin/syft ]]; then
    mkdir -p "$E2E_CACHE"
    nohup "$E2E_DIR/sbom-tools.sh" cosign syft >"$E2E_CACHE/go-witnesses.log" 2>&1 &
fi

if ((${#started[@]})); then
    log "started: ${started[*]}"
else
    log "everything was already running"
fi
log "env file: $E2E_ENV_FILE"
((quiet)) || cat "$E2E_ENV_FILE"
