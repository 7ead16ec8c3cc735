//! Fuzz target: A spec file in TOML; the checks are
//! `imagespec::fuzzing::spec_toml`'s (also replayed over `testdata/fuzz/spec_toml/` by `cargo test`).
//! Run: `IMAGESPEC_FUZZ_TARGETS=spec_toml IMAGESPEC_FUZZ_SECONDS=600 scripts/fuzz.sh`

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imagespec::fuzzing::spec_toml(data));
