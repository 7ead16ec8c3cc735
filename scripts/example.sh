#!/usr/bin/env bash
# The main job on a fresh machine: start dockerd and a local registry with base images
# (scripts/e2e), build and push the example spec with imagespec, then show the image as the
# registry has it (skopeo) and run it. Services keep running; scripts/e2e/down.sh stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/e2e/install.sh
scripts/e2e/up.sh --quiet
scripts/e2e/base-images.sh
set -a
# shellcheck disable=SC1091
. "${IMAGESPEC_E2E_STATE:-/tmp/imagespec-e2e}/e2e.env"
set +a
cargo build --release --locked -q
image=$(target/release/imagespec build testdata/example/spec.toml)
echo "pushed: $image"
skopeo inspect --tls-verify=false "docker://$image" | head -20
/usr/bin/docker run --rm "$image" python -c 'import os, yaml, requests, hello; print(hello.GREETING, "| _F_IMG_ID =", os.environ["_F_IMG_ID"])'
