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
    let text = match std::fs::read_to_string(&path) {
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
    if let Some(helper) = keys.iter().find_map(|k| config.cred_helpers.get(k)) {
        return from_helper(helper, registry);
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
        Some(store) if !store.is_empty() => from_helper(store, registry),
        _ => Ok(None),
    }
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

/// Asks `docker-credential-<helper> get` (the docker credential helper protocol).
fn from_helper(helper: &str, registry: &str) -> Result<Option<Credentials>, AuthError> {
    let err = |message: String| AuthError::Helper {
        helper: helper.to_string(),
        registry: registry.to_string(),
        message,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
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
    fn bad_config_errors_do_not_echo_content() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.json");
        std::fs::write(&cfg, r#"{"auths": {"x": {"auth": "c2VjcmV0"}}, oops"#).unwrap();
        let err = lookup("x", Some(&cfg)).unwrap_err().to_string();
        assert!(!err.contains("c2VjcmV0"), "{err}");
    }
}
