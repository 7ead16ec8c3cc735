//! The build engine: what to do with each image, decided in one place.
//!
//! flytekit's `ImageBuildEngine.build` looks an image up, then hands it to a builder; the
//! choice between skipping, assuming, using the base as is, appending files in the registry
//! and building is spread over its builders. Here it is one pure function, [`decide`], over
//! [`Facts`] gathered beforehand, so `imagespec plan` can show the decision `build` takes
//! and every choice is unit-tested without services.

pub mod daemonless;
mod decide;
pub mod gather;
pub mod preview;

pub use crate::backend::docker::Existence;
pub use daemonless::{DependencyBuilder, NotDaemonless, dependency_builder};
pub use decide::{
    Appendable, DecideOptions, Decision, Dependency, Facts, NotAppendable, Refusal, Strategy,
    decide,
};
pub use preview::{ImagePlan, plan};

/// Which builder makes the image: the spec's `builder`, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builder {
    /// Docker's BuildKit (`default`; also `imagespec` and `docker`, this tool's own names).
    Default,
    /// The envd CLI (`envd`).
    Envd,
    /// The base image used as is (`noop`).
    Noop,
    /// A builder this tool does not have (flytekit plugins such as a remote builder).
    Other(String),
}

impl Builder {
    /// The builder a spec names (`default` when it names none).
    pub fn of(spec: &crate::NormalizedSpec) -> Builder {
        Builder::parse(spec.builder.as_deref().unwrap_or("default"))
    }

    /// `default`/`imagespec`/`docker`, `envd`, `noop`, or another name.
    pub fn parse(name: &str) -> Builder {
        match name {
            "default" | "imagespec" | "docker" => Builder::Default,
            "envd" => Builder::Envd,
            "noop" => Builder::Noop,
            other => Builder::Other(other.to_string()),
        }
    }
}

/// The platforms a spec builds, split once: flytekit's `platform` is one comma-separated
/// string (`"linux/amd64,linux/arm64"`), hashed as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platforms(Vec<String>);

impl Platforms {
    /// The platforms of a `platform` string, trimmed, empty entries dropped.
    pub fn parse(platform: &str) -> Platforms {
        Platforms(
            platform
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// How many platforms.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No platform at all (an empty `platform` string).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// More than one platform: an index is built.
    pub fn several(&self) -> bool {
        self.0.len() > 1
    }

    /// The platforms in the order written.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_names_parse_once() {
        assert_eq!(Builder::parse("default"), Builder::Default);
        assert_eq!(Builder::parse("imagespec"), Builder::Default);
        assert_eq!(Builder::parse("docker"), Builder::Default);
        assert_eq!(Builder::parse("envd"), Builder::Envd);
        assert_eq!(Builder::parse("noop"), Builder::Noop);
        assert_eq!(Builder::parse("Noop"), Builder::Other("Noop".into()));
    }

    #[test]
    fn platforms_split_on_commas_and_trim() {
        let p = Platforms::parse("linux/amd64, linux/arm64,");
        assert_eq!(p.iter().collect::<Vec<_>>(), ["linux/amd64", "linux/arm64"]);
        assert!(p.several());
        assert!(!Platforms::parse("linux/amd64").several());
        assert!(Platforms::parse("").is_empty());
    }
}
