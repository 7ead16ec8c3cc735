//! Fuzz target: manifests, indexes and configs as a registry sends them; the checks are
//! `imagespec::fuzzing::registry_manifest`'s (also replayed over
//! `testdata/fuzz/registry_manifest/` by `cargo test`).
//! Run: `IMAGESPEC_FUZZ_SECONDS=600 scripts/fuzz.sh registry_manifest`

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imagespec::fuzzing::registry_manifest(data));
