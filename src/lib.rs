//! imagespec: container images from a declarative ImageSpec, named exactly as flytekit names
//! them.
//!
//! The pipeline, one module per stage, each using only the stages below it (docs/architecture.md,
//! *Layout*): [`spec`] (files → model, normalised as flytekit's `__post_init__`) → [`tag`]
//! (flytekit-exact id, tag and image name, with [`source`]: which files go in) → [`plan`]
//! (typed, builder-neutral steps) → [`render`] (Dockerfile, build.envd, the context) →
//! [`engine`] (facts gathered once, a pure [`engine::decide`] to a [`engine::Strategy`],
//! [`engine::run`] executing it through [`builders`] and [`publish`]), on [`oci`] values
//! ([`oci::Digest`], [`oci::Platforms`], [`oci::image::Image`]) and the [`registry`] client.
//!
//! The first stages run offline:
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! # let spec_path = dir.path().join("spec.toml");
//! # std::fs::write(&spec_path, "name = \"app\"\nregistry = \"localhost:5000\"\npackages = [\"requests\"]\n")?;
//! let file = imagespec::load(&spec_path)?; // spec.toml, .yaml or .json
//! let (_, spec) = file.select(None)?; // the one image it describes
//! let tag = imagespec::tag::compute(spec, &Default::default())?; // flytekit's name
//! assert_eq!(tag.image.host(), "localhost:5000"); // an oci::ImageRef
//! assert!(tag.image.to_string().starts_with("localhost:5000/app:"));
//! let plan = imagespec::plan::BuildPlan::new(spec, &tag, &Default::default())?;
//! let dockerfile = imagespec::render::dockerfile(&plan);
//! assert!(dockerfile.contains("FROM "));
//! // The dependency image (everything but the source), named by what it installs.
//! assert!(plan.dependencies().image.tag().is_some_and(|t| t.starts_with("deps-")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Building asks the registry (and, for what needs one, a daemon): [`engine::run::build`]
//! gathers the facts, decides and runs, for the spec's nested base specs first:
//!
//! ```no_run
//! # async fn example(spec: &imagespec::NormalizedSpec) -> Result<(), imagespec::Error> {
//! use imagespec::engine::run::{BuildOptions, build};
//! let options = BuildOptions::from_env(Default::default(), Default::default());
//! let progress = imagespec::progress::Progress::new(false, false);
//! let outcome = build(spec, &options, &progress).await?;
//! println!("{} {:?} {:?}", outcome.image, outcome.strategy, outcome.digest);
//! # Ok(())
//! # }
//! ```

mod apt;
mod batched;
pub mod builders;
pub mod engine;
mod exit;
pub mod explain;
/// The bodies of the fuzz targets in `fuzz/`, replayed by `cargo test` over
/// `testdata/fuzz/`: for the fuzzers and that test, not an API.
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
mod lock;
pub mod oci;
pub mod plan;
pub mod progress;
pub mod prune;
pub mod publish;
pub mod py;
pub mod redact;
pub mod registry;
pub mod render;
pub mod sbom;
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
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error(transparent)]
    Explain(#[from] explain::ExplainError),
    #[error(transparent)]
    Sbom(#[from] sbom::image::SbomError),
    /// `SOURCE_DATE_EPOCH` is set to something that is no time.
    #[error(transparent)]
    Epoch(#[from] oci::epoch::EpochError),
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
        use engine::EngineError;
        match self {
            Error::Spec(_) | Error::Tag(_) | Error::Plan(_) => ExitCode::BadInput,
            Error::Io { .. } | Error::Epoch(_) => ExitCode::BadInput,
            Error::Backend(e) => backend_kind(e),
            Error::Engine(e) => match e {
                EngineError::Tag(_)
                | EngineError::Plan(_)
                | EngineError::Invalid { .. }
                | EngineError::Io { .. } => ExitCode::BadInput,
                EngineError::Refused { refusal, .. } => ExitCode::from_code(refusal.exit_code()),
                EngineError::Backend(e) => backend_kind(e),
            },
            Error::Unknown { .. } => ExitCode::CannotTell,
            Error::Explain(e) => ExitCode::from_code(e.exit_code()),
            // An image that is not there is input; reading it failing is a failure.
            Error::Sbom(sbom::image::SbomError::NotFound { .. }) => ExitCode::BadInput,
            Error::Sbom(sbom::image::SbomError::Reference(_)) => ExitCode::BadInput,
            Error::Sbom(_) => ExitCode::Failed,
            // Refusing to render into a directory with other files in it is bad input.
            Error::Write(render::WriteError::Io { .. }) => ExitCode::Failed,
            Error::Write(_) => ExitCode::BadInput,
            Error::System { .. } => ExitCode::Failed,
        }
    }

    /// The process exit code: [`Error::kind`] as a number.
    pub fn exit_code(&self) -> i32 {
        self.kind() as i32
    }
}

/// What a builder's, daemon's, registry's or output's failure means for the caller.
fn backend_kind(e: &builders::BackendError) -> ExitCode {
    use crate::registry::auth::AuthError;
    match e {
        // A docker config file that cannot be read is input; a credential helper that fails
        // leaves the registry unasked.
        builders::BackendError::Registry(AuthError::Helper { .. }) => ExitCode::CannotTell,
        builders::BackendError::Registry(_) => ExitCode::BadInput,
        // A link planted where the output needs a directory: the output named is unusable.
        builders::BackendError::Output {
            source: publish::layout::LayoutError::Link { .. },
            ..
        } => ExitCode::BadInput,
        _ => ExitCode::Failed,
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
