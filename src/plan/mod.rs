//! The plan: what an image holds, typed and builder-neutral — a [`BuildPlan`] (Dockerfile
//! builders, the registry fast path, uv without a daemon) or an [`EnvdPlan`], made once from
//! the normalised spec and its tag. It holds no builder syntax: `render` turns it into a
//! Dockerfile or `build.envd`, writes the context, and computes its dependency key.
//!
//! The plan follows flytekit 1.16's `create_docker_context`, and records every file the
//! build needs: the source files are the very [`SourceSet`](crate::source::SourceSet) the
//! tag hashed (no second walk), `copy` entries, lock files and `requirements_uv.txt`.
//!
//! ```no_run
//! # use imagespec::{plan::{BuildPlan, RenderOptions}, tag};
//! let file = imagespec::load(std::path::Path::new("spec.toml"))?;
//! let (_, spec) = file.select(None)?;
//! let tag = tag::compute(spec, &Default::default())?;
//! let plan = BuildPlan::new(spec, &tag, &RenderOptions::default())?;
//! plan.write(std::path::Path::new("build-context"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod copies;
mod envd;
mod python;
pub use copies::CopyStep;
pub use envd::{
    BUILD_ENVD, CondaInstall, CudaInstall, ENVD_REQUIREMENTS, ENVD_ROOT_DIR, EnvdCopy, EnvdPlan,
};
mod image;
#[cfg(test)]
pub(crate) use image::plan_in_dir;

pub use crate::source::layer::RootEntry;
pub use image::{
    BuildPlan, ContextFile, DEPENDENCY_LABEL, FLYTEKIT_REQUIREMENT, Flavor, IndexSecret,
    Micromamba, PythonInstall, RenderOptions, Secret, index_credentials_warnings,
};

use crate::spec::FieldAt;

/// A spec the builder cannot turn into a Dockerfile, as flytekit's builder would refuse it.
/// Each variant says where the field at fault was written (`at`).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "{at}: image `{name}`: `cuda`/`cudnn` are not used by the default builder: install GPU libraries from PyPI or conda (`nvidia` channel), or use a `base_image` with CUDA preinstalled (flytekit refuses this spec too)"
    )]
    Cuda { at: FieldAt, name: String },
    #[error("{at}: image `{name}`: `{field}` is not supported together with `python_exec`")]
    CondaWithPythonExec {
        at: FieldAt,
        name: String,
        field: &'static str,
    },
    #[error(
        "{at}: image `{name}`: `requirements = {lock}` and `packages` are mutually exclusive (lock files pin everything)"
    )]
    LockWithPackages {
        at: FieldAt,
        name: String,
        lock: String,
    },
    #[error("{at}: image `{name}`: to use {lock}, put a pyproject.toml next to it ({} is missing)", missing.display())]
    MissingPyproject {
        at: FieldAt,
        name: String,
        lock: String,
        missing: std::path::PathBuf,
    },
    #[error(
        "{at}: image `{name}`: `copy` entry `{entry}`: absolute paths and paths with `..` are not allowed"
    )]
    CopyPath {
        at: FieldAt,
        name: String,
        entry: String,
    },
    #[error("{at}: image `{name}`: `copy` entry `{entry}`: {} is a dangling symlink, a special file or a directory link loop, which cannot be copied", path.display())]
    CopySpecial {
        at: FieldAt,
        name: String,
        entry: String,
        path: std::path::PathBuf,
    },
    #[error("{at}: image `{name}`: `copy` entry `{entry}`: {source}")]
    CopyLink {
        at: FieldAt,
        name: String,
        entry: String,
        #[source]
        source: Box<crate::source::SourceError>,
    },
    /// A file the plan would copy where it must not go: outside the context (or `/root`),
    /// or under a name an image layer reads as a whiteout.
    #[error(
        "{at}: image `{name}`: {}`{to}`, {why}",
        from.as_ref()
            .map(|f| format!("{} would be written to ", f.display()))
            .unwrap_or_else(|| "the path ".into())
    )]
    Placement {
        at: FieldAt,
        name: String,
        to: String,
        from: Option<std::path::PathBuf>,
        why: Misplaced,
    },
    #[error("{at}: image `{name}`: `copy` entry `{entry}` does not exist (relative to {})", dir.display())]
    CopyMissing {
        at: FieldAt,
        name: String,
        entry: String,
        dir: std::path::PathBuf,
    },
    #[error("{at}: image `{name}`: requirements file {}: {source}", path.display())]
    Requirements {
        at: FieldAt,
        name: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: image `{name}`: `pip_secret_mounts` source {} does not exist", path.display())]
    SecretMissing {
        at: FieldAt,
        name: String,
        path: std::path::PathBuf,
    },
    #[error("{at}: image `{name}`: expected {expected} for `{key}`")]
    BuilderOption {
        at: FieldAt,
        name: String,
        key: &'static str,
        expected: &'static str,
    },
    #[error(
        "{at}: image `{name}`: `python_exec` is not supported by the envd builder (flytekit refuses it too): remove it, or use the default builder"
    )]
    EnvdPythonExec { at: FieldAt, name: String },
    #[error(
        "{at}: image `{name}`: `cuda` needs `python_version` with the envd builder (flytekit: \"python_version is required when cuda and cudnn are specified\")"
    )]
    EnvdCudaWithoutPythonVersion { at: FieldAt, name: String },
    /// `builder_config.uv_image` or `.micromamba_image` is no image reference (flytekit
    /// would write it into a `FROM` line, which the build then refuses); `at` names the field.
    #[error("{at}: image `{name}`: {source}")]
    BuilderImage {
        at: FieldAt,
        name: String,
        key: &'static str,
        #[source]
        source: crate::oci::reference::ReferenceError,
    },
}

/// Why a copied file cannot go where the plan would put it ([`PlanError::Placement`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misplaced {
    /// Outside the build context (and `/root` in the image) once `..` is resolved.
    OutsideContext,
    /// A component named `.wh.NAME`: in an image layer a whiteout, which deletes `NAME`
    /// from the layers below instead of adding a file.
    Whiteout,
}

impl std::fmt::Display for Misplaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Misplaced::OutsideContext => {
                "which lies outside the build context (and outside /root in the image) once \
                 `..` is resolved: imagespec writes only inside its output; every source file \
                 must lie inside source_root after normalisation (a module path like \
                 `src/../../x.py` climbs out)"
            }
            Misplaced::Whiteout => {
                "and a name starting with `.wh.` is an OCI whiteout: in an image layer it \
                 deletes files of the layers below instead of adding one; rename it, or keep \
                 it out of what is copied (.dockerignore)"
            }
        })
    }
}
