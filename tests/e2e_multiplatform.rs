//! End-to-end, several platforms without buildx (issue 14): a `linux/amd64,linux/arm64` spec
//! builds each platform with dockerd 20.10's BuildKit (arm64 under qemu), pushes an index
//! last, appends a code change to both platforms with no daemon, writes both into an OCI
//! layout; a base lacking a platform and a missing emulator fail before any work. Real
//! dockerd and registry (`scripts/e2e/up.sh`), the two-platform base and the qemu-aarch64
//! handler (`scripts/e2e/base-images.sh`, `binfmt.sh`); checked from outside with skopeo
//! and `docker run --platform`. Without them these tests fail under `CI`, and say why
//! and pass elsewhere.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

mod common;

use common::e2e::{
    JsonRun, NO_DAEMON, env_list, imagespec_in, missing, output, run_id, run_json, sha256_hex,
};

const TWO: &str = "linux/amd64,linux/arm64";

struct Env {
    registry: String,
    /// An index of linux/amd64 and linux/arm64.
    base_multi: String,
    /// linux/amd64 only.
    base_single: String,
    uv_image: String,
}

/// The harness's services (with the two-platform base and arm64 emulation), or `None` (and
/// a note) when they are not there outside CI.
fn services() -> Option<Env> {
    let s = common::e2e::services()?;
    let env = Env {
        base_multi: s
            .file
            .get("IMAGESPEC_E2E_BASE_PYTHON_MULTI")
            .unwrap_or_else(|| "localhost:5000/debian-python-multi:bookworm".into()),
        registry: s.registry,
        base_single: s.base_python,
        uv_image: s.uv_image,
    };
    let handler = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64").is_ok_and(|h| {
        h.starts_with("enabled")
            && h.lines()
                .any(|l| l.starts_with("flags:") && l.contains('F'))
    });
    if !handler {
        return missing(
            "qemu-aarch64 is not registered with the F flag (scripts/e2e/binfmt.sh); \
             scripts/test.sh sets it up",
        );
    }
    let base = Process::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}", env.base_multi))
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("arm64"));
    if !base {
        return missing(
            "the two-platform base is not in the registry (scripts/e2e/base-images.sh); \
             scripts/test.sh sets it up",
        );
    }
    Some(env)
}

/// `imagespec ARGS` in `dir` (`DOCKER_HOST` as given), its JSON lines read.
fn imagespec(dir: &Path, args: &[&str], docker_host: Option<&str>) -> JsonRun {
    let mut cmd = imagespec_in(dir);
    cmd.args(args);
    if let Some(host) = docker_host {
        cmd.env("DOCKER_HOST", host);
    }
    run_json(&mut cmd)
}

fn build(dir: &Path, args: &[&str], docker_host: Option<&str>) -> JsonRun {
    let mut all = vec!["build", "--json"];
    all.extend(args);
    imagespec(dir, &all, docker_host)
}

/// `imagespec plan --json`'s line for the spec's own image (the last).
fn plan(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["plan", "--json", "spec.toml"];
    all.extend(args);
    let run = imagespec(dir, &all, None);
    run.events.last().cloned().expect("a plan line")
}

/// The registry's manifest of `image`, as stored (skopeo, not imagespec).
fn raw_manifest(image: &str) -> (Value, String) {
    let raw = output(Process::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]));
    (
        serde_json::from_str(&raw).expect("manifest json"),
        format!("sha256:{}", sha256_hex(raw.as_bytes())),
    )
}

/// The architectures an index names, in order.
fn architectures(index: &Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("not an index: {index}"))
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap().to_string())
        .collect()
}

/// `docker run --platform PLATFORM IMAGE sh -c SCRIPT` (pulled for that platform first).
fn run_on(platform: &str, image: &str, script: &str) -> String {
    common::e2e::run_on(platform, image, "sh", script)
}

fn project(d: &Path, spec: &str) -> PathBuf {
    let proj = d.join("proj");
    std::fs::create_dir_all(proj.join("src/pkg")).expect("mkdir");
    std::fs::write(
        proj.join("src/pkg/main.py"),
        "import platform\nprint(\"v1\", platform.machine())\n",
    )
    .expect("source");
    std::fs::write(proj.join("src/pkg/__init__.py"), "").expect("source");
    std::fs::write(proj.join("spec.toml"), spec).expect("spec");
    proj
}

/// The acceptance test of issue 14: a spec with packages, apt packages, env and source for
/// two platforms builds its dependency image per platform and pushes indexes; both
/// platforms run; a code change is appended to both with no daemon; the same inputs give
/// the same index digest; `--output oci:` and `oci-archive:` hold both platforms.
#[test]
fn two_platforms_build_an_index_and_code_changes_reach_both_without_a_daemon() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("h-multi-{}", run_id().replace('-', ""));
    let spec = format!(
        r#"
name = "{name}"
registry = "{registry}"
base_image = "{base}"
platform = "{TWO}"
packages = ["pyyaml"]
apt_packages = ["jq"]
env = {{ APP_ENV = "e2e", RUN_ID = "{run}" }}
source_root = "src"
source_copy_mode = "all"
builder_config = {{ uv_image = "{uv}" }}
builder_options = {{ add_flytekit = false }}
"#,
        registry = env.registry,
        base = env.base_multi,
        uv = env.uv_image,
        // A new value: the steps after ENV (uv) really run, under qemu for arm64.
        run = run_id(),
    );
    let proj = project(dir.path(), &spec);

    let planned = plan(&proj, &[]);
    assert_eq!(
        planned["strategy"], "build_dependencies_then_append",
        "{planned}"
    );
    assert_eq!(
        planned["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    let image = planned["image"].as_str().expect("image").to_string();
    let id = planned["id"].as_str().expect("id").to_string();
    let deps = planned["dependency_image"]
        .as_str()
        .expect("deps")
        .to_string();

    let started = Instant::now();
    let cold = build(&proj, &["spec.toml"], None);
    let cold_secs = started.elapsed().as_secs_f64();
    assert_eq!(cold.code, Some(0), "{}", cold.text);
    assert_eq!(cold.result()["action"], "appended");
    assert_eq!(cold.result()["strategy"], "build_dependencies_then_append");
    eprintln!("two-platform cold build (dependency image per platform + append): {cold_secs:.1} s");
    // Progress names the platform of each build step.
    for platform in ["linux/amd64", "linux/arm64"] {
        assert!(
            cold.steps().iter().any(|s| s["platform"] == platform),
            "no step event names {platform}"
        );
    }

    // From outside: the dependency image and the image are indexes of both platforms, each
    // platform's manifest of its own architecture; the image's pushed last (it names the
    // dependency image's layers).
    let (deps_index, _) = raw_manifest(&deps);
    assert_eq!(architectures(&deps_index), ["amd64", "arm64"]);
    let (index, digest) = raw_manifest(&image);
    assert_eq!(architectures(&index), ["amd64", "arm64"]);
    assert_eq!(
        index["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    for arch in ["amd64", "arm64"] {
        let seen: Value = serde_json::from_str(&output(Process::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--override-arch",
            arch,
            &format!("docker://{image}"),
        ])))
        .expect("json");
        assert_eq!(seen["Architecture"], arch);
    }

    // Both run: the arm64 one under qemu, with its own Python, packages and apt packages.
    let script = r#"uname -m; python -c "import os, platform, yaml, pkg.main; print(platform.machine(), os.environ['_F_IMG_ID'], os.environ['APP_ENV'])"; jq --version"#;
    for (platform, machine) in [("linux/arm64", "aarch64"), ("linux/amd64", "x86_64")] {
        let ran = run_on(platform, &image, script);
        let lines: Vec<&str> = ran.lines().collect();
        assert_eq!(
            lines,
            [
                machine,
                &format!("v1 {machine}"),
                &format!("{machine} {id} e2e"),
                "jq-1.6"
            ],
            "{platform}"
        );
    }

    // A code change: appended to both platforms' dependency images in the registry, with no
    // daemon to talk to.
    std::fs::write(
        proj.join("src/pkg/main.py"),
        "import platform\nprint(\"v2\", platform.machine())\n",
    )
    .expect("edit");
    let changed = plan(&proj, &[]);
    let image2 = changed["image"].as_str().expect("image").to_string();
    assert_ne!(image2, image);
    assert_eq!(changed["strategy"], "append");
    let started = Instant::now();
    let warm = build(&proj, &["spec.toml"], Some(NO_DAEMON));
    let warm_secs = started.elapsed().as_secs_f64();
    assert_eq!(warm.code, Some(0), "{}", warm.text);
    assert_eq!(warm.result()["strategy"], "append");
    let own = warm.result()["seconds"].as_f64().expect("seconds");
    eprintln!(
        "two-platform code change: {own:.2} s of imagespec's own time ({warm_secs:.2} s wall)"
    );
    assert!(own < 5.0, "the fast path took {own} s");
    let (index2, digest2) = raw_manifest(&image2);
    assert_eq!(architectures(&index2), ["amd64", "arm64"]);
    for (platform, machine) in [("linux/arm64", "aarch64"), ("linux/amd64", "x86_64")] {
        assert_eq!(
            run_on(platform, &image2, "python -m pkg.main"),
            format!("v2 {machine}\n"),
            "{platform}"
        );
    }
    // The same inputs on the same dependency images: the same index, byte for byte.
    let again = build(&proj, &["spec.toml", "--force"], Some(NO_DAEMON));
    assert_eq!(again.code, Some(0), "{}", again.text);
    assert_eq!(
        raw_manifest(&image2).1,
        digest2,
        "a rebuild changed the index"
    );
    assert_ne!(digest, digest2);

    // --output: both platforms in one OCI layout and one OCI archive, no daemon either.
    let layout = dir.path().join("layout");
    let archive = dir.path().join("image.oci.tar");
    for target in [
        format!("oci:{}", layout.display()),
        format!("oci-archive:{}", archive.display()),
    ] {
        let written = build(&proj, &["spec.toml", "--output", &target], Some(NO_DAEMON));
        assert_eq!(written.code, Some(0), "{target}: {}", written.text);
        assert_eq!(written.result()["action"], "written");
    }
    let top: Value = serde_json::from_str(
        &std::fs::read_to_string(layout.join("index.json")).expect("index.json"),
    )
    .expect("json");
    let entry = &top["manifests"][0];
    assert_eq!(
        entry["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        image2.as_str()
    );
    let ref_name = entry["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .expect("ref name");
    let in_layout = format!("oci:{}:{ref_name}", layout.display());
    let layout_index: Value = serde_json::from_str(&output(
        Process::new("skopeo").args(["inspect", "--raw", &in_layout]),
    ))
    .expect("json");
    assert_eq!(architectures(&layout_index), ["amd64", "arm64"]);
    for arch in ["amd64", "arm64"] {
        let seen: Value = serde_json::from_str(&output(Process::new("skopeo").args([
            "inspect",
            "--override-arch",
            arch,
            &in_layout,
        ])))
        .expect("json");
        assert_eq!(seen["Architecture"], arch);
        assert!(
            env_list(&seen).contains(&format!("_F_IMG_ID={id}").as_str()),
            "{arch}: {seen}"
        );
    }
    let archived: Value = serde_json::from_str(&output(Process::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci-archive:{}", archive.display()),
    ])))
    .expect("json");
    assert_eq!(architectures(&archived), ["amd64", "arm64"]);
    // A docker-archive holds one image per name: refused, nothing written.
    let docker_archive = dir.path().join("image.docker.tar");
    let refused = build(
        &proj,
        &[
            "spec.toml",
            "--output",
            &format!("docker-archive:{}", docker_archive.display()),
        ],
        Some(NO_DAEMON),
    );
    assert_eq!(refused.code, Some(2), "{}", refused.text);
    assert!(refused.text.contains("docker-archive"), "{}", refused.text);
    assert!(!docker_archive.exists());
}

/// Not appendable (`commands` run after the copy): the full image per platform, each
/// pushed under its platform's tag, then one index under the image's tag. The commands
/// ran on each platform (under qemu for arm64).
#[test]
fn commands_after_the_copy_build_the_whole_image_per_platform() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("h-multi-full-{}", run_id().replace('-', ""));
    let spec = format!(
        r#"
name = "{name}"
registry = "{registry}"
base_image = "{base}"
platform = "{TWO}"
env = {{ RUN_ID = "{run}" }}
commands = ["python3 -c 'import platform; open(\"/root/built-on.txt\", \"w\").write(platform.machine())'"]
source_root = "src"
source_copy_mode = "all"
builder_config = {{ uv_image = "{uv}" }}
builder_options = {{ add_flytekit = false }}
"#,
        registry = env.registry,
        base = env.base_multi,
        uv = env.uv_image,
        // A new value: the commands really run on each platform (not from the cache).
        run = run_id(),
    );
    let proj = project(dir.path(), &spec);
    let planned = plan(&proj, &[]);
    assert_eq!(planned["strategy"], "build", "{planned}");
    assert!(
        planned["reason"]
            .as_str()
            .unwrap()
            .contains("for each of 2 platforms"),
        "{planned}"
    );
    let image = planned["image"].as_str().expect("image").to_string();
    let run = build(&proj, &["spec.toml"], None);
    assert_eq!(run.code, Some(0), "{}", run.text);
    assert_eq!(run.result()["action"], "built");
    assert_eq!(run.result()["pushed"], true);

    let (index, _) = raw_manifest(&image);
    assert_eq!(architectures(&index), ["amd64", "arm64"]);
    // Each entry is the manifest pushed under the platform's own tag.
    for (entry, suffix) in index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["linux-amd64", "linux-arm64"])
    {
        let (_, platform_digest) = raw_manifest(&format!("{image}-{suffix}"));
        assert_eq!(entry["digest"], platform_digest.as_str(), "{suffix}");
    }
    for (platform, machine) in [("linux/arm64", "aarch64"), ("linux/amd64", "x86_64")] {
        assert_eq!(
            run_on(
                platform,
                &image,
                "cat /root/built-on.txt; echo; python -m pkg.main"
            ),
            format!("{machine}\nv1 {machine}\n"),
            "{platform}"
        );
    }
}

/// What cannot work fails before any work, with exit 2 and the missing platform named: a
/// base without arm64 (also when `--platform` asks for it), and a platform no binfmt
/// handler emulates. `--platform` leaves the name alone.
#[test]
fn a_base_or_an_emulator_lacking_a_platform_fails_before_any_work() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("h-multi-refused-{}", run_id().replace('-', ""));
    let spec = |base: &str, platform: &str| {
        format!(
            r#"
name = "{name}"
registry = "{registry}"
base_image = "{base}"
platform = "{platform}"
packages = ["pyyaml"]
source_root = "src"
source_copy_mode = "all"
builder_config = {{ uv_image = "{uv}" }}
builder_options = {{ add_flytekit = false }}
"#,
            registry = env.registry,
            uv = env.uv_image,
        )
    };
    let proj = project(dir.path(), &spec(&env.base_single, TWO));
    let refused = |run: &JsonRun, what: &str| {
        assert_eq!(run.code, Some(2), "{what}: {}", run.text);
        assert!(
            run.text.contains(&format!(
                "the base image {} has no image for linux/arm64",
                env.base_single
            )),
            "{what}: {}",
            run.text
        );
        assert!(run.steps().is_empty(), "{what}: a step ran: {}", run.text);
    };
    let started = Instant::now();
    let run = build(&proj, &["spec.toml"], None);
    refused(&run, "spec platform");
    assert!(started.elapsed() < Duration::from_secs(20));
    let image = plan(&proj, &[])["image"].as_str().unwrap().to_string();
    assert!(
        !Process::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{image}"))
            .output()
            .unwrap()
            .status
            .success(),
        "nothing was pushed"
    );

    // --platform: other platforms, the same name (flytekit's tag hashes the spec's).
    std::fs::write(
        proj.join("spec.toml"),
        spec(&env.base_single, "linux/amd64"),
    )
    .unwrap();
    let own = plan(&proj, &[]);
    let overridden = plan(&proj, &["--platform", TWO]);
    assert_eq!(own["image"], overridden["image"]);
    assert_eq!(own["platforms"], serde_json::json!(["linux/amd64"]));
    assert_eq!(
        overridden["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    assert_ne!(
        own["dependency_image"], overridden["dependency_image"],
        "another dependency image for other platforms"
    );
    refused(
        &build(&proj, &["spec.toml", "--platform", TWO], None),
        "--platform",
    );
    let bad = imagespec(&proj, &["plan", "spec.toml", "--platform", "linux"], None);
    assert_eq!(bad.code, Some(2), "{}", bad.text);

    // No emulator for s390x on this machine (only qemu-aarch64 is registered by the
    // harness): the check names the handler and how to install it, before any work. Only
    // dockerd needs one (--no-daemonless: uv, when here, runs nothing of the image).
    if std::path::Path::new("/proc/sys/fs/binfmt_misc/qemu-s390x").exists() {
        eprintln!("qemu-s390x is registered here: the missing-emulator case is not run");
        return;
    }
    std::fs::write(
        proj.join("spec.toml"),
        spec(&env.base_multi, "linux/amd64,linux/s390x"),
    )
    .unwrap();
    let run = build(&proj, &["spec.toml", "--no-daemonless"], None);
    assert_ne!(run.code, Some(0), "{}", run.text);
    for part in [
        "linux/s390x cannot be built on this x86_64 machine",
        "/proc/sys/fs/binfmt_misc/qemu-s390x is missing",
        "apt-get install qemu-user-static binfmt-support",
    ] {
        assert!(run.text.contains(part), "{part}: {}", run.text);
    }
    assert!(run.steps().is_empty(), "a step ran: {}", run.text);
}
