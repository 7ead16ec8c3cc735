//! What `imagespec build` shows while it works, against the e2e services (dockerd's BuildKit
//! and the registry at 127.0.0.1:5000, started by `scripts/test.sh`): step labels a person
//! reads instead of Dockerfile text, a failing step's command and output said once, pushed
//! bytes, `--json` steps with both the label and BuildKit's name, and the live view on a real
//! terminal (tmux, through `scripts/live-view.sh`). Without the services these tests fail
//! under `CI`, and say why and pass elsewhere.

use assert_cmd::Command;
use insta::assert_snapshot;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command as Process;

/// The registry and images of the e2e services, or `None` (and a note) when they are not
/// running outside CI.
struct Env {
    registry: String,
    base_python: String,
    uv_image: String,
}

fn services() -> Option<Env> {
    let file =
        std::env::var("IMAGESPEC_E2E_ENV").unwrap_or_else(|_| "/tmp/imagespec-e2e/e2e.env".into());
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let get = |key: &str| {
        std::env::var(key).ok().or_else(|| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
        })
    };
    let up = get("IMAGESPEC_E2E_REGISTRY").is_some_and(|r| {
        Process::new("curl")
            .args(["-sf", &format!("http://{r}/v2/")])
            .output()
            .is_ok_and(|o| o.status.success())
    }) && Process::new("/usr/bin/docker")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !up {
        assert!(
            std::env::var_os("CI").is_none(),
            "e2e services are not running ({file}); scripts/test.sh starts them"
        );
        eprintln!(
            "e2e services not running: start them with scripts/e2e/up.sh && scripts/e2e/base-images.sh"
        );
        return None;
    }
    Some(Env {
        registry: "localhost:5000".into(),
        base_python: get("IMAGESPEC_E2E_BASE_PYTHON")
            .unwrap_or_else(|| "localhost:5000/debian-python:bookworm".into()),
        uv_image: get("IMAGESPEC_E2E_UV_IMAGE").unwrap_or_else(|| "localhost:5000/uv:0.5".into()),
    })
}

/// A value unique to this run: a spec with it in `env` builds anew.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// A project with two source files and `spec.toml` holding `extra` after the common fields.
fn project(dir: &Path, env: &Env, name: &str, extra: &str) {
    std::fs::create_dir_all(dir.join("src/app")).expect("src");
    std::fs::write(dir.join("src/app/main.py"), "print('hello')\n").expect("file");
    std::fs::write(dir.join("src/app/util.py"), "X = 1\n").expect("file");
    let spec = format!(
        r#"name = "{name}"
registry = "{registry}"
base_image = "{base}"
apt_packages = ["jq"]
packages = ["six"]
source_root = "src"
source_copy_mode = "all"
builder_config = {{ uv_image = "{uv}" }}
{extra}
"#,
        registry = env.registry,
        base = env.base_python,
        uv = env.uv_image,
    );
    std::fs::write(dir.join("spec.toml"), spec).expect("spec");
}

/// `imagespec build spec.toml ARGS` (dependency images by dockerd); (exit code, stdout,
/// stderr).
fn build(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::cargo_bin("imagespec")
        .expect("binary")
        .current_dir(dir)
        .env("IMAGESPEC_NO_CACHE", "1")
        .env("IMAGESPEC_NO_DAEMONLESS", "1")
        .env("NO_COLOR", "1")
        .env_remove("FLYTE_PUSH_IMAGE_SPEC")
        .env_remove("FLYTE_FORCE_PUSH_IMAGE_SPEC")
        .timeout(std::time::Duration::from_secs(600))
        .args(["build", "spec.toml"])
        .args(args)
        .output()
        .expect("run imagespec");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The plain view's step lines (`=> started`, `✓ done`, `· cached`, `✗ failed`).
fn step_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| ["=> ", "✓ ", "· ", "✗ "].iter().any(|m| l.starts_with(m)))
        .collect()
}

/// The label of a finished step's plain line: `✓ label (1.2s)` → `label`.
fn finished_label(line: &str) -> Option<&str> {
    let rest = ["✓ ", "· ", "✗ "]
        .iter()
        .find_map(|m| line.strip_prefix(m))?;
    Some(rest.rsplit_once(" (").map_or(rest, |(label, _)| label))
}

/// BuildKit's own bookkeeping steps, named by BuildKit (their words change with its
/// version), and names with this run's image in them.
fn ours(label: &str) -> bool {
    !["load ", "unpack ", "settings ", "exporting "]
        .iter()
        .any(|p| label.starts_with(p))
}

/// What no step line may show: Dockerfile text and BuildKit's noise.
fn assert_no_dockerfile_text(lines: &[&str], context: &str) {
    for line in lines {
        for raw in [
            "RUN ",
            "COPY ",
            "--mount",
            "[stage-",
            "[internal]",
            "uv venv",
            "apt-get",
            "-unlabelled",
        ] {
            assert!(!line.contains(raw), "`{raw}` in {line:?}\n{context}");
        }
    }
}

/// A failing `commands` step in the plain view: every step named by its purpose, the failing
/// step's output once (as it came), its command once (in the error, which points at the
/// output above instead of repeating it), exit code 1.
#[test]
fn plain_view_labels_steps_and_says_a_failure_once() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    // The output is computed by the shell, so the command's text and its output differ.
    project(
        dir.path(),
        &env,
        "h-live-fail",
        r#"commands = ["echo \"OUT-$((6*7))-MARK\"", "echo \"ERR-$((6*8))-MARK\" >&2; exit 7"]
builder_options = { add_flytekit = false }"#,
    );
    let (code, stdout, stderr) = build(dir.path(), &["--progress", "plain", "--no-push"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty(), "no image named on a failure: {stdout}");
    assert_eq!(stderr.matches("OUT-42-MARK").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("ERR-48-MARK").count(), 1, "{stderr}");
    assert_eq!(
        stderr.matches("exit 7").count(),
        1,
        "the command once: {stderr}"
    );
    let steps = step_lines(&stderr);
    assert_no_dockerfile_text(&steps, &stderr);
    let labels: BTreeSet<&str> = steps
        .iter()
        .filter_map(|l| finished_label(l))
        .filter(|l| ours(l))
        .collect();
    let labels: Vec<&str> = labels.into_iter().collect();
    assert_snapshot!(labels.join("\n"), @r"
    base image localhost:5000/debian-python:bookworm
    copy source (2 files)
    create user flytekit
    give /root and /home to flytekit
    install Python packages (1)
    install apt packages: jq
    run commands (2)
    uv image localhost:5000/uv:0.5
    working directory /root
    ");
    let error = &stderr[stderr.find("error:").expect("an error")..];
    assert_snapshot!(error.trim_end(), @r#"
    error: build failed at step `run commands (2)`: exit code: 7
      command: echo "OUT-$((6*7))-MARK" && echo "ERR-$((6*8))-MARK" >&2; exit 7
      (its output is above)
    "#);

    // Without the plain view (here `--quiet`), the error carries the output's tail.
    let (code, _, quiet) = build(dir.path(), &["--quiet", "--no-push"]);
    assert_eq!(code, Some(1), "{quiet}");
    assert_eq!(quiet.matches("OUT-42-MARK").count(), 1, "{quiet}");
    assert_eq!(quiet.matches("exit 7").count(), 1, "{quiet}");
    assert!(
        quiet.contains("--- step output (last 2 lines) ---"),
        "{quiet}"
    );
}

/// `--json` step events carry the label and BuildKit's own name; pushes report bytes: dockerd's
/// (step `push`) and the fast path's own upload (step `append`, `uploaded` with every byte).
/// The plain view shows the bytes pushed on the push steps' lines.
#[test]
fn json_steps_carry_label_and_name_and_pushes_count_bytes() {
    let Some(env) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_id();
    project(
        dir.path(),
        &env,
        "h-live-json",
        &format!("env = {{ RUN_ID = \"{run}\" }}\nbuilder_options = {{ add_flytekit = false }}"),
    );
    // Big enough that dockerd reports its bytes as it pushes the layer (it says nothing
    // between "Preparing" and "Pushed" for a tiny one), and this run's own: layers are
    // reproducible, and one the registry has already is not pushed again.
    let mut data = format!("{run}\n").into_bytes();
    data.extend((0..400_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(dir.path().join("src/app/data.bin"), data).expect("data");
    let (code, stdout, stderr) = build(dir.path(), &["--json"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let events: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let steps: Vec<&Value> = events.iter().filter(|e| e["event"] == "step").collect();
    assert!(
        steps
            .iter()
            .all(|s| s["label"].is_string() && s["name"].is_string()),
        "{stdout}"
    );
    let install = steps
        .iter()
        .find(|s| s["label"] == "install Python packages (1)")
        .unwrap_or_else(|| panic!("no Python step: {stdout}"));
    let name = install["name"].as_str().expect("name");
    assert!(
        name.starts_with("[stage-") && name.contains("--mount=") && name.contains("uv pip install"),
        "BuildKit's own name: {name}"
    );
    let labels: Vec<&str> = steps.iter().filter_map(|s| s["label"].as_str()).collect();
    assert_no_dockerfile_text(&labels, &stdout);
    assert!(
        labels
            .iter()
            .any(|l| l.starts_with("label ") && l.contains(":deps-")),
        "the dependency image's labelling step: {labels:?}"
    );
    let pushes: Vec<&Value> = events.iter().filter(|e| e["event"] == "push").collect();
    assert!(
        pushes
            .iter()
            .any(|p| p["step"] == "push" && p["current"].as_u64().is_some_and(|c| c > 0)),
        "dockerd's push with bytes: {stdout}"
    );
    let uploaded = pushes
        .iter()
        .find(|p| p["step"] == "append" && p["status"] == "uploaded")
        .unwrap_or_else(|| panic!("the source layer's upload: {stdout}"));
    assert!(
        uploaded["total"].as_u64().is_some_and(|t| t > 0),
        "{uploaded}"
    );
    assert_eq!(uploaded["current"], uploaded["total"]);

    // The plain view: a full build pushed by dockerd, then a code change appended in the
    // registry; both push lines end with the bytes pushed and the time.
    let bytes_and_time = regex::Regex::new(r"\(\d+(\.\d)? (B|kB|MB) \d+\.\ds\)$").unwrap();
    let (code, _, stderr) = build(
        dir.path(),
        &["--progress", "plain", "--force", "--no-fast-path"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let steps = step_lines(&stderr);
    assert_no_dockerfile_text(&steps, &stderr);
    assert!(
        steps
            .iter()
            .any(|l| l.starts_with("✓ push ") && bytes_and_time.is_match(l)),
        "dockerd's push with its bytes:\n{stderr}"
    );
    std::fs::write(dir.path().join("src/app/util.py"), format!("X = '{run}'\n")).expect("change");
    let (code, _, stderr) = build(dir.path(), &["--progress", "plain"]);
    assert_eq!(code, Some(0), "{stderr}");
    let appended = step_lines(&stderr)
        .into_iter()
        .find(|l| l.starts_with("✓ push ") && l.contains("3 files"))
        .unwrap_or_else(|| panic!("the fast path's push:\n{stderr}"));
    assert!(bytes_and_time.is_match(appended), "{appended}");
}

/// The live view on a real terminal: `scripts/live-view.sh` runs a build in an 80-column
/// tmux pane and keeps every frame. The header counts steps, steps show their labels, a
/// line of output longer than the pane is cut (its end never shows), finished lines never
/// wrap, and the view ends `FINISHED`. Without tmux it is skipped outside CI (the script
/// installs it, which needs root and apt).
#[test]
fn the_live_view_fits_the_terminal() {
    let Some(_env) = services() else { return };
    let has_tmux = Process::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_tmux && std::env::var_os("CI").is_none() {
        eprintln!("tmux is not installed: the live view is not checked (CI installs it)");
        return;
    }
    let width = 80;
    let dir = tempfile::tempdir().expect("tempdir");
    let frames = dir.path().join("frames");
    let page = dir.path().join("live-view.md");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/live-view.sh");
    let out = Process::new("bash")
        .arg(&script)
        .arg(&page)
        .env("IMAGESPEC_BIN", env!("CARGO_BIN_EXE_imagespec"))
        .env("LIVE_VIEW_WIDTH", width.to_string())
        .env("LIVE_VIEW_NAME", "h-live-view-test")
        .env("LIVE_VIEW_FRAMES", &frames)
        .output()
        .expect("run scripts/live-view.sh");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert_eq!(
        std::fs::read_to_string(frames.join("exit"))
            .expect("exit code")
            .trim(),
        "0",
        "{log}"
    );
    let mut names: Vec<_> = std::fs::read_dir(&frames)
        .expect("frames")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    names.sort();
    let read = |n: &str| std::fs::read_to_string(frames.join(n)).expect("frame");
    let rows: Vec<String> = names
        .iter()
        .filter(|n| !n.contains("joined"))
        .map(|n| read(n))
        .collect();
    let all = rows.join("\n");
    let header = regex::Regex::new(r"(?m)^\[\+\] Building \d+\.\ds \(\d+/\d+\)$").unwrap();
    assert!(header.is_match(&all), "a running header:\n{all}");
    assert!(
        rows.last()
            .is_some_and(|f| f.contains("[+] Building") && f.contains("FINISHED")),
        "{all}"
    );
    for label in [
        "install apt packages: jq",
        "install Python packages (1)",
        "run command",
        "write source layer",
        "push ",
    ] {
        assert!(all.contains(label), "`{label}` in no frame:\n{all}");
    }
    assert!(
        !all.contains("END-OF-LONG-LINE"),
        "a cut line's end shows:\n{all}"
    );
    let spinner = regex::Regex::new(r"^ [⠁⠂⠄⡀⢀⠠⠐⠈] ").unwrap();
    let time = regex::Regex::new(r" \d+\.\ds$").unwrap();
    for row in all.lines() {
        assert!(row.chars().count() <= width, "{row:?}");
        // A running step's row ends with its time: nothing pushed it onto another row.
        if spinner.is_match(row) {
            assert!(time.is_match(row), "{row:?}");
        }
    }
    let step_lines: Vec<&str> = all
        .lines()
        .filter(|r| [" ✓ ", " · ", " ✗ "].iter().any(|m| r.starts_with(m)))
        .collect();
    assert_no_dockerfile_text(&step_lines, &all);
    // Wrapped rows joined: a finished step's line is still one row of the pane.
    for name in names.iter().filter(|n| n.contains("joined")) {
        for line in read(name).lines() {
            if [" ✓ ", " · ", " ✗ "].iter().any(|m| line.starts_with(m)) {
                assert!(line.chars().count() < width, "wrapped: {line:?}");
            }
        }
    }
    let page = std::fs::read_to_string(&page).expect("the page");
    assert!(page.contains("$ imagespec build spec.toml"), "{page}");
    assert!(page.contains("FINISHED"), "{page}");
}
