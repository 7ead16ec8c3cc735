//! The CLI contract: exit codes, stdout and stderr for good and bad input.

use assert_cmd::Command;
use insta::assert_snapshot;
use std::path::Path;

fn imagespec(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("imagespec").expect("binary");
    cmd.current_dir(dir).env("IMAGESPEC_NO_CACHE", "1");
    cmd
}

/// `imagespec inspect SPEC --json` run by `cmd` (its directory and environment), which must
/// succeed: what it printed.
fn inspected(cmd: &mut Command, spec: &str) -> serde_json::Value {
    let out = cmd.args(["inspect", spec, "--json"]).output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Runs `imagespec tag FILE` on `text` written to FILE; returns (exit code, stdout, stderr).
fn tag_of(file: &str, text: &str) -> (i32, String, String) {
    tag_with(file, text, &[])
}

/// `imagespec tag FILE ARGS...` on `text` written to FILE.
fn tag_with(file: &str, text: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(file), text).expect("write spec");
    let out = imagespec(dir.path())
        .args(["tag", file])
        .args(args)
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn bad(file: &str, text: &str) -> String {
    bad_with(file, text, &[])
}

fn bad_with(file: &str, text: &str, args: &[&str]) -> String {
    let (code, stdout, stderr) = tag_with(file, text, args);
    assert_eq!(code, 2, "bad input must exit 2; stderr: {stderr}");
    assert!(
        stdout.is_empty(),
        "nothing on stdout for bad input: {stdout}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr.trim_end().to_string()
}

/// `bad`, with the temporary directory's path shown as `[DIR]`.
fn bad_in_dir(file: &str, text: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(file), text).expect("write spec");
    let out = imagespec(dir.path())
        .args(["tag", file])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let real = std::fs::canonicalize(dir.path()).expect("canonical");
    String::from_utf8_lossy(&out.stderr)
        .trim_end()
        .replace(&real.to_string_lossy().into_owned(), "[DIR]")
        .replace(&dir.path().to_string_lossy().into_owned(), "[DIR]")
}

#[test]
fn unknown_field_names_position_and_suggests() {
    assert_snapshot!(bad("spec.toml", "name = \"x\"\npakages = [\"numpy\"]\n"), @"error: spec.toml:2:1: unknown field `pakages`; did you mean `packages`?");
    assert_snapshot!(bad("spec.yaml", "base_image:\n  name: b\n  python_verison: '3.11'\n"), @"error: spec.yaml:3:3: unknown field `base_image.python_verison`; did you mean `python_version`?");
    assert_snapshot!(bad("spec.json", "{\"zzz\": 1}"), @"error: spec.json:1:2: unknown field `zzz`");
}

#[test]
fn wrong_types_name_field_expected_and_found() {
    assert_snapshot!(bad("spec.toml", "packages = \"numpy\"\n"), @r#"error: spec.toml:1:12: `packages`: expected a list of strings, found the string "numpy""#);
    assert_snapshot!(bad("spec.toml", "packages = [\"a\", 3]\n"), @"error: spec.toml:1:18: `packages[1]`: expected a string, found the integer 3");
    assert_snapshot!(bad("spec.yaml", "env:\n  A: [1]\n"), @"error: spec.yaml:2:6: `env.A`: expected a string, found a list");
    assert_snapshot!(bad("spec.toml", "pip_secret_mounts = [[\"a\"]]\n"), @r#"error: spec.toml:1:22: `pip_secret_mounts[0]`: expected a pair of two strings, [source, mount path], found a list"#);
    assert_snapshot!(bad("spec.yaml", "python_version: 2024-01-01\n"), @"error: spec.yaml:1:17: `python_version`: expected a string, found the date 2024-01-01 (quote it to make it a string)");
}

#[test]
fn invalid_values_are_explained() {
    assert_snapshot!(bad("spec.toml", "registry = \"Bad Registry!\"\n"), @"error: spec.toml:1:12: `registry`: invalid container registry name `Bad Registry!`; expected e.g. `localhost:30000`, `ghcr.io/username` or `docker.io/username`");
    assert_snapshot!(bad("spec.toml", "source_root = \".\"\nsource_copy_mode = \"everything\"\n"), @"error: spec.toml:2:20: `source_copy_mode`: `everything` is not a copy mode; expected `all`, `loaded_modules` (or `auto`), `no_copy` (or `none`)");
    assert_snapshot!(bad("spec.toml", "source_copy_mode = \"all\"\n"), @r#"error: spec.toml:1:20: `source_copy_mode`: image `flytekit`: `source_copy_mode = all` needs `source_root` (flytekit: "Field source_root for image spec flytekit must be set when copy is set")"#);
    assert_snapshot!(bad("spec.toml", "tag_format = \"{hash}\"\n"), @"error: spec.toml:1:14: `tag_format`: image `flytekit`: unknown field `hash`; the only field is `{spec_hash}`");
    assert_snapshot!(bad_in_dir("spec.toml", "requirements = \"missing.txt\"\n"), @"error: spec.toml:1:16: `requirements`: image `flytekit`: cannot read missing.txt (from [DIR]): No such file or directory (os error 2)");
}

#[test]
fn syntax_errors_point_at_the_spot() {
    assert_snapshot!(bad("spec.toml", "name = \"x\"\npackages = [\"a\",\n"), @r"error: spec.toml:2:17: unclosed array, expected `]`");
    assert_snapshot!(bad("spec.yaml", "name: x\n  bad: [\n"), @"error: spec.yaml:2:6: mapping values are not allowed in this context");
    assert_snapshot!(bad("spec.json", "{\"name\": \"x\",}"), @"error: spec.json:1:13: Trailing commas are not allowed");
    assert_snapshot!(bad("spec.txt", "name = \"x\"\n"), @"error: spec.txt: unknown spec format `.txt`: name the file *.toml, *.yaml, *.yml or *.json");
}

#[test]
fn multi_image_files_need_a_choice_and_reject_cycles() {
    let text =
        "[images.base]\npackages = [\"numpy\"]\n[images.app]\nbase_image = { spec = \"base\" }\n";
    // Without --image, `tag` names every image, in file order, as `build` builds them all.
    let (code, stdout, _) = tag_with("images.toml", text, &[]);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let cycle =
        "[images.a]\nbase_image = { spec = \"b\" }\n[images.b]\nbase_image = { spec = \"a\" }\n";
    assert_snapshot!(bad_with("images.toml", cycle, &["--image", "a"]), @"error: images.toml:4:23: `images.b.base_image.spec`: images form a cycle: a -> b -> a");
    assert_snapshot!(bad("images.toml", "[images.a]\nbase_image = { spec = \"nope\" }\n"), @"error: images.toml:2:23: `images.a.base_image.spec`: no image `nope` in this file; it has: a");
    // One invalid image does not hide the others.
    let mixed = "[images.good]\nname = \"g\"\n[images.bad]\npackages = 3\n";
    let (code, stdout, _) = tag_with("images.toml", mixed, &["--image", "good"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("g:"), "{stdout}");
    assert_snapshot!(bad_with("images.toml", mixed, &["--image", "bad"]), @"error: images.toml:4:12: `images.bad.packages`: expected a list of strings, found the integer 3");
}

#[test]
fn missing_file_is_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = imagespec(dir.path())
        .args(["tag", "nope.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("error: nope.toml: cannot read the spec file")
    );
}

#[test]
fn tag_prints_the_image_reference_alone() {
    let (code, stdout, stderr) = tag_of(
        "spec.toml",
        "name = \"App\"\nregistry = \"localhost:5000\"\n",
    );
    assert_eq!((code, stderr.as_str()), (0, ""));
    let image = stdout.strip_suffix('\n').expect("one line");
    assert!(image.starts_with("localhost:5000/app:"), "{image}");
    assert_eq!(image.lines().count(), 1);
}

#[test]
fn inspect_resolves_paths_against_the_spec_file_from_any_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let proj = dir.path().join("proj");
    std::fs::create_dir_all(proj.join("src")).expect("mkdir");
    std::fs::write(proj.join("requirements.txt"), "requests\n").expect("write");
    std::fs::write(proj.join("src/app.py"), "print(1)\n").expect("write");
    std::fs::write(
        proj.join("spec.toml"),
        "requirements = \"requirements.txt\"\nsource_root = \"src\"\nsource_copy_mode = \"all\"\n",
    )
    .expect("write");
    let a = inspected(&mut imagespec(dir.path()), "proj/spec.toml");
    let b = inspected(&mut imagespec(&proj), "spec.toml");
    assert_eq!(a, b);
    assert_eq!(a["source"]["files"], serde_json::json!(["app.py"]));
    assert_eq!(a["spec"]["source_copy_mode"], "all");
    for key in ["id", "tag", "image"] {
        assert!(a[key].as_str().is_some_and(|s| !s.is_empty()), "{key}");
    }
}

#[test]
fn is_container_compares_the_image_id_env_with_the_spec_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("spec.toml"),
        "name = \"app\"\npackages = [\"numpy\"]\n",
    )
    .expect("spec");
    let inspect = imagespec(dir.path())
        .args(["inspect", "spec.toml", "--json"])
        .output()
        .expect("run");
    let id = serde_json::from_slice::<serde_json::Value>(&inspect.stdout).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let inside = imagespec(dir.path())
        .env("_F_IMG_ID", &id)
        .args(["is-container", "spec.toml"])
        .output()
        .expect("run");
    assert_eq!(
        (
            inside.status.code(),
            String::from_utf8_lossy(&inside.stdout).trim()
        ),
        (Some(0), "true")
    );
    let outside = imagespec(dir.path())
        .env("_F_IMG_ID", "something-else")
        .args(["is-container", "spec.toml"])
        .output()
        .expect("run");
    assert_eq!(
        (
            outside.status.code(),
            String::from_utf8_lossy(&outside.stdout).trim()
        ),
        (Some(1), "false")
    );
    let unset = imagespec(dir.path())
        .env_remove("_F_IMG_ID")
        .args(["is-container", "spec.toml"])
        .output()
        .expect("run");
    assert_eq!(unset.status.code(), Some(1));
}

/// `build --output` refuses, before any network or daemon, what it cannot assemble: exit 2
/// and why; a malformed target is a usage error.
#[test]
fn output_refuses_what_it_cannot_assemble() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/app.py"), "x = 1\n").unwrap();
    let run = |spec: &str, target: &str| {
        std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
        let out = imagespec(dir.path())
            .args(["build", "spec.toml", "--output", target])
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
        )
    };
    // No registry: only dependencies installed here without a daemon can be written (conda
    // needs dockerd, whose dependency image would need a registry).
    let (code, err) = run(
        "name = \"x\"\nconda_packages = [\"numpy\"]\nsource_root = \"src\"\nsource_copy_mode = \"all\"\n",
        "oci:out",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--output without a `registry`"), "{err}");
    assert!(err.contains("`conda_packages`"), "{err}");
    let (code, err) = run(
        "name = \"x\"\nregistry = \"localhost:1\"\nsource_root = \"src\"\nsource_copy_mode = \"all\"\ncommands = [\"true\"]\n",
        "oci-archive:out.tar",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no `commands`"), "{err}");
    let (code, err) = run("name = \"x\"\n", "zip:out");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown output kind"), "{err}");
}

/// A source file whose name an image layer reads as a whiteout (`.wh.NAME` deletes `NAME`
/// from the layers below) is refused with exit 2 before anything is built, for the
/// Dockerfile's context and for the layer imagespec writes itself; `tag` still names it as
/// flytekit does.
#[test]
fn a_source_file_named_as_a_whiteout_is_refused_before_the_build() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("src/pkg")).unwrap();
    std::fs::write(dir.path().join("src/pkg/app.py"), "x = 1\n").unwrap();
    std::fs::write(dir.path().join("src/pkg/.wh.app.py"), "").unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        "name = \"x\"\nregistry = \"localhost:1\"\nsource_root = \"src\"\nsource_copy_mode = \"all\"\n",
    )
    .unwrap();
    for args in [
        &["render", "spec.toml", "-o", "ctx"][..],
        &["build", "spec.toml", "--output", "oci:out"][..],
    ] {
        let out = imagespec(dir.path()).args(args).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(".wh.app.py"), "{args:?}: {err}");
        assert!(err.contains("OCI whiteout"), "{args:?}: {err}");
    }
    assert!(!dir.path().join("out").exists());
    let tag = imagespec(dir.path())
        .args(["tag", "spec.toml"])
        .output()
        .expect("run");
    assert_eq!(
        tag.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&tag.stderr)
    );
}

/// The flytekit requirement added to packages can be set (the plugin passes the running
/// flytekit's, as flytekit's builder does) without changing the image name.
#[test]
fn flytekit_requirement_is_an_option_outside_the_tag() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("spec.toml"),
        "name = \"x\"\npackages = [\"six\"]\n",
    )
    .unwrap();
    let tag = |extra: &[&str]| {
        String::from_utf8(
            imagespec(dir.path())
                .args(["tag", "spec.toml"])
                .args(extra)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
    };
    let requirements = |extra: &[&str], out: &str| {
        let status = imagespec(dir.path())
            .args(["render", "spec.toml", "-o", out])
            .args(extra)
            .output()
            .unwrap()
            .status;
        assert!(status.success());
        std::fs::read_to_string(dir.path().join(out).join("requirements_uv.txt")).unwrap()
    };
    assert_eq!(requirements(&[], "a"), "six\nflytekit==1.16.31");
    assert_eq!(
        requirements(&["--flytekit-requirement", "flytekit==1.16.30"], "b"),
        "six\nflytekit==1.16.30"
    );
    let with_env = imagespec(dir.path())
        .env("IMAGESPEC_FLYTEKIT_REQUIREMENT", "flytekit")
        .args(["render", "spec.toml", "-o", "c"])
        .output()
        .unwrap()
        .status;
    assert!(with_env.success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("c/requirements_uv.txt")).unwrap(),
        "six\nflytekit"
    );
    assert_eq!(
        tag(&[]),
        String::from_utf8(
            imagespec(dir.path())
                .env("IMAGESPEC_FLYTEKIT_REQUIREMENT", "flytekit")
                .args(["tag", "spec.toml"])
                .output()
                .unwrap()
                .stdout
        )
        .unwrap()
    );
}

/// A registry address nobody listens on (bound, then released).
fn dead_registry() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("address")
        .port();
    format!("127.0.0.1:{port}")
}

/// `imagespec ARGS` with no flytekit variables from the caller and no daemon; (exit code,
/// stdout, stderr).
fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = imagespec(dir);
    cmd.env_remove("FLYTE_IMG_FAST_FAIL")
        .env_remove("FLYTE_FORCE_PUSH_IMAGE_SPEC")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .timeout(std::time::Duration::from_secs(120))
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The exit-code contract when whether the image exists cannot be told: `build` exits 3
/// with the reason and names no image; `--assume-exists` or an explicit
/// `FLYTE_IMG_FAST_FAIL=false` take flytekit's assumption (exit 0, action `assumed`).
#[test]
fn build_cannot_tell_is_exit_3_unless_told_to_assume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = dead_registry();
    std::fs::write(
        dir.path().join("spec.toml"),
        format!("name = \"x\"\nregistry = \"{registry}\"\n"),
    )
    .expect("spec");
    let image = String::from_utf8(
        imagespec(dir.path())
            .args(["tag", "spec.toml"])
            .output()
            .expect("tag")
            .stdout,
    )
    .expect("utf-8");

    let (code, stdout, stderr) = run_in(dir.path(), &["build", "spec.toml"], &[]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stdout.is_empty(),
        "no image named when it cannot tell: {stdout}"
    );
    assert!(
        stderr.contains("cannot tell whether")
            && stderr.contains(&format!("cannot connect to {registry}"))
            && stderr.contains("--assume-exists"),
        "{stderr}"
    );
    let (code, _, stderr) = run_in(
        dir.path(),
        &["build", "spec.toml"],
        &[("FLYTE_IMG_FAST_FAIL", "true")],
    );
    assert_eq!(code, Some(3), "FLYTE_IMG_FAST_FAIL=true: {stderr}");

    for (args, env) in [
        (&["build", "spec.toml", "--assume-exists"][..], &[][..]),
        (
            &["build", "spec.toml"][..],
            &[("FLYTE_IMG_FAST_FAIL", "false")][..],
        ),
        (
            &["build", "spec.toml", "--assume-exists"][..],
            &[("FLYTE_IMG_FAST_FAIL", "true")][..],
        ),
    ] {
        let (code, stdout, stderr) = run_in(dir.path(), args, env);
        assert_eq!(code, Some(0), "{args:?} {env:?}: {stderr}");
        assert_eq!(stdout, image, "{args:?} {env:?}");
        assert!(stderr.contains("assumed to exist"), "{stderr}");
    }
    let (code, stdout, _) = run_in(
        dir.path(),
        &["build", "spec.toml", "--assume-exists", "--json"],
        &[],
    );
    assert_eq!(code, Some(0));
    let result: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("result")).expect("json");
    assert_eq!(
        (&result["event"], &result["action"]),
        (&"result".into(), &"assumed".into())
    );
}

/// `exists`: 3 when the registry cannot be asked, 2 for bad input (also a bad timeout).
#[test]
fn exists_exit_codes_without_a_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = dead_registry();
    std::fs::write(
        dir.path().join("spec.toml"),
        format!("name = \"x\"\nregistry = \"{registry}\"\n"),
    )
    .expect("spec");
    let (code, stdout, stderr) = run_in(dir.path(), &["exists", "spec.toml"], &[]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("cannot tell whether"), "{stderr}");

    std::fs::write(dir.path().join("bad.toml"), "name = 1\n").expect("spec");
    let (code, _, stderr) = run_in(dir.path(), &["exists", "bad.toml"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = run_in(dir.path(), &["exists", "missing.toml"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    for (args, env) in [
        (
            &["exists", "spec.toml", "--stall-timeout", "0"][..],
            &[][..],
        ),
        (
            &["build", "spec.toml", "--connect-timeout", "soon"][..],
            &[][..],
        ),
        (
            &["exists", "spec.toml"][..],
            &[("IMAGESPEC_STALL_TIMEOUT", "-5")][..],
        ),
    ] {
        let (code, _, stderr) = run_in(dir.path(), args, env);
        assert_eq!(code, Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("seconds"), "{stderr}");
    }
}

/// `--help` states the exit codes.
#[test]
fn help_states_the_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        &["--help"][..],
        &["exists", "--help"][..],
        &["build", "--help"][..],
    ] {
        let out = imagespec(dir.path()).args(args).output().expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("3 cannot tell") && text.contains("2 bad input"),
            "{args:?}: {text}"
        );
    }
}

/// `build --help` reads in sections: the spec's options, then rendering, timeouts, the
/// decision (shared with `plan`) and output; each option in one section only.
#[test]
fn build_help_groups_its_options_in_sections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outline = |args: &[&str]| {
        let out = imagespec(dir.path()).args(args).output().expect("run");
        assert!(out.status.success());
        // Section headings and each option's flags, without the descriptions.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                if l.ends_with(':') && !l.starts_with(' ') {
                    Some(l.to_string())
                } else {
                    let flags = l.trim_start();
                    flags.starts_with('-').then(|| {
                        let end = flags.find("  ").unwrap_or(flags.len());
                        format!("  {}", &flags[..end])
                    })
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_snapshot!(outline(&["build", "--help"]), @r"
    Arguments:
    Options:
      -i, --image <KEY>
      --modules-from <FILE>
      --entry <MODULE>
      --relative-to <DIR>
      --allow-external-links
      --config <FILE>
      --no-config
      -h, --help
    Rendering:
      --flytekit-compat
      --ca-bundle <FILE>
      --flytekit-requirement <REQUIREMENT>
      --host-python-version <X.Y>
    Timeouts:
      --connect-timeout <SECONDS>
      --stall-timeout <SECONDS>
    Decision (build and plan alike):
      --no-push
      --force
      --no-fast-path
      --no-daemonless
      --assume-exists
      --platform <LIST>
      --bases-built
    Remote builder (build and plan alike):
      --builder-host <ADDRESS>
      --tlscacert <FILE>
      --tlscert <FILE>
      --tlskey <FILE>
      --tlsservername <NAME>
      --cache-from <REF>
      --cache-to <REF>
      --no-cache-export
    Output:
      --output <KIND:PATH>
      --json
      --sbom [<BOOL>]
      --provenance [<BOOL>]
      -q, --quiet
      --progress <MODE>
      --color <WHEN>
      --print-ref <KIND>
      --metadata-file <FILE>
    Scheduling:
      -j, --jobs <N>
    ");
    let plan = outline(&["plan", "--help"]);
    assert!(
        plan.contains("Timeouts:\n  --connect-timeout") && plan.ends_with("Output:\n  --json"),
        "{plan}"
    );
}

/// A closed stdout (`imagespec inspect --json | head -c 10`) ends the process quietly with
/// 141, as SIGPIPE ends `cat`, without a panic; closed sockets are another matter
/// (tests/e2e_faults.rs: a registry that resets the connection is an error with exit 1).
#[test]
fn a_closed_stdout_ends_the_process_quietly() {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("tempdir");
    // Far more output than a pipe holds, so imagespec is still writing when it closes.
    let env: Vec<String> = (0..20_000)
        .map(|i| format!("K{i} = \"{}\"", "v".repeat(20)))
        .collect();
    std::fs::write(
        dir.path().join("spec.toml"),
        format!("name = \"big\"\nenv = {{ {} }}\n", env.join(", ")),
    )
    .expect("spec");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("imagespec"))
        .current_dir(dir.path())
        .args(["inspect", "--json", "spec.toml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("imagespec");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 10];
    stdout.read_exact(&mut first).expect("the first bytes");
    drop(stdout);
    let out = child.wait_with_output().expect("imagespec ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(141),
        "as SIGPIPE ends `cat`: {stderr}"
    );
    assert!(stderr.is_empty(), "quietly: {stderr}");
}

/// imagespec's own cache directory inside `source_root` (or a `copy` directory) is not
/// source: the tag is the same before the cache exists and after it holds entries, and a
/// file beside it still counts.
#[test]
fn the_cache_directory_inside_the_source_is_not_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let proj = dir.path();
    std::fs::create_dir_all(proj.join("src/data")).expect("mkdir");
    std::fs::write(proj.join("src/app.py"), "print(1)\n").expect("write");
    std::fs::write(proj.join("src/data/a.csv"), "1,2\n").expect("write");
    std::fs::write(
        proj.join("spec.toml"),
        "source_root = \"src\"\nsource_copy_mode = \"all\"\ncopy = [\"src/data\"]\n",
    )
    .expect("write");
    let tag = |cache: &Path| {
        let mut cmd = imagespec(proj);
        let v = inspected(cmd.env("IMAGESPEC_CACHE_DIR", cache), "spec.toml");
        v["tag"].as_str().expect("tag").to_string()
    };
    for cache in [
        proj.join("src/.cache/imagespec"),
        proj.join("src/data/cache"),
    ] {
        let before = tag(&cache);
        std::fs::create_dir_all(cache.join("pushed")).expect("mkdir cache");
        std::fs::write(cache.join("pushed/entry"), "written by a run").expect("write");
        assert_eq!(
            tag(&cache),
            before,
            "{}: the cache changed the tag",
            cache.display()
        );
        std::fs::write(cache.with_file_name("beside.txt"), "source").expect("write");
        assert_ne!(tag(&cache), before, "a file beside the cache is source");
        std::fs::remove_dir_all(&cache).expect("rm cache");
    }
}
