//! Registry credentials from docker's config: `$DOCKER_CONFIG/config.json` (default
//! `~/.docker/config.json`) or the spec's `registry_config`, with `auths` entries,
//! `credHelpers` per registry and a `credsStore` through `docker-credential-*` helpers.
//!
//! Credentials never reach logs, errors or JSON output: [`Credentials`] has a redacting
//! `Debug` and no `Display`, and errors name the file and registry only.

use base64::Engine;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A username and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// The username docker's helpers answer (and docker's config implies) for an identity token:
/// an OAuth2 refresh token in `password`, exchanged at the registry's token endpoint.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

impl Credentials {
    /// The identity token (an OAuth2 refresh token), when these are one.
    pub fn identity_token(&self) -> Option<&str> {
        (self.username == IDENTITY_TOKEN_USER).then_some(self.password.as_str())
    }
}

/// Credentials and where they came from (for errors: "no credentials for X in FILE").
#[derive(Debug, Clone)]
pub struct Found {
    pub credentials: Option<Credentials>,
    /// The docker config file consulted, if any.
    pub config: Option<PathBuf>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why credentials could not be read (never with their content).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{}: not a valid docker config file: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("{}: the `auth` entry for {registry} is not base64 `user:password`", path.display())]
    BadAuth { path: PathBuf, registry: String },
    #[error(
        "{}: `{key}` names the credential helper {helper:?}, which is not a plain name: docker \
         runs `docker-credential-<name>` from PATH only, so a name with `/`, `..` or nothing \
         in it could only run a program from the working directory (a repository's); name a \
         helper installed on PATH",
        path.display()
    )]
    HelperName {
        path: PathBuf,
        key: String,
        helper: String,
    },
    #[error(
        "{}: `{key}` names the credential helper {helper:?}, but docker-credential-{helper} is \
         not on PATH (only absolute PATH entries are searched); install it or fix the name",
        path.display()
    )]
    HelperMissing {
        path: PathBuf,
        key: String,
        helper: String,
    },
    #[error("credential helper docker-credential-{helper} for {registry} failed: {message}")]
    Helper {
        helper: String,
        registry: String,
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

/// The docker config file in effect: `registry_config` when given, else
/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn config_path(registry_config: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = registry_config {
        return Some(p.to_path_buf());
    }
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// Docker Hub's key in docker's config and credential stores: what `docker login` stores
/// Docker Hub credentials under, and what docker and docker-py ask helpers for.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Whether `registry` is one of Docker Hub's names (`registry-1.docker.io` is the one
/// BuildKit asks about).
pub fn is_docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | DOCKER_HUB_KEY
    )
}

/// The server URL a credential helper is asked for: Docker Hub's key for Docker Hub,
/// `host[:port]` otherwise (as docker does).
pub fn helper_server(registry: &str) -> &str {
    if is_docker_hub(registry) {
        DOCKER_HUB_KEY
    } else {
        registry
    }
}

/// The keys docker may have stored a registry's entry under, most specific first.
fn candidate_keys(registry: &str) -> Vec<String> {
    if is_docker_hub(registry) {
        return vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
        ];
    }
    vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("{registry}/v1/"),
    ]
}

/// Credentials for `registry` (a host, e.g. `localhost:5000`), if the config has any.
pub fn lookup(
    registry: &str,
    registry_config: Option<&Path>,
) -> Result<Option<Credentials>, AuthError> {
    let Some(path) = config_path(registry_config) else {
        return Ok(None);
    };
    let read = crate::source::untrusted::open_regular(&path).and_then(|mut f| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut f, &mut text).map(|_| text)
    });
    let text = match read {
        Ok(t) => t,
        // A missing default config means "no credentials"; a named registry_config must exist.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && registry_config.is_none() => {
            return Ok(None);
        }
        Err(e) => {
            return Err(AuthError::Config {
                path,
                message: e.to_string(),
            });
        }
    };
    let config: ConfigFile = serde_json::from_str(&text).map_err(|e| AuthError::Config {
        path: path.clone(),
        message: format!(
            "line {} column {}: {}",
            e.line(),
            e.column(),
            e.classify_str()
        ),
    })?;
    for step in lookup_order(&config, registry) {
        match step {
            Step::Helper { key, helper } => {
                let program = helper_program(&helper, &key, &path)?;
                if let Some(found) = from_helper(&program, &helper, registry)? {
                    return Ok(Some(found));
                }
            }
            Step::Auths(key) => {
                if let Some(found) = from_auths(&config.auths[&key], &path, registry)? {
                    return Ok(Some(found));
                }
            }
        }
    }
    Ok(None)
}

/// [`lookup`], with the config file consulted (for "no credentials for X in FILE").
pub fn find(registry: &str, registry_config: Option<&Path>) -> Result<Found, AuthError> {
    Ok(Found {
        credentials: lookup(registry, registry_config)?,
        config: config_path(registry_config),
    })
}

/// One place credentials may come from, in the order they are tried.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Ask `docker-credential-<helper>`; `key` names the config entry that chose it.
    Helper { key: String, helper: String },
    /// The `auths` entry under this key.
    Auths(String),
}

/// Where credentials for `registry` are looked for, in order: the `credHelpers` helper named
/// for it, its `auths` entry (also when that helper answers "credentials not found", as
/// docker-py does: a login made before the helper was configured still works), then the
/// `credsStore`. An empty helper name names no helper (as docker).
fn lookup_order(config: &ConfigFile, registry: &str) -> Vec<Step> {
    let keys = candidate_keys(registry);
    let mut steps = Vec::new();
    if let Some((key, helper)) = keys
        .iter()
        .find_map(|k| config.cred_helpers.get(k).map(|h| (k, h)))
        .filter(|(_, h)| !h.is_empty())
    {
        steps.push(Step::Helper {
            key: format!("credHelpers.{key}"),
            helper: helper.clone(),
        });
    }
    steps.extend(
        keys.iter()
            .filter(|k| config.auths.contains_key(*k))
            .map(|k| Step::Auths(k.clone())),
    );
    if let Some(store) = config.creds_store.as_ref().filter(|s| !s.is_empty()) {
        steps.push(Step::Helper {
            key: "credsStore".into(),
            helper: store.clone(),
        });
    }
    steps
}

/// The credentials an `auths` entry holds: an identity token, `username`/`password`, or
/// base64 `auth`; `None` for an empty entry (the marker `docker login` leaves when a
/// credential store holds the secret).
fn from_auths(
    entry: &AuthEntry,
    path: &Path,
    registry: &str,
) -> Result<Option<Credentials>, AuthError> {
    if let Some(token) = entry.identity_token.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials {
            username: IDENTITY_TOKEN_USER.into(),
            password: token.to_string(),
        }));
    }
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok(Some(Credentials {
            username: u.clone(),
            password: p.clone(),
        }));
    }
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let bad = || AuthError::BadAuth {
            path: path.to_path_buf(),
            registry: registry.to_string(),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (u, p) = decoded.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        }));
    }
    Ok(None)
}

/// Whether `name` is a credential helper name docker would look up on PATH as
/// `docker-credential-<name>`: not empty, no `/` (a path: run relative to the working
/// directory), no `..`, no NUL.
pub fn is_plain_helper_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.contains("..") && !name.contains('\0')
}

/// The program `docker-credential-<name>` found on `path_var` (a `PATH` value): the first
/// executable file in an absolute directory. Relative entries (`.`, empty ones, which mean
/// the working directory) are skipped: the working directory may be a repository's.
pub fn find_helper(name: &str, path_var: &std::ffi::OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if !is_plain_helper_name(name) {
        return None;
    }
    let program = format!("docker-credential-{name}");
    std::env::split_paths(path_var)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(&program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The helper program for `helper`, named by `key` of the config file at `config`.
fn helper_program(helper: &str, key: &str, config: &Path) -> Result<PathBuf, AuthError> {
    if !is_plain_helper_name(helper) {
        return Err(AuthError::HelperName {
            path: config.to_path_buf(),
            key: key.to_string(),
            helper: helper.to_string(),
        });
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    find_helper(helper, &path_var).ok_or_else(|| AuthError::HelperMissing {
        path: config.to_path_buf(),
        key: key.to_string(),
        helper: helper.to_string(),
    })
}

trait ClassifyStr {
    fn classify_str(&self) -> &'static str;
}

impl ClassifyStr for serde_json::Error {
    /// The kind of JSON error, without echoing the file's content (it may hold secrets).
    fn classify_str(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected value",
            serde_json::error::Category::Eof => "unexpected end of file",
        }
    }
}

#[derive(Deserialize)]
struct HelperReply {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Asks `docker-credential-<helper> get` (the docker credential helper protocol), found at
/// `program`.
fn from_helper(
    program: &Path,
    helper: &str,
    registry: &str,
) -> Result<Option<Credentials>, AuthError> {
    let err = |message: String| AuthError::Helper {
        helper: helper.to_string(),
        registry: registry.to_string(),
        message,
    };
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(helper_server(registry).as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if said.to_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(err(helper_message(&said, out.status)));
    }
    let reply: HelperReply = serde_json::from_slice(&out.stdout)
        .map_err(|_| err("its answer is not the expected JSON".into()))?;
    Ok(Some(Credentials {
        username: reply.username,
        password: reply.secret,
    }))
}

/// What a failing helper said, on one line and bounded (a helper's message names the
/// problem: "no AWS credentials", "gcloud not logged in"; a failing helper prints no secret),
/// or its exit status when it said nothing.
fn helper_message(said: &str, status: std::process::ExitStatus) -> String {
    const MAX: usize = 300;
    let line = said
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if line.is_empty() {
        return format!("it exited with {status} and said nothing");
    }
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A docker config file holding `json`, in a directory removed when it drops.
    fn config_file(json: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.json");
        std::fs::write(&cfg, json).unwrap();
        (dir, cfg)
    }

    #[test]
    fn reads_auths_and_redacts() {
        let auth = base64::engine::general_purpose::STANDARD.encode("me:hunter2");
        let (_dir, cfg) = config_file(&format!(
            r#"{{"auths": {{"localhost:5001": {{"auth": "{auth}"}}}}}}"#
        ));
        let creds = lookup("localhost:5001", Some(&cfg)).unwrap().unwrap();
        assert_eq!(creds.username, "me");
        assert_eq!(creds.password, "hunter2");
        assert!(!format!("{creds:?}").contains("hunter2"));
        assert_eq!(lookup("other:1", Some(&cfg)).unwrap(), None);
    }

    fn config(json: &str) -> ConfigFile {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn docker_hub_is_asked_for_under_its_index_url() {
        for hub in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert_eq!(helper_server(hub), "https://index.docker.io/v1/", "{hub}");
            assert_eq!(candidate_keys(hub)[0], "https://index.docker.io/v1/");
        }
        assert_eq!(helper_server("ghcr.io"), "ghcr.io");
        assert_eq!(helper_server("127.0.0.1:5002"), "127.0.0.1:5002");
        // Unqualified names are Docker Hub's.
        let image: crate::oci::ImageRef = "python:3.12".parse().unwrap();
        assert_eq!(helper_server(image.host()), "https://index.docker.io/v1/");
    }

    #[test]
    fn lookup_order_is_helper_then_auths_then_store() {
        let c = config(
            r#"{"credHelpers": {"ghcr.io": "gh", "empty.io": ""},
                "auths": {"ghcr.io": {}, "https://index.docker.io/v1/": {}},
                "credsStore": "desktop"}"#,
        );
        let helper = |key: &str, helper: &str| Step::Helper {
            key: key.into(),
            helper: helper.into(),
        };
        assert_eq!(
            lookup_order(&c, "ghcr.io"),
            [
                helper("credHelpers.ghcr.io", "gh"),
                Step::Auths("ghcr.io".into()),
                helper("credsStore", "desktop"),
            ]
        );
        assert_eq!(
            lookup_order(&c, "docker.io"),
            [
                Step::Auths("https://index.docker.io/v1/".into()),
                helper("credsStore", "desktop"),
            ]
        );
        // An empty helper name names none.
        assert_eq!(
            lookup_order(&c, "empty.io"),
            [helper("credsStore", "desktop")]
        );
        assert_eq!(lookup_order(&config("{}"), "x.io"), []);
    }

    fn fake_helper(dir: &Path, script: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let helper = dir.join("docker-credential-fake");
        std::fs::write(&helper, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        helper
    }

    #[test]
    fn helpers_are_asked_for_docker_keys_and_their_failures_are_shown() {
        let dir = tempfile::tempdir().unwrap();
        let asked = dir.path().join("asked");
        let program = fake_helper(
            dir.path(),
            &format!(
                r#"cat >> {0}; echo >> {0}; echo '{{"Username":"<token>","Secret":"idt-123"}}'"#,
                asked.display()
            ),
        );
        let creds = from_helper(&program, "fake", "docker.io").unwrap().unwrap();
        assert_eq!(creds.identity_token(), Some("idt-123"));
        from_helper(&program, "fake", "127.0.0.1:5002").unwrap();
        assert_eq!(
            std::fs::read_to_string(&asked).unwrap(),
            "https://index.docker.io/v1/\n127.0.0.1:5002\n"
        );

        let missing = fake_helper(
            dir.path(),
            "echo 'credentials not found in native keychain'; exit 1",
        );
        assert_eq!(from_helper(&missing, "fake", "ghcr.io").unwrap(), None);

        let failing = fake_helper(
            dir.path(),
            "echo 'error getting credentials: no AWS profile' >&2; exit 1",
        );
        let err = from_helper(&failing, "fake", "ghcr.io")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no AWS profile"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn auths_entries_hold_passwords_or_identity_tokens() {
        let auth = base64::engine::general_purpose::STANDARD.encode("me:pw");
        let (_dir, cfg) = config_file(&format!(
            r#"{{"auths": {{"h.io": {{"auth": "{auth}"}}, "t.io": {{"identitytoken": "idt"}}}}}}"#
        ));
        let config: ConfigFile =
            serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
        let found = from_auths(&config.auths["h.io"], &cfg, "h.io")
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("me", "pw")
        );
        let token = from_auths(&config.auths["t.io"], &cfg, "t.io")
            .unwrap()
            .unwrap();
        assert_eq!(token.identity_token(), Some("idt"));
        assert_eq!(lookup("t.io", Some(&cfg)).unwrap(), Some(token));
    }

    #[test]
    fn helper_names_are_plain_names() {
        for good in ["desktop", "ecr-login", "pass", "osxkeychain", "gcloud.v2"] {
            assert!(is_plain_helper_name(good), "{good}");
        }
        for bad in ["", "x/evil", "/abs", "..", "a..b", "../x", "a\0b"] {
            assert!(!is_plain_helper_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn helpers_are_found_only_in_absolute_path_entries() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let helper = bin.join("docker-credential-mine");
        std::fs::write(&helper, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = bin.join("docker-credential-notexec");
        std::fs::write(&plain, "").unwrap();
        let path = std::env::join_paths([Path::new("."), Path::new(""), &bin]).unwrap();
        assert_eq!(find_helper("mine", &path), Some(helper));
        assert_eq!(find_helper("notexec", &path), None, "not executable");
        assert_eq!(find_helper("bin/docker-credential-mine", &path), None);
        // A relative entry never counts, even when it holds the helper.
        let relative = std::env::join_paths([Path::new("bin")]).unwrap();
        assert_eq!(find_helper("mine", &relative), None);
    }

    #[test]
    fn bad_config_errors_do_not_echo_content() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.json");
        std::fs::write(&cfg, r#"{"auths": {"x": {"auth": "c2VjcmV0"}}, oops"#).unwrap();
        let err = lookup("x", Some(&cfg)).unwrap_err().to_string();
        assert!(!err.contains("c2VjcmV0"), "{err}");
    }
}
