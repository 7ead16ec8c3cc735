#!/usr/bin/env bash
# Installs the tools the SBOM e2e tests use as witnesses, once, at pinned versions, into
# $IMAGESPEC_E2E_CACHE/<tool>-<version>/bin (default /var/cache/imagespec-e2e): oras
# (`oras discover` lists an image's referrers) and syft (its own scan of an image, compared
# with imagespec's SBOM), built from their Go modules (downloads and build caches under
# $IMAGESPEC_E2E_CACHE/gopath); the SPDX tools' validator (`pyspdxtools`, PyPI's
# spdx-tools, in a venv). Prints each binary's path. Cheap when they are there.
# tests/e2e_sbom.rs finds them there (or through IMAGESPEC_ORAS / IMAGESPEC_SYFT /
# IMAGESPEC_PYSPDXTOOLS). up.sh runs it for oras and spdx-tools (what the tests use); syft's
# build takes over 25 minutes, so it is built only when asked for.
# Usage: scripts/e2e/sbom-tools.sh [oras|syft|spdx-tools]...   (default: all three)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ORAS_VERSION=${IMAGESPEC_E2E_ORAS_VERSION:-1.2.3}
SYFT_VERSION=${IMAGESPEC_E2E_SYFT_VERSION:-1.18.1}
SPDX_TOOLS_VERSION=${IMAGESPEC_E2E_SPDX_TOOLS_VERSION:-0.8.5}

install_tool() {
    local name=$1 version=$2 module=$3
    local bin=$E2E_CACHE/$name-$version/bin/$name
    if [[ ! -x $bin ]]; then
        need_cmd go
        log "building $name $version from $module"
        mkdir -p "$E2E_CACHE/$name-$version/bin"
        GOPATH=$E2E_CACHE/gopath GOBIN=$E2E_CACHE/$name-$version/bin GOFLAGS=-mod=mod \
            go install "$module@v$version" || die "go install $module@v$version failed"
    fi
    echo "$bin"
}

install_spdx_tools() {
    local venv=$E2E_CACHE/spdx-tools-$SPDX_TOOLS_VERSION
    if [[ ! -x $venv/bin/pyspdxtools ]]; then
        log "installing spdx-tools $SPDX_TOOLS_VERSION from PyPI into $venv"
        rm -rf "$venv"
        /usr/bin/python3 -m venv "$venv" || die "python3 -m venv failed"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "spdx-tools==$SPDX_TOOLS_VERSION" \
            || die "pip install spdx-tools==$SPDX_TOOLS_VERSION failed"
    fi
    echo "$venv/bin/pyspdxtools"
}

tools=("$@")
((${#tools[@]})) || tools=(oras syft spdx-tools)
for tool in "${tools[@]}"; do
    case $tool in
        oras) install_tool oras "$ORAS_VERSION" oras.land/oras/cmd/oras ;;
        syft) install_tool syft "$SYFT_VERSION" github.com/anchore/syft/cmd/syft ;;
        spdx-tools) install_spdx_tools ;;
        *) die "unknown tool $tool (oras, syft or spdx-tools)" ;;
    esac
done
