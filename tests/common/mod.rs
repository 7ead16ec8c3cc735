//! Shared by the golden tests: the corpus materialisation contract of `testdata/README.md`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where cases are materialised (the generators use the same fixed path: some specs hold
/// absolute paths under it).
pub const CORPUS_ROOT: &str = "/tmp/imagespec-corpus";

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read corpus case") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Copies a case to its fixed place and runs its `setup.sh`, as the generators do.
pub fn materialise(case: &str) -> PathBuf {
    let dir = Path::new(CORPUS_ROOT).join(case);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clean case dir");
    }
    copy_dir(&repo().join("testdata/corpus").join(case), &dir);
    if dir.join("setup.sh").exists() {
        let status = Command::new("bash").arg("setup.sh").current_dir(&dir).status().expect("bash");
        assert!(status.success(), "{case}: setup.sh failed");
    }
    dir
}
