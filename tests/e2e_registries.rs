//! End-to-end against the token-auth registry of `scripts/e2e/up.sh` (distribution
//! `auth: token` and `scripts/e2e/token_server.py`, 5 s tokens): private bases pulled by
//! BuildKit with the user's credentials, identity tokens (in `auths` and from a helper),
//! token refresh, and the refusals' messages. Checked from outside: skopeo, docker, the
//! token server's request log. Without the services these tests fail under `CI`, and say
//! why and pass elsewhere.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

mod common;

use common::e2e::{DOCKER, EnvFile, docker_up, imagespec_in, missing, run_id};

struct Env {
    registry: String,
    rw: (String, String),
    ro: (String, String),
    identity_rw: String,
    log: PathBuf,
    base_python: String,
    uv_image: String,
}

/// The token registry and dockerd, or `None` (and a note) when they are not running outside
/// CI.
fn services() -> Option<Env> {
    let file = EnvFile::load();
    let registry = file.get("IMAGESPEC_E2E_TOKEN_REGISTRY");
    // The token registry answers /v2/ with 401 and a Bearer challenge.
    let up = registry.as_ref().is_some_and(|r| {
        Process::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://{r}/v2/"))
            .output()
            .is_ok_and(|o| o.stdout == b"401")
    }) && docker_up();
    if !up {
        return missing(&format!(
            "the token registry is not running ({}); scripts/test.sh starts it \
             (scripts/e2e/up.sh)",
            file.path
        ));
    }
    Some(Env {
        registry: registry.unwrap_or_default(),
        rw: (
            file.need("IMAGESPEC_E2E_TOKEN_RW_USER"),
            file.need("IMAGESPEC_E2E_TOKEN_RW_PASSWORD"),
        ),
        ro: (
            file.need("IMAGESPEC_E2E_TOKEN_RO_USER"),
            file.need("IMAGESPEC_E2E_TOKEN_RO_PASSWORD"),
        ),
        identity_rw: file.need("IMAGESPEC_E2E_TOKEN_IDENTITY_RW"),
        log: PathBuf::from(file.need("IMAGESPEC_E2E_TOKEN_LOG")),
        base_python: file.base_python(),
        uv_image: file.uv_image(),
    })
}

fn basic(user: &str, password: &str) -> String {
    use std::io::Write;
    let mut child = Process::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("base64");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{user}:{password}").as_bytes())
        .unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

/// A DOCKER_CONFIG directory whose config.json is `json`.
fn docker_config(dir: &Path, name: &str, json: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("config.json"), json).unwrap();
    d
}

fn auths(env: &Env, entry: &str) -> String {
    format!(r#"{{"auths": {{"{}": {entry}}}}}"#, env.registry)
}

/// `image` copied into the token registry as a private repository (pushed as the rw user),
/// and removed from dockerd, which has then never seen it.
fn private_copy(env: &Env, image: &str, run: &str, name: &str) -> String {
    let target = format!("{}/registries-e2e/{run}/private/{name}", env.registry);
    let out = Process::new("skopeo")
        .args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--dest-creds",
            &format!("{}:{}", env.rw.0, env.rw.1),
            &format!("docker://{image}"),
            &format!("docker://{target}"),
        ])
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = Process::new(DOCKER).args(["rmi", &target]).output();
    target
}

/// `imagespec ARGS` in `dir` with `DOCKER_CONFIG=config` (and `path` first on PATH):
/// success, and stdout + stderr.
fn imagespec(dir: &Path, config: &Path, path: Option<&Path>, args: &[&str]) -> (bool, String) {
    let mut cmd = imagespec_in(dir);
    cmd.env("DOCKER_CONFIG", config).args(args);
    if let Some(p) = path {
        let old = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{old}", p.display()));
    }
    let out = cmd.output().expect("run imagespec");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn result(log: &str) -> Value {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .rfind(|e| e["event"] == "result")
        .unwrap_or_else(|| panic!("no result event:\n{log}"))
}

/// A project on private bases in the token registry, pushing there, with source files (so
/// that the fast path applies).
fn project(d: &Path, env: &Env, run: &str, name: &str, base: &str, uv: &str) -> PathBuf {
    let proj = d.join(name);
    std::fs::create_dir_all(proj.join("src/pkg")).unwrap();
    std::fs::write(proj.join("src/pkg/main.py"), "print('v1')\n").unwrap();
    std::fs::write(
        proj.join("spec.toml"),
        format!(
            r#"
name = "{name}"
registry = "{registry}/registries-e2e/{run}"
base_image = "{base}"
packages = ["six"]
env = {{ RUN_ID = "{run}" }}
source_root = "src"
source_copy_mode = "all"
builder_config = {{ uv_image = "{uv}" }}
builder_options = {{ add_flytekit = false }}
"#,
            registry = env.registry
        ),
    )
    .unwrap();
    proj
}

fn skopeo_config(env: &Env, image: &str) -> String {
    let out = Process::new("skopeo")
        .args([
            "inspect",
            "--config",
            "--tls-verify=false",
            "--creds",
            &format!("{}:{}", env.rw.0, env.rw.1),
            &format!("docker://{image}"),
        ])
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "{image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether the file system of `image` (in dockerd) holds `needle` anywhere.
fn layers_contain(image: &str, needle: &str) -> bool {
    let id = String::from_utf8(
        Process::new(DOCKER)
            .args(["create", image, "true"])
            .output()
            .expect("docker create")
            .stdout,
    )
    .unwrap();
    let id = id.trim();
    let found = Process::new("bash")
        .args([
            "-c",
            &format!("{DOCKER} export {id} | grep -a -c -F -e \"$1\""),
            "_",
            needle,
        ])
        .output()
        .expect("export")
        .status
        .success();
    let _ = Process::new(DOCKER).args(["rm", id]).output();
    found
}

/// Token requests by imagespec itself (not dockerd/BuildKit) for `repository`.
fn own_refreshes(env: &Env, repository: &str) -> usize {
    std::fs::read_to_string(&env.log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| {
            r["client_id"] == "imagespec"
                && r["grant"] == "refresh_token"
                && r["status"] == 200
                && r["scopes"].to_string().contains(repository)
        })
        .count()
}

/// Issue 9: a private base (and builder image) in a token registry, on a daemon that has
/// never seen them, for a plain build, a nested base spec and `--output oci:`; no secret
/// anywhere in the output, the image's config (history, labels) or its files.
#[test]
fn private_bases_are_pulled_with_the_users_credentials() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = run_id();
    let base = private_copy(&env, &env.base_python, &run, "python");
    let uv = private_copy(&env, &env.uv_image, &run, "uv");
    let config = docker_config(
        d,
        "rw",
        &auths(
            &env,
            &format!(r#"{{"auth": "{}"}}"#, basic(&env.rw.0, &env.rw.1)),
        ),
    );

    let proj = project(d, &env, &run, "private-base", &base, &uv);
    let (ok, log) = imagespec(
        &proj,
        &config,
        None,
        &["build", "--json", "--no-fast-path", "spec.toml"],
    );
    assert!(ok, "{log}");
    let image = result(&log)["image"].as_str().unwrap().to_string();
    assert_eq!(result(&log)["action"], "built", "{log}");
    let image_config = skopeo_config(&env, &image);
    for secret in [&env.rw.1, &basic(&env.rw.0, &env.rw.1)] {
        assert!(
            !log.contains(secret.as_str()),
            "secret in the output:\n{log}"
        );
        assert!(
            !image_config.contains(secret.as_str()),
            "secret in the image config"
        );
        assert!(
            !layers_contain(&image, secret),
            "secret in the image's files"
        );
    }

    // A nested base spec on the private base: built first, through BuildKit, too.
    let _ = Process::new(DOCKER).args(["rmi", &base, &uv]).output();
    let nested = d.join("nested");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(
        nested.join("spec.toml"),
        format!(
            r#"
name = "nested-app"
registry = "{registry}/registries-e2e/{run}"
packages = ["six"]
base_image = {{ name = "nested-base", base_image = "{base}", packages = ["pyyaml"], builder_config = {{ uv_image = "{uv}" }} }}
builder_config = {{ uv_image = "{uv}" }}
"#,
            registry = env.registry
        ),
    )
    .unwrap();
    let (ok, log) = imagespec(&nested, &config, None, &["build", "--json", "spec.toml"]);
    assert!(ok, "{log}");
    skopeo_config(&env, result(&log)["image"].as_str().unwrap());

    // `--output oci:` from a private base: the dependency image is built, the layout written.
    let _ = Process::new(DOCKER).args(["rmi", &base, &uv]).output();
    let out = project(d, &env, &run, "private-output", &base, &uv);
    let layout = d.join("layout");
    let target = format!("oci:{}", layout.display());
    let (ok, log) = imagespec(
        &out,
        &config,
        None,
        &["build", "--json", "spec.toml", "--output", &target],
    );
    assert!(ok && result(&log)["action"] == "written", "{log}");
    let seen = Process::new("skopeo")
        .args(["inspect", "--config", &format!("oci:{}", layout.display())])
        .output()
        .unwrap();
    assert!(
        seen.status.success(),
        "{}",
        String::from_utf8_lossy(&seen.stderr)
    );
    assert!(!String::from_utf8_lossy(&seen.stdout).contains(&env.rw.1));
}

/// Identity tokens: in `auths` and from a helper answering `<token>`, for `exists`, the
/// fast path and the build; imagespec's own tokens (5 s) are refreshed during one build; the
/// helper is asked for `host:port`.
#[test]
fn identity_tokens_work_everywhere_and_are_refreshed() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = run_id();
    let base = private_copy(&env, &env.base_python, &run, "python");
    let uv = private_copy(&env, &env.uv_image, &run, "uv");
    let config = docker_config(
        d,
        "idt",
        &auths(
            &env,
            &format!(r#"{{"identitytoken": "{}"}}"#, env.identity_rw),
        ),
    );
    let proj = project(d, &env, &run, "identity", &base, &uv);
    let repository = format!("registries-e2e/{run}/identity");

    // First build: the dependency image through BuildKit (which gets the token as docker's
    // CLI gives it), then the source appended by imagespec in the registry.
    let (ok, log) = imagespec(&proj, &config, None, &["build", "--json", "spec.toml"]);
    assert!(ok && result(&log)["action"] == "appended", "{log}");
    let image = result(&log)["image"].as_str().unwrap().to_string();
    skopeo_config(&env, &image);
    // Checked before the dependency build (seconds) and used again after it: the first 5 s
    // token was replaced.
    assert!(
        own_refreshes(&env, &repository) >= 2,
        "imagespec's token was not refreshed during the build"
    );
    assert!(
        !log.contains(&env.identity_rw),
        "identity token in the output"
    );

    let (ok, log) = imagespec(&proj, &config, None, &["exists", "spec.toml"]);
    assert!(ok && log.starts_with("yes"), "{log}");

    // A helper answering `<token>`; it records what it is asked.
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let asked = d.join("asked");
    let helper = bin.join("docker-credential-e2etoken");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\ncat >> {asked}\necho >> {asked}\nprintf '{{\"Username\":\"<token>\",\"Secret\":\"%s\"}}' '{token}'\n",
            asked = asked.display(),
            token = env.identity_rw
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let helped = docker_config(
        d,
        "helper",
        &format!(r#"{{"credHelpers": {{"{}": "e2etoken"}}}}"#, env.registry),
    );
    std::fs::write(proj.join("src/pkg/main.py"), "print('v2')\n").unwrap();
    let (ok, log) = imagespec(
        &proj,
        &helped,
        Some(&bin),
        &["build", "--json", "spec.toml"],
    );
    assert!(ok && result(&log)["action"] == "appended", "{log}");
    let (ok, log) = imagespec(&proj, &helped, Some(&bin), &["exists", "spec.toml"]);
    assert!(ok && log.starts_with("yes"), "{log}");
    let asked = std::fs::read_to_string(&asked).unwrap();
    assert!(
        asked.lines().all(|l| l == env.registry) && !asked.is_empty(),
        "the helper was asked for {asked:?}"
    );
}

/// Wrong password, anonymous, a pull-only user pushing, a failing helper: each its own one
/// line, with no secret.
#[test]
fn refusals_say_whose_and_why() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = run_id();
    let base = private_copy(&env, &env.base_python, &run, "python");
    let uv = private_copy(&env, &env.uv_image, &run, "uv");
    let proj = project(d, &env, &run, "refusals", &base, &uv);
    let error_lines = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.starts_with("error:"))
            .map(str::to_string)
            .collect()
    };

    let wrong = docker_config(
        d,
        "wrong",
        &auths(
            &env,
            &format!(r#"{{"auth": "{}"}}"#, basic(&env.rw.0, "not-the-password")),
        ),
    );
    let (ok, log) = imagespec(&proj, &wrong, None, &["exists", "spec.toml"]);
    let errors = error_lines(&log);
    assert!(!ok && errors.len() == 1, "{log}");
    assert!(
        errors[0].contains(&format!(
            "authentication failed for {} at {}",
            env.rw.0, env.registry
        )),
        "{log}"
    );
    assert!(!log.contains("not-the-password"));

    let none = docker_config(d, "none", "{}");
    let (ok, log) = imagespec(&proj, &none, None, &["exists", "spec.toml"]);
    let errors = error_lines(&log);
    assert!(!ok && errors.len() == 1, "{log}");
    assert!(
        errors[0].contains("anonymous access to")
            && errors[0].contains(&format!("no credentials found for {}", env.registry)),
        "{log}"
    );

    // The pull-only user may read the bases but not push the image.
    let ro = docker_config(
        d,
        "ro",
        &auths(
            &env,
            &format!(r#"{{"auth": "{}"}}"#, basic(&env.ro.0, &env.ro.1)),
        ),
    );
    let (ok, log) = imagespec(&proj, &ro, None, &["build", "spec.toml"]);
    assert!(!ok, "{log}");
    assert!(
        log.contains(&format!("{} may pull but not push", env.ro.0)),
        "{log}"
    );
    assert!(!log.contains("{\"errors\""), "raw registry JSON:\n{log}");
    assert!(!log.contains(&env.ro.1));

    // A failing helper's own message.
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-e2ebroken");
    std::fs::write(&helper, "#!/bin/sh\necho 'vault is sealed' >&2\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let broken = docker_config(
        d,
        "broken",
        &format!(r#"{{"credHelpers": {{"{}": "e2ebroken"}}}}"#, env.registry),
    );
    let (ok, log) = imagespec(&proj, &broken, Some(&bin), &["exists", "spec.toml"]);
    assert!(!ok && log.contains("vault is sealed"), "{log}");
}
