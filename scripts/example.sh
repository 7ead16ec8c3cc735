#!/usr/bin/env bash
# The main job on a fresh machine: start dockerd and a local registry with base images
# (scripts/e2e), build and push the example spec with imagespec, show the image as the
# registry has it (skopeo) and run it; then change the code of a copy and ship it again
# through the registry fast path (no daemon), and write it as an OCI layout (umoci reads it).
# Services keep running; scripts/e2e/down.sh stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/e2e/install.sh
scripts/e2e/up.sh --quiet
scripts/e2e/base-images.sh --example
set -a
# shellcheck disable=SC1091
. "${IMAGESPEC_E2E_STATE:-/tmp/imagespec-e2e}/e2e.env"
set +a
cargo build --release --locked -q
image=$(target/release/imagespec build testdata/example/spec.toml)
echo "pushed: $image"
skopeo inspect --tls-verify=false "docker://$image" | head -20
/usr/bin/docker run --rm "$image" python -c 'import os, yaml, requests, hello; print(hello.GREETING, "| _F_IMG_ID =", os.environ["_F_IMG_ID"])'

# A code-only change: appended to the dependency image in the registry, no daemon involved.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r testdata/example/. "$work/"
printf '\nGREETING = "hello again, from the fast path"\n' >>"$work/src/hello/__init__.py"
start=$EPOCHREALTIME
image2=$(DOCKER_HOST=unix:///nonexistent target/release/imagespec build "$work/spec.toml")
echo "pushed: $image2 in $(awk "BEGIN { printf \"%.2f\", $EPOCHREALTIME - $start }") s, with no daemon reachable"
/usr/bin/docker run --rm "$image2" python -c 'import hello; print(hello.GREETING)'
# The same image as an OCI layout on disk, nothing pushed.
target/release/imagespec build -q "$work/spec.toml" --output "oci:$work/layout" >/dev/null
umoci ls --layout "$work/layout"
