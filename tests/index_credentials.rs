//! A pip index password never reaches an image (issue 20, finding 5). `render` writes
//! imagespec's Dockerfile with the index URLs read from BuildKit secrets and the password
//! nowhere in the context (`--flytekit-compat` writes flytekit's line, and warns). End to
//! end (services from `scripts/e2e/`, as for tests/e2e.rs): a spec
//! whose `pip_index` and `pip_extra_index_url` carry credentials (`https://user:pass@…`) is
//! built without a daemon (uv on this machine) and through dockerd (BuildKit, the index URLs
//! passed as BuildKit secrets); from outside — `skopeo inspect --config`, `docker history
//! --no-trunc`, every byte of `docker save` (config and uncompressed layers) — the password
//! is nowhere, and neither is it in what imagespec prints (`inspect --json`, `plan`, the
//! build's events). The index is PyPI itself with made-up basic-auth credentials (PyPI
//! ignores them), so the install really goes through the URLs the secrets hold.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

mod common;

use common::e2e::{DOCKER, NO_DAEMON, imagespec_in, output, run_id, run_json, skopeo_inspect};

/// The passwords of the two index URLs: neither may appear anywhere.
const INDEX_PASSWORD: &str = "s3cret-idx-pw";
const EXTRA_PASSWORD: &str = "s3cret-extra-pw";

struct Env {
    registry: String,
    base_python: String,
    uv_image: String,
    uv: PathBuf,
}

fn services() -> Option<Env> {
    let s = common::e2e::services()?;
    let uv = s.file.uv()?;
    Some(Env {
        registry: s.registry,
        base_python: s.base_python,
        uv_image: s.uv_image,
        uv,
    })
}

/// A project whose index URLs hold credentials.
fn project(d: &Path, env: &Env, name: &str) -> PathBuf {
    let proj = d.join(name);
    std::fs::create_dir_all(proj.join("src")).expect("mkdir");
    std::fs::write(proj.join("src/main.py"), "import yaml\n").expect("source");
    let spec = format!(
        r#"
name = "{name}"
registry = "{registry}"
base_image = "{base}"
packages = ["pyyaml"]
pip_index = "https://imagespec-idx:{INDEX_PASSWORD}@pypi.org/simple"
pip_extra_index_url = ["https://imagespec-extra:{EXTRA_PASSWORD}@pypi.org/simple"]
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

/// The imagespec binary with uv and `DOCKER_HOST` as given (`None`: the harness's dockerd).
fn imagespec(dir: &Path, env: &Env, docker_host: Option<&str>) -> assert_cmd::Command {
    let mut cmd = imagespec_in(dir);
    cmd.env("IMAGESPEC_UV", &env.uv)
        .env_remove("IMAGESPEC_NO_DAEMONLESS");
    if let Some(host) = docker_host {
        cmd.env("DOCKER_HOST", host);
    }
    cmd
}

/// Fails naming `what` when `text` holds either password.
#[track_caller]
fn assert_no_password(what: &str, text: &str) {
    for password in [INDEX_PASSWORD, EXTRA_PASSWORD] {
        if let Some(at) = text.find(password) {
            let from = text[..at]
                .char_indices()
                .rev()
                .nth(160)
                .map_or(0, |(i, _)| i);
            panic!(
                "{what} holds the index password `{password}`:\n…{}…",
                &text[from..(at + password.len()).min(text.len())]
            );
        }
    }
}

/// Everything imagespec prints about the spec before building: `inspect` and `plan`.
fn check_what_is_printed(proj: &Path, env: &Env, docker_host: Option<&str>) {
    for args in [
        &["inspect", "spec.toml", "--json"][..],
        &["inspect", "spec.toml"],
        &["plan", "spec.toml", "--json"],
        &["plan", "spec.toml"],
    ] {
        let out = imagespec(proj, env, docker_host)
            .args(args)
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {text}");
        assert_no_password(&format!("`imagespec {}`", args.join(" ")), &text);
    }
    let inspected = imagespec(proj, env, docker_host)
        .args(["inspect", "spec.toml", "--json"])
        .output()
        .expect("run");
    let inspected: Value = serde_json::from_slice(&inspected.stdout).expect("json");
    assert_eq!(
        inspected["spec"]["pip_index"], "https://***@pypi.org/simple",
        "{inspected}"
    );
}

/// From outside: the image's config (history, labels), `docker history`, and every byte
/// `docker save` gives (config, manifest, uncompressed layers) hold no password.
fn check_image(image: &str) {
    let config = skopeo_inspect(&["--config"], image);
    assert_no_password(&format!("{image}'s config"), &config.to_string());
    assert!(
        config["history"].as_array().is_some_and(|h| !h.is_empty()),
        "{config}"
    );
    let labels = skopeo_inspect(&[], image);
    assert_no_password(&format!("{image} (skopeo inspect)"), &labels.to_string());
    output(Process::new(DOCKER).args(["pull", "-q", image]));
    let history = output(Process::new(DOCKER).args([
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        image,
    ]));
    assert_no_password(&format!("`docker history {image}`"), &history);
    let saved = Process::new(DOCKER)
        .args(["save", image])
        .output()
        .expect("docker save");
    assert!(saved.status.success(), "docker save {image}");
    assert!(
        saved.stdout.len() > 1 << 20,
        "docker save {image}: too small"
    );
    for password in [INDEX_PASSWORD, EXTRA_PASSWORD] {
        let found = saved
            .stdout
            .windows(password.len())
            .any(|w| w == password.as_bytes());
        assert!(!found, "`docker save {image}` holds `{password}`");
    }
}

/// The build's result and every event it printed, which must hold no password.
fn build(proj: &Path, env: &Env, docker_host: Option<&str>, args: &[&str]) -> Value {
    let run = run_json(
        imagespec(proj, env, docker_host)
            .args(["build", "spec.toml", "--json", "--progress", "plain"])
            .args(args),
    );
    assert!(run.ok(), "{}", run.text);
    assert_no_password("the build's output", &run.text);
    run.result().clone()
}

/// A spec file of `name` with credentials in its index URLs, no services needed.
fn plain_project(d: &Path) -> PathBuf {
    let env = Env {
        registry: "localhost:5000".into(),
        base_python: "localhost:5000/debian-python:bookworm".into(),
        uv_image: "localhost:5000/uv:0.5".into(),
        uv: PathBuf::new(),
    };
    project(d, &env, "index-creds")
}

/// Every file under `dir`, as text (lossy).
fn all_files(dir: &Path) -> String {
    let mut text = String::new();
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.expect("walk");
        if entry.file_type().is_file() {
            text.push_str(&String::from_utf8_lossy(
                &std::fs::read(entry.path()).expect("read"),
            ));
        }
    }
    text
}

/// `render`: the Dockerfile mounts one secret per URL with credentials and reads the URL
/// from it; the context holds no password; stderr says how to pass the secrets by hand.
/// `--flytekit-compat` is flytekit's Dockerfile, URL and all, with a warning.
#[test]
fn render_passes_index_credentials_as_secrets_and_writes_them_nowhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let proj = plain_project(dir.path());
    let out = imagespec_in(&proj)
        .args(["render", "spec.toml", "-o", "ctx"])
        .output()
        .expect("render");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_no_password(
        "render's output",
        &(String::from_utf8_lossy(&out.stdout) + stderr.clone()),
    );
    assert_no_password("the rendered context", &all_files(&proj.join("ctx")));
    let dockerfile = std::fs::read_to_string(proj.join("ctx/Dockerfile")).expect("Dockerfile");
    for n in [0, 1] {
        assert!(
            dockerfile.contains(&format!(
                "--mount=type=secret,id=imagespec_pip_index_{n},target=/run/imagespec/pip-index-{n}"
            )),
            "{dockerfile}"
        );
        assert!(
            stderr.contains(&format!(
                "docker build --secret id=imagespec_pip_index_{n},src="
            )),
            "{stderr}"
        );
    }
    assert!(
        dockerfile.contains(
            "--index-url \"$(cat /run/imagespec/pip-index-0)\" \
             --extra-index-url \"$(cat /run/imagespec/pip-index-1)\""
        ),
        "{dockerfile}"
    );
    assert!(stderr.contains("https://***@pypi.org/simple"), "{stderr}");

    let out = imagespec_in(&proj)
        .args(["render", "spec.toml", "-o", "compat", "--flytekit-compat"])
        .output()
        .expect("render");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let dockerfile = std::fs::read_to_string(proj.join("compat/Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains(&format!(
            "--index-url https://imagespec-idx:{INDEX_PASSWORD}@pypi.org/simple"
        )),
        "flytekit's own line: {dockerfile}"
    );
    assert!(!dockerfile.contains("type=secret"), "{dockerfile}");
    assert!(
        stderr.contains("warning: `pip_index` and `pip_extra_index_url` hold credentials"),
        "{stderr}"
    );
    assert_no_password("render --flytekit-compat's messages", &stderr);
}

/// Without a daemon: uv installs through the URLs as written, and the dependency image's
/// history (`RUN … uv pip install --index-url …`) shows them without their credentials.
#[test]
fn no_daemon_keeps_the_index_password_out_of_the_image() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("h-index-creds-uv-{}", run_id());
    let proj = project(dir.path(), &env, &name);
    check_what_is_printed(&proj, &env, Some(NO_DAEMON));
    let result = build(&proj, &env, Some(NO_DAEMON), &[]);
    let image = result["image"].as_str().expect("image").to_string();
    assert!(
        result["reason"]
            .as_str()
            .is_some_and(|r| r.contains("without a daemon (uv)")),
        "{result}"
    );
    check_image(&image);
    let planned = imagespec(&proj, &env, Some(NO_DAEMON))
        .args(["plan", "spec.toml", "--json"])
        .output()
        .expect("plan");
    let planned: Value = serde_json::from_slice(&planned.stdout).expect("plan json");
    let deps = planned["dependency_image"].as_str().expect("deps");
    check_image(deps);
    let config = skopeo_inspect(&["--config"], deps).to_string();
    assert!(
        config.contains("--index-url https://***@pypi.org/simple"),
        "the install step, redacted: {config}"
    );
}

/// Through dockerd: imagespec's Dockerfile reads each URL from a BuildKit secret, so the
/// `RUN` line (the image's history, BuildKit's cache key) has none of them; the install
/// works, so the secrets held the URLs.
#[test]
fn dockerd_gets_the_index_urls_as_buildkit_secrets() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("h-index-creds-docker-{}", run_id());
    let proj = project(dir.path(), &env, &name);
    check_what_is_printed(&proj, &env, None);
    let result = build(&proj, &env, None, &["--no-daemonless"]);
    let image = result["image"].as_str().expect("image").to_string();
    check_image(&image);
    let history = output(Process::new(DOCKER).args([
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        &image,
    ]));
    assert!(
        history.contains("--index-url \"$(cat /run/imagespec/pip-index-0)\""),
        "{history}"
    );
    let out = output(Process::new(DOCKER).args([
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        &image,
        "-c",
        "python -c 'import yaml; print(yaml.__version__)'; ls /run/imagespec 2>&1 || true",
    ]));
    assert!(out.lines().next().is_some_and(|l| l.contains('.')), "{out}");
    assert!(!out.contains("pip-index"), "a secret file stayed: {out}");
}
