//! Builders: one file per backend. `docker` builds through dockerd's BuildKit, `envd` with
//! the envd CLI (into dockerd too), `daemonless` makes dependency images with uv and no
//! daemon; `emulation` says whether this machine runs another platform's programs
//! (binfmt_misc), before a daemon builds one.

pub mod builder;
pub(crate) mod buildkit_status;
pub(crate) mod daemonless;
pub(crate) mod docker;
pub(crate) mod emulation;
pub(crate) mod envd;
pub(crate) mod registry;
pub mod remote;
pub(crate) mod session;

use crate::registry::client::RegistryError;

/// A registry failure as a build's: a push when it was writing, a read otherwise.
impl From<RegistryError> for BackendError {
    fn from(source: RegistryError) -> Self {
        if source.operation.writes() {
            BackendError::RegistryPush { source }
        } else {
            BackendError::RegistryRead { source }
        }
    }
}

/// A publish a builder made itself (uv's dependency image): a registry's failure is the
/// read's or the push's, a layout's the output's.
impl From<crate::publish::PublishError> for BackendError {
    fn from(e: crate::publish::PublishError) -> Self {
        use crate::publish::PublishError;
        match e {
            PublishError::Registry(e) => e.into(),
            PublishError::Layout(source) => BackendError::Output {
                target: String::new(),
                source,
            },
            PublishError::Check(e) => BackendError::Context(e.to_string()),
            PublishError::Io { context, source } => {
                BackendError::Context(format!("{context}: {source}"))
            }
        }
    }
}

/// A build that did not happen, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("dockerd is not reachable at {host}: {detail}; start it or set DOCKER_HOST")]
    DaemonUnreachable { host: String, detail: String },
    #[error(
        "platform `{platform}` lists several platforms: dockerd 20.10's builder (no buildx) builds one platform per image; build them one at a time"
    )]
    MultiPlatform { platform: crate::oci::Platforms },
    #[error("build context: {0}")]
    Context(String),
    /// A name made for a build (a platform's tag, a working tag) is not an image name.
    #[error("image name for the build: {0}")]
    Name(#[from] crate::oci::reference::ReferenceError),
    /// A step failed: its label, the command that failed (when BuildKit names one) and how
    /// it ended, and the tail of its output, unless the progress view showed all of it
    /// (`log_shown`): each is said once.
    #[error("{}", build_failure(step.as_deref(), command.as_deref(), message, log, *log_shown))]
    BuildFailed {
        step: Option<String>,
        command: Option<String>,
        message: String,
        log: Vec<String>,
        log_shown: bool,
    },
    #[error("--output {target}: {source}")]
    Output {
        target: String,
        #[source]
        source: crate::publish::layout::LayoutError,
    },
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error("building dependencies without a daemon: {0}")]
    Daemonless(#[from] daemonless::DaemonlessError),
    #[error(transparent)]
    Emulation(#[from] emulation::EmulationError),
    /// A remote buildkitd unreachable, refusing TLS, lacking a platform.
    #[error(transparent)]
    Remote(#[from] remote::RemoteError),
    /// dockerd's push failed (its words).
    #[error("push of {image} failed: {message}")]
    Push { image: String, message: String },
    /// A write to the registry (a blob upload, a manifest push) failed.
    #[error("push failed: {source}")]
    RegistryPush {
        #[source]
        source: crate::registry::client::RegistryError,
    },
    /// A read from the registry (a manifest, a config, a layer, whether a blob is there)
    /// failed: never reported as a failed push.
    #[error("{source}")]
    RegistryRead {
        #[source]
        source: crate::registry::client::RegistryError,
    },
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

/// The text of [`BackendError::BuildFailed`].
fn build_failure(
    step: Option<&str>,
    command: Option<&str>,
    message: &str,
    log: &[String],
    log_shown: bool,
) -> String {
    let mut text = format!(
        "build failed{}: {message}",
        step.map(|s| format!(" at step `{s}`")).unwrap_or_default()
    );
    if let Some(command) = command {
        text.push_str(&format!("\n  command: {command}"));
    }
    if log_shown {
        text.push_str("\n  (its output is above)");
    } else if !log.is_empty() {
        text.push_str(&format!(
            "\n--- step output (last {} lines) ---\n{}",
            log.len(),
            log.join("\n")
        ));
    }
    text
}

/// BuildKit's message for a step whose command failed, as (the command, how it ended):
/// `executor failed running [/bin/sh -c CMD]: exit code: 3` (dockerd 20.10's BuildKit) or
/// `process "/bin/sh -c CMD" did not complete successfully: exit code: 3` (later ones),
/// after any wrapping ("failed to solve: ..."). `None` for any other failure.
pub(crate) fn failed_command(message: &str) -> Option<(String, String)> {
    const OLD: &str = "executor failed running [";
    const NEW: (&str, &str) = ("process \"", "\" did not complete successfully: ");
    let (argv, ending) = if let Some(start) = message.find(OLD) {
        let rest = &message[start + OLD.len()..];
        let end = rest.rfind("]: ")?;
        (rest[..end].to_string(), &rest[end + 3..])
    } else {
        let rest = &message[message.find(NEW.0)? + NEW.0.len()..];
        let end = rest.rfind(NEW.1)?;
        (
            rest[..end].replace("\\\"", "\""),
            &rest[end + NEW.1.len()..],
        )
    };
    let command = ["/bin/sh -c ", "/bin/bash -c "]
        .iter()
        .find_map(|shell| argv.strip_prefix(shell))
        .unwrap_or(&argv);
    Some((command.to_string(), ending.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_read_is_not_a_failed_push() {
        use crate::registry::client::{Operation, RegistryErrorKind};
        let failure = |operation| {
            BackendError::from(RegistryError::new(
                "r/app:1",
                operation,
                RegistryErrorKind::NestedIndex,
            ))
        };
        let read = failure(Operation::ReadManifest);
        assert!(
            matches!(read, BackendError::RegistryRead { .. }),
            "{read:?}"
        );
        assert_eq!(
            read.to_string(),
            "registry r/app:1: reading the manifest: an index inside an index"
        );
        let push = failure(Operation::PushManifest);
        assert!(
            matches!(push, BackendError::RegistryPush { .. }),
            "{push:?}"
        );
        assert!(
            push.to_string()
                .starts_with("push failed: registry r/app:1: pushing")
        );
        assert!(std::error::Error::source(&push).is_some());
    }

    #[test]
    fn a_failed_command_is_read_from_either_buildkit_message() {
        assert_eq!(
            failed_command(
                "executor failed running [/bin/sh -c echo a && [ -x b ] || exit 3]: exit code: 3"
            ),
            Some(("echo a && [ -x b ] || exit 3".into(), "exit code: 3".into()))
        );
        assert_eq!(
            failed_command(
                r#"failed to solve: process "/bin/sh -c echo \"hi\" && false" did not complete successfully: exit code: 1"#
            ),
            Some((r#"echo "hi" && false"#.into(), "exit code: 1".into()))
        );
        assert_eq!(
            failed_command("executor failed running [/bin/bash -c mkdir -p $HOME]: exit code: 2"),
            Some(("mkdir -p $HOME".into(), "exit code: 2".into()))
        );
        assert_eq!(
            failed_command("failed to compute cache key: \"/src\" not found"),
            None
        );
    }

    #[test]
    fn a_build_failure_says_the_command_and_the_output_once() {
        let log = vec!["preparing".to_string(), "BOOM".to_string()];
        let shown = build_failure(
            Some("run command"),
            Some("exit 3"),
            "exit code: 3",
            &log,
            true,
        );
        assert_eq!(
            shown,
            "build failed at step `run command`: exit code: 3\n  command: exit 3\n  (its output is above)"
        );
        let tail = build_failure(
            Some("run command"),
            Some("exit 3"),
            "exit code: 3",
            &log,
            false,
        );
        assert_eq!(
            tail,
            "build failed at step `run command`: exit code: 3\n  command: exit 3\n--- step output (last 2 lines) ---\npreparing\nBOOM"
        );
        assert_eq!(
            build_failure(None, None, "canceled", &[], false),
            "build failed: canceled"
        );
    }
}
