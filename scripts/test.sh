#!/usr/bin/env bash
# The test command: installs what the suite needs (Debian packages), starts the e2e services
# (dockerd with BuildKit, local registries, base images: scripts/e2e/), runs every test, and
# stops the services it started. IMAGESPEC_E2E_KEEP=1 leaves them running for another run.
# Usage: scripts/test.sh [cargo test args...]
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v git >/dev/null 2>&1 || need+=(git)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if ((${#need[@]})); then
    echo "installing: ${need[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi

scripts/e2e/install.sh
scripts/e2e/up.sh --quiet
if [[ ${IMAGESPEC_E2E_KEEP:-0} != 1 ]]; then
    trap 'scripts/e2e/down.sh >/dev/null 2>&1 || true' EXIT
fi
scripts/e2e/base-images.sh
# The flytekit plugin's venv with its freshly built wheel (tests/flytekit_plugin.rs).
scripts/e2e/plugin.sh --quiet >/dev/null
set -a
# shellcheck disable=SC1091
. "${IMAGESPEC_E2E_STATE:-/tmp/imagespec-e2e}/e2e.env"
set +a

cargo test --locked --all-targets "$@"
cargo test --locked --doc
