//! End-to-end test of the defaults file's `registry_mirrors`: a spec whose base lives in a
//! registry that does not exist (`mirror-me.invalid`) builds with no daemon reachable,
//! because the project's `imagespec.toml` maps that registry to the local one: uv reads the
//! base from the mirror, the image is pushed under the spec's own name (the mirror changes
//! nothing in it), and from outside (skopeo, `docker run`) it holds the base's layers and
//! works. Services come from `scripts/e2e/` and uv from `scripts/e2e/uv.sh` (as for
//! tests/e2e_daemonless.rs); without them these tests fail under `CI`, and say why and pass
//! elsewhere. A second test does the same through dockerd's BuildKit.

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

mod common;

use common::e2e::{
    DOCKER, JsonRun, NO_DAEMON, imagespec_in, output, run_id, run_json, skopeo_inspect,
};

struct Env {
    base_python: String,
    uv_image: String,
    uv: PathBuf,
}

/// The harness's services and uv, or `None` (and a note) when missing outside CI.
fn services() -> Option<Env> {
    let s = common::e2e::services()?;
    let uv = s.file.uv()?;
    Some(Env {
        base_python: s.base_python,
        uv_image: s.uv_image,
        uv,
    })
}

/// imagespec with uv, no daemon, and only the project's defaults file (the user's config
/// directory is the project's, which holds none).
fn imagespec(dir: &Path, env: &Env) -> Command {
    let mut cmd = imagespec_in(dir);
    cmd.env("IMAGESPEC_UV", &env.uv)
        .env("DOCKER_HOST", NO_DAEMON)
        .env("XDG_CONFIG_HOME", dir)
        .env_remove("IMAGESPEC_NO_DAEMONLESS")
        .env_remove("IMAGESPEC_NO_FAST_PATH")
        .env_remove("IMAGESPEC_CONFIG")
        .env_remove("IMAGESPEC_NO_CONFIG");
    cmd
}

/// `imagespec tag spec.toml ARGS` in `proj`.
fn tag(proj: &Path, env: &Env, args: &[&str]) -> String {
    let out = imagespec(proj, env)
        .args(["tag", "spec.toml"])
        .args(args)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A build that must have given `image` by `action`.
fn built(run: &JsonRun, image: &str, action: &str) {
    assert!(run.ok(), "{}", run.text);
    assert_eq!(run.result()["image"], image, "{}", run.text);
    assert_eq!(run.result()["action"], action, "{}", run.text);
}

fn layers(image: &str) -> Vec<String> {
    skopeo_inspect(&[], image)["Layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l.as_str().map(str::to_string))
        .collect()
}

/// A project in `dir` whose spec names its base in `mirror-me.invalid` (a registry that never
/// resolves) and whose `imagespec.toml` holds `defaults` plus the mirror of that registry to
/// the local one; its directory and the image's name.
fn project(dir: &Path, env: &Env, what: &str, defaults: &str) -> (PathBuf, String) {
    let mirrored = env
        .base_python
        .strip_prefix("localhost:5000/")
        .expect("the e2e base is in localhost:5000");
    let proj = dir.join("proj");
    std::fs::create_dir_all(proj.join(".git")).expect("mkdir");
    std::fs::create_dir_all(proj.join("src/app")).expect("mkdir");
    std::fs::write(proj.join("src/app/__init__.py"), "").expect("write");
    std::fs::write(
        proj.join("src/app/main.py"),
        "import yaml\nprint(yaml.safe_dump({'mirrored': True}).strip())\n",
    )
    .expect("write");
    let name = format!("h-defaults-{what}-{}", run_id());
    std::fs::write(
        proj.join("spec.toml"),
        format!(
            "name = \"{name}\"\nregistry = \"localhost:5000\"\n\
             base_image = \"mirror-me.invalid/{mirrored}\"\npackages = [\"pyyaml\"]\n\
             source_root = \"src\"\nsource_copy_mode = \"all\"\n\
             builder_options = {{ add_flytekit = false }}\n"
        ),
    )
    .expect("spec");
    std::fs::write(
        proj.join("imagespec.toml"),
        format!(
            "{defaults}[defaults.registry_mirrors]\n\"mirror-me.invalid\" = \"localhost:5000\"\n"
        ),
    )
    .expect("defaults");
    (proj, name)
}

/// From outside: `image` starts with the layers of the base the mirror holds, and runs.
fn check_from_outside(env: &Env, image: &str) {
    let base = layers(&env.base_python);
    let built = layers(image);
    assert!(
        built.len() > base.len() && built[..base.len()] == base[..],
        "{image} does not start with the layers of {}: {built:?} vs {base:?}",
        env.base_python
    );
    output(Process::new(DOCKER).args(["pull", "-q", image]));
    let ran = output(Process::new(DOCKER).args([
        "run",
        "--rm",
        "--entrypoint",
        "python",
        image,
        "-m",
        "app.main",
    ]));
    assert_eq!(ran.trim(), "mirrored: true");
    let _ = Process::new(DOCKER).args(["rmi", image]).output();
}

#[test]
fn a_registry_mirror_serves_the_base_of_a_daemonless_build() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (proj, _) = project(dir.path(), &env, "mirror", "");

    // The mirror changes no name.
    let image = tag(&proj, &env, &[]);
    assert_eq!(image, tag(&proj, &env, &["--no-config"]));

    // plan shows the mirror as applied, on the image's line.
    let planned = run_json(imagespec(&proj, &env).args(["plan", "--json", "spec.toml"]));
    assert!(planned.ok(), "{}", planned.text);
    let planned = planned.events.last().expect("a plan line");
    assert_eq!(planned["dependency_builder"], "uv", "{planned}");
    let mirror = planned["defaults"]["settings"]
        .as_array()
        .expect("settings")
        .iter()
        .find(|s| s["key"] == "registry_mirrors.mirror-me.invalid")
        .unwrap_or_else(|| panic!("the mirror in {planned}"));
    assert_eq!(mirror["applied"], true, "{mirror}");
    assert_eq!(mirror["changes_name"], false, "{mirror}");

    // No daemon, a base in a registry that does not exist: only the mirror can serve it.
    let run = run_json(imagespec(&proj, &env).args(["build", "--json", "spec.toml"]));
    built(&run, &image, "appended");
    check_from_outside(&env, &image);
}

/// With no `registry`, `--output` builds the dependencies here and writes the base's layers
/// read from the base's registry: through the mirror too, as there is no other way to them.
#[test]
fn a_registry_mirror_serves_the_base_of_an_output_without_a_registry() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (proj, _) = project(dir.path(), &env, "output", "");
    let spec = std::fs::read_to_string(proj.join("spec.toml")).expect("spec");
    let spec = spec.replace("registry = \"localhost:5000\"\n", "");
    assert!(!spec.contains("registry ="), "{spec}");
    std::fs::write(proj.join("spec.toml"), spec).expect("spec");
    let image = tag(&proj, &env, &[]);
    assert_eq!(image, tag(&proj, &env, &["--no-config"]));

    // Without the mirror there is no way to the base.
    let unmirrored = run_json(
        imagespec(&proj, &env)
            .args(["build", "--json", "--no-config", "spec.toml", "--output"])
            .arg(format!("oci:{}", dir.path().join("unmirrored").display())),
    );
    assert!(
        !unmirrored.ok()
            && unmirrored
                .text
                .contains("cannot connect to mirror-me.invalid"),
        "{}",
        unmirrored.text
    );

    let layout = dir.path().join("layout");
    let run = run_json(
        imagespec(&proj, &env)
            .args(["build", "--json", "spec.toml", "--output"])
            .arg(format!("oci:{}", layout.display())),
    );
    built(&run, &image, "written");

    // From outside: the layout's image starts with the mirrored base's layers, and runs.
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(layout.join("index.json")).expect("index.json"),
    )
    .expect("json");
    let reference = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .expect("ref name")
        .to_string();
    let in_layout = format!("oci:{}:{reference}", layout.display());
    let inspected: serde_json::Value = serde_json::from_str(&output(
        Process::new("skopeo").args(["inspect", &in_layout]),
    ))
    .expect("json");
    let written: Vec<&str> = inspected["Layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    let base = layers(&env.base_python);
    assert!(
        written.len() > base.len() && written[..base.len()] == base[..],
        "{written:?} vs {base:?}"
    );
    let local = format!("localhost/h-defaults-output-{}:latest", run_id());
    output(Process::new("skopeo").args([
        "copy",
        "--quiet",
        &in_layout,
        &format!("docker-daemon:{local}"),
    ]));
    let ran = output(Process::new(DOCKER).args([
        "run",
        "--rm",
        "--entrypoint",
        "python",
        &local,
        "-m",
        "app.main",
    ]));
    let _ = Process::new(DOCKER).args(["rmi", &local]).output();
    assert_eq!(ran.trim(), "mirrored: true");
}

/// BuildKit has no per-build mirror setting: the Dockerfile it is handed names the mirror in
/// its `FROM`s. Here both the base and the uv image (a `builder_config.uv_image` default,
/// which does not change the name either) are in the registry that never resolves.
#[test]
fn a_registry_mirror_serves_the_images_of_a_buildkit_build() {
    let Some(env) = services() else { return };
    let docker_host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let uv = env
        .uv_image
        .strip_prefix("localhost:5000/")
        .expect("the e2e uv image is in localhost:5000");
    let dir = tempfile::tempdir().expect("tempdir");
    let defaults = format!("[defaults.builder_config]\nuv_image = \"mirror-me.invalid/{uv}\"\n");
    let (proj, _) = project(dir.path(), &env, "buildkit", &defaults);
    let image = tag(&proj, &env, &[]);
    assert_eq!(image, tag(&proj, &env, &["--no-config"]));
    let run = run_json(
        imagespec(&proj, &env)
            .env("DOCKER_HOST", &docker_host)
            .args(["build", "--json", "--no-daemonless", "--no-fast-path"])
            .arg("spec.toml"),
    );
    built(&run, &image, "built");
    check_from_outside(&env, &image);
}
