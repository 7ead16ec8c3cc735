#!/usr/bin/env bash
# The test command, in tiers, each failing fast:
#   1. cargo fmt --check (also of fuzz/), cargo clippy --all-targets -D warnings, and the
#      architecture test (modules layered as docs/architecture.md's Layout says, functions <= 120 lines);
#   2. unit, doc and in-process tests that need no service (lib, bins, doctests; among them
#      the replay of every saved fuzz input, testdata/fuzz/);
#   3. the fuzz step (scripts/fuzz.sh): each fuzz target runs IMAGESPEC_FUZZ_SECONDS
#      (default 25) under libFuzzer's time and memory limits, its build kept outside the
#      clone (IMAGESPEC_FUZZ_TARGET_DIR, default /var/cache/imagespec-fuzz/target);
#   4. installs what the e2e suite needs (Debian packages), starts the services (dockerd with
#      BuildKit, local registries, base images: scripts/e2e/), runs every integration test
#      (golden, CLI and e2e: under CI a missing service fails them), removes the images they
#      left in dockerd, and stops the services it started. IMAGESPEC_E2E_KEEP=1 leaves them
#      running for another run.
# Usage: scripts/test.sh [--fast] [cargo test args for tier 4...]
#   --fast: tiers 1 and 2 only (no fuzzing, no services, a few minutes): fuzzing is a search
#   that pays off over time, not a check of the change at hand, and its first build is long;
#   tier 2 still replays every saved fuzz input.
set -euo pipefail
cd "$(dirname "$0")/.."

fast=0
if [[ ${1:-} == --fast ]]; then
    fast=1
    shift
fi
tier() { printf '\n=== test.sh: %s (%s) ===\n' "$1" "$(date +%T)"; }

need=()
command -v git >/dev/null 2>&1 || need+=(git)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if ((${#need[@]})); then
    echo "installing: ${need[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi

tier "1/4 format and lints"
cargo fmt --check
cargo fmt --check --manifest-path fuzz/Cargo.toml
cargo clippy --locked --all-targets -- -D warnings
# Layering (docs/architecture.md, Layout) and function lengths; prints the longest functions.
cargo test --locked --test architecture -- --nocapture

tier "2/4 unit and doc tests (no services)"
cargo test --locked --lib --bins
cargo test --locked --doc
((fast)) && exit 0

tier "3/4 fuzzing (${IMAGESPEC_FUZZ_SECONDS:-25} s per target)"
scripts/fuzz.sh

tier "4/4 services, golden, CLI and e2e tests"
scripts/e2e/install.sh
scripts/e2e/up.sh --quiet
tests_started=0
cleanup() {
    if ((tests_started)); then
        comm -13 <(echo "$images_before") <(/usr/bin/docker images --quiet --no-trunc | sort -u) |
            xargs -r /usr/bin/docker rmi --force >/dev/null 2>&1 || true
        /usr/bin/docker builder prune --force --keep-storage 10gb >/dev/null 2>&1 || true
    fi
    if [[ ${IMAGESPEC_E2E_KEEP:-0} != 1 ]]; then
        scripts/e2e/down.sh >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
scripts/e2e/base-images.sh
# The imagespec-cli wheels, dev profile: x86_64 (reuses this build; tests/wheel.rs installs it
# into a fresh venv) and aarch64 (cross-compiled, its dependencies kept in
# /var/cache/imagespec-wheel/target; tests/wheel.rs runs it on arm64), and uv's wheel beside
# them in /var/cache/imagespec-wheel.
scripts/wheel.sh --aarch64 >/dev/null
# The flytekit plugin's venv with that wheel and the plugin (tests/flytekit_plugin.rs).
scripts/e2e/plugin.sh --quiet >/dev/null
# uv on the host for the daemonless dependency builder (tests/e2e_daemonless.rs,
# tests/e2e_hostile.rs).
scripts/e2e/uv.sh >/dev/null
set -a
# shellcheck disable=SC1091
. "${IMAGESPEC_E2E_STATE:-/tmp/imagespec-e2e}/e2e.env"
set +a

# What the tests leave in dockerd goes when they end (the images they built, the build
# cache past 10 GB), else every run adds some 60 images and a few GB on this machine; the
# images there before (the base images) stay.
images_before=$(/usr/bin/docker images --quiet --no-trunc | sort -u)
tests_started=1

cargo test --locked --no-fail-fast --test '*' "$@"
