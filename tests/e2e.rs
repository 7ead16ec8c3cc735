//! End-to-end: real dockerd (BuildKit) and a real registry, started by `scripts/test.sh`
//! (`scripts/e2e/up.sh`), checked from the outside with skopeo and `docker run`, never by
//! asking imagespec whether it worked. Without the services these tests fail under `CI`, and
//! say why and pass elsewhere.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

mod common;

use common::e2e::{
    DOCKER, NO_DAEMON, Services, curl_blob, curl_manifest, env_list, files_beyond, free_port,
    image_snapshot, imagespec_in, in_registry, inspect_json, layout_index, output, ref_name,
    registry_digest, registry_up, result, run_id, run_json, services, sh, sha256_hex, source_files,
    spawn, tree_difference, umoci_unpack,
};

/// `imagespec build --json ARGS`: (success, every JSON event line with the result last,
/// everything printed). Dependency images are built by dockerd here, whether or not this
/// machine has uv (tests/e2e_daemonless.rs covers uv).
fn build_json(dir: &Path, args: &[&str]) -> (bool, Vec<Value>, String) {
    let mut cmd = imagespec_in(dir);
    cmd.env("IMAGESPEC_NO_DAEMONLESS", "1")
        .args(["build", "--json"])
        .args(args);
    run_json(&mut cmd).into_parts()
}

/// The acceptance test of the Docker backend (issue 3): a realistic spec builds and pushes;
/// from outside, the image has the packages, exactly the hashed files under /root, the id,
/// the user and no trace of the secret; a second run builds nothing.
#[test]
fn realistic_spec_builds_pushes_and_is_correct_from_outside() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let secret = format!("s3cr3t-{}", run_id());
    std::fs::write(d.join("pip-secret.txt"), &secret).expect("secret");
    sh(
        d,
        r#"
        mkdir -p proj/wf proj/data proj/build proj/scratch proj/extra
        cd proj
        printf 'import yaml\n\ndef main():\n    return yaml.safe_dump({"ok": 1})\n' > wf/main.py
        printf '' > wf/__init__.py
        printf 'x,y\n1,2\n' > data/table.csv
        printf 'build output\n' > build/out.bin
        printf 'debug\n' > debug.log
        printf 'scratch notes\n' > scratch/notes.txt
        printf 'tracked but ignored\n' > keep.log
        printf 'k = 1\n' > extra/settings.ini
        printf '*.log\nbuild/\nextra/\n' > .gitignore
        printf 'scratch\n' > .dockerignore
        printf 'requests\n\n' > requirements.txt
        git init -q . && git add wf data .gitignore .dockerignore requirements.txt && git add -f keep.log
        git -c user.name=t -c user.email=t@t commit -qm init
        "#,
    );
    let spec = format!(
        r#"
name = "acceptance"
registry = "{registry}"
base_image = "{base}"
apt_packages = ["jq"]
packages = ["pyyaml"]
requirements = "requirements.txt"
env = {{ APP_ENV = "e2e", RUN_ID = "{run}" }}
commands = ["jq --version", "python -c 'import requests, yaml'"]
copy = ["extra/settings.ini"]
source_root = "."
source_copy_mode = "all"
pip_secret_mounts = [["../pip-secret.txt", "/run/secrets/pip-token"]]
builder_config = {{ uv_image = "{uv}" }}
"#,
        registry = env.registry,
        base = env.base_python,
        uv = env.uv_image,
        run = run_id()
    );
    std::fs::write(d.join("proj/spec.toml"), spec).expect("spec");
    let proj = d.join("proj");
    let expected = inspect_json(&proj, "spec.toml");
    let image = expected["image"].as_str().expect("image").to_string();

    let (ok, events, log) = build_json(&proj, &["spec.toml"]);
    assert!(ok, "build failed:\n{log}");
    assert_eq!(result(&events)["action"], "built");
    assert_eq!(result(&events)["pushed"], true);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "step" && e["state"] == "done"),
        "progress events were streamed"
    );
    assert!(
        !log.contains(&secret),
        "the secret appears in the build output"
    );

    // The registry has it, with flytekit's id and the flytekit user (skopeo, not us).
    let config: Value = serde_json::from_str(&output(Process::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--config",
        &format!("docker://{image}"),
    ])))
    .expect("skopeo json");
    let env_list = env_list(&config["config"]);
    assert!(
        env_list.contains(&format!("_F_IMG_ID={}", expected["id"].as_str().expect("id")).as_str()),
        "{env_list:?}"
    );
    assert!(env_list.contains(&"APP_ENV=e2e"), "{env_list:?}");
    assert_eq!(config["config"]["User"], "flytekit");
    let history = config["history"].to_string();
    assert!(
        !history.contains(&secret),
        "the secret appears in the image history"
    );

    // Run it: /root holds exactly the hashed source files plus the copy entry (beyond what
    // the base image has there), imports work, the user is flytekit.
    let list_root = "cd /root && find . -path ./.venv -prune -o -type f -print | sort";
    let base_root = output(Process::new(DOCKER).args([
        "run",
        "--rm",
        &env.base_python,
        "bash",
        "-c",
        list_root,
    ]));
    let _ = Process::new(DOCKER).args(["rmi", "-f", &image]).output();
    let ran = output(Process::new(DOCKER).args([
        "run", "--rm", &image, "bash", "-c",
        &format!("{list_root} && echo --- && python -c 'import requests, yaml, flytekit, wf.main; print(wf.main.main().strip())' && id -un"),
    ]));
    let (listing, rest) = ran.split_once("---\n").expect("marker");
    assert_eq!(rest.lines().collect::<Vec<_>>(), ["ok: 1", "flytekit"]);
    let in_root = files_beyond(listing, &base_root);
    let mut want = source_files(&expected);
    assert!(want.contains("keep.log"), "tracked files are never ignored");
    for ignored in [
        "debug.log",
        "build/out.bin",
        "scratch/notes.txt",
        "extra/settings.ini",
    ] {
        assert!(!want.contains(ignored), "{ignored} must be ignored");
    }
    want.insert("extra/settings.ini".into());
    assert_eq!(in_root, want, "files under /root");

    // No layer holds the secret.
    let saved = d.join("image.tar");
    output(Process::new(DOCKER).args(["pull", &image]));
    output(Process::new(DOCKER).args(["save", "-o", saved.to_str().expect("path"), &image]));
    assert!(
        !tar_contains(&saved, secret.as_bytes()),
        "a layer contains the secret"
    );

    // A second build finds it and builds nothing.
    let (ok, events, log) = build_json(&proj, &["spec.toml"]);
    assert!(ok, "{log}");
    assert_eq!(result(&events)["action"], "skipped");
    assert!(events.iter().any(|e| {
        e["event"] == "info"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.ends_with("exists, skipped"))
    }));
    assert!(
        !events.iter().any(|e| e["event"] == "step"),
        "no build step ran"
    );
}

/// `imagespec exists`: 0 for a pushed image, 1 for one never built, 3 when the registry
/// cannot be asked; no daemon involved (DOCKER_HOST points nowhere).
#[test]
fn exists_asks_the_registry_without_a_daemon() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let exists = |spec: &str| {
        std::fs::write(d.join("spec.toml"), spec).expect("spec");
        Command::cargo_bin("imagespec")
            .expect("binary")
            .current_dir(d)
            .env("DOCKER_HOST", NO_DAEMON)
            .args(["exists", "spec.toml"])
            .output()
            .expect("run")
            .status
            .code()
    };
    // The base image was pushed by the harness under this exact name: a noop spec names it.
    let base = env.base_python.clone();
    let present = format!(
        "name = \"never-built\"\nregistry = \"{}\"\nenv = {{ RUN = \"{}\" }}\n",
        env.registry,
        run_id()
    );
    assert_eq!(
        exists(&present),
        Some(1),
        "a spec never built does not exist"
    );
    let (repo, tag) = base.rsplit_once(':').expect("tagged base");
    let (registry, name) = repo.split_once('/').expect("registry/name");
    let probe = format!("name = \"{name}\"\nregistry = \"{registry}\"\ntag_format = \"{tag}\"\n");
    assert_eq!(exists(&probe), Some(0), "{base} is in the registry");
    assert_eq!(
        exists("name = \"x\"\nregistry = \"localhost:1\"\n"),
        Some(3),
        "an unreachable registry cannot tell"
    );
}

/// Credentials from docker's config reach the push and the exists check; wrong or missing
/// ones are one clear "cannot tell" (exit 3) without the password in the output.
#[test]
fn auth_registry_good_wrong_and_no_credentials() {
    let Some(env) = services() else { return };
    let (registry, config_dir, password) = (
        env.file.need("IMAGESPEC_E2E_AUTH_REGISTRY"),
        env.file.need("IMAGESPEC_E2E_AUTH_CONFIG"),
        env.file.need("IMAGESPEC_E2E_AUTH_PASSWORD"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let spec = format!(
        "name = \"auth-push\"\nregistry = \"{registry}\"\nbase_image = \"{}\"\npackages = [\"six\"]\nenv = {{ RUN_ID = \"{}\" }}\nbuilder_config = {{ uv_image = \"{}\" }}\nbuilder_options = {{ add_flytekit = false }}\n",
        env.base_python,
        run_id(),
        env.uv_image
    );
    std::fs::write(d.join("spec.toml"), &spec).expect("spec");
    let run = |args: &[&str], docker_config: &Path| {
        Command::cargo_bin("imagespec")
            .expect("binary")
            .current_dir(d)
            .env("DOCKER_CONFIG", docker_config)
            .args(args)
            .output()
            .expect("run")
    };
    let good = PathBuf::from(&config_dir);
    let out = run(&["build", "spec.toml"], &good);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    let image = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    output(Process::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--creds",
        &format!("imagespec:{password}"),
        &format!("docker://{image}"),
    ]));
    assert_eq!(run(&["exists", "spec.toml"], &good).status.code(), Some(0));

    let wrong = d.join("wrong");
    std::fs::create_dir_all(&wrong).expect("mkdir");
    let bad_auth = "aW1hZ2VzcGVjOndyb25nLXBhc3N3b3Jk"; // imagespec:wrong-password
    std::fs::write(
        wrong.join("config.json"),
        format!(r#"{{"auths": {{"{registry}": {{"auth": "{bad_auth}"}}}}}}"#),
    )
    .expect("config");
    let none = d.join("none");
    std::fs::create_dir_all(&none).expect("mkdir");
    for (label, config) in [("wrong credentials", &wrong), ("no credentials", &none)] {
        let out = run(&["exists", "spec.toml"], config);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{label}: {stderr}");
        assert!(stderr.contains("cannot tell whether"), "{label}: {stderr}");
        assert!(
            !stderr.contains("wrong-password")
                && !stderr.contains(bad_auth)
                && !stderr.contains(&password),
            "{label} leaks: {stderr}"
        );
    }
}

/// The TLS registry (certificate in the system store) answers through the same client.
#[test]
fn exists_over_tls() {
    if services().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("spec.toml"), format!("name = \"tls-never-built\"\nregistry = \"registry.test:5443\"\nenv = {{ R = \"{}\" }}\n", run_id())).expect("spec");
    let out = Command::cargo_bin("imagespec")
        .expect("binary")
        .current_dir(dir.path())
        .args(["exists", "spec.toml"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `needle` occurs in the tar at `path` or in any (possibly gzipped) tar inside it.
fn tar_contains(path: &Path, needle: &[u8]) -> bool {
    let bytes = std::fs::read(path).expect("read tar");
    contains_nested(&bytes, needle, 0)
}

fn contains_nested(bytes: &[u8], needle: &[u8], depth: u32) -> bool {
    if bytes.windows(needle.len()).any(|w| w == needle) {
        return true;
    }
    if depth > 2 {
        return false;
    }
    let mut archive = tar::Archive::new(bytes);
    let Ok(entries) = archive.entries() else {
        return false;
    };
    for entry in entries.flatten() {
        let mut entry = entry;
        let mut content = Vec::new();
        if std::io::Read::read_to_end(&mut entry, &mut content).is_ok()
            && content.len() > 512
            && contains_nested(&content, needle, depth + 1)
        {
            return true;
        }
    }
    false
}

/// Behind a TLS-intercepting proxy pip/uv fail unless told the proxy's CA: `--ca-bundle`
/// fixes the build and leaves nothing in the image.
#[test]
fn ca_bundle_reaches_network_steps_and_stays_out_of_the_image() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // SSL_CERT_FILE pointing nowhere: what a base without the proxy's CA amounts to.
    // `--no-cache`: the shared uv cache mount must not answer instead of PyPI.
    let spec = format!(
        r#"
name = "ca-bundle"
registry = "{registry}"
base_image = "{base}"
packages = ["six"]
pip_extra_args = "--no-cache"
env = {{ SSL_CERT_FILE = "/etc/ssl/no-such-bundle.pem", REQUESTS_CA_BUNDLE = "/etc/ssl/no-such-bundle.pem", RUN_ID = "{run}" }}
builder_config = {{ uv_image = "{uv}" }}
builder_options = {{ add_flytekit = false }}
"#,
        registry = env.registry,
        base = env.base_python,
        uv = env.uv_image,
        run = run_id()
    );
    std::fs::write(d.join("spec.toml"), spec).expect("spec");
    let (ok, events, log) = build_json(d, &["spec.toml", "--no-push"]);
    assert!(!ok, "without the CA the install must fail here:\n{log}");
    let failed = events
        .iter()
        .find(|e| e["event"] == "step" && e["state"] == "failed")
        .expect("a failed step event");
    assert!(
        failed["name"]
            .as_str()
            .is_some_and(|n| n.contains("uv pip install")),
        "{failed}"
    );

    let (ok, events, log) = build_json(d, &["spec.toml", "--ca-bundle", &env.ca_bundle]);
    assert!(ok, "with --ca-bundle the build must pass:\n{log}");
    let image = result(&events)["image"]
        .as_str()
        .expect("image")
        .to_string();
    let _ = Process::new(DOCKER).args(["rmi", "-f", &image]).output();
    // BuildKit may leave an empty mount point behind; the bundle's content must not be there.
    let check = output(Process::new(DOCKER).args([
        "run", "--rm", &image, "bash", "-c",
        "python -c 'import six' && if [ -s /run/imagespec/ca-bundle.crt ]; then echo LEAKED; else echo clean; fi",
    ]));
    assert_eq!(check.trim(), "clean");
}

/// A nested base spec is built and pushed first, and the image builds on it; a second run
/// finds both.
#[test]
fn nested_base_spec_is_built_first() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_id();
    let spec = format!(
        r#"
[images.base]
name = "nested-base"
registry = "{registry}"
base_image = "{base}"
packages = ["six"]
env = {{ RUN_ID = "{run}" }}
builder_config = {{ uv_image = "{uv}" }}
builder_options = {{ add_flytekit = false }}

[images.app]
name = "nested-app"
registry = "{registry}"
base_image = {{ spec = "base" }}
python_exec = "/root/.venv/bin/python"
packages = ["pyyaml"]
builder_config = {{ uv_image = "{uv}" }}
builder_options = {{ add_flytekit = false }}
"#,
        registry = env.registry,
        base = env.base_python,
        uv = env.uv_image,
    );
    std::fs::write(dir.path().join("images.toml"), spec).expect("spec");
    let (ok, events, log) = build_json(dir.path(), &["images.toml", "--image", "app"]);
    assert!(ok, "{log}");
    let app = result(&events);
    assert_eq!(app["action"], "built");
    let base_image = app["base"]["image"]
        .as_str()
        .expect("base outcome")
        .to_string();
    assert_eq!(app["base"]["action"], "built");
    assert!(base_image.contains("/nested-base:"), "{base_image}");
    let image = app["image"].as_str().expect("image").to_string();
    // The app's layers start with the base's: it was built FROM the nested image.
    let layers = |img: &str| -> Vec<Value> {
        let v: Value = serde_json::from_str(&output(Process::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{img}"),
        ])))
        .expect("json");
        v["Layers"].as_array().expect("layers").clone()
    };
    let (base_layers, app_layers) = (layers(&base_image), layers(&image));
    assert!(
        app_layers.len() > base_layers.len() && app_layers[..base_layers.len()] == base_layers[..],
        "app is not built on the base"
    );
    let _ = Process::new(DOCKER).args(["rmi", "-f", &image]).output();
    let ran = output(Process::new(DOCKER).args([
        "run",
        "--rm",
        &image,
        "/root/.venv/bin/python",
        "-c",
        "import six, yaml; print('both')",
    ]));
    assert_eq!(ran.trim(), "both");
    let (ok, events, log) = build_json(dir.path(), &["images.toml", "--image", "app"]);
    assert!(ok, "{log}");
    assert_eq!(result(&events)["action"], "skipped");
    assert_eq!(result(&events)["base"]["action"], "skipped");
    // `--bases-built` (the flytekit plugin: flytekit's engine built the bases): `--force`
    // rebuilds the app on the base, and leaves the base alone.
    let base_digest = registry_digest(&base_image);
    let (ok, events, log) = build_json(
        dir.path(),
        &["images.toml", "--image", "app", "--force", "--bases-built"],
    );
    assert!(ok, "{log}");
    assert_eq!(result(&events)["action"], "built", "{log}");
    assert!(
        result(&events)["base"].is_null(),
        "the base was looked at: {log}"
    );
    assert_eq!(result(&events)["image"], image.as_str());
    assert_eq!(
        registry_digest(&base_image),
        base_digest,
        "the base was rebuilt"
    );
}

/// `DOCKER_HOST=tcp://...` works as the unix socket does, progress included.
#[test]
fn builds_over_a_tcp_docker_host() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = format!(
        "name = \"tcp-host\"\nregistry = \"{}\"\nbase_image = \"{}\"\npackages = [\"six\"]\nenv = {{ RUN_ID = \"{}\" }}\nbuilder_config = {{ uv_image = \"{}\" }}\nbuilder_options = {{ add_flytekit = false }}\n",
        env.registry,
        env.base_python,
        run_id(),
        env.uv_image
    );
    std::fs::write(dir.path().join("spec.toml"), spec).expect("spec");
    let out = Command::cargo_bin("imagespec")
        .expect("binary")
        .current_dir(dir.path())
        .env("DOCKER_HOST", "tcp://127.0.0.1:2375")
        .args(["build", "--json", "spec.toml"])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        events.iter().any(|e| e["event"] == "step"
            && e["name"]
                .as_str()
                .is_some_and(|n| n.contains("uv pip install"))),
        "{stdout}"
    );
    let image = result(&events)["image"]
        .as_str()
        .expect("image")
        .to_string();
    output(Process::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]));
}

/// A missing daemon is one clear error.
#[test]
fn unreachable_daemon_is_one_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("spec.toml"),
        "name = \"x\"\nregistry = \"localhost:5000\"\n",
    )
    .expect("spec");
    let out = Command::cargo_bin("imagespec")
        .expect("binary")
        .current_dir(dir.path())
        .env(
            "DOCKER_HOST",
            format!("unix://{}/no.sock", dir.path().display()),
        )
        .args(["build", "spec.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error:") || l.contains("caused by"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "one error line, no stack of causes: {stderr}"
    );
    assert!(
        errors[0].contains("dockerd is not reachable at unix://")
            && errors[0].contains("start it or set DOCKER_HOST"),
        "{stderr}"
    );
}

/// A source tree with nested directories, an executable, a link to a file, and `copy`
/// entries (a file and a directory), for the fast-path tests.
fn fast_path_project(d: &Path, env: &Services, name: &str, run: &str) -> PathBuf {
    sh(
        d,
        r#"
        mkdir -p proj/src/pkg proj/src/data/deep proj/conf proj/assets/sub
        cd proj
        printf 'print("v1")\n' > src/pkg/main.py && chmod 755 src/pkg/main.py
        printf '' > src/pkg/__init__.py
        printf '{"a": 1}\n' > src/data/deep/x.json && chmod 600 src/data/deep/x.json
        ln -s pkg/main.py src/link.py
        printf '[app]\nk = 1\n' > conf/app.ini
        printf 'a\n' > assets/a.txt
        printf 'b\n' > assets/sub/b.txt
        "#,
    );
    let spec = format!(
        r#"
name = "{name}"
registry = "{registry}"
base_image = "{base}"
packages = ["pyyaml"]
env = {{ APP_ENV = "e2e", RUN_ID = "{run}" }}
entrypoint = ["python"]
copy = ["conf/app.ini", "assets"]
source_root = "src"
source_copy_mode = "all"
builder_config = {{ uv_image = "{uv}" }}
builder_options = {{ add_flytekit = false }}
"#,
        registry = env.registry,
        base = env.base_python,
        uv = env.uv_image,
    );
    let proj = d.join("proj");
    std::fs::write(proj.join("spec.toml"), spec).expect("spec");
    proj
}

/// Issue 4's fast path: the first build makes the dependency image and appends the source;
/// a code-only change is then assembled in the registry with no daemon at all, runs with
/// the new files and id, and the same files give the same manifest digest again.
#[test]
fn code_change_is_appended_in_the_registry_without_a_daemon() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_id();
    let proj = fast_path_project(dir.path(), &env, "fastpath-e2e", &run);

    let (ok, events, log) = build_json(&proj, &["spec.toml"]);
    assert!(ok, "{log}");
    assert_eq!(result(&events)["action"], "appended", "{log}");
    let first = inspect_json(&proj, "spec.toml");
    let image = first["image"].as_str().expect("image");
    let run_py = |image: &str| {
        output(Process::new(DOCKER).args([
            "run",
            "--rm",
            image,
            "-c",
            "import os, pkg.main; print(os.environ['_F_IMG_ID'], os.environ['APP_ENV'])",
        ]))
    };
    output(Process::new(DOCKER).args(["pull", "-q", image]));
    assert_eq!(
        run_py(image),
        format!("v1\n{} e2e\n", first["id"].as_str().unwrap())
    );

    // A code-only change: no daemon reachable at all.
    std::fs::write(proj.join("src/pkg/main.py"), "print(\"v2\")\n").expect("edit");
    let out = Command::cargo_bin("imagespec")
        .expect("binary")
        .current_dir(&proj)
        .env("DOCKER_HOST", NO_DAEMON)
        .args(["build", "--json", "spec.toml"])
        .output()
        .expect("run");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("dependencies unchanged"), "{text}");
    let second = inspect_json(&proj, "spec.toml");
    let image2 = second["image"].as_str().expect("image");
    assert_ne!(image, image2, "a code change changes the tag");
    output(Process::new(DOCKER).args(["pull", "-q", image2]));
    assert_eq!(
        run_py(image2),
        format!("v2\n{} e2e\n", second["id"].as_str().unwrap())
    );

    // Reproducible: rebuilding the same files gives the same manifest digest.
    let digest = registry_digest(image2);
    let (ok, events, log) = build_json(&proj, &["spec.toml", "--force"]);
    assert!(ok && result(&events)["action"] == "appended", "{log}");
    assert_eq!(registry_digest(image2), digest);
}

/// The fast path must give the image the Dockerfile gives: the same files with the same
/// owners, modes and sizes, and the same run-time config.
#[test]
fn fast_path_gives_the_same_image_as_the_dockerfile() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let proj = fast_path_project(dir.path(), &env, "fastpath-compare", &run_id());
    let image = inspect_json(&proj, "spec.toml")["image"]
        .as_str()
        .expect("image")
        .to_string();

    let (ok, events, log) = build_json(&proj, &["spec.toml"]);
    assert!(ok && result(&events)["action"] == "appended", "{log}");
    let (fast_files, fast_config) = image_snapshot(&image);

    let (ok, events, log) = build_json(&proj, &["spec.toml", "--force", "--no-fast-path"]);
    assert!(ok && result(&events)["action"] == "built", "{log}");
    let (full_files, full_config) = image_snapshot(&image);

    assert_eq!(fast_config, full_config);
    assert_eq!(
        tree_difference(&fast_files, &full_files, |_| false),
        (vec![], vec![]),
        "(only in the fast-path image, only in the Dockerfile image)"
    );
    assert!(
        fast_files
            .iter()
            .any(|l| l.starts_with("/root/pkg/main.py\t")),
        "the source is there"
    );
    assert!(
        fast_files
            .iter()
            .any(|l| l.starts_with("/root/assets/sub/b.txt\t")),
        "copy directories are there"
    );
}

/// A registry of the test's own (its own port and storage), which it can kill; stopped by
/// PID when dropped.
struct OwnRegistry {
    child: std::process::Child,
    port: u16,
    storage: PathBuf,
    config: PathBuf,
}

impl OwnRegistry {
    fn start(dir: &Path, port: Option<u16>) -> OwnRegistry {
        let port = port.unwrap_or_else(free_port);
        let storage = dir.join("registry-data");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n", storage.display()),
        )
        .expect("config");
        let child = Process::new("docker-registry")
            .args(["serve", config.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry");
        let registry = OwnRegistry {
            child,
            port,
            storage,
            config,
        };
        for _ in 0..200 {
            if registry_up(&format!("127.0.0.1:{port}")) {
                return registry;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("registry on port {port} did not start");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Files that sit in the registry's upload area (a blob upload in progress).
fn uploading(storage: &Path) -> bool {
    let Ok(out) = Process::new("find")
        .args([
            storage.to_str().unwrap(),
            "-path",
            "*/_uploads/*/data",
            "-size",
            "+1k",
        ])
        .output()
    else {
        return false;
    };
    !out.stdout.is_empty()
}

/// Killing the registry in the middle of the source layer's upload publishes no tag (the
/// manifest goes last); once the registry is back, the same build completes.
#[test]
fn killed_registry_mid_push_leaves_no_tag_and_a_rerun_completes() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut registry = OwnRegistry::start(dir.path(), None);
    let port = registry.port;
    let local = Services {
        registry: format!("localhost:{port}"),
        ..env
    };
    let proj = fast_path_project(dir.path(), &local, "interrupted", &run_id());
    // The dependency image first (built, or taken from the build cache, and pushed).
    let (ok, _, log) = build_json(&proj, &["spec.toml"]);
    assert!(ok, "{log}");

    // A code change with a big file: its layer takes long enough to upload to be cut.
    sh(&proj, "head -c 100000000 /dev/urandom > src/pkg/model.bin");
    let image = inspect_json(&proj, "spec.toml")["image"]
        .as_str()
        .expect("image")
        .to_string();
    let mut build = spawn(
        Process::new(assert_cmd::cargo::cargo_bin("imagespec"))
            .current_dir(&proj)
            .env("IMAGESPEC_NO_CACHE", "1")
            .args(["build", "spec.toml"]),
    );
    let mut cut = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while std::time::Instant::now() < deadline && build.child().try_wait().expect("wait").is_none()
    {
        if uploading(&registry.storage) {
            registry.kill();
            cut = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let out = build.wait();
    assert!(cut, "the upload was never seen in progress");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "the build must fail when the registry dies: {text}"
    );
    assert!(
        text.contains("uploading blob") || text.contains("registry"),
        "{text}"
    );

    // Back up on the same storage: no tag was published.
    let _ = &registry.config;
    let registry = OwnRegistry::start(dir.path(), Some(port));
    assert!(
        !in_registry(&image),
        "{image} must not exist after an interrupted push"
    );

    // A rerun completes, and the image has the big file.
    let (ok, events, log) = build_json(&proj, &["spec.toml"]);
    assert!(ok && result(&events)["action"] == "appended", "{log}");
    output(Process::new(DOCKER).args(["pull", "-q", &image]));
    let size = output(Process::new(DOCKER).args([
        "run",
        "--rm",
        "--entrypoint",
        "stat",
        &image,
        "-c",
        "%s",
        "/root/pkg/model.bin",
    ]));
    assert_eq!(size.trim(), "100000000");
    output(Process::new(DOCKER).args(["rmi", &image]));
    drop(registry);
}

/// `--output`: the code change assembled on the dependency image and written to disk, not
/// pushed; read back by umoci, skopeo and `docker load`.
#[test]
fn output_writes_oci_layouts_and_docker_archives_without_pushing() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let proj = fast_path_project(d, &env, "output-e2e", &run_id());
    let (ok, _, log) = build_json(&proj, &["spec.toml"]);
    assert!(ok, "{log}");
    std::fs::write(proj.join("src/pkg/main.py"), "print(\"v3\")\n").expect("edit");
    let expected = inspect_json(&proj, "spec.toml");
    let (image, id, tag) = (
        expected["image"].as_str().unwrap(),
        expected["id"].as_str().unwrap(),
        expected["tag"].as_str().unwrap(),
    );

    let layout = d.join("layout");
    let archive = d.join("image.oci.tar");
    let docker_tar = d.join("image.docker.tar");
    let mut written_bytes = Vec::new();
    for target in [
        format!("oci:{}", layout.display()),
        format!("oci-archive:{}", archive.display()),
        format!("docker-archive:{}", docker_tar.display()),
    ] {
        let (ok, events, log) = build_json(&proj, &["spec.toml", "--output", &target]);
        assert!(
            ok && result(&events)["action"] == "written",
            "{target}: {log}"
        );
        // The output step counts the layers' bytes it writes: each layer once, in full.
        let mut layers = std::collections::BTreeMap::new();
        for e in events
            .iter()
            .filter(|e| e["event"] == "push" && e["step"] == "output")
        {
            let (layer, total) = (e["layer"].as_str().unwrap(), e["total"].as_u64().unwrap());
            let last = layers.entry(layer.to_string()).or_insert((0, total));
            assert!(e["current"].as_u64().unwrap() >= last.0, "{target}: {e}");
            *last = (e["current"].as_u64().unwrap(), total);
        }
        assert!(
            !layers.is_empty() && layers.values().all(|(done, total)| done == total),
            "{target}: {layers:?}"
        );
        written_bytes.push(layers.values().map(|(_, total)| total).sum::<u64>());
    }
    // Every layer of the image, as the layout's manifest lists them (one that comes twice,
    // such as the empty layer, is written once).
    let manifest_digest = layout_index(&layout)["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(manifest_digest)).expect("manifest"),
    )
    .expect("json");
    let layer_bytes: u64 = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["digest"].as_str().unwrap(), l["size"].as_u64().unwrap()))
        .collect::<std::collections::BTreeMap<_, _>>()
        .values()
        .sum();
    assert_eq!(written_bytes, [layer_bytes; 3], "bytes written per target");
    // Nothing was pushed.
    assert!(!in_registry(image), "--output must not push {image}");

    // The OCI layout, from outside: skopeo sees the config, umoci unpacks the files. Its
    // ref name is the tag, unless the tag breaks the OCI grammar (then `latest`).
    let index = layout_index(&layout);
    let ref_name = ref_name(&index["manifests"][0]).to_string();
    assert!(
        ref_name == tag
            || (ref_name == "latest"
                && (tag.starts_with('_') || tag.ends_with('_') || tag.contains("__"))),
        "{ref_name} for {tag}"
    );
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        image
    );
    let tag = ref_name.as_str();
    let config: Value = serde_json::from_str(&output(Process::new("skopeo").args([
        "inspect",
        "--config",
        &format!("oci:{}:{tag}", layout.display()),
    ])))
    .expect("json");
    let env_list = env_list(&config["config"]);
    assert!(
        env_list.contains(&format!("_F_IMG_ID={id}").as_str()),
        "{env_list:?}"
    );
    let rootfs = umoci_unpack(&format!("{}:{tag}", layout.display()), &d.join("bundle"));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("root/pkg/main.py")).expect("unpacked"),
        "print(\"v3\")\n"
    );
    let archived = output(
        Process::new("skopeo").args(["inspect", &format!("oci-archive:{}", archive.display())]),
    );
    assert!(archived.contains(id), "{archived}");

    // The docker archive loads and runs.
    output(Process::new(DOCKER).args(["load", "-i", docker_tar.to_str().unwrap()]));
    let ran = output(Process::new(DOCKER).args([
        "run",
        "--rm",
        image,
        "-c",
        "import os, pkg.main; print(os.environ['_F_IMG_ID'])",
    ]));
    assert_eq!(ran, format!("v3\n{id}\n"));
    output(Process::new(DOCKER).args(["rmi", image]));
}

/// Several platforms: the base here has amd64 only, so a build is refused before any work
/// (tests/e2e_multiplatform.rs builds on a two-platform base); given a dependency index
/// (made here by hand from the amd64 one, as buildx would push it), the fast path pushes an
/// index with the source layer on every platform; noop checks that its base has every
/// platform.
#[test]
fn several_platforms_give_an_index_and_noop_checks_its_base() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("multi-{}", run_id().replace('-', ""));
    let proj = fast_path_project(dir.path(), &env, &name, "multi");
    let (ok, events, log) = build_json(&proj, &["spec.toml"]);
    assert!(ok && result(&events)["action"] == "appended", "{log}");
    let deps_amd64 = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .find_map(|m| {
            m.strip_prefix("dependency image ")
                .or_else(|| m.strip_prefix("dependencies unchanged ("))
        })
        .map(|m| m.split([' ', ')']).next().unwrap().to_string())
        .expect("deps image named");

    let spec = std::fs::read_to_string(proj.join("spec.toml")).expect("spec");
    std::fs::write(
        proj.join("spec.toml"),
        format!("platform = \"linux/amd64,linux/arm64\"\n{spec}"),
    )
    .expect("spec");
    let (ok, events, log) = build_json(&proj, &["spec.toml"]);
    assert!(!ok, "a base without arm64 cannot be built on: {log}");
    assert!(
        log.contains("has no image for linux/arm64"),
        "the error names the missing platform: {log}"
    );
    assert!(
        !events.iter().any(|e| e["event"] == "step"),
        "refused before any build step: {log}"
    );
    let (_, plans) = plan_json(&proj, &["spec.toml"], None);
    let deps_multi = plans
        .last()
        .and_then(|p| p["dependency_image"].as_str())
        .expect("plan names the dependency image")
        .to_string();

    // The dependency index: amd64 as built, and an "arm64" twin (its config says arm64).
    let registry = "127.0.0.1:5000";
    let raw = output(Process::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{deps_amd64}"),
    ]));
    let manifest: Value = serde_json::from_str(&raw).expect("manifest");
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config = output(Process::new("curl").args([
        "-sf",
        &format!("http://{registry}/v2/{name}/blobs/{config_digest}"),
    ]));
    let mut arm: Value = serde_json::from_str(&config).expect("config");
    arm["architecture"] = "arm64".into();
    let arm_config = serde_json::to_vec(&arm).unwrap();
    let arm_config_digest = curl_blob(registry, &name, &arm_config);
    let mut arm_manifest = manifest.clone();
    arm_manifest["config"]["digest"] = arm_config_digest.into();
    arm_manifest["config"]["size"] = arm_config.len().into();
    let arm_body = serde_json::to_vec(&arm_manifest).unwrap();
    let media = manifest["mediaType"].as_str().unwrap().to_string();
    let arm_digest = format!("sha256:{}", sha256_hex(&arm_body));
    curl_manifest(registry, &name, &arm_digest, &media, &arm_body);
    let amd_digest = format!("sha256:{}", sha256_hex(raw.as_bytes()));
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json", "manifests": [
        {"mediaType": media, "digest": amd_digest, "size": raw.len(), "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": media, "digest": arm_digest, "size": arm_body.len(), "platform": {"os": "linux", "architecture": "arm64"}},
    ]});
    let deps_tag = deps_multi.rsplit(':').next().unwrap();
    curl_manifest(
        registry,
        &name,
        deps_tag,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        &serde_json::to_vec(&index).unwrap(),
    );

    let (ok, events, log) = build_json(&proj, &["spec.toml"]);
    assert!(ok && result(&events)["action"] == "appended", "{log}");
    let expected = inspect_json(&proj, "spec.toml");
    let image = expected["image"].as_str().unwrap();
    let id = expected["id"].as_str().unwrap();
    let top: Value = serde_json::from_str(&output(Process::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ])))
    .unwrap();
    let arches: Vec<&str> = top["manifests"]
        .as_array()
        .expect("an index")
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);
    for arch in ["amd64", "arm64"] {
        let seen: Value = serde_json::from_str(&output(Process::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--override-arch",
            arch,
            &format!("docker://{image}"),
        ])))
        .unwrap();
        assert_eq!(seen["Architecture"], arch);
        assert!(
            env_list(&seen).contains(&format!("_F_IMG_ID={id}").as_str()),
            "{arch}: {seen}"
        );
        assert_eq!(
            seen["Layers"].as_array().unwrap().len(),
            manifest["layers"].as_array().unwrap().len() + 1,
            "{arch}: one layer on top"
        );
    }
    output(Process::new(DOCKER).args(["pull", "-q", image]));
    assert_eq!(
        output(Process::new(DOCKER).args(["run", "--rm", image, "-c", "import pkg.main"])),
        "v1\n"
    );
    output(Process::new(DOCKER).args(["rmi", image]));

    // noop: the new index has both platforms; s390x it has not.
    for (platform, good) in [
        ("linux/amd64,linux/arm64", true),
        ("linux/amd64,linux/s390x", false),
    ] {
        std::fs::write(
            proj.join("noop.toml"),
            format!("builder = \"noop\"\nbase_image = \"{image}\"\nplatform = \"{platform}\"\n"),
        )
        .unwrap();
        let out = Command::cargo_bin("imagespec")
            .unwrap()
            .current_dir(&proj)
            .args(["build", "noop.toml"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        if good {
            assert!(
                out.status.success() && text.contains("an index with"),
                "{text}"
            );
        } else {
            assert_eq!(out.status.code(), Some(2), "{text}");
            assert!(text.contains("no image for linux/s390x"), "{text}");
        }
    }
}

/// `imagespec plan --json ARGS` in `dir`: one object per image, and the exit code.
fn plan_json(dir: &Path, args: &[&str], docker_host: Option<&str>) -> (Option<i32>, Vec<Value>) {
    let mut cmd = Command::cargo_bin("imagespec").expect("binary");
    cmd.current_dir(dir).args(["plan", "--json"]).args(args);
    if let Some(host) = docker_host {
        cmd.env("DOCKER_HOST", host);
    }
    let out = cmd.output().expect("run imagespec plan");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let plans = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (out.status.code(), plans)
}

/// Issue 12: `plan` shows the decision `build` takes, through a project's life: first build
/// (dependencies and source), no change (skip), a code change (append, no daemon needed),
/// a dependency change, and `commands` after the copy (full build).
#[test]
fn plan_shows_the_decision_build_takes() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_id();
    let proj = fast_path_project(dir.path(), &env, "plan-e2e", &run);
    let nowhere = Some(NO_DAEMON);

    let (code, plans) = plan_json(&proj, &["spec.toml"], nowhere);
    assert_eq!(code, Some(0), "{plans:?}");
    let [first] = plans.as_slice() else {
        panic!("one image: {plans:?}")
    };
    assert_eq!(first["exists"], false);
    assert_eq!(first["strategy"], "build_dependencies_then_append");
    assert_eq!(first["dependency_exists"], false);
    assert_eq!(first["files"], 7, "5 source files + 2 copied: {first}");
    let deps = first["dependency_image"]
        .as_str()
        .expect("dependency image");
    assert!(deps.starts_with("localhost:5000/plan-e2e:deps-"), "{deps}");

    let (ok, events, log) = build_json(&proj, &["spec.toml"]);
    assert!(ok, "{log}");
    let built = result(&events);
    assert_eq!(built["strategy"], first["strategy"], "{log}");
    assert_eq!(built["image"], first["image"]);
    // From outside: the image and its dependency image are in the registry.
    registry_digest(first["image"].as_str().unwrap());
    registry_digest(deps);

    let (code, plans) = plan_json(&proj, &["spec.toml"], nowhere);
    assert_eq!(
        (code, &plans[0]["strategy"]),
        (Some(0), &Value::from("skip"))
    );
    assert_eq!(plans[0]["exists"], true);
    assert_eq!(plans[0]["reason"], "the image exists in the registry");

    // A code change: appended, and the plan needs no daemon to say so.
    std::fs::write(proj.join("src/pkg/main.py"), "print(\"v2\")\n").expect("edit");
    let (code, plans) = plan_json(&proj, &["spec.toml"], nowhere);
    assert_eq!(code, Some(0));
    assert_eq!(plans[0]["exists"], false);
    assert_eq!(plans[0]["strategy"], "append");
    assert_eq!(plans[0]["dependency_image"], deps);
    assert_eq!(plans[0]["dependency_exists"], true);
    assert_eq!(
        plans[0]["reason"],
        "dependencies unchanged: append 7 files to the dependency image"
    );
    // `--force` and `--no-fast-path` change the plan as they change the build.
    let (_, plans) = plan_json(&proj, &["spec.toml", "--no-fast-path"], nowhere);
    assert_eq!(plans[0]["strategy"], "build");
    let (_, plans) = plan_json(&proj, &["spec.toml", "--output"], nowhere);
    assert_eq!(plans[0]["strategy"], "write_output");
    assert_eq!(plans[0]["exists"], Value::Null);

    // A dependency change: a new dependency image.
    let spec = std::fs::read_to_string(proj.join("spec.toml")).expect("spec");
    let changed = spec.replace(
        r#"packages = ["pyyaml"]"#,
        r#"packages = ["pyyaml", "six"]"#,
    );
    assert_ne!(spec, changed);
    std::fs::write(proj.join("spec.toml"), &changed).expect("spec");
    let (_, plans) = plan_json(&proj, &["spec.toml"], nowhere);
    assert_eq!(plans[0]["strategy"], "build_dependencies_then_append");
    assert_ne!(plans[0]["dependency_image"], deps);
    assert_eq!(plans[0]["dependency_exists"], false);

    // `commands` after the copy: a full build, and the reason says why.
    std::fs::write(
        proj.join("spec.toml"),
        format!("{spec}commands = [\"echo hi\"]\n"),
    )
    .expect("spec");
    let (_, plans) = plan_json(&proj, &["spec.toml"], nowhere);
    assert_eq!(plans[0]["strategy"], "build");
    assert_eq!(plans[0]["dependency_image"], Value::Null);
    assert!(
        plans[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("`commands` run after the source is copied")),
        "{}",
        plans[0]
    );
}

/// Issue 12: `commands` that do not use the source, opted in to run before the copy, belong
/// to the dependency image: the build appends, and a code change is appended again; the
/// command's output and the files are in the image, seen with `docker run`.
#[test]
fn commands_before_copy_get_the_fast_path() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_id();
    let proj = fast_path_project(dir.path(), &env, "commands-first-e2e", &run);
    let spec = std::fs::read_to_string(proj.join("spec.toml")).expect("spec");
    let spec = spec.replace(
        "builder_options = { add_flytekit = false }",
        "builder_options = { add_flytekit = false, commands_before_copy = true }\ncommands = [\"echo ran-first > /opt/marker\"]",
    );
    assert!(spec.contains("commands_before_copy"));
    std::fs::write(proj.join("spec.toml"), spec).expect("spec");

    let (ok, events, log) = build_json(&proj, &["spec.toml"]);
    assert!(ok, "{log}");
    assert_eq!(result(&events)["action"], "appended", "{log}");
    std::fs::write(proj.join("src/pkg/main.py"), "print(\"v2\")\n").expect("edit");
    let (ok, events, log) = build_json(&proj, &["spec.toml"]);
    assert!(ok, "{log}");
    assert_eq!(result(&events)["strategy"], "append", "{log}");
    let image = inspect_json(&proj, "spec.toml")["image"]
        .as_str()
        .expect("image")
        .to_string();
    output(Process::new(DOCKER).args(["pull", "-q", &image]));
    let seen = output(Process::new(DOCKER).args([
        "run",
        "--rm",
        &image,
        "-c",
        "import pkg.main; print(open('/opt/marker').read().strip())",
    ]));
    assert_eq!(seen, "v2\nran-first\n");
}

/// `imagespec explain --json ARGS` in `dir` with its own cache (the last-build record).
fn explain_json(dir: &Path, cache: &Path, args: &[&str]) -> Value {
    let out = Command::cargo_bin("imagespec")
        .expect("binary")
        .current_dir(dir)
        .env("IMAGESPEC_CACHE_DIR", cache)
        .args(["explain", "--json", "spec.toml"])
        .args(args)
        .output()
        .expect("run imagespec explain");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// Issue 12: every image records what its tag was computed from (seen from outside with
/// skopeo), and `explain` names what changed since: a package and a file, a rename, only the
/// order of `env`; against the image in the registry or the last build on this machine.
#[test]
fn explain_names_what_changed_since_an_image() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let run = run_id();
    let proj = fast_path_project(dir.path(), &env, "explain-e2e", &run);
    let out = Command::cargo_bin("imagespec")
        .expect("binary")
        .current_dir(&proj)
        .env("IMAGESPEC_CACHE_DIR", &cache)
        .args(["build", "spec.toml"])
        .output()
        .expect("build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = String::from_utf8_lossy(&out.stdout).trim().to_string();

    // The record, from outside: in the image's config, without host paths.
    let config: Value = serde_json::from_str(&output(Process::new("skopeo").args([
        "inspect",
        "--config",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ])))
    .expect("config");
    let label = config["config"]["Labels"]["org.imagespec.inputs"]
        .as_str()
        .expect("the inputs label");
    let record: Value = serde_json::from_str(label).expect("label is JSON");
    assert_eq!(record["image"], image.as_str());
    assert!(record["files"]["src/pkg/main.py"].is_string(), "{record}");
    assert!(
        !label.contains(&dir.path().display().to_string()),
        "no host path in the record: {label}"
    );

    let spec = std::fs::read_to_string(proj.join("spec.toml")).expect("spec");
    // A package and a file.
    std::fs::write(
        proj.join("spec.toml"),
        spec.replace(
            r#"packages = ["pyyaml"]"#,
            r#"packages = ["pyyaml", "six"]"#,
        ),
    )
    .expect("spec");
    std::fs::write(proj.join("src/pkg/main.py"), "print(\"v2\")\n").expect("edit");
    let e = explain_json(&proj, &cache, &["--against", &image]);
    assert_eq!(e["fields"].as_array().map(Vec::len), Some(1), "{e}");
    assert_eq!(e["fields"][0]["field"], "packages");
    assert_eq!(e["fields"][0]["before"], "['pyyaml']");
    assert_eq!(e["fields"][0]["after"], "['pyyaml', 'six']");
    // src/link.py links to pkg/main.py: its content (read through, as flytekit reads it)
    // changed too.
    assert_eq!(
        e["files"]["changed"],
        serde_json::json!(["src/link.py", "src/pkg/main.py"])
    );
    assert_eq!(e["files"]["added"], serde_json::json!([]));
    assert_eq!(e["dependencies_changed"], true);
    // The same, against the last build on this machine.
    assert_eq!(explain_json(&proj, &cache, &[]), e);

    // A rename, nothing else.
    std::fs::write(proj.join("spec.toml"), &spec).expect("spec");
    std::fs::write(proj.join("src/pkg/main.py"), "print(\"v1\")\n").expect("edit");
    std::fs::rename(
        proj.join("src/data/deep/x.json"),
        proj.join("src/data/deep/y.json"),
    )
    .expect("rename");
    let e = explain_json(&proj, &cache, &["--against", &image]);
    assert_eq!(e["fields"], serde_json::json!([]), "{e}");
    assert_eq!(
        e["files"]["removed"],
        serde_json::json!(["src/data/deep/x.json"])
    );
    assert_eq!(
        e["files"]["added"],
        serde_json::json!(["src/data/deep/y.json"])
    );
    assert_eq!(
        e["renamed"],
        serde_json::json!([["src/data/deep/x.json", "src/data/deep/y.json"]])
    );
    assert_eq!(e["dependencies_changed"], false);

    // Only the order of env: one field, and a new dependency image (ENV is in it).
    std::fs::rename(
        proj.join("src/data/deep/y.json"),
        proj.join("src/data/deep/x.json"),
    )
    .expect("rename back");
    let swapped = spec.replace(
        &format!(r#"env = {{ APP_ENV = "e2e", RUN_ID = "{run}" }}"#),
        &format!(r#"env = {{ RUN_ID = "{run}", APP_ENV = "e2e" }}"#),
    );
    assert_ne!(swapped, spec);
    std::fs::write(proj.join("spec.toml"), &swapped).expect("spec");
    let e = explain_json(&proj, &cache, &["--against", &image]);
    assert_eq!(e["fields"].as_array().map(Vec::len), Some(1), "{e}");
    assert_eq!(e["fields"][0]["field"], "env");
    assert_eq!(
        e["files"],
        serde_json::json!({"added": [], "removed": [], "changed": []})
    );
    assert_eq!(e["dependencies_changed"], true);

    // A full Dockerfile build (BuildKit) records the same inputs as the fast path.
    std::fs::write(proj.join("spec.toml"), &spec).expect("spec");
    let (ok, events, log) = build_json(&proj, &["spec.toml", "--force", "--no-fast-path"]);
    assert!(ok && result(&events)["action"] == "built", "{log}");
    let config: Value = serde_json::from_str(&output(Process::new("skopeo").args([
        "inspect",
        "--config",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ])))
    .expect("config");
    let rebuilt = config["config"]["Labels"]["org.imagespec.inputs"]
        .as_str()
        .expect("the inputs label after a full build");
    assert_eq!(
        serde_json::from_str::<Value>(rebuilt).expect("JSON"),
        record
    );
}

/// Issue 16: `build` names the digest the registry holds: on stdout with `--print-ref
/// digest`, in `--metadata-file` (buildx's keys) and in the `--json` result; also when the
/// image is found and skipped. Checked against skopeo.
#[test]
fn digest_reference_and_metadata_match_the_registry() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_id();
    let proj = fast_path_project(dir.path(), &env, "digest-e2e", &run);
    let metadata = dir.path().join("metadata.json");
    let out = Command::cargo_bin("imagespec")
        .expect("binary")
        .current_dir(&proj)
        .args([
            "build",
            "spec.toml",
            "--print-ref",
            "digest",
            "--metadata-file",
        ])
        .arg(&metadata)
        .output()
        .expect("build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let image = inspect_json(&proj, "spec.toml")["image"]
        .as_str()
        .expect("image")
        .to_string();
    let digest = registry_digest(&image);
    let repository = image.rsplit_once(':').expect("a tag").0;
    assert_eq!(printed, format!("{repository}@{digest}"));
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(&metadata).expect("metadata")).expect("json");
    assert_eq!(meta["containerimage.digest"], digest.as_str());
    assert_eq!(meta["image.name"], image.as_str());
    assert_eq!(meta["imagespec.action"], "appended");
    // The reference pulls the same image.
    output(Process::new(DOCKER).args(["pull", "-q", &printed]));

    // Found and skipped: the same digest in the JSON result.
    let (ok, events, log) = build_json(&proj, &["spec.toml"]);
    assert!(ok, "{log}");
    assert_eq!(result(&events)["action"], "skipped");
    assert_eq!(result(&events)["digest"], digest.as_str());
}

/// Issue 11: flytekit's digest does not see every rename (`pkg/mod.py` → `pkgmod.py` keeps
/// the tag), so `build` finds the image and skips it; the record in the image (read from the
/// registry) shows the files differ, and the skip says so and names `--force`.
#[test]
fn a_rename_the_tag_cannot_see_is_warned_about_on_skip() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let proj = dir.path().join("proj");
    std::fs::create_dir_all(proj.join("src/pkg")).expect("mkdir");
    std::fs::write(proj.join("src/pkg/mod.py"), "x = 1\n").expect("file");
    let spec = format!(
        r#"
name = "rename-e2e"
registry = "{registry}"
base_image = "{base}"
env = {{ RUN_ID = "{run}" }}
source_root = "src"
source_copy_mode = "all"
builder_config = {{ uv_image = "{uv}" }}
builder_options = {{ add_flytekit = false }}
"#,
        registry = env.registry,
        base = env.base_python,
        uv = env.uv_image,
        run = run_id(),
    );
    std::fs::write(proj.join("spec.toml"), spec).expect("spec");
    let (ok, events, log) = build_json(&proj, &["spec.toml"]);
    assert!(ok, "{log}");
    let image = result(&events)["image"]
        .as_str()
        .expect("image")
        .to_string();

    std::fs::rename(proj.join("src/pkg/mod.py"), proj.join("src/pkgmod.py")).expect("rename");
    let (ok, events, log) = build_json(&proj, &["spec.toml"]);
    assert!(ok, "{log}");
    assert_eq!(
        result(&events)["image"],
        image.as_str(),
        "the quirk: same name"
    );
    assert_eq!(result(&events)["action"], "skipped");
    let warning = events
        .iter()
        .find(|e| e["event"] == "warning")
        .and_then(|e| e["message"].as_str())
        .unwrap_or_else(|| panic!("a warning: {log}"));
    assert!(
        warning.contains("`src/pkg/mod.py` → `src/pkgmod.py`") && warning.contains("--force"),
        "{warning}"
    );
}
