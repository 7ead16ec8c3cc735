//! End-to-end on a remote BuildKit builder: the buildkitd of `scripts/e2e/buildkitd.sh`
//! (built from its Go module, mTLS on 127.0.0.1), which pushes what it builds to the
//! harness's registries. Checked from outside: skopeo, `docker run`, BuildKit's own progress
//! (`--json` step events: `cached`). Without the services these tests fail under `CI`, and
//! say why and pass elsewhere.
//!
//! The tests take turns (one lock): the fresh-runner test stops the builder and deletes its
//! state.

mod common;

use common::e2e::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::Mutex;

static BUILDER: Mutex<()> = Mutex::new(());

/// The remote builder's address and certificates, from `e2e.env`.
struct Remote {
    env: Services,
    host: String,
    ca: String,
    cert: String,
    key: String,
    other_cert: String,
    other_key: String,
    script: PathBuf,
}

impl Remote {
    /// `--builder-host` and the TLS flags, with the client certificate `cert`/`key`.
    fn flags_with<'a>(&'a self, cert: &'a str, key: &'a str) -> Vec<&'a str> {
        vec![
            "--builder-host",
            &self.host,
            "--tlscacert",
            &self.ca,
            "--tlscert",
            cert,
            "--tlskey",
            key,
        ]
    }

    fn flags(&self) -> Vec<&str> {
        self.flags_with(&self.cert, &self.key)
    }

    /// `buildkitd.sh ACTION` (up, wipe), which must succeed.
    fn script(&self, action: &str) {
        let out = Process::new(&self.script)
            .arg(action)
            .output()
            .expect("buildkitd.sh");
        assert!(
            out.status.success(),
            "buildkitd.sh {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The services and the remote builder, or `None` (and a note) outside CI.
fn remote() -> Option<Remote> {
    let env = services()?;
    let file = &env.file;
    let Some(host) = file.get("IMAGESPEC_E2E_BUILDKIT_HOST") else {
        return missing(&format!(
            "no remote buildkitd in {} (scripts/e2e/buildkitd.sh up starts it)",
            file.path
        ));
    };
    Some(Remote {
        host,
        ca: file.need("IMAGESPEC_E2E_BUILDKIT_CA"),
        cert: file.need("IMAGESPEC_E2E_BUILDKIT_CERT"),
        key: file.need("IMAGESPEC_E2E_BUILDKIT_KEY"),
        other_cert: file.need("IMAGESPEC_E2E_BUILDKIT_OTHER_CERT"),
        other_key: file.need("IMAGESPEC_E2E_BUILDKIT_OTHER_KEY"),
        script: file.need("IMAGESPEC_E2E_BUILDKIT_SCRIPT").into(),
        env,
    })
}

/// What each test starts with: the builder (its turn taken: the tests take turns), a
/// temporary directory and a registry path of its own.
struct Setup {
    remote: Remote,
    dir: tempfile::TempDir,
    registry: String,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Setup {
    /// [`project`] on the harness's base and uv images, in this test's registry path.
    fn project(&self, name: &str, lines: &str) -> PathBuf {
        let env = &self.remote.env;
        project(
            self.dir.path(),
            name,
            &self.registry,
            &env.base_python,
            &env.uv_image,
            lines,
        )
    }
}

fn setup() -> Option<Setup> {
    let remote = remote()?;
    let turn = BUILDER.lock().unwrap_or_else(|p| p.into_inner());
    let registry = format!("{}/remote-e2e/{}", remote.env.registry, run_id());
    Some(Setup {
        remote,
        dir: tempfile::tempdir().unwrap(),
        registry,
        _turn: turn,
    })
}

/// A project in `dir/name`: `spec.toml` with `name`, `registry`, the base image, uv image,
/// `lines` (`BEFORE_COPY` in them: `commands` run before the copy), no flytekit, and a
/// source file.
fn project(dir: &Path, name: &str, registry: &str, base: &str, uv: &str, lines: &str) -> PathBuf {
    let (lines, before) = match lines.strip_suffix(BEFORE_COPY) {
        Some(lines) => (lines, ", commands_before_copy = true"),
        None => (lines, ""),
    };
    let proj = dir.join(name);
    std::fs::create_dir_all(proj.join("src")).unwrap();
    std::fs::write(proj.join("src/app.py"), "print('hello from the source')\n").unwrap();
    let spec = format!(
        "name = \"{name}\"\nregistry = \"{registry}\"\nbase_image = \"{base}\"\n\
         source_root = \"src\"\nsource_copy_mode = \"all\"\n\
         builder_config = {{ uv_image = \"{uv}\" }}\n\
         builder_options = {{ add_flytekit = false{before} }}\n{lines}\n"
    );
    std::fs::write(proj.join("spec.toml"), spec).unwrap();
    proj
}

/// `imagespec build --json spec.toml` in `proj` with `args`.
fn build(proj: &Path, args: &[&str]) -> JsonRun {
    let mut cmd = imagespec_in(proj);
    cmd.args(["build", "--json", "spec.toml"]).args(args);
    run_json(&mut cmd)
}

/// The image built, which must have been built (not found, not assumed).
#[track_caller]
fn built(run: &JsonRun) -> String {
    assert!(run.ok(), "{}", run.text);
    let result = run.result();
    assert!(
        matches!(result["action"].as_str(), Some("built" | "appended")),
        "{}",
        run.text
    );
    result["image"].as_str().expect("image").to_string()
}

/// At the end of `project`'s lines: `commands` run before the copy (the fast path applies).
const BEFORE_COPY: &str = "#before-copy";

const APT_PIP_COMMANDS: &str = "apt_packages = [\"jq\"]\npackages = [\"six\"]\n\
    commands = [\"echo built-remotely > /built\"]\n";

/// A spec with apt, pip and `commands`, built on the remote builder (the whole Dockerfile,
/// and the dependency image for the fast path), pushed by the builder, and run.
#[test]
fn apt_pip_and_commands_are_built_on_the_remote_builder_and_run() {
    let Some(t) = setup() else { return };
    let remote = &t.remote;

    // `commands` after the copy: the whole Dockerfile on the builder.
    let full = t.project("full", APT_PIP_COMMANDS);
    let run = build(&full, &remote.flags());
    let image = built(&run);
    assert_eq!(run.result()["strategy"], "build", "{}", run.text);
    assert!(
        run.text.contains("on the BuildKit builder at tcp://"),
        "{}",
        run.text
    );
    assert_eq!(
        run.result()["digest"].as_str(),
        Some(registry_digest(&image).as_str())
    );
    let out = run_on(
        "linux/amd64",
        &image,
        "sh",
        "cat /built && jq --version && /root/.venv/bin/python -c 'import six' && \
         /root/.venv/bin/python /root/app.py",
    );
    assert_eq!(out, "built-remotely\njq-1.6\nhello from the source\n");
    // The registry cache was exported next to the image.
    let cache = format!("{}:buildcache", image.rsplit_once(':').unwrap().0);
    assert!(in_registry(&cache), "no registry cache at {cache}");

    // `commands` before the copy: the dependency image on the builder, the source appended.
    let lines = format!("{APT_PIP_COMMANDS}{BEFORE_COPY}");
    let fast = t.project("fast", &lines);
    let run = build(&fast, &remote.flags());
    let image = built(&run);
    assert_eq!(
        run.result()["strategy"],
        "build_dependencies_then_append",
        "{}",
        run.text
    );
    let out = run_on(
        "linux/amd64",
        &image,
        "sh",
        "cat /built && /root/.venv/bin/python /root/app.py",
    );
    assert_eq!(out, "built-remotely\nhello from the source\n");
}

/// A base in the token registry, which dockerd and the builder have never seen: BuildKit
/// pulls it (and pushes the image there) with the user's credentials, which the session's
/// `Auth` gives it; no secret in the output.
#[test]
fn a_private_base_is_pulled_with_the_sessions_credentials() {
    let Some(remote) = remote() else { return };
    let _turn = BUILDER.lock().unwrap_or_else(|p| p.into_inner());
    let file = &remote.env.file;
    let token = file.need("IMAGESPEC_E2E_TOKEN_REGISTRY");
    let (user, password) = (
        file.need("IMAGESPEC_E2E_TOKEN_RW_USER"),
        file.need("IMAGESPEC_E2E_TOKEN_RW_PASSWORD"),
    );
    let run = run_id();
    let private = |image: &str, name: &str| {
        let target = format!("{token}/remote-e2e/{run}/private/{name}");
        output(Process::new("skopeo").args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--dest-creds",
            &format!("{user}:{password}"),
            &format!("docker://{image}"),
            &format!("docker://{target}"),
        ]));
        target
    };
    let base = private(&remote.env.base_python, "python");
    let uv = private(&remote.env.uv_image, "uv");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("docker");
    std::fs::create_dir_all(&config).unwrap();
    let auth = output(
        Process::new("sh")
            .arg("-c")
            .arg(format!("printf '%s' '{user}:{password}' | base64 -w0")),
    );
    std::fs::write(
        config.join("config.json"),
        format!(r#"{{"auths": {{"{token}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    let registry = format!("{token}/remote-e2e/{run}");
    let proj = project(
        dir.path(),
        "private",
        &registry,
        &base,
        &uv,
        "packages = [\"six\"]\n",
    );
    let mut cmd = imagespec_in(&proj);
    cmd.env("DOCKER_CONFIG", &config)
        .args(["build", "--json", "spec.toml", "--no-fast-path"])
        .args(remote.flags());
    let run = run_json(&mut cmd);
    let image = built(&run);
    assert!(!run.text.contains(&password), "the password in the output");
    assert!(!run.text.contains(&auth), "the credentials in the output");
    let seen = output(Process::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--creds",
        &format!("{user}:{password}"),
        &format!("docker://{image}"),
    ]));
    let seen: Value = serde_json::from_str(&seen).unwrap();
    assert_eq!(seen["Digest"], run.result()["digest"]);
}

/// A client certificate of another CA: refused at the first call, exit 1, one message
/// naming the builder and the TLS failure; so is a builder that is not there.
#[test]
fn a_wrong_client_certificate_is_refused_with_the_host_and_the_tls_failure() {
    let Some(t) = setup() else { return };
    let remote = &t.remote;
    let proj = t.project("stranger", APT_PIP_COMMANDS);
    let out = imagespec_in(&proj)
        .args(["build", "spec.toml"])
        .args(remote.flags_with(&remote.other_cert, &remote.other_key))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(
        error.contains(&format!(
            "the BuildKit builder at {} refused the TLS connection",
            remote.host
        )),
        "{error}"
    );
    assert!(error.contains("--tlscert"), "{error}");
    // Without the builder's CA, its certificate is not trusted: said the same way.
    let out = imagespec_in(&proj)
        .args(["build", "spec.toml", "--builder-host", &remote.host])
        .args(["--tlscert", &remote.cert, "--tlskey", &remote.key])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refused the TLS connection"), "{stderr}");
    // No builder at the address: exit 1 before anything is built, naming it.
    let nowhere = format!("tcp://127.0.0.1:{}", free_port());
    let out = imagespec_in(&proj)
        .args(["build", "spec.toml", "--builder-host", &nowhere])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the BuildKit builder at {nowhere} is not reachable"
        )),
        "{stderr}"
    );
}

/// The steps of a `--json` run, by label: whether each was taken from the cache.
fn cached_steps(run: &JsonRun) -> Vec<(String, bool)> {
    run.steps()
        .iter()
        .filter(|s| s["state"] == "done")
        .map(|s| {
            let label = s["label"].as_str().or(s["name"].as_str()).unwrap_or("");
            (label.to_string(), s["cached"] == true)
        })
        .collect()
}

/// An ephemeral runner: the builder's state wiped (stopped, its root deleted, started), the
/// registry cache kept. A changed spec (one more package) reuses the apt step from the
/// registry cache; without the cache (`--cache-from` elsewhere) it runs again.
#[test]
fn a_fresh_runner_rebuilds_a_changed_spec_from_the_registry_cache() {
    let Some(t) = setup() else { return };
    let remote = &t.remote;
    let first = t.project("cached", APT_PIP_COMMANDS);
    built(&build(&first, &remote.flags()));

    remote.script("wipe");
    remote.script("up");
    let changed = APT_PIP_COMMANDS.replace("[\"six\"]", "[\"six\", \"pyyaml\"]");
    std::fs::write(
        first.join("spec.toml"),
        std::fs::read_to_string(first.join("spec.toml"))
            .unwrap()
            .replace(APT_PIP_COMMANDS, &changed),
    )
    .unwrap();
    let run = build(&first, &remote.flags());
    let image = built(&run);
    let steps = cached_steps(&run);
    let apt = steps
        .iter()
        .find(|(label, _)| label.contains("apt packages"));
    assert_eq!(
        apt.map(|(_, cached)| *cached),
        Some(true),
        "the apt step was not taken from the registry cache: {steps:?}\n{}",
        run.text
    );
    let pip = steps
        .iter()
        .find(|(label, _)| label.contains("Python packages"));
    assert_eq!(pip.map(|(_, cached)| *cached), Some(false), "{steps:?}");
    assert!(
        run.text.contains("importing cache manifest from"),
        "{}",
        run.text
    );
    let out = run_on(
        "linux/amd64",
        &image,
        "sh",
        "/root/.venv/bin/python -c 'import yaml, six; print(1)'",
    );
    assert_eq!(out, "1\n");
}

/// Two platforms: one solve on the builder (its workers have both; arm64 runs under qemu),
/// an index pushed by BuildKit with a manifest per platform.
#[test]
fn two_platforms_are_one_remote_solve_giving_an_index() {
    let Some(t) = setup() else { return };
    let (remote, env) = (&t.remote, &t.remote.env);
    let lines = "platform = \"linux/amd64,linux/arm64\"\npackages = [\"six\"]\n\
                 commands = [\"uname -m > /arch\"]\n";
    let base = env.file.base_python_multi();
    let proj = project(
        t.dir.path(),
        "multi",
        &t.registry,
        &base,
        &env.uv_image,
        lines,
    );
    let run = build(&proj, &remote.flags());
    let image = built(&run);
    let raw = output(Process::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]));
    let index: Value = serde_json::from_str(&raw).unwrap();
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("not an index: {raw}"))
        .iter()
        .filter(|m| m["platform"]["os"] == "linux")
        .map(|m| format!("linux/{}", m["platform"]["architecture"].as_str().unwrap()))
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{raw}");
    assert_eq!(
        run_on("linux/arm64", &image, "sh", "cat /arch"),
        "aarch64\n"
    );
    assert_eq!(run_on("linux/amd64", &image, "sh", "cat /arch"), "x86_64\n");
}
