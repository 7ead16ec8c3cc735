//! End-to-end `build --jobs`: a 6-image project (a multi-image file with nested bases; apt
//! and `commands` images that need BuildKit, pip-only ones) built three at a time over the
//! two buildkitds of `scripts/e2e/buildkitd.sh`. Checked from outside: skopeo inspects every
//! image, `docker run` runs two; the `--json` events say which builder built each image and
//! that a base was pushed before the image on it started. Without the services this test
//! fails under `CI`, and says why and passes elsewhere.

mod common;

use common::e2e::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The two builders and their certificates, from `e2e.env`.
struct Builders {
    env: Services,
    hosts: [String; 2],
    ca: String,
    cert: String,
    key: String,
}

fn builders() -> Option<Builders> {
    let env = services()?;
    let file = &env.file;
    let (Some(one), Some(two)) = (
        file.get("IMAGESPEC_E2E_BUILDKIT_HOST"),
        file.get("IMAGESPEC_E2E_BUILDKIT_HOST2"),
    ) else {
        return missing(&format!(
            "no two remote buildkitds in {} (scripts/e2e/buildkitd.sh up starts them)",
            file.path
        ));
    };
    Some(Builders {
        hosts: [one, two],
        ca: file.need("IMAGESPEC_E2E_BUILDKIT_CA"),
        cert: file.need("IMAGESPEC_E2E_BUILDKIT_CERT"),
        key: file.need("IMAGESPEC_E2E_BUILDKIT_KEY"),
        env,
    })
}

/// The six images: `base` (apt, `commands`) ← `mid` (pip) ← `app` (`commands`); `tool`
/// (`commands`),
/// `pip-a` and `pip-b` (pip only, source files).
fn project(dir: &Path, registry: &str, base: &str, uv: &str) -> PathBuf {
    let proj = dir.join("jobs");
    std::fs::create_dir_all(proj.join("src")).unwrap();
    std::fs::write(proj.join("src/app.py"), "print('hello from the source')\n").unwrap();
    let common = format!(
        "registry = \"{registry}\"\nbuilder_config = {{ uv_image = \"{uv}\" }}\n\
         builder_options = {{ add_flytekit = false }}\n"
    );
    let images = [
        (
            "base",
            // `commands` need BuildKit (apt alone is laid down without a daemon now).
            format!(
                "base_image = \"{base}\"\napt_packages = [\"jq\"]\n\
                 commands = [\"jq --version > /jq-version\"]\n"
            ),
        ),
        (
            "mid",
            "base_image = { spec = \"base\" }\npackages = [\"six\"]\n".into(),
        ),
        (
            "app",
            "base_image = { spec = \"mid\" }\ncommands = [\"echo app > /app-built\"]\n".into(),
        ),
        (
            "tool",
            format!("base_image = \"{base}\"\ncommands = [\"echo tool > /tool-built\"]\n"),
        ),
        (
            "pip-a",
            format!(
                "base_image = \"{base}\"\npackages = [\"idna\"]\nsource_root = \"src\"\n\
                 source_copy_mode = \"all\"\n"
            ),
        ),
        (
            "pip-b",
            format!(
                "base_image = \"{base}\"\npackages = [\"six\"]\nsource_root = \"src\"\n\
                 source_copy_mode = \"all\"\n"
            ),
        ),
    ];
    let mut text = String::new();
    for (key, lines) in images {
        text.push_str(&format!(
            "[images.{key}]\nname = \"jobs-{key}\"\n{common}{lines}"
        ));
    }
    std::fs::write(proj.join("spec.toml"), text).unwrap();
    proj
}

/// The index of the first event matching `found`.
fn first(events: &[Value], found: impl Fn(&Value) -> bool) -> usize {
    events.iter().position(found).expect("a matching event")
}

#[test]
fn six_images_build_three_at_a_time_over_two_builders() {
    let Some(b) = builders() else { return };
    let dir = tempfile::tempdir().unwrap();
    let registry = format!("{}/jobs-e2e/{}", b.env.registry, run_id());
    let proj = project(dir.path(), &registry, &b.env.base_python, &b.env.uv_image);
    let mut cmd = imagespec_in(&proj);
    cmd.args(["build", "--json", "spec.toml", "--jobs", "3"]);
    for host in &b.hosts {
        cmd.args(["--builder-host", host]);
    }
    cmd.args([
        "--tlscacert",
        &b.ca,
        "--tlscert",
        &b.cert,
        "--tlskey",
        &b.key,
    ]);
    let run = run_json(&mut cmd);
    assert!(run.ok(), "{}", run.text);

    // Every image is in the registry, as skopeo sees it.
    let results: Vec<&Value> = run
        .events
        .iter()
        .filter(|e| e["event"] == "result")
        .collect();
    assert_eq!(results.len(), 6, "{}", run.text);
    let image = |key: &str| -> String {
        let name = format!("/jobs-{key}:");
        let found = results
            .iter()
            .find(|r| r["image"].as_str().is_some_and(|i| i.contains(&name)));
        found.expect("a result per image")["image"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for key in ["base", "mid", "app", "tool", "pip-a", "pip-b"] {
        let inspected = skopeo_inspect(&[], &image(key));
        assert!(inspected["Digest"].is_string(), "{key}: {inspected}");
    }

    // Two of them run: the nested chain's top (apt, pip and `commands` of three images)
    // and a pip-only image with its source.
    let app = run_on(
        "linux/amd64",
        &image("app"),
        "sh",
        "cat /app-built; jq --version; /root/.venv/bin/python -c 'import six; print(\"six\")'",
    );
    assert!(
        app.contains("app") && app.contains("jq-") && app.contains("six"),
        "{app}"
    );
    let pip = run_on(
        "linux/amd64",
        &image("pip-a"),
        "sh",
        "/root/.venv/bin/python -c 'import idna; print(\"idna\")'; /root/.venv/bin/python /root/app.py",
    );
    assert!(
        pip.contains("idna") && pip.contains("hello from the source"),
        "{pip}"
    );

    // Both builders got work: each BuildKit build names its builder.
    let used: BTreeSet<&str> = run
        .events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter_map(|m| m.split("on the BuildKit builder at ").nth(1))
        .collect();
    let hosts: BTreeSet<&str> = b.hosts.iter().map(String::as_str).collect();
    assert_eq!(used, hosts, "{}", run.text);

    // A base is pushed before the image on it starts: `base`'s result comes before any
    // event of `mid`, and `mid`'s before any of `app`.
    for (base, on) in [("base", "mid"), ("mid", "app")] {
        let pushed = first(&run.events, |e| e["image"].as_str() == Some(&image(base)));
        let started = first(&run.events, |e| e["key"] == on);
        assert!(pushed < started, "{base} after {on} started:\n{}", run.text);
    }
    // Three at a time: the independent images' events interleave.
    let keys: Vec<&str> = run
        .events
        .iter()
        .filter_map(|e| e["key"].as_str())
        .collect();
    let switches = keys.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(switches > 5, "the images did not build at once: {keys:?}");
}
