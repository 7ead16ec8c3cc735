#!/usr/bin/env bash
# Installs the tools the SBOM e2e tests use as witnesses, once, at pinned versions, into
# $IMAGESPEC_E2E_CACHE/<tool>-<version>/bin (default /var/cache/imagespec-e2e): oras
# (`oras discover` lists an image's referrers), syft (its own scan of an image, compared
# with imagespec's SBOM) and cosign (signs and verifies an image with a key), built from
# their Go modules (module downloads under $IMAGESPEC_E2E_CACHE/gopath, Go's own build
# cache as usual); the SPDX tools' validator (`pyspdxtools`, PyPI's
# spdx-tools) and CycloneDX's (`cyclonedx-py`'s library, PyPI's cyclonedx-python-lib), each
# in a venv; and a registry with the OCI referrers API (`referrers-registry`: go-containerregistry's
# registry package, built from scripts/e2e/referrers-registry/, keyed by its sources' hash).
# Prints each binary's path. Cheap when they are there; a second run while one
# is building waits for it (flock), so up.sh can start the slow Go builds in the background.
# tests/e2e_sbom.rs finds them there (or through IMAGESPEC_ORAS / IMAGESPEC_SYFT /
# IMAGESPEC_COSIGN / IMAGESPEC_PYSPDXTOOLS / IMAGESPEC_PYTHON, the CycloneDX venv's python).
# Usage: scripts/e2e/sbom-tools.sh [oras|syft|cosign|spdx-tools|cyclonedx|referrers-registry]...
#        (default: all)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ORAS_VERSION=${IMAGESPEC_E2E_ORAS_VERSION:-1.2.3}
SYFT_VERSION=${IMAGESPEC_E2E_SYFT_VERSION:-1.18.1}
COSIGN_VERSION=${IMAGESPEC_E2E_COSIGN_VERSION:-2.6.5}
SPDX_TOOLS_VERSION=${IMAGESPEC_E2E_SPDX_TOOLS_VERSION:-0.8.5}
CYCLONEDX_LIB_VERSION=${IMAGESPEC_E2E_CYCLONEDX_LIB_VERSION:-9.1.0}

install_tool() {
    local name=$1 version=$2 module=$3
    local bin=$E2E_CACHE/$name-$version/bin/$name
    mkdir -p "$E2E_CACHE/$name-$version"
    # One build at a time per tool: a second caller waits for the first, then finds the binary.
    exec {lock}>"$E2E_CACHE/$name-$version/.lock"
    flock "$lock"
    if [[ ! -x $bin ]]; then
        need_cmd go
        log "building $name $version from $module"
        mkdir -p "$E2E_CACHE/$name-$version/bin"
        GOPATH=$E2E_CACHE/gopath GOBIN=$E2E_CACHE/$name-$version/bin GOFLAGS=-mod=mod \
            go install "$module@v$version" || die "go install $module@v$version failed"
    fi
    exec {lock}>&-
    echo "$bin"
}

# The referrers registry, built from its sources in this repository (their pinned go.sum);
# a change to them builds it again under a new directory.
install_referrers_registry() {
    local src key dir
    src=$(cd "$(dirname "$0")/referrers-registry" && pwd)
    key=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)
    dir=$E2E_CACHE/referrers-registry-$key
    mkdir -p "$dir/bin"
    exec {lock}>"$dir/.lock"
    flock "$lock"
    if [[ ! -x $dir/bin/referrers-registry ]]; then
        need_cmd go
        log "building referrers-registry from $src"
        (cd "$src" && GOPATH=$E2E_CACHE/gopath GOFLAGS=-mod=readonly \
            go build -o "$dir/bin/referrers-registry" .) || die "building referrers-registry failed"
    fi
    exec {lock}>&-
    echo "$dir/bin/referrers-registry"
}

# A venv holding one PyPI package at a pinned version; prints the venv's path.
install_venv() {
    local venv=$1 package=$2 probe=$3
    if [[ ! -e $venv/$probe ]]; then
        log "installing $package from PyPI into $venv"
        rm -rf "$venv"
        /usr/bin/python3 -m venv "$venv" || die "python3 -m venv failed"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$package" \
            || die "pip install $package failed"
    fi
}

install_spdx_tools() {
    local venv=$E2E_CACHE/spdx-tools-$SPDX_TOOLS_VERSION
    install_venv "$venv" "spdx-tools==$SPDX_TOOLS_VERSION" bin/pyspdxtools
    echo "$venv/bin/pyspdxtools"
}

# CycloneDX's Python library validates a document against the 1.6 JSON schema; the test runs
# the venv's python with `cyclonedx.validation.json`.
install_cyclonedx() {
    local venv=$E2E_CACHE/cyclonedx-lib-$CYCLONEDX_LIB_VERSION
    install_venv "$venv" "cyclonedx-python-lib[json-validation]==$CYCLONEDX_LIB_VERSION" .installed
    touch "$venv/.installed"
    echo "$venv/bin/python"
}

tools=("$@")
((${#tools[@]})) || tools=(oras syft cosign spdx-tools cyclonedx referrers-registry)
for tool in "${tools[@]}"; do
    case $tool in
        oras) install_tool oras "$ORAS_VERSION" oras.land/oras/cmd/oras ;;
        syft) install_tool syft "$SYFT_VERSION" github.com/anchore/syft/cmd/syft ;;
        cosign) install_tool cosign "$COSIGN_VERSION" github.com/sigstore/cosign/v2/cmd/cosign ;;
        spdx-tools) install_spdx_tools ;;
        cyclonedx) install_cyclonedx ;;
        referrers-registry) install_referrers_registry ;;
        *) die "unknown tool $tool (oras, syft, cosign, spdx-tools, cyclonedx or referrers-registry)" ;;
    esac
done
