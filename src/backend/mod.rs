//! Builders: one file per backend. [`docker`] builds through dockerd's BuildKit, [`envd`] with
//! the envd CLI (into dockerd too), [`daemonless`] makes dependency images with uv and no
//! daemon; [`emulation`] says whether this machine runs another platform's programs
//! (binfmt_misc), before a daemon builds one.

pub mod buildkit_status;
pub mod daemonless;
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
    #[error("building dependencies without a daemon: {0}")]
    Daemonless(#[from] daemonless::DaemonlessError),
    #[error(transparent)]
    Emulation(#[from] emulation::EmulationError),
    #[error("push of {image} failed: {message}")]
    Push { image: String, message: String },
    #[error("{0}")]
    Registry(#[from] crate::registry::auth::AuthError),
    #[error(
        "dockerd at {host} stalled: {what} for {} (--stall-timeout / {})",
        crate::timeouts::seconds(*after),
        crate::timeouts::STALL_TIMEOUT_ENV
    )]
    DaemonStalled {
        host: String,
        what: String,
        after: std::time::Duration,
    },
    #[error(
        "the envd builder needs the envd CLI ({detail}): install it (`pip install envd=={}`) or set {} to its path",
        envd::ENVD_VERSION,
        envd::ENVD_ENV
    )]
    EnvdMissing { detail: String },
}
