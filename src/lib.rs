//! imagespec: container images from a declarative ImageSpec, named exactly as flytekit names
//! them.
//!
//! The pipeline, one module per stage: [`spec`] (files → model, normalised as flytekit's
//! `__post_init__`) → [`tag`] (flytekit-exact id, tag and image name) with [`source`] (which
//! files go in, and their digests).
//!
//! ```no_run
//! let file = imagespec::load(std::path::Path::new("spec.toml"))?;
//! let (_, spec) = file.select(None)?;
//! let tag = imagespec::tag::compute(spec, &Default::default())?;
//! println!("{}", tag.image);
//! # Ok::<(), imagespec::Error>(())
//! ```

pub mod backend;
pub mod build;
pub mod context;
pub mod engine;
pub mod explain;
pub mod inspect;
pub mod oci;
pub mod progress;
pub mod registry;
pub mod render;
pub mod source;
pub mod spec;
pub mod tag;

pub use spec::{NormalizedSpec, SpecError, SpecFile};
pub use tag::{ImageTag, TagError, TagOptions};

/// Any error of the library, with the exit code the CLI gives it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Tag(#[from] TagError),
    #[error(transparent)]
    Plan(#[from] context::PlanError),
    #[error(transparent)]
    Write(#[from] context::WriteError),
    #[error(transparent)]
    Backend(#[from] backend::BackendError),
    #[error("image `{name}`: {message}")]
    Builder { name: String, message: String },
    #[error(transparent)]
    Explain(#[from] explain::ExplainError),
    #[error("image {image}: {refusal}")]
    Refused {
        image: String,
        refusal: engine::Refusal,
    },
    #[error("cannot tell whether {image} exists: {reason}")]
    Unknown { image: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// 2 for bad input (the spec or what it points at), 1 for anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Spec(_) => 2,
            Error::Tag(_) => 2,
            Error::Plan(_) => 2,
            Error::Write(_) => 1,
            Error::Backend(backend::BackendError::Registry(_)) => 2,
            Error::Backend(_) => 1,
            Error::Builder { .. } => 2,
            Error::Refused { refusal, .. } => refusal.exit_code(),
            Error::Explain(e) => e.exit_code(),
            // flytekit's `None`: not bad input, but the contract of `exists` is exit 2.
            Error::Unknown { .. } => 2,
            Error::Io { .. } => 2,
        }
    }
}

/// Loads a spec file.
pub fn load(path: &std::path::Path) -> Result<SpecFile, Error> {
    Ok(SpecFile::load(path)?)
}

/// A Python `ImageSpec` has no "is this my image" answer outside a running task; this is
/// flytekit's check: the process runs in the image built from `spec` when `_F_IMG_ID`
/// equals the spec's id.
pub fn is_container(spec: &NormalizedSpec) -> bool {
    std::env::var("_F_IMG_ID").is_ok_and(|v| v == tag::id(spec))
}
