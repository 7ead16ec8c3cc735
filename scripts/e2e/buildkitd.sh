#!/usr/bin/env bash
# A remote BuildKit builder for the e2e tests (tests/e2e_remote.rs): buildkitd and buildctl
# built from their Go module (pinned, cached under $IMAGESPEC_E2E_CACHE so a machine builds
# them once), certificates for mTLS, buildkitd as root on 127.0.0.1 with its own state dir.
#
#   scripts/e2e/buildkitd.sh install        builds buildkitd + buildctl (once per version)
#   scripts/e2e/buildkitd.sh up [1|2]       install, certificates, start (if not running), env
#   scripts/e2e/buildkitd.sh down [1|2]     stops it by its PID (keeps its state)
#   scripts/e2e/buildkitd.sh wipe [1|2]     stops it and deletes its state (a fresh runner)
#
# Two builders (images spread over builders, tests/e2e_jobs.rs): the first on
# 127.0.0.1:5070 (state $IMAGESPEC_E2E_STATE/buildkitd), the second on 127.0.0.1:5071
# (state .../buildkitd2), the same certificates. `up`, `down` and `wipe` act on both, or on
# the one named (1 or 2).
#
# Runnable alone (it uses only lib.sh): up.sh calls `up` after the registries are started.
# The address and certificate paths go to $IMAGESPEC_E2E_STATE/buildkitd.env, and the same
# lines into e2e.env (a marked block, replaced on each `up`).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

BUILDKIT_VERSION=${IMAGESPEC_E2E_BUILDKIT_VERSION:-v0.35.0}
BUILDKIT_PORT1=${IMAGESPEC_E2E_BUILDKIT_PORT:-5070}
BUILDKIT_PORT2=${IMAGESPEC_E2E_BUILDKIT_PORT2:-5071}
BUILDKIT_BIN=$E2E_CACHE/buildkit-$BUILDKIT_VERSION/bin
BUILDKITD=$BUILDKIT_BIN/buildkitd
BUILDCTL=$BUILDKIT_BIN/buildctl
BUILDKIT_CERTS=$E2E_CACHE/buildkit-certs
RUNC=/usr/sbin/runc
WAIT_SECS=${IMAGESPEC_E2E_WAIT:-60}
ENV_OUT=$E2E_STATE/buildkitd.env

# daemon N: the functions below act on buildkitd N (1 or 2): its port, state, pid and log.
daemon() {
    local suffix
    case $1 in
        1) BUILDKIT_PORT=$BUILDKIT_PORT1 suffix= ;;
        2) BUILDKIT_PORT=$BUILDKIT_PORT2 suffix=2 ;;
        *) die "no buildkitd $1 (1 or 2)" ;;
    esac
    BUILDKIT_STATE=$E2E_STATE/buildkitd$suffix
    BUILDKIT_ROOT=$BUILDKIT_STATE/root
    PIDFILE=$BUILDKIT_STATE/buildkitd.pid
    LOGF=$BUILDKIT_STATE/buildkitd.log
}

# ---------------------------------------------------------------- build from the Go module
install_buildkit() {
    if [[ -x $BUILDKITD && -x $BUILDCTL ]]; then
        return
    fi
    need_cmd go
    # `go install module/cmd@version` refuses BuildKit: its go.mod has exclude directives.
    # So the module is downloaded (the Go proxy, pinned by version and go.sum) and built in
    # its own directory, which keeps its go.mod as the main module.
    export GOPATH=$E2E_CACHE/gopath GOFLAGS=-mod=mod GOTOOLCHAIN=local
    local dir
    log "downloading github.com/moby/buildkit@$BUILDKIT_VERSION"
    dir=$(go mod download -json "github.com/moby/buildkit@$BUILDKIT_VERSION" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ -d $dir ]] || die "go mod download github.com/moby/buildkit@$BUILDKIT_VERSION failed"
    log "building buildkitd and buildctl $BUILDKIT_VERSION (a few minutes, once per machine)"
    mkdir -p "$BUILDKIT_BIN.tmp"
    (cd "$dir" && timeout 1800 go build -trimpath -o "$BUILDKIT_BIN.tmp/" ./cmd/buildkitd ./cmd/buildctl) \
        || die "go build of buildkitd/buildctl failed"
    mkdir -p "$BUILDKIT_BIN"
    mv "$BUILDKIT_BIN.tmp/buildkitd" "$BUILDKIT_BIN.tmp/buildctl" "$BUILDKIT_BIN/"
    rmdir "$BUILDKIT_BIN.tmp"
}

# ---------------------------------------------------------------- certificates
# cert NAME CA EXT SUBJECT: a key and a certificate signed by CA (in $BUILDKIT_CERTS).
cert() {
    local name=$1 ca=$2 ext=$3 subject=$4 d=$BUILDKIT_CERTS
    openssl req -newkey rsa:2048 -sha256 -nodes -keyout "$d/$name.key" -out "$d/$name.csr" \
        -subj "$subject" >/dev/null 2>&1 \
        && printf '%b' "$ext" >"$d/$name.ext" \
        && openssl x509 -req -in "$d/$name.csr" -CA "$d/$ca.crt" -CAkey "$d/$ca.key" \
            -CAcreateserial -days 3650 -sha256 -extfile "$d/$name.ext" -out "$d/$name.crt" \
            >/dev/null 2>&1 \
        || die "openssl could not make $name's certificate"
    chmod 600 "$d/$name.key"
}

ca() {
    local name=$1 d=$BUILDKIT_CERTS
    openssl req -x509 -newkey rsa:2048 -sha256 -days 3650 -nodes -keyout "$d/$name.key" \
        -out "$d/$name.crt" -subj "/CN=imagespec e2e $name" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1 \
        || die "openssl could not make the $name CA"
    chmod 600 "$d/$name.key"
}

# A CA for buildkitd's server and client certificates, and a second CA whose client
# certificate buildkitd must refuse (the "wrong certificate" test).
setup_certs() {
    local d=$BUILDKIT_CERTS
    if [[ -s $d/other-client.crt ]] && openssl verify -CAfile "$d/ca.crt" "$d/server.crt" "$d/client.crt" \
        >/dev/null 2>&1 && openssl x509 -checkend 86400 -noout -in "$d/server.crt" >/dev/null 2>&1; then
        return
    fi
    need_cmd openssl
    log "making buildkitd's certificates in $d"
    rm -rf "$d" && mkdir -p "$d"
    ca ca
    ca other-ca
    cert server ca 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n' \
        /CN=buildkitd
    local client='basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n'
    cert client ca "$client" /CN=imagespec-e2e-client
    cert other-client other-ca "$client" /CN=imagespec-e2e-stranger
}

# ---------------------------------------------------------------- buildkitd
write_config() {
    mkdir -p "$BUILDKIT_STATE"
    local r toml=$BUILDKIT_STATE/buildkitd.toml
    {
        echo "# Written by scripts/e2e/buildkitd.sh"
        echo "root = \"$BUILDKIT_ROOT\""
        echo "[grpc]"
        echo "  address = [\"tcp://127.0.0.1:$BUILDKIT_PORT\"]"
        echo "  [grpc.tls]"
        echo "    cert = \"$BUILDKIT_CERTS/server.crt\""
        echo "    key = \"$BUILDKIT_CERTS/server.key\""
        echo "    ca = \"$BUILDKIT_CERTS/ca.crt\""
        echo "[worker.oci]"
        echo "  enabled = true"
        echo "  binary = \"$RUNC\""
        # Several platforms: qemu-user-static runs arm64 steps (binfmt.sh registers it).
        echo "  platforms = [\"linux/amd64\", \"linux/arm64\"]"
        echo "  gc = true"
        echo "  gckeepstorage = 10000"
        echo "[worker.containerd]"
        echo "  enabled = false"
        # The harness's registries speak plain HTTP (the TLS one has the system CA).
        for r in "127.0.0.1:$PLAIN_PORT" "localhost:$PLAIN_PORT" "127.0.0.1:$AUTH_PORT" \
            "localhost:$AUTH_PORT" "127.0.0.1:$TOKEN_PORT" "localhost:$TOKEN_PORT"; do
            echo "[registry.\"$r\"]"
            echo "  http = true"
            echo "  insecure = true"
        done
    } >"$toml.tmp"
    mv "$toml.tmp" "$toml"
}

answers() {
    "$BUILDCTL" --addr "tcp://127.0.0.1:$BUILDKIT_PORT" --tlscacert "$BUILDKIT_CERTS/ca.crt" \
        --tlscert "$BUILDKIT_CERTS/client.crt" --tlskey "$BUILDKIT_CERTS/client.key" \
        --timeout 2 debug workers >/dev/null 2>&1
}

start() {
    local pid
    if pid=$(pid_of "$PIDFILE" "$BUILDKITD"); then
        wait_for "$WAIT_SECS" "buildkitd (pid $pid)" answers \
            || die "buildkitd (pid $pid) runs but does not answer; see $LOGF"
        log "buildkitd already running (pid $pid)"
        return
    fi
    rm -f "$PIDFILE"
    if port_open "$BUILDKIT_PORT"; then
        die "127.0.0.1:$BUILDKIT_PORT is taken by another process (set IMAGESPEC_E2E_BUILDKIT_PORT or _PORT2)"
    fi
    write_config
    mkdir -p "$BUILDKIT_ROOT"
    log "starting buildkitd $BUILDKIT_VERSION on 127.0.0.1:$BUILDKIT_PORT (log: $LOGF)"
    echo "=== $(date -Is) buildkitd.sh starts buildkitd" >>"$LOGF"
    # shellcheck disable=SC2016  # $$ and $@ expand in the child shell
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PIDFILE" "$BUILDKITD" \
        --config "$BUILDKIT_STATE/buildkitd.toml" >>"$LOGF" 2>&1 </dev/null &
    local deadline=$((SECONDS + WAIT_SECS))
    until answers; do
        if [[ -s $PIDFILE ]] && ! kill -0 "$(<"$PIDFILE")" 2>/dev/null; then
            tail -n 20 "$LOGF" >&2 || true
            die "buildkitd exited during start-up; see $LOGF"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$LOGF" >&2 || true
            die "buildkitd did not answer within ${WAIT_SECS}s; see $LOGF"
        fi
        sleep 0.3
    done
}

write_env() {
    local d=$BUILDKIT_CERTS
    cat >"$ENV_OUT.tmp" <<EOF
# BEGIN buildkitd.sh
# A remote buildkitd (scripts/e2e/buildkitd.sh, BuildKit $BUILDKIT_VERSION), mTLS on loopback:
# its CA, a client certificate it accepts, and OTHER_* signed by another CA (refused).
# HOST2: a second one, the same certificates (several builders: tests/e2e_jobs.rs).
IMAGESPEC_E2E_BUILDKIT_HOST=tcp://127.0.0.1:$BUILDKIT_PORT1
IMAGESPEC_E2E_BUILDKIT_HOST2=tcp://127.0.0.1:$BUILDKIT_PORT2
IMAGESPEC_E2E_BUILDKIT_CA=$d/ca.crt
IMAGESPEC_E2E_BUILDKIT_CERT=$d/client.crt
IMAGESPEC_E2E_BUILDKIT_KEY=$d/client.key
IMAGESPEC_E2E_BUILDKIT_OTHER_CERT=$d/other-client.crt
IMAGESPEC_E2E_BUILDKIT_OTHER_KEY=$d/other-client.key
IMAGESPEC_E2E_BUILDCTL=$BUILDCTL
IMAGESPEC_E2E_BUILDKIT_SCRIPT=$E2E_DIR/buildkitd.sh
# END buildkitd.sh
EOF
    mv "$ENV_OUT.tmp" "$ENV_OUT"
    if [[ -f $E2E_ENV_FILE ]]; then
        { sed '/^# BEGIN buildkitd.sh$/,/^# END buildkitd.sh$/d' "$E2E_ENV_FILE"; cat "$ENV_OUT"; } \
            >"$E2E_ENV_FILE.buildkit.tmp"
        mv "$E2E_ENV_FILE.buildkit.tmp" "$E2E_ENV_FILE"
    fi
}

stop() {
    local pid
    if ! pid=$(pid_of "$PIDFILE" "$BUILDKITD"); then
        rm -f "$PIDFILE"
        return 0
    fi
    log "stopping buildkitd (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        log "buildkitd (pid $pid) still running after 20s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    fi
    rm -f "$PIDFILE"
}

# A fresh runner: its state (cache, snapshots) gone, the registries' caches kept.
wipe() {
    stop
    if [[ -d $BUILDKIT_ROOT ]]; then
        # buildkitd leaves overlay mounts under its root when killed: unmount them first.
        local mounts
        mounts=$(grep -o " $BUILDKIT_ROOT[^ ]*" /proc/self/mounts | sort -r || true)
        for m in $mounts; do
            umount -l "$m" 2>/dev/null || true
        done
        rm -rf "$BUILDKIT_ROOT"
    fi
}

need_root
mkdir -p "$E2E_STATE" "$E2E_CACHE"
action=${1:-up}
case ${2:-both} in
    both) daemons=(1 2) ;;
    1 | 2) daemons=("$2") ;;
    *) die "usage: buildkitd.sh install|up|down|wipe [1|2]" ;;
esac
case $action in
    install) install_buildkit ;;
    up)
        install_buildkit
        setup_certs
        for n in "${daemons[@]}"; do
            daemon "$n"
            start
            log "buildkitd $n: tcp://127.0.0.1:$BUILDKIT_PORT"
        done
        write_env
        log "env: $ENV_OUT"
        ;;
    down | wipe)
        for n in "${daemons[@]}"; do
            daemon "$n"
            if [[ $action == down ]]; then stop; else wipe; fi
        done
        ;;
    *) die "usage: buildkitd.sh install|up|down|wipe [1|2]" ;;
esac
