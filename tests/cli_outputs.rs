//! What a run leaves on disk, without services: `render -o` never mixes an earlier render's
//! files into a new context, keeps a sparse file's holes and the files' modes, and the
//! digest cache never answers with a damaged entry.

use assert_cmd::Command;
use std::path::Path;

fn imagespec(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("imagespec").expect("binary");
    cmd.current_dir(dir).env("IMAGESPEC_NO_CACHE", "1");
    cmd
}

fn project(dir: &Path) {
    std::fs::create_dir_all(dir.join("src/pkg")).unwrap();
    std::fs::write(dir.join("src/pkg/main.py"), "print('v1')\n").unwrap();
    std::fs::write(
        dir.join("spec.toml"),
        "name = \"x\"\nsource_root = \"src\"\nsource_copy_mode = \"all\"\npackages = [\"six\"]\n",
    )
    .unwrap();
}

fn listing(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    out.sort();
    out
}

/// A render into a directory with anything in it (here a file planted there, and a source
/// file an earlier render copied but the source no longer has) is refused with exit 2 and
/// the way out; nothing in the directory changes.
#[test]
fn render_refuses_a_non_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    project(d);
    imagespec(d)
        .args(["render", "spec.toml", "-o", "ctx"])
        .assert()
        .success();
    assert!(d.join("ctx/src/pkg/main.py").exists());
    std::fs::remove_file(d.join("src/pkg/main.py")).unwrap();
    std::fs::write(d.join("src/pkg/other.py"), "x = 1\n").unwrap();
    std::fs::write(d.join("ctx/planted.txt"), "not from the spec").unwrap();
    let before = listing(&d.join("ctx"));

    for builder in ["default", "envd"] {
        let out = imagespec(d)
            .args(["render", "spec.toml", "-o", "ctx", "--builder", builder])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{builder}: {stderr}");
        assert!(
            stderr.contains("ctx is not empty") && stderr.contains("--replace"),
            "{builder}: {stderr}"
        );
        assert_eq!(listing(&d.join("ctx")), before, "{builder}: untouched");
    }
    // An empty directory is fine.
    std::fs::create_dir(d.join("empty")).unwrap();
    imagespec(d)
        .args(["render", "spec.toml", "-o", "empty"])
        .assert()
        .success();
}

/// `--replace` empties the directory first: the new context holds exactly what the spec
/// says, for the Dockerfile and the envd renderer.
#[test]
fn render_replace_empties_the_directory_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    project(d);
    for builder in ["default", "envd"] {
        let out = d.join(format!("ctx-{builder}"));
        imagespec(d)
            .args(["render", "spec.toml", "--builder", builder, "-o"])
            .arg(&out)
            .assert()
            .success();
        let fresh = listing(&out);
        std::fs::write(out.join("planted.txt"), "x").unwrap();
        std::fs::create_dir_all(out.join("old/deep")).unwrap();
        std::fs::write(out.join("old/deep/stale.py"), "x").unwrap();
        imagespec(d)
            .args([
                "render",
                "spec.toml",
                "--builder",
                builder,
                "--replace",
                "-o",
            ])
            .arg(&out)
            .assert()
            .success();
        assert_eq!(listing(&out), fresh, "{builder}");
    }
}

/// `--replace` never deletes what the spec reads: rendering into the project itself (or
/// into `source_root`) is refused, and nothing is removed.
#[test]
fn render_replace_refuses_a_directory_holding_the_spec_or_its_sources() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    project(d);
    let before = listing(d);
    for target in [".", "src", "src/pkg"] {
        let out = imagespec(d)
            .args(["render", "spec.toml", "--replace", "-o", target])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{target}: {stderr}");
        assert!(stderr.contains("--replace would delete"), "{stderr}");
        assert_eq!(listing(d), before, "{target}: nothing removed");
    }
}

/// The tag with a damaged digest cache entry (zeros after a crash, a truncated write,
/// garbage, a well-formed entry with another digest) is the tag computed without a cache,
/// and the entry is written anew.
#[test]
fn a_damaged_digest_cache_gives_the_correct_tag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    project(d);
    let cache = d.join("cache");
    // Files changed within the last second are not cached (git's racy rule): age them.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let tag = |cached: bool| {
        let mut cmd = Command::cargo_bin("imagespec").unwrap();
        cmd.current_dir(d).args(["tag", "spec.toml"]);
        if cached {
            cmd.env("IMAGESPEC_CACHE_DIR", &cache)
                .env_remove("IMAGESPEC_NO_CACHE");
        } else {
            cmd.env("IMAGESPEC_NO_CACHE", "1");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let expected = tag(false);
    assert_eq!(tag(true), expected);
    let entries: Vec<_> = std::fs::read_dir(cache.join("tree-digests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "one cache entry: {entries:?}");
    let entry = &entries[0];
    let good = std::fs::read(entry).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    let other_digest = text.replacen(
        text.lines().nth(1).unwrap(),
        "0123456789abcdef0123456789abcdef",
        1,
    );
    let damaged: Vec<(&str, Vec<u8>)> = vec![
        ("32 NUL bytes", vec![0u8; 32]),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("garbage", b"\xff\xfe not a cache entry \x00\x01".to_vec()),
        ("empty", Vec::new()),
        (
            "version 1 format",
            b"0123456789abcdef0123456789abcdef".to_vec(),
        ),
        ("another digest", other_digest.into_bytes()),
    ];
    for (what, bytes) in damaged {
        std::fs::write(entry, &bytes).unwrap();
        assert_eq!(tag(true), expected, "{what}");
        assert_eq!(
            std::fs::read(entry).unwrap(),
            good,
            "{what}: the entry is written anew"
        );
    }
    let left: Vec<_> = std::fs::read_dir(cache.join("tree-digests"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "no temporary files left: {left:?}");
}

/// `render -o` (under umask 022, set in the child) copies a sparse source file with its
/// holes — a 64 MiB file holding 8 KiB stays a few KiB on disk, not 64 MiB — and with its
/// bytes; source files keep their modes, the files imagespec writes are 0644.
#[test]
fn render_keeps_holes_and_modes() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    project(d);
    let image = d.join("src/pkg/disk.img");
    let file = std::fs::File::create(&image).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[1u8; 4096], 0).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[2u8; 4096], 32 << 20).unwrap();
    file.set_len(64 << 20).unwrap();
    drop(file);
    std::fs::write(d.join("src/pkg/run.sh"), "#!/bin/sh\n").unwrap();
    for (name, mode) in [("run.sh", 0o755), ("main.py", 0o640)] {
        let path = d.join("src/pkg").join(name);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 022; exec \"$0\" \"$@\"")
        .arg(assert_cmd::cargo::cargo_bin("imagespec"))
        .args(["render", "spec.toml", "-o", "ctx"])
        .current_dir(d)
        .env("IMAGESPEC_NO_CACHE", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let copied = d.join("ctx/src/pkg/disk.img");
    let meta = std::fs::metadata(&copied).unwrap();
    assert_eq!(meta.len(), 64 << 20);
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "{} bytes on disk for 8 KiB of data",
        meta.blocks() * 512
    );
    assert!(std::fs::read(&copied).unwrap() == std::fs::read(&image).unwrap());
    let mode = |rel: &str| std::fs::metadata(d.join("ctx").join(rel)).unwrap().mode() & 0o7777;
    assert_eq!(mode("src/pkg/run.sh"), 0o755);
    assert_eq!(mode("src/pkg/main.py"), 0o640);
    assert_eq!(mode("Dockerfile"), 0o644);
}
