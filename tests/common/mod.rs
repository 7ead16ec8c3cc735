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

/// The imagespec binary run in a materialised case, with git isolated from the user's
/// configuration (as the generators isolate it), no digest cache and no FLYTE_* variables.
pub fn isolated_imagespec(dir: &Path, home: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("imagespec").expect("binary");
    cmd.current_dir(dir)
        .env("IMAGESPEC_NO_CACHE", "1")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    for (var, _) in std::env::vars() {
        if var.starts_with("GIT_") && var != "GIT_CONFIG_NOSYSTEM" && var != "GIT_CONFIG_GLOBAL" || var.starts_with("FLYTE_") {
            cmd.env_remove(var);
        }
    }
    cmd
}

/// `--image KEY` for a multi-image case and `--modules-from` when the case lists modules.
pub fn case_args(cmd: &mut assert_cmd::Command, dir: &Path, key: &str) {
    if !key.is_empty() {
        cmd.args(["--image", key]);
    }
    if dir.join("modules.txt").exists() {
        cmd.args(["--modules-from", "modules.txt"]);
    }
}

/// [`materialise`] for a case of another testdata directory (e.g. `testdata/envd`), at the same
/// fixed place.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn materialise_from(corpus: &str, case: &str) -> PathBuf {
    let dir = Path::new(CORPUS_ROOT).join(case);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clean case dir");
    }
    copy_dir(&repo().join("testdata").join(corpus).join(case), &dir);
    if dir.join("setup.sh").exists() {
        let status = Command::new("bash").arg("setup.sh").current_dir(&dir).status().expect("bash");
        assert!(status.success(), "{case}: setup.sh failed");
    }
    dir
}
