#!/usr/bin/env bash
# `build --jobs` and several remote builders (issue #22): the 6-image project of
# tests/e2e_jobs.rs (a multi-image file: base (apt) <- mid (pip) <- app (commands), tool
# (commands), pip-a and pip-b (pip only, source files)) built three ways, from the same cache
# state each time: 1 builder --jobs 1, 1 builder --jobs 3, 2 builders --jobs 3. Before each
# build both buildkitds are wiped (their caches gone) and the images go to a fresh registry
# repository with --no-cache-export (no registry cache to import or leave behind).
# Needs the e2e services and scripts/e2e/buildkitd.sh up (both builders).
# Prints a markdown table row of medians and ratios.
# Usage: bench/jobs_bench.sh [RUNS]   (default 2; the median is reported)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-2}
# The harness state named by the caller stays the one the builders are wiped in (e2e.env
# names the harness's own): a bench against builders of its own never touches those.
state=${IMAGESPEC_E2E_STATE:-/tmp/imagespec-e2e}
set -a
# shellcheck disable=SC1091
. "$state/e2e.env"
IMAGESPEC_E2E_STATE=$state
set +a
[[ -n ${IMAGESPEC_E2E_BUILDKIT_HOST2:-} ]] || { echo "no second builder: buildkitd.sh up" >&2; exit 1; }
bin=${IMAGESPEC_BIN:-target/release/imagespec}
[[ -x $bin ]] || cargo build --release --locked -q
bin=$(realpath "$bin")
script=${IMAGESPEC_E2E_BUILDKIT_SCRIPT_JOBS:-$IMAGESPEC_E2E_BUILDKIT_SCRIPT}
tls=(--tlscacert "$IMAGESPEC_E2E_BUILDKIT_CA" --tlscert "$IMAGESPEC_E2E_BUILDKIT_CERT"
    --tlskey "$IMAGESPEC_E2E_BUILDKIT_KEY" --no-cache-export -q)
one=(--builder-host "$IMAGESPEC_E2E_BUILDKIT_HOST")
two=("${one[@]}" --builder-host "$IMAGESPEC_E2E_BUILDKIT_HOST2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
echo "print('hello from the source')" >"$work/src/app.py"

# project REPO: the six images, pushed under REPO.
project() {
    local common base=$IMAGESPEC_E2E_BASE_PYTHON
    common="registry = \"$1\"
builder_config = { uv_image = \"$IMAGESPEC_E2E_UV_IMAGE\" }
builder_options = { add_flytekit = false }"
    cat >"$work/spec.toml" <<SPEC
[images.base]
name = "jobs-base"
$common
base_image = "$base"
apt_packages = ["jq"]
[images.mid]
name = "jobs-mid"
$common
base_image = { spec = "base" }
packages = ["six"]
[images.app]
name = "jobs-app"
$common
base_image = { spec = "mid" }
commands = ["echo app > /app-built"]
[images.tool]
name = "jobs-tool"
$common
base_image = "$base"
commands = ["echo tool > /tool-built"]
[images.pip-a]
name = "jobs-pip-a"
$common
base_image = "$base"
packages = ["idna"]
source_root = "src"
source_copy_mode = "all"
[images.pip-b]
name = "jobs-pip-b"
$common
base_image = "$base"
packages = ["six"]
source_root = "src"
source_copy_mode = "all"
SPEC
}

# fresh_build ARGS...: both builders wiped, a fresh repository, the build; prints seconds.
fresh_build() {
    "$script" wipe >/dev/null 2>&1
    "$script" up >/dev/null 2>&1
    project "localhost:5000/jobs-bench/$$-$RANDOM"
    local start end
    start=$(date +%s.%N)
    (cd "$work" && "$bin" build spec.toml "${tls[@]}" "$@" >/dev/null)
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

serial=() jobs=() spread=()
for _ in $(seq "$runs"); do
    serial+=("$(fresh_build "${one[@]}" --jobs 1)")
    jobs+=("$(fresh_build "${one[@]}" --jobs 3)")
    spread+=("$(fresh_build "${two[@]}" --jobs 3)")
done
s=$(printf '%s\n' "${serial[@]}" | median)
j=$(printf '%s\n' "${jobs[@]}" | median)
t=$(printf '%s\n' "${spread[@]}" | median)
printf '| %s | %.1f s | %.1f s (%.2f×) | %.1f s (%.2f×) |\n' "$(date +%F)" "$s" \
    "$j" "$(echo "$s / $j" | bc -l)" "$t" "$(echo "$s / $t" | bc -l)"
