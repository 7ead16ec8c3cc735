//! The end-to-end harness shared by tests/e2e*.rs and tests/flytekit_plugin.rs: where the
//! services `scripts/e2e/up.sh` starts are (its `e2e.env`), what happens when they are
//! missing (the test fails under `CI`, and says why and passes elsewhere), and the outside
//! checks every e2e test makes — skopeo, umoci, `docker run`, curl against the registry API —
//! so that no test asks imagespec itself whether it worked.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};

/// Debian's docker CLI (20.10): the `docker` first on PATH may be another.
pub const DOCKER: &str = "/usr/bin/docker";

/// A daemon address nothing answers on: what the registry paths must not need.
pub const NO_DAEMON: &str = "unix:///nonexistent/docker.sock";

/// `scripts/e2e/up.sh`'s `KEY=VALUE` file (`IMAGESPEC_E2E_ENV` names another one); a variable
/// of the environment wins over the file's line.
pub struct EnvFile {
    /// Where the file is (read or not), for messages.
    pub path: String,
    text: String,
}

impl EnvFile {
    pub fn load() -> EnvFile {
        let path = std::env::var("IMAGESPEC_E2E_ENV")
            .unwrap_or_else(|_| "/tmp/imagespec-e2e/e2e.env".into());
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        EnvFile { path, text }
    }

    pub fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().or_else(|| {
            self.text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
        })
    }

    /// A value the running services must have written.
    #[track_caller]
    pub fn need(&self, key: &str) -> String {
        match self.get(key) {
            Some(value) => value,
            None => panic!("{key} missing from {}", self.path),
        }
    }

    /// The base image with Python that `scripts/e2e/base-images.sh` pushed.
    pub fn base_python(&self) -> String {
        self.get("IMAGESPEC_E2E_BASE_PYTHON")
            .unwrap_or_else(|| "localhost:5000/debian-python:bookworm".into())
    }

    /// The uv image builds copy uv from (`builder_config.uv_image`).
    pub fn uv_image(&self) -> String {
        self.get("IMAGESPEC_E2E_UV_IMAGE")
            .unwrap_or_else(|| "localhost:5000/uv:0.5".into())
    }

    /// The cache `scripts/e2e/` installs tools in (uv, envd).
    pub fn cache(&self) -> String {
        self.get("IMAGESPEC_E2E_CACHE")
            .unwrap_or_else(|| "/var/cache/imagespec-e2e".into())
    }

    /// The two-platform base (an index of linux/amd64 and a debootstrapped linux/arm64).
    pub fn base_python_multi(&self) -> String {
        self.get("IMAGESPEC_E2E_BASE_PYTHON_MULTI")
            .unwrap_or_else(|| "localhost:5000/debian-python-multi:bookworm".into())
    }

    /// uv on the host for the daemonless builder: `IMAGESPEC_UV`, else where
    /// `scripts/e2e/uv.sh` installs it; `None` (and a note, or a failure under `CI`) when
    /// it is not there.
    #[track_caller]
    pub fn uv(&self) -> Option<PathBuf> {
        let uv = std::env::var_os("IMAGESPEC_UV")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(self.cache()).join("uv-0.5.1/bin/uv"));
        if uv.is_file() {
            Some(uv)
        } else {
            missing(&format!(
                "no uv at {}: scripts/e2e/uv.sh installs it (scripts/test.sh runs it)",
                uv.display()
            ))
        }
    }
}

/// What a test does when something it needs is missing: under `CI` it fails saying `why`;
/// elsewhere it notes `why` and is skipped (`None`). A failure names the test's line.
#[track_caller]
pub fn missing<T>(why: &str) -> Option<T> {
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipped: {why}");
    None
}

/// Whether dockerd answers the docker CLI.
pub fn docker_up() -> bool {
    Process::new(DOCKER)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether a plain-HTTP registry at `address` answers `/v2/` with a success.
pub fn registry_up(address: &str) -> bool {
    Process::new("curl")
        .args(["-sf", &format!("http://{address}/v2/")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// dockerd and the plain registry with the base images of `scripts/e2e/base-images.sh`.
pub struct Services {
    /// The plain registry as specs name it: `localhost:5000` (dockerd pushes to it over HTTP
    /// without being told).
    pub registry: String,
    /// The same registry as `e2e.env` names it (`127.0.0.1:5000`).
    pub registry_address: String,
    pub base_python: String,
    pub uv_image: String,
    pub ca_bundle: String,
    /// The rest of `e2e.env`.
    pub file: EnvFile,
}

impl Services {
    /// What `file` names (its defaults where it names nothing), without asking whether
    /// anything runs: for the tests that only read a spec, and for [`services`].
    pub fn named(file: EnvFile) -> Services {
        Services {
            registry: "localhost:5000".into(),
            registry_address: file
                .get("IMAGESPEC_E2E_REGISTRY")
                .unwrap_or_else(|| "127.0.0.1:5000".into()),
            base_python: file.base_python(),
            uv_image: file.uv_image(),
            ca_bundle: file
                .get("IMAGESPEC_E2E_CA_BUNDLE")
                .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into()),
            file,
        }
    }
}

/// The harness's services, or `None` (and a note) when they are not running outside CI.
#[track_caller]
pub fn services() -> Option<Services> {
    let file = EnvFile::load();
    let address = file.get("IMAGESPEC_E2E_REGISTRY");
    let up = address.as_deref().is_some_and(registry_up) && docker_up();
    if !up {
        return missing(&format!(
            "e2e services are not running ({}): scripts/test.sh starts them \
             (scripts/e2e/up.sh && scripts/e2e/base-images.sh)",
            file.path
        ));
    }
    Some(Services::named(file))
}

/// Writes `proj/spec.toml` for the uv image builds: `name`, the registry, base image and uv
/// image of `env`, no flytekit added, and `lines` (top-level keys).
pub fn write_spec(proj: &Path, env: &Services, name: &str, lines: &str) {
    let spec = format!(
        "name = \"{name}\"\nregistry = \"{}\"\nbase_image = \"{}\"\n{lines}\n\
         builder_config = {{ uv_image = \"{}\" }}\nbuilder_options = {{ add_flytekit = false }}\n",
        env.registry, env.base_python, env.uv_image,
    );
    std::fs::write(proj.join("spec.toml"), spec).expect("spec");
}

/// Runs `script` with `shell` (`sh`, `bash`) in `platform`'s image of `image` (pulled again:
/// the daemon may hold another platform's under that name); stdout.
pub fn run_on(platform: &str, image: &str, shell: &str, script: &str) -> String {
    output(Process::new(DOCKER).args([
        "run",
        "--rm",
        "--pull",
        "always",
        "--platform",
        platform,
        "--entrypoint",
        shell,
        image,
        "-c",
        script,
    ]))
}

/// A value unique to this run: fresh repositories and keys, so the first build of each test
/// really builds.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// A port of 127.0.0.1 nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("address")
        .port()
}

/// Runs `script` with `bash -eu` in `dir`; it must succeed.
#[track_caller]
pub fn sh(dir: &Path, script: &str) {
    let status = Process::new("bash")
        .args(["-euc", script])
        .current_dir(dir)
        .status()
        .expect("bash");
    assert!(status.success(), "{script}");
}

/// Runs `cmd`, which must succeed; its stdout. A failure names the test's line.
#[track_caller]
pub fn output(cmd: &mut Process) -> String {
    String::from_utf8_lossy(&output_bytes(cmd)).into_owned()
}

/// [`output`] as bytes (an archive, say).
#[track_caller]
pub fn output_bytes(cmd: &mut Process) -> Vec<u8> {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A child process killed (by its PID) when the test ends early, by a failed assertion too.
pub struct Running(Option<Child>);

impl Running {
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }

    /// Waits for the end; stdout and stderr.
    pub fn wait(mut self) -> std::process::Output {
        self.0
            .take()
            .expect("running")
            .wait_with_output()
            .expect("wait")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `cmd` with stdout and stderr captured.
pub fn spawn(cmd: &mut Process) -> Running {
    Running(Some(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    ))
}

/// The imagespec binary in `dir`, with no digest cache.
pub fn imagespec_in(dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("imagespec").expect("binary");
    cmd.current_dir(dir).env("IMAGESPEC_NO_CACHE", "1");
    cmd
}

/// What one `imagespec … --json` run gave.
pub struct JsonRun {
    pub code: Option<i32>,
    /// Every JSON line of stdout: events (the result last) or plans.
    pub events: Vec<Value>,
    /// Everything printed: stdout, then stderr.
    pub text: String,
}

impl JsonRun {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The `result` event.
    pub fn result(&self) -> &Value {
        self.events
            .iter()
            .rev()
            .find(|e| e["event"] == "result")
            .unwrap_or_else(|| panic!("no result event:\n{}", self.text))
    }

    /// The `step` events.
    pub fn steps(&self) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["event"] == "step")
            .collect()
    }

    /// (success, events, everything printed).
    pub fn into_parts(self) -> (bool, Vec<Value>, String) {
        (self.ok(), self.events, self.text)
    }
}

/// Runs an `imagespec … --json` command.
pub fn run_json(cmd: &mut assert_cmd::Command) -> JsonRun {
    let out = cmd.output().expect("run imagespec");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    JsonRun {
        code: out.status.code(),
        events: stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        text: stdout + &String::from_utf8_lossy(&out.stderr),
    }
}

/// The `result` event among `events`.
pub fn result(events: &[Value]) -> &Value {
    events
        .iter()
        .rev()
        .find(|e| e["event"] == "result")
        .expect("a result event")
}

/// `imagespec inspect SPEC --json` in `dir`: what the spec's image is (name, tag, id).
pub fn inspect_json(dir: &Path, spec: &str) -> Value {
    let out = imagespec_in(dir)
        .args(["inspect", spec, "--json"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// `skopeo inspect ARGS docker://IMAGE` against the plain registries: the JSON it prints.
pub fn skopeo_inspect(args: &[&str], image: &str) -> Value {
    let mut cmd = Process::new("skopeo");
    cmd.arg("inspect")
        .args(args)
        .args(["--tls-verify=false", &format!("docker://{image}")]);
    serde_json::from_str(&output(&mut cmd)).expect("skopeo json")
}

/// Whether the registry has `image`, asked with skopeo.
pub fn in_registry(image: &str) -> bool {
    Process::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ])
        .output()
        .expect("skopeo")
        .status
        .success()
}

/// The manifest digest the registry has for `image`, which must be there.
pub fn registry_digest(image: &str) -> String {
    skopeo_inspect(&[], image)["Digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no digest for {image}"))
        .to_string()
}

/// `docker pull` + the image's file tree as a container sees it (path, owner, group, mode,
/// type, size, link target; no times), sorted, and the config that matters at run time.
pub fn image_snapshot(image: &str) -> (Vec<String>, Value) {
    output(Process::new(DOCKER).args(["pull", "-q", image]));
    let listing = output(Process::new(DOCKER).args([
        "run",
        "--rm",
        "--user",
        "0",
        "--entrypoint",
        "find",
        image,
        "/",
        "-xdev",
        "(",
        "-path",
        "/proc",
        "-o",
        "-path",
        "/sys",
        "-o",
        "-path",
        "/dev",
        ")",
        "-prune",
        "-o",
        "-printf",
        "%p\t%U\t%G\t%m\t%y\t%s\t%l\n",
    ]));
    let mut files: Vec<String> = listing.lines().map(str::to_string).collect();
    files.sort();
    let c = image_config(image);
    let config = serde_json::json!({
        "Env": c["Env"],
        "User": c["User"],
        "WorkingDir": c["WorkingDir"],
        "Entrypoint": c["Entrypoint"],
        "Cmd": c["Cmd"],
        "Shell": c["Shell"],
    });
    (files, config)
}

/// How two [`image_snapshot`] file trees differ: (the lines only in `a`, those only in `b`),
/// leaving out the lines `accepted` names as a known difference.
pub fn tree_difference(
    a: &[String],
    b: &[String],
    accepted: impl Fn(&str) -> bool,
) -> (Vec<String>, Vec<String>) {
    let only = |x: &[String], y: &[String]| {
        x.iter()
            .filter(|l| !y.contains(l) && !accepted(l))
            .cloned()
            .collect::<Vec<_>>()
    };
    (only(a, b), only(b, a))
}

/// The config dockerd has for `image` (`docker image inspect`'s `Config`).
pub fn image_config(image: &str) -> Value {
    let inspect: Value = serde_json::from_str(&output(
        Process::new(DOCKER).args(["image", "inspect", image]),
    ))
    .expect("json");
    inspect[0]["Config"].clone()
}

/// The `Env` of an image config (`config` of `skopeo inspect --config`, or what `skopeo
/// inspect` prints).
pub fn env_list(config: &Value) -> Vec<&str> {
    config["Env"]
        .as_array()
        .unwrap_or_else(|| panic!("no Env in {config}"))
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

/// The files of a `find . -type f` listing (`./DIR/FILE` lines) that are not in the base
/// image's listing, without the `./`: what a build added.
pub fn files_beyond(listing: &str, base_listing: &str) -> BTreeSet<String> {
    let base: BTreeSet<&str> = base_listing.lines().collect();
    listing
        .lines()
        .filter(|l| !base.contains(l))
        .map(|l| l.trim_start_matches("./").to_string())
        .collect()
}

/// The source files `imagespec inspect --json` says the image holds (`source.files`).
pub fn source_files(inspected: &Value) -> BTreeSet<String> {
    inspected["source"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect()
}

/// `index.json` of an OCI layout.
pub fn layout_index(layout: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(layout.join("index.json")).expect("index.json"))
        .expect("json")
}

/// The ref name of one entry of an OCI layout's index.
pub fn ref_name(entry: &Value) -> &str {
    entry["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .expect("ref name")
}

/// `umoci unpack` (which checks every blob's digest) of `image` (`LAYOUT:REF`) into
/// `bundle`; the root file system.
pub fn umoci_unpack(image: &str, bundle: &Path) -> PathBuf {
    output(Process::new("umoci").args([
        "unpack",
        "--image",
        image,
        bundle.to_str().expect("utf-8 path"),
    ]));
    bundle.join("rootfs")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Registry API by hand (curl), as an outside party (buildx) would push: a monolithic blob
/// upload; the blob's digest.
pub fn curl_blob(registry: &str, repo: &str, bytes: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(bytes));
    let head = output(Process::new("curl").args([
        "-si",
        "-X",
        "POST",
        &format!("http://{registry}/v2/{repo}/blobs/uploads/"),
    ]));
    let location = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .expect("Location")
        .trim()
        .to_string();
    let sep = if location.contains('?') { "&" } else { "?" };
    let url = format!("{location}{sep}digest={digest}");
    let url = if url.starts_with('/') {
        format!("http://{registry}{url}")
    } else {
        url
    };
    let file = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(file.path(), bytes).expect("write");
    output(Process::new("curl").args([
        "-sf",
        "-X",
        "PUT",
        "--data-binary",
        &format!("@{}", file.path().display()),
        "-H",
        "Content-Type: application/octet-stream",
        &url,
    ]));
    digest
}

/// Registry API by hand (curl): a manifest (or index) put under `reference`.
pub fn curl_manifest(registry: &str, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
    let file = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(file.path(), body).expect("write");
    output(Process::new("curl").args([
        "-sf",
        "-X",
        "PUT",
        "-H",
        &format!("Content-Type: {media_type}"),
        "--data-binary",
        &format!("@{}", file.path().display()),
        &format!("http://{registry}/v2/{repo}/manifests/{reference}"),
    ]));
}

/// Registry API by hand (curl): a GET of `url` with `Accept: accept`, as JSON.
pub fn curl_json(url: &str, accept: &str) -> Value {
    let body = output(Process::new("curl").args(["-sf", "-H", &format!("Accept: {accept}"), url]));
    serde_json::from_str(&body).expect("json")
}

/// The harness registry's request log (`$IMAGESPEC_E2E_STATE/registry-plain.log`, written
/// by `scripts/e2e/up.sh`'s plain registry: one access-log line per request). Other tests
/// share that registry: read only the repositories a test made.
pub struct RegistryLog(PathBuf);

impl RegistryLog {
    pub fn of(s: &Services) -> RegistryLog {
        let state = s
            .file
            .get("IMAGESPEC_E2E_STATE")
            .unwrap_or_else(|| "/tmp/imagespec-e2e".into());
        RegistryLog(Path::new(&state).join("registry-plain.log"))
    }

    /// Its length now: the requests after it are the next run's.
    pub fn mark(&self) -> u64 {
        std::fs::metadata(&self.0).map_or(0, |m| m.len())
    }

    /// The manifest requests for the repository `name` logged since `mark`, in order.
    pub fn manifests_of(&self, name: &str, mark: u64) -> Vec<String> {
        self.requests_of(name, "manifests", mark)
    }

    /// The requests (`METHOD reference`) for `name`'s `kind` (`manifests`, `blobs`) logged
    /// since `mark`, in order.
    pub fn requests_of(&self, name: &str, kind: &str, mark: u64) -> Vec<String> {
        let bytes = std::fs::read(&self.0).expect("the registry's log");
        let text = String::from_utf8_lossy(&bytes[mark as usize..]);
        let path = format!("/v2/{name}/{kind}/");
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
