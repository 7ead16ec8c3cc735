//! End-to-end tests of the daemonless dependency builder (issue 15): with no daemon
//! reachable, `build` makes the dependency image with uv on this machine and pushes it and
//! the image; from outside (skopeo, `docker pull` + `docker run`) the image works as the
//! `flytekit` user, and it has the same files and run-time config as the Docker path's
//! image but for the documented differences. Services come from `scripts/e2e/` (as for
//! tests/e2e.rs), uv from `scripts/e2e/uv.sh` (or `IMAGESPEC_UV`); without them these tests
//! fail under `CI`, and say why and pass elsewhere.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

mod common;

use common::e2e::{
    DOCKER, NO_DAEMON, curl_blob, curl_json, curl_manifest, env_list, image_config, image_snapshot,
    imagespec_in, inspect_json, layout_index, output, ref_name, run_id, run_json, sh, sha256_hex,
    skopeo_inspect, tree_difference,
};

/// Paths the daemonless image lacks on purpose (docs/daemonless.md):
/// bytecode, which the Docker build compiles (`UV_COMPILE_BYTECODE=1`) and Python writes on
/// first import otherwise.
fn accepted_difference(line: &str) -> bool {
    let path = line.split('\t').next().unwrap_or_default();
    path.contains("/__pycache__")
}

struct Env {
    registry: String,
    base_python: String,
    /// The same base as an index of linux/amd64 and linux/arm64 (a debootstrapped arm64
    /// Debian: it runs under qemu).
    base_python_multi: String,
    uv_image: String,
    uv: PathBuf,
}

/// The harness's services and uv, or `None` (and a note) when missing outside CI.
fn services() -> Option<Env> {
    let s = common::e2e::services()?;
    let uv = s.file.uv()?;
    Some(Env {
        registry: s.registry,
        base_python: s.base_python,
        base_python_multi: s.file.base_python_multi(),
        uv_image: s.uv_image,
        uv,
    })
}

/// The imagespec binary with uv, no caches and `DOCKER_HOST` as given.
fn imagespec(dir: &Path, env: &Env, docker_host: Option<&str>) -> Command {
    let mut cmd = imagespec_in(dir);
    cmd.env("IMAGESPEC_UV", &env.uv)
        .env_remove("IMAGESPEC_NO_DAEMONLESS");
    if let Some(host) = docker_host {
        cmd.env("DOCKER_HOST", host);
    }
    cmd
}

/// `imagespec build --json ARGS`: success, the result event, and all output.
fn build(dir: &Path, env: &Env, docker_host: Option<&str>, args: &[&str]) -> (bool, Value, String) {
    let run = run_json(
        imagespec(dir, env, docker_host)
            .args(["build", "--json"])
            .args(args),
    );
    let result = run
        .events
        .iter()
        .rfind(|e| e["event"] == "result")
        .cloned()
        .unwrap_or(Value::Null);
    (run.ok(), result, run.text)
}

/// `imagespec plan --json ARGS` with no daemon: the last image's plan.
fn plan(dir: &Path, env: &Env, args: &[&str], extra_env: &[(&str, &str)]) -> Value {
    let mut cmd = imagespec(dir, env, Some(NO_DAEMON));
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd
        .args(["plan", "--json"])
        .args(args)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no plan: {}", String::from_utf8_lossy(&out.stderr)));
    serde_json::from_str(last).expect("plan json")
}

/// A project with packages (one with a console script), a requirements file, env, an
/// entrypoint and source files.
fn project(d: &Path, env: &Env, name: &str, extra: &str) -> PathBuf {
    sh(
        d,
        r#"
        mkdir -p proj/src/app
        cd proj
        printf 'import yaml, six\n\ndef main():\n    return yaml.safe_dump({"ok": six.PY3})\n' > src/app/main.py
        printf '' > src/app/__init__.py
        printf 'six\n' > requirements.txt
        "#,
    );
    let spec = format!(
        r#"
name = "{name}"
registry = "{registry}"
base_image = "{base}"
packages = ["pyyaml", "pygments"]
requirements = "requirements.txt"
env = {{ APP_ENV = "e2e", EXTRA_PATH = "/opt/tools:$PATH" }}
source_root = "src"
source_copy_mode = "all"
builder_config = {{ uv_image = "{uv}" }}
builder_options = {{ add_flytekit = false }}
{extra}
"#,
        registry = env.registry,
        base = env.base_python,
        uv = env.uv_image,
    );
    let proj = d.join("proj");
    std::fs::write(proj.join("spec.toml"), spec).expect("spec");
    proj
}

/// Runs `script` with bash in `image` as its own user (`flytekit`); stdout.
fn run_in(image: &str, script: &str) -> String {
    output(Process::new(DOCKER).args(["pull", "-q", image]));
    output(Process::new(DOCKER).args(["run", "--rm", "--entrypoint", "bash", image, "-c", script]))
}

/// What the image must do: imports, a console script, the user and the id.
const CHECK: &str = r#"set -e
id -un
python -c 'import os, yaml, six, app.main; print(app.main.main().strip()); print(os.environ["_F_IMG_ID"])'
pygmentize -V | cut -c1-16
echo "$EXTRA_PATH"
"#;

/// Issue 15: with no daemon reachable and fresh repositories, `build` makes the dependency
/// image with uv and pushes a working image; the same inputs give the same digests.
#[test]
fn no_daemon_builds_and_pushes_a_working_image() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("h-uv-daemonless-{}", run_id());
    let proj = project(dir.path(), &env, &name, "");
    let info = inspect_json(&proj, "spec.toml");
    let image = info["image"].as_str().expect("image").to_string();
    let id = info["id"].as_str().expect("id").to_string();

    let planned = plan(&proj, &env, &["spec.toml"], &[]);
    assert_eq!(
        planned["strategy"], "build_dependencies_then_append",
        "{planned}"
    );
    assert_eq!(planned["dependency_builder"], "uv", "{planned}");
    assert_eq!(planned["dependency_builder_reason"], Value::Null);

    let (ok, result, log) = build(&proj, &env, Some(NO_DAEMON), &["spec.toml"]);
    assert!(ok, "{log}");
    assert_eq!(result["action"], "appended", "{log}");
    assert!(
        result["reason"]
            .as_str()
            .is_some_and(|r| r.contains("without a daemon (uv)")),
        "{result}"
    );

    // From outside: the registry has the image and its dependency image, labelled.
    let deps = planned["dependency_image"]
        .as_str()
        .expect("deps")
        .to_string();
    let deps_config = skopeo_inspect(&["--config"], &deps);
    let label = deps_config["config"]["Labels"]["org.imagespec.dependency-image"]
        .as_str()
        .expect("the dependency label")
        .to_string();
    assert_eq!(label, "1000 1000 0 700", "flytekit uid, /root uid gid mode");
    let config = skopeo_inspect(&["--config"], &image);
    let env_list = env_list(&config["config"]);
    assert!(
        env_list.contains(&format!("_F_IMG_ID={id}").as_str()),
        "{env_list:?}"
    );
    assert!(env_list.contains(&"APP_ENV=e2e"), "{env_list:?}");
    assert_eq!(config["config"]["User"], "flytekit");
    assert_eq!(config["config"]["WorkingDir"], "/root");

    let out = run_in(&image, CHECK);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "flytekit", "{out}");
    assert_eq!(lines[1], "ok: true", "{out}");
    assert_eq!(lines[2], id, "{out}");
    assert_eq!(lines[3], "Pygments version", "{out}");
    assert!(
        lines[4].starts_with("/opt/tools:/usr/local/sbin:"),
        "$PATH expanded as Docker's ENV does: {out}"
    );

    // Same inputs, same digests: the same spec under another name makes the same
    // dependency image.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let proj2 = project(dir2.path(), &env, &format!("{name}-again"), "");
    let (ok, _, log) = build(&proj2, &env, Some(NO_DAEMON), &["spec.toml"]);
    assert!(ok, "{log}");
    let deps2 = plan(&proj2, &env, &["spec.toml", "--force"], &[])["dependency_image"]
        .as_str()
        .expect("deps")
        .to_string();
    assert_eq!(
        skopeo_inspect(&[], &deps)["Digest"],
        skopeo_inspect(&[], &deps2)["Digest"],
        "{deps} and {deps2}"
    );
}

/// The daemonless image and the Docker path's have the same run-time config and the same
/// file tree but for [`accepted_difference`]s; their file listings.
fn assert_same_image(uv_image: &str, docker_image: &str) -> (Vec<String>, Vec<String>) {
    let (uv_files, uv_config) = snapshot(uv_image);
    let (docker_files, docker_config) = snapshot(docker_image);
    assert_eq!(uv_config, docker_config, "the run-time config");
    assert_eq!(
        tree_difference(&uv_files, &docker_files, accepted_difference),
        (vec![], vec![]),
        "(only in the daemonless image, only in the Docker image)"
    );
    (uv_files, docker_files)
}

/// [`image_snapshot`] with `_F_IMG_ID` left out of the config (each image has its own) and
/// the base's recipe label in.
fn snapshot(image: &str) -> (Vec<String>, Value) {
    let (files, mut config) = image_snapshot(image);
    let env: Vec<Value> = config["Env"]
        .as_array()
        .expect("env")
        .iter()
        .filter(|e| !e.as_str().is_some_and(|e| e.starts_with("_F_IMG_ID=")))
        .cloned()
        .collect();
    config["Env"] = Value::Array(env);
    config["BaseLabel"] = image_config(image)["Labels"]["org.imagespec.e2e.recipe"].clone();
    (files, config)
}

/// Issue 15: the same spec built without a daemon and with `--no-daemonless` (dockerd's
/// BuildKit) gives the same file tree — but for bytecode, the one accepted difference — and
/// the same run-time config; both images run.
#[test]
fn daemonless_and_docker_give_the_same_image() {
    let Some(env) = services() else { return };
    let run = run_id();
    let extra = "entrypoint = [\"python\"]";
    let uv_dir = tempfile::tempdir().expect("tempdir");
    let uv_proj = project(
        uv_dir.path(),
        &env,
        &format!("h-uv-compare-uv-{run}"),
        extra,
    );
    let docker_dir = tempfile::tempdir().expect("tempdir");
    let docker_proj = project(
        docker_dir.path(),
        &env,
        &format!("h-uv-compare-docker-{run}"),
        extra,
    );

    let (ok, result, log) = build(&uv_proj, &env, Some(NO_DAEMON), &["spec.toml"]);
    assert!(ok && result["action"] == "appended", "{log}");
    let (ok, result, log) = build(&docker_proj, &env, None, &["spec.toml", "--no-daemonless"]);
    assert!(ok && result["action"] == "appended", "{log}");
    assert!(
        result["reason"]
            .as_str()
            .is_some_and(|r| r.contains("with dockerd (--no-daemonless")),
        "{result}"
    );

    let uv_image = inspect_json(&uv_proj, "spec.toml")["image"]
        .as_str()
        .expect("image")
        .to_string();
    let docker_image = inspect_json(&docker_proj, "spec.toml")["image"]
        .as_str()
        .expect("image")
        .to_string();
    let (uv_files, docker_files) = assert_same_image(&uv_image, &docker_image);
    assert!(
        docker_files.iter().any(|l| accepted_difference(l)),
        "the Docker image has bytecode (the difference is real, not a typo in the filter)"
    );
    for must in [
        "/root/.venv/bin/pygmentize\t",
        "/etc/passwd-\t",
        "/home/flytekit/.profile\t",
    ] {
        assert!(uv_files.iter().any(|l| l.starts_with(must)), "{must}");
    }
    for image in [&uv_image, &docker_image] {
        let out = run_in(image, CHECK);
        assert!(out.starts_with("flytekit\nok: true\n"), "{image}: {out}");
    }
}

/// Issue 15: what needs a container falls back to dockerd, with its reason in `plan`
/// (asked with no daemon), and `--no-daemonless` / `IMAGESPEC_NO_DAEMONLESS` force it.
#[test]
fn fallback_reasons_show_in_plan() {
    let Some(env) = services() else { return };
    let run = run_id();
    // `apt_packages` build without a daemon since issue 24 (tests/e2e_apt.rs: a package
    // whose scripts must run falls back at the build).
    let cases = [
        (
            "commands = [\"echo hi\"]\n[builder_options]\nadd_flytekit = false\ncommands_before_copy = true",
            "`commands` run in the image",
        ),
        (
            "conda_packages = [\"numpy\"]",
            "`conda_packages`/`conda_channels` are installed by micromamba in the image",
        ),
        (
            "python_version = \"3.11\"",
            "`python_version` is installed by micromamba in the image",
        ),
    ];
    for (i, (extra, reason)) in cases.iter().enumerate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let proj = project(dir.path(), &env, &format!("h-uv-fallback-{i}-{run}"), "");
        let spec = std::fs::read_to_string(proj.join("spec.toml")).expect("spec");
        let spec = if extra.contains("[builder_options]") {
            spec.replace("builder_options = { add_flytekit = false }\n", "") + extra
        } else {
            format!("{extra}\n{spec}")
        };
        std::fs::write(proj.join("spec.toml"), spec).expect("spec");
        let p = plan(&proj, &env, &["spec.toml"], &[]);
        assert_eq!(p["strategy"], "build_dependencies_then_append", "{p}");
        assert_eq!(p["dependency_builder"], "docker", "{p}");
        assert_eq!(p["dependency_builder_reason"], *reason, "{p}");
        assert!(
            p["reason"]
                .as_str()
                .is_some_and(|r| r.contains(&format!("with dockerd ({reason})"))),
            "{p}"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let proj = project(dir.path(), &env, &format!("h-uv-forced-{run}"), "");
    assert_eq!(
        plan(&proj, &env, &["spec.toml"], &[])["dependency_builder"],
        "uv"
    );
    let forced = "--no-daemonless or IMAGESPEC_NO_DAEMONLESS";
    let p = plan(&proj, &env, &["spec.toml", "--no-daemonless"], &[]);
    assert_eq!(p["dependency_builder_reason"], forced, "{p}");
    let p = plan(
        &proj,
        &env,
        &["spec.toml"],
        &[("IMAGESPEC_NO_DAEMONLESS", "true")],
    );
    assert_eq!(p["dependency_builder_reason"], forced, "{p}");

    // No uv on this machine: plan says dockerd builds it and why, as the build will do (and
    // the build checks what dockerd needs, e.g. an emulator, before any work).
    let p = plan(
        &proj,
        &env,
        &["spec.toml"],
        &[("IMAGESPEC_UV", "/nonexistent/uv")],
    );
    assert_eq!(p["dependency_builder"], "docker", "{p}");
    assert_eq!(
        p["dependency_builder_reason"], "IMAGESPEC_UV=/nonexistent/uv is not a file",
        "{p}"
    );
}

/// Issue 15: a package with only a source distribution (docopt publishes no wheel) is
/// found out by uv and falls back to dockerd, which builds it; the output says why.
#[test]
fn a_package_without_a_wheel_falls_back_to_dockerd() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let proj = project(dir.path(), &env, &format!("h-uv-sdist-{}", run_id()), "");
    let spec = std::fs::read_to_string(proj.join("spec.toml")).expect("spec");
    std::fs::write(
        proj.join("spec.toml"),
        spec.replace(
            r#"packages = ["pyyaml", "pygments"]"#,
            r#"packages = ["pyyaml", "pygments", "docopt"]"#,
        ),
    )
    .expect("spec");
    assert_eq!(
        plan(&proj, &env, &["spec.toml"], &[])["dependency_builder"],
        "uv"
    );

    // No daemon: the fallback is said, then dockerd's absence is the error.
    let (ok, _, log) = build(&proj, &env, Some(NO_DAEMON), &["spec.toml"]);
    assert!(!ok, "{log}");
    assert!(
        log.contains("cannot build the dependency image without a daemon (a package has no wheel"),
        "{log}"
    );
    assert!(log.contains("docopt"), "{log}");
    assert!(log.contains("dockerd is not reachable"), "{log}");

    let (ok, result, log) = build(&proj, &env, None, &["spec.toml"]);
    assert!(ok && result["action"] == "appended", "{log}");
    let image = inspect_json(&proj, "spec.toml")["image"]
        .as_str()
        .expect("image")
        .to_string();
    let out = run_in(
        &image,
        "python -c 'import docopt, yaml; print(docopt.__version__)'",
    );
    assert_eq!(out.trim(), "0.6.2");
}

/// The file names in a layer blob of the registry.
fn layer_files(registry: &str, repo: &str, digest: &str) -> Vec<String> {
    let listing = output(Process::new("bash").args([
        "-c",
        &format!("curl -sf http://{registry}/v2/{repo}/blobs/{digest} | tar -tz"),
    ]));
    listing.lines().map(str::to_string).collect()
}

/// Issue 15, several platforms: no daemon, no emulation — each platform's wheels, the same
/// versions, one index, the source appended to each. The arm64 base is synthetic (this
/// machine has no arm64 base image and no qemu to run one): the amd64 base's layers under
/// an arm64 config, which is all the builder reads; the arm64 image is checked from the
/// registry (its wheels are aarch64), the amd64 one is also run.
#[test]
fn several_platforms_get_their_own_wheels_in_one_index() {
    let Some(env) = services() else { return };
    let registry = "127.0.0.1:5000";
    let run = run_id();
    let base_repo = format!("h-uv-multibase-{run}");
    // The base index: amd64 as is, and its arm64 twin.
    output(Process::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}", env.base_python),
        &format!("docker://{registry}/{base_repo}:amd64"),
    ]));
    let docker_manifest = "application/vnd.docker.distribution.manifest.v2+json";
    let manifest = curl_json(
        &format!("http://{registry}/v2/{base_repo}/manifests/amd64"),
        docker_manifest,
    );
    let raw = serde_json::to_vec(&manifest).unwrap();
    let amd_digest = format!("sha256:{}", sha256_hex(&raw));
    curl_manifest(registry, &base_repo, &amd_digest, docker_manifest, &raw);
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let mut config = curl_json(
        &format!("http://{registry}/v2/{base_repo}/blobs/{config_digest}"),
        "*/*",
    );
    config["architecture"] = "arm64".into();
    config["variant"] = "v8".into();
    let arm_config = serde_json::to_vec(&config).unwrap();
    let mut arm = manifest.clone();
    arm["config"]["digest"] = curl_blob(registry, &base_repo, &arm_config).into();
    arm["config"]["size"] = arm_config.len().into();
    let arm_body = serde_json::to_vec(&arm).unwrap();
    let arm_digest = format!("sha256:{}", sha256_hex(&arm_body));
    curl_manifest(
        registry,
        &base_repo,
        &arm_digest,
        docker_manifest,
        &arm_body,
    );
    let list = "application/vnd.docker.distribution.manifest.list.v2+json";
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": list, "manifests": [
        {"mediaType": docker_manifest, "digest": amd_digest, "size": raw.len(),
         "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": docker_manifest, "digest": arm_digest, "size": arm_body.len(),
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
    ]});
    curl_manifest(
        registry,
        &base_repo,
        "bookworm",
        list,
        &serde_json::to_vec(&index).unwrap(),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("h-uv-multi-{run}");
    let env = Env {
        base_python: format!("localhost:5000/{base_repo}:bookworm"),
        ..env
    };
    let proj = project(
        dir.path(),
        &env,
        &name,
        "platform = \"linux/amd64,linux/arm64\"",
    );
    let planned = plan(&proj, &env, &["spec.toml"], &[]);
    assert_eq!(
        planned["strategy"], "build_dependencies_then_append",
        "{planned}"
    );
    assert_eq!(planned["dependency_builder"], "uv", "{planned}");
    let (ok, result, log) = build(&proj, &env, Some(NO_DAEMON), &["spec.toml"]);
    assert!(ok && result["action"] == "appended", "{log}");

    // From outside: an index of both platforms, each image the dependency image's layers
    // plus the source layer; the venv layer has the platform's own compiled wheel.
    let info = inspect_json(&proj, "spec.toml");
    let image = info["image"].as_str().unwrap().to_string();
    let tag = image.rsplit(':').next().unwrap();
    let top = curl_json(
        &format!("http://{registry}/v2/{name}/manifests/{tag}"),
        list,
    );
    let entries = top["manifests"].as_array().expect("an index");
    let mut yaml_versions = Vec::new();
    for (arch, triplet) in [
        ("amd64", "x86_64-linux-gnu"),
        ("arm64", "aarch64-linux-gnu"),
    ] {
        let entry = entries
            .iter()
            .find(|e| e["platform"]["architecture"] == arch)
            .unwrap_or_else(|| panic!("no {arch} in {top}"));
        let digest = entry["digest"].as_str().unwrap();
        let m = curl_json(
            &format!("http://{registry}/v2/{name}/manifests/{digest}"),
            docker_manifest,
        );
        let layers = m["layers"].as_array().unwrap();
        // The packages are spread over several layers below the source's: the one with
        // pyyaml, looked for from the top.
        let files = layers[..layers.len() - 1]
            .iter()
            .rev()
            .map(|l| layer_files(registry, &name, l["digest"].as_str().unwrap()))
            .find(|files| files.iter().any(|f| f.contains("site-packages/yaml/_yaml")))
            .unwrap_or_else(|| panic!("{arch}: no layer has pyyaml"));
        let so = files
            .iter()
            .find(|f| f.contains("site-packages/yaml/_yaml.cpython-311-"))
            .unwrap_or_else(|| panic!("{arch}: no compiled yaml in the venv layer"));
        assert!(so.ends_with(&format!("{triplet}.so")), "{arch}: {so}");
        yaml_versions.push(
            files
                .iter()
                .find(|f| f.contains("site-packages/pyyaml-") && f.ends_with(".dist-info/"))
                .cloned()
                .expect("pyyaml's dist-info"),
        );
        let source = layers.last().unwrap()["digest"].as_str().unwrap();
        assert!(
            layer_files(registry, &name, source).contains(&"root/app/main.py".to_string()),
            "{arch}: the source is appended"
        );
    }
    assert_eq!(yaml_versions[0], yaml_versions[1], "one set of versions");
    let out = run_in(&image, CHECK);
    assert!(out.starts_with("flytekit\nok: true\n"), "{out}");
}

/// A dependency change (one package added) starts from the venv the first build kept (uv
/// installs only the added package) and reuses the package layers that did not change
/// (remembered in the imagespec cache, found in the registry: not compressed or uploaded
/// again), and the image is the same, digest for digest, as one built with no cache.
#[test]
fn a_dependency_change_reuses_the_unchanged_package_layers() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let name = format!("h-uv-reuse-{}", run_id());
    let proj = project(dir.path(), &env, &name, "");
    let with_cache = |proj: &Path, args: &[&str]| {
        let out = imagespec(proj, &env, Some(NO_DAEMON))
            .env_remove("IMAGESPEC_NO_CACHE")
            .env("IMAGESPEC_CACHE_DIR", &cache)
            .args(["build", "--progress", "plain"])
            .args(args)
            .output()
            .expect("run imagespec");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        text
    };
    let first = with_cache(&proj, &["spec.toml"]);
    assert!(
        !first.contains("unchanged since an earlier build"),
        "{first}"
    );

    // One package more (not a dependency of the others).
    let spec = std::fs::read_to_string(proj.join("spec.toml")).unwrap();
    std::fs::write(
        proj.join("spec.toml"),
        spec.replace(
            r#"["pyyaml", "pygments"]"#,
            r#"["pyyaml", "pygments", "pyfiglet"]"#,
        ),
    )
    .unwrap();
    let second = with_cache(&proj, &["spec.toml"]);
    assert!(
        second.contains("started from the venv an earlier build kept"),
        "the kept venv is not used:\n{second}"
    );
    let reused = second
        .lines()
        .find(|l| l.contains("unchanged since an earlier build"))
        .unwrap_or_else(|| panic!("no layer reused:\n{second}"));
    let counts: Vec<usize> = reused
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    // Written again: the venv's own layer (its directories) and pyfiglet's (7 MB, a layer
    // of its own); every other package layer and the user layer are reused.
    assert!(
        counts.len() == 2 && counts[0] >= 3 && counts[0] + 2 == counts[1],
        "all layers but two are reused: {reused}"
    );
    let image = inspect_json(&proj, "spec.toml")["image"]
        .as_str()
        .unwrap()
        .to_string();
    let out = run_in(
        &image,
        &format!("{CHECK}python -c 'import pyfiglet; print(\"figlet ok\")'\n"),
    );
    assert!(out.starts_with("flytekit\nok: true\n"), "{out}");
    assert!(out.trim_end().ends_with("figlet ok"), "{out}");

    // The same spec built from nothing (no cache, another repository): same dependency
    // image, digest for digest.
    let deps = plan(&proj, &env, &["spec.toml", "--force"], &[])["dependency_image"]
        .as_str()
        .expect("deps")
        .to_string();
    let dir2 = tempfile::tempdir().expect("tempdir");
    let proj2 = project(dir2.path(), &env, &format!("{name}-fresh"), "");
    std::fs::copy(proj.join("spec.toml"), proj2.join("spec.toml")).unwrap();
    let spec2 = std::fs::read_to_string(proj2.join("spec.toml")).unwrap();
    std::fs::write(
        proj2.join("spec.toml"),
        spec2.replace(
            &format!("name = \"{name}\""),
            &format!("name = \"{name}-fresh\""),
        ),
    )
    .unwrap();
    let (ok, _, log) = build(&proj2, &env, Some(NO_DAEMON), &["spec.toml"]);
    assert!(ok, "{log}");
    let deps2 = plan(&proj2, &env, &["spec.toml", "--force"], &[])["dependency_image"]
        .as_str()
        .expect("deps")
        .to_string();
    assert_ne!(deps, deps2);
    assert_eq!(
        skopeo_inspect(&[], &deps)["Digest"],
        skopeo_inspect(&[], &deps2)["Digest"],
        "reused layers give the image a fresh build gives: {deps} and {deps2}"
    );
}

/// The newcomer's first run: a spec without a registry, no daemon, `--output oci:DIR`:
/// the dependencies are installed here with uv, and the image (base layers read from the
/// base's registry) is written to disk; skopeo and umoci read it, and it runs.
#[test]
fn without_a_registry_or_a_daemon_output_writes_a_working_image() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("h-uv-local-{}", run_id());
    let proj = project(dir.path(), &env, &name, "");
    let spec = std::fs::read_to_string(proj.join("spec.toml")).unwrap();
    let spec: String = spec
        .lines()
        .filter(|l| !l.starts_with("registry ="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(proj.join("spec.toml"), spec).unwrap();
    let info = inspect_json(&proj, "spec.toml");
    let image = info["image"].as_str().expect("image").to_string();
    assert!(!image.contains('/'), "no registry in the name: {image}");
    let tag = image.rsplit(':').next().unwrap().to_string();

    let planned = plan(&proj, &env, &["spec.toml", "--output"], &[]);
    assert_eq!(planned["strategy"], "write_output", "{planned}");
    assert!(
        planned["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("no registry: the dependencies are installed here")),
        "{planned}"
    );
    let layout = dir.path().join("layout");
    let target = format!("oci:{}", layout.display());
    let (ok, result, log) = build(
        &proj,
        &env,
        Some(NO_DAEMON),
        &["spec.toml", "--output", &target],
    );
    assert!(ok, "{log}");
    assert_eq!(result["action"], "written", "{log}");
    // The layout names the image by its tag, or `latest` when the tag is no OCI ref name
    // (one starting with `_`, as a content hash may).
    let reference = ref_name(&layout_index(&layout)["manifests"][0]).to_string();
    assert_eq!(
        reference,
        imagespec::publish::layout::layout_ref_name(&tag),
        "{tag}"
    );
    let tag = reference;

    let seen: Value = serde_json::from_str(&output(Process::new("skopeo").args([
        "inspect",
        "--config",
        &format!("oci:{}:{tag}", layout.display()),
    ])))
    .expect("skopeo json");
    let env_list = seen["config"]["Env"].to_string();
    assert!(env_list.contains(info["id"].as_str().unwrap()), "{seen}");
    assert_eq!(seen["config"]["User"], "flytekit", "{seen}");

    let bundle = dir.path().join("bundle");
    output(Process::new("umoci").args([
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:{tag}", layout.display()),
        bundle.to_str().unwrap(),
    ]));
    let rootfs = bundle.join("rootfs");
    assert!(rootfs.join("root/app/main.py").is_file());
    assert!(
        rootfs
            .join("root/.venv/lib/python3.11/site-packages/yaml/__init__.py")
            .is_file()
    );

    // Into the daemon only to run it (the build itself had none).
    let local = format!("localhost/{name}:{tag}");
    output(Process::new("skopeo").args([
        "copy",
        "--quiet",
        &format!("oci:{}:{tag}", layout.display()),
        &format!("docker-daemon:{local}"),
    ]));
    let out = output(Process::new(DOCKER).args([
        "run",
        "--rm",
        "--entrypoint",
        "bash",
        &local,
        "-c",
        CHECK,
    ]));
    let _ = Process::new(DOCKER).args(["rmi", "-f", &local]).output();
    assert!(out.starts_with("flytekit\nok: true\n"), "{out}");
}

/// The README's first run (`scripts/first-build.sh`), as a newcomer runs it: no daemon, no
/// registry of theirs; the local registry's Debian Python stands in for Docker Hub's base.
#[test]
fn the_first_build_script_runs_with_no_services() {
    let Some(env) = services() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // This machine's imagespec cache, as a user's run has it (uv's downloads kept).
    let out = Process::new(root.join("scripts/first-build.sh"))
        .arg(&env.base_python)
        .env("IMAGESPEC", env!("CARGO_BIN_EXE_imagespec"))
        .env("IMAGESPEC_UV", &env.uv)
        .output()
        .expect("run scripts/first-build.sh");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("no registry: the dependencies are installed here"),
        "{text}"
    );
    assert!(text.contains("hello from your first image"), "{text}");
    // The summary names the image and the layout's digest; nothing installed when all is here.
    let summary = &text[text.find("== summary").expect("a summary")..];
    assert!(summary.contains("digest: sha256:"), "{summary}");
    assert!(summary.contains("image:  first-image:"), "{summary}");
    assert!(
        !text.contains("installs"),
        "nothing to install, none said:\n{text}"
    );
}

/// A project whose `requirements` is a `uv.lock` that the host's uv makes (PyPI): requests
/// and pyyaml, a dependency only Python < 3.11 gets, an extra the spec asks for
/// (`pip_extra_args = "--extra fast"`) and a dev group uv sync leaves out (`--no-dev`).
fn uv_lock_project(d: &Path, env: &Env, name: &str) -> PathBuf {
    let proj = d.join("lockproj");
    std::fs::create_dir_all(proj.join("src")).expect("dirs");
    std::fs::write(
        proj.join("src/app.py"),
        "import requests, yaml, attrs\n\ndef main():\n    return yaml.safe_dump({\"ok\": True})\n",
    )
    .expect("source");
    std::fs::write(
        proj.join("pyproject.toml"),
        r#"[project]
name = "H_UvLock.Demo"
version = "0.1.0"
requires-python = ">=3.9"
dependencies = ["requests", "pyyaml", "tomli; python_version < '3.11'"]

[project.optional-dependencies]
fast = ["attrs"]

[dependency-groups]
dev = ["six"]
"#,
    )
    .expect("pyproject");
    let out = Process::new(&env.uv)
        .args(["lock", "--quiet", "--no-config"])
        .env("UV_NATIVE_TLS", "1")
        .current_dir(&proj)
        .output()
        .expect("uv lock");
    assert!(
        out.status.success(),
        "uv lock: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec = format!(
        r#"
name = "{name}"
registry = "{registry}"
base_image = "{base}"
requirements = "uv.lock"
pip_extra_args = "--extra fast"
source_root = "src"
source_copy_mode = "all"
builder_config = {{ uv_image = "{uv}" }}
"#,
        registry = env.registry,
        base = env.base_python,
        uv = env.uv_image,
    );
    std::fs::write(proj.join("spec.toml"), spec).expect("spec");
    proj
}

/// What `uv_lock_project`'s lock installs for Python 3.11 with `--extra fast` (no dev
/// group, no `tomli`).
const LOCKED_FOR_PYTHON_311: &[&str] = &[
    "attrs",
    "certifi",
    "charset-normalizer",
    "idna",
    "pyyaml",
    "requests",
    "urllib3",
];

/// `name==version` of each package of `uv.lock` named in `names`.
fn locked_versions(proj: &Path, names: &[&str]) -> Vec<String> {
    let lock: toml::Table =
        toml::from_str(&std::fs::read_to_string(proj.join("uv.lock")).expect("uv.lock"))
            .expect("uv.lock parses");
    let packages = lock["package"].as_array().expect("packages");
    let mut out: Vec<String> = names
        .iter()
        .map(|n| {
            let p = packages
                .iter()
                .find(|p| p["name"].as_str() == Some(n))
                .unwrap_or_else(|| panic!("{n} is not in uv.lock"));
            format!("{n}=={}", p["version"].as_str().expect("version"))
        })
        .collect();
    out.sort();
    out
}

/// What a `uv.lock` image must show: its user, the venv, every installed distribution
/// (`name==version`, sorted, pip's `_virtualenv` helpers aside) and the source importing.
const LOCK_CHECK: &str = r#"set -e
id -un
python -c 'import sys; print(sys.prefix)'
python -c 'import importlib.metadata as m; print(" ".join(sorted(d.metadata["Name"].lower() + "==" + d.version for d in m.distributions())))'
python -c 'import app; print(app.main().strip())'
cat /root/.venv/pyvenv.cfg
"#;

/// Issue 15, `uv.lock`: with no daemon the dependency image is made by uv (export of the
/// lock, then exactly the locked set, wheels only) and pushed; the image runs as `flytekit`
/// with exactly the locked versions for the image's Python (no dev group, the extra asked
/// for, no marker-excluded package) in uv sync's project venv; and dockerd's image of the
/// same spec (`uv sync --locked` in the image) has the same files and config but for the
/// documented differences.
#[test]
fn uv_lock_builds_without_a_daemon_as_dockerd_builds_it() {
    let Some(env) = services() else { return };
    let run = run_id();
    let uv_dir = tempfile::tempdir().expect("tempdir");
    let uv_proj = uv_lock_project(uv_dir.path(), &env, &format!("h-uvlock-uv-{run}"));
    let planned = plan(&uv_proj, &env, &["spec.toml"], &[]);
    assert_eq!(
        planned["strategy"], "build_dependencies_then_append",
        "{planned}"
    );
    assert_eq!(planned["dependency_builder"], "uv", "{planned}");
    let (ok, result, log) = build(&uv_proj, &env, Some(NO_DAEMON), &["spec.toml"]);
    assert!(ok && result["action"] == "appended", "{log}");
    assert!(
        result["reason"]
            .as_str()
            .is_some_and(|r| r.contains("without a daemon (uv)")),
        "{result}"
    );
    let uv_image = inspect_json(&uv_proj, "spec.toml")["image"]
        .as_str()
        .expect("image")
        .to_string();

    let out = run_in(&uv_image, LOCK_CHECK);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "flytekit", "{out}");
    assert_eq!(lines[1], "/root/.venv", "{out}");
    let want = locked_versions(&uv_proj, LOCKED_FOR_PYTHON_311).join(" ");
    assert_eq!(
        lines[2], want,
        "exactly the locked set for Python 3.11: {out}"
    );
    assert_eq!(lines[3], "ok: true", "{out}");
    assert!(
        out.contains("include-system-site-packages = false\n")
            && out.contains("prompt = h-uvlock-demo\n"),
        "uv sync's project venv: {out}"
    );

    // The same spec through dockerd.
    let docker_dir = tempfile::tempdir().expect("tempdir");
    let docker_proj = uv_lock_project(docker_dir.path(), &env, &format!("h-uvlock-docker-{run}"));
    std::fs::copy(uv_proj.join("uv.lock"), docker_proj.join("uv.lock")).expect("same lock");
    let (ok, result, log) = build(&docker_proj, &env, None, &["spec.toml", "--no-daemonless"]);
    assert!(ok && result["action"] == "appended", "{log}");
    let docker_image = inspect_json(&docker_proj, "spec.toml")["image"]
        .as_str()
        .expect("image")
        .to_string();
    assert_eq!(
        run_in(&docker_image, LOCK_CHECK),
        out,
        "user, venv, versions, pyvenv.cfg"
    );

    let (uv_files, _) = assert_same_image(&uv_image, &docker_image);
    for must in [
        "/root/.venv/lib/python3.11/site-packages/attrs\t",
        "/root/.venv/bin/normalizer\t",
        "/root/.venv/CACHEDIR.TAG\t",
    ] {
        assert!(uv_files.iter().any(|l| l.starts_with(must)), "{must}");
    }
}

/// Issue 15, several platforms for real: a `uv.lock` spec on the two-platform base (its
/// arm64 image a debootstrapped arm64 Debian) built with no daemon for linux/amd64 and
/// linux/arm64 — one export of the lock, each platform's wheels, nothing run — is an index
/// whose two images both run (arm64 under qemu) as `flytekit`, with exactly the locked set
/// and their own machine's compiled pyyaml.
#[test]
fn a_uv_lock_for_two_platforms_runs_on_both() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let proj = uv_lock_project(dir.path(), &env, &format!("h-uvlock-multi-{}", run_id()));
    let spec = std::fs::read_to_string(proj.join("spec.toml")).expect("spec");
    let spec = spec.replace(
        &format!("base_image = \"{}\"\n", env.base_python),
        &format!(
            "base_image = \"{}\"\nplatform = \"linux/amd64,linux/arm64\"\n",
            env.base_python_multi
        ),
    );
    assert!(spec.contains("linux/arm64"), "{spec}");
    std::fs::write(proj.join("spec.toml"), spec).expect("spec");
    let planned = plan(&proj, &env, &["spec.toml"], &[]);
    assert_eq!(planned["dependency_builder"], "uv", "{planned}");
    let (ok, result, log) = build(&proj, &env, Some(NO_DAEMON), &["spec.toml"]);
    assert!(ok && result["action"] == "appended", "{log}");
    let image = inspect_json(&proj, "spec.toml")["image"]
        .as_str()
        .expect("image")
        .to_string();
    let index: Value = serde_json::from_str(&output(Process::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ])))
    .expect("json");
    let mut archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("not an index: {index}"))
        .iter()
        .map(|m| {
            m["platform"]["architecture"]
                .as_str()
                .expect("architecture")
        })
        .collect();
    archs.sort();
    assert_eq!(archs, ["amd64", "arm64"], "{index}");

    let want = locked_versions(&proj, LOCKED_FOR_PYTHON_311).join(" ");
    let script = format!(
        "{LOCK_CHECK}python -c 'import platform, yaml; print(platform.machine(), yaml.__with_libyaml__)'\n"
    );
    for (platform, machine) in [("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")] {
        let out = common::e2e::run_on(platform, &image, "bash", &script);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[..4],
            ["flytekit", "/root/.venv", &want, "ok: true"],
            "{platform}: {out}"
        );
        assert_eq!(
            lines.last().copied(),
            Some(format!("{machine} True").as_str()),
            "{platform}: the platform's own compiled pyyaml: {out}"
        );
    }
}

/// Issue 15, `uv.lock` out of date with `pyproject.toml`: uv sync `--locked` fails in the
/// image, and the daemonless build fails the same way (no fallback: the lock is wrong, not
/// the builder) with uv's message and the same exit code.
#[test]
fn a_stale_uv_lock_fails_alike_without_and_with_a_daemon() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let proj = uv_lock_project(dir.path(), &env, &format!("h-uvlock-stale-{}", run_id()));
    let pyproject = std::fs::read_to_string(proj.join("pyproject.toml")).expect("pyproject");
    std::fs::write(
        proj.join("pyproject.toml"),
        pyproject.replace(r#""requests", "pyyaml""#, r#""requests", "pyyaml", "six""#),
    )
    .expect("pyproject");
    let stale = "needs to be updated, but `--locked` was provided";
    let mut codes = Vec::new();
    for (host, args) in [
        (Some(NO_DAEMON), &["spec.toml"][..]),
        (None, &["spec.toml", "--no-daemonless"][..]),
    ] {
        let mut cmd = imagespec(&proj, &env, host);
        let out = cmd.args(["build"]).args(args).output().expect("run");
        let log = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(log.contains(stale), "{host:?}: {log}");
        assert!(!log.contains("building it with dockerd"), "{log}");
        codes.push(out.status.code());
    }
    assert_eq!(codes, [Some(1), Some(1)]);
}
