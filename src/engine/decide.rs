//! `decide()`: what to do with one image, from what is known about it. Pure: the facts are
//! gathered first (the registry's and the daemon's answers, the plan's shape), so every
//! choice and its reason is unit-tested without services, and `imagespec plan` shows the
//! same decision `build` acts on.
//!
//! The [`Strategy`] carries what its execution needs (the builder, the platforms, the
//! dependency images as read, where the image goes), so [`super::run`] executes it without
//! asking again.
//!
//! The order follows flytekit's `ImageBuildEngine.build` and `should_build`: the builder
//! first (`noop` uses the base as is), then the existence check (found → skip unless forced;
//! cannot tell → flytekit assumes it exists, imagespec fails unless told to assume), then how
//! to make the image: appended to its dependency image in the registry when only files
//! change, otherwise a full build. Several platforms take the same strategies, each
//! platform built in a BuildKit solve of its own and an index joining them in the registry
//! (so they must be pushed, or written with `--output`).
//!
//! ```
//! use imagespec::engine::{decide, Appendable, Builder, DecideOptions, Dependency, Facts};
//! use imagespec::engine::{Existence, Found, Platforms, StrategyKind};
//! let facts = Facts {
//!     builder: Builder::Default,
//!     registry: true,
//!     existence: Some(Existence::No),
//!     digest: None,
//!     appendable: Appendable::Yes,
//!     dependency: Dependency::Found(Found::default()),
//!     dependency_image: Some("localhost:5000/app:deps-0123".parse().unwrap()),
//!     platforms: Platforms::parse("linux/amd64").unwrap(),
//!     files: 3,
//!     dependency_builder: None,
//!     unreadable_base: None,
//!     apt: None,
//! };
//! let decision = decide(&facts, &DecideOptions::default()).unwrap();
//! assert_eq!(decision.strategy.kind(), StrategyKind::Append);
//! assert_eq!(decision.reason, "dependencies unchanged: append 3 files to the dependency image");
//! ```

use super::{Builder, DependencyBuilder, Existence, Platforms};
use crate::builders::registry::DependencyImage;
use crate::oci::Digest;

/// The name of a [`Strategy`]: what `--json` and `plan` show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    Skip,
    Assume,
    Noop,
    Append,
    BuildDependenciesThenAppend,
    Build,
    WriteOutput,
}

impl StrategyKind {
    /// The name `--json` output uses.
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::Skip => "skip",
            StrategyKind::Assume => "assume",
            StrategyKind::Noop => "noop",
            StrategyKind::Append => "append",
            StrategyKind::BuildDependenciesThenAppend => "build_dependencies_then_append",
            StrategyKind::Build => "build",
            StrategyKind::WriteOutput => "write_output",
        }
    }
}

/// The dependency images found in the registry while the facts were gathered, one per
/// platform in the order written, with the manifest and config read then (so nothing asks
/// for them again). Two are equal when they name the same images.
#[derive(Debug, Clone, Default)]
pub struct Found(pub Vec<DependencyImage>);

impl PartialEq for Found {
    fn eq(&self, other: &Found) -> bool {
        let names = |f: &Found| f.0.iter().map(|d| d.image.clone()).collect::<Vec<_>>();
        names(self) == names(other)
    }
}

impl Eq for Found {}

/// Where a finished image goes (besides `--output`, a strategy of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Pushed to the spec's registry.
    Registry,
    /// Kept in the local daemon (no registry, or `--no-push`).
    Daemon,
}

/// Where `--output`'s dependency images come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputDependencies {
    /// Found in the registry.
    Found(Found),
    /// Missing from the registry: made (by uv, else dockerd) and pushed there first.
    Build(Option<DependencyBuilder>),
    /// No registry: made on this machine by uv and written with the image.
    Local,
}

/// How an image is made (or not), carrying what making it needs: the executor
/// ([`super::run`]) asks nothing again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// The image exists: nothing to do. `digest`: its manifest's, when a registry answered.
    Skip { digest: Option<Digest> },
    /// Existence unknown, assumed to exist (flytekit's behaviour, on request).
    Assume,
    /// `builder = "noop"`: the base image is the image.
    Noop { platforms: Platforms },
    /// The source layer appended to the dependency images found, in the registry (no
    /// daemon).
    Append {
        dependencies: Found,
        platforms: Platforms,
    },
    /// The dependency image is built (by uv without a daemon, else `None`/`Docker`: dockerd)
    /// and pushed, then the source appended.
    BuildDependenciesThenAppend {
        builder: Option<DependencyBuilder>,
        platforms: Platforms,
    },
    /// The whole Dockerfile (`Default`) or build.envd (`Envd`) is built, one solve per
    /// platform.
    Build {
        builder: Builder,
        platforms: Platforms,
        target: Target,
    },
    /// Assembled on the dependency images and written to disk (`--output`).
    WriteOutput {
        dependencies: OutputDependencies,
        platforms: Platforms,
    },
}

impl Strategy {
    /// Its name.
    pub fn kind(&self) -> StrategyKind {
        match self {
            Strategy::Skip { .. } => StrategyKind::Skip,
            Strategy::Assume => StrategyKind::Assume,
            Strategy::Noop { .. } => StrategyKind::Noop,
            Strategy::Append { .. } => StrategyKind::Append,
            Strategy::BuildDependenciesThenAppend { .. } => {
                StrategyKind::BuildDependenciesThenAppend
            }
            Strategy::Build { .. } => StrategyKind::Build,
            Strategy::WriteOutput { .. } => StrategyKind::WriteOutput,
        }
    }

    /// The name `--json` output uses.
    pub fn as_str(&self) -> &'static str {
        self.kind().as_str()
    }
}

/// Whether the image is its dependency image plus files, and if not, why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appendable {
    Yes,
    No(NotAppendable),
}

/// Why an image cannot be assembled on a dependency image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAppendable {
    /// Nothing is copied (no `source_root` files, no `copy`).
    NoFiles,
    /// `commands` run after the files are copied (they may use them).
    CommandsAfterCopy,
    /// `--flytekit-compat`: flytekit's own Dockerfile.
    FlytekitDockerfile,
}

impl NotAppendable {
    fn reason(self) -> &'static str {
        match self {
            NotAppendable::NoFiles => "nothing is copied into the image",
            NotAppendable::CommandsAfterCopy => {
                "`commands` run after the source is copied (they may use it; `builder_options = { commands_before_copy = true }` runs them before)"
            }
            NotAppendable::FlytekitDockerfile => "flytekit's own Dockerfile is rendered",
        }
    }
}

/// What the registry said of the dependency image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dependency {
    /// Not looked up: the fast path cannot apply.
    NotAsked,
    /// Present for every platform: the images as read.
    Found(Found),
    /// Absent (for at least one platform).
    Missing,
    /// The registry could not be asked.
    Unknown(String),
}

/// Everything `decide` looks at, gathered before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub builder: Builder,
    /// The spec names a registry.
    pub registry: bool,
    /// The answer of the existence check; `None` when it was not asked (`--output`).
    pub existence: Option<Existence>,
    /// The image's manifest digest, when the registry said it exists.
    pub digest: Option<Digest>,
    pub appendable: Appendable,
    pub dependency: Dependency,
    /// The dependency image's name, when the fast path may apply.
    pub dependency_image: Option<crate::oci::ImageRef>,
    /// The platforms the spec builds, in order.
    pub platforms: Platforms,
    /// How many files are copied into the image.
    pub files: usize,
    /// Who would make the dependency image when it is missing (uv without a daemon, or
    /// dockerd and why), when the fast path may apply, as the spec and this machine say.
    pub dependency_builder: Option<DependencyBuilder>,
    /// Why uv cannot start from the base (it cannot be read from its registry, is another
    /// platform, has `ONBUILD` triggers), when uv would make a missing dependency image and
    /// the base was read for the decision.
    pub unreadable_base: Option<String>,
    /// Each platform's apt step, worked out before the decision when uv would make a
    /// missing dependency image with `apt_packages` ([`super::with_apt`] reads it).
    pub apt: Option<Vec<(crate::oci::Platform, crate::apt::facts::AptFacts)>>,
}

impl Facts {
    /// Who makes the dependency image: [`Facts::dependency_builder`], unless the base read
    /// or the apt step's facts leave it to dockerd.
    pub fn builder(&self) -> Option<DependencyBuilder> {
        let builder = match (self.dependency_builder.clone()?, &self.unreadable_base) {
            (DependencyBuilder::Uv, Some(why)) => {
                DependencyBuilder::Docker(super::NotDaemonless::Base(why.clone()))
            }
            (builder, _) => builder,
        };
        Some(match &self.apt {
            Some(apt) => super::with_apt(builder, apt),
            None => builder,
        })
    }
}

/// The choices of the caller that change the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecideOptions {
    /// Push the image (off: keep it in the daemon).
    pub push: bool,
    /// Build even when the image exists.
    pub force: bool,
    /// May the registry fast path be used?
    pub fast_path: bool,
    /// `--output`: write the image to disk instead of pushing it.
    pub output: bool,
    /// Cannot tell whether the image exists → assume it does (flytekit's engine).
    pub assume_exists: bool,
    /// May a missing dependency image be built without a daemon (uv)? (`--no-daemonless`
    /// turns it off.)
    pub daemonless: bool,
    /// `--output`'s format holds one platform per name (`docker-archive:`).
    pub output_one_platform: bool,
    /// A remote BuildKit builder makes what needs BuildKit (`--builder-host`,
    /// `BUILDKIT_HOST`, `buildkit_host`): it pushes what it builds, in one solve for every
    /// platform.
    pub remote_builder: bool,
}

impl Default for DecideOptions {
    fn default() -> Self {
        DecideOptions {
            push: true,
            force: false,
            fast_path: true,
            output: false,
            assume_exists: false,
            daemonless: true,
            output_one_platform: false,
            remote_builder: false,
        }
    }
}

/// A strategy and the sentence that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub strategy: Strategy,
    pub reason: String,
}

impl Decision {
    fn new(strategy: Strategy, reason: impl Into<String>) -> Decision {
        Decision {
            strategy,
            reason: reason.into(),
        }
    }
}

/// Why no strategy applies: each is an error the user must act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("builder `{0}` is not available; use `default` (Docker/BuildKit), `envd` or `noop`")]
    UnknownBuilder(String),
    #[error(
        "cannot tell whether the image exists ({0}); pass --assume-exists to assume it does, as flytekit does"
    )]
    CannotTell(String),
    #[error(
        "--output assembles the image on its dependency image, which the default builder makes; the envd builder pushes, or keeps the image in dockerd with --no-push"
    )]
    OutputWithEnvd,
    #[error(
        "--output writes the image as its dependency image (from the spec's registry) plus the source files: it needs {0}"
    )]
    OutputNotAppendable(&'static str),
    #[error(
        "--output without a `registry`: the dependencies must be installed here without a daemon, which cannot be done ({0}); name a `registry` to keep its dependency image in"
    )]
    OutputNeedsRegistry(String),
    /// Not the spec's fault: the base cannot be read from here (exit 1, as a failed build).
    #[error(
        "--output without a `registry`: the dependencies are installed here on the base image as its registry serves it, which cannot be done: {0}"
    )]
    OutputBaseUnreadable(String),
    #[error(
        "several platforms: each is built on its own and they are joined as an index in the registry (dockerd 20.10 keeps one platform per tag), so the image must be pushed, but {0}; or write it with --output oci:DIR"
    )]
    MultiPlatformNotPushed(&'static str),
    #[error(
        "several platforms: the envd builder builds one platform per image; the default builder (Docker's BuildKit) builds each platform and pushes an index"
    )]
    EnvdMultiPlatform,
    #[error(
        "several platforms: --output docker-archive: holds one image per name (`docker load` keeps one platform per tag); write them with --output oci:DIR or oci-archive:FILE"
    )]
    OutputOnePlatform,
    #[error(
        "a remote BuildKit builder pushes the image it builds, but {0}; build without --builder-host/BUILDKIT_HOST to keep it in dockerd"
    )]
    RemoteNotPushed(&'static str),
}

impl Refusal {
    /// The spec field the refusal is about, when one is (`builder`, `platform`).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Refusal::UnknownBuilder(_) | Refusal::OutputWithEnvd => Some("builder"),
            Refusal::MultiPlatformNotPushed(_)
            | Refusal::EnvdMultiPlatform
            | Refusal::OutputOnePlatform => Some("platform"),
            Refusal::OutputNotAppendable(_) | Refusal::CannotTell(_) => None,
            Refusal::OutputNeedsRegistry(_) | Refusal::RemoteNotPushed(_) => Some("registry"),
            Refusal::OutputBaseUnreadable(_) => Some("base_image"),
        }
    }

    /// Bad input (2) but for "cannot tell" (3) and a base that cannot be read (1).
    pub fn exit_code(&self) -> i32 {
        match self {
            Refusal::CannotTell(_) => 3,
            Refusal::OutputBaseUnreadable(_) => 1,
            _ => 2,
        }
    }
}

fn files(n: usize) -> String {
    crate::progress::count(n, "file")
}

/// " without a daemon (uv)" / " with dockerd (reason)" / " on the remote BuildKit builder
/// (reason)", when known.
fn by(facts: &Facts, options: &DecideOptions) -> String {
    match &facts.builder() {
        Some(DependencyBuilder::Uv) => " without a daemon (uv)".into(),
        Some(DependencyBuilder::Docker(why)) if options.remote_builder => {
            format!(" on the remote BuildKit builder ({why})")
        }
        Some(DependencyBuilder::Docker(why)) => format!(" with dockerd ({why})"),
        None => String::new(),
    }
}

/// The strategy for one image.
pub fn decide(facts: &Facts, options: &DecideOptions) -> Result<Decision, Refusal> {
    match &facts.builder {
        Builder::Noop => {
            return Ok(Decision::new(
                Strategy::Noop {
                    platforms: facts.platforms.clone(),
                },
                "builder = noop: the base image is used as is",
            ));
        }
        Builder::Other(name) => return Err(Refusal::UnknownBuilder(name.clone())),
        Builder::Default | Builder::Envd => {}
    }
    if options.output {
        return decide_output(facts, options);
    }
    // Whether it exists here does not matter: nothing a remote builder makes stays here.
    if options.remote_builder && facts.builder == Builder::Default {
        if !facts.registry {
            return Err(Refusal::RemoteNotPushed("the spec names no registry"));
        }
        if !options.push {
            return Err(Refusal::RemoteNotPushed("--no-push keeps it here"));
        }
    }
    let forced = match &facts.existence {
        Some(Existence::Yes) if !options.force => {
            let where_ = if facts.registry {
                "the registry"
            } else {
                "the local daemon"
            };
            return Ok(Decision::new(
                Strategy::Skip {
                    digest: facts.digest.clone(),
                },
                format!("the image exists in {where_}"),
            ));
        }
        Some(Existence::Yes) => true,
        Some(Existence::Unknown(why)) if options.assume_exists => {
            return Ok(Decision::new(
                Strategy::Assume,
                format!("cannot tell whether the image exists ({why}): assumed to exist"),
            ));
        }
        Some(Existence::Unknown(why)) => return Err(Refusal::CannotTell(why.clone())),
        Some(Existence::No) | None => false,
    };
    let decision = decide_build(facts, options)?;
    Ok(if forced {
        Decision::new(
            decision.strategy,
            format!("the image exists, rebuilt as forced: {}", decision.reason),
        )
    } else {
        decision
    })
}

/// How an image that is to be made is made: built, or appended to its dependency image.
fn decide_build(facts: &Facts, options: &DecideOptions) -> Result<Decision, Refusal> {
    let several = facts.platforms.several();
    let build = |target| Strategy::Build {
        builder: facts.builder.clone(),
        platforms: facts.platforms.clone(),
        target,
    };
    if facts.builder == Builder::Envd {
        if several {
            return Err(Refusal::EnvdMultiPlatform);
        }
        let target = if facts.registry && options.push {
            Target::Registry
        } else {
            Target::Daemon
        };
        return Ok(Decision::new(
            build(target),
            "builder = envd: envd builds build.envd",
        ));
    }
    if several && !facts.registry {
        return Err(Refusal::MultiPlatformNotPushed(
            "the spec names no registry",
        ));
    }
    if several && !options.push {
        return Err(Refusal::MultiPlatformNotPushed(
            "--no-push keeps it in dockerd",
        ));
    }
    // Several platforms: dockerd 20.10's BuildKit (no buildx) builds one platform per solve,
    // so each is built and pushed on its own and an index joins them, pushed last.
    let per_platform = if several && options.remote_builder {
        format!(
            " for {} platforms in one solve on the remote BuildKit builder, pushed as one index",
            facts.platforms.len()
        )
    } else if several {
        format!(
            " for each of {} platforms (one BuildKit solve each), pushed as one index",
            facts.platforms.len()
        )
    } else {
        String::new()
    };
    let not_fast = if !facts.registry {
        "no registry: built into the local daemon"
    } else if !options.push {
        "not pushed: built into the local daemon"
    } else if !options.fast_path {
        "the fast path is off: full build"
    } else {
        return Ok(decide_fast_path(facts, options, &per_platform));
    };
    let target = if facts.registry && options.push {
        Target::Registry
    } else {
        Target::Daemon
    };
    Ok(Decision::new(
        build(target),
        format!("{not_fast}{per_platform}"),
    ))
}

/// The registry, a push and the fast path: the files appended to the dependency image
/// (found, or made first), unless the image is not its dependency image plus files.
fn decide_fast_path(facts: &Facts, options: &DecideOptions, per_platform: &str) -> Decision {
    let (several, n) = (facts.platforms.several(), facts.platforms.len());
    let each = if several {
        format!(" to each of {n} platforms")
    } else {
        String::new()
    };
    let then_append = |reason: String| {
        Decision::new(
            Strategy::BuildDependenciesThenAppend {
                builder: facts.builder(),
                platforms: facts.platforms.clone(),
            },
            reason,
        )
    };
    let files = files(facts.files);
    match (&facts.appendable, &facts.dependency) {
        (Appendable::Yes, Dependency::Found(found)) => {
            let what = if several {
                format!(
                    "dependencies unchanged: append {files} to the dependency image of each of {n} platforms"
                )
            } else {
                format!("dependencies unchanged: append {files} to the dependency image")
            };
            let strategy = Strategy::Append {
                dependencies: found.clone(),
                platforms: facts.platforms.clone(),
            };
            Decision::new(strategy, what)
        }
        // dockerd 20.10 builds one platform per image; uv makes every platform's.
        (Appendable::Yes, _) if several && facts.builder() == Some(DependencyBuilder::Uv) => {
            then_append(format!(
                "dependencies changed: build each of {n} platforms' dependency image{}, then append {files}",
                by(facts, options)
            ))
        }
        (Appendable::Yes, Dependency::Unknown(why)) => then_append(format!(
            "the dependency image could not be looked up ({why}): build it{}{per_platform}, then append {files}{each}",
            by(facts, options)
        )),
        (Appendable::Yes, _) => then_append(format!(
            "dependencies changed: build the dependency image{}{per_platform}, then append {files}{each}",
            by(facts, options)
        )),
        (Appendable::No(why), _) => Decision::new(
            Strategy::Build {
                builder: facts.builder.clone(),
                platforms: facts.platforms.clone(),
                target: Target::Registry,
            },
            format!("{}: full build{per_platform}", why.reason()),
        ),
    }
}

fn decide_output(facts: &Facts, options: &DecideOptions) -> Result<Decision, Refusal> {
    if facts.builder == Builder::Envd {
        return Err(Refusal::OutputWithEnvd);
    }
    match facts.appendable {
        Appendable::No(NotAppendable::NoFiles) => {
            return Err(Refusal::OutputNotAppendable(
                "files to copy (`source_root` or `copy`)",
            ));
        }
        Appendable::No(NotAppendable::CommandsAfterCopy) => {
            return Err(Refusal::OutputNotAppendable(
                "no `commands` (they run after the files are copied)",
            ));
        }
        Appendable::No(NotAppendable::FlytekitDockerfile) => {
            return Err(Refusal::OutputNotAppendable(
                "imagespec's Dockerfile, not --flytekit-compat",
            ));
        }
        Appendable::Yes => {}
    }
    let (several, n) = (facts.platforms.several(), facts.platforms.len());
    if several && options.output_one_platform {
        return Err(Refusal::OutputOnePlatform);
    }
    let write = |dependencies, reason: String| {
        let strategy = Strategy::WriteOutput {
            dependencies,
            platforms: facts.platforms.clone(),
        };
        Ok(Decision::new(strategy, reason))
    };
    if !facts.registry {
        // No registry to keep the dependency image in: it is made here, without a daemon,
        // and written with the image.
        return match &facts.builder() {
            Some(DependencyBuilder::Uv) => write(
                OutputDependencies::Local,
                format!(
                    "no registry: the dependencies are installed here with uv (no daemon){}, \
                     then written to disk with the base's layers and {}",
                    if several {
                        format!(" for each of {n} platforms")
                    } else {
                        String::new()
                    },
                    files(facts.files)
                ),
            ),
            Some(DependencyBuilder::Docker(super::NotDaemonless::Base(why))) => {
                Err(Refusal::OutputBaseUnreadable(why.clone()))
            }
            Some(DependencyBuilder::Docker(why)) => {
                Err(Refusal::OutputNeedsRegistry(why.to_string()))
            }
            None => Err(Refusal::OutputNeedsRegistry(
                "the dependencies were not planned".into(),
            )),
        };
    }
    let files = files(facts.files);
    let reason = match (&facts.dependency, several) {
        (Dependency::Found(_), false) => {
            format!("dependencies unchanged: the dependency image plus {files}, written to disk")
        }
        (Dependency::Found(_), true) => format!(
            "dependencies unchanged: the dependency image of each of {n} platforms plus {files}, written to disk as one index"
        ),
        (_, false) => format!(
            "the dependency image is built{} and pushed first, then it plus {files} is written to disk",
            by(facts, options)
        ),
        (_, true) => format!(
            "the dependency image is built for each of {n} platforms and pushed as an index first, then each plus {files} is written to disk as one index"
        ),
    };
    let dependencies = match &facts.dependency {
        Dependency::Found(found) => OutputDependencies::Found(found.clone()),
        _ => OutputDependencies::Build(facts.builder()),
    };
    write(dependencies, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            builder: Builder::Default,
            registry: true,
            existence: Some(Existence::No),
            appendable: Appendable::Yes,
            digest: None,
            dependency: Dependency::Found(Found::default()),
            dependency_image: Some("r/app:deps-1".parse().unwrap()),
            platforms: platforms(1),
            files: 2,
            dependency_builder: None,
            unreadable_base: None,
            apt: None,
        }
    }

    fn strategy(facts: &Facts, options: &DecideOptions) -> StrategyKind {
        decide(facts, options).expect("a decision").strategy.kind()
    }

    /// The decision for `facts` under the default options, checked to be of `kind`.
    fn decided(facts: &Facts, kind: StrategyKind) -> Decision {
        decided_with(facts, &DecideOptions::default(), kind)
    }

    /// The decision for `facts` under `options`, checked to be of `kind`.
    fn decided_with(facts: &Facts, options: &DecideOptions, kind: StrategyKind) -> Decision {
        let d = decide(facts, options).expect("a decision");
        assert_eq!(d.strategy.kind(), kind, "{}", d.reason);
        d
    }

    /// Why `facts` under `options` are decided as they are.
    fn reason_of(facts: &Facts, options: &DecideOptions) -> String {
        decide(facts, options).expect("a decision").reason
    }

    /// The first `n` of amd64, arm64, arm/v7.
    fn platforms(n: usize) -> Platforms {
        let all = ["linux/amd64", "linux/arm64", "linux/arm/v7"];
        Platforms::parse(&all[..n].join(",")).unwrap()
    }

    /// The default options with `change` made.
    fn options_with(change: impl FnOnce(&mut DecideOptions)) -> DecideOptions {
        let mut options = DecideOptions::default();
        change(&mut options);
        options
    }

    #[test]
    fn noop_uses_the_base_whatever_else_is_known() {
        let mut f = facts();
        f.builder = Builder::Noop;
        f.existence = Some(Existence::Unknown("down".into()));
        assert_eq!(strategy(&f, &DecideOptions::default()), StrategyKind::Noop);
    }

    #[test]
    fn an_unknown_builder_is_refused_by_name() {
        let mut f = facts();
        f.builder = Builder::Other("kaniko".into());
        let refusal = decide(&f, &DecideOptions::default()).unwrap_err();
        assert_eq!(refusal, Refusal::UnknownBuilder("kaniko".into()));
        assert!(refusal.to_string().contains("`kaniko`"));
        assert_eq!(refusal.exit_code(), 2);
    }

    #[test]
    fn an_existing_image_is_skipped_and_says_where_it_was_found() {
        let mut f = facts();
        f.existence = Some(Existence::Yes);
        let d = decided(&f, StrategyKind::Skip);
        assert_eq!(d.reason, "the image exists in the registry");
        f.registry = false;
        let d = decide(&f, &DecideOptions::default()).unwrap();
        assert_eq!(d.reason, "the image exists in the local daemon");
    }

    #[test]
    fn an_option_changes_the_strategy_and_the_reason_says_so_first() {
        let cases = [
            // Force rebuilds an existing image.
            (
                Facts {
                    existence: Some(Existence::Yes),
                    ..facts()
                },
                options_with(|o| o.force = true),
                StrategyKind::Append,
                "the image exists, rebuilt as forced: ",
            ),
            // Without the fast path, several appendable platforms are built per platform.
            (
                Facts {
                    platforms: platforms(3),
                    dependency: Dependency::NotAsked,
                    ..facts()
                },
                options_with(|o| o.fast_path = false),
                StrategyKind::Build,
                "the fast path is off: full build for each of 3",
            ),
        ];
        for (f, options, kind, start) in cases {
            let d = decided_with(&f, &options, kind);
            assert!(d.reason.starts_with(start), "{}", d.reason);
        }
    }

    #[test]
    fn cannot_tell_fails_with_exit_3_unless_told_to_assume() {
        let mut f = facts();
        f.existence = Some(Existence::Unknown("connection refused".into()));
        let refusal = decide(&f, &DecideOptions::default()).unwrap_err();
        assert_eq!(refusal, Refusal::CannotTell("connection refused".into()));
        assert_eq!(refusal.exit_code(), 3);
        let options = options_with(|o| o.assume_exists = true);
        let d = decided_with(&f, &options, StrategyKind::Assume);
        assert!(d.reason.contains("connection refused"));
    }

    #[test]
    fn each_set_of_facts_gets_its_strategy_and_says_why() {
        use crate::engine::{DependencyBuilder, NotDaemonless};
        use StrategyKind::{Append, Build, BuildDependenciesThenAppend as ThenAppend};
        let missing = Dependency::Missing;
        let cases = [
            // Unchanged dependencies append the files.
            (
                facts(),
                Append,
                "dependencies unchanged: append 2 files to the dependency image",
            ),
            // Changed dependencies are built, then the files appended.
            (
                Facts {
                    dependency: missing.clone(),
                    ..facts()
                },
                ThenAppend,
                "dependencies changed: build the dependency image, then append 2 files",
            ),
            // The reason names who builds the dependency image.
            (
                Facts {
                    dependency: missing.clone(),
                    dependency_builder: Some(DependencyBuilder::Uv),
                    ..facts()
                },
                ThenAppend,
                "dependencies changed: build the dependency image without a daemon (uv), then append 2 files",
            ),
            (
                Facts {
                    dependency: missing.clone(),
                    dependency_builder: Some(DependencyBuilder::Docker(NotDaemonless::Commands)),
                    ..facts()
                },
                ThenAppend,
                "dependencies changed: build the dependency image with dockerd (`commands` run in the image), then append 2 files",
            ),
            // The apt step's facts, gathered before the decision, leave it to dockerd.
            (
                Facts {
                    dependency: missing.clone(),
                    dependency_builder: Some(DependencyBuilder::Uv),
                    apt: Some(vec![(
                        platforms(1).first().clone(),
                        crate::apt::facts::AptFacts::Resolved(vec![
                            crate::apt::facts::PackageFacts {
                                name: "sudo".into(),
                                version: "1.9".into(),
                                scripts: crate::apt::scripts::effects(
                                    "sudo",
                                    [("postinst", "addgroup sudo\n")],
                                ),
                                removes_base_alternative: None,
                            },
                        ]),
                    )]),
                    ..facts()
                },
                ThenAppend,
                "dependencies changed: build the dependency image with dockerd (apt package sudo: its postinst runs `addgroup sudo`, which only the base's apt-get does), then append 2 files",
            ),
            // Commands after the copy make a full build.
            (
                Facts {
                    appendable: Appendable::No(NotAppendable::CommandsAfterCopy),
                    dependency: Dependency::NotAsked,
                    ..facts()
                },
                Build,
                "`commands` run after the source is copied (they may use it; `builder_options = { commands_before_copy = true }` runs them before): full build",
            ),
            // Several platforms append when every dependency image is there.
            (
                Facts {
                    platforms: platforms(2),
                    ..facts()
                },
                Append,
                "dependencies unchanged: append 2 files to the dependency image of each of 2 platforms",
            ),
            // Several platforms build the dependency image per platform, then append.
            (
                Facts {
                    platforms: platforms(2),
                    dependency: missing.clone(),
                    ..facts()
                },
                ThenAppend,
                "dependencies changed: build the dependency image for each of 2 platforms (one BuildKit solve each), pushed as one index, then append 2 files to each of 2 platforms",
            ),
            // Several platforms with uv build every platform without a daemon.
            (
                Facts {
                    platforms: platforms(2),
                    dependency: missing,
                    dependency_builder: Some(DependencyBuilder::Uv),
                    ..facts()
                },
                ThenAppend,
                "dependencies changed: build each of 2 platforms' dependency image without a daemon (uv), then append 2 files",
            ),
        ];
        for (f, kind, reason) in cases {
            assert_eq!(decided(&f, kind).reason, reason);
        }
    }

    #[test]
    fn one_file_is_named_in_the_singular() {
        let mut f = facts();
        f.files = 1;
        assert!(reason_of(&f, &DecideOptions::default()).contains("append 1 file to"));
    }

    #[test]
    fn an_unknown_dependency_image_is_built_and_says_why() {
        let mut f = facts();
        f.dependency = Dependency::Unknown("503".into());
        let d = decided(&f, StrategyKind::BuildDependenciesThenAppend);
        assert!(d.reason.contains("503"));
    }

    #[test]
    fn the_output_reason_names_who_builds_the_dependency_image() {
        let mut f = facts();
        f.dependency = Dependency::Missing;
        f.dependency_builder = Some(crate::engine::DependencyBuilder::Uv);
        let output = options_with(|o| o.output = true);
        assert!(reason_of(&f, &output).contains("built without a daemon (uv) and pushed first"));
    }

    #[test]
    fn no_files_or_flytekits_dockerfile_make_a_full_build() {
        for why in [NotAppendable::NoFiles, NotAppendable::FlytekitDockerfile] {
            let mut f = facts();
            f.appendable = Appendable::No(why);
            let d = decided(&f, StrategyKind::Build);
            assert!(d.reason.ends_with(": full build"), "{}", d.reason);
        }
    }

    #[test]
    fn without_a_push_or_a_registry_or_the_fast_path_it_is_a_full_build() {
        let cases = [
            (
                false,
                true,
                true,
                "no registry: built into the local daemon",
            ),
            (true, false, true, "not pushed: built into the local daemon"),
            (true, true, false, "the fast path is off: full build"),
        ];
        for (registry, push, fast_path, reason) in cases {
            let mut f = facts();
            f.registry = registry;
            let options = DecideOptions {
                push,
                fast_path,
                ..Default::default()
            };
            let d = decide(&f, &options).unwrap();
            assert_eq!(
                (d.strategy.kind(), d.reason.as_str()),
                (StrategyKind::Build, reason)
            );
        }
    }

    #[test]
    fn envd_always_builds() {
        let mut f = facts();
        f.builder = Builder::Envd;
        let d = decided(&f, StrategyKind::Build);
        assert!(d.reason.contains("envd"));
    }

    #[test]
    fn several_platforms_with_an_unknown_dependency_image_build_it_per_platform() {
        let mut f = facts();
        f.platforms = platforms(2);
        f.dependency = Dependency::Unknown("503".into());
        let d = decided(&f, StrategyKind::BuildDependenciesThenAppend);
        assert!(d.reason.contains("(503)") && d.reason.contains("for each of 2 platforms"));
    }

    #[test]
    fn several_platforms_that_cannot_be_appended_are_built_per_platform() {
        let mut f = facts();
        f.platforms = platforms(3);
        f.appendable = Appendable::No(NotAppendable::CommandsAfterCopy);
        f.dependency = Dependency::NotAsked;
        let d = decided(&f, StrategyKind::Build);
        assert!(
            d.reason.ends_with(
                ": full build for each of 3 platforms (one BuildKit solve each), pushed as one index"
            ),
            "{}",
            d.reason
        );
    }

    #[test]
    fn a_remote_builder_pushes_what_it_builds() {
        use crate::engine::{DependencyBuilder, NotDaemonless};
        let remote = options_with(|o| o.remote_builder = true);
        let mut f = facts();
        f.dependency = Dependency::Missing;
        f.dependency_builder = Some(DependencyBuilder::Docker(NotDaemonless::Commands));
        assert_eq!(
            reason_of(&f, &remote),
            "dependencies changed: build the dependency image on the remote BuildKit builder \
             (`commands` run in the image), then append 2 files"
        );
        // Several platforms are one solve on the builder.
        f.platforms = platforms(2);
        f.appendable = Appendable::No(NotAppendable::CommandsAfterCopy);
        let d = decided_with(&f, &remote, StrategyKind::Build);
        assert!(
            d.reason.ends_with(
                ": full build for 2 platforms in one solve on the remote BuildKit builder, pushed as one index"
            ),
            "{}",
            d.reason
        );
        // Nothing it builds can stay on this machine: refused before anything is built.
        let kept = options_with(|o| {
            o.remote_builder = true;
            o.push = false;
        });
        let refusal = decide(&f, &kept).unwrap_err();
        assert_eq!(refusal, Refusal::RemoteNotPushed("--no-push keeps it here"));
        assert_eq!(
            (refusal.exit_code(), refusal.field()),
            (2, Some("registry"))
        );
        f.registry = false;
        assert_eq!(
            decide(&f, &remote).unwrap_err(),
            Refusal::RemoteNotPushed("the spec names no registry")
        );
        // Refused before the existence check, which would ask a daemon the build never uses.
        f.existence = Some(Existence::Unknown("no daemon".into()));
        assert_eq!(
            decide(&f, &remote).unwrap_err(),
            Refusal::RemoteNotPushed("the spec names no registry")
        );
        // An image in a registry that exists is skipped.
        f.registry = true;
        f.existence = Some(Existence::Yes);
        decided_with(&f, &remote, StrategyKind::Skip);
    }

    #[test]
    fn several_platforms_must_be_pushed() {
        let mut f = facts();
        f.platforms = platforms(2);
        f.dependency = Dependency::Missing;
        let options = options_with(|o| o.push = false);
        let refusal = decide(&f, &options).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::MultiPlatformNotPushed("--no-push keeps it in dockerd")
        );
        assert_eq!(
            (refusal.exit_code(), refusal.field()),
            (2, Some("platform"))
        );
        f.registry = false;
        assert_eq!(
            decide(&f, &DecideOptions::default()).unwrap_err(),
            Refusal::MultiPlatformNotPushed("the spec names no registry")
        );
        // An image that exists is still skipped: nothing is built.
        f.existence = Some(Existence::Yes);
        assert_eq!(strategy(&f, &options), StrategyKind::Skip);
    }

    #[test]
    fn envd_refuses_several_platforms() {
        let mut f = facts();
        f.builder = Builder::Envd;
        f.platforms = platforms(2);
        assert_eq!(
            decide(&f, &DecideOptions::default()).unwrap_err(),
            Refusal::EnvdMultiPlatform
        );
    }

    #[test]
    fn output_writes_when_appendable_and_refuses_otherwise() {
        let options = options_with(|o| o.output = true);
        let mut f = facts();
        f.existence = None;
        let d = decided_with(&f, &options, StrategyKind::WriteOutput);
        assert!(d.reason.starts_with("dependencies unchanged"));
        f.dependency = Dependency::Missing;
        assert!(reason_of(&f, &options).contains("built and pushed first"));
        let refusals = [
            (Builder::Envd, true, Appendable::Yes, platforms(1)),
            (Builder::Default, false, Appendable::Yes, platforms(1)),
            (
                Builder::Default,
                true,
                Appendable::No(NotAppendable::NoFiles),
                platforms(1),
            ),
            (
                Builder::Default,
                true,
                Appendable::No(NotAppendable::CommandsAfterCopy),
                platforms(1),
            ),
        ];
        for (builder, registry, appendable, platforms) in refusals {
            let f = Facts {
                builder,
                registry,
                appendable,
                platforms,
                ..facts()
            };
            let refusal = decide(&f, &options).unwrap_err();
            assert_eq!(refusal.exit_code(), 2, "{refusal}");
        }
    }

    #[test]
    fn output_without_a_registry_is_made_here_by_uv_or_refused_with_the_reason() {
        let options = options_with(|o| o.output = true);
        let f = Facts {
            registry: false,
            existence: None,
            dependency: Dependency::NotAsked,
            dependency_builder: Some(crate::engine::DependencyBuilder::Uv),
            files: 3,
            ..facts()
        };
        let d = decided_with(&f, &options, StrategyKind::WriteOutput);
        assert!(
            d.reason
                .starts_with("no registry: the dependencies are installed here with uv")
        );
        assert!(d.reason.contains("3 files"), "{}", d.reason);
        let two = Facts {
            platforms: platforms(2),
            ..f.clone()
        };
        assert!(reason_of(&two, &options).contains("each of 2 platforms"));
        // The apt step's facts, gathered before: a package whose scripts must run.
        let sudo = crate::apt::facts::PackageFacts {
            name: "sudo".into(),
            version: "1.9".into(),
            scripts: crate::apt::scripts::effects("sudo", [("postinst", "addgroup sudo\n")]),
            removes_base_alternative: None,
        };
        let apt = Facts {
            apt: Some(vec![(
                platforms(1).first().clone(),
                crate::apt::facts::AptFacts::Resolved(vec![sudo]),
            )]),
            ..f
        };
        let refusal = decide(&apt, &options).unwrap_err();
        assert_eq!(refusal.exit_code(), 2);
        assert_eq!(refusal.field(), Some("registry"));
        assert!(
            refusal
                .to_string()
                .contains("apt package sudo: its postinst runs `addgroup sudo`"),
            "{refusal}"
        );
    }

    #[test]
    fn a_base_uv_cannot_read_goes_to_dockerd_or_refuses_output_with_exit_1() {
        let why =
            "the base image r/py:3 cannot be read from its registry: read it through a mirror";
        let f = Facts {
            dependency: Dependency::Missing,
            dependency_builder: Some(crate::engine::DependencyBuilder::Uv),
            unreadable_base: Some(why.into()),
            ..facts()
        };
        // dockerd reads bases its own way (its store, its mirrors): it builds, saying why.
        assert_eq!(
            f.builder(),
            Some(crate::engine::DependencyBuilder::Docker(
                crate::engine::NotDaemonless::Base(why.into())
            ))
        );
        let d = decided_with(
            &f,
            &DecideOptions::default(),
            StrategyKind::BuildDependenciesThenAppend,
        );
        assert!(
            d.reason.contains(&format!("with dockerd ({why})")),
            "{}",
            d.reason
        );
        // A base uv reads is no reason: uv builds.
        let readable = Facts {
            unreadable_base: None,
            ..f.clone()
        };
        assert_eq!(
            readable.builder(),
            Some(crate::engine::DependencyBuilder::Uv)
        );
        // `--output` without a registry has no dockerd to turn to: the build would fail,
        // and the plan says so with the build's exit code.
        let options = options_with(|o| o.output = true);
        let here = Facts {
            registry: false,
            existence: None,
            dependency: Dependency::NotAsked,
            ..f
        };
        let refusal = decide(&here, &options).unwrap_err();
        assert_eq!(refusal, Refusal::OutputBaseUnreadable(why.into()));
        assert_eq!(
            (refusal.exit_code(), refusal.field()),
            (1, Some("base_image"))
        );
        assert!(refusal.to_string().ends_with(why), "{refusal}");
    }

    #[test]
    fn output_of_several_platforms_is_an_index_but_not_a_docker_archive() {
        let mut options = options_with(|o| o.output = true);
        let mut f = facts();
        f.existence = None;
        f.platforms = platforms(2);
        let d = decided_with(&f, &options, StrategyKind::WriteOutput);
        assert!(
            d.reason.ends_with("written to disk as one index"),
            "{}",
            d.reason
        );
        f.dependency = Dependency::Missing;
        assert!(
            reason_of(&f, &options)
                .starts_with("the dependency image is built for each of 2 platforms")
        );
        options.output_one_platform = true;
        assert_eq!(
            decide(&f, &options).unwrap_err(),
            Refusal::OutputOnePlatform
        );
        f.platforms = platforms(1);
        assert_eq!(strategy(&f, &options), StrategyKind::WriteOutput);
    }

    #[test]
    fn strategy_names_are_the_json_names() {
        let all = [
            StrategyKind::Skip,
            StrategyKind::Assume,
            StrategyKind::Noop,
            StrategyKind::Append,
            StrategyKind::BuildDependenciesThenAppend,
            StrategyKind::Build,
            StrategyKind::WriteOutput,
        ];
        for s in all {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn each_strategy_carries_what_running_it_needs() {
        let digest = crate::oci::Digest::of_bytes(b"manifest");
        let mut f = facts();
        f.existence = Some(Existence::Yes);
        f.digest = Some(digest.clone());
        let d = decide(&f, &DecideOptions::default()).unwrap();
        assert_eq!(
            d.strategy,
            Strategy::Skip {
                digest: Some(digest)
            }
        );

        let d = decide(&facts(), &DecideOptions::default()).unwrap();
        let Strategy::Append {
            dependencies,
            platforms: p,
        } = d.strategy
        else {
            panic!("{:?}", d.strategy)
        };
        assert_eq!((dependencies, p), (Found::default(), platforms(1)));

        let mut f = facts();
        f.dependency = Dependency::Missing;
        f.dependency_builder = Some(DependencyBuilder::Uv);
        f.platforms = platforms(2);
        let d = decide(&f, &DecideOptions::default()).unwrap();
        let want = Strategy::BuildDependenciesThenAppend {
            builder: Some(DependencyBuilder::Uv),
            platforms: platforms(2),
        };
        assert_eq!(d.strategy, want);
    }

    #[test]
    fn a_build_names_its_builder_and_where_the_image_goes() {
        let target = |builder: Builder, registry: bool, push: bool| {
            let f = Facts {
                builder,
                registry,
                appendable: Appendable::No(NotAppendable::CommandsAfterCopy),
                ..facts()
            };
            let options = options_with(|o| o.push = push);
            match decide(&f, &options).unwrap().strategy {
                Strategy::Build {
                    builder, target, ..
                } => (builder, target),
                other => panic!("{other:?}"),
            }
        };
        // (builder, registry, push) and where the image goes.
        let cases = [
            (Builder::Default, true, true, Target::Registry),
            (Builder::Default, false, true, Target::Daemon),
            (Builder::Default, true, false, Target::Daemon),
            (Builder::Envd, true, true, Target::Registry),
            (Builder::Envd, true, false, Target::Daemon),
        ];
        for (builder, registry, push, goes) in cases {
            assert_eq!(target(builder.clone(), registry, push), (builder, goes));
        }
    }

    #[test]
    fn output_says_where_its_dependency_images_come_from() {
        let options = options_with(|o| o.output = true);
        let dependencies = |f: &Facts| match decide(f, &options).unwrap().strategy {
            Strategy::WriteOutput { dependencies, .. } => dependencies,
            other => panic!("{other:?}"),
        };
        let mut f = facts();
        assert_eq!(
            dependencies(&f),
            OutputDependencies::Found(Found::default())
        );
        f.dependency = Dependency::Missing;
        assert_eq!(dependencies(&f), OutputDependencies::Build(None));
        f.registry = false;
        f.dependency_builder = Some(DependencyBuilder::Uv);
        assert_eq!(dependencies(&f), OutputDependencies::Local);
    }

    #[test]
    fn found_images_are_equal_when_they_name_the_same_images() {
        assert_eq!(Found::default(), Found(Vec::new()));
        assert_eq!(Strategy::Assume.kind().as_str(), "assume");
        assert_eq!(
            Strategy::Noop {
                platforms: platforms(2)
            }
            .as_str(),
            "noop"
        );
    }
}
