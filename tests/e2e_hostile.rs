//! A hostile registry (issue 20): `scripts/e2e/hostile_registry.py`, started by each test on
//! 127.0.0.1, serves a base image `127.0.0.1:PORT/x:1` with one part made by an attacker —
//! digests that are paths or malformed, huge and endless manifests, configs, error and token
//! bodies, wrong media types, a bad schema version, blobs that don't match their digest, a
//! token realm on another port, blob redirects, headers that trickle. imagespec's binary is
//! run against it the ways a CI job runs it — `exists`, `plan`, `build` with the hostile
//! server as `registry`, and `build --output oci:DIR` with no registry — each with no daemon,
//! a 60 s bound, and its peak memory measured (`VmHWM`).
//!
//! Every run must: exit with the code the scenario's level gives (below), never by a signal
//! or a panic; say why (stderr, or stdout for an answer); stay under 100 MB of memory; leave the victim file the
//! test planted (which path-like digests name) as it was, and the victim directory empty;
//! write nothing outside the output, `IMAGESPEC_CACHE_DIR` and `TMPDIR` (both inside the
//! test's directory); send the registry's credentials nowhere but the registry and the token
//! realm the registry names.
//!
//! Two levels of hostility, two sets of exit codes:
//! - *transport*: the answer about the image itself cannot be used (every tag of every
//!   repository is hostile: too big, endless, not a manifest, a digest that is none, a
//!   stall): `exists`, `plan` and `build` cannot tell whether the image exists, exit 3;
//!   `build --output` (which asks no registry whether the image exists, only reads the
//!   base) fails, exit 1, naming the problem (the 4 MiB limit, the media type, the digest,
//!   the stall).
//! - *content*: only the base `x:1` is hostile (its layers, config, schema), every other tag
//!   is 404: `exists` answers no (1), `plan` plans (0: it reads no base), `build` and
//!   `build --output` fail reading the base (1), `--output` naming the problem.
//!
//! Needs python3 (the server) and, for the `build` runs, uv (the daemonless builder reads the
//! base before it runs uv; `IMAGESPEC_UV` or `scripts/e2e/uv.sh`'s): without them the test
//! fails under `CI` and says why and passes (or leaves out the `build` runs) elsewhere. No
//! dockerd: `DOCKER_HOST` names a socket nothing answers on.

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::e2e::{EnvFile, NO_DAEMON, missing};

/// The stall timeout the runs get, in seconds; `slow-headers` trickles a byte every
/// [`TRICKLE`] seconds, more often than that.
const STALL: u64 = 2;
const TRICKLE: &str = "1";

/// How long one imagespec run may take before it is killed (a test failure).
const RUN_BOUND: Duration = Duration::from_secs(60);

/// The most memory one run may use (`VmHWM`, KiB): 100 MB. A valid run takes ~35 MB.
const PEAK_RSS_KIB: i64 = 100_000_000 / 1024;

/// How a message names the manifest limit (4 MiB, the distribution spec's).
const NAMES_THE_LIMIT: &[&str] = &["4 MiB", "4194304"];
/// How a message names the config limit (16 MiB).
const NAMES_THE_CONFIG_LIMIT: &[&str] = &["16 MiB"];
/// How a message names the token-answer limit (1 MiB).
const NAMES_THE_TOKEN_LIMIT: &[&str] = &["1 MiB"];

/// The credentials the test's docker config holds for the hostile registry.
const USER: &str = "hostile-user";
const PASSWORD: &str = "hostile-pass";

/// What the tests need: the server's interpreter, and uv for the `build` runs.
struct Tools {
    /// `None`: leave out the `build` runs (outside CI, no uv).
    uv: Option<PathBuf>,
}

/// python3 (or a failure under `CI`, a skip elsewhere) and uv, if there.
#[track_caller]
fn tools() -> Option<Tools> {
    let python = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !python {
        return missing("no python3: the hostile registry is a Python script");
    }
    let uv = EnvFile::load().uv();
    if uv.is_none() {
        eprintln!("note: without uv the `build` runs are left out");
    }
    Some(Tools { uv })
}

/// `scripts/e2e/hostile_registry.py` on two free ports of 127.0.0.1, stopped by PID when
/// dropped (SIGTERM, then SIGKILL).
struct Registry {
    child: Child,
    port: u16,
    other_port: u16,
    log: PathBuf,
}

impl Registry {
    fn start(dir: &Path, scenario: &str, args: &[&str]) -> Registry {
        let state = tempfile::Builder::new()
            .prefix("registry-")
            .tempdir_in(dir)
            .expect("registry dir")
            .keep();
        let (port_file, other_file, log) = (
            state.join("port"),
            state.join("other-port"),
            state.join("requests.jsonl"),
        );
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/e2e/hostile_registry.py");
        let child = Command::new("python3")
            .arg(script)
            .args(["--scenario", scenario])
            .arg("--port-file")
            .arg(&port_file)
            .arg("--other-port-file")
            .arg(&other_file)
            .arg("--log")
            .arg(&log)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 hostile_registry.py");
        let mut registry = Registry {
            child,
            port: 0,
            other_port: 0,
            log,
        };
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|p| p.trim().parse().ok())
        };
        for _ in 0..200 {
            // The other port is written first: the main one means both listen.
            if let (Some(port), Some(other)) = (read(&port_file), read(&other_file)) {
                registry.port = port;
                registry.other_port = other;
                return registry;
            }
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("hostile_registry.py --scenario {scenario} exited at start: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("hostile_registry.py did not start within 10 s");
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every request either listener saw (one JSON object each).
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The requests the other listener (realm, redirect target) saw.
    fn other_requests(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["listener"] == "other")
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: `pid` is our child, not yet reaped (so not reused).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test's directory: a project (its specs, a source file), the docker config with the
/// hostile registry's credentials, `HOME`, `TMPDIR`, `IMAGESPEC_CACHE_DIR`, the outputs, and
/// the victims: a file with content and a directory that must stay empty.
struct Sandbox {
    root: tempfile::TempDir,
    victim: PathBuf,
    victim_content: Vec<u8>,
    victim_dir: PathBuf,
    runs: usize,
}

impl Sandbox {
    fn new() -> Sandbox {
        let root = tempfile::Builder::new()
            .prefix("imagespec-hostile-")
            .tempdir()
            .expect("tempdir");
        let dir = root.path();
        for d in [
            "proj/src",
            "home",
            "tmp",
            "cache",
            "out",
            "docker",
            "victim-dir",
        ] {
            std::fs::create_dir_all(dir.join(d)).expect("mkdir");
        }
        std::fs::write(dir.join("proj/src/main.py"), "print('hello')\n").expect("source");
        let victim = dir.join("victim.txt");
        let victim_content = b"the victim's own bytes: they must stay as they are\n".repeat(40);
        std::fs::write(&victim, &victim_content).expect("victim");
        Sandbox {
            victim_dir: dir.join("victim-dir"),
            root,
            victim,
            victim_content,
            runs: 0,
        }
    }

    fn dir(&self) -> &Path {
        self.root.path()
    }

    /// The specs for `registry` (`with-registry.toml`, `no-registry.toml`) and the docker
    /// config with its credentials.
    fn serve(&self, registry: &Registry) {
        let address = registry.address();
        let spec = format!(
            "name = \"hostile\"\nbase_image = \"{address}/x:1\"\npackages = [\"six\"]\n\
             source_root = \"src\"\nsource_copy_mode = \"all\"\n"
        );
        let proj = self.dir().join("proj");
        std::fs::write(proj.join("no-registry.toml"), &spec).expect("spec");
        std::fs::write(
            proj.join("with-registry.toml"),
            format!("{spec}registry = \"{address}\"\n"),
        )
        .expect("spec");
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        let config = serde_json::json!({"auths": {address: {"auth": auth}}});
        std::fs::write(
            self.dir().join("docker/config.json"),
            serde_json::to_vec_pretty(&config).expect("json"),
        )
        .expect("docker config");
    }

    /// A fresh output path (not created).
    fn output(&mut self) -> PathBuf {
        self.runs += 1;
        self.dir().join("out").join(format!("layout-{}", self.runs))
    }

    /// Every path under the root, but those where a run may write.
    fn paths_outside_the_roots(&self) -> BTreeSet<PathBuf> {
        let allowed = ["out", "cache", "tmp"].map(|d| self.dir().join(d));
        walkdir::WalkDir::new(self.dir())
            .into_iter()
            .filter_entry(|e| {
                !allowed
                    .iter()
                    .any(|a| e.path().starts_with(a) && e.path() != a)
            })
            .filter_map(Result::ok)
            .map(|e| e.path().to_path_buf())
            .filter(|p| {
                // The servers' own state (ports, request logs).
                p.strip_prefix(self.dir())
                    .ok()
                    .and_then(|r| r.components().next())
                    .is_none_or(|c| !c.as_os_str().to_string_lossy().starts_with("registry-"))
            })
            .collect()
    }
}

/// What one imagespec run did.
struct Run {
    what: String,
    /// The exit code, or `None` when a signal ended it.
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    /// Peak resident memory, KiB.
    peak_rss_kib: i64,
    timed_out: bool,
    took: Duration,
}

/// Runs `imagespec ARGS` in the project with no daemon, the sandbox's caches and config;
/// killed past [`RUN_BOUND`]; its peak memory polled from `/proc` (every 10 ms: a run that
/// swells does so for longer than that).
fn imagespec(sandbox: &Sandbox, tools: &Tools, args: &[&str]) -> Run {
    let dir = sandbox.dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imagespec"));
    cmd.args(args)
        .current_dir(dir.join("proj"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.join("home"))
        .env("TMPDIR", dir.join("tmp"))
        .env("IMAGESPEC_CACHE_DIR", dir.join("cache"))
        .env("DOCKER_CONFIG", dir.join("docker"))
        .env("DOCKER_HOST", NO_DAEMON)
        .env("IMAGESPEC_STALL_TIMEOUT", STALL.to_string())
        .env("IMAGESPEC_CONNECT_TIMEOUT", "5")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(uv) = &tools.uv {
        cmd.env("IMAGESPEC_UV", uv);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn imagespec");
    let pipe = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = pipe(child.stdout.take().map(|s| Box::new(s) as _));
    let stderr = pipe(child.stderr.take().map(|s| Box::new(s) as _));
    let pid = child.id() as libc::pid_t;
    let status_file = format!("/proc/{pid}/status");
    let (mut status, mut peak_rss_kib, mut timed_out) = (0, 0, false);
    loop {
        // The high-water mark of the imagespec process itself (`wait4`'s `ru_maxrss` would
        // also count this test's memory, which the child had before its exec).
        if let Some(hwm) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|s| vm_hwm_kib(&s))
        {
            peak_rss_kib = peak_rss_kib.max(hwm);
        }
        // SAFETY: our own child, reaped only here (the `Child` is never waited on).
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if done == pid {
            break;
        }
        assert!(done == 0, "waitpid: {}", std::io::Error::last_os_error());
        if started.elapsed() > RUN_BOUND && !timed_out {
            timed_out = true;
            // SAFETY: not reaped yet, so the PID is still our child's.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = started.elapsed();
    drop(child);
    let exited = libc::WIFEXITED(status);
    Run {
        what: format!("imagespec {}", args.join(" ")),
        code: exited.then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        peak_rss_kib,
        timed_out,
        took,
    }
}

/// `VmHWM` (peak resident memory, KiB) of a `/proc/PID/status`.
fn vm_hwm_kib(status: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What a run must have done.
#[derive(Clone)]
struct Expect {
    code: i32,
    /// The code is an answer printed on stdout (`no IMAGE`, a plan), not a failure that
    /// stderr explains.
    answer: bool,
    /// Each group: the output (stdout, stderr) holds one of its strings (ASCII case ignored).
    says: Vec<Vec<String>>,
    /// The most memory the run may use (KiB).
    peak_kib: i64,
}

impl Expect {
    fn code(code: i32) -> Expect {
        Expect {
            code,
            answer: false,
            says: Vec::new(),
            peak_kib: PEAK_RSS_KIB,
        }
    }

    /// A run that builds (uv installs, the base's layers are read) may use up to `mb` MB.
    fn within_mb(mut self, mb: i64) -> Expect {
        self.peak_kib = mb * 1_000_000 / 1024;
        self
    }

    /// An answer on stdout (`exists`' no, `plan`'s plan, also when it cannot tell).
    fn answer(code: i32) -> Expect {
        Expect {
            answer: true,
            ..Expect::code(code)
        }
    }

    /// Also: the output holds one of `words`.
    fn saying(mut self, words: &[&str]) -> Expect {
        self.says
            .push(words.iter().map(|w| (*w).to_string()).collect());
        self
    }
}

/// The failures of one test, reported together at its end (all scenarios' runs, so that one
/// failing run does not hide the others).
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn check(&mut self, sandbox: &Sandbox, run: &Run, before: &BTreeSet<PathBuf>, expect: &Expect) {
        let mut wrong = Vec::new();
        if run.timed_out {
            wrong.push(format!("still running after {RUN_BOUND:?}: killed"));
        }
        if let Some(signal) = run.signal {
            wrong.push(format!(
                "ended by signal {signal} (an abort is 6: exit 134)"
            ));
        }
        if run.code != Some(expect.code) && run.signal.is_none() {
            wrong.push(format!("exit {:?}, expected {}", run.code, expect.code));
        }
        if expect.answer && run.stdout.trim().is_empty() {
            wrong.push("nothing on stdout".into());
        }
        if !expect.answer && run.stderr.trim().is_empty() {
            wrong.push("nothing on stderr".into());
        }
        if run.stderr.contains("panicked") {
            wrong.push("a panic".into());
        }
        let printed = format!("{}{}", run.stdout, run.stderr).to_ascii_lowercase();
        for group in &expect.says {
            if !group
                .iter()
                .any(|w| printed.contains(&w.to_ascii_lowercase()))
            {
                wrong.push(format!("the output names none of {group:?}"));
            }
        }
        if run.peak_rss_kib > expect.peak_kib {
            wrong.push(format!(
                "peak memory {} MB, more than {} MB",
                run.peak_rss_kib * 1024 / 1_000_000,
                expect.peak_kib * 1024 / 1_000_000
            ));
        }
        match std::fs::read(&sandbox.victim) {
            Ok(bytes) if bytes == sandbox.victim_content => {}
            Ok(bytes) => wrong.push(format!(
                "the victim file {} changed: {} bytes, was {}",
                sandbox.victim.display(),
                bytes.len(),
                sandbox.victim_content.len()
            )),
            Err(e) => wrong.push(format!("the victim file is gone: {e}")),
        }
        // Put back for the next run, which is judged on its own.
        let _ = std::fs::remove_file(&sandbox.victim);
        std::fs::write(&sandbox.victim, &sandbox.victim_content).expect("victim");
        let planted: Vec<_> = std::fs::read_dir(&sandbox.victim_dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        if !planted.is_empty() {
            wrong.push(format!("written into the victim directory: {planted:?}"));
            for path in &planted {
                let _ = std::fs::remove_file(path).or_else(|_| std::fs::remove_dir_all(path));
            }
        }
        let after = sandbox.paths_outside_the_roots();
        let new: Vec<_> = after.difference(before).collect();
        if !new.is_empty() {
            wrong.push(format!("written outside the output and cache: {new:?}"));
        }
        eprintln!(
            "{}: exit {:?}{} in {:.1} s, {} MB; {}",
            run.what,
            run.code,
            run.signal.map_or(String::new(), |s| format!(" signal {s}")),
            run.took.as_secs_f64(),
            run.peak_rss_kib * 1024 / 1_000_000,
            if wrong.is_empty() { "ok" } else { "WRONG" }
        );
        if !wrong.is_empty() {
            self.0.push(format!(
                "{}:\n  - {}\n  stdout: {}\n  stderr: {}",
                run.what,
                wrong.join("\n  - "),
                tail(&run.stdout),
                tail(&run.stderr)
            ));
        }
    }

    fn note(&mut self, what: String) {
        eprintln!("WRONG: {what}");
        self.0.push(what);
    }

    #[track_caller]
    fn assert_none(self) {
        assert!(
            self.0.is_empty(),
            "{} failures:\n\n{}",
            self.0.len(),
            self.0.join("\n\n")
        );
    }
}

/// The last lines of `text` (an error after pages of progress).
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(12)..].join("\n    ")
}

/// Whether the whole image (every tag) is hostile or only the base's content.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Level {
    Transport,
    Content,
}

/// One scenario of the server and what each command must do against it.
struct Scenario {
    name: &'static str,
    args: Vec<String>,
    level: Level,
    /// What `build --output` must exit with and say.
    output: Expect,
}

impl Scenario {
    fn new(name: &'static str, args: &[&str], level: Level) -> Scenario {
        Scenario {
            name,
            args: args.iter().map(|a| (*a).to_string()).collect(),
            level,
            output: Expect::code(1),
        }
    }

    /// `build --output`'s output also holds one of `words`.
    fn saying(mut self, words: &[&str]) -> Scenario {
        self.output = self.output.saying(words);
        self
    }
}

/// Starts the server for `scenario` and runs `exists`, `plan`, `build` (registry) and
/// `build --output` against it (the `build`s only with uv); returns the server, still
/// running, for the scenario's own checks.
fn run_scenario(
    sandbox: &mut Sandbox,
    tools: &Tools,
    scenario: &Scenario,
    findings: &mut Findings,
) -> Registry {
    let args: Vec<&str> = scenario.args.iter().map(String::as_str).collect();
    let registry = Registry::start(sandbox.dir(), scenario.name, &args);
    sandbox.serve(&registry);
    eprintln!("--- {} {}", scenario.name, args.join(" "));
    let (exists, plan, build) = match scenario.level {
        Level::Transport => (
            Expect::code(3).saying(&["cannot tell"]),
            Expect::answer(3).saying(&["cannot tell"]),
            Expect::code(3).saying(&["cannot tell"]),
        ),
        Level::Content => (Expect::answer(1), Expect::answer(0), Expect::code(1)),
    };
    let mut runs: Vec<(Vec<String>, Expect)> = vec![
        (vec!["exists".into(), "with-registry.toml".into()], exists),
        (vec!["plan".into(), "with-registry.toml".into()], plan),
    ];
    if tools.uv.is_some() {
        let out = sandbox.output();
        runs.push((
            vec![
                "build".into(),
                "no-registry.toml".into(),
                "--output".into(),
                format!("oci:{}", out.display()),
            ],
            scenario.output.clone(),
        ));
        runs.push((vec!["build".into(), "with-registry.toml".into()], build));
    }
    for (args, expect) in runs {
        let before = sandbox.paths_outside_the_roots();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut run = imagespec(sandbox, tools, &args);
        run.what = format!(
            "[{} {}] {}",
            scenario.name,
            scenario.args.join(" "),
            run.what
        );
        findings.check(sandbox, &run, &before, &expect);
    }
    registry
}

/// No run sent the registry's credentials (or its token) to the other listener.
fn nothing_sent_elsewhere(registry: &Registry, scenario: &str, findings: &mut Findings) {
    let leaked: Vec<Value> = registry
        .other_requests()
        .into_iter()
        .filter(|r| !r["authorization"].is_null())
        .collect();
    if !leaked.is_empty() {
        findings.note(format!(
            "[{scenario}] credentials went to the other listener: {leaked:?}"
        ));
    }
}

/// Digests that are paths: they name the victim file (absolute, climbing with and without
/// an algorithm) and a file in the victim directory, in the layer, config and index
/// descriptors of `x:1`.
#[test]
fn path_like_digests_never_name_a_file() {
    let Some(tools) = tools() else { return };
    let mut sandbox = Sandbox::new();
    let mut findings = Findings::default();
    let victim = sandbox.victim.display().to_string();
    let planted = sandbox.victim_dir.join("planted").display().to_string();
    // From any directory up to `/` (TMPDIR is a few levels down), then down to the victim.
    let climb = "../".repeat(24);
    let cases = [
        ("layer", victim.clone()),
        (
            "layer",
            format!("{climb}{}", planted.trim_start_matches('/')),
        ),
        (
            "layer",
            format!("sha256:{climb}{}", victim.trim_start_matches('/')),
        ),
        ("layer", format!("sha256:{planted}")),
        ("config", victim.clone()),
        (
            "config",
            format!("{climb}{}", planted.trim_start_matches('/')),
        ),
        ("index", victim.clone()),
    ];
    for (place, digest) in &cases {
        let scenario = Scenario::new(
            "path-digest",
            &["--digest-in", place, "--digest", digest],
            Level::Content,
        )
        .saying(&["invalid", "malformed", "not a valid"])
        // The message names the digest it refused.
        .saying(&[digest]);
        let registry = run_scenario(&mut sandbox, &tools, &scenario, &mut findings);
        nothing_sent_elsewhere(&registry, "path-digest", &mut findings);
    }
    findings.assert_none();
}

/// Digests that are not `sha256:` + 64 lowercase hex digits (nor sha512's 128): in `x:1`'s
/// layer, config and index descriptors (content: the base cannot be read), and as every
/// manifest answer's `Docker-Content-Digest` (transport: `exists` cannot tell).
#[test]
fn malformed_digests_are_refused_by_name() {
    let Some(tools) = tools() else { return };
    let mut sandbox = Sandbox::new();
    let mut findings = Findings::default();
    let hex = "0123456789abcdef".repeat(4);
    let bad = [
        "sha256:xyz".to_string(),
        "md5:d41d8cd98f00b204e9800998ecf8427e".to_string(),
        format!("sha256:{}", hex.to_ascii_uppercase()),
        format!("sha256:{}", &hex[..63]),
        format!("sha256:{hex}/../a"),
    ];
    for digest in &bad {
        for (place, level) in [
            ("layer", Level::Content),
            ("config", Level::Content),
            ("index", Level::Content),
            ("header", Level::Transport),
        ] {
            let scenario = Scenario::new(
                "malformed-digest",
                &["--digest-in", place, "--digest", digest],
                level,
            )
            .saying(&["invalid", "malformed", "not a valid"])
            .saying(&[digest]);
            let registry = run_scenario(&mut sandbox, &tools, &scenario, &mut findings);
            nothing_sent_elsewhere(&registry, "malformed-digest", &mut findings);
        }
    }
    findings.assert_none();
}

/// Manifests of 64 MiB (with their Content-Length) and without end (chunked), for every tag;
/// HEAD answers carry no digest, so a client must read the body: past 4 MiB it stops, with
/// its memory bounded.
#[test]
fn huge_and_endless_manifests_stop_at_the_limit() {
    let Some(tools) = tools() else { return };
    let mut sandbox = Sandbox::new();
    let mut findings = Findings::default();
    for name in ["huge-manifest", "endless-manifest"] {
        let scenario = Scenario::new(name, &[], Level::Transport).saying(NAMES_THE_LIMIT);
        let registry = run_scenario(&mut sandbox, &tools, &scenario, &mut findings);
        nothing_sent_elsewhere(&registry, name, &mut findings);
    }
    findings.assert_none();
}

/// `x:1`'s config declared and served at 64 MiB, or declared at its real size and served
/// without end: the read stops at the limit (or at the declared size).
#[test]
fn huge_and_endless_configs_stop_at_the_limit() {
    let Some(tools) = tools() else { return };
    let mut sandbox = Sandbox::new();
    let mut findings = Findings::default();
    let huge = Scenario::new("huge-config", &[], Level::Content).saying(NAMES_THE_CONFIG_LIMIT);
    let registry = run_scenario(&mut sandbox, &tools, &huge, &mut findings);
    nothing_sent_elsewhere(&registry, "huge-config", &mut findings);
    drop(registry);
    // The config's real size, as the manifest declares it (what a client may stop at).
    let declared = valid_config_size(&sandbox);
    let mut words = NAMES_THE_CONFIG_LIMIT.to_vec();
    let declared = format!("{declared} bytes");
    words.push(&declared);
    let endless = Scenario::new("endless-config", &[], Level::Content).saying(&words);
    let registry = run_scenario(&mut sandbox, &tools, &endless, &mut findings);
    nothing_sent_elsewhere(&registry, "endless-config", &mut findings);
    findings.assert_none();
}

/// The size the valid manifest declares for its config (asked of a `valid` server).
fn valid_config_size(sandbox: &Sandbox) -> String {
    let registry = Registry::start(sandbox.dir(), "valid", &[]);
    let body = common::e2e::output(Command::new("curl").args([
        "-sf",
        &format!("http://{}/v2/x/manifests/1", registry.address()),
    ]));
    let manifest: Value = serde_json::from_str(&body).expect("manifest json");
    manifest["config"]["size"].to_string()
}

/// Error answers (500, and 404 for the base) whose body never ends; a token realm whose
/// answer never ends.
#[test]
fn endless_error_and_token_bodies_are_bounded() {
    let Some(tools) = tools() else { return };
    let mut sandbox = Sandbox::new();
    let mut findings = Findings::default();
    let error = Scenario::new("huge-error", &["--status", "500"], Level::Transport)
        .saying(&["500", "internal server error"]);
    let registry = run_scenario(&mut sandbox, &tools, &error, &mut findings);
    nothing_sent_elsewhere(&registry, "huge-error", &mut findings);
    drop(registry);
    let token = Scenario::new("endless-token", &[], Level::Transport).saying(NAMES_THE_TOKEN_LIMIT);
    let registry = run_scenario(&mut sandbox, &tools, &token, &mut findings);
    nothing_sent_elsewhere(&registry, "endless-token", &mut findings);
    drop(registry);
    // A 404 with an endless body, for `build --output` alone: the base is not found, and the
    // message says so (for `exists`, a HEAD's 404 is a plain "no").
    if tools.uv.is_some() {
        let registry = Registry::start(sandbox.dir(), "huge-error", &["--status", "404"]);
        sandbox.serve(&registry);
        let out = sandbox.output();
        let before = sandbox.paths_outside_the_roots();
        let target = format!("oci:{}", out.display());
        let mut run = imagespec(
            &sandbox,
            &tools,
            &["build", "no-registry.toml", "--output", &target],
        );
        run.what = format!("[huge-error --status 404] {}", run.what);
        let expect = Expect::code(1).saying(&["404", "not found"]);
        findings.check(&sandbox, &run, &before, &expect);
    }
    findings.assert_none();
}

/// A manifest served as `text/html` or as a layer (`Content-Type` and `mediaType`), and a
/// manifest of schema version 1 or 3.
#[test]
fn manifests_of_the_wrong_type_or_schema_are_refused() {
    let Some(tools) = tools() else { return };
    let mut sandbox = Sandbox::new();
    let mut findings = Findings::default();
    for media_type in ["text/html", "application/vnd.oci.image.layer.v1.tar"] {
        let scenario = Scenario::new(
            "wrong-media-type",
            &["--media-type", media_type],
            Level::Transport,
        )
        .saying(&[media_type]);
        let registry = run_scenario(&mut sandbox, &tools, &scenario, &mut findings);
        nothing_sent_elsewhere(&registry, "wrong-media-type", &mut findings);
    }
    for version in ["1", "3"] {
        let scenario = Scenario::new("bad-schema", &["--schema-version", version], Level::Content)
            .saying(&["schemaVersion", "schema version"]);
        let registry = run_scenario(&mut sandbox, &tools, &scenario, &mut findings);
        nothing_sent_elsewhere(&registry, "bad-schema", &mut findings);
    }
    findings.assert_none();
}

/// A layer, then a config, whose bytes are not what their digest names.
#[test]
fn blobs_that_do_not_match_their_digest_are_refused() {
    let Some(tools) = tools() else { return };
    let mut sandbox = Sandbox::new();
    let mut findings = Findings::default();
    for blob in ["layer", "config"] {
        let scenario =
            Scenario::new("mismatched-blob", &["--blob", blob], Level::Content).saying(&["digest"]);
        let registry = run_scenario(&mut sandbox, &tools, &scenario, &mut findings);
        nothing_sent_elsewhere(&registry, "mismatched-blob", &mut findings);
    }
    findings.assert_none();
}

/// A bearer realm on another port of the registry's host (`127.0.0.1:OTHER`), and under
/// another host name (`localhost:OTHER`). Docker (and containerd, and oci-client) send the
/// registry's credentials to the realm the registry names, whatever its host: Docker Hub's
/// realm is `auth.docker.io` for `registry-1.docker.io` (refusing a realm on another host
/// would make every authenticated Docker Hub pull anonymous), and the harness's own token
/// server listens on another port than its registry. That is safe: the registry could as
/// well ask for the password with a `Basic` challenge. So the realm gets the credentials
/// (HTTP basic) and nothing else gets them: the token goes to the registry only, and no
/// request but the token request reaches the realm. The base is valid: the build reads it
/// whole (and stops at its missing python3).
#[test]
fn a_token_realm_elsewhere_gets_the_credentials_as_docker_sends_them() {
    let Some(tools) = tools() else { return };
    let mut sandbox = Sandbox::new();
    let mut findings = Findings::default();
    for host in ["127.0.0.1", "localhost"] {
        let scenario = Scenario::new("token-elsewhere", &["--realm-host", host], Level::Content)
            .saying(&["python3", "python"]);
        let registry = run_scenario(&mut sandbox, &tools, &scenario, &mut findings);
        let realm = registry.other_requests();
        if realm.is_empty() {
            findings.note(format!(
                "[token-elsewhere {host}] the realm was never asked"
            ));
        }
        for request in &realm {
            let path = request["path"].as_str().unwrap_or_default();
            if !path.starts_with("/token") {
                findings.note(format!("[token-elsewhere {host}] the realm got {request}"));
            }
            if request["authorization"] != "Basic" {
                findings.note(format!(
                    "[token-elsewhere {host}] a token request without the registry's \
                     credentials (docker sends them): {request}"
                ));
            }
        }
        let bearer = registry
            .requests()
            .iter()
            .any(|r| r["listener"] == "registry" && r["authorization"] == "Bearer");
        if !bearer {
            findings.note(format!(
                "[token-elsewhere {host}] the registry never got the token"
            ));
        }
    }
    findings.assert_none();
}

/// Blob GETs redirected (307) to another port: the credentials (HTTP basic, which the
/// registry asks for) are not forwarded there. The base is valid: the build reads it whole
/// through the redirects (and stops at its missing python3).
#[test]
fn redirected_blobs_get_no_credentials() {
    let Some(tools) = tools() else { return };
    let mut sandbox = Sandbox::new();
    let mut findings = Findings::default();
    let scenario = Scenario::new("redirect", &[], Level::Content).saying(&["python3", "python"]);
    let registry = run_scenario(&mut sandbox, &tools, &scenario, &mut findings);
    let other = registry.other_requests();
    if tools.uv.is_some() && other.is_empty() {
        findings.note("[redirect] no blob was fetched through the redirect".into());
    }
    nothing_sent_elsewhere(&registry, "redirect", &mut findings);
    let basic = registry
        .requests()
        .iter()
        .any(|r| r["listener"] == "registry" && r["authorization"] == "Basic");
    if !basic {
        findings.note("[redirect] the registry never got the credentials".into());
    }
    findings.assert_none();
}

/// Every answer's headers trickle in, a byte a second (more often than the stall timeout):
/// the stall timeout ends each request, and the run says so.
#[test]
fn trickled_headers_end_at_the_stall_timeout() {
    let Some(tools) = tools() else { return };
    let mut sandbox = Sandbox::new();
    let mut findings = Findings::default();
    let scenario =
        Scenario::new("slow-headers", &["--trickle", TRICKLE], Level::Transport).saying(&["stall"]);
    let registry = run_scenario(&mut sandbox, &tools, &scenario, &mut findings);
    nothing_sent_elsewhere(&registry, "slow-headers", &mut findings);
    findings.assert_none();
}

/// A registry that answers the start of an upload with a `Location` naming nothing
/// (`::not a url`): the push of the dependency image (its base from the harness's registry,
/// so that uv makes it) fails, naming the upload, and nothing panics (oci-client's upload of
/// a blob held in memory unwrapped that URL: a panic, exit 101).
#[test]
fn an_upload_location_that_names_nothing_fails_the_push() {
    let Some(tools) = tools() else { return };
    if tools.uv.is_none() {
        return;
    }
    let Some(env) = common::e2e::services() else {
        return;
    };
    let sandbox = Sandbox::new();
    let mut findings = Findings::default();
    let registry = Registry::start(sandbox.dir(), "bad-upload-location", &[]);
    sandbox.serve(&registry);
    let spec = format!(
        "name = \"hostile\"\nbase_image = \"{}\"\npackages = [\"six\"]\n\
         source_root = \"src\"\nsource_copy_mode = \"all\"\nregistry = \"{}\"\n",
        env.base_python,
        registry.address()
    );
    std::fs::write(sandbox.dir().join("proj/upload.toml"), spec).expect("spec");
    let before = sandbox.paths_outside_the_roots();
    let mut run = imagespec(&sandbox, &tools, &["build", "upload.toml"]);
    run.what = format!("[bad-upload-location] {}", run.what);
    let expect = Expect::code(1)
        .saying(&["upload", "location"])
        .within_mb(300);
    findings.check(&sandbox, &run, &before, &expect);
    let started = registry
        .requests()
        .iter()
        .any(|r| r["action"] == "bad-location");
    if !started {
        findings.note("[bad-upload-location] no upload was started".into());
    }
    findings.assert_none();
}
