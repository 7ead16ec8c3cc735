//! Fuzz target: A spec file in YAML; the checks are
//! `imagespec::fuzzing::spec_yaml`'s (also replayed over `testdata/fuzz/spec_yaml/` by `cargo test`).
//! Run: `IMAGESPEC_FUZZ_TARGETS=spec_yaml IMAGESPEC_FUZZ_SECONDS=600 scripts/fuzz.sh`

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imagespec::fuzzing::spec_yaml(data));
