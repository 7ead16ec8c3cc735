//! End-to-end tests of `imagespec prune` (issue 16): real images pushed by imagespec builds
//! to the local registry (and dependency images built by dockerd), pruned, and checked from
//! the outside — `skopeo list-tags` / `skopeo inspect` for the registry, `docker image
//! inspect` for the daemon — never by asking imagespec. Services come from `scripts/e2e/`
//! (as for tests/e2e.rs), uv from `scripts/e2e/uv.sh` (or `IMAGESPEC_UV`); without them
//! these tests fail under `CI`, and say why and pass elsewhere. The command-line tests at
//! the end need no service.
//!
//! Every run uses repositories of its own (`h-prune-<pid>-<time>`) and a cache directory of
//! its own: prune never sees what other tests (or people) keep in the shared registry,
//! daemon and cache.

use assert_cmd::Command;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command as Process;

mod common;

use common::e2e::{DOCKER, EnvFile, NO_DAEMON, docker_up, missing, registry_up, run_id};

struct Env {
    registry: String,
    base_python: String,
    /// The base as an index of linux/amd64 and linux/arm64.
    base_python_multi: String,
    uv_image: String,
    uv: PathBuf,
    docker: bool,
}

/// The registry (and uv, skopeo), or `None` (and a note) when missing outside CI. Whether
/// dockerd answers is in `docker`: only the daemon's part needs it.
fn services() -> Option<Env> {
    let file = EnvFile::load();
    if !file
        .get("IMAGESPEC_E2E_REGISTRY")
        .is_some_and(|r| registry_up(&r))
    {
        return missing(&format!(
            "e2e services are not running ({}); scripts/test.sh starts them",
            file.path
        ));
    }
    let uv = file.uv()?;
    let skopeo = Process::new("skopeo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !skopeo {
        return missing("no skopeo: scripts/e2e/install.sh installs it");
    }
    Some(Env {
        registry: "localhost:5000".into(),
        base_python: file.base_python(),
        base_python_multi: file.base_python_multi(),
        uv_image: file.uv_image(),
        uv,
        docker: docker_up(),
    })
}

/// A project whose dependency image changes with `deps` (an `env` value: the dependency
/// image's config, not its layers, so the uv build is quick and needs no network).
struct Project {
    dir: tempfile::TempDir,
    name: String,
    /// Built for linux/amd64 and linux/arm64 (on the two-platform base), else one platform.
    several_platforms: bool,
}

impl Project {
    fn new(env: &Env) -> Project {
        Project::with_platforms(env, false)
    }

    fn with_platforms(env: &Env, several_platforms: bool) -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("proj/src")).expect("mkdir");
        std::fs::write(dir.path().join("proj/src/app.py"), "print('hi')\n").expect("write");
        let project = Project {
            dir,
            name: format!("h-prune-{}", run_id()),
            several_platforms,
        };
        project.set_deps(env, "1");
        project
    }

    fn proj(&self) -> PathBuf {
        self.dir.path().join("proj")
    }

    fn repository(&self, env: &Env) -> String {
        format!("{}/{}", env.registry, self.name)
    }

    fn set_deps(&self, env: &Env, deps: &str) {
        let (base, platform) = if self.several_platforms {
            (
                &env.base_python_multi,
                "platform = \"linux/amd64,linux/arm64\"\n",
            )
        } else {
            (&env.base_python, "")
        };
        let spec = format!(
            r#"
name = "{name}"
registry = "{registry}"
base_image = "{base}"
{platform}env = {{ DEPS = "{deps}" }}
source_root = "src"
source_copy_mode = "all"
builder_config = {{ uv_image = "{uv}" }}
builder_options = {{ add_flytekit = false }}
"#,
            name = self.name,
            registry = env.registry,
            uv = env.uv_image,
        );
        std::fs::write(self.proj().join("spec.toml"), spec).expect("spec");
    }

    /// imagespec in the project, with its own cache directory, uv, and `docker_host`.
    fn imagespec(&self, env: &Env, docker_host: Option<&str>) -> Command {
        let mut cmd = Command::cargo_bin("imagespec").expect("binary");
        cmd.current_dir(self.proj())
            .env("IMAGESPEC_CACHE_DIR", self.dir.path().join("cache"))
            .env("IMAGESPEC_UV", &env.uv)
            .env_remove("IMAGESPEC_NO_CACHE")
            .env_remove("IMAGESPEC_NO_DAEMONLESS");
        match docker_host {
            Some(host) => cmd.env("DOCKER_HOST", host),
            None => cmd.env_remove("DOCKER_HOST"),
        };
        cmd
    }

    /// Builds the spec as it is (`args` added): its image and dependency image.
    fn build(&self, env: &Env, docker_host: Option<&str>, args: &[&str]) -> (String, String) {
        let out = self
            .imagespec(env, Some(NO_DAEMON))
            .args(["plan", "spec.toml", "--json"])
            .args(args)
            .output()
            .expect("plan");
        let plan: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("plan: {}", String::from_utf8_lossy(&out.stderr)));
        let deps = plan["dependency_image"].as_str().expect("deps").to_string();
        let out = self
            .imagespec(env, docker_host)
            .args(["build", "spec.toml", "--quiet"])
            .args(args)
            .output()
            .expect("build");
        assert!(
            out.status.success(),
            "build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let image = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (tag_of(&image), tag_of(&deps))
    }

    /// `imagespec prune spec.toml --json ARGS` (no daemon unless `docker_host`): exit code
    /// and report.
    fn prune(&self, env: &Env, docker_host: Option<&str>, args: &[&str]) -> (i32, Value) {
        let out = self
            .imagespec(env, docker_host)
            .args(["prune", "spec.toml", "--json"])
            .args(args)
            .output()
            .expect("prune");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "prune printed no JSON: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(
            Some(report["exit_code"].as_i64().expect("exit_code") as i32),
            out.status.code()
        );
        (out.status.code().expect("exit code"), report)
    }
}

fn tag_of(image: &str) -> String {
    image.rsplit_once(':').expect("a tag").1.to_string()
}

fn skopeo(args: &[&str]) -> std::process::Output {
    Process::new("skopeo").args(args).output().expect("skopeo")
}

/// Whether `tag` is a referrers tag (`sha256-<hex>`: the index of an image's SBOM, see
/// docs/sbom.md), which lists artifacts about an image rather than naming one.
fn referrers_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The repository's tags, as the registry lists them (referrers tags left out).
fn tags(repository: &str) -> BTreeSet<String> {
    let out = skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{repository}"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).expect("json");
    listed["Tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t.as_str().expect("tag").to_string())
        .filter(|t| !referrers_tag(t))
        .collect()
}

/// Whether skopeo reads the image (manifest and config) from the registry.
fn readable(image: &str) -> bool {
    skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ])
    .status
    .success()
}

fn digest(image: &str) -> String {
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{image}"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The report's item for `what` in `place`.
fn item<'a>(report: &'a Value, place: &str, what: &str) -> &'a Value {
    report["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["place"] == place && i["what"] == what)
        .unwrap_or_else(|| panic!("no {place} item {what}: {report:#}"))
}

/// Issue 16: three builds with different dependencies make three dependency tags; once
/// the old images are gone (a retention policy, or by hand), their dependency images are
/// unused. `prune --dry-run` deletes nothing; `prune --keep 0` deletes the unused one
/// and keeps the one a tag of the user's names (the same digest: deleting it would delete
/// that tag) and the one an image uses; every kept tag is still readable.
#[test]
fn registry_prune_removes_only_unused_dependency_images() {
    let Some(env) = services() else { return };
    let project = Project::new(&env);
    let repository = project.repository(&env);
    let mut built = Vec::new();
    for deps in ["1", "2", "3"] {
        project.set_deps(&env, deps);
        built.push(project.build(&env, Some(NO_DAEMON), &[]));
    }
    let [(image1, deps1), (image2, deps2), (image3, deps3)] =
        <[(String, String); 3]>::try_from(built).expect("three builds");
    assert_eq!(
        [&deps1, &deps2, &deps3]
            .iter()
            .collect::<BTreeSet<_>>()
            .len(),
        3,
        "three dependency sets"
    );
    // The first and third images expire; the user tags the third dependency image.
    for old in [&image1, &image3] {
        let out = skopeo(&[
            "delete",
            "--tls-verify=false",
            &format!("docker://{repository}:{old}"),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = skopeo(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{repository}:{deps3}"),
        &format!("docker://{repository}:mine"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        digest(&format!("{repository}:mine")),
        digest(&format!("{repository}:{deps3}"))
    );
    let before = tags(&repository);
    let expected: BTreeSet<String> = [&deps1, &deps2, &deps3, &image2]
        .into_iter()
        .cloned()
        .chain(["mine".to_string()])
        .collect();
    assert_eq!(before, expected);
    // The tag list page by page (`?n=2&last=…`) is the whole list.
    let paged = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let client = imagespec::registry::session(&env.registry, None, Default::default())
                .expect("session");
            let name = imagespec::oci::reference::Repository::new(None, &repository)
                .expect("a repository name");
            client.tags_in_pages(&name, 2).await
        })
        .expect("tags");
    let paged: Vec<String> = paged.into_iter().filter(|t| !referrers_tag(t)).collect();
    assert_eq!(paged.len(), 5, "{paged:?}");
    assert_eq!(paged.into_iter().collect::<BTreeSet<_>>(), before);

    // A dry run lists and deletes nothing.
    let (code, report) = project.prune(&env, Some(NO_DAEMON), &["--dry-run"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["dry_run"], true);
    let one = item(&report, "registry", &deps1);
    assert_eq!(
        (one["remove"].clone(), one["done"].clone()),
        (true.into(), false.into())
    );
    assert_eq!(one["digests"].as_array().map(Vec::len), Some(1), "{one}");
    let two = item(&report, "registry", &deps2);
    assert_eq!(two["remove"], false);
    assert_eq!(two["kept"]["kind"], "used_by");
    assert_eq!(two["kept"]["uses"][0]["tag"], image2.as_str());
    assert_eq!(two["kept"]["uses"][0]["by"], "label");
    let three = item(&report, "registry", &deps3);
    assert_eq!(three["remove"], false);
    assert_eq!(three["kept"]["kind"], "shares_digest", "{three}");
    assert_eq!(three["kept"]["tag"], "mine");
    assert!(
        report["notes"]
            .as_array()
            .expect("notes")
            .iter()
            .any(|n| n["place"] == "daemon"
                && n["message"].as_str().is_some_and(|m| m.contains("skipped"))),
        "no daemon: a note, not a failure: {report:#}"
    );
    assert_eq!(tags(&repository), before, "a dry run deletes nothing");

    // --keep 1 keeps the only unused set.
    let (code, report) = project.prune(&env, Some(NO_DAEMON), &["--dry-run", "--keep", "1"]);
    assert_eq!(code, 0);
    assert_eq!(item(&report, "registry", &deps1)["kept"]["kind"], "recent");

    // For real, --keep 0.
    let (code, report) = project.prune(&env, Some(NO_DAEMON), &["--keep", "0"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(item(&report, "registry", &deps1)["done"], true);
    let mut after = before.clone();
    after.remove(&deps1);
    assert_eq!(
        tags(&repository),
        after,
        "only the unused dependency tag went"
    );
    for kept in &after {
        assert!(readable(&format!("{repository}:{kept}")), "{kept}");
    }
    assert!(!readable(&format!("{repository}:{deps1}")));

    // Nothing left to do: a second run removes nothing.
    let (code, report) = project.prune(&env, Some(NO_DAEMON), &[]);
    assert_eq!(code, 0);
    assert!(
        report["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["remove"] == false || i["place"] == "cache"),
        "{report:#}"
    );
    assert_eq!(tags(&repository), after);
}

/// The manifest digests an index at `image` names (skopeo, raw).
fn index_entries(image: &str) -> Vec<String> {
    let out = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index: Value = serde_json::from_slice(&out.stdout).expect("json");
    index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("{image} is not an index: {index}"))
        .iter()
        .map(|m| m["digest"].as_str().expect("digest").to_string())
        .collect()
}

/// Whether the registry returns the manifest `digest` of `repository`.
fn has_manifest(repository: &str, digest: &str) -> bool {
    skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{repository}@{digest}"),
    ])
    .status
    .success()
}

/// Several platforms: each dependency set is an index (uv makes every platform's image from
/// one resolution, no daemon). Pruning the unused set deletes its index and the manifests
/// it names; the image still in use keeps its index and every platform's manifest, and so
/// does its dependency index.
#[test]
fn registry_prune_deletes_an_unused_dependency_index_with_its_platforms() {
    let Some(env) = services() else { return };
    let project = Project::with_platforms(&env, true);
    let repository = project.repository(&env);
    let (image1, deps1) = project.build(&env, Some(NO_DAEMON), &[]);
    project.set_deps(&env, "2");
    let (image2, deps2) = project.build(&env, Some(NO_DAEMON), &[]);
    assert_ne!(deps1, deps2);
    let old_entries = index_entries(&format!("{repository}:{deps1}"));
    let old_index = digest(&format!("{repository}:{deps1}"));
    let live: Vec<String> = [&image2, &deps2]
        .iter()
        .flat_map(|t| index_entries(&format!("{repository}:{t}")))
        .collect();
    assert_eq!(
        (old_entries.len(), live.len()),
        (2, 4),
        "two platforms each"
    );
    let out = skopeo(&[
        "delete",
        "--tls-verify=false",
        &format!("docker://{repository}:{image1}"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = tags(&repository);

    let (code, report) = project.prune(&env, Some(NO_DAEMON), &["--keep", "0"]);
    assert_eq!(code, 0, "{report:#}");
    let gone = item(&report, "registry", &deps1);
    assert_eq!(gone["done"], true, "{gone}");
    let listed: BTreeSet<&str> = gone["digests"]
        .as_array()
        .expect("digests")
        .iter()
        .map(|d| d.as_str().expect("digest"))
        .collect();
    let expected: BTreeSet<&str> = old_entries
        .iter()
        .map(String::as_str)
        .chain([old_index.as_str()])
        .collect();
    assert_eq!(
        listed, expected,
        "the index and its two platforms' manifests"
    );
    assert_eq!(item(&report, "registry", &deps2)["remove"], false);

    // From outside: the old set is gone whole, the live ones are whole.
    let mut after = before.clone();
    after.retain(|t| !t.starts_with(&deps1));
    assert_eq!(tags(&repository), after);
    for d in old_entries.iter().chain([&old_index]) {
        assert!(!has_manifest(&repository, d), "{d} should be gone");
    }
    for d in &live {
        assert!(has_manifest(&repository, d), "{d} is in use");
    }
    for arch in ["amd64", "arm64"] {
        let out = skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--override-arch",
            arch,
            "--format",
            "{{.Architecture}}",
            &format!("docker://{repository}:{image2}"),
        ]);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), arch);
    }
}

/// Issue 16, daemon: a dependency image dockerd built (and pushed) stays in dockerd under
/// its `deps-*` tag; no local image of the repository uses it, so `prune --daemon` removes
/// it there (after a dry run that does not), and the registry keeps its copy.
#[test]
fn daemon_prune_removes_local_dependency_images_only() {
    let Some(env) = services() else { return };
    if !env.docker {
        assert!(std::env::var_os("CI").is_none(), "dockerd is not running");
        eprintln!("skipped: dockerd is not running");
        return;
    }
    let project = Project::new(&env);
    let repository = project.repository(&env);
    let (image, deps) = project.build(&env, None, &["--no-daemonless"]);
    let local = format!("{repository}:{deps}");
    let in_daemon = |image: &str| {
        Process::new(DOCKER)
            .args(["image", "inspect", image])
            .output()
            .expect("docker")
            .status
            .success()
    };
    assert!(in_daemon(&local), "dockerd built the dependency image");

    let (code, report) = project.prune(&env, None, &["--daemon", "--dry-run"]);
    assert_eq!(code, 0, "{report:#}");
    let listed = item(&report, "daemon", &deps);
    assert_eq!(listed["remove"], true, "{listed}");
    assert_eq!(listed["tags"][0], local.as_str());
    assert!(in_daemon(&local), "a dry run removes nothing");
    assert!(
        report["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["place"] == "daemon"),
        "--daemon prunes only the daemon: {report:#}"
    );

    let (code, report) = project.prune(&env, None, &["--daemon"]);
    assert_eq!(code, 0, "{report:#}");
    assert!(!in_daemon(&local), "removed from dockerd");
    let left = tags(&repository);
    assert!(
        left.contains(&deps) && left.contains(&image),
        "the registry keeps both: {left:?}"
    );
}

/// Deletes go with the registry's credentials: with a password on a basic-auth registry;
/// on a token registry whose token server grants no `delete`, the refusal says who may not
/// delete what, exit 1, and the tag stays.
#[test]
fn deletes_use_the_credentials_and_a_refusal_is_exit_1() {
    let Some(_) = services() else { return };
    let file =
        std::env::var("IMAGESPEC_E2E_ENV").unwrap_or_else(|_| "/tmp/imagespec-e2e/e2e.env".into());
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
            .unwrap_or_else(|| panic!("{key} in {file}"))
    };
    let busybox = get("IMAGESPEC_E2E_BUSYBOX");
    let dir = tempfile::tempdir().expect("tempdir");
    let unused = "deps-00000000000000000000000000000001";
    for (registry, user, password, refused) in [
        (
            get("IMAGESPEC_E2E_AUTH_REGISTRY"),
            get("IMAGESPEC_E2E_AUTH_USER"),
            get("IMAGESPEC_E2E_AUTH_PASSWORD"),
            false,
        ),
        (
            get("IMAGESPEC_E2E_TOKEN_REGISTRY"),
            get("IMAGESPEC_E2E_TOKEN_RW_USER"),
            get("IMAGESPEC_E2E_TOKEN_RW_PASSWORD"),
            true,
        ),
    ] {
        let repository = format!("{registry}/h-prune-auth-{}", run_id());
        let creds = format!("{user}:{password}");
        let out = skopeo(&[
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &format!("docker://{busybox}"),
            &format!("docker://{repository}:{unused}"),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = dir.path().join(&user);
        std::fs::create_dir_all(&config).expect("mkdir");
        let auth = base64_encode(creds.as_bytes());
        std::fs::write(
            config.join("config.json"),
            format!(r#"{{"auths": {{"{registry}": {{"auth": "{auth}"}}}}}}"#),
        )
        .expect("config");
        let out = Command::cargo_bin("imagespec")
            .expect("binary")
            .env("IMAGESPEC_CACHE_DIR", dir.path().join("cache"))
            .args(["prune", "--registry", "--repository", &repository])
            .arg("--registry-config")
            .arg(config.join("config.json"))
            .output()
            .expect("prune");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let listed = skopeo(&[
            "list-tags",
            "--tls-verify=false",
            "--creds",
            &creds,
            &format!("docker://{repository}"),
        ]);
        let listed = String::from_utf8_lossy(&listed.stdout);
        if refused {
            assert_eq!(out.status.code(), Some(1), "{stdout}");
            assert!(
                stdout.contains(&format!("{user} may not delete from {repository}")),
                "{stdout}"
            );
            assert!(listed.contains(unused), "the tag stays: {listed}");
        } else {
            assert_eq!(out.status.code(), Some(0), "{stdout}");
            assert!(!listed.contains(unused), "deleted: {listed}");
        }
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The cache part: a scratch file of a killed run goes; uv's cache stays unless asked.
#[test]
fn cache_prune_removes_leftovers_and_keeps_the_uv_cache() {
    let cache = tempfile::tempdir().expect("tempdir");
    let c = cache.path();
    std::fs::create_dir_all(c.join("tree-digests")).expect("mkdir");
    std::fs::create_dir_all(c.join("uv/wheels")).expect("mkdir");
    std::fs::write(c.join("tree-digests/.imagespec-tmp-digest-dead"), "x").expect("write");
    std::fs::write(c.join("uv/wheels/w.whl"), "wheel").expect("write");
    let prune = |args: &[&str]| {
        let out = Command::cargo_bin("imagespec")
            .expect("binary")
            .env("IMAGESPEC_CACHE_DIR", c)
            .args(["prune", "--cache", "--json"])
            .args(args)
            .output()
            .expect("prune");
        let report: Value = serde_json::from_slice(&out.stdout).expect("json");
        (out.status.code(), report)
    };
    let (code, report) = prune(&["--dry-run"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        report["items"].as_array().map(Vec::len),
        Some(1),
        "{report:#}"
    );
    assert!(c.join("tree-digests/.imagespec-tmp-digest-dead").exists());
    let (code, _) = prune(&[]);
    assert_eq!(code, Some(0));
    assert!(!c.join("tree-digests/.imagespec-tmp-digest-dead").exists());
    assert!(c.join("uv/wheels/w.whl").exists(), "uv's cache stays");
    // uv's cache only when asked (uv itself, when here, or a plain removal).
    let (code, report) = prune(&["--uv-cache", "--dry-run"]);
    assert_eq!(code, Some(0));
    assert_eq!(report["items"][0]["kind"], "uv cache", "{report:#}");
    assert_eq!(report["items"][0]["size"], 5);
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::cargo_bin("imagespec")
        .expect("binary")
        .env(
            "IMAGESPEC_CACHE_DIR",
            std::env::temp_dir().join("h-prune-cli-cache"),
        )
        .args(args)
        .output()
        .expect("run")
}

/// `--help` says what each place loses and what is never touched; bad input is exit 2
/// before anything is asked of anyone.
#[test]
fn prune_help_and_bad_input() {
    let help = cli(&["prune", "--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for needle in [
        "--dry-run",
        "--keep",
        "--uv-cache",
        "Never touched",
        "org.imagespec.inputs",
        "never deleted",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}:\n{text}");
    }
    for (args, says) in [
        (
            &["prune", "--repository", "localhost:5000/app:v1"][..],
            "names a tag or digest",
        ),
        (
            &["prune", "--repository", "localhost:5000/App"],
            "lowercase",
        ),
        (&["prune", "--keep", "-1"], "-1"),
        (&["prune", "--keep", "many"], "many"),
        (&["prune", "--image", "x"], "SPEC"),
        (&["prune", "--registry"], "--registry needs a repository"),
        (
            &["prune", "/nonexistent/spec.toml"],
            "/nonexistent/spec.toml",
        ),
        (&["prune", "--bogus"], "--bogus"),
    ] {
        let out = cli(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(says),
            "{args:?}: expected {says:?} in {stderr}"
        );
    }
}

/// A registry that cannot be reached: cannot tell what is used, exit 3, nothing removed.
#[test]
fn an_unreachable_registry_is_exit_3() {
    let out = cli(&[
        "prune",
        "--registry",
        "--repository",
        "127.0.0.1:9/h-prune-nowhere",
        "--connect-timeout",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("127.0.0.1:9"), "{stderr}");
}
