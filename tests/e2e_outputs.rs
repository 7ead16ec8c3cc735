//! End-to-end, what a run leaves behind (issue 10): `--output` killed (SIGTERM, SIGKILL) in
//! the middle and run again gives a valid layout or archive with the other images kept and
//! no temporary files; a corrupted blob in a layout is replaced; concurrent builds sharing a
//! new dependency image all succeed with the same digests; `TMPDIR` inside `source_root`;
//! `--no-fast-path` streams its context. Output roots (issue 20): links planted in a layout
//! are refused or replaced, files get 0644 under umask 022, sparse files a warning. Real
//! dockerd and registry (`scripts/e2e/up.sh`), checked from outside with skopeo, umoci and
//! /proc. Without the services these tests fail under `CI`, and say why and pass elsewhere.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process};
use std::time::{Duration, Instant};

mod common;

use common::e2e::{
    DOCKER, Running, Services, inspect_json, layout_index, output, ref_name, run_id, services, sh,
    skopeo_inspect, spawn, umoci_unpack, write_spec,
};

/// A project whose dependency image is new to the registry (`run` enters its key).
fn project(d: &Path, env: &Services, name: &str, run: &str) -> PathBuf {
    let proj = d.join(name);
    std::fs::create_dir_all(proj.join("src/pkg")).expect("mkdir");
    std::fs::write(proj.join("src/pkg/main.py"), "print('v1')\n").expect("main.py");
    std::fs::write(proj.join("src/pkg/__init__.py"), "").expect("__init__.py");
    write_spec(
        &proj,
        env,
        &format!("h-atomic-{name}"),
        &format!(
            "env = {{ RUN_ID = \"{run}\" }}\nsource_root = \"src\"\nsource_copy_mode = \"all\""
        ),
    );
    proj
}

/// Removes the tags a test left in dockerd (dependency images, images built without
/// pushing) of its repository, when the test ends, also by a failed assertion.
struct DaemonTags(&'static str);

impl Drop for DaemonTags {
    fn drop(&mut self) {
        let repository = format!("localhost:5000/h-atomic-{}", self.0);
        let Ok(listed) = Process::new(DOCKER)
            .args([
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                &repository,
            ])
            .output()
        else {
            return;
        };
        for tag in String::from_utf8_lossy(&listed.stdout).lines() {
            let _ = Process::new(DOCKER).args(["rmi", tag]).output();
        }
    }
}

/// A test's ground: a scratch directory with `tmp` in it (the test's `TMPDIR`, its cache
/// beside), and [`DaemonTags`] for the repository `h-atomic-NAME`.
struct Ground {
    // Declared first, dropped first: the daemon's tags go before the directory.
    _tags: DaemonTags,
    dir: tempfile::TempDir,
    tmp: PathBuf,
}

impl Ground {
    fn new(name: &'static str) -> Ground {
        let dir = tempfile::tempdir().expect("tempdir");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).expect("mkdir tmp");
        Ground {
            _tags: DaemonTags(name),
            dir,
            tmp,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// `imagespec` for `proj`, with this test's own `TMPDIR` and cache directory.
fn imagespec(proj: &Path, tmp: &Path) -> Process {
    let mut cmd = Process::new(assert_cmd::cargo::cargo_bin("imagespec"));
    cmd.current_dir(proj)
        .env("TMPDIR", tmp)
        .env("IMAGESPEC_CACHE_DIR", tmp.join("../cache"))
        .env_remove("IMAGESPEC_NO_CACHE");
    cmd
}

/// Edits the project until its tag is a valid OCI layout ref name (then the layout names
/// the image by its tag, not `latest`, and two versions live side by side).
fn edit_until_ref_name_is_the_tag(proj: &Path, content: &str) -> Value {
    for n in 0..40 {
        std::fs::write(proj.join("src/pkg/main.py"), format!("{content}# {n}\n")).expect("edit");
        let v = inspect_json(proj, "spec.toml");
        let tag = v["tag"].as_str().expect("tag");
        if tag.chars().all(|c| c.is_ascii_alphanumeric()) {
            return v;
        }
    }
    panic!("no alphanumeric tag in 40 tries");
}

/// Scratch entries (`.imagespec-tmp-*`) in `dir`.
fn scratch_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".imagespec-tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Kills `child` with `signal` once a scratch entry appears in `watch` (the output is being
/// written); returns whether it was caught in the act.
fn kill_while_writing(child: &mut Child, watch: &Path, signal: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline && child.try_wait().expect("wait").is_none() {
        if !scratch_in(watch).is_empty() {
            let status = Process::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status()
                .expect("kill");
            assert!(status.success());
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// The images of an OCI layout, by ref name.
fn layout_refs(layout: &Path) -> Vec<String> {
    let mut refs: Vec<String> = layout_index(layout)["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| ref_name(m).to_string())
        .collect();
    refs.sort();
    refs
}

/// `umoci unpack` (which checks every blob's digest) of `layout:ref`, then the file.
fn unpacked_main(layout: &Path, reference: &str, scratch: &Path) -> String {
    let bundle = scratch.join(format!("bundle-{reference}"));
    let _ = std::fs::remove_dir_all(&bundle);
    let rootfs = umoci_unpack(&format!("{}:{reference}", layout.display()), &bundle);
    std::fs::read_to_string(rootfs.join("root/pkg/main.py")).expect("unpacked main.py")
}

/// `--output oci:DIR` killed while writing, with SIGTERM (removes its temporary files, exit
/// 143) and SIGKILL (leaves them; the next run removes them), a blob corrupted in the
/// layout, then a complete run: the layout is valid (umoci checks every digest, skopeo
/// reads it), the image written before is still in it, and no temporary file is left in
/// the layout or in TMPDIR.
#[test]
fn killed_oci_layout_output_is_repaired_by_the_next_run() {
    let Some(env) = services() else { return };
    let ground = Ground::new("layout");
    let (d, tmp) = (ground.path(), &ground.tmp);
    let proj = project(d, &env, "layout", &run_id());
    let layout = d.join("layout");
    let target = format!("oci:{}", layout.display());

    // v1, complete: the image that must survive what follows.
    let v1 = edit_until_ref_name_is_the_tag(&proj, "print('v1')\n");
    output(imagespec(&proj, tmp).args(["build", "spec.toml", "--output", &target]));
    assert_eq!(layout_refs(&layout), [v1["tag"].as_str().unwrap()]);

    // v2 carries a big file: writing it takes long enough to be cut.
    sh(&proj, "head -c 150000000 /dev/urandom > src/pkg/model.bin");
    let v2 = edit_until_ref_name_is_the_tag(&proj, "print('v2')\n");

    let mut run = spawn(imagespec(&proj, tmp).args(["build", "spec.toml", "--output", &target]));
    assert!(
        kill_while_writing(run.child(), &layout, "TERM"),
        "the write was never seen in progress"
    );
    let out = run.wait();
    assert_eq!(
        out.status.code(),
        Some(143),
        "SIGTERM: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(scratch_in(&layout).is_empty(), "{:?}", scratch_in(&layout));
    assert!(scratch_in(tmp).is_empty(), "{:?}", scratch_in(tmp));
    assert_eq!(layout_refs(&layout), [v1["tag"].as_str().unwrap()]);

    let mut run = spawn(imagespec(&proj, tmp).args(["build", "spec.toml", "--output", &target]));
    assert!(kill_while_writing(run.child(), &layout, "KILL"));
    let out = run.wait();
    assert_eq!(out.status.code(), None, "killed by SIGKILL");
    assert!(
        !scratch_in(tmp).is_empty(),
        "SIGKILL leaves the source layer in TMPDIR (the next run must remove it)"
    );

    // A blob of v1 that v2 shares (a base layer) is damaged: the next run must notice.
    let manifest_of_v1: Value = {
        let index: Value =
            serde_json::from_str(&std::fs::read_to_string(layout.join("index.json")).unwrap())
                .unwrap();
        let digest = index["manifests"][0]["digest"].as_str().unwrap();
        let hex = digest.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap()
    };
    let shared = manifest_of_v1["layers"][0]["digest"].as_str().unwrap();
    let shared_path = layout
        .join("blobs/sha256")
        .join(shared.strip_prefix("sha256:").unwrap());
    let size = std::fs::metadata(&shared_path).unwrap().len();
    std::fs::write(&shared_path, vec![0u8; size as usize]).unwrap();

    let out = imagespec(&proj, tmp)
        .args(["build", "spec.toml", "--output", &target])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("replacing it"), "{stderr}");
    assert!(scratch_in(&layout).is_empty(), "{:?}", scratch_in(&layout));
    assert!(scratch_in(tmp).is_empty(), "{:?}", scratch_in(tmp));

    let (t1, t2) = (v1["tag"].as_str().unwrap(), v2["tag"].as_str().unwrap());
    let mut both = vec![t1.to_string(), t2.to_string()];
    both.sort();
    assert_eq!(layout_refs(&layout), both, "v1 is kept beside v2");
    assert!(unpacked_main(&layout, t1, d).starts_with("print('v1')"));
    assert!(unpacked_main(&layout, t2, d).starts_with("print('v2')"));
    let seen = output(Process::new("skopeo").args([
        "inspect",
        "--config",
        &format!("oci:{}:{t2}", layout.display()),
    ]));
    assert!(seen.contains(v2["id"].as_str().unwrap()), "{seen}");
}

/// `--output oci-archive:FILE` killed while writing: the archive there before is intact
/// (SIGTERM), the staging folder and temporary files go (now, or with the next run after
/// SIGKILL), and a complete run replaces the archive.
#[test]
fn killed_archive_output_keeps_the_old_archive_and_leaves_nothing() {
    let Some(env) = services() else { return };
    let ground = Ground::new("archive");
    let (d, tmp) = (ground.path(), &ground.tmp);
    let out_dir = d.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let proj = project(d, &env, "archive", &run_id());
    let archive = out_dir.join("image.tar");
    let target = format!("oci-archive:{}", archive.display());

    output(imagespec(&proj, tmp).args(["build", "spec.toml", "--output", &target]));
    let old = std::fs::read(&archive).expect("archive v1");

    sh(&proj, "head -c 150000000 /dev/urandom > src/pkg/model.bin");
    std::fs::write(proj.join("src/pkg/main.py"), "print('v2')\n").unwrap();
    let v2 = inspect_json(&proj, "spec.toml");

    let mut run = spawn(imagespec(&proj, tmp).args(["build", "spec.toml", "--output", &target]));
    assert!(kill_while_writing(run.child(), &out_dir, "TERM"));
    let out = run.wait();
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(&archive).expect("archive") == old,
        "an interrupted run leaves the old archive as it was"
    );
    assert!(
        scratch_in(&out_dir).is_empty(),
        "{:?}",
        scratch_in(&out_dir)
    );
    assert!(scratch_in(tmp).is_empty(), "{:?}", scratch_in(tmp));

    let mut run = spawn(imagespec(&proj, tmp).args(["build", "spec.toml", "--output", &target]));
    assert!(kill_while_writing(run.child(), &out_dir, "KILL"));
    run.wait();
    assert!(std::fs::read(&archive).expect("archive") == old);
    assert!(
        !scratch_in(&out_dir).is_empty(),
        "SIGKILL leaves the staging"
    );

    output(imagespec(&proj, tmp).args(["build", "spec.toml", "--output", &target]));
    assert!(
        scratch_in(&out_dir).is_empty(),
        "{:?}",
        scratch_in(&out_dir)
    );
    assert!(scratch_in(tmp).is_empty(), "{:?}", scratch_in(tmp));
    let names: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["image.tar"]);
    let seen = output(Process::new("skopeo").args([
        "inspect",
        "--config",
        &format!("oci-archive:{}", archive.display()),
    ]));
    assert!(seen.contains(v2["id"].as_str().unwrap()), "{seen}");
}

/// The manifest digest a fast-path build reports ("pushed IMAGE (sha256:…)").
fn reported_digest(log: &str, image: &str) -> Option<String> {
    let start = log.find(&format!("pushed {image} ("))? + format!("pushed {image} (").len();
    Some(log[start..].split(')').next()?.to_string())
}

/// Three builds at once of specs sharing a dependency image the registry does not have
/// (two of the same spec, one with other source files): all succeed, the dependency image
/// is built once, the two builds of one spec report the digest the registry has, and the
/// third image sits on the same dependency layers.
#[test]
fn concurrent_builds_sharing_a_new_dependency_image_agree() {
    let Some(env) = services() else { return };
    let ground = Ground::new("concurrent");
    let (d, tmp) = (ground.path(), &ground.tmp);
    let run = run_id();
    let same_a = project(&d.join("a"), &env, "concurrent", &run);
    let same_b = project(&d.join("b"), &env, "concurrent", &run);
    let other = project(&d.join("c"), &env, "concurrent", &run);
    std::fs::write(other.join("src/pkg/main.py"), "print('other')\n").unwrap();
    let image = inspect_json(&same_a, "spec.toml")["image"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(inspect_json(&same_b, "spec.toml")["image"], image.as_str());
    let other_image = inspect_json(&other, "spec.toml")["image"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(other_image, image);

    let runs: Vec<Running> = [&same_a, &same_b, &other]
        .iter()
        .map(|p| spawn(imagespec(p, tmp).args(["build", "spec.toml"])))
        .collect();
    let logs: Vec<String> = runs
        .into_iter()
        .map(|r| {
            let out = r.wait();
            let log = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{log}");
            log
        })
        .collect();
    let built = logs
        .iter()
        .flat_map(|l| l.lines())
        .filter(|l| l.contains("dependency image") && l.contains("not found, building it"))
        .count();
    assert_eq!(built, 1, "the dependency image is built once: {logs:#?}");

    let digest = skopeo_inspect(&[], &image)["Digest"]
        .as_str()
        .unwrap()
        .to_string();
    for log in &logs[..2] {
        // A build that started after the other had pushed the image finds it instead.
        if reported_digest(log, &image).is_none() && log.contains("exists, skipped") {
            continue;
        }
        assert_eq!(
            reported_digest(log, &image).as_deref(),
            Some(digest.as_str()),
            "{log}"
        );
    }
    let layers = |image: &str| -> Vec<String> {
        skopeo_inspect(&[], image)["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect()
    };
    let (mine, theirs) = (layers(&image), layers(&other_image));
    assert_eq!(mine.len(), theirs.len());
    assert_eq!(
        mine[..mine.len() - 1],
        theirs[..theirs.len() - 1],
        "one dependency image under both"
    );
    assert_ne!(mine.last(), theirs.last(), "different source layers");
}

/// With `TMPDIR` inside `source_root`, a fast-path build (whose source layer is written to
/// TMPDIR while the tag is checked again) succeeds, with the tag computed without it.
#[test]
fn tmpdir_inside_source_root_works() {
    let Some(env) = services() else { return };
    let ground = Ground::new("tmpdir");
    let proj = project(ground.path(), &env, "tmpdir", &run_id());
    output(imagespec(&proj, &ground.tmp).args(["build", "spec.toml"]));

    std::fs::write(proj.join("src/pkg/main.py"), "print('v2')\n").unwrap();
    let inside = proj.join("src/tmp");
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::write(inside.join("keep.txt"), "a source file").unwrap();
    let expected = inspect_json(&proj, "spec.toml")["image"]
        .as_str()
        .unwrap()
        .to_string();
    let out = imagespec(&proj, &inside)
        .args(["build", "spec.toml"])
        .output()
        .expect("run");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);
    assert!(log.contains("appending the source"), "the fast path: {log}");
    assert!(scratch_in(&inside).is_empty());
    skopeo_inspect(&[], &expected);
}

/// The peak memory of a process, read from /proc while it runs (VmHWM only grows).
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `--no-fast-path` sends the context as it reads it: a 300 MB source file does not make
/// a 300 MB (or, as before, 900 MB) process.
#[test]
fn no_fast_path_streams_the_context() {
    let Some(env) = services() else { return };
    let ground = Ground::new("stream");
    let (d, tmp) = (ground.path(), &ground.tmp);
    let proj = project(d, &env, "stream", &run_id());
    sh(&proj, "head -c 300000000 /dev/urandom > src/pkg/model.bin");
    let image = inspect_json(&proj, "spec.toml")["image"]
        .as_str()
        .unwrap()
        .to_string();
    let mut run =
        spawn(imagespec(&proj, tmp).args(["build", "spec.toml", "--no-fast-path", "--no-push"]));
    let pid = run.child().id();
    let mut peak = 0;
    while run.child().try_wait().expect("wait").is_none() {
        peak = peak.max(peak_kib(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = run.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = output(Process::new(DOCKER).args([
        "run",
        "--rm",
        "--entrypoint",
        "stat",
        &image,
        "-c",
        "%s",
        "/root/pkg/model.bin",
    ]));
    assert_eq!(size.trim(), "300000000");
    assert!(
        peak > 0 && peak < 150_000,
        "peak memory {peak} KiB for a 300 MB context"
    );
}

/// `imagespec build spec.toml --output TARGET` for `proj`, started by `sh` under umask 022
/// (the usual one, set here so that the modes checked do not depend on the test runner's).
fn build_to(proj: &Path, tmp: &Path, target: &str) -> std::process::Output {
    Process::new("sh")
        .arg("-c")
        .arg("umask 022; exec \"$0\" \"$@\"")
        .arg(assert_cmd::cargo::cargo_bin("imagespec"))
        .args(["build", "spec.toml", "--output", target])
        .current_dir(proj)
        .env("TMPDIR", tmp)
        .env("IMAGESPEC_CACHE_DIR", tmp.join("../cache"))
        .env_remove("IMAGESPEC_NO_CACHE")
        .output()
        .expect("run")
}

/// [`build_to`], which must succeed; its stderr.
#[track_caller]
fn built_to(proj: &Path, tmp: &Path, target: &str) -> String {
    let out = build_to(proj, tmp, target);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{target}: {stderr}");
    stderr
}

/// skopeo reads `image` (`oci:…`, `oci-archive:…`, `docker-archive:…`) and finds its layers.
#[track_caller]
fn assert_skopeo_reads(image: &str) {
    let seen = output(Process::new("skopeo").args(["inspect", image]));
    assert!(seen.contains("Layers"), "{seen}");
}

/// A symbolic link at `link` (its parent made) to `original`.
fn plant_link(original: &Path, link: &Path) {
    std::fs::create_dir_all(link.parent().expect("parent")).expect("mkdir");
    std::os::unix::fs::symlink(original, link).expect("symlink");
}

/// The ground and project of the output-root tests, `None` without the services: the
/// project's dependency image is the same from run to run (found in the registry after the
/// first), the subject being the writer.
fn roots() -> Option<(Ground, PathBuf)> {
    let env = services()?;
    let ground = Ground::new("roots");
    let proj = project(ground.path(), &env, "roots", "output-roots");
    Some((ground, proj))
}

/// The permission bits of `path` itself (a link is not followed).
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).expect("stat").mode() & 0o7777
}

fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// An OCI layout someone prepared with links (docs/security.md): `blobs` or
/// `blobs/sha256` a link to another directory is refused with exit 2, naming the link and
/// its target, and nothing lands there (the blobs went through such a link before); a link
/// where `index.json` or `oci-layout` goes is replaced by the file, and what it points at is
/// neither read into the layout nor written.
#[test]
fn planted_links_in_an_oci_layout_are_refused_or_replaced() {
    let Some((ground, proj)) = roots() else {
        return;
    };
    let (d, tmp) = (ground.path(), &ground.tmp);

    let planted = [("blobs-link", "blobs"), ("sha256-link", "blobs/sha256")];
    for (name, link) in planted {
        let layout = d.join(name);
        let victim = d.join(format!("victim-{name}"));
        std::fs::create_dir_all(&victim).unwrap();
        let at = layout.join(link);
        plant_link(&victim, &at);
        let out = build_to(&proj, tmp, &format!("oci:{}", layout.display()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{link}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "{} is a symbolic link (to {})",
                at.display(),
                victim.display()
            )),
            "{link}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(
            names_in(&victim),
            Vec::<String>::new(),
            "{link}: nothing written through it"
        );
        assert!(
            is_link(&at),
            "{link}: the link is left for the user to look at"
        );
    }

    // Links where files go: replaced, their targets untouched and not copied in.
    let layout = d.join("file-links");
    let victim_index = d.join("victim-index.json");
    let victim_layout = d.join("victim-oci-layout");
    let secret = r#"{"manifests": [], "auths": {"registry": "s3cret"}}"#;
    std::fs::write(&victim_index, secret).unwrap();
    std::fs::write(&victim_layout, "keep\n").unwrap();
    plant_link(&victim_index, &layout.join("index.json"));
    plant_link(&victim_layout, &layout.join("oci-layout"));
    built_to(&proj, tmp, &format!("oci:{}", layout.display()));
    assert_eq!(std::fs::read_to_string(&victim_index).unwrap(), secret);
    assert_eq!(std::fs::read_to_string(&victim_layout).unwrap(), "keep\n");
    for file in ["index.json", "oci-layout"] {
        assert!(!is_link(&layout.join(file)), "{file} is a file now");
    }
    let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
    assert!(
        !index.contains("s3cret"),
        "the link's target was read in: {index}"
    );
    assert_skopeo_reads(&format!(
        "oci:{}:{}",
        layout.display(),
        ref_name(&layout_index(&layout)["manifests"][0])
    ));
}

/// Files written to an OCI layout or an archive get the mode `docker save` and `skopeo copy`
/// give theirs, 0644 under umask 022 (not a temporary file's 0600), directories 0755; an
/// archive written over an existing 0644 one stays 0644, and one written where a link is
/// replaces the link (as `docker save -o` does), leaving what it pointed at. A sparse source
/// file is named in a warning with its size: the layer holds its holes as zeros.
#[test]
fn written_files_get_the_usual_modes_and_sparse_files_a_warning() {
    let Some((ground, proj)) = roots() else {
        return;
    };
    let (d, tmp) = (ground.path(), &ground.tmp);
    // 8 MiB, of which 4 KiB is data.
    let holes = std::fs::File::create(proj.join("src/pkg/holes.img")).unwrap();
    std::io::Write::write_all(&mut &holes, &[7u8; 4096]).unwrap();
    holes.set_len(8 << 20).unwrap();

    let layout = d.join("layout");
    let stderr = built_to(&proj, tmp, &format!("oci:{}", layout.display()));
    for dir in [&layout, &layout.join("blobs"), &layout.join("blobs/sha256")] {
        assert_eq!(mode_of(dir), 0o755, "{}", dir.display());
    }
    let mut files = vec![layout.join("index.json"), layout.join("oci-layout")];
    for blob in names_in(&layout.join("blobs/sha256")) {
        files.push(layout.join("blobs/sha256").join(blob));
    }
    assert!(files.len() > 4, "{files:?}");
    for file in &files {
        assert_eq!(mode_of(file), 0o644, "{}", file.display());
    }

    // An archive over an existing 0644 one, and one where a link is.
    let out_dir = d.join("out");
    let archive = out_dir.join("image.tar");
    let victim = d.join("victim.tar");
    std::fs::write(&victim, "keep").unwrap();
    let linked = out_dir.join("linked.tar");
    plant_link(&victim, &linked);
    std::fs::write(&archive, "an older archive").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&archive, std::fs::Permissions::from_mode(0o644)).unwrap();
    for target in [
        format!("oci-archive:{}", archive.display()),
        format!("docker-archive:{}", linked.display()),
    ] {
        built_to(&proj, tmp, &target);
        assert_skopeo_reads(&target);
    }
    assert_eq!(
        mode_of(&archive),
        0o644,
        "rewritten, the archive keeps 0644"
    );
    assert!(!is_link(&linked), "the link is replaced by the archive");
    assert_eq!(mode_of(&linked), 0o644);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    assert_eq!(names_in(&out_dir), ["image.tar", "linked.tar"]);
    // Checked last: the modes above are what went wrong before; the warning is new.
    assert!(
        stderr.contains("holes.img is a sparse file of 8.00 MiB (4.00 KiB on disk)")
            && stderr.contains("the image layer holds all 8.00 MiB"),
        "{stderr}"
    );
}
