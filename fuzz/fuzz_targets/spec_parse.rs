//! Fuzz target: any bytes, as any spec format, parse to a spec or an error, never a panic.
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run spec_parse -- -max_total_time=300`

#![no_main]

use imagespec::spec::SpecFile;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let name = ["spec.toml", "spec.yaml", "spec.json"][selector as usize % 3];
    if let Ok(file) = SpecFile::parse(Path::new(name), text) {
        for (_, spec) in file.images().unwrap_or_default() {
            let _ = imagespec::tag::id(spec);
            if let Some(format) = spec.tag_format.as_deref() {
                let _ = imagespec::py::format::format_spec_hash(format, "x");
            }
        }
    }
});
