#!/usr/bin/env bash
# A fresh remote builder (buildkitd's state wiped, as on an ephemeral CI runner) rebuilding a
# spec after a one-package change: with the registry cache (imagespec's default for a remote
# builder) against without it (--cache-from a ref that does not exist, --no-cache-export).
# Needs the e2e services and scripts/e2e/buildkitd.sh up. Prints a markdown table row.
# Usage: bench/remote_cache_bench.sh [RUNS]   (default 3; the median is reported)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
set -a
# shellcheck disable=SC1091
. "${IMAGESPEC_E2E_STATE:-/tmp/imagespec-e2e}/e2e.env"
set +a
bin=${IMAGESPEC_BIN:-target/release/imagespec}
[[ -x $bin ]] || cargo build --release --locked -q
bin=$(realpath "$bin")
script=$IMAGESPEC_E2E_BUILDKIT_SCRIPT
flags=(--builder-host "$IMAGESPEC_E2E_BUILDKIT_HOST" --tlscacert "$IMAGESPEC_E2E_BUILDKIT_CA"
    --tlscert "$IMAGESPEC_E2E_BUILDKIT_CERT" --tlskey "$IMAGESPEC_E2E_BUILDKIT_KEY" -q)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
repo="localhost:5000/remote-bench/$$-$RANDOM"

# spec PACKAGES: the apt + pip + commands spec with these pip packages.
spec() {
    cat >"$work/spec.toml" <<SPEC
name = "bench"
registry = "$repo"
base_image = "$IMAGESPEC_E2E_BASE_PYTHON"
apt_packages = ["jq", "curl"]
packages = [$1]
commands = ["echo built > /built"]
builder_config = { uv_image = "$IMAGESPEC_E2E_UV_IMAGE" }
builder_options = { add_flytekit = false }
SPEC
}

# fresh_build ARGS...: wipes the builder, builds, prints the seconds.
fresh_build() {
    "$script" wipe >/dev/null 2>&1
    "$script" up >/dev/null 2>&1
    local start end
    start=$(date +%s.%N)
    (cd "$work" && "$bin" build spec.toml "${flags[@]}" "$@" >/dev/null)
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

spec '"six"'
fresh_build >/dev/null   # fills the registry cache
with=() without=()
for i in $(seq "$runs"); do
    spec "\"six\", \"pyyaml\", \"attrs==2$i.1.0\""
    with+=("$(fresh_build)")
    spec "\"six\", \"pyyaml\", \"attrs==2$i.2.0\""
    without+=("$(fresh_build --cache-from "$repo:no-such-cache" --no-cache-export)")
done
w=$(printf '%s\n' "${with[@]}" | median)
wo=$(printf '%s\n' "${without[@]}" | median)
printf '| %s | %.1f s | %.1f s | %.1f× |\n' "$(date +%F)" "$wo" "$w" "$(echo "$wo / $w" | bc -l)"
