//! The registry is asked once per fact (issue 21), counted in the harness registry's own
//! request log (`$IMAGESPEC_E2E_STATE/registry-plain.log`, written by `scripts/e2e/up.sh`'s
//! registry: one access-log line per request). Other tests share that registry: only the
//! lines of this test's repository and tags are counted, and only those written after the
//! run started.
//!
//! - `build` of an image that exists: ONE manifest request for it (the existence check's
//!   HEAD, whose digest names the image; no second HEAD at the end, and the record of the
//!   files it holds is this machine's, kept by that digest when it pushed the image). The
//!   dependency image, looked up at the same time, is asked once at most.
//! - `build` on the fast path with the dependency image present: its manifest is read once
//!   (the dependency key computed once, the image it names asked once), and the image's
//!   manifest is asked once (HEAD: not there) and written once (PUT), never read back.
//!   Its SBOM (docs/sbom.md) then adds its artifact (PUT by digest) and the referrers tag
//!   (GET, PUT).
//!
//! - The same skip when this machine did not push the image (another cache directory, as on
//!   another machine or in CI): still ONE manifest request for it, the existence check,
//!   which then is a GET whose manifest leads to the record of its files (a config blob,
//!   not a manifest). For a multi-platform image: ONE for the index, pushed here or
//!   elsewhere (the index imagespec pushes carries the images' record as an annotation; an
//!   index without one costs the platform's manifest too). A nested base spec: ONE for
//!   each image.
//!   Two for a tag pushed elsewhere in a repository this machine pushes to: its HEAD
//!   (which cannot tell it from a tag not pushed yet), then its manifest; two also with
//!   the cache off (`recorded::ask_with_head` in src/engine/run/recorded.rs says why).
//!
//! Without the services these tests fail under `CI`, and say why and pass elsewhere.

use std::path::Path;

mod common;

use common::e2e::{
    RegistryLog, Services, imagespec_in, registry_digest, run_id, run_json, services,
    skopeo_inspect,
};

/// The repository of this test's images (and of its dependency image, found after the
/// first run ever).
const NAME: &str = "h-e2e-requests";

/// Writes the project: a source file unique to `content`, the spec naming the registry.
fn project(proj: &Path, s: &Services, content: &str) {
    project_with(proj, s, content, NAME, &s.base_python, "");
}

/// [`project`] with the image named `name`, on `base`, with `more` lines in the spec.
fn project_with(proj: &Path, s: &Services, content: &str, name: &str, base: &str, more: &str) {
    std::fs::create_dir_all(proj.join("src")).expect("mkdir");
    std::fs::write(proj.join("src/app.py"), format!("RUN = {content:?}\n")).expect("source");
    let spec = format!(
        r#"name = "{name}"
registry = "{registry}"
base_image = "{base}"
{more}
env = {{ APP = "requests" }}
source_root = "src"
source_copy_mode = "all"
builder_config = {{ uv_image = "{uv}" }}
builder_options = {{ add_flytekit = false }}
"#,
        registry = s.registry,
        uv = s.uv_image,
    );
    std::fs::write(proj.join("spec.toml"), spec).expect("spec");
}

/// `imagespec build --json` in `proj` with its own cache directory (the default: caches on).
fn build(proj: &Path, cache: &Path) -> common::e2e::JsonRun {
    build_args(proj, cache, &[])
}

/// [`build`] with more arguments.
fn build_args(proj: &Path, cache: &Path, args: &[&str]) -> common::e2e::JsonRun {
    let mut cmd = imagespec_in(proj);
    cmd.env_remove("IMAGESPEC_NO_CACHE")
        .env("IMAGESPEC_CACHE_DIR", cache)
        .env_remove("FLYTE_FORCE_PUSH_IMAGE_SPEC")
        .env_remove("FLYTE_PUSH_IMAGE_SPEC")
        .timeout(std::time::Duration::from_secs(900))
        .args(["build", "spec.toml", "--json"])
        .args(args);
    let run = run_json(&mut cmd);
    assert!(run.ok(), "build: {}", run.text);
    run
}

#[test]
fn the_registry_is_asked_once_per_fact() {
    let Some(s) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (proj, cache) = (dir.path().join("proj"), dir.path().join("cache"));
    let log = RegistryLog::of(&s);
    project(&proj, &s, &run_id());
    let first = build(&proj, &cache);
    let image = first.result()["image"].as_str().expect("image").to_string();
    let tag = image.rsplit_once(':').expect("a tag").1.to_string();

    // Skip: one manifest request for the image, and the digest it gave names the image.
    let mark = log.mark();
    let skipped = build(&proj, &cache);
    let requests = log.requests_of(NAME, "manifests", mark);
    assert_eq!(skipped.result()["action"], "skipped", "{}", skipped.text);
    let own: Vec<&String> = requests.iter().filter(|r| !r.contains(" deps-")).collect();
    assert_eq!(own, [&format!("HEAD {tag}")], "{}", skipped.text);
    // The dependency image is looked up beside the existence check (its answer is ready when
    // a build is due): once at most.
    let deps = requests.iter().filter(|r| r.contains(" deps-")).count();
    assert!(deps <= 1, "{requests:?}");
    let digest = skipped.result()["digest"].as_str().expect("a digest");
    assert_eq!(digest, registry_digest(&image));

    // The fast path: the dependency image's manifest read once; the image's asked once
    // (not there) and pushed once.
    project(&proj, &s, &run_id());
    let mark = log.mark();
    let appended = build(&proj, &cache);
    let requests = log.requests_of(NAME, "manifests", mark);
    assert_eq!(appended.result()["action"], "appended", "{}", appended.text);
    let image = appended.result()["image"]
        .as_str()
        .expect("image")
        .to_string();
    let tag = image.rsplit_once(':').expect("a tag").1;
    let deps: Vec<&String> = requests.iter().filter(|r| r.contains(" deps-")).collect();
    assert_eq!(
        deps.len(),
        1,
        "the dependency image read once: {requests:?}"
    );
    assert!(deps[0].starts_with("GET "), "{requests:?}");
    // The SBOM's artifact (pushed by digest) and its referrers tag (docs/sbom.md) are
    // requests of their own, after the image's.
    let sbom = |r: &&String| r.contains(" sha256:") || r.contains(" sha256-");
    let own: Vec<&String> = requests
        .iter()
        .filter(|r| !r.contains(" deps-") && !sbom(r))
        .collect();
    assert_eq!(
        own,
        [&format!("HEAD {tag}"), &format!("PUT {tag}")],
        "{}",
        appended.text
    );
    let digest = appended.result()["digest"].as_str().expect("a digest");
    assert_eq!(digest, registry_digest(&image));
    let referrers_tag = format!("sha256-{}", digest.trim_start_matches("sha256:"));
    let sbom_requests: Vec<String> = requests
        .iter()
        .filter(sbom)
        .map(|r| {
            r.split_once(" sha256:")
                .map_or(r.clone(), |(m, _)| format!("{m} sha256:…"))
        })
        .collect();
    // The fast path reuses the dependency image's SBOM: its referrers tag and its document
    // read (when this machine has not kept it), each once at most.
    let (dependency_reads, own): (Vec<String>, Vec<String>) = sbom_requests
        .into_iter()
        .partition(|r| r.starts_with("GET ") && !r.ends_with(&referrers_tag));
    let mut distinct = dependency_reads.clone();
    distinct.dedup();
    assert!(
        dependency_reads.len() <= 2 && distinct == dependency_reads,
        "the dependency image's SBOM read once at most: {requests:?}"
    );
    // The artifacts are listed only once their subject is pushed: the referrers tag's write
    // is the last request, after the image's manifest. (The artifacts' manifests, by
    // digest and named by nothing yet, and the tag's read go beside the image's push.)
    let pushed = requests.iter().position(|r| *r == format!("PUT {tag}"));
    let listed = requests
        .iter()
        .position(|r| *r == format!("PUT {referrers_tag}"));
    assert!(
        pushed.is_some() && pushed < listed && listed == Some(requests.len() - 1),
        "{requests:?}"
    );
    // The artifacts' manifests and the read of the referrers tag (any order), the tag's
    // write last.
    let mut first = own.clone();
    let last = first.pop();
    first.sort();
    assert_eq!(
        (first, last),
        (
            vec![
                format!("GET {referrers_tag}"),
                "PUT sha256:…".to_string(),
                "PUT sha256:…".to_string(),
            ],
            Some(format!("PUT {referrers_tag}"))
        ),
        "the SBOM and the provenance: their artifacts, the referrers tag read and written \
         once for both; {requests:?}"
    );
}

/// The manifest requests of a skip of `proj`'s image (it exists) in `name`'s repository for
/// the image itself (its tag, its platforms' manifests), besides those of its dependency
/// image (each asked once at most); the digest it reported is the registry's.
fn skip_requests(proj: &Path, cache: &Path, log: &RegistryLog, name: &str) -> Vec<String> {
    let mark = log.mark();
    let skipped = build(proj, cache);
    let requests = log.manifests_of(name, mark);
    assert_eq!(skipped.result()["action"], "skipped", "{}", skipped.text);
    let image = skipped.result()["image"].as_str().expect("image");
    let digest = skipped.result()["digest"].as_str().expect("a digest");
    assert_eq!(digest, registry_digest(image));
    let tag = image.rsplit_once(':').expect("a tag").1;
    let index = skopeo_inspect(&["--raw"], image);
    let platforms: Vec<&str> = index["manifests"].as_array().map_or(vec![], |m| {
        m.iter().filter_map(|m| m["digest"].as_str()).collect()
    });
    let (own, deps): (Vec<String>, Vec<String>) = requests.into_iter().partition(|r| {
        let reference = r.split_once(' ').map_or("", |(_, r)| r);
        reference == tag || platforms.contains(&reference)
    });
    let tags = deps.iter().filter(|r| r.contains(" deps-")).count();
    assert!(
        tags <= 1,
        "the dependency image asked once at most: {deps:?}"
    );
    let mut unique = deps.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), deps.len(), "a manifest asked twice: {deps:?}");
    own
}

/// The tag of the image `run` reported.
fn tag_of(run: &common::e2e::JsonRun) -> String {
    let image = run.result()["image"].as_str().expect("image");
    image.rsplit_once(':').expect("a tag").1.to_string()
}

#[test]
fn an_image_pushed_by_another_machine_is_asked_once() {
    let Some(s) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let proj = dir.path().join("proj");
    let log = RegistryLog::of(&s);
    // A repository of its own: the other tests' requests, run meanwhile, are not counted.
    let name = format!("{NAME}-elsewhere");
    let project = |content: &str| project_with(&proj, &s, content, &name, &s.base_python, "");
    project(&run_id());
    let first = build(&proj, &dir.path().join("pushed-here"));
    let tag = tag_of(&first);
    // Another machine: no record of the push. The existence check's answer is the manifest,
    // which names the config holding the record of the files.
    let elsewhere = dir.path().join("elsewhere");
    let own = skip_requests(&proj, &elsewhere, &log, &name);
    assert_eq!(own, [format!("GET {tag}")]);
    // The record read is kept: the next skip there asks as this machine's.
    let own = skip_requests(&proj, &elsewhere, &log, &name);
    assert_eq!(own, [format!("HEAD {tag}")]);
    // A teammate's tag in a repository this machine pushes to: the HEAD cannot tell it from
    // a tag not pushed yet (one request, the common case); its manifest is read after.
    project(&run_id());
    let theirs = build(&proj, &dir.path().join("teammate"));
    let tag = tag_of(&theirs);
    let own = skip_requests(&proj, &dir.path().join("pushed-here"), &log, &name);
    assert_eq!(own, [format!("HEAD {tag}"), format!("GET {tag}")]);
}

#[test]
fn a_multi_platform_image_is_asked_once() {
    let Some(s) = services() else { return };
    let base = s.file.base_python_multi();
    let dir = tempfile::tempdir().expect("tempdir");
    let proj = dir.path().join("proj");
    let log = RegistryLog::of(&s);
    let name = format!("{NAME}-multi");
    let platforms = "platform = \"linux/amd64,linux/arm64\"";
    project_with(&proj, &s, &run_id(), &name, &base, platforms);
    let here = dir.path().join("pushed-here");
    let first = build(&proj, &here);
    let tag = tag_of(&first);
    let own = skip_requests(&proj, &here, &log, &name);
    assert_eq!(own, [format!("HEAD {tag}")]);
    // Pushed elsewhere (another machine: a fresh cache directory): the index alone, which
    // carries the images' record as an annotation (no platform's manifest read for it).
    let elsewhere = dir.path().join("elsewhere");
    let own = skip_requests(&proj, &elsewhere, &log, &name);
    assert_eq!(own, [format!("GET {tag}")]);
    let index = skopeo_inspect(&["--raw"], first.result()["image"].as_str().expect("image"));
    assert!(
        index["annotations"]["org.imagespec.inputs"].is_string(),
        "the record on the index: {index}"
    );
    // The record read is kept: the next skip there asks as this machine's.
    let own = skip_requests(&proj, &elsewhere, &log, &name);
    assert_eq!(own, [format!("HEAD {tag}")]);
}

#[test]
fn a_nested_base_spec_asks_once_per_image() {
    let Some(s) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let proj = dir.path().join("proj");
    let log = RegistryLog::of(&s);
    let (app, base) = (format!("{NAME}-app"), format!("{NAME}-base"));
    std::fs::create_dir_all(&proj).expect("mkdir");
    let spec = format!(
        r#"[images.base]
name = "{base}"
registry = "{registry}"
base_image = "{python}"
env = {{ RUN_ID = "{run}" }}
builder_config = {{ uv_image = "{uv}" }}
builder_options = {{ add_flytekit = false }}

[images.app]
name = "{app}"
registry = "{registry}"
base_image = {{ spec = "base" }}
env = {{ APP = "requests" }}
builder_config = {{ uv_image = "{uv}" }}
builder_options = {{ add_flytekit = false }}
"#,
        registry = s.registry,
        python = s.base_python,
        uv = s.uv_image,
        run = run_id(),
    );
    std::fs::write(proj.join("spec.toml"), spec).expect("spec");
    let args = ["--image", "app"];
    let here = dir.path().join("pushed-here");
    let first = build_args(&proj, &here, &args);
    let tags = |run: &common::e2e::JsonRun| {
        let base_image = run.result()["base"]["image"].as_str();
        let base_tag = base_image.and_then(|i| i.rsplit_once(':'));
        (
            tag_of(run),
            base_tag.expect("the base's outcome").1.to_string(),
        )
    };
    let (tag, base_tag) = tags(&first);
    let elsewhere = dir.path().join("elsewhere");
    // Pushed here (HEADs), then elsewhere (GETs), then elsewhere again (the records read kept).
    for (cache, method) in [(&here, "HEAD"), (&elsewhere, "GET"), (&elsewhere, "HEAD")] {
        let mark = log.mark();
        let skipped = build_args(&proj, cache, &args);
        assert_eq!(skipped.result()["action"], "skipped", "{}", skipped.text);
        assert_eq!(tags(&skipped), (tag.clone(), base_tag.clone()));
        assert_eq!(
            log.manifests_of(&app, mark),
            [format!("{method} {tag}")],
            "{}",
            skipped.text
        );
        assert_eq!(
            log.manifests_of(&base, mark),
            [format!("{method} {base_tag}")],
            "{}",
            skipped.text
        );
    }
}
