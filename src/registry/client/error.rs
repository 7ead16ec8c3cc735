//! What a registry request was doing when it failed ([`Operation`]) and why
//! ([`RegistryErrorKind`]): unreachable, stalled, credentials refused, not found, an answer
//! refused by our checks, or a request that failed otherwise, each with its cause kept as
//! the error's source.
//!
//! Every message is one line: a kind's text holds the texts of its sources (a chain printer
//! that skips causes already said prints nothing more), except a connection failure's, of
//! which only the innermost cause is said ("Connection refused": the wrappers say nothing).

use super::reads::Limit;
use crate::oci::Digest;
use crate::oci::digest::DigestError;
use crate::oci::manifest::ManifestError;
use crate::registry::body::BodyError;
use crate::registry::token::TokenError;
use crate::timeouts::Stalled;
use oci_client::errors::OciDistributionError;
use std::path::PathBuf;
use std::time::Duration;

/// A registry request that failed (after retries, when it was worth retrying): the image
/// (or repository) asked about, what was being done, and why.
#[derive(Debug, thiserror::Error)]
#[error("registry {image}: {}", self.detail())]
pub struct RegistryError {
    pub image: String,
    pub operation: Operation,
    /// How many times the request was sent (more than 1: it was retried).
    pub attempts: u32,
    /// Boxed: a `Result` with this error stays small.
    #[source]
    pub kind: Box<RegistryErrorKind>,
}

impl RegistryError {
    /// An error of one attempt (nothing was retried).
    /// `image`: the image or repository asked about, as its messages name it.
    pub fn new(
        image: &(impl std::fmt::Display + ?Sized),
        operation: Operation,
        kind: RegistryErrorKind,
    ) -> RegistryError {
        RegistryError {
            image: image.to_string(),
            operation,
            attempts: 1,
            kind: Box::new(kind),
        }
    }

    /// The registry answered that the manifest, the repository or the platform asked for
    /// does not exist.
    pub fn not_found(&self) -> bool {
        matches!(
            *self.kind,
            RegistryErrorKind::NotFound { .. } | RegistryErrorKind::NoPlatform { .. }
        )
    }

    /// The operation and why it failed, without the image: `reading the manifest: …`.
    pub fn detail(&self) -> String {
        let mut text = format!("{}: {}", self.operation, self.kind);
        if self.attempts > 1 {
            text.push_str(&format!(" ({} attempts)", self.attempts));
        }
        text
    }
}

/// What a registry request was doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `HEAD` of a manifest: does the tag exist, and its digest.
    CheckManifest,
    ReadManifest,
    ReadConfig,
    /// Reading the blob of this digest (as the manifest wrote it, cut to one line).
    ReadBlob(String),
    /// Asking whether the repository has the blob (before an upload).
    CheckBlob(String),
    UploadBlob(String),
    /// Pushing the manifest under the tag: the last step of a push.
    PushManifest,
    /// Pushing a platform's manifest by its digest (inside an index).
    PushPlatformManifest,
    ListTags,
    /// Deleting the manifest of this digest.
    Delete(String),
}

impl Operation {
    /// Whether the operation writes to the registry (a read failure is never a failed push).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Operation::UploadBlob(_)
                | Operation::PushManifest
                | Operation::PushPlatformManifest
                | Operation::Delete(_)
        )
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Operation::CheckManifest => f.write_str("HEAD of the manifest"),
            Operation::ReadManifest => f.write_str("reading the manifest"),
            Operation::ReadConfig => f.write_str("reading the image config"),
            Operation::ReadBlob(digest) => write!(f, "reading blob {digest}"),
            Operation::CheckBlob(digest) => write!(f, "checking blob {digest}"),
            Operation::UploadBlob(digest) => write!(f, "uploading blob {digest}"),
            Operation::PushManifest => f.write_str("pushing the manifest"),
            Operation::PushPlatformManifest => f.write_str("pushing a platform manifest"),
            Operation::ListTags => f.write_str("listing the tags"),
            Operation::Delete(digest) => write!(f, "deleting {digest}"),
        }
    }
}

/// The parse error of a URL (reqwest's `Url`).
pub type UrlError = <reqwest::Url as std::str::FromStr>::Err;

/// Why a registry request failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryErrorKind {
    #[error(
        "cannot connect to {host}: no connection within {} (--connect-timeout / {})",
        crate::timeouts::seconds(*after),
        crate::timeouts::CONNECT_TIMEOUT_ENV
    )]
    ConnectTimeout {
        host: String,
        after: Duration,
        /// The request's error (not a source: it says only "operation timed out").
        transport: reqwest::Error,
    },
    #[error("cannot connect to {host}: {source}")]
    Unreachable {
        host: String,
        #[source]
        source: Transport,
    },
    #[error(
        "{host} stalled: {source} (--stall-timeout / {})",
        crate::timeouts::STALL_TIMEOUT_ENV
    )]
    Stalled {
        host: String,
        #[source]
        source: Stalled,
    },
    /// The registry refused access; [`Refusal`] says whose and why.
    #[error("{}", refusal_message(refusal, host, repository))]
    Refused {
        host: String,
        repository: String,
        refusal: Refusal,
    },
    /// The registry answered that the manifest or repository does not exist.
    #[error("{}", with_causes(source))]
    NotFound {
        #[source]
        source: OciDistributionError,
    },
    /// The index has no image for the platform asked for.
    #[error("the index has no image for {platform}")]
    NoPlatform { platform: crate::oci::Platform },
    /// Our checks of what the registry (or its token server) sent refused it.
    #[error("{host}'s answer is refused: {source}")]
    AnswerRefused {
        host: String,
        #[source]
        source: AnswerError,
    },
    #[error("an index inside an index")]
    NestedIndex,
    #[error(
        "its descriptor says {size} bytes, more than the {} a config may have",
        crate::oci::manifest::size(crate::oci::manifest::CONFIG_LIMIT)
    )]
    ConfigTooLarge { size: u64 },
    #[error("{source}")]
    Config {
        #[source]
        source: ManifestError,
    },
    /// The manifest and its config do not make an image (a config of another digest).
    #[error("{source}")]
    Image {
        #[source]
        source: crate::oci::image::ImageError,
    },
    /// A digest (a manifest's, as written) that is not one.
    #[error("{source}")]
    Digest {
        #[source]
        source: DigestError,
    },
    /// A tag list's next page on another host: credentials go to the registry only, and a
    /// listing cut short could make a used dependency image look unused.
    #[error("the next page is on another host: {next}")]
    NextPageElsewhere { next: String },
    #[error("{source}")]
    Url {
        #[source]
        source: UrlError,
    },
    #[error(
        "405 Method Not Allowed: {host} does not allow deleting manifests (distribution: \
         `storage: delete: enabled: true`, or REGISTRY_STORAGE_DELETE_ENABLED=true)"
    )]
    DeleteNotAllowed { host: String },
    #[error(
        "{status}: {who} may not delete from {host}/{repository} (credentials with the right \
         to delete are needed: `docker login {host}`, or --registry-config)"
    )]
    DeleteRefused {
        status: u16,
        who: String,
        host: String,
        repository: String,
    },
    /// Any other failure of the request (a reset connection, an error answer…).
    #[error("{}", with_causes(source))]
    Request {
        #[source]
        source: OciDistributionError,
    },
}

/// A connection failure, said by its innermost cause ("Connection refused"); the whole
/// reqwest error is kept.
#[derive(Debug)]
pub struct Transport(pub reqwest::Error);

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut cause: &(dyn std::error::Error + 'static) = &self.0;
        while let Some(next) = cause.source() {
            cause = next;
        }
        write!(f, "{cause}")
    }
}

impl std::error::Error for Transport {}

/// Who was refused, and why, as the one line a user reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials were found; `config` is the file looked in.
    Anonymous {
        config: Option<PathBuf>,
    },
    /// The credentials themselves were refused (`reason`: the token server's word).
    BadCredentials {
        user: String,
        reason: Option<String>,
    },
    /// The credentials are good, but not for this (a push with pull-only rights).
    NoPush {
        user: String,
    },
    NoPull {
        user: String,
    },
}

/// The line for `refusal` at `host` on `repository`.
pub fn refusal_message(refusal: &Refusal, host: &str, repository: &str) -> String {
    match refusal {
        Refusal::Anonymous { config } => format!(
            "anonymous access to {host}/{repository} denied: no credentials found for {host} \
             in {} (`docker login {host}`, or the spec's `registry_config`)",
            config
                .as_ref()
                .map_or("docker's config".into(), |p| p.display().to_string())
        ),
        Refusal::BadCredentials { user, reason } => format!(
            "authentication failed for {user} at {host}{} (check the credentials: `docker \
             login {host}`, or the spec's `registry_config`)",
            reason.as_ref().map_or(String::new(), |r| format!(": {r}"))
        ),
        Refusal::NoPush { user } => format!(
            "{user} may pull but not push {host}/{repository} (use credentials with push \
             access)"
        ),
        Refusal::NoPull { user } => format!("{user} may not pull {host}/{repository}"),
    }
}

/// An error and its causes on one line (reqwest's own message says only "error sending
/// request"; the cause says why, e.g. an untrusted certificate).
pub(crate) fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    text
}

/// What the registry sent that our checks refuse: bounds, digests, manifest shape.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    /// A digest the registry named (`Docker-Content-Digest`) that is not one.
    #[error("{what}: {source}")]
    Digest {
        what: String,
        #[source]
        source: DigestError,
    },
    #[error("asked for the manifest {asked}, the registry answered {answered}")]
    OtherManifest { asked: String, answered: Digest },
    #[error("the manifest's content is not {whose} ({expected}): it is {actual}")]
    ManifestContent {
        whose: &'static str,
        expected: Digest,
        actual: Digest,
    },
    #[error("blob {digest} {limit}")]
    BlobTooLarge { digest: Digest, limit: Limit },
    #[error("the registry sent blob {digest} with other content (its digest is {actual})")]
    BlobContent { digest: Digest, actual: Digest },
    /// A body past its bound.
    #[error("{0}")]
    Body(BodyError),
    /// A token server's answer that is not a token (too large, not JSON, none in it).
    #[error("{0}")]
    Token(#[source] TokenError),
    /// oci-client's own finding (its words).
    #[error("{0}")]
    Said(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_says_the_image_the_operation_the_reason_and_the_attempts() {
        let mut e = RegistryError::new(
            "r:5000/app:1",
            Operation::UploadBlob("sha256:ab".into()),
            RegistryErrorKind::Stalled {
                host: "r:5000".into(),
                source: Stalled(Duration::from_secs(3)),
            },
        );
        e.attempts = 4;
        assert_eq!(
            e.to_string(),
            "registry r:5000/app:1: uploading blob sha256:ab: r:5000 stalled: no progress for \
             3 s (--stall-timeout / IMAGESPEC_STALL_TIMEOUT) (4 attempts)"
        );
        assert!(e.operation.writes() && !e.not_found());
        let missing = RegistryError::new(
            "r/app",
            Operation::ReadManifest,
            RegistryErrorKind::NoPlatform {
                platform: crate::oci::Platform::parse("linux/s390x").unwrap(),
            },
        );
        assert!(missing.not_found() && !missing.operation.writes());
        assert_eq!(
            missing.detail(),
            "reading the manifest: the index has no image for linux/s390x"
        );
    }

    #[test]
    fn every_source_is_said_in_the_message() {
        let bad_digest = || crate::oci::Digest::parse("sha256:x").unwrap_err();
        let refused_answer = RegistryErrorKind::AnswerRefused {
            host: "r".into(),
            source: AnswerError::Digest {
                what: "Docker-Content-Digest".into(),
                source: bad_digest(),
            },
        };
        for kind in [
            RegistryErrorKind::Digest {
                source: bad_digest(),
            },
            refused_answer,
        ] {
            let e = RegistryError::new("r/app", Operation::ReadManifest, kind);
            let message = e.to_string();
            let mut causes = 0;
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                assert!(message.contains(&cause.to_string()), "{cause}");
                causes += 1;
                source = cause.source();
            }
            // The kind, and the digest's own error below it.
            assert!(causes >= 2, "{message}");
        }
    }

    #[test]
    fn refusals_say_whose_and_what_to_do() {
        let anonymous = Refusal::Anonymous { config: None };
        assert!(refusal_message(&anonymous, "r", "app").contains("in docker's config"));
        let push = Refusal::NoPush { user: "ro".into() };
        assert_eq!(
            refusal_message(&push, "r", "app"),
            "ro may pull but not push r/app (use credentials with push access)"
        );
    }
}
