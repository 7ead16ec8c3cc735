//! Builders: one file per backend. [`docker`] builds through dockerd's BuildKit, [`envd`] with
//! the envd CLI (into dockerd too); [`emulation`] says whether this machine runs another
//! platform's programs (binfmt_misc), before a daemon builds one.

pub mod buildkit_status;
pub mod docker;
pub mod emulation;
pub mod envd;
pub mod registry;
pub mod session;

/// A build that did not happen, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("dockerd is not reachable at {host}: {detail}; start it or set DOCKER_HOST")]
    DaemonUnreachable { host: String, detail: String },
    #[error(
        "platform `{platform}` lists several platforms: dockerd 20.10's builder (no buildx) builds one platform per image; build them one at a time"
    )]
    MultiPlatform { platform: String },
    #[error("build context: {0}")]
    Context(String),
    #[error("build failed{}: {message}{}", step.as_ref().map(|s| format!(" at step `{s}`")).unwrap_or_default(), if log.is_empty() { String::new() } else { format!("\n--- step output (last {} lines) ---\n{}", log.len(), log.join("\n")) })]
    BuildFailed {
        step: Option<String>,
        message: String,
        log: Vec<String>,
    },
    #[error("--output {target}: {source}")]
    Output {
        target: String,
        #[source]
        source: crate::registry::layout::LayoutError,
    },
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error(transparent)]
    Emulation(#[from] emulation::EmulationError),
    #[error("push of {image} failed: {message}")]
    Push { image: String, message: String },
    #[error("{0}")]
    Registry(#[from] crate::registry::auth::AuthError),
    #[error(
        "image {image}: cannot tell whether it exists ({reason}) and FLYTE_IMG_FAST_FAIL is set"
    )]
    ExistsUnknown { image: String, reason: String },
    #[error(
        "the envd builder needs the envd CLI ({detail}): install it (`pip install envd=={}`) or set {} to its path",
        envd::ENVD_VERSION,
        envd::ENVD_ENV
    )]
    EnvdMissing { detail: String },
}
