#!/usr/bin/env bash
# Installs the envd CLI for the envd builder's e2e tests, once: PyPI's `envd` package (which
# ships the Go binary) in a venv at $IMAGESPEC_E2E_CACHE/envd-<version> (default
# /var/cache/imagespec-e2e/envd-1.3.6); prints the binary's path. Cheap when it is there.
# Usage: scripts/e2e/envd.sh     Env: IMAGESPEC_E2E_ENVD_VERSION (default 1.3.6)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

installed() {
    [[ -x $ENVD_BIN ]] && [[ $(ENVD_ANALYTICS=false "$ENVD_BIN" version 2>/dev/null | head -n1) == "envd: v$ENVD_VERSION" ]]
}

if ! installed; then
    need_cmd /usr/bin/python3
    if ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
        log "installing python3-venv (for the envd venv)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv >/dev/null \
            || die "apt-get install python3-venv failed"
    fi
    log "installing envd $ENVD_VERSION from PyPI into $ENVD_VENV"
    mkdir -p "$E2E_CACHE"
    # A half-made venv from an interrupted run fails `installed` and is made again.
    rm -rf "$ENVD_VENV"
    /usr/bin/python3 -m venv "$ENVD_VENV" || die "python3 -m venv failed"
    "$ENVD_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "envd==$ENVD_VERSION" \
        || die "pip install envd==$ENVD_VERSION failed"
    installed || die "$ENVD_BIN does not report v$ENVD_VERSION"
fi
echo "$ENVD_BIN"
