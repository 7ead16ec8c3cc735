#!/usr/bin/env bash
# The flytekit plugin's test environment (idempotent): a venv with flytekit 1.16.31, maturin
# and pytest (for plugins/flytekit/tests), and the plugin's wheel (carrying the imagespec
# binary) built from this checkout and installed into it. The wheel is built with cargo's
# dev profile, so it reuses what `cargo test` compiles. Prints the venv's python.
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
    "$VENV/bin/pip" install -q --disable-pip-version-check "$FLYTEKIT" "maturin>=1.5,<2" "$PYTEST"
fi
"$VENV/bin/python" -c 'import maturin' 2>/dev/null || "$VENV/bin/pip" install -q --disable-pip-version-check "maturin>=1.5,<2"
"$VENV/bin/python" -c 'import pytest' 2>/dev/null || "$VENV/bin/pip" install -q --disable-pip-version-check "$PYTEST"

# Rebuild the wheel when the crate or the plugin changed since the installed one.
stamp=$VENV/.imagespec-wheel-stamp
want=$(git ls-files -s Cargo.toml Cargo.lock src templates plugins/flytekit | sha1sum | cut -d' ' -f1)$(git diff HEAD -- Cargo.toml Cargo.lock src templates plugins/flytekit | sha1sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    log "building the plugin wheel"
    out=$(mktemp -d)
    (cd plugins/flytekit && "$VENV/bin/maturin" build --profile dev --quiet --out "$out" --interpreter "$VENV/bin/python") >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$out"/*.whl
    rm -rf "$out"
    echo "$want" >"$stamp"
fi
echo "$VENV/bin/python"
