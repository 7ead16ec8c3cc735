//! Fuzz target: `tag_format` templates and the value of `{spec_hash}`; the checks are
//! `imagespec::fuzzing::tag_format`'s (also replayed over `testdata/fuzz/tag_format/` by `cargo test`).
//! Run: `IMAGESPEC_FUZZ_TARGETS=tag_format IMAGESPEC_FUZZ_SECONDS=600 scripts/fuzz.sh`

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imagespec::fuzzing::tag_format(data));
