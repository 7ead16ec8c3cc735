//! End-to-end tests of the envd builder (`builder = "envd"`): the real envd CLI
//! (`scripts/e2e/envd.sh`), dockerd's BuildKit and the TLS registry `registry.test:5443`,
//! started by `scripts/test.sh` (`scripts/e2e/up.sh`, `base-images.sh`), checked from the
//! outside with skopeo and `docker run`. The TLS registry because envd resolves base images
//! over HTTPS itself while dockerd pulls localhost registries over plain HTTP. Without the
//! services these tests fail under `CI`, and say why and pass elsewhere.

use assert_cmd::Command;
use serde_json::Value;
use std::path::Path;
use std::process::Command as Process;

mod common;

use common::e2e::{
    DOCKER, EnvFile, docker_up, env_list, files_beyond, imagespec_in, missing, output, result,
    run_id, run_json, source_files,
};

struct Env {
    registry: String,
    base: String,
    envd: String,
}

/// The harness's services and envd, or `None` (and a note) when they are missing outside CI.
fn services() -> Option<Env> {
    let file = EnvFile::load();
    let env = Env {
        registry: file
            .get("IMAGESPEC_E2E_TLS_REGISTRY")
            .unwrap_or_else(|| "registry.test:5443".into()),
        base: file
            .get("IMAGESPEC_E2E_ENVD_BASE")
            .unwrap_or_else(|| "registry.test:5443/envd-python:bookworm".into()),
        envd: file
            .get("IMAGESPEC_ENVD")
            .unwrap_or_else(|| format!("{}/envd-1.3.6/bin/envd", file.cache())),
    };
    let missing_what = if !docker_up() {
        Some("dockerd".to_string())
    } else if !Path::new(&env.envd).is_file() {
        Some(format!(
            "the envd CLI ({}; scripts/e2e/envd.sh installs it)",
            env.envd
        ))
    } else if !Process::new("skopeo")
        .args(["inspect", "--raw", &format!("docker://{}", env.base)])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        Some(format!(
            "the envd base image {} in the TLS registry (scripts/e2e/base-images.sh makes it)",
            env.base
        ))
    } else {
        None
    };
    if let Some(what) = missing_what {
        return missing(&format!(
            "envd e2e services are not ready: {what} missing ({}); scripts/test.sh starts \
             them (scripts/e2e/up.sh && scripts/e2e/base-images.sh)",
            file.path
        ));
    }
    Some(env)
}

fn imagespec(dir: &Path, env: &Env) -> Command {
    let mut cmd = imagespec_in(dir);
    cmd.env("IMAGESPEC_ENVD", &env.envd);
    cmd
}

/// `imagespec build --json ARGS`: (success, every JSON event line with the result last,
/// everything printed).
fn build_json(dir: &Path, env: &Env, args: &[&str]) -> (bool, Vec<Value>, String) {
    run_json(imagespec(dir, env).args(["build", "--json"]).args(args)).into_parts()
}

/// The acceptance test of the envd backend: a spec with packages, apt packages, env (an int
/// among them), an entrypoint, commands (one with quotes, which flytekit's own build.envd
/// breaks), requirements, source files and a `copy` entry builds with envd and is pushed to
/// the TLS registry; from outside the image has the packages, the env (with flytekit's
/// `_F_IMG_ID`), the entrypoint, the commands' effects and exactly the hashed files under
/// /root; a second run builds nothing.
#[test]
fn envd_build_is_pushed_and_right_from_outside() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let run = run_id();
    std::fs::create_dir_all(d.join("proj/wf")).expect("mkdir");
    // The run id is in a source file: a new tag each run, while BuildKit's cache keeps the
    // apt and pip steps (which come before the source) fast.
    std::fs::write(d.join("proj/wf/main.py"), format!("import yaml\n\nRUN = {run:?}\n\ndef main():\n    return yaml.safe_dump({{\"ok\": 1}})\n")).expect("write");
    std::fs::write(d.join("proj/wf/__init__.py"), "").expect("write");
    std::fs::write(d.join("proj/requirements.txt"), "requests\n").expect("write");
    std::fs::write(d.join("extra.ini"), "k = 1\n").expect("write");
    let spec = format!(
        r#"
name = "envd-e2e"
builder = "envd"
registry = "{registry}"
base_image = "{base}"
packages = ["six", "pyyaml"]
apt_packages = ["jq"]
requirements = "proj/requirements.txt"
env = {{ APP_ENV = "e2e", GREETING = "hello world", PORT = 8080 }}
entrypoint = ["python", "-c", "print('entrypoint ran')"]
commands = ["echo built > /tmp/marker", "jq --version > /tmp/jq-version", "python -c 'import six, yaml, requests; print(\"imports ok\")'"]
source_root = "proj"
source_copy_mode = "all"
copy = ["extra.ini"]
"#,
        registry = env.registry,
        base = env.base,
    );
    std::fs::write(d.join("spec.toml"), spec).expect("spec");
    let inspected: Value = serde_json::from_slice(
        &imagespec(d, &env)
            .args(["inspect", "spec.toml", "--json"])
            .output()
            .expect("inspect")
            .stdout,
    )
    .expect("json");
    let image = inspected["image"].as_str().expect("image").to_string();
    let id = inspected["id"].as_str().expect("id").to_string();

    let started = std::time::Instant::now();
    let (ok, events, log) = build_json(d, &env, &["spec.toml"]);
    eprintln!("envd build + push: {:.1}s", started.elapsed().as_secs_f64());
    assert!(ok, "build failed:\n{log}");
    assert_eq!(result(&events)["action"], "built", "{log}");
    assert_eq!(result(&events)["pushed"], true);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "step" && e["state"] == "done"),
        "envd's progress was streamed:\n{log}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "log"
                && e["text"].as_str().is_some_and(|t| t.contains("imports ok"))),
        "{log}"
    );

    // The registry has it (skopeo, not us), with flytekit's id and the spec's env.
    let config: Value = serde_json::from_str(&output(Process::new("skopeo").args([
        "inspect",
        "--config",
        &format!("docker://{image}"),
    ])))
    .expect("skopeo json");
    let env_list = env_list(&config["config"]);
    // PORT: an int in the spec, a string for envd (which panics on an int).
    for wanted in [
        format!("_F_IMG_ID={id}"),
        "APP_ENV=e2e".into(),
        "GREETING=hello world".into(),
        "PORT=8080".into(),
        "PYTHONPATH=/root:".into(),
    ] {
        assert!(
            env_list.contains(&wanted.as_str()),
            "{wanted} not in {env_list:?}"
        );
    }
    // flytekit's envd plugin drops `entrypoint`; imagespec keeps it.
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["python", "-c", "print('entrypoint ran')"])
    );
    assert_eq!(
        config["config"]["Labels"]["ai.tensorchord.envd.vendor"], "envd",
        "built by envd"
    );

    // Pulled and run from the registry: packages import, commands left their marks, /root
    // holds exactly the hashed source files and the copy entry (beyond the base's).
    let _ = Process::new(DOCKER).args(["rmi", "-f", &image]).output();
    output(Process::new(DOCKER).args(["pull", "-q", &image]));
    let list_root = "cd /root && find . -path ./.cache -prune -o -type f -print | sort";
    let base_root =
        output(Process::new(DOCKER).args(["run", "--rm", &env.base, "bash", "-c", list_root]));
    assert_eq!(
        output(Process::new(DOCKER).args(["run", "--rm", &image])),
        "entrypoint ran\n"
    );
    let ran = output(Process::new(DOCKER).args([
        "run", "--rm", "--entrypoint", "bash", &image, "-c",
        &format!("{list_root} && echo --- && cat /tmp/marker /tmp/jq-version && jq --version && python -c 'import six, yaml, requests, wf.main; print(wf.main.main().strip(), wf.main.RUN)' && echo \"$_F_IMG_ID|$APP_ENV|$GREETING\""),
    ]));
    let (listing, rest) = ran.split_once("---\n").expect("marker");
    assert_eq!(
        rest.lines().collect::<Vec<_>>(),
        [
            "built",
            "jq-1.6",
            "jq-1.6",
            &format!("ok: 1 {run}"),
            &format!("{id}|e2e|hello world")
        ]
    );
    let in_root = files_beyond(listing, &base_root);
    let mut want = source_files(&inspected);
    want.insert("extra.ini".into());
    assert_eq!(
        in_root, want,
        "files under /root (no build.envd, no context requirements.txt)"
    );

    // A second build finds it and builds nothing.
    let (ok, events, log) = build_json(d, &env, &["spec.toml"]);
    assert!(ok, "{log}");
    assert_eq!(result(&events)["action"], "skipped");
    assert!(
        !events.iter().any(|e| e["event"] == "step"),
        "no build step ran"
    );
    let _ = Process::new(DOCKER).args(["rmi", "-f", &image]).output();
}

/// A failing command: exit 1, and the error names the step and shows its output.
#[test]
fn envd_build_failure_shows_the_failing_step() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = format!(
        "name = \"envd-e2e-fail\"\nbuilder = \"envd\"\nbase_image = \"{base}\"\nenv = {{ RUN_ID = \"{run}\" }}\ncommands = [\"echo about to fail\", \"python -c 'import no_such_module_xyz'\"]\n",
        base = env.base,
        run = run_id(),
    );
    std::fs::write(dir.path().join("spec.toml"), spec).expect("spec");
    let out = imagespec(dir.path(), &env)
        .args(["build", "spec.toml", "--no-push"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("build failed at step `bash -c set -euo pipefail; echo about to fail;"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ModuleNotFoundError: No module named 'no_such_module_xyz'"),
        "{stderr}"
    );
}

/// No envd: one line saying how to get it.
#[test]
fn missing_envd_is_one_clear_error() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = format!(
        "name = \"envd-e2e-missing\"\nbuilder = \"envd\"\nbase_image = \"{}\"\nenv = {{ RUN_ID = \"{}\" }}\n",
        env.base,
        run_id()
    );
    std::fs::write(dir.path().join("spec.toml"), spec).expect("spec");
    let out = imagespec(dir.path(), &env)
        .env("IMAGESPEC_ENVD", "/nonexistent/envd")
        .args(["build", "spec.toml", "--no-push"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("IMAGESPEC_ENVD=/nonexistent/envd is not a file")
            && stderr.contains("pip install envd==1.3.6"),
        "{stderr}"
    );
}

/// `--output` assembles on a dependency image, which only the default builder makes: refused
/// before anything is built (no services needed).
#[test]
fn envd_refuses_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("spec.toml"), "name = \"envd-out\"\nbuilder = \"envd\"\nregistry = \"localhost:5000\"\ncopy = [\"spec.toml\"]\n").expect("spec");
    let out = Command::cargo_bin("imagespec")
        .expect("binary")
        .current_dir(dir.path())
        .args(["build", "spec.toml", "--output", "oci:out"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the envd builder pushes"), "{stderr}");
    assert!(!dir.path().join("out").exists());
}
