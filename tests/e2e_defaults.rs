//! End-to-end test of the defaults file's `registry_mirrors`: a spec whose base lives in a
//! registry that does not exist (`mirror-me.invalid`) builds with no daemon reachable,
//! because the project's `imagespec.toml` maps that registry to the local one: uv reads the
//! base from the mirror, the image is pushed under the spec's own name (the mirror changes
//! nothing in it), and from outside (skopeo, `docker run`) it holds the base's layers and
//! works. Services come from `scripts/e2e/` and uv from `scripts/e2e/uv.sh` (as for
//! tests/e2e_daemonless.rs); without them this test fails under `CI`, and says why and
//! passes elsewhere.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

const DOCKER: &str = "/usr/bin/docker";
const NOWHERE: &str = "unix:///nonexistent/docker.sock";

struct Env {
    base_python: String,
    uv: PathBuf,
}

/// The harness's registry and uv, or `None` (and a note) when missing outside CI.
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
    });
    let cache = get("IMAGESPEC_E2E_CACHE").unwrap_or_else(|| "/var/cache/imagespec-e2e".into());
    let uv = std::env::var_os("IMAGESPEC_UV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(&cache).join("uv-0.5.1/bin/uv"));
    let missing = if !up {
        Some(format!(
            "e2e services are not running ({file}); scripts/test.sh starts them"
        ))
    } else if !uv.is_file() {
        Some(format!(
            "no uv at {}: scripts/e2e/uv.sh installs it (scripts/test.sh runs it)",
            uv.display()
        ))
    } else {
        None
    };
    if let Some(why) = missing {
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipped: {why}");
        return None;
    }
    Some(Env {
        base_python: get("IMAGESPEC_E2E_BASE_PYTHON")
            .unwrap_or_else(|| "localhost:5000/debian-python:bookworm".into()),
        uv,
    })
}

/// imagespec with uv, no cache, no daemon, and only the project's defaults file.
fn imagespec(dir: &Path, env: &Env) -> Command {
    let mut cmd = Command::cargo_bin("imagespec").expect("binary");
    cmd.current_dir(dir)
        .env("IMAGESPEC_UV", &env.uv)
        .env("IMAGESPEC_NO_CACHE", "1")
        .env("DOCKER_HOST", NOWHERE)
        .env("XDG_CONFIG_HOME", dir)
        .env_remove("IMAGESPEC_NO_DAEMONLESS")
        .env_remove("IMAGESPEC_NO_FAST_PATH")
        .env_remove("IMAGESPEC_CONFIG")
        .env_remove("IMAGESPEC_NO_CONFIG");
    cmd
}

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn outside(cmd: &mut Process) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn layers(image: &str) -> Vec<String> {
    let json = outside(Process::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]));
    let value: Value = serde_json::from_str(&json).expect("skopeo json");
    value["Layers"]
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
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("h-defaults-{what}-{}-{nanos}", std::process::id());
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
    outside(Process::new(DOCKER).args(["pull", "-q", image]));
    let ran = outside(Process::new(DOCKER).args([
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

fn result_of(log: &str) -> Value {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .rfind(|e| e["event"] == "result")
        .unwrap_or_else(|| panic!("no result in {log}"))
}

#[test]
fn a_registry_mirror_serves_the_base_of_a_daemonless_build() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (proj, _) = project(dir.path(), &env, "mirror", "");

    // The mirror changes no name.
    let image = stdout(imagespec(&proj, &env).args(["tag", "spec.toml"]))
        .trim()
        .to_string();
    let without = stdout(imagespec(&proj, &env).args(["tag", "spec.toml", "--no-config"]));
    assert_eq!(image, without.trim());

    // plan shows the mirror as applied, on the image's line.
    let planned: Value = serde_json::from_str(
        stdout(imagespec(&proj, &env).args(["plan", "--json", "spec.toml"]))
            .lines()
            .last()
            .expect("a plan line"),
    )
    .expect("plan json");
    assert_eq!(planned["dependency_builder"], "uv", "{planned}");
    let mirror = planned["defaults"]["settings"]
        .as_array()
        .expect("settings")
        .iter()
        .find(|s| s["key"] == "registry_mirrors.mirror-me.invalid")
        .unwrap_or_else(|| panic!("the mirror in {planned}"))
        .clone();
    assert_eq!(mirror["applied"], true, "{mirror}");
    assert_eq!(mirror["changes_name"], false, "{mirror}");

    // No daemon, a base in a registry that does not exist: only the mirror can serve it.
    let log = stdout(imagespec(&proj, &env).args(["build", "--json", "spec.toml"]));
    let result = result_of(&log);
    assert_eq!(result["image"], image.as_str(), "{log}");
    assert_eq!(result["action"], "appended", "{log}");
    check_from_outside(&env, &image);
}

/// BuildKit has no per-build mirror setting: the Dockerfile it is handed names the mirror in
/// its `FROM`s. Here both the base and the uv image (a `builder_config.uv_image` default,
/// which does not change the name either) are in the registry that never resolves.
#[test]
fn a_registry_mirror_serves_the_images_of_a_buildkit_build() {
    let Some(env) = services() else { return };
    let docker_host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let uv =
        std::env::var("IMAGESPEC_E2E_UV_IMAGE").unwrap_or_else(|_| "localhost:5000/uv:0.5".into());
    let uv = uv
        .strip_prefix("localhost:5000/")
        .expect("the e2e uv image is in localhost:5000");
    let dir = tempfile::tempdir().expect("tempdir");
    let defaults = format!("[defaults.builder_config]\nuv_image = \"mirror-me.invalid/{uv}\"\n");
    let (proj, _) = project(dir.path(), &env, "buildkit", &defaults);
    let image = stdout(imagespec(&proj, &env).args(["tag", "spec.toml"]))
        .trim()
        .to_string();
    let without = stdout(imagespec(&proj, &env).args(["tag", "spec.toml", "--no-config"]));
    assert_eq!(image, without.trim());
    let log = stdout(
        imagespec(&proj, &env)
            .env("DOCKER_HOST", &docker_host)
            .args([
                "build",
                "--json",
                "--no-daemonless",
                "--no-fast-path",
                "spec.toml",
            ]),
    );
    let result = result_of(&log);
    assert_eq!(result["image"], image.as_str(), "{log}");
    assert_eq!(result["action"], "built", "{log}");
    check_from_outside(&env, &image);
}
