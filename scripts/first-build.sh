#!/usr/bin/env bash
# A newcomer's first run, with no services: builds testdata/first/spec.toml into an OCI
# layout with no Docker daemon (DOCKER_HOST points nowhere) and no registry of your own —
# the packages are installed here with uv, the base's layers are read from its registry —
# then reads the image back with umoci and runs its Python in the unpacked tree.
# Usage: scripts/first-build.sh [BASE_IMAGE]
#   BASE_IMAGE replaces the spec's `python:3.12-slim` (Docker Hub), e.g. a mirror when
#   Docker Hub is out of reach: the tests run it with the local registry's Debian Python.
# Env: IMAGESPEC (the binary; default: built with cargo), IMAGESPEC_UV (uv; default: `uv`
# on PATH, else installed from PyPI by scripts/e2e/uv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-}
start=$SECONDS
stage() { printf '\n== %s\n' "$*"; }

# What this run installs or changes on the machine, said before it does any of it.
changes=()
[[ -n ${IMAGESPEC:-} ]] || changes+=("compiles imagespec into target/release (cargo, ~10 min the first time)")
if [[ -z ${IMAGESPEC_UV:-} ]] && ! command -v uv >/dev/null; then
    changes+=("installs uv from PyPI into a venv under ${IMAGESPEC_E2E_CACHE:-/var/cache/imagespec-e2e}")
fi
command -v umoci >/dev/null || changes+=("installs Debian's umoci (apt-get) to read the image back")
changes+=("writes only to a temporary directory (removed at the end) and imagespec's cache (~/.cache/imagespec)")
stage "first-build.sh: a first image, no daemon and no registry of your own. This run:"
printf '   - %s\n' "${changes[@]}"

if [[ -z ${IMAGESPEC:-} ]]; then
    stage "compiling imagespec (cargo build --release)"
    cargo build --release --locked
    IMAGESPEC=$PWD/target/release/imagespec
fi
compiled=$SECONDS
if [[ -z ${IMAGESPEC_UV:-} ]]; then
    IMAGESPEC_UV=$(command -v uv || scripts/e2e/uv.sh)
fi
export IMAGESPEC_UV
if ! command -v umoci >/dev/null; then
    stage "installing umoci (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q umoci >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r testdata/first/. "$work/"
if [[ -n $base ]]; then
    sed -i "s|^base_image = .*|base_image = \"$base\"|" "$work/spec.toml"
fi

stage "imagespec plan: what build will do, and why"
DOCKER_HOST=unix:///nonexistent "$IMAGESPEC" plan "$work/spec.toml" --output
stage "imagespec build --output oci:$work/image (no daemon reachable)"
DOCKER_HOST=unix:///nonexistent "$IMAGESPEC" build "$work/spec.toml" \
    --output "oci:$work/image" --progress plain
image=$("$IMAGESPEC" tag "$work/spec.toml")
stage "umoci ls: the layout holds $image"
# Its name in the layout: the tag, or `latest` when the tag is no OCI ref name (a content
# hash may start with `_`).
ref=$(umoci ls --layout "$work/image" | head -n 1)
echo "$ref"
rootless=()
[[ $(id -u) == 0 ]] || rootless=(--rootless)
umoci unpack "${rootless[@]}" --image "$work/image:$ref" "$work/bundle" >/dev/null
root=$work/bundle/rootfs
stage "the image's files: /root/first and the venv's packages"
ls "$root/root/first"
ls "$root/root/.venv/lib/"python3*/site-packages | grep -E '^(requests|yaml|flytekit)$'
if [[ $(id -u) == 0 ]]; then
    stage "its Python, run in the unpacked tree (chroot)"
    chroot "$root" env PATH=/root/.venv/bin:/usr/local/bin:/usr/bin:/bin HOME=/root \
        sh -c 'cd /root && python -c "import requests, first; print(first.GREETING, requests.__version__)"'
fi

# The layout's own record of the image (an --output build pushes nothing, so reports none).
digest=$(python3 -c 'import json, sys
for m in json.load(open(sys.argv[1]))["manifests"]:
    if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == sys.argv[2]:
        print(m["digest"])' "$work/image/index.json" "$ref")
stage "summary"
echo "   image:  $image (written to an OCI layout, not pushed)"
echo "   digest: $digest"
echo "   ran:    plan, build --output (uv installed the packages here, no daemon), umoci unpack"
echo "   time:   $((SECONDS - start)) s in all, $((SECONDS - compiled)) s after the compile"
