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
//! Without the services this test fails under `CI`, and says why and passes elsewhere.

use std::path::Path;

mod common;

use common::e2e::{Services, imagespec_in, registry_digest, run_id, run_json, services};

/// The repository of this test's images (and of its dependency image, found after the
/// first run ever).
const NAME: &str = "h-e2e-requests";

/// Writes the project: a source file unique to `content`, the spec naming the registry.
fn project(proj: &Path, s: &Services, content: &str) {
    std::fs::create_dir_all(proj.join("src")).expect("mkdir");
    std::fs::write(proj.join("src/app.py"), format!("RUN = {content:?}\n")).expect("source");
    let spec = format!(
        r#"name = "{NAME}"
registry = "{registry}"
base_image = "{base}"
env = {{ APP = "requests" }}
source_root = "src"
source_copy_mode = "all"
builder_config = {{ uv_image = "{uv}" }}
builder_options = {{ add_flytekit = false }}
"#,
        registry = s.registry,
        base = s.base_python,
        uv = s.uv_image,
    );
    std::fs::write(proj.join("spec.toml"), spec).expect("spec");
}

/// The harness registry's request log.
struct RegistryLog(std::path::PathBuf);

impl RegistryLog {
    fn of(s: &Services) -> RegistryLog {
        let state = s
            .file
            .get("IMAGESPEC_E2E_STATE")
            .unwrap_or_else(|| "/tmp/imagespec-e2e".into());
        RegistryLog(Path::new(&state).join("registry-plain.log"))
    }

    /// Its length now: the requests after it are the next run's.
    fn mark(&self) -> u64 {
        std::fs::metadata(&self.0).map_or(0, |m| m.len())
    }

    /// The manifest requests (`METHOD reference`) for `NAME` logged since `mark`, in order.
    fn manifest_requests(&self, mark: u64) -> Vec<String> {
        let bytes = std::fs::read(&self.0).expect("the registry's log");
        let text = String::from_utf8_lossy(&bytes[mark as usize..]);
        let path = format!("/v2/{NAME}/manifests/");
        text.lines()
            // The access log's line: `… "HEAD /v2/NAME/manifests/TAG HTTP/1.1" 200 …`.
            .filter_map(|line| {
                line.split_once(" - - [")?
                    .1
                    .split_once("] \"")?
                    .1
                    .split_once(' ')
            })
            .filter_map(|(method, rest)| {
                let uri = rest.split_once(" HTTP/")?.0;
                let reference = uri.strip_prefix(&path)?;
                Some(format!("{method} {reference}"))
            })
            .collect()
    }
}

/// `imagespec build --json` in `proj` with its own cache directory (the default: caches on).
fn build(proj: &Path, cache: &Path) -> common::e2e::JsonRun {
    let mut cmd = imagespec_in(proj);
    cmd.env_remove("IMAGESPEC_NO_CACHE")
        .env("IMAGESPEC_CACHE_DIR", cache)
        .env_remove("FLYTE_FORCE_PUSH_IMAGE_SPEC")
        .env_remove("FLYTE_PUSH_IMAGE_SPEC")
        .timeout(std::time::Duration::from_secs(900))
        .args(["build", "spec.toml", "--json"]);
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
    let requests = log.manifest_requests(mark);
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
    let requests = log.manifest_requests(mark);
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
    assert_eq!(
        sbom_requests,
        [
            "PUT sha256:…".to_string(),
            format!("GET {referrers_tag}"),
            format!("PUT {referrers_tag}")
        ],
        "the SBOM: its artifact, the referrers tag read and written; {requests:?}"
    );
}
