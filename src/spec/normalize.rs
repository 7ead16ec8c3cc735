//! Defaults and normalisation exactly as flytekit's `ImageSpec.__post_init__` applies them,
//! and the image names parsed by the OCI grammar (see [`crate::oci::reference`]).

use super::defaults::Defaults;
use super::error::SpecError;
use super::fields::Spec;
use super::model::{BaseImage, CopyMode};
use crate::oci::Platforms;
use crate::oci::reference::{ImageRef, ReferenceError, Registry, Repository};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
/// relative to [`NormalizedSpec::dir`]. Its image names (`[registry/]name`, a `base_image`
/// reference) are valid by the OCI distribution grammar.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizedSpec {
    spec: Spec,
    base: Option<NormalizedBase>,
    dir: PathBuf,
    repository: Repository,
    /// `platform`, parsed (the spec keeps it as written: flytekit hashes that).
    platforms: Platforms,
    /// The defaults of the spec's files (one value shared by a file's images).
    defaults: Arc<Defaults>,
    /// The fields the defaults filled in (hashed as if written).
    from_defaults: Vec<&'static str>,
}

/// A normalised `base_image`.
#[derive(Debug, Clone, PartialEq)]
pub enum NormalizedBase {
    /// An image, parsed (its `Display` is the name as written: flytekit hashes that).
    Ref(ImageRef),
    /// `base_image = ""`: no image (flytekit's default base), hashed as the empty string.
    Empty,
    Spec(Box<NormalizedSpec>),
}

impl NormalizedSpec {
    /// Normalises `spec`, whose relative paths are relative to `dir`; fails on an image
    /// name (`registry`, `name`, `base_image`) no registry would accept.
    pub fn new(spec: Spec, dir: &Path) -> Result<NormalizedSpec, SpecError> {
        NormalizedSpec::with_defaults(spec, dir, &Arc::default())
    }

    /// [`NormalizedSpec::new`] with the defaults of a defaults file: `registry` and
    /// `base_image`, when the spec (or a nested base spec) leaves them unset, are filled in
    /// first, exactly as if written, so they enter the id and tag as the field would (unless
    /// `keep_name`); the other defaults are kept for building ([`NormalizedSpec::defaults`])
    /// and never enter the name.
    pub fn with_defaults(
        mut spec: Spec,
        dir: &Path,
        defaults: &Arc<Defaults>,
    ) -> Result<NormalizedSpec, SpecError> {
        let mut from_defaults = Vec::new();
        if !defaults.keep_name {
            if let (None, Some(registry)) = (&spec.registry, &defaults.values.registry) {
                spec.registry = Some(registry.value.clone());
                from_defaults.push("registry");
            }
            if let (None, Some(base)) = (&spec.base_image, &defaults.values.base_image) {
                spec.base_image = Some(BaseImage::Ref(base.value.clone()));
                from_defaults.push("base_image");
            }
        }
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
        let invalid = |field: &str, e: ReferenceError| {
            let at = spec.at(field);
            SpecError::Type {
                file: at.file().to_path_buf(),
                pos: at.pos(),
                field: at.field().to_string(),
                expected: e.expected,
                found: e.found,
            }
        };
        let written = spec.platform.as_deref().unwrap_or_default();
        let platforms = Platforms::parse(written).map_err(|e| {
            let expected = "platforms `os/arch[/variant]`, comma-separated (e.g. `linux/amd64` \
                            or `linux/amd64,linux/arm64`)";
            invalid(
                "platform",
                ReferenceError {
                    expected: expected.into(),
                    found: e.to_string(),
                },
            )
        })?;
        let registry = Registry::parse(spec.registry.as_deref().unwrap_or(""))
            .map_err(|e| invalid("registry", e))?;
        let name = spec.name.as_deref().unwrap_or("flytekit");
        let repository =
            Repository::new(registry.as_ref(), name).map_err(|e| invalid("name", e))?;
        let base_ref = match &spec.base_image {
            Some(BaseImage::Ref(r)) if !r.is_empty() => {
                Some(r.parse().map_err(|e| invalid("base_image", e))?)
            }
            _ => None,
        };
        let base = match (spec.base_image.take(), base_ref) {
            (None, _) => None,
            (Some(BaseImage::Ref(_)), Some(image)) => Some(NormalizedBase::Ref(image)),
            (Some(BaseImage::Ref(_)), None) => Some(NormalizedBase::Empty),
            (Some(BaseImage::Spec(s)), _) => Some(NormalizedBase::Spec(Box::new(
                NormalizedSpec::with_defaults(*s, dir, defaults)?,
            ))),
        };
        Ok(NormalizedSpec {
            spec,
            base,
            dir: dir.to_path_buf(),
            repository,
            platforms,
            defaults: Arc::clone(defaults),
            from_defaults,
        })
    }

    /// The defaults of the spec's files (empty when none were read).
    pub fn defaults(&self) -> &Defaults {
        &self.defaults
    }

    /// The fields a defaults file filled in (`registry`, `base_image`): they changed the
    /// name as the same field written in the spec would.
    pub fn from_defaults(&self) -> &[&'static str] {
        &self.from_defaults
    }

    /// The image's repository, `[registry/]name`, parsed.
    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    /// The lower-cased image name.
    pub fn name(&self) -> &str {
        self.spec.name.as_deref().unwrap_or("flytekit")
    }

    /// The target platform(s) as written (what flytekit hashes), e.g. `linux/amd64`.
    pub fn platform(&self) -> &str {
        self.spec.platform.as_deref().unwrap_or("linux/amd64")
    }

    /// The target platforms, parsed.
    pub fn platforms(&self) -> &Platforms {
        &self.platforms
    }

    /// The registry, when one is set and non-empty.
    pub fn registry(&self) -> Option<&str> {
        self.spec.registry.as_deref().filter(|r| !r.is_empty())
    }

    /// The normalised base image.
    pub fn base(&self) -> Option<&NormalizedBase> {
        self.base.as_ref()
    }

    /// `base_image` when it names an image (not a spec, not empty), parsed.
    pub fn base_ref(&self) -> Option<&ImageRef> {
        match &self.base {
            Some(NormalizedBase::Ref(image)) => Some(image),
            _ => None,
        }
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

#[cfg(test)]
mod tests {
    use super::super::SpecFile;
    use std::path::Path;

    fn platform_of(spec: &str) -> Result<String, String> {
        let file = SpecFile::parse(Path::new("/w/spec.toml"), spec).unwrap();
        let (_, spec) = file.select(None).map_err(|e| e.to_string())?;
        Ok(spec.platforms().to_string())
    }

    #[test]
    fn the_platform_is_parsed_once_and_kept_as_written() {
        let text = "platform = \"linux/amd64, linux/arm64\"\n";
        let file = SpecFile::parse(Path::new("/w/spec.toml"), text).unwrap();
        let (_, spec) = file.select(None).unwrap();
        assert_eq!(spec.platform(), "linux/amd64, linux/arm64");
        assert_eq!(spec.platforms().to_string(), "linux/amd64,linux/arm64");
        assert_eq!(platform_of("name = \"a\"\n").unwrap(), "linux/amd64");
    }

    #[test]
    fn a_malformed_platform_is_refused_at_its_field() {
        let err = platform_of("name = \"a\"\nplatform = \"linux/amd64,arm64\"\n").unwrap_err();
        assert!(
            err.starts_with("/w/spec.toml:2:12: `platform`: expected platforms"),
            "{err}"
        );
        assert!(err.contains("`arm64`: expected os/arch"), "{err}");
        let err = platform_of("platform = \"\"\n").unwrap_err();
        assert!(err.contains("no platform"), "{err}");
    }
}
