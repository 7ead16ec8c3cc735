//! The build engine: what to do with each image, decided in one place.
//!
//! flytekit's `ImageBuildEngine.build` looks an image up, then hands it to a builder; the
//! choice between skipping, assuming, using the base as is, appending files in the registry
//! and building is spread over its builders. Here it is one pure function, [`decide`], over
//! [`Facts`] gathered beforehand (`gather`: the registry or daemon asked once per fact), so
//! `imagespec plan` can show the decision `build` takes and every choice is unit-tested
//! without services. The [`Strategy`] carries what executing it needs, and [`run`] executes
//! it, one function per strategy, with a [`crate::builders::builder::Builder`] the strategy
//! names; nothing is decided or asked twice. Errors are [`EngineError`].

pub(crate) mod daemonless;
mod decide;
mod error;
pub(crate) mod gather;
pub(crate) mod preview;
pub mod run;
pub mod schedule;

pub use crate::builders::docker::Existence;
pub use crate::oci::{Platform, Platforms};
pub use daemonless::{DependencyBuilder, NotDaemonless, dependency_builder, with_apt};
pub use decide::{
    Appendable, DecideOptions, Decision, Dependency, Facts, Found, NotAppendable,
    OutputDependencies, Refusal, Strategy, StrategyKind, Target, decide,
};
pub use error::EngineError;
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
    pub fn of(spec: &crate::spec::NormalizedSpec) -> Builder {
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
}
