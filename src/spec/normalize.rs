//! Defaults and normalisation exactly as flytekit's `ImageSpec.__post_init__` applies them.

use super::model::{BaseImage, CopyMode, Spec};
use std::ops::Deref;
use std::path::{Path, PathBuf};

/// The platform flytekit picks when a spec names none.
pub fn default_platform(registry: Option<&str>, host_arch: &str) -> &'static str {
    // __post_init__: ARM64 only for `localhost:` registries on an arm64 host.
    let local = registry.is_some_and(|r| r.to_lowercase().starts_with("localhost:"));
    if local && matches!(host_arch, "aarch64" | "arm64") {
        "linux/arm64"
    } else {
        "linux/amd64"
    }
}

/// A spec after `__post_init__`: `name` and `registry` lower-cased, `platform` and
/// `source_copy_mode` defaulted, nested base specs normalised too. Relative paths in it are
/// relative to [`NormalizedSpec::dir`].
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizedSpec {
    spec: Spec,
    base: Option<NormalizedBase>,
    dir: PathBuf,
}

/// A normalised `base_image`.
#[derive(Debug, Clone, PartialEq)]
pub enum NormalizedBase {
    Ref(String),
    Spec(Box<NormalizedSpec>),
}

impl NormalizedSpec {
    /// Normalises `spec`, whose relative paths are relative to `dir`.
    pub fn new(mut spec: Spec, dir: &Path) -> NormalizedSpec {
        spec.name = Some(spec.name.as_deref().unwrap_or("flytekit").to_lowercase());
        if let Some(registry) = spec.registry.as_mut() {
            *registry = registry.to_lowercase();
        }
        if spec.platform.is_none() {
            let registry = spec.registry.as_deref().filter(|r| !r.is_empty());
            spec.platform = Some(default_platform(registry, std::env::consts::ARCH).to_string());
        }
        if spec.source_root.is_some() && spec.source_copy_mode.is_none() {
            spec.source_copy_mode = Some(CopyMode::LoadedModules);
        }
        let base = spec.base_image.take().map(|b| match b {
            BaseImage::Ref(r) => NormalizedBase::Ref(r),
            BaseImage::Spec(s) => NormalizedBase::Spec(Box::new(NormalizedSpec::new(*s, dir))),
        });
        NormalizedSpec {
            spec,
            base,
            dir: dir.to_path_buf(),
        }
    }

    /// The lower-cased image name.
    pub fn name(&self) -> &str {
        self.spec.name.as_deref().unwrap_or("flytekit")
    }

    /// The target platform(s), e.g. `linux/amd64`.
    pub fn platform(&self) -> &str {
        self.spec.platform.as_deref().unwrap_or("linux/amd64")
    }

    /// The registry, when one is set and non-empty.
    pub fn registry(&self) -> Option<&str> {
        self.spec.registry.as_deref().filter(|r| !r.is_empty())
    }

    /// The normalised base image.
    pub fn base(&self) -> Option<&NormalizedBase> {
        self.base.as_ref()
    }

    /// The directory relative paths in this spec are relative to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Resolves a path written in the spec against [`NormalizedSpec::dir`].
    pub fn resolve(&self, written: &str) -> PathBuf {
        self.dir.join(written)
    }
}

impl Deref for NormalizedSpec {
    type Target = Spec;
    fn deref(&self) -> &Spec {
        &self.spec
    }
}
