//! The stat-keyed cache of source digests never serves a stale digest: an edit that keeps
//! size and mtime still changes ctime, and with it the key.

use imagespec::source::SourceSet;
use std::process::Command;

#[test]
fn an_edit_that_restores_size_and_mtime_is_still_seen() {
    let cache = tempfile::tempdir().expect("cache dir");
    // This test binary is the only one that sets the variable, before any digest is taken.
    unsafe { std::env::set_var("IMAGESPEC_CACHE_DIR", cache.path()) };
    let tree = tempfile::tempdir().expect("tree");
    let file = tree.path().join("a.py");
    std::fs::write(&file, "x = 1\n").expect("write");
    std::fs::write(tree.path().join("b.py"), "y = 2\n").expect("write");
    // Out of the one-second "racy" window, so the first digest is cached.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let first = SourceSet::all(".", tree.path()).expect("digest");
    let entries = std::fs::read_dir(cache.path().join("tree-digests"))
        .expect("cache written")
        .count();
    assert_eq!(entries, 1, "the first digest is stored");
    let again = SourceSet::all(".", tree.path()).expect("digest");
    assert_eq!(first, again);

    let mtime = std::fs::metadata(&file)
        .expect("meta")
        .modified()
        .expect("mtime");
    std::fs::write(&file, "x = 9\n").expect("rewrite, same size");
    let stamp = mtime
        .duration_since(std::time::UNIX_EPOCH)
        .expect("epoch")
        .as_secs_f64();
    let touched = Command::new("touch")
        .arg("-d")
        .arg(format!("@{stamp}"))
        .arg(&file)
        .status()
        .expect("touch");
    assert!(touched.success());
    let after = SourceSet::all(".", tree.path()).expect("digest");
    assert_ne!(
        after.digest, first.digest,
        "the edit must change the digest"
    );

    unsafe { std::env::set_var("IMAGESPEC_NO_CACHE", "1") };
    let uncached = SourceSet::all(".", tree.path()).expect("digest");
    assert_eq!(after.digest, uncached.digest);
}
