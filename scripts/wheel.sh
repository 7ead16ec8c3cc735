#!/usr/bin/env bash
# Builds the `imagespec-cli` wheel (pyproject.toml: the `imagespec` binary as a script,
# depending on PyPI's `uv`) with maturin, pinned, from a venv kept at
# $IMAGESPEC_WHEEL_CACHE/maturin-<version> (default /var/cache/imagespec-wheel). Prints the
# wheels' paths, one a line.
#
# Usage: scripts/wheel.sh [--release] [--aarch64]
#   (none)      x86_64, cargo's dev profile: reuses what `cargo test` compiled (tier 4 of
#               scripts/test.sh; tests/wheel.rs and the flytekit plugin install it)
#   --release   x86_64, the release profile (the wheel to publish)
#   --aarch64   also aarch64, cross-compiled with rustup's aarch64-unknown-linux-gnu target
#               and Debian's gcc-aarch64-linux-gnu (installed when missing; needs root), in
#               $IMAGESPEC_WHEEL_CACHE/target so that a fresh clone compiles only imagespec
#               (~17 min cold on 2 cores, minutes warm)
# Wheels go to target/wheels/<profile>/; one made from the same tree (git's tree hash, and
# no local change) is kept and printed again without a build.
set -euo pipefail
cd "$(dirname "$0")/.."

MATURIN_VERSION=1.16.0
CACHE=${IMAGESPEC_WHEEL_CACHE:-/var/cache/imagespec-wheel}
MATURIN=$CACHE/maturin-$MATURIN_VERSION/bin/maturin
AARCH64=aarch64-unknown-linux-gnu

profile=dev
arches=(x86_64)
for arg in "$@"; do
    case $arg in
        --release) profile=release ;;
        --aarch64) arches+=(aarch64) ;;
        *) echo "wheel.sh: unknown argument $arg (usage: scripts/wheel.sh [--release] [--aarch64])" >&2; exit 2 ;;
    esac
done
log() { echo "wheel.sh: $*" >&2; }

if [[ ! -x $MATURIN ]] || [[ $("$MATURIN" --version) != "maturin $MATURIN_VERSION" ]]; then
    log "installing maturin $MATURIN_VERSION from PyPI into $CACHE/maturin-$MATURIN_VERSION"
    rm -rf "$CACHE/maturin-$MATURIN_VERSION"
    mkdir -p "$CACHE"
    python3 -m venv "$CACHE/maturin-$MATURIN_VERSION"
    "$CACHE/maturin-$MATURIN_VERSION/bin/pip" install -q --disable-pip-version-check "maturin==$MATURIN_VERSION"
fi

# The wheel's dependencies, for installs from files (tests/wheel.rs: --no-index).
UV_VERSION=$(sed -n 's/^dependencies = \["uv==\(.*\)"\]$/\1/p' pyproject.toml)
deps=$CACHE/deps
if ! compgen -G "$deps/uv-$UV_VERSION-*manylinux*x86_64.whl" >/dev/null; then
    log "downloading uv $UV_VERSION's wheel into $deps"
    "$CACHE/maturin-$MATURIN_VERSION/bin/pip" download -q --disable-pip-version-check \
        --only-binary=:all: --no-deps --dest "$deps" "uv==$UV_VERSION"
fi

# The commit `imagespec --version` names, as build.rs finds it (not passed in
# IMAGESPEC_COMMIT: a changed variable would make cargo rebuild what `cargo test` built).
commit=$(git rev-parse --short=12 HEAD)
[[ -z $(git status --porcelain --untracked-files=no) ]] || commit+=-dirty
tree=$(git rev-parse HEAD^{tree})
out=target/wheels/$profile
mkdir -p "$out"

for arch in "${arches[@]}"; do
    stamp=$out/.$arch.stamp
    wheels=("$out"/imagespec_cli-*"$arch".whl)
    if [[ $commit != *-dirty && -f $stamp && $(cat "$stamp") == "$tree" && -f ${wheels[0]} ]]; then
        realpath "${wheels[0]}"
        continue
    fi
    rm -f "$out"/imagespec_cli-*"$arch".whl "$stamp"
    target=()
    if [[ $arch == aarch64 ]]; then
        rustup target list --installed | grep -qx $AARCH64 || rustup target add $AARCH64 >&2
        if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
            log "installing gcc-aarch64-linux-gnu (the linker and C compiler for aarch64)"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null
        fi
        export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
        export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
        export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
        target=(--target $AARCH64)
        # Its dependencies, compiled once per machine rather than once per clone.
        export CARGO_TARGET_DIR=$CACHE/target
    fi
    log "building the $arch wheel ($profile profile, commit $commit)"
    start=$SECONDS
    "$MATURIN" build --locked --profile "$profile" "${target[@]}" --out "$out" >&2
    log "built the $arch wheel in $((SECONDS - start)) s"
    wheels=("$out"/imagespec_cli-*"$arch".whl)
    [[ $commit == *-dirty ]] || echo "$tree" >"$stamp"
    realpath "${wheels[0]}"
done
