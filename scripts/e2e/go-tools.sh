#!/usr/bin/env bash
# Installs the Go tools the SBOM e2e tests use as witnesses, once, built from their Go
# modules at pinned versions into $IMAGESPEC_E2E_CACHE/<tool>-<version>/bin (default
# /var/cache/imagespec-e2e): oras (`oras discover` lists an image's referrers) and syft (its
# own scan of an image, compared with imagespec's SBOM). Module downloads and build caches
# stay under $IMAGESPEC_E2E_CACHE/gopath. Prints each binary's path. Cheap when they are there.
# tests/e2e_sbom.rs finds them there (or through IMAGESPEC_ORAS / IMAGESPEC_SYFT).
# Usage: scripts/e2e/go-tools.sh [oras|syft]...   (default: both)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ORAS_VERSION=${IMAGESPEC_E2E_ORAS_VERSION:-1.2.3}
SYFT_VERSION=${IMAGESPEC_E2E_SYFT_VERSION:-1.18.1}
need_cmd go

install_tool() {
    local name=$1 version=$2 module=$3
    local bin=$E2E_CACHE/$name-$version/bin/$name
    if [[ ! -x $bin ]]; then
        log "building $name $version from $module"
        mkdir -p "$E2E_CACHE/$name-$version/bin"
        GOPATH=$E2E_CACHE/gopath GOBIN=$E2E_CACHE/$name-$version/bin GOFLAGS=-mod=mod \
            go install "$module@v$version" || die "go install $module@v$version failed"
    fi
    echo "$bin"
}

tools=("$@")
((${#tools[@]})) || tools=(oras syft)
for tool in "${tools[@]}"; do
    case $tool in
        oras) install_tool oras "$ORAS_VERSION" oras.land/oras/cmd/oras ;;
        syft) install_tool syft "$SYFT_VERSION" github.com/anchore/syft/cmd/syft ;;
        *) die "unknown tool $tool (oras or syft)" ;;
    esac
done
