//! The build context: a typed [`BuildPlan`] made once from the normalised spec and its tag,
//! then written to disk (Dockerfile + files) for a backend to build.
//!
//! The plan follows flytekit 1.16's `create_docker_context`, and records every file the
//! build needs: the source files are the very [`SourceSet`](crate::source::SourceSet) the
//! tag hashed (no second walk), `copy` entries, lock files and `requirements_uv.txt`.
//!
//! ```no_run
//! # use imagespec::{context::{BuildPlan, RenderOptions}, tag};
//! let file = imagespec::load(std::path::Path::new("spec.toml"))?;
//! let (_, spec) = file.select(None)?;
//! let tag = tag::compute(spec, &Default::default())?;
//! let plan = BuildPlan::new(spec, &tag, &RenderOptions::default())?;
//! plan.write(std::path::Path::new("build-context"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod envd;
pub use envd::{
    BUILD_ENVD, CondaInstall, CudaInstall, ENVD_REQUIREMENTS, ENVD_ROOT_DIR, EnvdCopy, EnvdPlan,
};
mod plan;
mod write;

pub use crate::source::layer::RootEntry;
pub(crate) use plan::python_json_list;
pub use plan::{
    BuildPlan, ContextFile, DEPENDENCY_LABEL, FLYTEKIT_REQUIREMENT, Flavor, Micromamba,
    PythonInstall, RenderOptions, Secret,
};
pub use write::{CONTEXT_MTIME, WriteError};

/// A spec the builder cannot turn into a Dockerfile, as flytekit's builder would refuse it.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "image `{name}`: `cuda`/`cudnn` are not used by the default builder: install GPU libraries from PyPI or conda (`nvidia` channel), or use a `base_image` with CUDA preinstalled (flytekit refuses this spec too)"
    )]
    Cuda { name: String },
    #[error("image `{name}`: `{field}` is not supported together with `python_exec`")]
    CondaWithPythonExec { name: String, field: &'static str },
    #[error(
        "image `{name}`: `requirements = {lock}` and `packages` are mutually exclusive (lock files pin everything)"
    )]
    LockWithPackages { name: String, lock: String },
    #[error("image `{name}`: to use {lock}, put a pyproject.toml next to it ({} is missing)", missing.display())]
    MissingPyproject {
        name: String,
        lock: String,
        missing: std::path::PathBuf,
    },
    #[error(
        "image `{name}`: `copy` entry `{entry}`: absolute paths and paths with `..` are not allowed"
    )]
    CopyPath { name: String, entry: String },
    #[error("image `{name}`: `copy` entry `{entry}`: {} is a dangling symlink, a special file or a directory link loop, which cannot be copied", path.display())]
    CopySpecial {
        name: String,
        entry: String,
        path: std::path::PathBuf,
    },
    #[error("image `{name}`: `copy` entry `{entry}`: {source}")]
    CopyLink {
        name: String,
        entry: String,
        #[source]
        source: Box<crate::source::SourceError>,
    },
    #[error(
        "image `{name}`: {}`{to}`, which lies outside the build context (and outside /root \
         in the image) once `..` is resolved: imagespec writes only inside its output; every \
         source file must lie inside source_root after normalisation (a module path like \
         `src/../../x.py` climbs out)",
        from.as_ref()
            .map(|f| format!("{} would be written to ", f.display()))
            .unwrap_or_else(|| "the context path ".into())
    )]
    OutsideContext {
        name: String,
        to: String,
        from: Option<std::path::PathBuf>,
    },
    #[error("image `{name}`: `copy` entry `{entry}` does not exist (relative to {})", dir.display())]
    CopyMissing {
        name: String,
        entry: String,
        dir: std::path::PathBuf,
    },
    #[error("image `{name}`: requirements file {}: {source}", path.display())]
    Requirements {
        name: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image `{name}`: `pip_secret_mounts` source {} does not exist", path.display())]
    SecretMissing {
        name: String,
        path: std::path::PathBuf,
    },
    #[error("image `{name}`: `builder_options.{key}`: expected {expected}")]
    BuilderOption {
        name: String,
        key: &'static str,
        expected: &'static str,
    },
    #[error(
        "image `{name}`: `python_exec` is not supported by the envd builder (flytekit refuses it too): remove it, or use the default builder"
    )]
    EnvdPythonExec { name: String },
    #[error(
        "image `{name}`: `cuda` needs `python_version` with the envd builder (flytekit: \"python_version is required when cuda and cudnn are specified\")"
    )]
    EnvdCudaWithoutPythonVersion { name: String },
}
