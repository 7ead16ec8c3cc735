//! What [`decide`](super::decide) needs to know of one image, asked of the outside world
//! once: the existence check (the registry, or the local daemon for a spec without a
//! registry) and, when the fast path may apply, the dependency image, both at the same time.
//! Nothing is built, pushed or written here.

use super::{
    Appendable, Builder, DecideOptions, Dependency, Existence, Facts, NotAppendable, Platforms,
};
use crate::Error;
use crate::builders::BackendError;
use crate::builders::docker::DockerDaemon;
use crate::builders::registry::{self as registry_backend, DependencyImage};
use crate::plan::{BuildPlan, Flavor, RenderOptions};
use crate::registry::client::RegistryClient;
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
    NotAsked,
}

impl std::fmt::Display for Asked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Asked::Registry(host) => write!(f, "the registry {host}"),
            Asked::Daemon => f.write_str("the local daemon"),
            Asked::NotAsked => f.write_str("not asked"),
        }
    }
}

/// The facts of one image, with what was learnt on the way (so a build does not ask again).
#[derive(Debug)]
pub struct Gathered {
    pub facts: Facts,
    pub asked: Asked,
    /// The build plan, when the builder makes one (`Err`: reported only if a build is due).
    pub plan: Option<Result<BuildPlan, Error>>,
    /// The dependency image's name, when the fast path may apply.
    pub dependency_image: Option<String>,
    /// The dependency images found (one per platform), when looked up and present.
    pub dependencies: Option<Vec<DependencyImage>>,
}

/// Asks the registry (or daemon) what `decide` needs for one image. `client` is the spec's
/// registry session, when it names a registry; `timeouts` are the daemon's, when it is
/// asked.
pub async fn gather(
    spec: &NormalizedSpec,
    tag: &ImageTag,
    render: &RenderOptions,
    options: &DecideOptions,
    client: Option<&RegistryClient>,
    daemon: &mut Option<DockerDaemon>,
    timeouts: Timeouts,
) -> Gathered {
    let builder = Builder::of(spec);
    let platforms = Platforms::parse(render.platform(spec));
    let registry = spec.registry().is_some();
    let files = tag.source.as_ref().map_or(0, |s| s.files.len())
        + tag
            .copy
            .as_ref()
            .map_or(0, |c| c.entries.iter().map(|e| e.files.len()).sum());
    let mut facts = Facts {
        builder: builder.clone(),
        registry,
        existence: None,
        appendable: Appendable::No(NotAppendable::NoFiles),
        dependency: Dependency::NotAsked,
        dependency_image: None,
        platforms: platforms.len(),
        files,
        dependency_builder: None,
    };
    let mut gathered = Gathered {
        facts: facts.clone(),
        asked: Asked::NotAsked,
        plan: None,
        dependency_image: None,
        dependencies: None,
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
    let existence = async {
        if options.output {
            (None, Asked::NotAsked)
        } else if let Some(client) = client {
            let host = crate::registry::registry_host(&tag.image).to_string();
            (Some(client.exists(&tag.image).await), Asked::Registry(host))
        } else {
            let answer = match connect(daemon, timeouts).await {
                Ok(d) => d.exists_locally(&tag.image).await,
                Err(e) => Existence::Unknown(e.to_string()),
            };
            (Some(answer), Asked::Daemon)
        }
    };
    let ((existence, asked), found) = tokio::join!(existence, lookup_dependency);
    facts.existence = existence;
    match found {
        Some(Ok(Some(found))) => {
            facts.dependency = Dependency::Found;
            gathered.dependencies = Some(found);
        }
        Some(Ok(None)) => facts.dependency = Dependency::Missing,
        Some(Err(e)) => facts.dependency = Dependency::Unknown(e.to_string()),
        None => {}
    }
    facts.dependency_builder = dependency_plan.as_ref().map(|deps| {
        let nested_base = matches!(spec.base(), Some(crate::spec::NormalizedBase::Spec(_)));
        // Whether uv is here is a fact of this machine, found like the build finds it.
        let uv = crate::builders::daemonless::venv::find_uv()
            .map(drop)
            .map_err(|f| f.0);
        let uv = uv.as_ref().copied().map_err(String::as_str);
        super::dependency_builder(deps, nested_base, options.daemonless, uv)
    });
    gathered.dependency_image = dependency_plan.map(|p| p.image);
    facts.dependency_image = gathered.dependency_image.clone();
    gathered.facts = facts;
    gathered.asked = asked;
    gathered.plan = plan.map(|p| p.map_err(Error::from));
    gathered
}

async fn connect(
    daemon: &mut Option<DockerDaemon>,
    timeouts: Timeouts,
) -> Result<&DockerDaemon, BackendError> {
    if daemon.is_none() {
        *daemon = Some(DockerDaemon::connect(timeouts).await?);
    }
    Ok(daemon.as_ref().expect("just connected"))
}

/// The dependency image for every platform, or `None` when one is missing.
async fn find_all(
    client: &RegistryClient,
    image: &str,
    platforms: &Platforms,
) -> Result<Option<Vec<DependencyImage>>, BackendError> {
    let platforms: Vec<&str> = platforms.iter().collect();
    registry_backend::find_dependency_images(client, image, &platforms).await
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
