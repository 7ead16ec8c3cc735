//! End-to-end: what `.dockerignore` excludes never reaches a pushed image, while the image
//! keeps flytekit's name (docs/security.md). The spec is the corpus case
//! `dockerignore_relative_root_secret` (a relative `source_root` whose `.dockerignore`
//! excludes `secrets.json`, which flytekit hashes and copies); its flytekit-made tag is in
//! `testdata/goldens/tags.json`. Built three ways — the whole Dockerfile through dockerd's
//! BuildKit, the registry fast path, `--output oci:DIR` — and each image is looked at from
//! outside (`docker run`, `skopeo copy` + `umoci unpack`). Services as in tests/e2e.rs:
//! without them this test fails under `CI`, and says why and passes elsewhere.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

mod common;

use common::e2e::{
    DOCKER, imagespec_in, layout_index, output, ref_name, result, run_json, services, umoci_unpack,
};

const CASE: &str = "dockerignore_relative_root_secret";

/// `imagespec build --json ARGS` in `dir`: (success, events, everything printed). The
/// requirement flytekit adds to an image whose packages do not name it is not part of the
/// tag (docs/cli.md, `--flytekit-requirement`): a small package stands in for flytekit and its
/// hundred dependencies.
fn build_json(dir: &Path, args: &[&str]) -> (bool, Vec<Value>, String) {
    let mut cmd = imagespec_in(dir);
    cmd.args(["build", "--json", "--flytekit-requirement", "pyyaml"])
        .args(args);
    run_json(&mut cmd).into_parts()
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
    umoci_unpack(
        &format!("{}:image", layout.display()),
        &d.join(format!("{name}-bundle")),
    )
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
    if services().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let proj = project(d);
    let image = flytekit_image();

    // The whole Dockerfile, through dockerd's BuildKit.
    let (ok, events, log) = build_json(&proj, &["spec.toml", "--force", "--no-fast-path"]);
    assert!(ok, "{log}");
    let built = result(&events);
    assert_eq!(built["image"], image.as_str(), "the name is flytekit's");
    assert_eq!(built["action"], "built", "{log}");
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
    let appended = result(&events);
    assert_eq!(appended["image"], image.as_str());
    assert_eq!(appended["action"], "appended", "{log}");
    assert_left_out(
        &root_of(&unpack_from_registry(&image, d, "fast")),
        "fast path",
    );

    // --output: the same assembly, written to an OCI layout.
    let layout = d.join("out-layout");
    let target = format!("oci:{}", layout.display());
    let (ok, events, log) = build_json(&proj, &["spec.toml", "--output", &target]);
    assert!(ok, "{log}");
    assert_eq!(result(&events)["action"], "written", "{log}");
    let index = layout_index(&layout);
    let rootfs = umoci_unpack(
        &format!("{}:{}", layout.display(), ref_name(&index["manifests"][0])),
        &d.join("out-bundle"),
    );
    assert_left_out(&root_of(&rootfs), "--output oci:");
}
