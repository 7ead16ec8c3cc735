//! End-to-end, what a run leaves behind (issue 10): `--output` killed (SIGTERM, SIGKILL) in
//! the middle and run again gives a valid layout or archive with the other images kept and
//! no temporary files; a corrupted blob in a layout is replaced; concurrent builds sharing a
//! new dependency image all succeed with the same digests; `TMPDIR` inside `source_root`;
//! `--no-fast-path` streams its context. Real dockerd and registry (`scripts/e2e/up.sh`),
//! checked from outside with skopeo, umoci and /proc. Without the services these tests fail
//! under `CI`, and say why and pass elsewhere.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

const DOCKER: &str = "/usr/bin/docker";

struct Env {
    registry: String,
    base_python: String,
    uv_image: String,
}

/// The harness's services, or `None` (and a note) when they are not running outside CI.
fn services() -> Option<Env> {
    let file =
        std::env::var("IMAGESPEC_E2E_ENV").unwrap_or_else(|_| "/tmp/imagespec-e2e/e2e.env".into());
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let get = |key: &str| {
        std::env::var(key).ok().or_else(|| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
        })
    };
    let up = get("IMAGESPEC_E2E_REGISTRY").is_some_and(|r| {
        Process::new("curl")
            .args(["-sf", &format!("http://{r}/v2/")])
            .output()
            .is_ok_and(|o| o.status.success())
    }) && Process::new(DOCKER)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !up {
        assert!(
            std::env::var_os("CI").is_none(),
            "e2e services are not running ({file}); scripts/test.sh starts them"
        );
        eprintln!(
            "e2e services not running: start them with scripts/e2e/up.sh && scripts/e2e/base-images.sh"
        );
        return None;
    }
    Some(Env {
        registry: "localhost:5000".into(),
        base_python: get("IMAGESPEC_E2E_BASE_PYTHON")
            .unwrap_or_else(|| "localhost:5000/debian-python:bookworm".into()),
        uv_image: get("IMAGESPEC_E2E_UV_IMAGE").unwrap_or_else(|| "localhost:5000/uv:0.5".into()),
    })
}

/// A value unique to this run: the dependency image of each test is new.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

fn sh(dir: &Path, script: &str) {
    let status = Process::new("bash")
        .args(["-euc", script])
        .current_dir(dir)
        .status()
        .expect("bash");
    assert!(status.success(), "{script}");
}

fn output(cmd: &mut Process) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A project whose dependency image is new to the registry (`run` enters its key).
fn project(d: &Path, env: &Env, name: &str, run: &str) -> PathBuf {
    let proj = d.join(name);
    std::fs::create_dir_all(proj.join("src/pkg")).expect("mkdir");
    std::fs::write(proj.join("src/pkg/main.py"), "print('v1')\n").expect("main.py");
    std::fs::write(proj.join("src/pkg/__init__.py"), "").expect("__init__.py");
    let spec = format!(
        r#"
name = "h-atomic-{name}"
registry = "{registry}"
base_image = "{base}"
env = {{ RUN_ID = "{run}" }}
source_root = "src"
source_copy_mode = "all"
builder_config = {{ uv_image = "{uv}" }}
builder_options = {{ add_flytekit = false }}
"#,
        registry = env.registry,
        base = env.base_python,
        uv = env.uv_image,
    );
    std::fs::write(proj.join("spec.toml"), spec).expect("spec");
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

/// `imagespec` for `proj`, with this test's own `TMPDIR` and cache directory.
fn imagespec(proj: &Path, tmp: &Path) -> Process {
    let mut cmd = Process::new(assert_cmd::cargo::cargo_bin("imagespec"));
    cmd.current_dir(proj)
        .env("TMPDIR", tmp)
        .env("IMAGESPEC_CACHE_DIR", tmp.join("../cache"))
        .env_remove("IMAGESPEC_NO_CACHE");
    cmd
}

fn inspect(proj: &Path) -> Value {
    let out = Command::cargo_bin("imagespec")
        .expect("binary")
        .current_dir(proj)
        .env("IMAGESPEC_NO_CACHE", "1")
        .args(["inspect", "spec.toml", "--json"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Edits the project until its tag is a valid OCI layout ref name (then the layout names
/// the image by its tag, not `latest`, and two versions live side by side).
fn edit_until_ref_name_is_the_tag(proj: &Path, content: &str) -> Value {
    for n in 0..40 {
        std::fs::write(proj.join("src/pkg/main.py"), format!("{content}# {n}\n")).expect("edit");
        let v = inspect(proj);
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

/// A child process that is killed when the test ends early (a failed assertion).
struct Running(Option<Child>);

impl Running {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }
    fn wait(mut self) -> std::process::Output {
        self.0
            .take()
            .expect("running")
            .wait_with_output()
            .expect("wait")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(cmd: &mut Process) -> Running {
    Running(Some(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("imagespec"),
    ))
}

/// The images of an OCI layout, by ref name.
fn layout_refs(layout: &Path) -> Vec<String> {
    let index: Value = serde_json::from_str(
        &std::fs::read_to_string(layout.join("index.json")).expect("index.json"),
    )
    .expect("json");
    let mut refs: Vec<String> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .expect("ref name")
                .to_string()
        })
        .collect();
    refs.sort();
    refs
}

/// `umoci unpack` (which checks every blob's digest) of `layout:ref`, then the file.
fn unpacked_main(layout: &Path, reference: &str, scratch: &Path) -> String {
    let bundle = scratch.join(format!("bundle-{reference}"));
    let _ = std::fs::remove_dir_all(&bundle);
    output(Process::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:{reference}", layout.display()),
        bundle.to_str().unwrap(),
    ]));
    std::fs::read_to_string(bundle.join("rootfs/root/pkg/main.py")).expect("unpacked main.py")
}

/// `--output oci:DIR` killed while writing, with SIGTERM (removes its temporary files, exit
/// 143) and SIGKILL (leaves them; the next run removes them), a blob corrupted in the
/// layout, then a complete run: the layout is valid (umoci checks every digest, skopeo
/// reads it), the image written before is still in it, and no temporary file is left in
/// the layout or in TMPDIR.
#[test]
fn killed_oci_layout_output_is_repaired_by_the_next_run() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let tmp = d.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let _tags = DaemonTags("layout");
    let proj = project(d, &env, "layout", &run_id());
    let layout = d.join("layout");
    let target = format!("oci:{}", layout.display());

    // v1, complete: the image that must survive what follows.
    let v1 = edit_until_ref_name_is_the_tag(&proj, "print('v1')\n");
    output(imagespec(&proj, &tmp).args(["build", "spec.toml", "--output", &target]));
    assert_eq!(layout_refs(&layout), [v1["tag"].as_str().unwrap()]);

    // v2 carries a big file: writing it takes long enough to be cut.
    sh(&proj, "head -c 150000000 /dev/urandom > src/pkg/model.bin");
    let v2 = edit_until_ref_name_is_the_tag(&proj, "print('v2')\n");

    let mut run = spawn(imagespec(&proj, &tmp).args(["build", "spec.toml", "--output", &target]));
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
    assert!(scratch_in(&tmp).is_empty(), "{:?}", scratch_in(&tmp));
    assert_eq!(layout_refs(&layout), [v1["tag"].as_str().unwrap()]);

    let mut run = spawn(imagespec(&proj, &tmp).args(["build", "spec.toml", "--output", &target]));
    assert!(kill_while_writing(run.child(), &layout, "KILL"));
    let out = run.wait();
    assert_eq!(out.status.code(), None, "killed by SIGKILL");
    assert!(
        !scratch_in(&tmp).is_empty(),
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

    let out = imagespec(&proj, &tmp)
        .args(["build", "spec.toml", "--output", &target])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("replacing it"), "{stderr}");
    assert!(scratch_in(&layout).is_empty(), "{:?}", scratch_in(&layout));
    assert!(scratch_in(&tmp).is_empty(), "{:?}", scratch_in(&tmp));

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
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let tmp = d.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out_dir = d.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let _tags = DaemonTags("archive");
    let proj = project(d, &env, "archive", &run_id());
    let archive = out_dir.join("image.tar");
    let target = format!("oci-archive:{}", archive.display());

    output(imagespec(&proj, &tmp).args(["build", "spec.toml", "--output", &target]));
    let old = std::fs::read(&archive).expect("archive v1");

    sh(&proj, "head -c 150000000 /dev/urandom > src/pkg/model.bin");
    std::fs::write(proj.join("src/pkg/main.py"), "print('v2')\n").unwrap();
    let v2 = inspect(&proj);

    let mut run = spawn(imagespec(&proj, &tmp).args(["build", "spec.toml", "--output", &target]));
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
    assert!(scratch_in(&tmp).is_empty(), "{:?}", scratch_in(&tmp));

    let mut run = spawn(imagespec(&proj, &tmp).args(["build", "spec.toml", "--output", &target]));
    assert!(kill_while_writing(run.child(), &out_dir, "KILL"));
    run.wait();
    assert!(std::fs::read(&archive).expect("archive") == old);
    assert!(
        !scratch_in(&out_dir).is_empty(),
        "SIGKILL leaves the staging"
    );

    output(imagespec(&proj, &tmp).args(["build", "spec.toml", "--output", &target]));
    assert!(
        scratch_in(&out_dir).is_empty(),
        "{:?}",
        scratch_in(&out_dir)
    );
    assert!(scratch_in(&tmp).is_empty(), "{:?}", scratch_in(&tmp));
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

fn registry_manifest(image: &str) -> Value {
    let out = output(Process::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]));
    serde_json::from_str(&out).expect("skopeo json")
}

/// Three builds at once of specs sharing a dependency image the registry does not have
/// (two of the same spec, one with other source files): all succeed, the dependency image
/// is built once, the two builds of one spec report the digest the registry has, and the
/// third image sits on the same dependency layers.
#[test]
fn concurrent_builds_sharing_a_new_dependency_image_agree() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let tmp = d.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let _tags = DaemonTags("concurrent");
    let run = run_id();
    let same_a = project(&d.join("a"), &env, "concurrent", &run);
    let same_b = project(&d.join("b"), &env, "concurrent", &run);
    let other = project(&d.join("c"), &env, "concurrent", &run);
    std::fs::write(other.join("src/pkg/main.py"), "print('other')\n").unwrap();
    let image = inspect(&same_a)["image"].as_str().unwrap().to_string();
    assert_eq!(inspect(&same_b)["image"], image.as_str());
    let other_image = inspect(&other)["image"].as_str().unwrap().to_string();
    assert_ne!(other_image, image);

    let runs: Vec<Running> = [&same_a, &same_b, &other]
        .iter()
        .map(|p| spawn(imagespec(p, &tmp).args(["build", "spec.toml"])))
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

    let digest = registry_manifest(&image)["Digest"]
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
        registry_manifest(image)["Layers"]
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
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let _tags = DaemonTags("tmpdir");
    let proj = project(d, &env, "tmpdir", &run_id());
    let outside = d.join("tmp");
    std::fs::create_dir_all(&outside).unwrap();
    output(imagespec(&proj, &outside).args(["build", "spec.toml"]));

    std::fs::write(proj.join("src/pkg/main.py"), "print('v2')\n").unwrap();
    let inside = proj.join("src/tmp");
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::write(inside.join("keep.txt"), "a source file").unwrap();
    let expected = inspect(&proj)["image"].as_str().unwrap().to_string();
    let out = imagespec(&proj, &inside)
        .args(["build", "spec.toml"])
        .output()
        .expect("run");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);
    assert!(log.contains("appending the source"), "the fast path: {log}");
    assert!(scratch_in(&inside).is_empty());
    registry_manifest(&expected);
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
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let tmp = d.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let _tags = DaemonTags("stream");
    let proj = project(d, &env, "stream", &run_id());
    sh(&proj, "head -c 300000000 /dev/urandom > src/pkg/model.bin");
    let image = inspect(&proj)["image"].as_str().unwrap().to_string();
    let mut run =
        spawn(imagespec(&proj, &tmp).args(["build", "spec.toml", "--no-fast-path", "--no-push"]));
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
