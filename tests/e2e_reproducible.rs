//! End-to-end tests of reproducible digests (issue 23, docs/reproducible.md): on the
//! daemonless paths — the uv builder, the registry fast path, `--output` layouts — one spec,
//! source, base and package set give one image digest whatever the cache, `HOME` and
//! working directory; `SOURCE_DATE_EPOCH` changes it, and sets the config's `created`.
//! Digests are read from outside (skopeo). Services as for tests/e2e_daemonless.rs; without
//! them these tests fail under `CI`, and say why and pass elsewhere.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

mod common;

use common::e2e::{
    NO_DAEMON, imagespec_in, layout_index, output, ref_name, run_id, run_json, skopeo_inspect,
};

/// `SOURCE_DATE_EPOCH` of the third build, and the time it gives.
const EPOCH: &str = "1700000000";
const EPOCH_RFC3339: &str = "2023-11-14T22:13:20Z";

struct Env {
    base_python: String,
    uv: PathBuf,
}

/// The harness's registry and base, and uv, or `None` (and a note) outside CI.
fn services() -> Option<Env> {
    let s = common::e2e::services()?;
    Some(Env {
        uv: s.file.uv()?,
        base_python: s.base_python,
    })
}

/// One machine's state for a build: its own working directory (the project copied there),
/// `HOME` and imagespec cache.
struct Place {
    proj: PathBuf,
    home: PathBuf,
    cache: PathBuf,
}

/// The project (source files, `spec.toml` with `registry_line`) at `root/<path>/proj`, with
/// a `HOME` and a cache of its own beside it.
fn place(root: &Path, path: &str, env: &Env, name: &str, registry_line: &str) -> Place {
    let proj = root.join(path).join("proj");
    std::fs::create_dir_all(proj.join("src/app")).unwrap();
    std::fs::write(
        proj.join("src/app/main.py"),
        "import six\n\ndef main():\n    return six.PY3\n",
    )
    .unwrap();
    std::fs::write(proj.join("src/app/__init__.py"), "").unwrap();
    let spec = format!(
        r#"name = "{name}"
{registry_line}
base_image = "{base}"
packages = ["six", "pyyaml"]
env = {{ APP_ENV = "repro" }}
source_root = "src"
source_copy_mode = "all"
builder_options = {{ add_flytekit = false }}
"#,
        base = env.base_python,
    );
    std::fs::write(proj.join("spec.toml"), spec).unwrap();
    let place = Place {
        proj,
        home: root.join(path).join("home"),
        cache: root.join(path).join("cache"),
    };
    std::fs::create_dir_all(&place.home).unwrap();
    place
}

/// `imagespec build --json spec.toml ARGS` at `place` with no daemon (the uv builder), its
/// cache and `HOME`, and `extra` variables; panics with the log unless it succeeds.
fn build(place: &Place, env: &Env, args: &[&str], extra: &[(&str, &str)]) -> Value {
    let mut cmd = imagespec_in(&place.proj);
    cmd.env_remove("IMAGESPEC_NO_CACHE")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("UV_CACHE_DIR")
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("IMAGESPEC_NO_DAEMONLESS")
        .env("IMAGESPEC_CACHE_DIR", &place.cache)
        .env("HOME", &place.home)
        .env("IMAGESPEC_UV", &env.uv)
        .env("DOCKER_HOST", NO_DAEMON)
        .args(["build", "--json", "spec.toml"])
        .args(args);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let run = run_json(&mut cmd);
    assert!(run.ok(), "{}", run.text);
    run.result().clone()
}

/// `skopeo inspect ARGS oci:LAYOUT:REF` of the layout's image.
fn inspect_layout(layout: &Path, args: &[&str]) -> Value {
    let index = layout_index(layout);
    let reference = ref_name(&index["manifests"][0]).to_string();
    let image = format!("oci:{}:{reference}", layout.display());
    serde_json::from_str(&output(
        Process::new("skopeo").arg("inspect").args(args).arg(image),
    ))
    .expect("skopeo json")
}

/// The `created` of every history entry after the base's `base_entries`.
fn new_history_times(config: &Value, base_entries: usize) -> Vec<String> {
    config["history"].as_array().expect("history")[base_entries..]
        .iter()
        .map(|h| h["created"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The modification times of the entries of the gzip'd tar at `blob`.
fn layer_times(blob: &Path) -> Vec<u64> {
    let gz = flate2::read::MultiGzDecoder::new(std::fs::File::open(blob).expect("blob"));
    tar::Archive::new(gz)
        .entries()
        .expect("a tar")
        .map(|e| e.expect("entry").header().mtime().expect("mtime"))
        .collect()
}

/// Issue 23 (d), uv builder and `--output`: a spec without a registry written as an OCI
/// layout from two places (other directories, caches and `HOME`s: nothing shared) gives
/// one manifest digest; `SOURCE_DATE_EPOCH` gives another, with its time as `created`,
/// in the new history entries and in every entry of the source layer.
#[test]
fn layouts_from_two_places_have_one_digest_and_the_epoch_changes_it() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("h-repro-layout-{}", run_id());
    let one = place(dir.path(), "one", &env, &name, "");
    let two = place(dir.path(), "elsewhere/two", &env, &name, "");
    let mut digests = Vec::new();
    for (place, epoch) in [(&one, None), (&two, None), (&one, Some(EPOCH))] {
        let layout = dir.path().join(format!("layout-{}", digests.len()));
        let target = format!("oci:{}", layout.display());
        let extra: Vec<(&str, &str)> = epoch
            .map(|e| ("SOURCE_DATE_EPOCH", e))
            .into_iter()
            .collect();
        let result = build(place, &env, &["--output", &target], &extra);
        assert_eq!(result["action"], "written", "{result}");
        let digest = inspect_layout(&layout, &[])["Digest"]
            .as_str()
            .expect("digest")
            .to_string();
        digests.push((digest, layout));
    }
    assert_eq!(digests[0].0, digests[1].0, "two places, one digest");
    assert_ne!(digests[0].0, digests[2].0, "SOURCE_DATE_EPOCH changes it");
    assert!(
        two.cache.join("uv").is_dir(),
        "each place has its own uv cache"
    );

    let plain = inspect_layout(&digests[0].1, &["--config"]);
    let timed = inspect_layout(&digests[2].1, &["--config"]);
    let base = skopeo_inspect(&["--config"], &env.base_python);
    assert_eq!(plain["created"], base["created"], "unset: the base's time");
    assert_eq!(timed["created"], EPOCH_RFC3339);
    let base_entries = base["history"].as_array().map_or(0, Vec::len);
    let times = new_history_times(&timed, base_entries);
    assert!(
        !times.is_empty() && times.iter().all(|t| t == EPOCH_RFC3339),
        "{times:?}"
    );
    // The top layer (the source) and the first of ours (the user's) carry the time.
    let manifest = inspect_layout(&digests[2].1, &["--raw"]);
    let layers = manifest["layers"].as_array().expect("layers");
    let base_layers = skopeo_inspect(&[], &env.base_python)["Layers"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(layers.len() > base_layers + 1, "{manifest}");
    for layer in [&layers[layers.len() - 1], &layers[base_layers]] {
        let hex = layer["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let times = layer_times(&digests[2].1.join("blobs/sha256").join(hex));
        assert!(times.iter().all(|t| *t == 1_700_000_000), "{times:?}");
    }
}

/// Issue 23 (d), uv builder and fast path through the registry: the dependency image the
/// uv builder pushes from two places is one digest (two repositories); the image of one
/// spec built again from the other place (`--force`: its own cache and `HOME`) is the same
/// digest; `SOURCE_DATE_EPOCH` changes it and sets `created`.
#[test]
fn pushed_images_from_two_places_have_one_digest_and_the_epoch_changes_it() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("h-repro-push-{}", run_id());
    let line = |repo: &str| format!("registry = \"localhost:5000/{repo}\"");
    let one = place(dir.path(), "one", &env, &name, &line("repro-a"));
    let two = place(dir.path(), "elsewhere/two", &env, &name, &line("repro-b"));

    let first = build(&one, &env, &[], &[]);
    let second = build(&two, &env, &[], &[]);
    let deps = |result: &Value| {
        let image = result["image"].as_str().expect("image");
        let (repo, _) = image.rsplit_once(':').expect("a tag");
        let tag = inspect_deps_tag(image);
        format!("{repo}:{tag}")
    };
    let (deps_one, deps_two) = (deps(&first), deps(&second));
    assert_ne!(deps_one, deps_two, "two repositories");
    assert_eq!(
        skopeo_inspect(&[], &deps_one)["Digest"],
        skopeo_inspect(&[], &deps_two)["Digest"],
        "the uv builder's image from two places: {deps_one} and {deps_two}"
    );

    // The first place's spec, from the second place: the same image.
    let again = place(dir.path(), "third/place", &env, &name, &line("repro-a"));
    let again = Place {
        cache: two.cache.clone(),
        home: two.home.clone(),
        ..again
    };
    let image = first["image"].as_str().expect("image").to_string();
    let digest = skopeo_inspect(&[], &image)["Digest"].clone();
    build(&again, &env, &["--force"], &[]);
    assert_eq!(skopeo_inspect(&[], &image)["Digest"], digest, "{image}");

    build(&again, &env, &["--force"], &[("SOURCE_DATE_EPOCH", EPOCH)]);
    assert_ne!(skopeo_inspect(&[], &image)["Digest"], digest, "{image}");
    let config = skopeo_inspect(&["--config"], &image);
    assert_eq!(config["created"], EPOCH_RFC3339, "{config}");
    let last = config["history"].as_array().and_then(|h| h.last()).cloned();
    assert_eq!(last.unwrap_or_default()["created"], EPOCH_RFC3339);
}

/// The tag of the dependency image `image` was appended to, from its inputs label.
fn inspect_deps_tag(image: &str) -> String {
    let config = skopeo_inspect(&["--config"], image);
    let label = config["config"]["Labels"]["org.imagespec.inputs"]
        .as_str()
        .expect("the inputs label");
    let inputs: Value = serde_json::from_str(label).expect("json");
    let deps = inputs["dependency_image"]
        .as_str()
        .expect("a dependency image");
    deps.rsplit_once(':').expect("a tag").1.to_string()
}
