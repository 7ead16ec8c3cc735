//! `plan` and `build` agree (issue 26): over a project's life and the cases where what
//! `build` needs is not there, `plan --json` says the strategy, the reason and the exit code
//! that `build --json` then gives. `plan` reads the base before it says uv builds without a
//! daemon, so a base uv cannot read is dockerd's (which reads bases its own way: here one
//! only in its store) or, for `--output` without a registry, the build's failure (exit 1).
//! Services come from `scripts/e2e/` and uv from `scripts/e2e/uv.sh`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

mod common;

use common::e2e::{DOCKER, JsonRun, imagespec_in, output, run_id, run_json, sh};

struct Env {
    services: common::e2e::Services,
    uv: PathBuf,
}

fn services() -> Option<Env> {
    let services = common::e2e::services()?;
    let uv = services.file.uv()?;
    Some(Env { services, uv })
}

/// `imagespec COMMAND --json ARGS` with uv, the daemonless builder on and no caches.
fn imagespec(proj: &Path, env: &Env, command: &str, args: &[&str]) -> JsonRun {
    run_json(
        imagespec_in(proj)
            .env("IMAGESPEC_UV", &env.uv)
            .env_remove("IMAGESPEC_NO_DAEMONLESS")
            .args([command, "--json"])
            .args(args),
    )
}

/// Plans, then builds, with `args`; asserts they agree (the strategy, its reason and the
/// exit code, or the refusal `build` stops with) and that `build` took `strategy` with
/// exit code `code`. Returns the build's result event (`Null` when it failed).
fn plan_then_build(proj: &Path, env: &Env, args: &[&str], strategy: &str, code: i32) -> Value {
    let plan = imagespec(proj, env, "plan", args);
    let [planned] = plan.events.as_slice() else {
        panic!("one image planned:\n{}", plan.text)
    };
    let built = imagespec(proj, env, "build", args);
    let said = format!("plan:\n{}\nbuild:\n{}", plan.text, built.text);
    assert_eq!(built.code, Some(code), "{said}");
    assert_eq!(plan.code, built.code, "{said}");
    assert_eq!(planned["exit_code"], code, "{said}");
    let reason = planned["reason"].as_str().expect("a reason");
    if code != 0 {
        assert_eq!(planned["strategy"], Value::Null, "{said}");
        let error = built
            .events
            .iter()
            .find(|e| e["event"] == "error")
            .unwrap_or_else(|| panic!("an error event: {said}"));
        let message = error["message"].as_str().expect("message");
        assert!(message.ends_with(reason), "{said}");
        return Value::Null;
    }
    assert_eq!(planned["strategy"], strategy, "{said}");
    let result = built.result();
    assert_eq!(result["strategy"], strategy, "{said}");
    assert_eq!(result["reason"], reason, "{said}");
    assert_eq!(result["image"], planned["image"], "{said}");
    result.clone()
}

/// A project of two source files whose spec has `base` and, when given, `registry`.
fn project(d: &Path, env: &Env, name: &str, base: &str, registry: Option<&str>) -> PathBuf {
    std::fs::create_dir_all(d).expect("project dir");
    sh(
        d,
        "mkdir -p proj/src/app && printf 'print(1)\\n' > proj/src/app/main.py \
         && printf '' > proj/src/app/__init__.py",
    );
    let registry = registry.map_or(String::new(), |r| format!("registry = \"{r}\"\n"));
    let spec = format!(
        "name = \"{name}\"\n{registry}base_image = \"{base}\"\npackages = [\"six\"]\n\
         source_root = \"src\"\nsource_copy_mode = \"all\"\nbuilder_config = {{ uv_image = \"{}\" }}\n\
         builder_options = {{ add_flytekit = false }}\n",
        env.services.uv_image
    );
    let proj = d.join("proj");
    std::fs::write(proj.join("spec.toml"), spec).expect("spec");
    proj
}

/// A project's life with a base uv reads: the first build (uv), no change (skip), a code
/// change (append); and `--output` without a registry (made here by uv).
#[test]
fn plan_and_build_agree_over_a_projects_life() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (registry, base) = (&env.services.registry, &env.services.base_python);
    let name = format!("plan-agrees-{}", run_id());
    let proj = project(dir.path(), &env, &name, base, Some(registry));

    let first = plan_then_build(
        &proj,
        &env,
        &["spec.toml"],
        "build_dependencies_then_append",
        0,
    );
    let reason = first["reason"].as_str().unwrap();
    assert!(reason.contains("without a daemon (uv)"), "{first}");
    plan_then_build(&proj, &env, &["spec.toml"], "skip", 0);
    std::fs::write(proj.join("src/app/main.py"), "print(2)\n").expect("edit");
    plan_then_build(&proj, &env, &["spec.toml"], "append", 0);

    let here = project(&dir.path().join("here"), &env, &name, base, None);
    let out = format!("oci:{}", dir.path().join("layout").display());
    plan_then_build(
        &here,
        &env,
        &["spec.toml", "--output", &out],
        "write_output",
        0,
    );
    assert!(dir.path().join("layout/index.json").is_file());
}

/// A base no registry serves (here: only in dockerd's store) is not uv's: `plan` reads it
/// first and says dockerd builds, as `build` then does; with `--output` and no registry
/// there is no dockerd to turn to, and both stop with exit 1 and what to do.
#[test]
fn a_base_uv_cannot_read_is_planned_as_built() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_id();
    // Port 1 on loopback: nothing listens, so no registry serves this name.
    let local = format!("127.0.0.1:1/plan-local-base:{run}");
    output(Process::new(DOCKER).args(["pull", "-q", &env.services.base_python]));
    output(Process::new(DOCKER).args(["tag", &env.services.base_python, &local]));
    let registry = &env.services.registry;
    let name = format!("plan-local-base-{run}");
    let proj = project(dir.path(), &env, &name, &local, Some(registry));

    let built = plan_then_build(
        &proj,
        &env,
        &["spec.toml"],
        "build_dependencies_then_append",
        0,
    );
    let reason = built["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "with dockerd (the base image {local} cannot be read from its registry: read it \
             through a mirror"
        )),
        "{built}"
    );

    let here = project(&dir.path().join("here"), &env, &name, &local, None);
    let out = format!("oci:{}", dir.path().join("layout").display());
    plan_then_build(&here, &env, &["spec.toml", "--output", &out], "", 1);
    assert!(!dir.path().join("layout").exists(), "nothing written");
    output(Process::new(DOCKER).args(["rmi", &local]));
}
