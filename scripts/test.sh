#!/usr/bin/env bash
# The test command: installs what the suite needs (Debian packages), then runs every test.
# Usage: scripts/test.sh [cargo test args...]
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v git >/dev/null 2>&1 || need+=(git)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v touch >/dev/null 2>&1 || need+=(coreutils)
if ((${#need[@]})); then
    echo "installing: ${need[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi

cargo test --locked --all-targets "$@"
cargo test --locked --doc
