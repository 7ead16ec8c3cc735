//! End-to-end tests of `apt_packages` without a daemon (issue 24): the same spec built with
//! no daemon (the packages resolved, fetched from the base's Debian mirror and laid down by
//! imagespec) and by dockerd (`--no-daemonless`: `apt-get install` in a container) gives the
//! same installed package set, a clean `dpkg --audit` and `dpkg -V`, and programs that run;
//! a package whose maintainer scripts must run falls back to dockerd naming it. Services
//! come from `scripts/e2e/` (tests/e2e_daemonless.rs); without them these tests fail under
//! `CI`, and say why and pass elsewhere.

use std::path::Path;
use std::process::Command as Process;

mod common;

use common::e2e::{
    DOCKER, NO_DAEMON, RegistryLog, Services, image_snapshot, imagespec_in, inspect_json, output,
    run_id, run_json, skopeo_inspect, tree_difference, write_spec,
};

/// The harness's services and uv, or `None`.
fn services() -> Option<(Services, std::path::PathBuf)> {
    let s = common::e2e::services()?;
    let uv = s.file.uv()?;
    Some((s, uv))
}

/// `imagespec build --json spec.toml ARGS` in `proj` (no daemon unless `docker`): success,
/// the result event, all output.
fn build(proj: &Path, uv: &Path, docker: bool, args: &[&str]) -> (bool, serde_json::Value, String) {
    build_with_cache(proj, uv, docker, None, args)
}

/// [`build`] with the imagespec cache in `cache` (else none).
fn build_with_cache(
    proj: &Path,
    uv: &Path,
    docker: bool,
    cache: Option<&Path>,
    args: &[&str],
) -> (bool, serde_json::Value, String) {
    let mut cmd = imagespec_in(proj);
    if let Some(cache) = cache {
        cmd.env_remove("IMAGESPEC_NO_CACHE")
            .env("IMAGESPEC_CACHE_DIR", cache);
    }
    cmd.env("IMAGESPEC_UV", uv)
        .env_remove("IMAGESPEC_NO_DAEMONLESS");
    if !docker {
        cmd.env("DOCKER_HOST", NO_DAEMON);
    }
    let run = run_json(cmd.args(["build", "--json", "spec.toml"]).args(args));
    let result = run
        .events
        .iter()
        .rfind(|e| e["event"] == "result")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    (run.ok(), result, run.text)
}

/// Runs `script` as root in `image` (pulled first); stdout.
fn run_as_root(image: &str, script: &str) -> String {
    output(Process::new(DOCKER).args(["pull", "-q", image]));
    output(Process::new(DOCKER).args([
        "run",
        "--rm",
        "--user",
        "0",
        "--entrypoint",
        "bash",
        image,
        "-c",
        script,
    ]))
}

fn project(env: &Services, name: &str, apt: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("src")).expect("src");
    std::fs::write(dir.path().join("src/app.py"), "print('app')\n").expect("source");
    write_spec(
        dir.path(),
        env,
        name,
        &format!(
            "packages = [\"six\"]\napt_packages = {apt}\nsource_root = \"src\"\nsource_copy_mode = \"all\""
        ),
    );
    dir
}

/// The programs run; a compiled library newly installed (libjq) is loaded and called from
/// Python's ctypes, and the dynamic linker resolves jq's and curl's libraries.
const CHECK: &str = r#"set -e
git --version
curl --version | head -1
jq --version
python -c 'import six; print("six", six.PY3)'
python -c 'import ctypes; jq = ctypes.CDLL("libjq.so.1"); jq.jq_init.restype = ctypes.c_void_p; print("libjq", bool(jq.jq_init()))'
! ldd /usr/bin/jq /usr/bin/curl | grep 'not found'
"#;

/// What the two images may differ in, each line of `image_snapshot` by its path:
/// - what apt and dpkg leave as they run, which the daemonless step does not run:
///   `/var/log` (dpkg.log, apt's history and term logs, alternatives.log), `/var/cache/apt`
///   (the package caches, a build cache mount in the Dockerfile), `/var/cache/debconf`
///   (debconf's databases, rewritten when a script asks debconf), `/var/lib/apt/lists`
///   (the downloaded indexes: not kept, as a slim image leaves them out),
///   `/var/lib/dpkg/status-old`, `available`, `lock*`, `triggers/` (dpkg's journal and
///   backups), `/etc/ld.so.cache` and `/var/cache/ldconfig` (the linker cache `ldconfig`
///   rewrites: not needed, `ld.so` searches the multiarch directories);
/// - `/var/lib/dpkg/status`: the same packages and fields (`dpkg-query -W` above), but
///   dpkg keeps the trailing blank of a `Description` line that imagespec's paragraphs
///   drop (libgdbm6's: two bytes), and orders the paragraphs by name;
/// - a directory's size (the file system's, not the image's: it depends on the order its
///   entries were made in);
/// - the differences the uv path has without apt (docs/daemonless.md): the venv's files
///   (`/root/.venv`, bytecode and uv's version), `/etc/shadow` (the day of the last
///   password change) and their `-` backups, `/tmp` (what uv and apt left there).
const ACCEPTED: &[&str] = &[
    "/var/log",
    "/var/cache/apt",
    "/var/cache/debconf",
    "/var/lib/apt/lists",
    "/var/lib/dpkg/status-old",
    "/var/lib/dpkg/available",
    "/var/lib/dpkg/lock",
    "/var/lib/dpkg/triggers",
    "/etc/ld.so.cache",
    "/var/cache/ldconfig",
    "/var/lib/dpkg/status",
    "/root",
    "/etc/shadow",
    "/tmp",
];

/// A snapshot line with a directory's size left out.
fn no_dir_size(line: &str) -> String {
    let mut fields: Vec<&str> = line.split('\t').collect();
    if fields.get(4) == Some(&"d") {
        fields[5] = "-";
    }
    fields.join("\t")
}

fn accepted(line: &str) -> bool {
    let path = line.split('\t').next().unwrap_or_default();
    ACCEPTED.iter().any(|a| {
        path == *a || path.starts_with(&format!("{a}/")) || path.starts_with(&format!("{a}-"))
    })
}

/// Issue 24: git, curl and jq with a pip package, built with no daemon and by dockerd:
/// the same `dpkg-query -W` set, dpkg's audit and verify clean, the programs run.
#[test]
fn apt_packages_without_a_daemon_install_what_apt_get_installs() {
    let Some((env, uv)) = services() else { return };
    let run = run_id();
    let apt = r#"["git", "curl", "jq"]"#;
    let ours = project(&env, &format!("h-apt-uv-{run}"), apt);
    let theirs = project(&env, &format!("h-apt-docker-{run}"), apt);
    let (ok, result, log) = build(ours.path(), &uv, false, &[]);
    assert!(ok, "{log}");
    assert!(
        !result.to_string().contains("dockerd"),
        "built without a daemon: {result}"
    );
    let (ok, _, log) = build(theirs.path(), &uv, true, &["--no-daemonless"]);
    assert!(ok, "{log}");
    let image = |dir: &Path| {
        inspect_json(dir, "spec.toml")["image"]
            .as_str()
            .expect("image")
            .to_string()
    };
    let (ours, theirs) = (image(ours.path()), image(theirs.path()));
    let query = "dpkg-query -W -f '${Package} ${Version} ${Status}\\n' | sort";
    assert_eq!(run_as_root(&ours, query), run_as_root(&theirs, query));
    // `dpkg --audit` finds nothing; `dpkg -V` finds nothing (its exit status is 0 even when
    // it lists files: the lists must be empty).
    for image in [&ours, &theirs] {
        assert_eq!(
            run_as_root(image, "dpkg --audit; dpkg -V 2>&1"),
            "",
            "{image}"
        );
    }
    for image in [&ours, &theirs] {
        let out = run_as_root(image, CHECK);
        assert!(
            out.contains("git version")
                && out.contains("jq-")
                && out.contains("six True")
                && out.contains("libjq True"),
            "{image}: {out}"
        );
    }
    // The same files (path, owner, group, mode, type, size, link) but what ACCEPTED lists.
    let files = |image: &str| -> Vec<String> {
        let (lines, _) = image_snapshot(image);
        lines.into_iter().map(|l| no_dir_size(&l)).collect()
    };
    let (our_files, their_files) = (files(&ours), files(&theirs));
    let (only_ours, only_theirs) = tree_difference(&our_files, &their_files, accepted);
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only without a daemon:\n{}\nonly with dockerd:\n{}",
        only_ours.join("\n"),
        only_theirs.join("\n")
    );
}

/// `imagespec plan --json spec.toml` in `proj` with no daemon: the image's plan.
/// Where in `log`'s JSON lines the first `step` event in `state` whose name starts with
/// `name` is.
fn step_at(log: &str, state: &str, name: &str) -> usize {
    step_where(log, state, |n| n.starts_with(name))
}

/// Where in `log`'s JSON lines the first `step` event in `state` whose name is `named` is.
fn step_where(log: &str, state: &str, named: impl Fn(&str) -> bool) -> usize {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .position(|e| {
            e["event"] == "step" && e["state"] == state && e["name"].as_str().is_some_and(&named)
        })
        .unwrap_or_else(|| panic!("no such step {state}:\n{log}"))
}

fn plan(proj: &Path, uv: &Path) -> serde_json::Value {
    let mut cmd = imagespec_in(proj);
    cmd.env("IMAGESPEC_UV", uv)
        .env_remove("IMAGESPEC_NO_DAEMONLESS")
        .env("DOCKER_HOST", NO_DAEMON);
    let run = run_json(cmd.args(["plan", "--json", "spec.toml"]));
    assert!(run.ok(), "{}", run.text);
    run.events.last().cloned().expect("a plan")
}

/// Issue 24: a package whose maintainer scripts must run (sudo's postinst) is left to
/// dockerd, decided before the build: `plan` names the package and the command, and the
/// build does what the plan said (no daemonless attempt that falls back on the way).
#[test]
fn a_package_whose_scripts_must_run_falls_back_naming_it() {
    let Some((env, uv)) = services() else { return };
    let proj = project(&env, &format!("h-apt-fallback-{}", run_id()), r#"["sudo"]"#);
    let planned = plan(proj.path(), &uv);
    assert_eq!(planned["dependency_builder"], "docker", "{planned}");
    let reason = planned["dependency_builder_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.starts_with("apt package sudo: its postinst runs `"),
        "{planned}"
    );
    let (ok, _, log) = build(proj.path(), &uv, false, &[]);
    assert!(!ok, "no daemon to fall back to: {log}");
    assert!(
        log.contains("apt package sudo: its postinst runs `"),
        "{log}"
    );
    let (ok, _, log) = build(proj.path(), &uv, true, &[]);
    assert!(ok, "{log}");
    assert!(
        log.contains("with dockerd (apt package sudo: its postinst runs `")
            && !log.contains("cannot build the dependency image without a daemon"),
        "decided once, before the build: {log}"
    );
}

/// Issue 24: the plan of a package set laid down without a daemon says so.
#[test]
fn plan_says_git_curl_and_jq_are_laid_down_without_a_daemon() {
    let Some((env, uv)) = services() else { return };
    let proj = project(
        &env,
        &format!("h-apt-plan-{}", run_id()),
        r#"["git", "curl", "jq"]"#,
    );
    let planned = plan(proj.path(), &uv);
    assert_eq!(planned["dependency_builder"], "uv", "{planned}");
}

/// Issue 24: for two platforms each gets its own architecture's packages, with no
/// emulation at the build; arm64 is run under qemu only to check (dpkg clean, programs
/// run). The Docker path's arm64 build (under qemu) is not compared here.
#[test]
fn two_platforms_get_their_own_architectures_packages() {
    let Some((env, uv)) = services() else { return };
    let proj = project(
        &env,
        &format!("h-apt-multi-{}", run_id()),
        r#"["git", "curl", "jq"]"#,
    );
    let spec = std::fs::read_to_string(proj.path().join("spec.toml")).expect("spec");
    let multi = env.file.base_python_multi();
    let spec = spec.replace(&env.base_python, &multi) + "platform = \"linux/amd64,linux/arm64\"\n";
    std::fs::write(proj.path().join("spec.toml"), spec).expect("spec");
    let (ok, _, log) = build(proj.path(), &uv, false, &[]);
    assert!(ok, "{log}");
    // The two platforms are worked out at once, not one after the other: arm64's base is
    // being read before amd64's indexes are (which of the two finishes first depends on
    // the machine's load, so the order of their ends is not asserted).
    assert!(
        step_at(&log, "started", &format!("read {multi} for linux/arm64"))
            < step_at(&log, "done", "apt indexes for amd64"),
        "{log}"
    );
    // And built at once: arm64's apt layers are being written before amd64's image is
    // pushed (only arm64's uv install waits, for amd64's versions).
    let amd64_push = step_where(&log, "started", |n| {
        n.starts_with("push ") && n.contains(" for linux/amd64 (on ")
    });
    assert!(
        step_at(&log, "started", "write the apt layers for linux/arm64") < amd64_push,
        "{log}"
    );
    // arm64 installs with amd64's versions: it starts once amd64's dry run has them.
    assert!(
        step_at(&log, "started", "uv pip install for linux/amd64")
            < step_at(&log, "started", "uv pip install for linux/arm64"),
        "{log}"
    );
    let image = inspect_json(proj.path(), "spec.toml")["image"]
        .as_str()
        .expect("image")
        .to_string();
    let out = output(Process::new(DOCKER).args([
        "run",
        "--rm",
        "--pull",
        "always",
        "--platform",
        "linux/arm64",
        "--user",
        "0",
        "--entrypoint",
        "bash",
        &image,
        "-c",
        "uname -m; dpkg --audit; dpkg -V; dpkg-query -W libjq1; git --version; jq --version",
    ]));
    // Nothing from dpkg --audit or -V; versions are the mirror's of the day.
    let lines: Vec<&str> = out.lines().collect();
    let expected = ["aarch64", "libjq1:arm64\t", "git version ", "jq-"];
    assert_eq!(lines.len(), expected.len(), "{out}");
    for (line, start) in lines.iter().zip(expected) {
        assert!(line.starts_with(start), "{out}");
    }
}

/// The apt layers of the image built from `proj`'s spec, read from the registry with
/// skopeo: each layer's `diff_id` with its history line (`RUN apt-get …`, the packages'
/// layers naming theirs after a `#`).
fn apt_layers(proj: &Path) -> Vec<(String, String)> {
    let image = inspect_json(proj, "spec.toml")["image"]
        .as_str()
        .expect("image")
        .to_string();
    let config = skopeo_inspect(&["--config"], &image);
    let diff_ids = config["rootfs"]["diff_ids"].as_array().expect("diff_ids");
    let history = config["history"].as_array().expect("history");
    let lines = history
        .iter()
        .filter(|h| h["empty_layer"] != true)
        .map(|h| h["created_by"].as_str().unwrap_or_default().to_string());
    assert_eq!(lines.clone().count(), diff_ids.len(), "{config}");
    diff_ids
        .iter()
        .map(|d| d.as_str().expect("diff_id").to_string())
        .zip(lines)
        .filter(|(_, line)| line.starts_with("RUN apt-get update"))
        .collect()
}

/// Issue 24: the apt layers are cached by content: a second build whose pip packages
/// changed (a new dependency image) takes the apt layers pushed by the first as they are,
/// not unpacked, compressed or uploaded again, and gives the same layers. A third with one
/// apt package more (`tree`) changes exactly two apt layers — the one of the packages
/// `tree` lands in and dpkg's database — and its image is still dpkg-clean. The first build
/// reads no blob of its repository back and appends to the dependency image as uv pushed it
/// (issue 21: the registry is asked once per fact).
#[test]
fn an_unchanged_package_set_reuses_its_apt_layers() {
    let Some((env, uv)) = services() else { return };
    let proj = project(&env, &format!("h-apt-cache-{}", run_id()), r#"["jq"]"#);
    let cache = tempfile::tempdir().expect("cache dir");
    let log = RegistryLog::of(&env);
    let mark = log.mark();
    let (ok, result, first) = build_with_cache(proj.path(), &uv, false, Some(cache.path()), &[]);
    assert!(ok, "{first}");
    assert!(!first.contains("not written again"), "{first}");
    // The SBOM attached to the image (and to its dependency image) took every layer's
    // findings from the build: the apt layers' from the files it wrote, none read back.
    let image = result["image"].as_str().expect("image");
    let repository = image
        .split_once('/')
        .expect("host")
        .1
        .rsplit_once(':')
        .expect("tag")
        .0;
    let manifest = skopeo_inspect(&["--raw"], image);
    assert!(!manifest["layers"].as_array().expect("layers").is_empty());
    let read_back: Vec<String> = log
        .requests_of(repository, "blobs", mark)
        .into_iter()
        .filter(|request| request.starts_with("GET "))
        .collect();
    assert_eq!(read_back, Vec::<String>::new(), "{first}");
    // The dependency image is appended to as uv pushed it, not read back (asked once per
    // fact): its manifest is read only when the facts are gathered and under the lock.
    let deps_tag = first
        .split("dependency image ")
        .nth(1)
        .and_then(|rest| rest.split_once(" not found"))
        .and_then(|(image, _)| image.rsplit_once(':'))
        .expect("the dependency image was built")
        .1;
    let manifests = log.manifests_of(repository, mark);
    let pushed = manifests
        .iter()
        .position(|request| *request == format!("PUT {deps_tag}"))
        .expect("the dependency image pushed under its tag");
    let reads: Vec<&String> = manifests
        .iter()
        .filter(|request| **request == format!("GET {deps_tag}"))
        .collect();
    assert_eq!(reads.len(), 2, "the facts and the lock: {manifests:#?}");
    assert!(
        !manifests[pushed..].contains(&format!("GET {deps_tag}")),
        "read back after its push: {manifests:#?}"
    );
    // The image's referrers tag is read beside its push and written after it (the
    // dependency image's SBOM is attached beside too, and may end after it).
    let tag = image.rsplit_once(':').expect("tag").1;
    let digest = result["digest"].as_str().expect("digest");
    let at = |request: String| manifests.iter().position(|r| *r == request);
    let referrers_tag = digest.replace(':', "-");
    let pushed = at(format!("PUT {tag}")).expect("the image pushed");
    let read = at(format!("GET {referrers_tag}")).expect("the referrers tag read");
    let written = at(format!("PUT {referrers_tag}")).expect("the referrers tag written");
    assert!(read < pushed && pushed < written, "{manifests:#?}");
    assert!(first.contains("\"sbom\""), "an SBOM was attached: {first}");
    // The apt layers are written while uv installs.
    assert!(
        step_at(&first, "started", "uv pip install for linux/amd64")
            < step_at(&first, "done", "write the apt layers for linux/amd64"),
        "{first}"
    );
    let spec_path = proj.path().join("spec.toml");
    let spec = std::fs::read_to_string(&spec_path).expect("spec");
    std::fs::write(
        &spec_path,
        spec.replace(r#"["six"]"#, r#"["six", "pyyaml"]"#),
    )
    .expect("spec");
    let (ok, _, second) = build_with_cache(proj.path(), &uv, false, Some(cache.path()), &[]);
    assert!(ok, "{second}");
    let reused = second
        .matches("\"apt layers for linux/amd64 unchanged since an earlier build: not written again")
        .count();
    assert_eq!(reused, 1, "{second}");
    let image = inspect_json(proj.path(), "spec.toml")["image"]
        .as_str()
        .expect("image")
        .to_string();
    let out = run_as_root(&image, "jq --version; dpkg -V; python -c 'import yaml'");
    assert!(out.starts_with("jq-"), "{out}");

    let before = apt_layers(proj.path());
    let spec = std::fs::read_to_string(&spec_path).expect("spec");
    std::fs::write(&spec_path, spec.replace(r#"["jq"]"#, r#"["jq", "tree"]"#)).expect("spec");
    let (ok, _, third) = build_with_cache(proj.path(), &uv, false, Some(cache.path()), &[]);
    assert!(ok, "{third}");
    let after = apt_layers(proj.path());
    let new: Vec<&(String, String)> = after
        .iter()
        .filter(|(diff_id, _)| !before.iter().any(|(d, _)| d == diff_id))
        .collect();
    type Layers<'a> = Vec<&'a (String, String)>;
    let (database, packages): (Layers, Layers) =
        new.into_iter().partition(|(_, line)| !line.contains('#'));
    assert_eq!(database.len(), 1, "dpkg's database: {after:?}");
    assert_eq!(
        packages.len(),
        1,
        "one packages' layer: {before:?} {after:?}"
    );
    let names: Vec<&str> = packages[0]
        .1
        .rsplit_once(" # ")
        .expect("names")
        .1
        .split(' ')
        .collect();
    assert!(names.contains(&"tree"), "{names:?}");
    let unchanged = after.len() - 2;
    assert!(
        third.contains(&format!(
            "{unchanged} of {} apt layers for linux/amd64 unchanged since an earlier build",
            after.len()
        )),
        "{third}"
    );
    // Every other package's layer is the second build's; at most one of them is gone
    // (the one `tree` joined) beside the old database.
    assert!(
        before.len() - (after.len() - 2) <= 2,
        "{before:?} {after:?}"
    );
    let image = inspect_json(proj.path(), "spec.toml")["image"]
        .as_str()
        .expect("image")
        .to_string();
    let out = run_as_root(
        &image,
        "dpkg --audit; dpkg -V; tree --version | cut -c1-7; jq --version; dpkg-query -W -f '${Status}\n' tree",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "tree v2", "{out}");
    assert!(lines[1].starts_with("jq-"), "{out}");
    assert_eq!(lines[2], "install ok installed", "{out}");
}
