#!/usr/bin/env bash
# The fuzz step: builds the cargo-fuzz targets in fuzz/ (one per parser of untrusted text:
# spec files in TOML, YAML and JSON, `tag_format`, ignore patterns) and runs each for a
# bounded time under libFuzzer's time and memory limits. Fails when a target finds an input
# that breaks one of its checks (src/fuzzing.rs), and says where that input was saved: fix
# the bug, then keep the input as testdata/fuzz/<target>/regressions/<name>, which
# `cargo test` replays from then on.
#
# Runs on the stable toolchain: cargo-fuzz's unstable flags (sanitizer, coverage) are
# allowed by RUSTC_BOOTSTRAP=1, as no other toolchain can be installed everywhere this runs.
# Installs cargo-fuzz (pinned) when it is missing or another version.
#
# Usage: scripts/fuzz.sh [TARGET...]    (default: every target in fuzz/fuzz_targets/)
# Env:   IMAGESPEC_FUZZ_SECONDS     seconds per target (default 25)
#        IMAGESPEC_FUZZ_CACHE       kept across runs and clones (default /var/cache/imagespec-fuzz):
#                                   corpus/<target> (what the fuzzer learnt), artifacts/<target>
#                                   (inputs that failed), logs/<target>.log (the last run)
#        IMAGESPEC_FUZZ_TARGET_DIR  the build (default $IMAGESPEC_FUZZ_CACHE/target), outside
#                                   the clone so that a fresh clone rebuilds only imagespec
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

CARGO_FUZZ_VERSION=0.13.2
seconds=${IMAGESPEC_FUZZ_SECONDS:-25}
cache=${IMAGESPEC_FUZZ_CACHE:-/var/cache/imagespec-fuzz}
target_dir=${IMAGESPEC_FUZZ_TARGET_DIR:-$cache/target}

if [[ $(cargo fuzz --version 2>/dev/null) != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    echo "fuzz.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
export RUSTC_BOOTSTRAP=1

targets=("$@")
if ((${#targets[@]} == 0)); then
    for file in fuzz/fuzz_targets/*.rs; do
        name=${file##*/}
        targets+=("${name%.rs}")
    done
fi

# Release with debug assertions (overflow checks) and AddressSanitizer, cargo-fuzz's
# defaults; 16 codegen units build imagespec (rebuilt in every fresh clone) on both cores.
build=(cargo fuzz build -O -a --codegen-units 16 --target-dir "$target_dir")
# cargo fuzz builds one target or all of them.
((${#targets[@]} == 1)) && build+=("${targets[0]}")
# cargo names imagespec's build by its absolute path (a path dependency outside fuzz/'s
# workspace), and incremental compilation keys what it kept by source paths: built where the
# clone is, every fresh clone compiled imagespec from nothing (5 min). So the build runs on a
# copy of the sources kept at one place, $cache/src, where only the files whose content
# changed are written (unchanged ones keep their times, and cargo reuses what it compiled).
src=$cache/src
build_start=$SECONDS
# One copy and build at a time (another clone's CI run, a developer's).
mkdir -p "$cache"
exec 9>"$cache/build.lock"
flock 9
git ls-files -z Cargo.toml Cargo.lock build.rs src templates fuzz | sort -z >"$cache/src.list"
while IFS= read -r -d '' file; do
    if ! cmp -s "$file" "$src/$file"; then
        mkdir -p "$src/$(dirname "$file")"
        cp "$file" "$src/$file"
    fi
done <"$cache/src.list"
# Files the clone no longer has go (a removed module would still compile otherwise).
(cd "$src" && find Cargo.toml Cargo.lock build.rs src templates fuzz -type f -not -path 'fuzz/target/*' -print0 2>/dev/null | sort -z) |
    comm -z -23 - "$cache/src.list" | (cd "$src" && xargs -0 -r rm -f)
# The copy is no git checkout: build.rs names no commit, the same for every run (a commit
# passed in would recompile imagespec for a change of docs alone).
(cd "$src/fuzz" && env -u IMAGESPEC_COMMIT "${build[@]}")
flock -u 9
echo "fuzz.sh: build took $((SECONDS - build_start)) s (target dir $target_dir)"
bin_dir=$target_dir/$(rustc -vV | sed -n 's/^host: //p')/release
# Builds named by the clone locations of earlier runs (before the copy above): gone once
# not rebuilt for a week.
find "$bin_dir/deps" "$bin_dir/incremental" "$bin_dir/.fingerprint" -maxdepth 1 \
    -name '*imagespec-*' -mtime +7 -exec rm -rf {} + 2>/dev/null || true

failed=()
for target in "${targets[@]}"; do
    corpus=$cache/corpus/$target
    artifacts=$cache/artifacts/$target
    log=$cache/logs/$target.log
    mkdir -p "$corpus" "$artifacts" "${log%/*}"
    # Spec files may be long; templates, ignore files and paths stay short.
    max_len=4096
    [[ $target == spec_* ]] && max_len=16384
    # The corpus grows with every run, and each run first replays it all: past 5000 inputs
    # it is cut to the smallest set with the same coverage (libFuzzer's merge, some 10 s).
    if (($(find "$corpus" -type f | wc -l) > 5000)); then
        rm -rf "$corpus.merged"
        mkdir -p "$corpus.merged"
        if "$bin_dir/$target" -merge=1 -timeout=10 -rss_limit_mb=1024 -max_len="$max_len" \
            "$corpus.merged" "$corpus" >"$log" 2>&1; then
            rm -rf "$corpus"
            mv "$corpus.merged" "$corpus"
        fi
    fi
    # The limits are the DoS checks: no input may take 10 s (ms are the norm), grow the
    # process past 1 GB or ask for 256 MB at once (a width or alias budget not enforced).
    # The corpus in the cache is written to; testdata/fuzz/<target> (the seeds and
    # regressions) is only read.
    if "$bin_dir/$target" "$corpus" "$root/testdata/fuzz/$target" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=256 \
        -max_len="$max_len" -artifact_prefix="$artifacts/" -print_final_stats=1 \
        >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        echo "fuzz.sh: $target: ok, ${runs:-?} runs in ${seconds}s, ${cov:-cov: ?}, corpus $(find "$corpus" -type f | wc -l) files"
    else
        failed+=("$target")
        echo "fuzz.sh: $target FAILED; the end of its log ($log):"
        tail -n 40 "$log"
        saved=$(sed -n 's/.*Test unit written to //p' "$log")
        echo "fuzz.sh: $target: the input is saved as ${saved:-(see the log)}"
        echo "fuzz.sh: replay it: $bin_dir/$target ${saved:-FILE}"
        echo "fuzz.sh: once fixed, keep it: cp ${saved:-FILE} testdata/fuzz/$target/regressions/"
    fi
done

if ((${#failed[@]})); then
    echo "fuzz.sh: failed: ${failed[*]}"
    exit 1
fi
