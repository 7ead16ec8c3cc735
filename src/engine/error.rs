//! The engine's one error type: what stopped an image from being decided or made, with its
//! cause kept (`#[source]`, or the cause's own type). `crate::Error` wraps it and gives each
//! variant its exit code.

use crate::builders::BackendError;
use crate::plan::PlanError;
use crate::spec::FieldAt;
use crate::tag::TagError;

/// Why `build` or `plan` stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The files changed under the build, or the tag could not be computed.
    #[error(transparent)]
    Tag(#[from] TagError),
    /// The spec cannot be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A builder, the daemon, a registry or an output failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The spec asks for what cannot be made (a field, where it is written, and why).
    #[error("{}image `{name}`: {message}", at.as_ref().map(|a| format!("{a}: ")).unwrap_or_default())]
    Invalid {
        name: String,
        /// The field the error is about, where it is written.
        at: Option<FieldAt>,
        message: String,
    },
    /// No strategy applies ([`super::Refusal`]).
    #[error("{}image {image}: {refusal}", at.as_ref().map(|a| format!("{a}: ")).unwrap_or_default())]
    Refused {
        image: String,
        #[source]
        refusal: super::Refusal,
        /// The field the refusal is about, where it is written.
        at: Option<FieldAt>,
    },
    /// A file of the spec could not be read.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::registry::auth::AuthError> for EngineError {
    fn from(e: crate::registry::auth::AuthError) -> Self {
        EngineError::Backend(e.into())
    }
}
