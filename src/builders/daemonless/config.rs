//! The run-time config of a dependency image made without a daemon, as the Dockerfile's
//! instructions leave it (templates/Dockerfile.j2): the same `ENV` values (expanded as
//! Docker's `ENV` expands them, [`crate::oci::config`]), `USER flytekit`, `WORKDIR /root`,
//! `SHELL`, `ENTRYPOINT` (which clears the base's `CMD`, as Docker does), and the base's
//! other settings kept. The image itself is the base with the layers appended
//! ([`Image::append`]).

use crate::oci::config::{DEFAULT_PATH, EnvList, Unexpandable, env_instruction};
use crate::oci::image::{History, Image, NewLayer};
use crate::plan::{BuildPlan, PythonInstall};
use serde_json::{Value, json};

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
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let path = format!("{}:$PATH", plan.extra_path);
    let mut user_space = pairs(&[
        ("PATH", &path),
        ("UV_PYTHON", &plan.python_exec),
        ("UV_COMPILE_BYTECODE", "1"),
        ("UV_LINK_MODE", "copy"),
        ("FLYTE_SDK_RICH_TRACEBACKS", "0"),
        ("SSL_CERT_DIR", "/etc/ssl/certs"),
    ]);
    user_space.extend(plan.env.iter().cloned());
    let at_install = env_instruction(&env, &user_space)?;
    let after_install = if let PythonInstall::UvLock { .. } = plan.install {
        // The Dockerfile's `ENV` after `uv sync`: the project venv first on `PATH`.
        let venv = pairs(&[
            ("PATH", "/root/.venv/bin:$PATH"),
            ("UV_PYTHON", "/root/.venv/bin/python"),
        ]);
        Some(env_instruction(&at_install, &venv)?)
    } else {
        None
    };
    let nvidia = pairs(&[
        ("PATH", "$PATH:/usr/local/nvidia/bin:/usr/local/cuda/bin"),
        (
            "LD_LIBRARY_PATH",
            "/usr/local/nvidia/lib64:$LD_LIBRARY_PATH",
        ),
    ]);
    let at_end = env_instruction(after_install.as_ref().unwrap_or(&at_install), &nvidia)?;
    Ok(DependencyEnv { at_install, at_end })
}

/// What the dependency image's config says beside its layers.
pub struct DependencyConfig<'a> {
    pub env: &'a EnvList,
    pub entrypoint: Option<&'a [String]>,
    pub labels: &'a [(&'a str, String)],
    /// `SOURCE_DATE_EPOCH`: the config's `created` (and the new history entries').
    pub epoch: Option<crate::oci::epoch::SourceDateEpoch>,
}

/// The comment of the history entries the daemonless builder writes.
const COMMENT: &str = "imagespec (daemonless)";

/// The dependency image: `base` with `layers` appended (their history lines with a URL's
/// credentials removed, see [`crate::redact`]) and its config as the Dockerfile leaves it:
/// the environment, `USER flytekit`, `WORKDIR /root`, `SHELL`, the entrypoint (clearing
/// the base's `CMD`, as Docker's `ENTRYPOINT` does), no `ONBUILD`, the labels added.
/// Times are `SOURCE_DATE_EPOCH`'s, else the base's `created` (1980-01-01 when it has
/// none), so the same inputs give the same config; the base manifest's annotations are not
/// inherited.
pub fn dependency_image(
    base: &Image,
    config: &DependencyConfig<'_>,
    layers: Vec<NewLayer>,
) -> Image {
    // What imagespec writes into the config never carries a URL's credentials (an index
    // URL on the install step's line).
    let redact = |text: &str| crate::redact::url_credentials(text).into_owned();
    let layers = layers
        .into_iter()
        .map(|mut l| {
            l.history = History::new(&redact(&l.history.created_by), COMMENT);
            l
        })
        .collect();
    let empty = [History::new(
        "ENV, USER flytekit, WORKDIR /root, SHELL, ENTRYPOINT as the Dockerfile sets them",
        COMMENT,
    )];
    base.append(layers, |c| edit_config(c, config), &empty)
        .without_annotations()
}

fn edit_config(config: &mut Value, with: &DependencyConfig<'_>) {
    if !config.is_object() {
        *config = json!({});
    }
    let created = crate::oci::epoch::created(with.epoch, config.get("created"))
        .unwrap_or_else(|| Value::String("1980-01-01T00:00:00Z".into()));
    let root = config.as_object_mut().expect("made an object");
    root.insert("created".into(), created);
    let inner = root.entry("config").or_insert_with(|| json!({}));
    if !inner.is_object() {
        *inner = json!({});
    }
    let inner = inner.as_object_mut().expect("made an object");
    inner.insert("Env".into(), json!(with.env.to_config()));
    inner.insert("User".into(), json!("flytekit"));
    inner.insert("WorkingDir".into(), json!("/root"));
    if let Some(entrypoint) = with.entrypoint {
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
    for (k, v) in with.labels {
        let value = crate::redact::url_credentials(v).into_owned();
        label_map.insert((*k).to_string(), json!(value));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::oci::Digest;
    use crate::oci::image::Blob;

    fn env(entries: &[&str]) -> EnvList {
        EnvList::from_config(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    /// The plan of a spec of one package, with `env` added.
    pub(crate) fn plan(env: &[(&str, &str)]) -> BuildPlan {
        let toml = "packages = [\"six\"]\n";
        let mut plan = crate::plan::plan_in_dir(toml, &[], &Default::default());
        plan.env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        plan
    }

    /// The environment of localhost:5000/debian-python:bookworm's config.
    fn debian_env() -> [String; 2] {
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG=C.UTF-8",
        ]
        .map(String::from)
    }

    /// What dockerd's BuildKit wrote for the e2e spec (env `APP_ENV`, `WITHSPACE`,
    /// `DOLLAR = "x$HOME"`) on localhost:5000/debian-python:bookworm.
    #[test]
    fn the_environment_is_the_dockerfiles() {
        let base = debian_env();
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
        let base = debian_env();
        let mut plan = plan(&[]);
        plan.install = PythonInstall::UvLock {
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

    fn layer(created_by: &str) -> NewLayer {
        NewLayer {
            digest: Digest::of_bytes(b"gz"),
            diff_id: Digest::of_bytes(b"venv"),
            size: 2,
            blob: Blob::Bytes(bytes::Bytes::from_static(b"gz")),
            history: History::new(created_by, "ignored"),
        }
    }

    fn config<'a>(
        env: &'a EnvList,
        entrypoint: Option<&'a [String]>,
        labels: &'a [(&'a str, String)],
    ) -> DependencyConfig<'a> {
        DependencyConfig {
            env,
            entrypoint,
            labels,
            epoch: None,
        }
    }

    #[test]
    fn index_credentials_stay_out_of_the_history_and_labels() {
        let layers = vec![layer(
            "RUN uv pip install --index-url https://u:s3cret@h/simple \\
                         --extra-index-url https://tok@g/simple",
        )];
        let labels = [("l", "https://u:s3cret@h".to_string())];
        let env = env(&[]);
        let base = Image::scratch(json!({}));
        let c = dependency_image(&base, &config(&env, None, &labels), layers).config();
        let text = c.to_string();
        assert!(!text.contains("s3cret") && !text.contains("tok@"), "{text}");
        assert!(text.contains("--index-url https://***@h/simple"), "{text}");
    }

    #[test]
    fn the_config_keeps_the_base_and_sets_what_the_dockerfile_sets() {
        let base = Image::scratch(json!({
            "created": "2026-01-01T00:00:00Z",
            "architecture": "arm64",
            "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["python3"], "Labels": {"a": "1"},
                       "OnBuild": ["RUN x"], "ExposedPorts": {"80/tcp": {}}},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:base"]},
            "history": [{"created": "2026-01-01T00:00:00Z"}]
        }));
        let env = env(&["PATH=/x"]);
        let labels = [("dep", "1000 1000 0 700".to_string())];
        let image = dependency_image(&base, &config(&env, None, &labels), vec![layer("venv")]);
        let c = image.config();
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
            json!(["sha256:base", Digest::of_bytes(b"venv").as_str()])
        );
        let history = c["history"].as_array().unwrap();
        assert_eq!(history.len(), 3);
        assert!(
            history
                .iter()
                .all(|h| h["created"] == "2026-01-01T00:00:00Z")
        );
        assert_eq!(history[1]["comment"], COMMENT);
        assert!(image.manifest().annotations.is_none());
        let entry = ["python".to_string()];
        let c = dependency_image(&base, &config(&env, Some(&entry), &labels), vec![]).config();
        assert_eq!(c["config"]["Entrypoint"], json!(["python"]));
        assert_eq!(
            c["config"]["Cmd"],
            Value::Null,
            "ENTRYPOINT clears the base's CMD"
        );
    }

    #[test]
    fn source_date_epoch_sets_created_and_the_new_history_entries() {
        let base = Image::scratch(json!({
            "created": "2026-01-01T00:00:00Z",
            "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "base"}]
        }));
        let env = env(&[]);
        let mut with = config(&env, None, &[]);
        with.epoch = crate::oci::epoch::SourceDateEpoch::parse("1700000000").ok();
        let c = dependency_image(&base, &with, vec![layer("venv")]).config();
        assert_eq!(c["created"], "2023-11-14T22:13:20Z");
        let times: Vec<&str> = c["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["created"].as_str().unwrap())
            .collect();
        assert_eq!(
            times,
            [
                "2026-01-01T00:00:00Z",
                "2023-11-14T22:13:20Z",
                "2023-11-14T22:13:20Z"
            ],
            "the base's own entry is the base's"
        );
    }
}
