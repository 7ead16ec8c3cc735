//! Faults between imagespec and its registry or daemon (issue 10: a green run means the
//! image is there). A proxy of the test's own (`scripts/e2e/fault_proxy.py`) in front of the
//! harness's plain registry stalls or fails chosen requests; a fake dockerd served by the
//! test answers `/_ping` and then stalls. Each test checks the exit code (0 done, 1 failed,
//! 2 bad input, 3 cannot tell), that the failure comes within the bound the stall timeout
//! sets, that the error names what stalled, and — with skopeo against the registry itself,
//! not through the proxy — that no tag was published.
//!
//! Tests that need the harness's services (tests/common/e2e.rs: the plain registry and
//! dockerd) fail under `CI` and are skipped elsewhere when they are missing; the fake daemon
//! and the registry that is down need nothing.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::e2e::{NO_DAEMON, Services, free_port, imagespec_in, in_registry, run_id, services};

/// The stall timeout the tests give imagespec, in seconds.
const STALL: u64 = 3;

/// How long a registry request that stalls every time may take to fail: 4 attempts (the
/// first and 3 retries) of STALL each, the pauses between them (0.3 + 0.6 + 1.2 s), and
/// slack for the rest of the run (a loaded machine).
fn stalled_request_bound() -> Duration {
    Duration::from_secs(4 * STALL + 3 + 20)
}

/// What one imagespec run did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    /// The `error:` line(s) on stderr.
    fn errors(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error:") || l.contains("caused by"))
            .collect()
    }
}

/// `imagespec ARGS` in `dir` with the tests' stall timeout, no digest cache, and none of
/// flytekit's variables from the caller's environment.
fn imagespec(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = imagespec_in(dir);
    cmd.env("IMAGESPEC_STALL_TIMEOUT", STALL.to_string())
        .env_remove("FLYTE_IMG_FAST_FAIL")
        .env_remove("FLYTE_FORCE_PUSH_IMAGE_SPEC")
        .env_remove("FLYTE_PUSH_IMAGE_SPEC")
        // A regression that hangs fails the test instead of hanging it.
        .timeout(Duration::from_secs(300))
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd.output().expect("run imagespec");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// The image `imagespec tag` names for the spec in `dir`.
fn image_of(dir: &Path) -> String {
    let run = imagespec(dir, &["tag", "spec.toml"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    run.stdout.trim().to_string()
}

/// A fault-injecting proxy in front of a registry (`scripts/e2e/fault_proxy.py`), on a free
/// port of 127.0.0.1; stopped by PID when dropped.
struct FaultProxy {
    child: std::process::Child,
    port: u16,
    log: PathBuf,
}

impl FaultProxy {
    /// Starts the proxy with `faults` (`METHODS:PATH_REGEX:ACTION[:COUNT]`).
    fn start(dir: &Path, upstream: &str, faults: &[&str]) -> FaultProxy {
        let state = tempfile::Builder::new()
            .prefix("proxy-")
            .tempdir_in(dir)
            .expect("proxy dir")
            .keep();
        let (port_file, log) = (state.join("port"), state.join("requests.log"));
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/e2e/fault_proxy.py");
        let mut cmd = Process::new("python3");
        cmd.arg(script)
            .args(["--upstream", upstream])
            .arg("--port-file")
            .arg(&port_file)
            .arg("--log")
            .arg(&log)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for fault in faults {
            cmd.args(["--fault", fault]);
        }
        let child = cmd.spawn().expect("python3 fault_proxy.py");
        let mut proxy = FaultProxy {
            child,
            port: 0,
            log,
        };
        for _ in 0..200 {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
            {
                proxy.port = port;
                return proxy;
            }
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("fault_proxy.py exited at start: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("fault_proxy.py did not start within 10 s");
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `METHOD PATH -> ACTION` for every request the proxy saw.
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the fake dockerd does after answering `/_ping` and `/version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DaemonStall {
    /// Never answers the build's `POST /session` and `POST /grpc`.
    Grpc,
    /// Answers them `101 Switching Protocols`, then says nothing.
    AfterUpgrade,
    /// Answers only `/_ping`: everything else stalls.
    AllButPing,
}

/// A dockerd on a unix socket that answers `/_ping` (and, unless `AllButPing`, `/version`
/// and "no such image") and stalls where told. Stops, closing every connection, when
/// dropped.
struct FakeDaemon {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    server: Option<std::thread::JoinHandle<()>>,
}

impl FakeDaemon {
    fn start(dir: &Path, stall: DaemonStall) -> FakeDaemon {
        let socket = dir.join("fake-docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind the socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let server = std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let stopped = stopped.clone();
                        std::thread::spawn(move || serve(stream, stall, &stopped));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        FakeDaemon {
            socket,
            stop,
            server: Some(server),
        }
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// One connection of the fake dockerd: requests answered in turn until one stalls.
fn serve(stream: std::os::unix::net::UnixStream, stall: DaemonStall, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut writer = stream.try_clone().expect("clone the stream");
    let mut reader = BufReader::new(stream);
    let hold = |reader: &mut BufReader<std::os::unix::net::UnixStream>| {
        // Keep the connection open, reading and dropping whatever comes, until stopped.
        let mut sink = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            sink.clear();
            let _ = reader.read_until(b'\n', &mut sink);
        }
    };
    loop {
        // The request head: the request line, then headers up to an empty line.
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) if line == "\r\n" && !head.is_empty() => break,
                Ok(_) => head.push(line),
                Err(_) if stop.load(Ordering::SeqCst) => return,
                Err(_) => {}
            }
        }
        let request = head[0].clone();
        let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
        let path = path.split('?').next().unwrap_or("").to_string();
        let answer = |status: &str, content_type: &str, body: &str| {
            format!(
                "HTTP/1.1 {status}\r\nApi-Version: 1.41\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        let response = if path.ends_with("/_ping") {
            answer("200 OK", "text/plain", "OK")
        } else if stall == DaemonStall::AllButPing {
            return hold(&mut reader);
        } else if path.ends_with("/version") {
            answer(
                "200 OK",
                "application/json",
                r#"{"ApiVersion":"1.41","MinAPIVersion":"1.12","Version":"20.10.99","Os":"linux","Arch":"amd64"}"#,
            )
        } else if path.contains("/images/") && path.ends_with("/json") {
            answer(
                "404 Not Found",
                "application/json",
                r#"{"message":"No such image"}"#,
            )
        } else if path.ends_with("/grpc") || path.ends_with("/session") {
            if stall == DaemonStall::AfterUpgrade {
                let upgrade = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
                let _ = writer.write_all(upgrade.as_bytes());
            }
            return hold(&mut reader);
        } else {
            answer(
                "404 Not Found",
                "application/json",
                r#"{"message":"not in the fake daemon"}"#,
            )
        };
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// A project for the registry fast path (no `commands`, source files): once its dependency
/// image is in the registry, a build only uploads a layer, a config and a manifest, all
/// through the registry client (no daemon).
fn fast_path_project(dir: &Path, s: &Services, registry: &str) -> PathBuf {
    let proj = dir.join("proj");
    std::fs::create_dir_all(proj.join("src")).expect("mkdir");
    std::fs::write(proj.join("src/app.py"), format!("RUN = {:?}\n", run_id())).expect("source");
    set_registry(&proj, s, registry);
    proj
}

/// Writes the project's spec with `registry` (the dependency image's tag does not depend on
/// the registry's address: the one pushed to the registry itself is found through a proxy).
fn set_registry(proj: &Path, s: &Services, registry: &str) {
    let spec = format!(
        r#"name = "h-faults-fast"
registry = "{registry}"
base_image = "{base}"
env = {{ APP = "faults" }}
source_root = "src"
source_copy_mode = "all"
builder_config = {{ uv_image = "{uv}" }}
builder_options = {{ add_flytekit = false }}
"#,
        base = s.base_python,
        uv = s.uv_image,
    );
    std::fs::write(proj.join("spec.toml"), spec).expect("spec");
}

/// The fast-path project with its dependency image pushed to the registry itself (built by
/// dockerd once; later runs find it), then pointed at `registry` with new source.
fn fast_path_project_through(dir: &Path, s: &Services, registry: &str) -> PathBuf {
    let proj = fast_path_project(dir, s, &s.registry_address);
    let first = imagespec(&proj, &["build", "spec.toml"], &[]);
    assert_eq!(
        first.code,
        Some(0),
        "the dependency image must build:\n{}",
        first.stderr
    );
    set_registry(&proj, s, registry);
    std::fs::write(proj.join("src/app.py"), format!("RUN = {:?}\n", run_id())).expect("source");
    proj
}

/// `image` named through the proxy, named at the registry itself (one storage behind both).
fn at_registry(image: &str, proxy: &FaultProxy, s: &Services) -> String {
    image.replacen(&proxy.address(), &s.registry_address, 1)
}

/// A HEAD (and GET) of the manifest that never answers: `exists` and `build` cannot tell,
/// exit 3 within the bound, naming the request, the host and the stall.
#[test]
fn stalled_manifest_check_cannot_tell_within_the_bound() {
    let Some(s) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = FaultProxy::start(
        dir.path(),
        &s.registry_address,
        &["HEAD:/manifests/:stall", "GET:/manifests/:stall"],
    );
    let spec = format!(
        "name = \"h-faults-head\"\nregistry = \"{}\"\nenv = {{ RUN = \"{}\" }}\n",
        proxy.address(),
        run_id()
    );
    std::fs::write(dir.path().join("spec.toml"), spec).expect("spec");
    let image = image_of(dir.path());
    let no_daemon = [("DOCKER_HOST", NO_DAEMON)];
    for command in ["exists", "build"] {
        let run = imagespec(dir.path(), &[command, "spec.toml"], &no_daemon);
        assert_eq!(run.code, Some(3), "{command}: {}", run.stderr);
        let errors = run.errors();
        assert_eq!(errors.len(), 1, "{command}: one error line: {}", run.stderr);
        for needle in [
            "cannot tell whether",
            "HEAD of the manifest",
            "no progress for 3 s",
            &proxy.address(),
            "4 attempts",
        ] {
            assert!(
                errors[0].contains(needle),
                "{command}: {needle}: {errors:?}"
            );
        }
        assert!(
            run.took < stalled_request_bound(),
            "{command} took {:?}",
            run.took
        );
        assert!(
            run.stdout.is_empty(),
            "{command}: no image named: {}",
            run.stdout
        );
    }
    let heads = proxy
        .requests()
        .iter()
        .filter(|r| r.starts_with("HEAD "))
        .count();
    assert_eq!(heads, 8, "4 attempts each: {:?}", proxy.requests());
    assert!(!in_registry(&at_registry(&image, &proxy, &s)));
}

/// A registry that takes the source layer's PUT and never answers: the build fails within
/// the bound, says which upload stalled where, and publishes no tag.
#[test]
fn stalled_blob_upload_fails_within_the_bound_and_publishes_no_tag() {
    let Some(s) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = FaultProxy::start(
        dir.path(),
        &s.registry_address,
        &["PUT:/blobs/uploads/:stall"],
    );
    let proj = fast_path_project_through(dir.path(), &s, &proxy.address());
    let image = image_of(&proj);
    let run = imagespec(
        &proj,
        &["build", "spec.toml"],
        &[("DOCKER_HOST", NO_DAEMON)],
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "one error line: {}", run.stderr);
    for needle in [
        "uploading blob sha256:",
        "no progress for 3 s",
        &proxy.address(),
        "stalled",
    ] {
        assert!(errors[0].contains(needle), "{needle}: {errors:?}");
    }
    assert!(run.took < stalled_request_bound(), "took {:?}", run.took);
    assert!(run.stdout.is_empty(), "no image named: {}", run.stdout);
    assert!(
        !in_registry(&at_registry(&image, &proxy, &s)),
        "{image} must not exist"
    );
}

/// The manifest PUT (the last step, which publishes the tag) stalls: the build fails within
/// the bound, naming it, and the tag does not exist.
#[test]
fn stalled_manifest_push_fails_within_the_bound_and_publishes_no_tag() {
    let Some(s) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = FaultProxy::start(dir.path(), &s.registry_address, &["PUT:/manifests/:stall"]);
    let proj = fast_path_project_through(dir.path(), &s, &proxy.address());
    let image = image_of(&proj);
    let run = imagespec(&proj, &["build", "spec.toml"], &[]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "one error line: {}", run.stderr);
    for needle in [
        "pushing the manifest",
        "no progress for 3 s",
        &proxy.address(),
    ] {
        assert!(errors[0].contains(needle), "{needle}: {errors:?}");
    }
    assert!(run.took < stalled_request_bound(), "took {:?}", run.took);
    assert!(
        !in_registry(&at_registry(&image, &proxy, &s)),
        "{image} must not exist"
    );
}

/// A stall is silence, not slowness: an upload that takes longer than the stall timeout in
/// total but keeps moving completes, and its image is in the registry.
#[test]
fn a_slow_upload_that_keeps_moving_is_not_a_stall() {
    let Some(s) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = FaultProxy::start(
        dir.path(),
        &s.registry_address,
        &["PUT:/blobs/uploads/:slow"],
    );
    let proj = fast_path_project_through(dir.path(), &s, &proxy.address());
    // 20 MiB that gzip cannot shrink: 5 s or more at the proxy's 4 MiB/s, longer than the
    // stall timeout; what the kernel buffers (a few MiB) drains within it.
    let noise: Vec<u8> = (0..20u32 << 15)
        .flat_map(|i| {
            use sha2::Digest as _;
            sha2::Sha256::digest(i.to_le_bytes())
        })
        .collect();
    std::fs::write(proj.join("src/noise.bin"), noise).expect("noise");
    let image = image_of(&proj);
    let run = imagespec(&proj, &["build", "spec.toml"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout.trim(), image);
    assert!(
        proxy.requests().iter().any(|r| r.ends_with("-> slow")),
        "{:?}",
        proxy.requests()
    );
    assert!(
        run.took > Duration::from_secs(STALL + 1),
        "the upload must take longer than the stall timeout to prove anything: {:?}",
        run.took
    );
    assert!(in_registry(&at_registry(&image, &proxy, &s)), "{image}");
}

/// A registry that resets the connection in the middle of a layer's upload (as a killed
/// registry does): the build fails with exit 1 and says which upload failed — the write to
/// the dead socket is an error, not a signal that kills imagespec without a word.
#[test]
fn a_connection_reset_mid_upload_is_an_error_not_a_silent_death() {
    let Some(s) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = FaultProxy::start(
        dir.path(),
        &s.registry_address,
        &["PUT:/blobs/uploads/:close"],
    );
    let proj = fast_path_project_through(dir.path(), &s, &proxy.address());
    // Far more than the socket buffers hold: imagespec is still writing when the reset comes.
    let noise: Vec<u8> = (0..20u32 << 15)
        .flat_map(|i| {
            use sha2::Digest as _;
            sha2::Sha256::digest(i.to_be_bytes())
        })
        .collect();
    std::fs::write(proj.join("src/noise.bin"), noise).expect("noise");
    let image = image_of(&proj);
    let run = imagespec(&proj, &["build", "spec.toml"], &[]);
    assert_eq!(run.code, Some(1), "exit 1, not a signal: {}", run.stderr);
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "one error line: {}", run.stderr);
    assert!(
        errors[0].contains("uploading blob sha256:") && errors[0].contains("4 attempts"),
        "{errors:?}"
    );
    assert!(
        !in_registry(&at_registry(&image, &proxy, &s)),
        "{image} must not exist"
    );
}

/// A layer download that stops halfway (`--output` reads the dependency image's layers from
/// the registry): the build fails within the bound, naming the blob and the stall.
#[test]
fn stalled_blob_download_fails_within_the_bound() {
    let Some(s) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = FaultProxy::start(
        dir.path(),
        &s.registry_address,
        &["GET:/blobs/sha256:[0-9a-f]+$:stall-body"],
    );
    let proj = fast_path_project_through(dir.path(), &s, &proxy.address());
    let out = dir.path().join("layout");
    let target = format!("oci:{}", out.display());
    let run = imagespec(&proj, &["build", "spec.toml", "--output", &target], &[]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "one error line: {}", run.stderr);
    for needle in [
        "reading blob sha256:",
        "no progress for 3 s",
        &proxy.address(),
    ] {
        assert!(errors[0].contains(needle), "{needle}: {errors:?}");
    }
    assert!(run.took < stalled_request_bound(), "took {:?}", run.took);
}

/// One 503 on the manifest check (the HEAD, and the GET oci-client falls back to) is retried:
/// `exists` answers, and a build succeeds with its image in the registry.
#[test]
fn one_503_on_the_manifest_check_is_retried() {
    let Some(s) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let once = ["HEAD:/manifests/:503:1", "GET:/manifests/:503:1"];

    // `exists` of an image the harness pushed (the base image, named by a noop-like spec).
    let proxy = FaultProxy::start(dir.path(), &s.registry_address, &once);
    let (repo, tag) = s.base_python.rsplit_once(':').expect("tagged base");
    let name = repo.split_once('/').expect("registry/name").1;
    let probe = format!(
        "name = \"{name}\"\nregistry = \"{}\"\ntag_format = \"{tag}\"\n",
        proxy.address()
    );
    std::fs::write(dir.path().join("spec.toml"), probe).expect("spec");
    let run = imagespec(dir.path(), &["exists", "spec.toml"], &[]);
    assert_eq!(run.code, Some(0), "{}\n{:?}", run.stderr, proxy.requests());
    let requests = proxy.requests();
    assert!(
        requests.iter().any(|r| r.ends_with("-> 503"))
            && requests.last().is_some_and(|r| r.ends_with("-> pass")),
        "a 503, then an answer: {requests:?}"
    );
    drop(proxy);

    // A build through a registry that fails its first manifest requests.
    let build_dir = dir.path().join("build");
    std::fs::create_dir_all(&build_dir).expect("mkdir");
    let proxy = FaultProxy::start(dir.path(), &s.registry_address, &once);
    let proj = fast_path_project_through(&build_dir, &s, &proxy.address());
    let image = image_of(&proj);
    let run = imagespec(&proj, &["build", "--json", "spec.toml"], &[]);
    assert_eq!(run.code, Some(0), "{}\n{:?}", run.stderr, proxy.requests());
    let result: Value = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .rfind(|e| e["event"] == "result")
        .expect("a result event");
    assert_eq!(result["action"], "appended", "{}", run.stdout);
    assert!(
        proxy.requests().iter().any(|r| r.ends_with("-> 503")),
        "{:?}",
        proxy.requests()
    );
    assert!(in_registry(&at_registry(&image, &proxy, &s)), "{image}");
}

/// A registry nobody listens on: `exists` and `build` cannot tell (exit 3), saying so in one
/// line; no service needed.
#[test]
fn registry_down_cannot_tell() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        dir.path().join("spec.toml"),
        format!("name = \"h-faults-down\"\nregistry = \"{registry}\"\n"),
    )
    .expect("spec");
    let no_daemon = [("DOCKER_HOST", NO_DAEMON)];
    for command in ["exists", "build"] {
        let run = imagespec(dir.path(), &[command, "spec.toml"], &no_daemon);
        assert_eq!(run.code, Some(3), "{command}: {}", run.stderr);
        let errors = run.errors();
        assert_eq!(errors.len(), 1, "{command}: one line: {}", run.stderr);
        assert!(
            errors[0].contains("cannot tell whether")
                && errors[0].contains(&format!("cannot connect to {registry}")),
            "{command}: {errors:?}"
        );
        assert!(run.stdout.is_empty(), "{command}: {}", run.stdout);
    }
    let run = imagespec(dir.path(), &["build", "--json", "spec.toml"], &no_daemon);
    let error: Value = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "error")
        .expect("an error event");
    assert_eq!(error["exit_code"], 3, "{}", run.stdout);
}

/// Wrong or missing credentials for the basic-auth registry: `build` and `exists` cannot
/// tell (exit 3), in one line that says what to do and holds no password.
#[test]
fn refused_credentials_cannot_tell_in_one_line_without_the_password() {
    let Some(s) = services() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let registry = &s.file.need("IMAGESPEC_E2E_AUTH_REGISTRY");
    let password = s.file.need("IMAGESPEC_E2E_AUTH_PASSWORD");
    std::fs::write(
        d.join("spec.toml"),
        format!(
            "name = \"h-faults-auth\"\nregistry = \"{registry}\"\nenv = {{ RUN = \"{}\" }}\n",
            run_id()
        ),
    )
    .expect("spec");
    let wrong = d.join("wrong");
    std::fs::create_dir_all(&wrong).expect("mkdir");
    let bad_auth = "aW1hZ2VzcGVjOndyb25nLXBhc3N3b3Jk"; // imagespec:wrong-password
    std::fs::write(
        wrong.join("config.json"),
        format!(r#"{{"auths": {{"{registry}": {{"auth": "{bad_auth}"}}}}}}"#),
    )
    .expect("config");
    let none = d.join("none");
    std::fs::create_dir_all(&none).expect("mkdir");
    for (label, config, says) in [
        (
            "wrong credentials",
            &wrong,
            format!("authentication failed for imagespec at {registry}"),
        ),
        (
            "no credentials",
            &none,
            format!("no credentials found for {registry} in"),
        ),
    ] {
        for command in ["build", "exists"] {
            let run = imagespec(
                d,
                &[command, "spec.toml"],
                &[
                    ("DOCKER_CONFIG", config.to_str().unwrap()),
                    ("DOCKER_HOST", NO_DAEMON),
                ],
            );
            assert_eq!(run.code, Some(3), "{label}, {command}: {}", run.stderr);
            let errors = run.errors();
            assert_eq!(errors.len(), 1, "{label}, {command}: {}", run.stderr);
            assert!(
                errors[0].contains("cannot tell whether")
                    && errors[0].contains(&says)
                    && errors[0].contains(&format!("docker login {registry}")),
                "{label}, {command}: {errors:?}"
            );
            let all = format!("{}{}", run.stdout, run.stderr);
            assert!(
                !all.contains("wrong-password")
                    && !all.contains(bad_auth)
                    && !all.contains(&password),
                "{label}, {command} leaks: {all}"
            );
        }
    }
}

/// A dockerd that answers `/_ping` and then stalls (on the build's `/grpc`, after the
/// upgrade, or on everything): the build fails within the stall timeout's bound, naming the
/// daemon, and never hangs. No service needed: the daemon is the test's.
#[test]
fn a_daemon_that_answers_ping_then_stalls_fails_naming_it() {
    for (stall, code, needle) in [
        (DaemonStall::Grpc, 1, "stalled"),
        (DaemonStall::AfterUpgrade, 1, "stalled"),
        // The image's existence is asked of the daemon (no registry): cannot tell.
        (DaemonStall::AllButPing, 3, "no answer to GET /version"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let daemon = FakeDaemon::start(dir.path(), stall);
        std::fs::write(
            dir.path().join("spec.toml"),
            format!(
                "name = \"h-faults-daemon\"\nenv = {{ RUN = \"{}\" }}\n",
                run_id()
            ),
        )
        .expect("spec");
        let run = imagespec(
            dir.path(),
            &["build", "spec.toml"],
            &[("DOCKER_HOST", &daemon.docker_host())],
        );
        assert_eq!(run.code, Some(code), "{stall:?}: {}", run.stderr);
        let errors = run.errors();
        assert_eq!(errors.len(), 1, "{stall:?}: one line: {}", run.stderr);
        assert!(
            errors[0].contains(&format!("dockerd at {}", daemon.docker_host()))
                && errors[0].contains(needle)
                && errors[0].contains("3 s"),
            "{stall:?}: {errors:?}"
        );
        assert!(
            run.took < Duration::from_secs(3 * STALL + 10),
            "{stall:?} took {:?}",
            run.took
        );
        drop(daemon);
    }
}
