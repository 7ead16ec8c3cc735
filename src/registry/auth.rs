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
    #[error("credential helper docker-credential-{helper} for {registry}: {message}")]
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

/// The keys docker may have stored a registry's entry under.
fn candidate_keys(registry: &str) -> Vec<String> {
    if registry == "docker.io"
        || registry == "index.docker.io"
        || registry == "registry-1.docker.io"
    {
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
    let keys = candidate_keys(registry);
    // As docker: an empty value names no helper.
    if let Some((key, helper)) = keys
        .iter()
        .find_map(|k| config.cred_helpers.get(k).map(|h| (k, h)))
        .filter(|(_, h)| !h.is_empty())
    {
        let program = helper_program(helper, &format!("credHelpers.{key}"), &path)?;
        return from_helper(&program, helper, registry);
    }
    for key in &keys {
        if let Some(entry) = config.auths.get(key) {
            if let Some(token) = &entry.identity_token {
                return Ok(Some(Credentials {
                    username: "<token>".into(),
                    password: token.clone(),
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
                    path: path.clone(),
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
        }
    }
    match &config.creds_store {
        Some(store) if !store.is_empty() => {
            let program = helper_program(store, "credsStore", &path)?;
            from_helper(&program, store, registry)
        }
        _ => Ok(None),
    }
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
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if said.to_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(err(format!("exited with {}", out.status)));
    }
    let reply: HelperReply = serde_json::from_slice(&out.stdout)
        .map_err(|_| err("its answer is not the expected JSON".into()))?;
    if reply.username == "<token>" {
        return Ok(Some(Credentials {
            username: "<token>".into(),
            password: reply.secret,
        }));
    }
    Ok(Some(Credentials {
        username: reply.username,
        password: reply.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auths_and_redacts() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("me:hunter2");
        std::fs::write(
            &cfg,
            format!(r#"{{"auths": {{"localhost:5001": {{"auth": "{auth}"}}}}}}"#),
        )
        .unwrap();
        let creds = lookup("localhost:5001", Some(&cfg)).unwrap().unwrap();
        assert_eq!(creds.username, "me");
        assert_eq!(creds.password, "hunter2");
        assert!(!format!("{creds:?}").contains("hunter2"));
        assert_eq!(lookup("other:1", Some(&cfg)).unwrap(), None);
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
