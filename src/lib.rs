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

pub mod builders;
pub mod engine;
pub mod exit;
pub mod explain;
/// The bodies of the fuzz targets in `fuzz/`, replayed by `cargo test` over
/// `testdata/fuzz/`: for the fuzzers and that test, not an API.
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
pub mod lock;
pub mod oci;
pub mod plan;
pub mod progress;
pub mod prune;
pub mod publish;
pub mod py;
pub mod redact;
pub mod registry;
pub mod render;
pub mod scratch;
pub mod source;
pub mod spec;
pub mod tag;
pub mod timeouts;

pub use exit::ExitCode;
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
    Plan(#[from] plan::PlanError),
    #[error(transparent)]
    Write(#[from] render::WriteError),
    #[error(transparent)]
    Backend(#[from] builders::BackendError),
    #[error("{}image `{name}`: {message}", at.as_ref().map(|a| format!("{a}: ")).unwrap_or_default())]
    Builder {
        name: String,
        /// The field the error is about, where it is written.
        at: Option<spec::FieldAt>,
        message: String,
    },
    #[error(transparent)]
    Explain(#[from] explain::ExplainError),
    #[error("{}image {image}: {refusal}", at.as_ref().map(|a| format!("{a}: ")).unwrap_or_default())]
    Refused {
        image: String,
        refusal: engine::Refusal,
        /// The field the refusal is about, where it is written.
        at: Option<spec::FieldAt>,
    },
    #[error("cannot tell whether {image} exists: {reason}")]
    Unknown { image: String, reason: String },
    /// A file the command line names could not be read.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The machine failed us (no async runtime): nothing to do with the input.
    #[error("{context}: {source}")]
    System {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// What the error means for the caller: bad input (2) when the spec, a file it names or
    /// the command line is wrong; cannot tell (3) when whether the image exists is unknown;
    /// failed (1) for anything that went wrong while doing the work.
    pub fn kind(&self) -> ExitCode {
        use crate::registry::auth::AuthError;
        match self {
            Error::Spec(_) | Error::Tag(_) | Error::Plan(_) | Error::Builder { .. } => {
                ExitCode::BadInput
            }
            Error::Io { .. } => ExitCode::BadInput,
            // A docker config file that cannot be read is input; a credential helper that
            // fails leaves the registry unasked.
            Error::Backend(builders::BackendError::Registry(AuthError::Helper { .. })) => {
                ExitCode::CannotTell
            }
            Error::Backend(builders::BackendError::Registry(_)) => ExitCode::BadInput,
            // A link planted where the output needs a directory: the output named is unusable.
            Error::Backend(builders::BackendError::Output {
                source: publish::layout::LayoutError::Link { .. },
                ..
            }) => ExitCode::BadInput,
            Error::Unknown { .. } => ExitCode::CannotTell,
            Error::Refused { refusal, .. } => ExitCode::from_code(refusal.exit_code()),
            Error::Explain(e) => ExitCode::from_code(e.exit_code()),
            // Refusing to render into a directory with other files in it is bad input.
            Error::Write(render::WriteError::Io { .. }) => ExitCode::Failed,
            Error::Write(_) => ExitCode::BadInput,
            Error::Backend(_) | Error::System { .. } => ExitCode::Failed,
        }
    }

    /// The process exit code: [`Error::kind`] as a number.
    pub fn exit_code(&self) -> i32 {
        self.kind() as i32
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
