//! End-to-end: what `.dockerignore` excludes never reaches a pushed image, while the image
//! keeps flytekit's name (README, "Security"). The spec is the corpus case
//! `dockerignore_relative_root_secret` (a relative `source_root` whose `.dockerignore`
//! excludes `secrets.json`, which flytekit hashes and copies); its flytekit-made tag is in
//! `testdata/goldens/tags.json`. Built three ways — the whole Dockerfile through dockerd's
//! BuildKit, the registry fast path, `--output oci:DIR` — and each image is looked at from
//! outside (`docker run`, `skopeo copy` + `umoci unpack`). Services as in tests/e2e.rs:
//! without them this test fails under `CI`, and says why and passes elsewhere.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

const DOCKER: &str = "/usr/bin/docker";
const CASE: &str = "dockerignore_relative_root_secret";

/// Whether the harness's registry (`localhost:5000`, with its base images) and dockerd run.
fn services_up() -> bool {
    let file =
        std::env::var("IMAGESPEC_E2E_ENV").unwrap_or_else(|_| "/tmp/imagespec-e2e/e2e.env".into());
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let registry = std::env::var("IMAGESPEC_E2E_REGISTRY").ok().or_else(|| {
        text.lines().find_map(|l| {
            l.strip_prefix("IMAGESPEC_E2E_REGISTRY=")
                .map(str::to_string)
        })
    });
    let up = registry.is_some_and(|r| {
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
    }
    up
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

/// `imagespec build --json ARGS` in `dir`: (success, events, everything printed). The
/// requirement flytekit adds to an image whose packages do not name it is not part of the
/// tag (README, `--flytekit-requirement`): a small package stands in for flytekit and its
/// hundred dependencies.
fn build_json(dir: &Path, args: &[&str]) -> (bool, Vec<Value>, String) {
    let out = Command::cargo_bin("imagespec")
        .expect("binary")
        .current_dir(dir)
        .env("IMAGESPEC_NO_CACHE", "1")
        .args(["build", "--json", "--flytekit-requirement", "pyyaml"])
        .args(args)
        .output()
        .expect("run imagespec");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let events = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (
        out.status.success(),
        events,
        stdout + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The case's files (spec and source tree, no setup needed) in a directory of its own.
fn project(d: &Path) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/corpus")
        .join(CASE);
    let proj = d.join("proj");
    std::fs::create_dir_all(proj.join("src")).expect("mkdir");
    std::fs::copy(from.join("spec.toml"), proj.join("spec.toml")).expect("spec");
    for f in ["main.py", "secrets.json", ".dockerignore"] {
        std::fs::copy(from.join("src").join(f), proj.join("src").join(f)).expect("source");
    }
    proj
}

/// The image name flytekit 1.16 gives the case.
fn flytekit_image() -> String {
    let goldens: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/goldens/tags.json"),
        )
        .expect("tags.json"),
    )
    .expect("json");
    goldens["cases"][CASE]["images"][""]["image"]
        .as_str()
        .expect("golden image")
        .to_string()
}

/// The names under `/root` of an unpacked root file system.
fn root_of(rootfs: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(rootfs.join("root"))
        .expect("/root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `skopeo copy` of `image` from the registry to an OCI layout, then `umoci unpack`.
fn unpack_from_registry(image: &str, d: &Path, name: &str) -> PathBuf {
    let layout = d.join(format!("{name}-layout"));
    output(Process::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{image}"),
        &format!("oci:{}:image", layout.display()),
    ]));
    let bundle = d.join(format!("{name}-bundle"));
    output(Process::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:image", layout.display()),
        bundle.to_str().expect("utf-8 path"),
    ]));
    bundle.join("rootfs")
}

fn assert_left_out(root: &[String], how: &str) {
    assert!(
        root.contains(&"main.py".to_string()) && root.contains(&".dockerignore".to_string()),
        "{how}: /root holds {root:?}"
    );
    assert!(
        !root.contains(&"secrets.json".to_string()),
        "{how}: the excluded secrets.json is in the image: {root:?}"
    );
}

#[test]
fn excluded_secret_is_not_in_the_image_and_the_name_is_flytekits() {
    if !services_up() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let proj = project(d);
    let image = flytekit_image();

    // The whole Dockerfile, through dockerd's BuildKit.
    let (ok, events, log) = build_json(&proj, &["spec.toml", "--force", "--no-fast-path"]);
    assert!(ok, "{log}");
    let result = events.last().expect("result");
    assert_eq!(result["image"], image.as_str(), "the name is flytekit's");
    assert_eq!(result["action"], "built", "{log}");
    let warnings: Vec<&Value> = events.iter().filter(|e| e["event"] == "warning").collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("secrets.json")),
        "{log}"
    );
    output(Process::new(DOCKER).args(["pull", "-q", &image]));
    let listed = output(Process::new(DOCKER).args([
        "run",
        "--rm",
        "--user",
        "0",
        "--entrypoint",
        "ls",
        &image,
        "-A",
        "/root",
    ]));
    let root: Vec<String> = listed.lines().map(str::to_string).collect();
    assert_left_out(&root, "Dockerfile build (docker run)");
    assert_left_out(
        &root_of(&unpack_from_registry(&image, d, "docker")),
        "Dockerfile build (umoci)",
    );

    // The registry fast path: the source layer appended to the dependency image.
    let (ok, events, log) = build_json(&proj, &["spec.toml", "--force"]);
    assert!(ok, "{log}");
    let result = events.last().expect("result");
    assert_eq!(result["image"], image.as_str());
    assert_eq!(result["action"], "appended", "{log}");
    assert_left_out(
        &root_of(&unpack_from_registry(&image, d, "fast")),
        "fast path",
    );

    // --output: the same assembly, written to an OCI layout.
    let layout = d.join("out-layout");
    let target = format!("oci:{}", layout.display());
    let (ok, events, log) = build_json(&proj, &["spec.toml", "--output", &target]);
    assert!(ok, "{log}");
    assert_eq!(events.last().expect("result")["action"], "written", "{log}");
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(layout.join("index.json")).expect("index"))
            .expect("json");
    let ref_name = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .expect("ref name");
    let bundle = d.join("out-bundle");
    output(Process::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:{ref_name}", layout.display()),
        bundle.to_str().expect("utf-8 path"),
    ]));
    assert_left_out(&root_of(&bundle.join("rootfs")), "--output oci:");
}
