#!/usr/bin/env bash
# Stops what scripts/e2e/up.sh started, by the PIDs it recorded: SIGTERM, a bounded wait,
# then SIGKILL. A dockerd that up.sh did not start is left alone. Keeps the caches
# ($IMAGESPEC_E2E_CACHE), registry data, images in dockerd and logs.
# Usage: scripts/e2e/down.sh [--purge]   (--purge also deletes the state dir: registry
#                                          data, logs, configs, env file)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

purge=0
[[ ${1:-} == --purge ]] && purge=1

need_root

# stop NAME PIDFILE EXE GRACE_SECS: returns 0 when the process is gone (or was not running).
stop() {
    local name=$1 pidfile=$2 exe=$3 grace=$4 pid
    if ! pid=$(pid_of "$pidfile" "$exe"); then
        [[ -e $pidfile ]] && log "$name not running (stale PID file removed)"
        rm -f "$pidfile"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + grace))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) still running after ${grace}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            log "error: $name (pid $pid) survived SIGKILL"
            return 1
        fi
    fi
    rm -f "$pidfile"
}

status=0
# The remote builder (buildkitd.sh) first: its builds push to the registries.
"$E2E_DIR/buildkitd.sh" down || status=1
# The registries take ~2 s each to exit on SIGTERM: stop them in parallel.
jobs_=()
for r in "${REGISTRIES[@]}"; do
    read -r name _ <<<"$r"
    stop "registry-$name" "$E2E_STATE/registry-$name.pid" "$REGISTRY_BIN" 10 &
    jobs_+=($!)
done
stop token-server "$E2E_STATE/token-server.pid" "$PYTHON" 10 &
jobs_+=($!)
for j in "${jobs_[@]}"; do wait "$j" || status=1; done

# dockerd stops its containers (10 s each by default) and its containerd child itself.
stop dockerd "$E2E_STATE/dockerd.pid" "$DOCKERD" 60 || status=1
# If dockerd had to be killed, its containerd child (PID recorded by up.sh) may be left.
if pid_of "$E2E_STATE/containerd.pid" /usr/bin/containerd >/dev/null; then
    stop containerd "$E2E_STATE/containerd.pid" /usr/bin/containerd 15 || status=1
fi
rm -f "$E2E_STATE/containerd.pid"
# ... and so may container shims of that containerd (namespace moby, docker's socket).
if ! docker_ping; then
    for d in /proc/[0-9]*; do
        [[ $(readlink -f "$d/exe" 2>/dev/null) == */containerd-shim-runc-v2 ]] || continue
        cmd=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
        [[ $cmd == *"-namespace moby"* && $cmd == *"/var/run/docker/containerd/containerd.sock"* ]] || continue
        log "killing orphaned container shim (pid ${d#/proc/})"
        kill -KILL "${d#/proc/}" 2>/dev/null || true
    done
fi

if ((purge)); then
    if ((status == 0)); then
        log "removing $E2E_STATE"
        rm -rf "$E2E_STATE"
    else
        log "not purging $E2E_STATE: some process did not stop"
    fi
fi

if ((status == 0)); then log "stopped"; else log "error: some processes could not be stopped"; fi
exit "$status"
