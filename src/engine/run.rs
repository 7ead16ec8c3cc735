//! `build`: spec → tag → should-build decision → plan → backend → push, for one image and,
//! first, for each nested base spec (flytekit's `ImageBuildEngine.build`).

use crate::Error;
use crate::builders::BackendError;
use crate::builders::docker::{DockerDaemon, Existence};
use crate::builders::registry as registry_backend;
use crate::engine::{self, Builder, DecideOptions, Platforms, Strategy};
use crate::explain::{self, INPUTS_LABEL, Inputs};
use crate::plan::{BuildPlan, DEPENDENCY_LABEL, RenderOptions};
use crate::progress::{Event, Progress};
use crate::publish::layout::{Layout, OutputTarget};
use crate::publish::{Check, PublishError, Publisher};
use crate::registry::auth::Credentials;
use crate::registry::client::RegistryClient;
use crate::spec::defaults::{Defaults, switch};
use crate::spec::{NormalizedBase, NormalizedSpec};
use crate::tag::{ImageTag, TagOptions};
use crate::timeouts::Timeouts;
use std::time::Instant;

mod platforms;
mod uv;

/// What the build does besides building.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Push to the spec's registry (flytekit: `FLYTE_PUSH_IMAGE_SPEC`, default true).
    pub push: bool,
    /// Rebuild and push even when the image exists (`FLYTE_FORCE_PUSH_IMAGE_SPEC`).
    pub force: bool,
    /// When existence cannot be determined, assume the image exists (flytekit's engine;
    /// `--assume-exists`, or `FLYTE_IMG_FAST_FAIL` set to false) instead of failing with
    /// exit 3.
    pub assume_exists: bool,
    /// Connect and stall timeouts of every registry and daemon request.
    pub timeouts: Timeouts,
    pub render: RenderOptions,
    pub tag: TagOptions,
    /// Assemble code-only changes in the registry on the dependency image
    /// ([`crate::builders::registry`]) instead of rebuilding (`--no-fast-path` turns it off).
    pub fast_path: bool,
    /// Build a missing dependency image without a daemon (uv) when the spec allows it
    /// ([`engine::dependency_builder`]); `--no-daemonless` turns it off.
    pub daemonless: bool,
    /// Write the image here instead of pushing it (`--output`).
    pub output: Option<crate::publish::layout::OutputTarget>,
    /// Look up and build nested base specs first (flytekit's `ImageBuildEngine.build`).
    /// `false` (`--bases-built`): they are only named, because the caller has already
    /// built them, as flytekit's engine does before it calls a builder.
    pub build_bases: bool,
}

impl BuildOptions {
    /// Options with flytekit's environment variables applied.
    pub fn from_env(render: RenderOptions, tag: TagOptions) -> BuildOptions {
        BuildOptions::from_env_with(render, tag, &Defaults::default())
    }

    /// [`BuildOptions::from_env`] with a defaults file's `fast_path` and `daemonless`, which
    /// apply when `IMAGESPEC_NO_FAST_PATH` / `IMAGESPEC_NO_DAEMONLESS` are not set.
    pub fn from_env_with(
        render: RenderOptions,
        tag: TagOptions,
        defaults: &Defaults,
    ) -> BuildOptions {
        let var = |name: &str| std::env::var(name).ok();
        // flytekit: FLYTE_PUSH_IMAGE_SPEC is on unless it is "true"/"1" (case-insensitive);
        // the two others use str2bool (anything but false/0/off/no is true).
        let push = var("FLYTE_PUSH_IMAGE_SPEC")
            .is_none_or(|v| matches!(v.to_lowercase().as_str(), "true" | "1"));
        let str2bool = |v: Option<String>| {
            v.is_some_and(|v| !matches!(v.to_lowercase().as_str(), "false" | "0" | "off" | "no"))
        };
        BuildOptions {
            push,
            force: str2bool(var("FLYTE_FORCE_PUSH_IMAGE_SPEC")),
            // Only an explicit "false" opts in: unset, imagespec fails when it cannot tell.
            assume_exists: var("FLYTE_IMG_FAST_FAIL")
                .is_some_and(|v| matches!(v.to_lowercase().as_str(), "false" | "0" | "off" | "no")),
            timeouts: Timeouts::default(),
            render,
            tag,
            fast_path: switch(
                var("IMAGESPEC_NO_FAST_PATH").as_deref(),
                defaults.values.fast_path.as_ref(),
            ),
            daemonless: switch(
                var("IMAGESPEC_NO_DAEMONLESS").as_deref(),
                defaults.values.daemonless.as_ref(),
            ),
            output: None,
            build_bases: true,
        }
    }
}

impl BuildOptions {
    /// The options that change the decision ([`engine::decide`]).
    pub fn decide_options(&self) -> DecideOptions {
        DecideOptions {
            push: self.push,
            force: self.force,
            fast_path: self.fast_path,
            output: self.output.is_some(),
            assume_exists: self.assume_exists,
            daemonless: self.daemonless,
            output_one_platform: matches!(
                self.output,
                Some(crate::publish::layout::OutputTarget::DockerArchive(_))
            ),
        }
    }
}

/// What happened to an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Built (and pushed, when `pushed`).
    Built,
    /// Assembled in the registry: the dependency image plus a source layer.
    Appended,
    /// Assembled like `Appended`, and written to `--output` instead of pushed.
    Written,
    /// Found in the registry: nothing to do.
    Skipped,
    /// Existence unknown: assumed to exist, as flytekit assumes.
    Assumed,
    /// `builder = "noop"`: the base image is used as is.
    Noop,
}

/// The outcome for one image (and its base specs).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildOutcome {
    pub image: String,
    pub id: String,
    pub tag: String,
    pub action: Action,
    pub pushed: bool,
    /// What the engine decided, and why.
    pub strategy: Strategy,
    pub reason: String,
    /// The manifest (or index) digest in the registry, for an image pushed or found there.
    pub digest: Option<String>,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<Box<BuildOutcome>>,
}

/// flytekit's `exist()`: the registry answers directly when the spec names one (no daemon
/// needed to find an image that exists); without a registry, the local daemon is asked
/// (a daemon that cannot be reached cannot tell).
pub async fn exists(
    spec: &NormalizedSpec,
    image: &str,
    timeouts: Timeouts,
) -> Result<Existence, Error> {
    if spec.registry().is_some() {
        let config = spec.registry_config.as_deref().map(|p| spec.resolve(p));
        let client = crate::registry::session(
            crate::registry::registry_host(image),
            config.as_deref(),
            timeouts,
        )
        .map_err(BackendError::from)?;
        Ok(client.exists(image).await)
    } else {
        Ok(match DockerDaemon::connect(timeouts).await {
            Ok(daemon) => daemon.exists_locally(image).await,
            Err(e) => Existence::Unknown(e.to_string()),
        })
    }
}

/// Builds `spec` (its base specs first) unless it already exists.
pub async fn build(
    spec: &NormalizedSpec,
    options: &BuildOptions,
    progress: &Progress,
) -> Result<BuildOutcome, Error> {
    // The registry client (credentials, TLS roots) is made while the tag is computed.
    let host = spec
        .registry()
        .map(|r| crate::registry::registry_host(&format!("{r}/x")).to_string());
    let timeouts = options.timeouts;
    let client = host.map(|host| {
        let spec = spec.clone();
        std::thread::spawn(move || {
            let config = spec.registry_config.as_deref().map(|p| spec.resolve(p));
            let client = crate::registry::session(&host, config.as_deref(), timeouts)?;
            let credentials = client.credentials().cloned();
            Ok::<_, crate::registry::auth::AuthError>((client, credentials))
        })
    });
    let tag = crate::tag::compute(spec, &options.tag)?;
    let client = match client.map(|c| c.join()) {
        Some(Ok(Ok(client))) => Some(client),
        Some(Ok(Err(e))) => return Err(BackendError::from(e).into()),
        _ => None,
    };
    let mut daemon = None;
    build_one(spec, &tag, options, progress, &mut daemon, client).await
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

fn build_one<'a>(
    spec: &'a NormalizedSpec,
    tag: &'a ImageTag,
    options: &'a BuildOptions,
    progress: &'a Progress,
    daemon: &'a mut Option<DockerDaemon>,
    client: Option<(RegistryClient, Option<Credentials>)>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<BuildOutcome, Error>> + 'a>> {
    Box::pin(async move {
        let started = Instant::now();
        let base = match (spec.base(), &tag.base) {
            (Some(NormalizedBase::Spec(inner)), Some(inner_tag)) if options.build_bases => {
                // A base is pushed, never written to --output (flytekit's engine builds it).
                let mut base_options = options.clone();
                base_options.output = None;
                Some(Box::new(
                    build_one(inner, inner_tag, &base_options, progress, daemon, None).await?,
                ))
            }
            _ => None,
        };
        let image = tag.image.clone();
        // One client (one connection) for the existence check and the fast path.
        let (client, credentials) = match client {
            Some((client, credentials)) => (Some(client), credentials),
            None if spec.registry().is_some() => {
                let (client, credentials) = registry_client(spec, &image, options.timeouts)?;
                (Some(client), credentials)
            }
            None => (None, None),
        };
        let decide_options = options.decide_options();
        let mut gathered = engine::gather::gather(
            spec,
            tag,
            &options.render,
            &decide_options,
            client.as_ref(),
            daemon,
            options.timeouts,
        )
        .await;
        let decision = match engine::decide(&gathered.facts, &decide_options) {
            Ok(decision) => decision,
            // A plan that could not be made leaves facts that refuse for another reason (no
            // files to copy): its own error is the one to act on.
            Err(_) if matches!(gathered.plan, Some(Err(_))) => {
                return Err(gathered
                    .plan
                    .take()
                    .and_then(Result::err)
                    .expect("an error"));
            }
            Err(refusal) => {
                return Err(Error::Refused {
                    image: image.clone(),
                    at: refusal.field().map(|f| spec.at(f)),
                    refusal,
                });
            }
        };
        let outcome = |action, pushed, image: String| BuildOutcome {
            image,
            id: tag.id.clone(),
            tag: tag.tag.clone(),
            action,
            pushed,
            strategy: decision.strategy,
            reason: decision.reason.clone(),
            digest: None,
            seconds: started.elapsed().as_secs_f64(),
            base: base.clone(),
        };
        match &gathered.facts.existence {
            Some(Existence::Yes) if options.force => {
                progress.event(Event::Info(&format!("Overwriting existing image {image}")))
            }
            Some(Existence::No) => {
                progress.event(Event::Info(&format!("{image} not found, building")))
            }
            _ => {}
        }
        // The plan to build, carrying the record of what the tag was computed from.
        let plan = || -> Result<(BuildPlan, Inputs), Error> {
            let mut plan = match gathered.plan {
                Some(Ok(ref plan)) => plan.clone(),
                _ => BuildPlan::new(spec, tag, &options.render)?,
            };
            let deps = plan.dependencies().image;
            let inputs = Inputs::of(spec, tag, Some(deps)).map_err(|source| Error::Io {
                context: format!("reading the files of {}", tag.image),
                source,
            })?;
            plan.labels.push((INPUTS_LABEL.into(), inputs.to_label()));
            Ok((plan, inputs))
        };
        let root = spec.source_root.as_deref().unwrap_or_default();
        if let Some(w) = tag
            .source
            .as_ref()
            .filter(|_| !matches!(decision.strategy, Strategy::Noop))
            .and_then(|s| s.exclusion_warning(spec.name(), root))
        {
            progress.event(Event::Warning(&w));
        }
        // What would fail halfway through a build (a base lacking a platform; for dockerd, no
        // emulator for one) fails here, before any work. uv makes a dependency image without
        // running anything of the image: no emulator is needed (should it fall back to
        // dockerd, that is checked then).
        let by_uv =
            gathered.facts.dependency_builder.as_ref() == Some(&engine::DependencyBuilder::Uv);
        let builds = match decision.strategy {
            Strategy::Build | Strategy::BuildDependenciesThenAppend => true,
            Strategy::WriteOutput => gathered.facts.dependency != engine::Dependency::Found,
            _ => false,
        };
        let daemon_builds = matches!(decision.strategy, Strategy::Build) || !by_uv;
        if builds {
            match &gathered.plan {
                Some(Ok(plan)) => {
                    platforms::preflight(
                        spec,
                        Some(&plan.pull_ref(&plan.base_image)),
                        &plan.platform,
                        daemon_builds,
                        options.timeouts,
                        progress,
                    )
                    .await?
                }
                // envd (no Dockerfile plan): only the emulation check.
                None => {
                    platforms::preflight(
                        spec,
                        None,
                        options.render.platform(spec),
                        true,
                        options.timeouts,
                        progress,
                    )
                    .await?
                }
                Some(Err(_)) => {}
            }
        }
        let pushed = spec.registry().is_some() && options.push;
        let result: Result<BuildOutcome, Error> = match decision.strategy {
            Strategy::Skip => {
                progress.event(Event::Info(&format!("{image} exists, skipped")));
                // Best effort: an image without imagespec's record (or a registry that no
                // longer answers) is simply skipped.
                if let Some(client) = client.as_ref() {
                    let platforms = Platforms::parse(spec.platform());
                    let platform = platforms.iter().next().unwrap_or("linux/amd64");
                    if let Ok(recorded) = explain::recorded_in(client, &image, platform).await
                        && let Some(warning) = explain::stale_files(&recorded, tag)
                    {
                        progress.event(Event::Warning(&warning));
                    }
                }
                Ok(outcome(Action::Skipped, false, image))
            }
            Strategy::Assume => {
                progress.event(Event::Info(&format!(
                    "{image}: {}, as flytekit does",
                    decision.reason
                )));
                Ok(outcome(Action::Assumed, false, image))
            }
            Strategy::Noop => {
                let image = noop_image(spec, tag, base.as_deref())?;
                let platform = options.render.platform(spec);
                if Platforms::parse(platform).several() {
                    platforms::check_noop_base(spec, &image, platform, options.timeouts, progress)
                        .await?;
                }
                progress.event(Event::Info(&format!("Using image: {image}")));
                Ok(outcome(Action::Noop, false, image))
            }
            Strategy::WriteOutput => {
                let target = options.output.as_ref().expect("decided for --output");
                let (plan, inputs) = plan()?;
                let Some(client) = client.as_ref() else {
                    // No registry (the engine allowed it for uv): made and written here.
                    write_output_local(spec, tag, &plan, options, target, progress).await?;
                    explain::record_last_built(&inputs);
                    return Ok(outcome(Action::Written, false, image));
                };
                let deps = dependency_images_of(
                    client,
                    &plan,
                    credentials.as_ref(),
                    progress,
                    daemon,
                    gathered.dependencies,
                    gathered.facts.dependency_builder.as_ref(),
                )
                .await?;
                write_output(spec, tag, &plan, options, target, client, &deps, progress).await?;
                explain::record_last_built(&inputs);
                Ok(outcome(Action::Written, false, image))
            }
            Strategy::Append | Strategy::BuildDependenciesThenAppend => {
                let (plan, inputs) = plan()?;
                let client = client.as_ref().expect("appending needs a registry");
                let deps = dependency_images_of(
                    client,
                    &plan,
                    credentials.as_ref(),
                    progress,
                    daemon,
                    gathered.dependencies,
                    gathered.facts.dependency_builder.as_ref(),
                )
                .await?;
                match deps.as_slice() {
                    [one] => fast_path(spec, tag, &plan, options, client, one, progress).await?,
                    several => {
                        fast_path_platforms(spec, tag, &plan, options, client, several, progress)
                            .await?
                    }
                }
                explain::record_last_built(&inputs);
                Ok(outcome(Action::Appended, true, image))
            }
            Strategy::Build if gathered.facts.builder == Builder::Envd => {
                // envd builds into dockerd (its default context uses dockerd's BuildKit); the
                // push is ours, from dockerd (src/builders/envd.rs says why).
                let plan = crate::plan::EnvdPlan::new(spec, tag, &options.render)?;
                let d = connect(daemon, options.timeouts).await?;
                crate::builders::envd::Envd::find()?
                    .build(&plan, progress)
                    .await?;
                crate::tag::verify_unchanged(spec, &options.tag, tag)?;
                if pushed {
                    push(d, &image, credentials.as_ref(), progress).await?;
                }
                Ok(outcome(Action::Built, pushed, image))
            }
            Strategy::Build => {
                let (plan, inputs) = plan()?;
                if pushed && options.fast_path {
                    progress.event(Event::Info(&decision.reason));
                }
                let d = connect(daemon, options.timeouts).await?;
                if Platforms::parse(&plan.platform).several() {
                    let client = client.as_ref().expect("several platforms are pushed");
                    platforms::build_and_push(
                        d,
                        client,
                        &plan,
                        credentials.as_ref(),
                        progress,
                        || Ok(crate::tag::verify_unchanged(spec, &options.tag, tag)?),
                    )
                    .await?;
                    explain::record_last_built(&inputs);
                    return Ok(outcome(Action::Built, true, image));
                }
                d.build(&plan, progress).await?;
                crate::tag::verify_unchanged(spec, &options.tag, tag)?;
                if pushed {
                    push(d, &image, credentials.as_ref(), progress).await?;
                }
                explain::record_last_built(&inputs);
                Ok(outcome(Action::Built, pushed, image))
            }
        };
        let mut done = result?;
        // A green run means the image is there: an image this run pushed, or found, is asked
        // of the registry once more, which also gives its digest.
        if let (Some(client), true) = (
            client.as_ref(),
            done.pushed || done.action == Action::Skipped,
        ) {
            match client.digest(&done.image).await {
                Ok(Some(digest)) => done.digest = Some(digest.to_string()),
                Ok(None) => {
                    return Err(BackendError::Push {
                        image: done.image.clone(),
                        message: "pushed, but the registry does not have it".into(),
                    }
                    .into());
                }
                Err(e) => return Err(BackendError::from(e).into()),
            }
        }
        Ok(done)
    })
}

/// The image a `noop` spec names: its base, as flytekit's noop builder returns it.
fn noop_image(
    spec: &NormalizedSpec,
    tag: &ImageTag,
    base: Option<&BuildOutcome>,
) -> Result<String, Error> {
    match spec.base() {
        Some(NormalizedBase::Ref(r)) if !r.is_empty() => Ok(r.clone()),
        Some(NormalizedBase::Spec(_)) => Ok(base
            .map(|b| b.image.clone())
            .or_else(|| tag.base.as_ref().map(|b| b.image.clone()))
            .unwrap_or_default()),
        _ => Err(Error::Builder {
            name: spec.name().into(),
            at: Some(spec.at("base_image")),
            message: "base_image must be a string to use the noop image builder".into(),
        }),
    }
}

async fn push(
    d: &DockerDaemon,
    image: &str,
    credentials: Option<&Credentials>,
    progress: &Progress,
) -> Result<Option<String>, BackendError> {
    let step = format!("push {image}");
    let pushing = d.push(image, credentials, "push", progress);
    in_step(progress, "push", &step, pushing).await
}

/// `work` shown as the progress step `id` named `name`: started, then done with its error.
async fn in_step<T, E: std::fmt::Display>(
    progress: &Progress,
    id: &'static str,
    name: &str,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    progress.event(Event::StepStarted {
        id,
        name,
        label: None,
    });
    let result = work.await;
    let error = result.as_ref().err().map(ToString::to_string);
    progress.event(Event::StepDone {
        id,
        name,
        label: None,
        cached: false,
        error: error.as_deref(),
    });
    result
}

/// A dependency image looked up ahead, beside the image's existence check: its plan and
/// what the registry answered.
struct DependencyLookup {
    plan: BuildPlan,
    found: Result<Option<registry_backend::DependencyImage>, BackendError>,
}

/// The dependency image found while the facts were gathered, as a lookup.
fn lookup(
    plan: &BuildPlan,
    found: Option<Vec<registry_backend::DependencyImage>>,
) -> Option<DependencyLookup> {
    let found = found.and_then(|mut d| d.pop())?;
    Some(DependencyLookup {
        plan: plan.dependencies(),
        found: Ok(Some(found)),
    })
}

/// The dependency image of `plan` in the registry, built and pushed first when the
/// registry does not have it: by `builder` (uv without a daemon, else dockerd).
async fn dependency_image(
    client: &RegistryClient,
    plan: &BuildPlan,
    credentials: Option<&Credentials>,
    progress: &Progress,
    daemon: &mut Option<DockerDaemon>,
    lookup: Option<DependencyLookup>,
    builder: Option<&engine::DependencyBuilder>,
) -> Result<registry_backend::DependencyImage, Error> {
    let DependencyLookup {
        plan: deps_plan,
        found,
    } = match lookup {
        Some(lookup) => lookup,
        None => {
            let deps_plan = plan.dependencies();
            let found =
                registry_backend::find_dependency_image(client, &deps_plan.image, &plan.platform)
                    .await;
            DependencyLookup {
                plan: deps_plan,
                found,
            }
        }
    };
    if let Some(deps) = found? {
        progress.event(Event::Info(&format!(
            "dependencies unchanged ({}): appending the source",
            deps_plan.image
        )));
        return Ok(deps);
    }
    // Concurrent builds of specs sharing this dependency image (two CI jobs of one repo)
    // make it once: the others wait for the lock, then find it in the registry. Without
    // that, each would push its own build of it, and their images would differ.
    let _lock = crate::lock::ImageLock::acquire(&deps_plan.image, |message| {
        progress.event(Event::Info(message))
    })
    .await
    .map_err(BackendError::from)?;
    // Asked again under the lock: another run may have pushed it since the first look.
    if let Some(deps) =
        registry_backend::find_dependency_image(client, &deps_plan.image, &plan.platform).await?
    {
        progress.event(Event::Info(&format!(
            "dependency image {} pushed meanwhile by another run: appending the source",
            deps_plan.image
        )));
        return Ok(deps);
    }
    progress.event(Event::Info(&format!(
        "dependency image {} not found, building it",
        deps_plan.image
    )));
    // The builder was chosen with the facts (engine::dependency_builder, shown by `plan`);
    // what only the build finds out (no wheel, no Python in the base) falls back to dockerd.
    if builder == Some(&engine::DependencyBuilder::Uv) {
        use crate::builders::daemonless::DaemonlessError;
        let platforms = [plan.platform.as_str()];
        match uv::build_and_push(client, &deps_plan, &platforms, progress).await {
            Ok(_) => {
                return pushed_dependency_image(client, &deps_plan.image, &plan.platform).await;
            }
            Err(uv::UvError::Build(DaemonlessError::Fallback(why))) => {
                progress.event(Event::Info(&format!(
                    "cannot build the dependency image without a daemon ({why}): \
                     building it with dockerd"
                )));
                check_emulation(&plan.platform)?;
            }
            Err(e) => return Err(uv_failed(e)),
        }
    }
    let d = connect(daemon, client.timeouts()).await?;
    // Built under a working tag of this run's own (another imagespec, also of another user,
    // may build the same one on this daemon), then labelled with what only the built image
    // knows (the flytekit user's uid, /root's owner and mode) under its real tag.
    let mut unlabelled = deps_plan.clone();
    unlabelled.image = format!("{}-unlabelled-{}", deps_plan.image, working_suffix());
    let labelled = async {
        d.build(&unlabelled, progress).await?;
        let facts = d
            .dependency_facts(&unlabelled.image, &plan.platform)
            .await?;
        d.relabel(
            &unlabelled.image,
            &deps_plan.image,
            &[(DEPENDENCY_LABEL, facts)],
            &plan.platform,
            progress,
        )
        .await
    }
    .await;
    // The working tag goes also when building failed (it is this run's alone).
    d.untag(&unlabelled.image).await;
    labelled?;
    push(d, &deps_plan.image, credentials, progress).await?;
    pushed_dependency_image(client, &deps_plan.image, &plan.platform).await
}

/// The dependency images of `plan`, one per platform in the order written: found while the
/// facts were gathered, or built and pushed now (one platform: [`dependency_image`];
/// several: [`several_dependency_images`]).
#[allow(clippy::too_many_arguments)]
async fn dependency_images_of(
    client: &RegistryClient,
    plan: &BuildPlan,
    credentials: Option<&Credentials>,
    progress: &Progress,
    daemon: &mut Option<DockerDaemon>,
    found: Option<Vec<registry_backend::DependencyImage>>,
    builder: Option<&engine::DependencyBuilder>,
) -> Result<Vec<registry_backend::DependencyImage>, Error> {
    if Platforms::parse(&plan.platform).several() {
        return several_dependency_images(
            client,
            plan,
            credentials,
            progress,
            daemon,
            found,
            builder,
        )
        .await;
    }
    let found = lookup(plan, found);
    let one = dependency_image(client, plan, credentials, progress, daemon, found, builder).await?;
    Ok(vec![one])
}

/// The dependency image of every platform of `plan`: the ones found, else built by uv for
/// every platform without a daemon (one resolution, no emulation) when the engine chose uv,
/// else by dockerd one platform per solve ([`platforms::dependency_images`]); what only the
/// uv build finds out (no wheel, no Python in the base) falls back to dockerd.
#[allow(clippy::too_many_arguments)]
async fn several_dependency_images(
    client: &RegistryClient,
    plan: &BuildPlan,
    credentials: Option<&Credentials>,
    progress: &Progress,
    daemon: &mut Option<DockerDaemon>,
    found: Option<Vec<registry_backend::DependencyImage>>,
    builder: Option<&engine::DependencyBuilder>,
) -> Result<Vec<registry_backend::DependencyImage>, Error> {
    use crate::builders::daemonless::DaemonlessError;
    if found.is_none() && builder == Some(&engine::DependencyBuilder::Uv) {
        let deps_plan = plan.dependencies();
        progress.event(Event::Info(&format!(
            "dependency image {} not found for every platform, building it without a daemon",
            deps_plan.image
        )));
        let platforms = Platforms::parse(&plan.platform);
        let platforms: Vec<&str> = platforms.iter().collect();
        match uv::build_and_push(client, &deps_plan, &platforms, progress).await {
            Ok(_) => {
                let found =
                    registry_backend::find_dependency_images(client, &deps_plan.image, &platforms)
                        .await?;
                return Ok(found.ok_or_else(|| BackendError::Push {
                    image: deps_plan.image.clone(),
                    message: "pushed, but the registry does not return every platform".into(),
                })?);
            }
            Err(uv::UvError::Build(DaemonlessError::Fallback(why))) => {
                progress.event(Event::Info(&format!(
                    "cannot build the dependency images without a daemon ({why}): \
                     building them with dockerd, one platform at a time"
                )));
                check_emulation(&plan.platform)?;
            }
            Err(e) => return Err(uv_failed(e)),
        }
    }
    platforms::dependency_images(client, plan, credentials, progress, daemon, found).await
}

/// Before dockerd builds what uv could not: this machine runs every platform's programs
/// (the check [`platforms::preflight`] leaves out when uv was to build).
fn check_emulation(platform: &str) -> Result<(), Error> {
    let platforms = Platforms::parse(platform);
    let list: Vec<&str> = platforms.iter().collect();
    Ok(crate::builders::emulation::check_local_daemon(&list).map_err(BackendError::from)?)
}

/// The dependency image just pushed, read back from the registry.
async fn pushed_dependency_image(
    client: &RegistryClient,
    image: &str,
    platform: &str,
) -> Result<registry_backend::DependencyImage, Error> {
    let found = registry_backend::find_dependency_image(client, image, platform).await?;
    Ok(found.ok_or_else(|| BackendError::Push {
        image: image.to_string(),
        message: "pushed, but the registry does not return it".into(),
    })?)
}

/// A suffix no other run uses at the same time: this process and a random part.
fn working_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{nanos:08x}", std::process::id())
}

fn registry_client(
    spec: &NormalizedSpec,
    image: &str,
    timeouts: Timeouts,
) -> Result<(RegistryClient, Option<Credentials>), Error> {
    let config = spec.registry_config.as_deref().map(|p| spec.resolve(p));
    let client = crate::registry::session(
        crate::registry::registry_host(image),
        config.as_deref(),
        timeouts,
    )
    .map_err(BackendError::from)?;
    let credentials = client.credentials().cloned();
    Ok((client, credentials))
}

/// `--output`: the image assembled on its dependency image (no RUN step runs) and written
/// to disk; nothing is pushed except, when the registry lacks it, the dependency image.
/// Several platforms (one dependency image each, in `plan.platform`'s order) are written as
/// one index.
#[allow(clippy::too_many_arguments)]
async fn write_output(
    spec: &NormalizedSpec,
    tag: &ImageTag,
    plan: &BuildPlan,
    options: &BuildOptions,
    target: &OutputTarget,
    client: &RegistryClient,
    deps: &[registry_backend::DependencyImage],
    progress: &Progress,
) -> Result<(), Error> {
    let deps: Vec<&registry_backend::DependencyImage> = deps.iter().collect();
    let images = assemble_platforms(plan, &deps, progress).await?;
    let layout = Layout {
        client,
        name: &plan.image,
        target,
        progress,
    };
    write_images(&layout, images, tag_check(spec, options, tag)).await
}

/// `plan`'s image on each dependency image (one per platform of `plan`, in order).
async fn assemble_platforms(
    plan: &BuildPlan,
    deps: &[&registry_backend::DependencyImage],
    progress: &Progress,
) -> Result<Vec<(String, crate::oci::Image)>, Error> {
    let platforms = Platforms::parse(&plan.platform);
    let mut images = Vec::new();
    for (platform, deps) in platforms.iter().zip(deps) {
        let _scope = platforms
            .several()
            .then(|| progress.platform_scope(platform));
        let assembled = registry_backend::assemble_image(plan, deps, progress).await?;
        images.push((platform.to_string(), assembled.image));
    }
    Ok(images)
}

/// `--output` of a spec without a registry: the dependency image of each platform made on
/// this machine with uv (no daemon, nothing pushed), the source layer on it, and the image
/// written with the base's layers read from the base's registry.
async fn write_output_local(
    spec: &NormalizedSpec,
    tag: &ImageTag,
    plan: &BuildPlan,
    options: &BuildOptions,
    target: &OutputTarget,
    progress: &Progress,
) -> Result<(), Error> {
    use crate::builders::daemonless::{DaemonlessError, make_local};
    let deps_plan = plan.dependencies();
    let made = match make_local(&deps_plan, options.timeouts, progress).await {
        Ok(made) => made,
        Err(DaemonlessError::Fallback(why)) => {
            return Err(BackendError::Output {
                target: target.to_string(),
                source: crate::publish::layout::LayoutError::Io {
                    path: std::path::PathBuf::from(&plan.image),
                    source: std::io::Error::other(format!(
                        "the dependencies cannot be installed without a daemon ({why}), and \
                         with no `registry` there is nowhere to keep a dependency image \
                         dockerd would build"
                    )),
                },
            }
            .into());
        }
        Err(e) => return Err(BackendError::from(e).into()),
    };
    let deps: Vec<&registry_backend::DependencyImage> = made.iter().map(|m| &m.image).collect();
    let images = assemble_platforms(plan, &deps, progress).await?;
    // Every platform's base is the same image in the same registry.
    let layout = Layout {
        client: &made[0].base_client,
        name: &plan.image,
        target,
        progress,
    };
    write_images(&layout, images, tag_check(spec, options, tag)).await
}

/// The output step: `images` (one per platform, in order; several: an index) written by
/// `layout` once `check` holds.
async fn write_images(
    layout: &Layout<'_>,
    images: Vec<(String, crate::oci::Image)>,
    check: Check,
) -> Result<(), Error> {
    let several = images.len() > 1;
    let (progress, target) = (layout.progress, layout.target);
    let step = format!("write {target}");
    let writing = async {
        if several {
            let index = crate::oci::Index::of_images(images);
            layout.publish_index(&index, check).await
        } else {
            let (_, image) = images.into_iter().next().expect("one platform at least");
            layout.publish(&image, check).await
        }
    };
    let written = in_step(progress, crate::progress::OUTPUT_STEP, &step, writing).await;
    written.map_err(|e| published(e, Some(target)))?;
    Ok(())
}

/// A failed publish as the build's error: a tag that changed is the tag's error, a
/// registry's failure the push's, a layout's the output's.
fn published(e: PublishError, target: Option<&OutputTarget>) -> Error {
    match e {
        PublishError::Check(e) => e.into(),
        PublishError::Registry(e) => BackendError::from(e).into(),
        PublishError::Layout(source) => BackendError::Output {
            target: target.map(ToString::to_string).unwrap_or_default(),
            source,
        }
        .into(),
        PublishError::Io { context, source } => {
            BackendError::Context(format!("{context}: {source}")).into()
        }
    }
}

/// A failed daemonless dependency build or push as the build's error.
fn uv_failed(e: uv::UvError) -> Error {
    match e {
        uv::UvError::Build(e) => BackendError::from(e).into(),
        uv::UvError::Publish(e) => published(e, None),
    }
}

/// flytekit's check that the tag still matches the files, to run on another thread while
/// the blobs upload.
fn tag_check(spec: &NormalizedSpec, options: &BuildOptions, tag: &ImageTag) -> Check {
    let (spec, tag_options, tag) = (spec.clone(), options.tag.clone(), tag.clone());
    Check::new(move || crate::tag::verify_unchanged(&spec, &tag_options, &tag))
}

/// The registry fast path: the source layer on the dependency image, assembled here and
/// pushed to the registry (the layer and config, then the manifest once the tag check
/// holds).
async fn fast_path(
    spec: &NormalizedSpec,
    tag: &ImageTag,
    plan: &BuildPlan,
    options: &BuildOptions,
    client: &RegistryClient,
    deps: &registry_backend::DependencyImage,
    progress: &Progress,
) -> Result<(), Error> {
    use crate::publish::registry::{Reference, Registry};
    let assembled = registry_backend::assemble_image(plan, deps, progress).await?;
    // The dependency image was named by the line before ("dependencies unchanged (...)").
    let step = format!(
        "push {} ({} files, {} on the dependency image)",
        plan.image,
        assembled.files,
        crate::progress::bytes(assembled.layer_size)
    );
    let publisher = Registry::new(client, &plan.image).metered(progress, "append");
    let check = tag_check(spec, options, tag);
    let pushing = publisher.push(&assembled.image, Reference::Tag, check);
    let pushed = in_step(progress, "append", &step, pushing).await;
    let pushed = pushed.map_err(|e| published(e, None))?;
    progress.event(Event::Info(&format!(
        "pushed {} ({}), {} files, layer {} bytes{}",
        plan.image,
        pushed.digest,
        assembled.files,
        assembled.layer_size,
        if pushed.uploaded.contains(&assembled.layer_digest) {
            ""
        } else {
            " (already in the registry)"
        }
    )));
    Ok(())
}

/// The fast path for several platforms: the dependency image is an index with every
/// platform (found, or made by [`platforms::dependency_images`]); each platform gets the
/// source layer and is pushed by digest, and the index is pushed last, once the tag check
/// holds.
async fn fast_path_platforms(
    spec: &NormalizedSpec,
    tag: &ImageTag,
    plan: &BuildPlan,
    options: &BuildOptions,
    client: &RegistryClient,
    deps: &[registry_backend::DependencyImage],
    progress: &Progress,
) -> Result<(), Error> {
    use crate::publish::registry::{Reference, Registry};
    let platforms = Platforms::parse(&plan.platform);
    let publisher = Registry::new(client, &plan.image).metered(progress, "append");
    let mut index = crate::oci::Index::default();
    for (platform, deps) in platforms.iter().zip(deps) {
        let assembled = registry_backend::assemble_image(plan, deps, progress).await?;
        let step = format!(
            "push {} for {platform} ({} files, {})",
            plan.image,
            assembled.files,
            crate::progress::bytes(assembled.layer_size)
        );
        let pushing = publisher.push(&assembled.image, Reference::Digest, Check::none());
        let pushed = in_step(progress, "append", &step, pushing).await;
        pushed.map_err(|e| published(e, None))?;
        index.push_descriptor(platform, assembled.image.descriptor());
    }
    let digest = publisher
        .push_index(&index, tag_check(spec, options, tag))
        .await
        .map_err(|e| published(e, None))?;
    progress.event(Event::Info(&format!(
        "pushed {} ({}), an index of {} platforms",
        plan.image,
        digest,
        platforms.len()
    )));
    Ok(())
}
