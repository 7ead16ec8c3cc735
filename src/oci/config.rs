//! The run-time config of a dependency image made without a daemon, as the Dockerfile's
//! instructions leave it: the same `ENV` values (Docker expands `$NAME` and `${NAME}` in an
//! `ENV` instruction with the environment from *before* that instruction), `USER flytekit`,
//! `WORKDIR /root`, `SHELL`, `ENTRYPOINT` (which clears the base's `CMD`, as Docker does),
//! and the base's other settings kept.
//!
//! ```
//! use imagespec::oci::config::{EnvList, env_instruction};
//! let base = EnvList::from_config(&["PATH=/usr/bin".to_string()]);
//! let pairs = [("PATH".to_string(), "/root/.venv/bin:$PATH".to_string()),
//!              ("OLD".to_string(), "${PATH}".to_string())];
//! let env = env_instruction(&base, &pairs).unwrap();
//! assert_eq!(env.get("PATH"), Some("/root/.venv/bin:/usr/bin"));
//! assert_eq!(env.get("OLD"), Some("/usr/bin"), "the value from before the instruction");
//! ```

use crate::plan::BuildPlan;
use serde_json::{Value, json};

/// The `PATH` BuildKit gives an image whose config sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An environment in the config's order (`KEY=VALUE` entries; a later `ENV` of the same key
/// replaces the value in place).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvList(Vec<(String, String)>);

impl EnvList {
    /// The environment of a config's `Env` list.
    pub fn from_config(entries: &[String]) -> EnvList {
        let mut env = EnvList::default();
        for entry in entries {
            let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
            env.set(k, v);
        }
        env
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` (in place when it is there, else at the end).
    pub fn set(&mut self, key: &str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.0.push((key.to_string(), value.to_string())),
        }
    }

    /// The config's `Env` list.
    pub fn to_config(&self) -> Vec<String> {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

/// A `$` form Docker's word expansion gives a meaning imagespec does not reproduce
/// (`${NAME:-default}`, `$1`, `$$`…).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{word}` uses `$` in a way only Docker's shell lexer expands")]
pub struct Unexpandable {
    pub word: String,
}

/// `word` as Docker's `ENV` expands it against `env`: `$NAME` and `${NAME}` are replaced
/// (unset: empty), a `$` not followed by a name is kept.
pub fn expand(word: &str, env: &EnvList) -> Result<String, Unexpandable> {
    let unexpandable = || Unexpandable {
        word: word.to_string(),
    };
    let mut out = String::with_capacity(word.len());
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let braced = chars.peek() == Some(&'{');
        if braced {
            chars.next();
        }
        let mut name = String::new();
        match chars.peek() {
            Some(c) if c.is_alphabetic() || *c == '_' => {}
            // `$` then something that starts no name: Docker keeps the `$`; digits and
            // special parameters (`$1`, `$$`, `$@`) have meanings of their own.
            Some(c) if !braced && !c.is_ascii_digit() && !"@*#?-$!".contains(*c) => {
                out.push('$');
                continue;
            }
            None if !braced => {
                out.push('$');
                continue;
            }
            _ => return Err(unexpandable()),
        }
        while let Some(&c) = chars.peek() {
            if c.is_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if braced && chars.next() != Some('}') {
            return Err(unexpandable());
        }
        out.push_str(env.get(&name).unwrap_or(""));
    }
    Ok(out)
}

/// One `ENV k1=v1 k2=v2…` instruction: every value expanded against `env` as it was before
/// the instruction, then set in order.
pub fn env_instruction(env: &EnvList, pairs: &[(String, String)]) -> Result<EnvList, Unexpandable> {
    let mut out = env.clone();
    for (k, v) in pairs {
        out.set(k, &expand(v, env)?);
    }
    Ok(out)
}

/// The environment of a dependency image at the two points that matter: while its packages
/// are installed (the `PATH` uv searches the base's Python on) and at the end (the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyEnv {
    pub at_install: EnvList,
    pub at_end: EnvList,
}

/// The environment the Dockerfile (templates/Dockerfile.j2, venv install) gives `plan`'s
/// dependency image on a base whose config has `base_env`: the "Configure user space" `ENV`,
/// (for `uv.lock`, the venv's `ENV` after `uv sync`), then the "nvidia" `ENV` after the
/// install.
pub fn dependency_env(
    base_env: &[String],
    plan: &BuildPlan,
) -> Result<DependencyEnv, Unexpandable> {
    let mut env = EnvList::from_config(base_env);
    if env.get("PATH").is_none() {
        env.set("PATH", DEFAULT_PATH);
    }
    let mut user_space = vec![
        ("PATH".to_string(), format!("{}:$PATH", plan.extra_path)),
        ("UV_PYTHON".to_string(), plan.python_exec.clone()),
        ("UV_COMPILE_BYTECODE".to_string(), "1".to_string()),
        ("UV_LINK_MODE".to_string(), "copy".to_string()),
        ("FLYTE_SDK_RICH_TRACEBACKS".to_string(), "0".to_string()),
        ("SSL_CERT_DIR".to_string(), "/etc/ssl/certs".to_string()),
    ];
    user_space.extend(plan.env.iter().cloned());
    let at_install = env_instruction(&env, &user_space)?;
    let after_install = if let crate::plan::PythonInstall::UvLock { .. } = plan.install {
        // The Dockerfile's `ENV` after `uv sync`: the project venv first on `PATH`.
        let venv = [
            ("PATH".to_string(), "/root/.venv/bin:$PATH".to_string()),
            (
                "UV_PYTHON".to_string(),
                "/root/.venv/bin/python".to_string(),
            ),
        ];
        Some(env_instruction(&at_install, &venv)?)
    } else {
        None
    };
    let nvidia = [
        (
            "PATH".to_string(),
            "$PATH:/usr/local/nvidia/bin:/usr/local/cuda/bin".to_string(),
        ),
        (
            "LD_LIBRARY_PATH".to_string(),
            "/usr/local/nvidia/lib64:$LD_LIBRARY_PATH".to_string(),
        ),
    ];
    let at_end = env_instruction(after_install.as_ref().unwrap_or(&at_install), &nvidia)?;
    Ok(DependencyEnv { at_install, at_end })
}

/// A layer added on top of the base, for the config's history.
#[derive(Debug, Clone)]
pub struct AddedLayer {
    /// `sha256:…` of the uncompressed tar.
    pub diff_id: String,
    /// What made it (the config's `history[].created_by`).
    pub created_by: String,
}

/// The dependency image's config: `base`'s config with the environment `env`, `USER
/// flytekit`, `WORKDIR /root`, `SHELL`, the entrypoint (clearing the base's `CMD`, as
/// Docker's `ENTRYPOINT` does), no `ONBUILD`, `labels` added, and `layers` appended to
/// `rootfs` and `history`.
/// Times are the base's `created`, so the same inputs give the same config.
pub fn dependency_config(
    base: &Value,
    env: &EnvList,
    entrypoint: Option<&[String]>,
    labels: &[(&str, String)],
    layers: &[AddedLayer],
) -> Value {
    let mut config = base.clone();
    if !config.is_object() {
        config = json!({});
    }
    let created = config
        .get("created")
        .cloned()
        .unwrap_or_else(|| Value::String("1980-01-01T00:00:00Z".into()));
    let root = config.as_object_mut().expect("made an object");
    root.insert("created".into(), created.clone());
    let inner = root.entry("config").or_insert_with(|| json!({}));
    if !inner.is_object() {
        *inner = json!({});
    }
    let inner = inner.as_object_mut().expect("made an object");
    inner.insert("Env".into(), json!(env.to_config()));
    inner.insert("User".into(), json!("flytekit"));
    inner.insert("WorkingDir".into(), json!("/root"));
    if let Some(entrypoint) = entrypoint {
        inner.insert("Entrypoint".into(), json!(entrypoint));
        inner.remove("Cmd");
    }
    // `SHELL ["/bin/bash", "-c"]` near the end of the Dockerfile.
    inner.insert("Shell".into(), json!(["/bin/bash", "-c"]));
    // Docker runs a base's ONBUILD triggers and does not pass them on.
    inner.insert("OnBuild".into(), Value::Null);
    let labels_value = inner.entry("Labels").or_insert_with(|| json!({}));
    if !labels_value.is_object() {
        *labels_value = json!({});
    }
    let label_map = labels_value.as_object_mut().expect("made an object");
    // What imagespec writes into the config never carries a URL's credentials (an index
    // URL on the install step's line): see `crate::redact`.
    let redact = |text: &str| crate::redact::url_credentials(text).into_owned();
    for (k, v) in labels {
        label_map.insert((*k).to_string(), json!(redact(v)));
    }
    let rootfs = root
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    if let Some(ids) = rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
        ids.extend(layers.iter().map(|l| json!(l.diff_id)));
    }
    let history = root.entry("history").or_insert_with(|| json!([]));
    if let Some(h) = history.as_array_mut() {
        for layer in layers {
            h.push(json!({
                "created": created,
                "created_by": redact(&layer.created_by),
                "comment": "imagespec (daemonless)",
            }));
        }
        h.push(json!({
            "created": created,
            "created_by": "ENV, USER flytekit, WORKDIR /root, SHELL, ENTRYPOINT as the Dockerfile sets them",
            "comment": "imagespec (daemonless)",
            "empty_layer": true,
        }));
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(entries: &[&str]) -> EnvList {
        EnvList::from_config(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn expansion_follows_dockers_env_rules() {
        let e = env(&["PATH=/bin", "HOME_DIR=/h"]);
        assert_eq!(expand("$PATH:/x", &e).unwrap(), "/bin:/x");
        assert_eq!(expand("${HOME_DIR}x", &e).unwrap(), "/hx");
        assert_eq!(expand("$UNSET-a", &e).unwrap(), "-a", "unset is empty");
        assert_eq!(
            expand("x$HOME", &e).unwrap(),
            "x",
            "as Docker did in the e2e image"
        );
        assert_eq!(expand("cost: 5$", &e).unwrap(), "cost: 5$");
        assert_eq!(expand("a$/b", &e).unwrap(), "a$/b");
        for unsupported in ["${PATH:-x}", "$1", "$$", "${PATH", "${}"] {
            assert!(expand(unsupported, &e).is_err(), "{unsupported}");
        }
    }

    #[test]
    fn an_instruction_sees_the_environment_from_before_it() {
        let base = env(&["A=1"]);
        let pairs = [("A".into(), "2".into()), ("B".into(), "$A".into())];
        let out = env_instruction(&base, &pairs).unwrap();
        assert_eq!(out.to_config(), ["A=2", "B=1"]);
    }

    fn plan(env: &[(&str, &str)]) -> BuildPlan {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("spec.toml"), "packages = [\"six\"]\n").unwrap();
        let file = crate::load(&dir.path().join("spec.toml")).unwrap();
        let (_, spec) = file.select(None).unwrap();
        let tag = crate::tag::compute(spec, &Default::default()).unwrap();
        let mut plan = BuildPlan::new(spec, &tag, &Default::default()).unwrap();
        plan.env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        plan
    }

    /// What dockerd's BuildKit wrote for the e2e spec (env `APP_ENV`, `WITHSPACE`,
    /// `DOLLAR = "x$HOME"`) on localhost:5000/debian-python:bookworm.
    #[test]
    fn the_environment_is_the_dockerfiles() {
        let base = [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG=C.UTF-8",
        ]
        .map(String::from);
        let plan = plan(&[
            ("APP_ENV", "e2e"),
            ("WITHSPACE", "a b"),
            ("DOLLAR", "x$HOME"),
        ]);
        let env = dependency_env(&base, &plan).unwrap();
        assert_eq!(
            env.at_end.to_config(),
            [
                "PATH=/root/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/nvidia/bin:/usr/local/cuda/bin",
                "LANG=C.UTF-8",
                "UV_PYTHON=/root/.venv/bin/python",
                "UV_COMPILE_BYTECODE=1",
                "UV_LINK_MODE=copy",
                "FLYTE_SDK_RICH_TRACEBACKS=0",
                "SSL_CERT_DIR=/etc/ssl/certs",
                "PYTHONPATH=/root",
                "APP_ENV=e2e",
                "WITHSPACE=a b",
                "DOLLAR=x",
                "LD_LIBRARY_PATH=/usr/local/nvidia/lib64:",
            ]
        );
        assert_eq!(
            env.at_install.get("PATH"),
            Some("/root/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        );
        let no_path = dependency_env(&[], &plan).unwrap();
        assert_eq!(
            no_path.at_install.get("PATH"),
            Some(format!("/root/.venv/bin:{DEFAULT_PATH}").as_str())
        );
        let bad = self::plan(&[("X", "${Y:-z}")]);
        assert!(dependency_env(&base, &bad).is_err());
    }

    /// What dockerd's BuildKit wrote for a `uv.lock` spec: the venv's `ENV` after `uv sync`
    /// puts `/root/.venv/bin` on `PATH` a second time.
    #[test]
    fn a_uv_lock_image_has_the_venv_env_after_uv_sync() {
        let base = [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG=C.UTF-8",
        ]
        .map(String::from);
        let mut plan = plan(&[]);
        plan.install = crate::plan::PythonInstall::UvLock {
            base_python: Some("python3".into()),
            args: "--locked --no-dev --no-install-project".into(),
        };
        let env = dependency_env(&base, &plan).unwrap();
        assert_eq!(
            env.at_end.to_config()[..3],
            [
                "PATH=/root/.venv/bin:/root/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/nvidia/bin:/usr/local/cuda/bin",
                "LANG=C.UTF-8",
                "UV_PYTHON=/root/.venv/bin/python",
            ]
        );
        assert_eq!(
            env.at_install.get("PATH"),
            Some("/root/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            "uv sync finds the base's python3 before the venv exists"
        );
    }

    #[test]
    fn index_credentials_stay_out_of_the_history_and_labels() {
        let layers = [AddedLayer {
            diff_id: "sha256:venv".into(),
            created_by: "RUN uv pip install --index-url https://u:s3cret@h/simple \\
                         --extra-index-url https://tok@g/simple"
                .into(),
        }];
        let labels = [("l", "https://u:s3cret@h".to_string())];
        let c = dependency_config(&json!({}), &env(&[]), None, &labels, &layers);
        let text = c.to_string();
        assert!(!text.contains("s3cret") && !text.contains("tok@"), "{text}");
        assert!(text.contains("--index-url https://***@h/simple"), "{text}");
    }

    #[test]
    fn the_config_keeps_the_base_and_sets_what_the_dockerfile_sets() {
        let base = json!({
            "created": "2026-01-01T00:00:00Z",
            "architecture": "arm64",
            "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["python3"], "Labels": {"a": "1"},
                       "OnBuild": ["RUN x"], "ExposedPorts": {"80/tcp": {}}},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:base"]},
            "history": [{"created": "2026-01-01T00:00:00Z"}]
        });
        let layers = [AddedLayer {
            diff_id: "sha256:venv".into(),
            created_by: "venv".into(),
        }];
        let env = env(&["PATH=/x"]);
        let labels = [("dep", "1000 1000 0 700".to_string())];
        let c = dependency_config(&base, &env, None, &labels, &layers);
        assert_eq!(
            c["config"]["Cmd"],
            json!(["python3"]),
            "kept without ENTRYPOINT"
        );
        assert_eq!(c["config"]["User"], "flytekit");
        assert_eq!(c["config"]["WorkingDir"], "/root");
        assert_eq!(c["config"]["Env"], json!(["PATH=/x"]));
        assert_eq!(
            c["config"]["Labels"],
            json!({"a": "1", "dep": "1000 1000 0 700"})
        );
        assert_eq!(c["config"]["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(c["config"]["OnBuild"], Value::Null);
        assert_eq!(c["config"]["Shell"], json!(["/bin/bash", "-c"]));
        assert_eq!(c["architecture"], "arm64");
        assert_eq!(
            c["rootfs"]["diff_ids"],
            json!(["sha256:base", "sha256:venv"])
        );
        let history = c["history"].as_array().unwrap();
        assert_eq!(history.len(), 3);
        assert!(
            history
                .iter()
                .all(|h| h["created"] == "2026-01-01T00:00:00Z")
        );
        let entry = ["python".to_string()];
        let c = dependency_config(&base, &env, Some(&entry), &labels, &layers);
        assert_eq!(c["config"]["Entrypoint"], json!(["python"]));
        assert_eq!(
            c["config"]["Cmd"],
            Value::Null,
            "ENTRYPOINT clears the base's CMD"
        );
    }
}
