//! Fuzz target: `.dockerignore` rules and the standard ignore globs; the checks are
//! `imagespec::fuzzing::ignore_patterns`'s (also replayed over `testdata/fuzz/ignore_patterns/` by `cargo test`).
//! Run: `IMAGESPEC_FUZZ_TARGETS=ignore_patterns IMAGESPEC_FUZZ_SECONDS=600 scripts/fuzz.sh`

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imagespec::fuzzing::ignore_patterns(data));
