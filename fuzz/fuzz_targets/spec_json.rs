//! Fuzz target: A spec file in JSON; the checks are
//! `imagespec::fuzzing::spec_json`'s (also replayed over `testdata/fuzz/spec_json/` by `cargo test`).
//! Run: `IMAGESPEC_FUZZ_TARGETS=spec_json IMAGESPEC_FUZZ_SECONDS=600 scripts/fuzz.sh`

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imagespec::fuzzing::spec_json(data));
