#!/usr/bin/env bash
# Installs uv on the host for the daemonless dependency builder's e2e tests, once: PyPI's `uv`
# wheel in a venv at $IMAGESPEC_E2E_CACHE/uv-<version> (default
# /var/cache/imagespec-e2e/uv-0.5.1: the version of the uv image the Docker path uses, so
# that both builds make the same venv); prints the binary's path. Cheap when it is there.
# tests/e2e_daemonless.rs finds it there (or through IMAGESPEC_UV).
# Usage: scripts/e2e/uv.sh     Env: IMAGESPEC_E2E_UV_VERSION (default 0.5.1)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

UV_VERSION=${IMAGESPEC_E2E_UV_VERSION:-0.5.1}
UV_VENV=$E2E_CACHE/uv-$UV_VERSION
UV_BIN=$UV_VENV/bin/uv

installed() {
    [[ -x $UV_BIN ]] && [[ $("$UV_BIN" --version 2>/dev/null) == "uv $UV_VERSION"* ]]
}

if ! installed; then
    need_cmd /usr/bin/python3
    if ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
        log "installing python3-venv (for the uv venv)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv >/dev/null \
            || die "apt-get install python3-venv failed"
    fi
    log "installing uv $UV_VERSION from PyPI into $UV_VENV"
    mkdir -p "$E2E_CACHE"
    # A half-made venv from an interrupted run fails `installed` and is made again.
    rm -rf "$UV_VENV"
    /usr/bin/python3 -m venv "$UV_VENV" || die "python3 -m venv failed"
    "$UV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" \
        || die "pip install uv==$UV_VERSION failed"
    installed || die "$UV_BIN does not report uv $UV_VERSION"
fi
echo "$UV_BIN"
