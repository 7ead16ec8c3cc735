use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

mod common;

use common::e2e::{
    DOCKER, EnvFile, NO_DAEMON, Services, imagespec_in, output, output_bytes, run_id, run_json,
    services, skopeo_inspect, write_spec,
};

/// The passwords of the two index URLs: neither may appear anywhere.
const INDEX_PASSWORD: &str = "s3cret-idx-pw";
const EXTRA_PASSWORD: &str = "s3cret-extra-pw";

/// A project whose index URLs hold credentials.
fn project(d: &Path, env: &Services, name: &str) -> PathBuf {
    let proj = d.join(name);
    std::fs::create_dir_all(proj.join("src")).expect("mkdir");
    std::fs::write(proj.join("src/main.py"), "import yaml\n").expect("source");
    let lines = format!(
        r#"packages = ["pyyaml"]
pip_index = "https://imagespec-idx:{INDEX_PASSWORD}@pypi.org/simple"
pip_extra_index_url = ["https://imagespec-extra:{EXTRA_PASSWORD}@pypi.org/simple"]
source_root = "src"
source_copy_mode = "all""#
    );
    write_spec(&proj, env, name, &lines);
    proj
}

/// One end-to-end case: a project named for `builder` and this run, built with uv and
/// `DOCKER_HOST` as given (`None`: the harness's dockerd).
struct Case {
    proj: PathBuf,
    uv: PathBuf,
    docker_host: Option<&'static str>,
    _dir: tempfile::TempDir,
}

impl Case {
    /// The case, or `None` (and a note) when the services or uv are missing outside CI.
    fn new(builder: &str, docker_host: Option<&'static str>) -> Option<Case> {
        let env = services()?;
        let uv = env.file.uv()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let name = format!("h-index-creds-{builder}-{}", run_id());
        let proj = project(dir.path(), &env, &name);
        Some(Case {
            proj,
            uv,
            docker_host,
            _dir: dir,
        })
    }

    /// The imagespec binary in the project.
    fn imagespec(&self) -> assert_cmd::Command {
        let mut cmd = imagespec_in(&self.proj);
        cmd.env("IMAGESPEC_UV", &self.uv)
            .env_remove("IMAGESPEC_NO_DAEMONLESS");
        if let Some(host) = self.docker_host {
            cmd.env("DOCKER_HOST", host);
        }
        cmd
    }
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

/// Everything imagespec prints about the spec before building: `inspect` and `plan`; the
/// plan (`plan --json`).
fn check_what_is_printed(case: &Case) -> Value {
    let mut json = Vec::new();
    for args in [
        &["inspect", "spec.toml", "--json"][..],
        &["inspect", "spec.toml"],
        &["plan", "spec.toml", "--json"],
        &["plan", "spec.toml"],
    ] {
        let out = case.imagespec().args(args).output().expect("run");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {text}");
        assert_no_password(&format!("`imagespec {}`", args.join(" ")), &text);
        if args.contains(&"--json") {
            json.push(serde_json::from_slice::<Value>(&out.stdout).expect("json"));
        }
    }
    let [inspected, planned] = <[Value; 2]>::try_from(json).expect("two JSON documents");
    assert_eq!(
        inspected["spec"]["pip_index"], "https://***@pypi.org/simple",
        "{inspected}"
    );
    planned
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
    assert_no_password(&format!("`docker history {image}`"), &docker_history(image));
    let saved = output_bytes(Process::new(DOCKER).args(["save", image]));
    assert!(saved.len() > 1 << 20, "docker save {image}: too small");
    for password in [INDEX_PASSWORD, EXTRA_PASSWORD] {
        let found = saved
            .windows(password.len())
            .any(|w| w == password.as_bytes());
        assert!(!found, "`docker save {image}` holds `{password}`");
    }
}

/// `docker history`: every step's command line, in full.
fn docker_history(image: &str) -> String {
    output(Process::new(DOCKER).args([
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        image,
    ]))
}

/// The build's result and every event it printed, which must hold no password.
fn build(case: &Case, args: &[&str]) -> Value {
    let run = run_json(
        case.imagespec()
            .args(["build", "spec.toml", "--json", "--progress", "plain"])
            .args(args),
    );
    assert!(run.ok(), "{}", run.text);
    assert_no_password("the build's output", &run.text);
    run.result().clone()
}

/// A project with credentials in its index URLs, on the images `e2e.env` names (or their
/// defaults): no services needed, nothing is built.
fn plain_project(d: &Path) -> PathBuf {
    project(d, &Services::named(EnvFile::load()), "index-creds")
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
    let Some(case) = Case::new("uv", Some(NO_DAEMON)) else {
        return;
    };
    let planned = check_what_is_printed(&case);
    let result = build(&case, &[]);
    let image = result["image"].as_str().expect("image").to_string();
    assert!(
        result["reason"]
            .as_str()
            .is_some_and(|r| r.contains("without a daemon (uv)")),
        "{result}"
    );
    check_image(&image);
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
    let Some(case) = Case::new("docker", None) else {
        return;
    };
    check_what_is_printed(&case);
    let result = build(&case, &["--no-daemonless"]);
    let image = result["image"].as_str().expect("image").to_string();
    check_image(&image);
    let history = docker_history(&image);
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
