#!/usr/bin/env bash
# The flytekit plugin's test environment (idempotent): a venv with flytekit 1.16.31 and pytest
# (for plugins/flytekit/tests), the `imagespec-cli` wheel scripts/wheel.sh builds from this
# checkout (the binary, and uv, as users get them; cargo's dev profile, so it reuses what
# `cargo test` compiles) and the plugin (pure Python) installed into it. Prints the venv's
# python.
# Usage: scripts/e2e/plugin.sh [--quiet]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=lib.sh
. scripts/e2e/lib.sh

VENV=${IMAGESPEC_PLUGIN_VENV:-$E2E_CACHE/plugin-venv}
FLYTEKIT=flytekit==1.16.31
PYTEST="pytest>=8,<9"
quiet=0; [[ ${1:-} == --quiet ]] && quiet=1
log() { ((quiet)) || echo "plugin.sh: $*" >&2; }

if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import flytekit, sys; sys.exit(flytekit.__version__ != "1.16.31")' 2>/dev/null; then
    log "creating $VENV with $FLYTEKIT"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$FLYTEKIT" "$PYTEST"
fi
"$VENV/bin/python" -c 'import pytest' 2>/dev/null || "$VENV/bin/pip" install -q --disable-pip-version-check "$PYTEST"

# Reinstall when the imagespec-cli wheel or the plugin changed since the installed ones.
wheel=$(scripts/wheel.sh)
stamp=$VENV/.imagespec-wheel-stamp
want=$(sha1sum "$wheel" | cut -d' ' -f1)$(git ls-files -s plugins/flytekit | sha1sum | cut -d' ' -f1)$(git diff HEAD -- plugins/flytekit | sha1sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    log "installing $(basename "$wheel") and the plugin"
    pip=("$VENV/bin/pip" install -q --disable-pip-version-check)
    # An older plugin wheel carried bin/imagespec itself: removed first, so that its
    # uninstall cannot take the imagespec-cli wheel's binary with it. Same versions as
    # installed, new contents: forced, without touching flytekit's dependencies; then once
    # more with dependencies, for uv (a no-op when it is there).
    "$VENV/bin/pip" uninstall -q -y flytekitplugins-imagespec imagespec-cli >/dev/null 2>&1 || true
    "${pip[@]}" --force-reinstall --no-deps "$wheel" ./plugins/flytekit
    "${pip[@]}" "$wheel" ./plugins/flytekit
    echo "$want" >"$stamp"
fi
echo "$VENV/bin/python"
