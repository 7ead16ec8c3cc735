//! `engine::run`: a decided [`Strategy`] executed, one function per strategy, each in the
//! file named for it (`append`, `full`, `output`; skip, assume and noop here). The
//! strategy carries what it needs (the builder, the platforms, the dependency images as
//! read, where the image goes): nothing here decides again or asks the registry what the
//! facts already said. [`build`] is the pipeline of flytekit's `ImageBuildEngine.build` for
//! one spec: its nested base specs first, then tag → gather → decide → run.

use super::gather::{Daemon, Gathered, gather};
use super::{DecideOptions, Decision, EngineError, Strategy, StrategyKind};
use crate::builders::BackendError;
use crate::builders::docker::Existence;
use crate::explain::{self, INPUTS_LABEL, Inputs};
use crate::oci::{Digest, ImageRef, Platforms};
use crate::plan::{BuildPlan, RenderOptions};
use crate::progress::{Event, Progress};
use crate::publish::layout::OutputTarget;
use crate::publish::{Check, PublishError};
use crate::registry::auth::Credentials;
use crate::registry::client::{RawManifest, RegistryClient};
use crate::spec::defaults::{Defaults, switch};
use crate::spec::{NormalizedBase, NormalizedSpec};
use crate::tag::{ImageTag, TagOptions};
use crate::timeouts::Timeouts;
use std::time::Instant;

mod append;
mod full;
pub mod jobs;
mod output;
pub(crate) mod platforms;
pub(super) mod recorded;
mod remote;
mod sbom;

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
    /// (`builders::registry`) instead of rebuilding (`--no-fast-path` turns it off).
    pub fast_path: bool,
    /// Build a missing dependency image without a daemon (uv) when the spec allows it
    /// ([`crate::engine::dependency_builder`]); `--no-daemonless` turns it off.
    pub daemonless: bool,
    /// Write the image here instead of pushing it (`--output`).
    pub output: Option<crate::publish::layout::OutputTarget>,
    /// Look up and build nested base specs first (flytekit's `ImageBuildEngine.build`).
    /// `false` (`--bases-built`): they are only named, because the caller has already
    /// built them, as flytekit's engine does before it calls a builder.
    pub build_bases: bool,
    /// Attach an SBOM to every image published (`--sbom=false`, `IMAGESPEC_NO_SBOM` or the
    /// defaults file's `sbom = false` turn it off).
    pub sbom: bool,
    /// Attach SLSA provenance beside the SBOM (`--provenance=false`,
    /// `IMAGESPEC_NO_PROVENANCE` or the defaults file's `provenance = false` turn it off; no
    /// SBOM, no provenance).
    pub provenance: bool,
    /// Build on a remote buildkitd instead of dockerd (`--builder-host`, `BUILDKIT_HOST`,
    /// `buildkit_host`): it pushes the images itself ([`remote`]).
    pub remote: Option<crate::builders::remote::RemoteOptions>,
}

impl BuildOptions {
    /// Options with flytekit's environment variables applied.
    pub fn from_env(render: RenderOptions, tag: TagOptions) -> BuildOptions {
        BuildOptions::from_env_with(render, tag, &Defaults::default())
    }

    /// [`BuildOptions::from_env`] with a defaults file's `fast_path`, `daemonless`, `sbom`
    /// and `provenance`, which apply when their `IMAGESPEC_NO_…` variable is not set.
    pub fn from_env_with(
        render: RenderOptions,
        tag: TagOptions,
        defaults: &Defaults,
    ) -> BuildOptions {
        let var = |name: &str| std::env::var(name).ok();
        // Each switch: its IMAGESPEC_NO_* variable, else the defaults file's key.
        let values = &defaults.values;
        let on = |no_env: &str, file: &Option<crate::spec::defaults::Setting<bool>>| {
            switch(var(no_env).as_deref(), file.as_ref())
        };
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
            fast_path: on("IMAGESPEC_NO_FAST_PATH", &values.fast_path),
            daemonless: on("IMAGESPEC_NO_DAEMONLESS", &values.daemonless),
            output: None,
            build_bases: true,
            sbom: on("IMAGESPEC_NO_SBOM", &values.sbom),
            provenance: on("IMAGESPEC_NO_PROVENANCE", &values.provenance),
            remote: None,
        }
    }
}

impl BuildOptions {
    /// The options that change the decision ([`crate::engine::decide()`]).
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
            remote_builder: self.remote.is_some(),
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
    pub image: ImageRef,
    pub id: String,
    pub tag: String,
    pub action: Action,
    pub pushed: bool,
    /// What the engine decided, and why.
    pub strategy: StrategyKind,
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
    image: &ImageRef,
    timeouts: Timeouts,
) -> Result<Existence, EngineError> {
    if let Some(client) = super::preview::registry_session(spec, image, timeouts)? {
        Ok(client.exists(image).await)
    } else {
        Ok(Daemon::new(timeouts).exists(image).await)
    }
}

/// A registry session and the credentials it found.
type Session = (RegistryClient, Option<Credentials>);

/// Builds `spec` (its base specs first) unless it already exists.
pub async fn build(
    spec: &NormalizedSpec,
    options: &BuildOptions,
    progress: &Progress,
) -> Result<BuildOutcome, EngineError> {
    // The registry client (credentials, TLS roots) is made while the tag is computed.
    let host = spec
        .registry()
        .map(|_| spec.repository().host().to_string());
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
        Some(Ok(Err(e))) => return Err(e.into()),
        _ => None,
    };
    let daemon = Daemon::new(options.timeouts);
    build_spec(spec, &tag, options, progress, &daemon, client).await
}

/// One image's build: what every strategy's executor reads.
struct Job<'a> {
    spec: &'a NormalizedSpec,
    tag: &'a ImageTag,
    options: &'a BuildOptions,
    progress: &'a Progress,
    daemon: &'a Daemon,
    client: Option<&'a RegistryClient>,
    credentials: Option<&'a Credentials>,
    /// The outcome of the nested base spec, built first.
    base: Option<&'a BuildOutcome>,
    /// When this build started (the provenance's `startedOn`).
    started: std::time::SystemTime,
}

impl Job<'_> {
    /// The spec's registry session: the strategies that push or append have one (decided).
    fn registry(&self) -> Result<&RegistryClient, EngineError> {
        self.client.ok_or_else(|| EngineError::Invalid {
            name: self.spec.name().into(),
            at: Some(self.spec.at("registry")),
            message: "this strategy needs a `registry`".into(),
        })
    }

    fn info(&self, message: &str) {
        self.progress.event(Event::Info(message));
    }
}

/// What a strategy did.
struct Done {
    action: Action,
    pushed: bool,
    image: ImageRef,
    /// The manifest (or index) digest, as the publish (or the existence check) gave it.
    digest: Option<Digest>,
}

impl Done {
    /// The job's image made by `action`, pushed as `digest` when there is one.
    fn made(job: &Job<'_>, action: Action, digest: Option<Digest>) -> Done {
        let image = job.tag.image.clone();
        let pushed = digest.is_some();
        Done {
            action,
            pushed,
            image,
            digest,
        }
    }
}

/// `spec`'s base specs built first (flytekit's `ImageBuildEngine.build`), then `spec`:
/// gathered, decided, run.
fn build_spec<'a>(
    spec: &'a NormalizedSpec,
    tag: &'a ImageTag,
    options: &'a BuildOptions,
    progress: &'a Progress,
    daemon: &'a Daemon,
    client: Option<Session>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<BuildOutcome, EngineError>> + 'a>> {
    Box::pin(async move {
        let started = Instant::now();
        let started_at = std::time::SystemTime::now();
        let base = match (spec.base(), &tag.base) {
            (Some(NormalizedBase::Spec(inner)), Some(inner_tag)) if options.build_bases => {
                // A base is pushed, never written to --output (flytekit's engine builds it).
                let mut base_options = options.clone();
                base_options.output = None;
                let inner = build_spec(inner, inner_tag, &base_options, progress, daemon, None);
                Some(Box::new(inner.await?))
            }
            _ => None,
        };
        // One client (one connection) for the existence check and the fast path.
        let (client, credentials) = match client {
            Some((client, credentials)) => (Some(client), credentials),
            None => match super::preview::registry_session(spec, &tag.image, options.timeouts)? {
                Some(client) => {
                    let credentials = client.credentials().cloned();
                    (Some(client), credentials)
                }
                None => (None, None),
            },
        };
        let job = Job {
            spec,
            tag,
            options,
            progress,
            daemon,
            client: client.as_ref(),
            credentials: credentials.as_ref(),
            base: base.as_deref(),
            started: started_at,
        };
        let (decision, gathered) = decide_image(&job).await?;
        let done = run(&job, &decision, gathered).await?;
        // The fast path attaches the SBOM of the images it pushed itself (append.rs).
        if let (true, Action::Built, Some(digest)) = (done.pushed, done.action, &done.digest) {
            sbom::attach(&job, &done.image, sbom::Published::Digest(digest)).await;
        }
        Ok(BuildOutcome {
            image: done.image,
            id: tag.id.clone(),
            tag: tag.tag.clone(),
            action: done.action,
            pushed: done.pushed,
            strategy: decision.strategy.kind(),
            reason: decision.reason,
            digest: done.digest.map(|d| d.to_string()),
            seconds: started.elapsed().as_secs_f64(),
            base,
        })
    })
}

/// The facts of the job's image gathered and the strategy decided, or why none applies.
async fn decide_image(job: &Job<'_>) -> Result<(Decision, Gathered), EngineError> {
    let options = job.options.decide_options();
    let (spec, tag) = (job.spec, job.tag);
    let mut gathered = gather(
        spec,
        tag,
        &job.options.render,
        &options,
        job.client,
        job.daemon,
        job.progress,
    )
    .await;
    match super::decide(&gathered.facts, &options) {
        Ok(decision) => Ok((decision, gathered)),
        // A plan that could not be made leaves facts that refuse for another reason (no
        // files to copy): its own error is the one to act on.
        Err(refusal) => match gathered.plan.take() {
            Some(Err(e)) => Err(e),
            _ => Err(EngineError::Refused {
                image: tag.image.to_string(),
                at: refusal.field().map(|f| spec.at(f)),
                refusal,
            }),
        },
    }
}

/// Executes `decision` for the job's image: one function per strategy.
async fn run(job: &Job<'_>, decision: &Decision, gathered: Gathered) -> Result<Done, EngineError> {
    announce(job, &gathered, decision.strategy.kind());
    match &decision.strategy {
        Strategy::Skip { digest } => skip(job, digest.clone(), gathered.manifest).await,
        Strategy::Assume => Ok(assume(job, &decision.reason)),
        Strategy::Noop { platforms } => noop(job, platforms).await,
        Strategy::Append {
            dependencies,
            platforms,
        } => append::append(job, Planned::of(job, gathered)?, &dependencies.0, platforms).await,
        Strategy::BuildDependenciesThenAppend { builder, platforms } => {
            let planned = Planned::of(job, gathered)?;
            append::build_dependencies_then_append(job, planned, builder.as_ref(), platforms).await
        }
        Strategy::Build {
            builder: super::Builder::Envd,
            target,
            ..
        } => full::build_envd(job, *target).await,
        Strategy::Build { target, .. } => {
            let planned = Planned::of(job, gathered)?;
            full::build_image(job, planned, *target, &decision.reason).await
        }
        Strategy::WriteOutput {
            dependencies,
            platforms,
        } => output::write_output(job, Planned::of(job, gathered)?, dependencies, platforms).await,
    }
}

/// What the facts said, and a warning about the files, before the strategy runs.
fn announce(job: &Job<'_>, gathered: &Gathered, strategy: StrategyKind) {
    let image = &job.tag.image;
    match &gathered.facts.existence {
        Some(Existence::Yes) if job.options.force => {
            job.info(&format!("Overwriting existing image {image}"))
        }
        Some(Existence::No) => job.info(&format!("{image} not found, building")),
        _ => {}
    }
    let root = job.spec.source_root.as_deref().unwrap_or_default();
    if let Some(w) = job
        .tag
        .source
        .as_ref()
        .filter(|_| strategy != StrategyKind::Noop)
        .and_then(|s| s.exclusion_warning(job.spec.name(), root))
    {
        job.progress.event(Event::Warning(&w));
    }
}

/// The image exists: named with the digest the existence check gave. Best effort, a warning
/// when the files it records are not the files the spec copies now (flytekit's digest does
/// not see every rename): its record is read once per digest ([`recorded`]), through the
/// `manifest` the existence check read, if it did.
async fn skip(
    job: &Job<'_>,
    digest: Option<Digest>,
    manifest: Option<RawManifest>,
) -> Result<Done, EngineError> {
    let image = job.tag.image.clone();
    job.info(&format!("{image} exists, skipped"));
    if let Some(client) = job.client {
        let platform = job.spec.platforms().first();
        if let Some(recorded) =
            recorded::inputs(client, &image, platform, digest.as_ref(), manifest).await
            && let Some(warning) = explain::stale_files(&recorded, job.tag)
        {
            job.progress.event(Event::Warning(&warning));
        }
    }
    Ok(Done {
        action: Action::Skipped,
        pushed: false,
        image,
        digest,
    })
}

/// Existence unknown: assumed to exist, as flytekit assumes.
fn assume(job: &Job<'_>, reason: &str) -> Done {
    let image = job.tag.image.clone();
    job.info(&format!("{image}: {reason}, as flytekit does"));
    Done {
        action: Action::Assumed,
        pushed: false,
        image,
        digest: None,
    }
}

/// `builder = "noop"`: the base image is the image (of every platform, for several).
async fn noop(job: &Job<'_>, platforms: &Platforms) -> Result<Done, EngineError> {
    let image = noop_image(job.spec, job.tag, job.base)?;
    if platforms.several() {
        platforms::check_noop_base(
            job.spec,
            &image,
            platforms,
            job.options.timeouts,
            job.progress,
        )
        .await?;
    }
    job.info(&format!("Using image: {image}"));
    Ok(Done {
        action: Action::Noop,
        pushed: false,
        image,
        digest: None,
    })
}

/// The image a `noop` spec names: its base, as flytekit's noop builder returns it.
fn noop_image(
    spec: &NormalizedSpec,
    tag: &ImageTag,
    base: Option<&BuildOutcome>,
) -> Result<ImageRef, EngineError> {
    let built_base = || {
        base.map(|b| b.image.clone())
            .or_else(|| tag.base.as_ref().map(|b| b.image.clone()))
    };
    let found = match spec.base() {
        Some(NormalizedBase::Ref(image)) => Some(image.clone()),
        Some(NormalizedBase::Spec(_)) => built_base(),
        Some(NormalizedBase::Empty) | None => None,
    };
    match found {
        Some(image) => Ok(image),
        None => Err(EngineError::Invalid {
            name: spec.name().into(),
            at: Some(spec.at("base_image")),
            message: "base_image must be a string to use the noop image builder".into(),
        }),
    }
}

/// The plan to build, its dependency plan and the record of what the tag was computed from:
/// each computed once, from what the facts already hold.
struct Planned {
    plan: BuildPlan,
    /// [`BuildPlan::dependencies`] of `plan`.
    deps: BuildPlan,
    inputs: Inputs,
    /// What the decision saw of each platform's base and apt step
    /// ([`Gathered::preflight`]).
    preflight: crate::builders::daemonless::Preflight,
}

impl Planned {
    fn of(job: &Job<'_>, gathered: Gathered) -> Result<Planned, EngineError> {
        let (spec, tag) = (job.spec, job.tag);
        let mut plan = match gathered.plan {
            Some(plan) => plan?,
            None => BuildPlan::new(spec, tag, &job.options.render)?,
        };
        let deps = match gathered.dependency_plan {
            Some(deps) => deps,
            None => plan.dependencies(),
        };
        let inputs =
            Inputs::of(spec, tag, Some(deps.image.clone())).map_err(|source| EngineError::Io {
                context: format!("reading the files of {}", tag.image),
                source,
            })?;
        plan.labels.push((INPUTS_LABEL.into(), inputs.to_label()));
        Ok(Planned {
            plan,
            deps,
            inputs,
            preflight: gathered.preflight,
        })
    }

    /// The image of this plan made by `action` (pushed as `digest`, if it was): its record
    /// kept for `explain` and, by digest, for the skip path.
    fn made(&self, job: &Job<'_>, action: Action, digest: Option<Digest>) -> Done {
        explain::record_last_built(&self.inputs);
        if let Some(digest) = &digest {
            recorded::remember(digest, &self.inputs);
        }
        Done::made(job, action, digest)
    }
}

/// The digest of `image`, just pushed, asked of the registry (for a publish that did not
/// say it): a green run means the image is there.
async fn pushed_digest(client: &RegistryClient, image: &ImageRef) -> Result<Digest, EngineError> {
    match client.digest(image).await {
        Ok(Some(digest)) => Ok(digest),
        Ok(None) => Err(BackendError::Push {
            image: image.to_string(),
            message: "pushed, but the registry does not have it".into(),
        }
        .into()),
        Err(e) => Err(BackendError::from(e).into()),
    }
}

/// flytekit's check that the tag still matches the files, to run on another thread while
/// the blobs upload.
fn tag_check(job: &Job<'_>) -> Check {
    let (spec, tag_options, tag) = (job.spec.clone(), job.options.tag.clone(), job.tag.clone());
    Check::new(move || crate::tag::verify_unchanged(&spec, &tag_options, &tag))
}

/// A failed publish as the build's error: a tag that changed is the tag's error, a
/// registry's failure the read's or the push's, a layout's the output's (`target`).
fn published(e: PublishError, target: Option<&OutputTarget>) -> EngineError {
    match e {
        PublishError::Check(e) => e.into(),
        PublishError::Layout(source) => BackendError::Output {
            target: target.map(ToString::to_string).unwrap_or_default(),
            source,
        }
        .into(),
        other => BackendError::from(other).into(),
    }
}

/// A suffix no other run uses at the same time: this process and a random part.
fn working_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{nanos:08x}", std::process::id())
}
