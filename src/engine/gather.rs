//! What [`decide`](super::decide) needs to know of one image, asked of the outside world
//! once: the existence check (the registry, or the local daemon for a spec without a
//! registry) and, when the fast path may apply, the dependency image, both at the same time.
//! Nothing is built, pushed or written here.

use super::{
    Appendable, Builder, DecideOptions, Dependency, EngineError, Existence, Facts, Found,
    NotAppendable, Platforms,
};
use crate::builders::BackendError;
use crate::builders::daemonless::Preflight;
use crate::builders::docker::DockerDaemon;
use crate::builders::registry::{self as registry_backend, DependencyImage};
use crate::oci::{Digest, ImageRef};
use crate::plan::{BuildPlan, Flavor, RenderOptions};
use crate::registry::client::{RawManifest, RegistryClient, RegistryErrorKind};
use crate::spec::NormalizedSpec;
use crate::tag::ImageTag;
use crate::timeouts::Timeouts;

/// Whether a plan's image is its dependency image plus the files under `/root` and the
/// `_F_IMG_ID` variable, so that a code-only change can be appended to the dependency image
/// instead of rebuilt; if not, why not. Not for flytekit's own Dockerfile, only when
/// something is copied, and not when `commands` run after the files are copied (they may
/// use them).
pub fn appendable(plan: &BuildPlan) -> Appendable {
    if plan.flavor != Flavor::Imagespec {
        Appendable::No(NotAppendable::FlytekitDockerfile)
    } else if plan.root_entries.is_empty() {
        Appendable::No(NotAppendable::NoFiles)
    } else if plan.runs_commands() && !plan.commands_before_copy {
        Appendable::No(NotAppendable::CommandsAfterCopy)
    } else {
        Appendable::Yes
    }
}

/// Where the existence check was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// The registry at this host.
    Registry(String),
    /// The local Docker daemon (the spec names no registry).
    Daemon,
    /// Not asked (`noop`, an unknown builder, `--output`).
    Nowhere,
}

impl std::fmt::Display for Asked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Asked::Registry(host) => write!(f, "the registry {host}"),
            Asked::Daemon => f.write_str("the local daemon"),
            Asked::Nowhere => f.write_str("not asked"),
        }
    }
}

/// The facts of one image, with what was learnt on the way (so a build does not ask again).
#[derive(Debug)]
pub struct Gathered {
    pub facts: Facts,
    pub asked: Asked,
    /// The build plan, when the builder makes one (`Err`: reported only if a build is due).
    pub plan: Option<Result<BuildPlan, EngineError>>,
    /// The dependency image's name, when the fast path may apply.
    pub dependency_image: Option<ImageRef>,
    /// Its plan ([`BuildPlan::dependencies`], computed once), when the fast path may apply.
    pub dependency_plan: Option<BuildPlan>,
    /// The image's manifest, when the existence check read it (a GET): the skip path reads
    /// the record of its files through it.
    pub manifest: Option<RawManifest>,
    /// Each platform's base as read and apt step as worked out for the decision
    /// ([`Facts::unreadable_base`], [`Facts::apt`]): the build starts from them, without
    /// reading or resolving again.
    pub preflight: Preflight,
}

/// Asks the registry (or daemon) what `decide` needs for one image: the existence check and
/// the dependency image at the same time. `client` is the spec's registry session, when it
/// names a registry; `daemon` is asked when it names none.
pub async fn gather(
    spec: &NormalizedSpec,
    tag: &ImageTag,
    render: &RenderOptions,
    options: &DecideOptions,
    client: Option<&RegistryClient>,
    daemon: &Daemon,
    progress: &crate::progress::Progress,
) -> Gathered {
    let mut facts = known_here(spec, tag, render);
    let (builder, registry) = (facts.builder.clone(), facts.registry);
    let platforms = facts.platforms.clone();
    let mut gathered = Gathered {
        facts: facts.clone(),
        asked: Asked::Nowhere,
        plan: None,
        dependency_image: None,
        dependency_plan: None,
        manifest: None,
        preflight: Preflight::default(),
    };
    if !matches!(builder, Builder::Default | Builder::Envd) {
        return gathered;
    }
    let plan = (builder == Builder::Default).then(|| BuildPlan::new(spec, tag, render));
    if let Some(Ok(plan)) = &plan {
        facts.appendable = appendable(plan);
    }
    // `--output` without a registry: the dependency image is made here (uv) and written
    // with the image, so who would make it is a fact too.
    let wants_dependency = builder == Builder::Default
        && facts.appendable == Appendable::Yes
        && (options.output || registry && options.push && options.fast_path);
    let dependency_plan = match (&plan, wants_dependency) {
        (Some(Ok(plan)), true) => Some(plan.dependencies()),
        _ => None,
    };
    let lookup_dependency = async {
        match (&dependency_plan, client) {
            (Some(deps), Some(client)) => Some(find_all(client, &deps.image, &platforms).await),
            _ => None,
        }
    };
    let existence = existence(tag, options, client, daemon);
    let ((answer, asked), found) = tokio::join!(existence, lookup_dependency);
    if let Some(answer) = answer {
        (facts.existence, facts.digest) = (Some(answer.existence), answer.digest);
        gathered.manifest = answer.manifest;
    }
    match found {
        Some(Ok(Some(found))) => facts.dependency = Dependency::Found(Found(found)),
        Some(Ok(None)) => facts.dependency = Dependency::Missing,
        Some(Err(e)) => facts.dependency = Dependency::Unknown(e.to_string()),
        None => {}
    }
    facts.dependency_builder = dependency_plan
        .as_ref()
        .map(|deps| who_builds(spec, deps, options));
    if let Some(deps) = dependency_plan
        .as_ref()
        .filter(|_| uv_step_due(&facts, options))
    {
        gathered.preflight = preflight(deps, daemon.timeouts, progress).await;
        facts.unreadable_base = gathered.preflight.unreadable_base();
        facts.apt = (!deps.apt_packages.is_empty()).then(|| gathered.preflight.apt_facts());
    }
    gathered.dependency_image = dependency_plan.as_ref().map(|p| p.image.clone());
    gathered.dependency_plan = dependency_plan;
    facts.dependency_image = gathered.dependency_image.clone();
    gathered.facts = facts;
    gathered.asked = asked;
    gathered.plan = plan.map(|p| p.map_err(EngineError::from));
    gathered
}

/// The facts of an image that need no one asked: its builder, registry, platforms and
/// file count; the rest as not known yet.
fn known_here(spec: &NormalizedSpec, tag: &ImageTag, render: &RenderOptions) -> Facts {
    let files = tag.source.as_ref().map_or(0, |s| s.files.len())
        + tag
            .copy
            .as_ref()
            .map_or(0, |c| c.entries.iter().map(|e| e.files.len()).sum());
    Facts {
        builder: Builder::of(spec),
        registry: spec.registry().is_some(),
        existence: None,
        digest: None,
        appendable: Appendable::No(NotAppendable::NoFiles),
        dependency: Dependency::NotAsked,
        dependency_image: None,
        platforms: render.platforms(spec).clone(),
        files,
        dependency_builder: None,
        unreadable_base: None,
        apt: None,
    }
}

/// What uv's build would start from, found out for the decision: each platform's base read
/// from its registry and, when it could be and the spec has `apt_packages`, the apt step.
async fn preflight(
    deps: &BuildPlan,
    timeouts: Timeouts,
    progress: &crate::progress::Progress,
) -> Preflight {
    use crate::builders::daemonless::{look_at_bases, prepare_apt};
    let bases = look_at_bases(deps, timeouts).await;
    let readable = bases.iter().all(|b| b.why_not().is_none());
    let apt = match readable {
        true => prepare_apt(deps, &bases, timeouts, progress).await,
        false => Vec::new(),
    };
    Preflight { bases, apt }
}

/// Whether what uv's build starts from is to be found out for the decision (its base, its
/// apt step): uv would make the dependency image, which is to be made (not in the registry,
/// and the image is missing or `--force`d). Never for an image that is skipped.
fn uv_step_due(facts: &Facts, options: &DecideOptions) -> bool {
    facts.dependency_builder == Some(super::DependencyBuilder::Uv)
        && !matches!(facts.dependency, Dependency::Found(_))
        && (options.force || facts.existence != Some(Existence::Yes))
}

/// Who would make the dependency image `deps` ([`super::dependency_builder`]).
fn who_builds(
    spec: &NormalizedSpec,
    deps: &BuildPlan,
    options: &DecideOptions,
) -> super::DependencyBuilder {
    let nested_base = matches!(spec.base(), Some(crate::spec::NormalizedBase::Spec(_)));
    // Whether uv is here is a fact of this machine, found like the build finds it.
    let uv = crate::builders::daemonless::venv::find_uv()
        .map(drop)
        .map_err(|f| f.0);
    let uv = uv.as_ref().copied().map_err(String::as_str);
    super::dependency_builder(deps, nested_base, options.daemonless, uv)
}

/// What the existence check answered: with the image's digest when a registry said it
/// exists, and its manifest when that was read.
struct Answer {
    existence: Existence,
    digest: Option<Digest>,
    manifest: Option<RawManifest>,
}

impl Answer {
    fn of(existence: Existence) -> Answer {
        Answer {
            existence,
            digest: None,
            manifest: None,
        }
    }
}

/// The existence check (`None` for `--output`) and where it was asked.
async fn existence(
    tag: &ImageTag,
    options: &DecideOptions,
    client: Option<&RegistryClient>,
    daemon: &Daemon,
) -> (Option<Answer>, Asked) {
    if options.output {
        (None, Asked::Nowhere)
    } else if let Some(client) = client {
        let host = tag.image.host().to_string();
        let answer = registry_existence(client, &tag.image).await;
        (Some(answer), Asked::Registry(host))
    } else {
        (
            Some(Answer::of(daemon.exists(&tag.image).await)),
            Asked::Daemon,
        )
    }
}

/// The registry's answer to "does `image` exist", with its manifest digest when it does
/// (the skip path names the image by it without asking again): one manifest request. A
/// HEAD when this machine knows the repository (it keeps the records of the files by
/// digest: `recorded::ask_with_head` says when a second request remains); else a GET, whose
/// manifest the skip path reads that record through (a HEAD then would be a second request
/// for the same manifest).
async fn registry_existence(client: &RegistryClient, image: &ImageRef) -> Answer {
    if !super::run::recorded::ask_with_head(image) {
        match client.manifest(image).await {
            Ok(raw) => {
                return Answer {
                    existence: Existence::Yes,
                    digest: Some(raw.digest.clone()),
                    manifest: Some(raw),
                };
            }
            Err(e) if e.not_found() => return Answer::of(Existence::No),
            // A manifest our checks refuse (a type we do not read) still exists: the HEAD
            // says so, as it did before.
            Err(e) if matches!(*e.kind, RegistryErrorKind::AnswerRefused { .. }) => {}
            Err(e) => return Answer::of(Existence::Unknown(e.detail())),
        }
    }
    match client.digest(image).await {
        Ok(Some(digest)) => Answer {
            digest: Some(digest),
            ..Answer::of(Existence::Yes)
        },
        Ok(None) => Answer::of(Existence::No),
        Err(e) => Answer::of(Existence::Unknown(e.detail())),
    }
}

/// The local Docker daemon, connected the first time something needs it (a spec with a
/// registry whose image exists never connects).
pub struct Daemon {
    connected: tokio::sync::OnceCell<DockerDaemon>,
    timeouts: Timeouts,
}

impl Daemon {
    /// Not connected yet; `timeouts` are its requests'.
    pub fn new(timeouts: Timeouts) -> Daemon {
        Daemon {
            connected: tokio::sync::OnceCell::new(),
            timeouts,
        }
    }

    /// The daemon, connected now if it was not.
    pub async fn get(&self) -> Result<&DockerDaemon, BackendError> {
        self.connected
            .get_or_try_init(|| DockerDaemon::connect(self.timeouts))
            .await
    }

    /// flytekit's `exist()` asked of the daemon (one that cannot be reached cannot tell).
    pub async fn exists(&self, image: &ImageRef) -> Existence {
        match self.get().await {
            Ok(d) => d.exists_locally(image).await,
            Err(e) => Existence::Unknown(e.to_string()),
        }
    }
}

/// The dependency image for every platform, or `None` when one is missing.
async fn find_all(
    client: &RegistryClient,
    image: &ImageRef,
    platforms: &Platforms,
) -> Result<Option<Vec<DependencyImage>>, BackendError> {
    registry_backend::find_dependency_images(client, image, platforms).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asked_says_where() {
        assert_eq!(
            Asked::Registry("localhost:5000".into()).to_string(),
            "the registry localhost:5000"
        );
        assert_eq!(Asked::Daemon.to_string(), "the local daemon");
    }
}
