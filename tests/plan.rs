//! `imagespec plan` without services: the decisions that need no registry answer (noop, an
//! unknown builder) and "cannot tell" (a registry nobody listens on, no daemon), with the
//! exit codes `build` would give.

use assert_cmd::Command;
use serde_json::Value;

fn plan(spec: &str, args: &[&str]) -> (Option<i32>, Vec<Value>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("spec.toml"), spec).expect("spec");
    let out = Command::cargo_bin("imagespec")
        .expect("binary")
        .current_dir(dir.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env_remove("FLYTE_IMG_FAST_FAIL")
        .args(["plan", "spec.toml"])
        .args(args)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let plans = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (out.status.code(), plans, stdout)
}

#[test]
fn an_unreachable_registry_is_cannot_tell_with_exit_3() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let spec = "name = \"x\"\nregistry = \"127.0.0.1:1\"\n";
    let (code, plans, out) = plan(spec, &["--json"]);
    assert_eq!(code, Some(3), "{out}");
    assert_eq!(plans.len(), 1, "{out}");
    let p = &plans[0];
    assert_eq!(p["exists"], Value::Null);
    assert_eq!(p["strategy"], Value::Null);
    assert_eq!(p["exit_code"], 3);
    assert!(
        p["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cannot tell") && r.contains("--assume-exists")),
        "{p}"
    );
    assert_eq!(p["asked"], "the registry 127.0.0.1:1");

    let (code, plans, out) = plan(spec, &["--json", "--assume-exists"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(plans[0]["strategy"], "assume");
}

#[test]
fn no_registry_and_no_daemon_is_cannot_tell() {
    let (code, plans, out) = plan("name = \"x\"\n", &["--json"]);
    assert_eq!(code, Some(3), "{out}");
    assert_eq!(plans[0]["asked"], "the local daemon");
    assert!(
        plans[0]["exists_reason"]
            .as_str()
            .is_some_and(|r| r.contains("dockerd is not reachable")),
        "{out}"
    );
}

#[test]
fn noop_names_the_base_and_asks_nothing() {
    let spec = "name = \"x\"\nbuilder = \"noop\"\nbase_image = \"example.org/team/base:1\"\n";
    let (code, plans, out) = plan(spec, &["--json"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(plans[0]["strategy"], "noop");
    assert_eq!(plans[0]["image"], "example.org/team/base:1");
    assert_eq!(plans[0]["asked"], "not asked");
}

#[test]
fn an_unknown_builder_is_refused_with_exit_2() {
    let (code, plans, out) = plan("name = \"x\"\nbuilder = \"kaniko\"\n", &["--json"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(plans[0]["reason"].as_str().unwrap().contains("`kaniko`"));
}

#[test]
fn plan_takes_builds_output_target_and_refuses_as_build_does() {
    let spec = "name = \"x\"\nbase_image = \"127.0.0.1:1/py:3\"\ncopy = [\"spec.toml\"]\n\
                platform = \"linux/amd64,linux/arm64\"\n";
    // `docker load` keeps one platform per name: refused, with build's exit code.
    let (code, plans, out) = plan(spec, &["--json", "--output", "docker-archive:x.tar"]);
    assert_eq!(code, Some(2), "{out}");
    assert_eq!(plans[0]["exit_code"], 2, "{out}");
    assert!(
        plans[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("--output docker-archive: holds one image per name")),
        "{out}"
    );
    // An OCI layout holds an index: not that refusal.
    let (_, plans, out) = plan(spec, &["--json", "--output", "oci:layout"]);
    assert!(
        !plans[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("docker-archive")),
        "{out}"
    );
    // A target that is none is bad input, as for build.
    let (code, _, out) = plan(spec, &["--json", "--output", "tar:x"]);
    assert_eq!(code, Some(2), "{out}");
}

#[test]
fn nested_bases_come_first_and_the_text_view_names_each_image() {
    let spec = r#"
[images.base]
name = "base"
builder = "noop"
base_image = "example.org/base:1"

[images.app]
name = "app"
builder = "noop"
base_image = { spec = "base" }
"#;
    let (code, plans, out) = plan(spec, &["--json", "--image", "app"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(plans.len(), 2, "{out}");
    assert_eq!(plans[0]["image"], "example.org/base:1");
    assert_eq!(plans[1]["strategy"], "noop");

    let (code, _, text) = plan(spec, &["--image", "app"]);
    assert_eq!(code, Some(0));
    assert!(text.contains("strategy:   noop"), "{text}");
}

#[test]
fn explain_without_a_record_says_to_name_an_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("spec.toml"), "name = \"never-built\"\n").expect("spec");
    let out = Command::cargo_bin("imagespec")
        .expect("binary")
        .current_dir(dir.path())
        .env("IMAGESPEC_CACHE_DIR", dir.path().join("cache"))
        .args(["explain", "spec.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no record of an earlier build of never-built")
            && stderr.contains("--against IMAGE"),
        "{stderr}"
    );
}

#[test]
fn completions_cover_every_command_and_survive_a_closed_pipe() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = Command::cargo_bin("imagespec")
            .expect("binary")
            .args(["completions", shell])
            .output()
            .expect("run");
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        for command in ["build", "plan", "explain", "exists", "--assume-exists"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let bad = Command::cargo_bin("imagespec")
        .expect("binary")
        .args(["completions", "tcsh"])
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn a_closed_stdout_ends_quietly_without_a_panic() {
    use std::io::Read;
    use std::process::{Command as Process, Stdio};
    let dir = tempfile::tempdir().expect("tempdir");
    let packages: Vec<String> = (0..20_000).map(|i| format!("\"p{i}\"")).collect();
    std::fs::write(
        dir.path().join("spec.toml"),
        format!("name = \"x\"\npackages = [{}]\n", packages.join(", ")),
    )
    .expect("spec");
    let mut child = Process::new(assert_cmd::cargo::cargo_bin("imagespec"))
        .current_dir(dir.path())
        .args(["inspect", "--json", "spec.toml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Read one byte, then close the pipe while the JSON is still being written.
    let mut first = [0u8; 1];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("read");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    let status = child.wait().expect("wait");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(matches!(status.code(), Some(0 | 141)), "{status:?}");
}

#[test]
fn progress_json_is_the_json_stream_and_bad_modes_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("spec.toml"),
        "name = \"x\"\nregistry = \"127.0.0.1:1\"\n",
    )
    .expect("spec");
    let run = |args: &[&str]| {
        Command::cargo_bin("imagespec")
            .expect("binary")
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .args(["build", "spec.toml"])
            .args(args)
            .output()
            .expect("run")
    };
    let out = run(&["--progress", "json"]);
    assert_eq!(out.status.code(), Some(3));
    let last: Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .next_back()
        .expect("JSON events on stdout");
    assert_eq!(last["event"], "error");
    assert_eq!(last["exit_code"], 3);
    let out = run(&["--progress", "fancy"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["--color", "never", "--progress", "plain"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        out.stdout.is_empty(),
        "plain progress keeps stdout for the name"
    );
}

#[test]
fn a_multi_image_build_ends_with_one_summary_line_per_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("images.toml"),
        "[images.base]\nname = \"b\"\nbuilder = \"noop\"\nbase_image = \"example.org/b:1\"\n\
         [images.train]\nname = \"t\"\nbuilder = \"noop\"\nbase_image = \"example.org/t:2\"\n",
    )
    .expect("spec");
    let out = Command::cargo_bin("imagespec")
        .expect("binary")
        .current_dir(dir.path())
        .args(["build", "images.toml", "--progress", "plain"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "example.org/b:1\nexample.org/t:2\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: Vec<&str> = stderr
        .lines()
        .skip_while(|l| *l != "summary:")
        .skip(1)
        .collect();
    assert_eq!(summary.len(), 2, "{stderr}");
    assert!(
        summary[0].contains("base") && summary[0].contains("noop"),
        "{stderr}"
    );
    assert!(summary[1].contains("train") && summary[1].contains("example.org/t:2"));
}
