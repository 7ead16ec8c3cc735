//! The `imagespec-cli` wheel (pyproject.toml, built by `scripts/wheel.sh`) as a user gets it:
//! a fresh venv, `pip install` of the wheel's file with no index (uv's wheel from the cache
//! `scripts/wheel.sh` fills, `IMAGESPEC_WHEEL_DEPS`), then the venv's own `imagespec`:
//!
//! - `--version` names this checkout's commit; uv is installed beside the binary; `imagespec
//!   tag` of the README's first example prints the name the README shows;
//! - `imagespec build` of the README's first example (its base read through a registry
//!   mirror of the defaults file: Docker Hub is out of reach), checked from outside: skopeo
//!   has the image under the README's name with the digest the build reported, and `docker
//!   run` finds git, requests, yaml and the env;
//! - the same spec without `apt_packages`, with no daemon and no uv on `PATH`: the venv's uv
//!   (found beside the binary) installs the packages, and the image runs them.
//!
//! - the aarch64 wheel's binary runs on arm64 and names images as flytekit does there.
//!
//! `IMAGESPEC_WHEEL` names the wheel, else the one `scripts/wheel.sh` leaves in
//! `target/wheels/dev/`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::e2e::{
    DOCKER, NO_DAEMON, Services, missing, output, registry_digest, run_id, run_json, services,
};
use common::repo;

/// The wheel to install, or `None` (a failure under CI) when none is built.
fn wheel() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("IMAGESPEC_WHEEL") {
        return Some(PathBuf::from(path));
    }
    wheel_for("x86_64")
}

/// The `arch` wheel `scripts/wheel.sh` left in `target/wheels/dev/`, or `None` (a failure
/// under CI).
fn wheel_for(arch: &str) -> Option<PathBuf> {
    let dir = repo().join("target/wheels/dev");
    let found = std::fs::read_dir(&dir).ok().and_then(|entries| {
        entries.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("imagespec_cli-") && name.ends_with(&format!("_{arch}.whl"))
        })
    });
    found.or_else(|| {
        missing(&format!(
            "no imagespec-cli wheel in {}: scripts/wheel.sh builds it",
            dir.display()
        ))
    })
}

/// A fresh venv in `dir` with the wheel installed from files only; its `bin/`.
fn install(dir: &Path, wheel: &Path) -> PathBuf {
    let venv = dir.join("venv");
    output(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    let deps = std::env::var("IMAGESPEC_WHEEL_DEPS")
        .unwrap_or_else(|_| "/var/cache/imagespec-wheel/deps".into());
    output(
        Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", "--no-index"])
            .args(["--find-links", &deps])
            .arg(wheel),
    );
    venv.join("bin")
}

/// The README's first spec block (`# hello.toml`) and the image name its console block shows.
fn readme_example() -> (String, String) {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let block = |fence: &str| -> String {
        let start = readme
            .find(fence)
            .unwrap_or_else(|| panic!("{fence} in README"));
        let body = &readme[start + fence.len()..];
        body[..body.find("```").expect("closing fence")].to_string()
    };
    let spec = block("```toml\n# hello.toml\n");
    let console = block("```console\n$ imagespec tag hello.toml\n");
    (spec, console.trim().to_string())
}

/// The venv's `imagespec` in `dir`, with no defaults file but `config`, a scratch cache, and
/// a `PATH` without any uv (only the system's directories).
fn venv_imagespec(bin: &Path, dir: &Path, config: Option<&Path>) -> Command {
    let mut cmd = Command::new(bin.join("imagespec"));
    cmd.current_dir(dir)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env_remove("IMAGESPEC_UV")
        .env("IMAGESPEC_CACHE_DIR", dir.join("cache"))
        .env("HOME", dir);
    match config {
        Some(file) => cmd.env("IMAGESPEC_CONFIG", file),
        None => cmd.env("IMAGESPEC_NO_CONFIG", "1"),
    };
    cmd
}

#[test]
fn the_wheel_installs_the_binary_and_uv_into_a_fresh_venv() {
    let Some(wheel) = wheel() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = install(dir.path(), &wheel);

    let version = output(Command::new(bin.join("imagespec")).arg("--version"));
    assert_names_this_commit(&version);
    let uv = output(Command::new(bin.join("uv")).arg("--version"));
    assert!(uv.starts_with("uv 0.5.1"), "uv beside the binary: {uv}");
    // The licence travels with the wheel, as PyPI shows it and pip keeps it.
    let show = output(Command::new(bin.join("pip")).args(["show", "imagespec-cli"]));
    assert!(show.contains("License: Apache-2.0"), "{show}");
    let licences = std::fs::read_dir(bin.parent().unwrap().join("lib"))
        .expect("lib")
        .flatten()
        .map(|python| {
            python.path().join(concat!(
                "site-packages/imagespec_cli-",
                env!("CARGO_PKG_VERSION"),
                ".dist-info/licenses/LICENSE"
            ))
        })
        .find(|p| p.is_file())
        .expect("the LICENSE in the wheel's dist-info");
    let text = std::fs::read_to_string(licences).expect("LICENSE");
    assert!(text.contains("Apache License") && text.contains("Version 2.0"));

    let (spec, name) = readme_example();
    std::fs::write(dir.path().join("hello.toml"), spec).expect("spec");
    let tag = output(venv_imagespec(&bin, dir.path(), None).args(["tag", "hello.toml"]));
    assert_eq!(tag.trim(), name, "the README's name");
}

/// The commit `imagespec --version` names (12 hex digits, `-dirty` dropped), checked to be
/// this checkout's.
fn assert_names_this_commit(version: &str) {
    let head = output(
        Command::new("git")
            .current_dir(repo())
            .args(["rev-parse", "HEAD"]),
    );
    let commit = version
        .trim()
        .strip_prefix(concat!("imagespec ", env!("CARGO_PKG_VERSION"), " ("))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("`imagespec --version` names no commit: {version}"));
    let hex = commit.strip_suffix("-dirty").unwrap_or(commit);
    assert!(
        hex.len() == 12 && head.starts_with(hex),
        "the wheel's binary names commit {commit}, the checkout is at {head}"
    );
}

/// The aarch64 wheel (cross-compiled by `scripts/wheel.sh --aarch64`): its binary runs on
/// arm64 (the harness's arm64 Debian, under qemu), names this commit, and names images as
/// flytekit does on an arm64 host, where a `localhost:` registry defaults to linux/arm64:
/// the name this machine's binary gives the spec with that platform written out.
#[test]
fn the_aarch64_wheels_binary_runs_on_arm64_and_names_as_flytekit_there() {
    let Some(wheel) = wheel_for("aarch64") else {
        return;
    };
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    output(
        Command::new("python3")
            .args(["-m", "zipfile", "-e"])
            .arg(&wheel)
            .arg(d.join("wheel")),
    );
    let data = concat!("imagespec_cli-", env!("CARGO_PKG_VERSION"), ".data");
    let binary = d.join("wheel").join(data).join("scripts/imagespec");
    std::fs::copy(&binary, d.join("imagespec")).expect("the binary in the wheel");
    std::fs::set_permissions(
        d.join("imagespec"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let spec = "name = \"hello\"\nregistry = \"localhost:5000\"\npackages = [\"pyyaml\"]\n";
    std::fs::write(d.join("spec.toml"), spec).expect("spec");
    std::fs::write(
        d.join("arm64.toml"),
        format!("{spec}platform = \"linux/arm64\"\n"),
    )
    .expect("spec");
    let here = assert_cmd::Command::cargo_bin("imagespec")
        .expect("binary")
        .current_dir(d)
        .env("IMAGESPEC_NO_CONFIG", "1")
        .args(["tag", "arm64.toml"])
        .output()
        .expect("tag");
    let expected = String::from_utf8_lossy(&here.stdout).trim().to_string();

    let base = env.file.base_python_multi();
    output(Command::new(DOCKER).args(["pull", "-q", "--platform", "linux/arm64", &base]));
    let mount = format!("{}:/x:ro", d.display());
    let said = output(Command::new(DOCKER).args([
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        "-v",
        &mount,
        "-w",
        "/x",
        "-e",
        "IMAGESPEC_NO_CONFIG=1",
        "--entrypoint",
        "sh",
        &base,
        "-c",
        "uname -m && ./imagespec --version && ./imagespec tag spec.toml",
    ]));
    let lines: Vec<&str> = said.lines().collect();
    let [arch, version, name] = lines.as_slice() else {
        panic!("uname, version and name: {said}")
    };
    assert_eq!(*arch, "aarch64");
    assert_names_this_commit(version);
    assert_eq!(*name, expected, "flytekit's arm64-host name");
    assert!(expected.starts_with("localhost:5000/hello:"), "{expected}");
}

/// The mirror of Docker Hub the test's defaults file names: the e2e base under
/// `python:3.12-slim`'s path, as a team's mirror would hold it.
fn docker_hub_mirror(env: &Services) -> String {
    let mirror = format!("{}/wheel-test-mirror", env.registry);
    output(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}", env.base_python),
        &format!("docker://{mirror}/library/python:3.12-slim"),
    ]));
    mirror
}

/// `imagespec build --json --force` with the venv's binary: the result event.
fn build(cmd: &mut Command, spec: &str) -> Value {
    let mut cmd = assert_cmd::Command::from_std(std::mem::replace(cmd, Command::new("true")));
    let run = run_json(cmd.args(["build", spec, "--json", "--force"]));
    assert!(run.ok(), "the venv's imagespec build failed:\n{}", run.text);
    run.result().clone()
}

/// The result's pushed digest.
fn digest(result: &Value) -> &str {
    result["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no digest in the result: {result}"))
}

fn run_in(image: &str, code: &str) -> String {
    output(Command::new(DOCKER).args(["pull", "-q", image]));
    output(Command::new(DOCKER).args(["run", "--rm", image, "python", "-c", code]))
}

#[test]
fn the_wheels_imagespec_builds_the_readme_example() {
    let Some(wheel) = wheel() else { return };
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let bin = install(d, &wheel);
    let (spec, name) = readme_example();
    std::fs::write(d.join("hello.toml"), &spec).expect("spec");
    let mirror = docker_hub_mirror(&env);
    let config = d.join("defaults.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults.builder_config]\nuv_image = \"{}\"\n\
             [defaults.registry_mirrors]\n\"docker.io\" = \"{mirror}\"\n",
            env.uv_image
        ),
    )
    .expect("defaults file");

    // As the README has it: apt_packages, so dockerd builds; pushed under the README's name.
    let mut cmd = venv_imagespec(&bin, d, Some(&config));
    let built = build(&mut cmd, "hello.toml");
    assert_eq!(
        registry_digest(&name),
        digest(&built),
        "skopeo sees what was pushed"
    );
    let said = run_in(
        &name,
        "import os, subprocess, requests, yaml; \
         print(os.environ['HF_HOME'], subprocess.run(['git', '--version']).returncode)",
    );
    assert_eq!(said.lines().last(), Some("/tmp/hf 0"), "{said}");

    // Python packages only, no daemon, no uv on PATH: the uv beside the binary builds it.
    let python_only: String = spec
        .lines()
        .filter(|l| !l.starts_with("apt_packages"))
        .map(|l| format!("{l}\n"))
        .collect();
    // With files to copy: the dependency image (uv's venv) is made here, the files appended.
    // A new dependency image each run (its env differs), so uv runs rather than a lookup.
    let python_only = python_only
        .replace("name = \"hello\"", "name = \"hello-no-daemon\"")
        .replace(
            "HF_HOME = \"/tmp/hf\"",
            &format!("HF_HOME = \"/tmp/hf\", RUN = \"{}\"", run_id()),
        )
        + "source_root = \"src\"\nsource_copy_mode = \"all\"\n";
    std::fs::write(d.join("python.toml"), python_only).expect("spec");
    std::fs::create_dir(d.join("src")).expect("src");
    std::fs::write(
        d.join("src/hello.py"),
        "GREETING = 'hello from the wheel'\n",
    )
    .expect("src");
    let image = output(venv_imagespec(&bin, d, Some(&config)).args(["tag", "python.toml"]));
    let image = image.trim();
    let mut cmd = venv_imagespec(&bin, d, Some(&config));
    cmd.env("DOCKER_HOST", NO_DAEMON);
    let built = build(&mut cmd, "python.toml");
    assert!(
        built["reason"]
            .as_str()
            .is_some_and(|r| r.contains("without a daemon (uv)")),
        "the dependency image was made by uv: {built}"
    );
    assert_eq!(
        registry_digest(image),
        digest(&built),
        "skopeo sees what was pushed"
    );
    let said = run_in(image, "import requests, yaml, hello; print(hello.GREETING)");
    assert_eq!(said.lines().last(), Some("hello from the wheel"), "{said}");
    for image in [name.as_str(), image] {
        let _ = Command::new(DOCKER).args(["rmi", image]).output();
    }
}
