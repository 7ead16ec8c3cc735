//! What dockerd built, published; and the checks made before it builds. dockerd 20.10's
//! embedded BuildKit builds one platform per solve (the frontend's `platform` option) and
//! its image store keeps one platform per tag, so each platform's image is built
//! ([`crate::builders::builder::Docker`]), tagged and pushed on its own, and the image index
//! that joins them is assembled here and pushed last, under the image's tag, after every
//! platform's manifest (what buildx does with one builder node per platform). A tag never
//! names an index with a platform missing.
//!
//! Each platform's manifest is pushed under a tag of its own, `<tag>-<os>-<arch>[-<variant>]`
//! ([`platform_tag`]: `…:deps-0123…-linux-arm64`): dockerd pushes tags only (its push API
//! has no push by digest), and the distribution API deletes manifests, not tags (deleting
//! one would delete what the index names). The tag is fixed, not one per run, so rebuilds
//! overwrite one tag per platform instead of leaving a new one each time; the index names
//! each manifest by the digest dockerd reported for its push, so a later push to that tag
//! does not change it.
//!
//! Before the daemon builds anything, [`preflight`] checks what would fail halfway: that
//! this machine runs every platform's programs ([`crate::builders::emulation`]) and that the
//! base image has every platform.

use super::{Job, working_suffix};
use crate::builders::BackendError;
use crate::builders::builder::{Builder as _, Built, Docker, LocalImage, platform_tag};
use crate::builders::docker::DockerDaemon;
use crate::engine::{EngineError, Platform, Platforms};
use crate::explain::Inputs;
use crate::oci::{Digest, ImageRef};
use crate::plan::{BuildPlan, DEPENDENCY_LABEL};
use crate::progress::{Event, Progress};
use crate::registry::auth::Credentials;
use crate::registry::client::RegistryClient;
use crate::registry::index::{ImagePlatforms, IndexEntry, platforms_of};
use crate::spec::NormalizedSpec;
use crate::timeouts::Timeouts;

/// Whether the daemon's build of `platform` runs programs this machine does not run
/// natively (then the base is checked too).
fn foreign(platform: &Platform) -> bool {
    !crate::builders::emulation::runs_natively(platform, std::env::consts::ARCH)
}

/// [`preflight`] for `plan`: its platforms, the base it pulls (after the mirror rewrite).
pub(super) async fn preflight_plan(
    job: &super::Job<'_>,
    plan: &crate::plan::BuildPlan,
    emulation: bool,
) -> Result<(), EngineError> {
    let base = Some(plan.pulled_base());
    let (timeouts, progress) = (job.options.timeouts, job.progress);
    preflight(
        job.spec,
        base.as_ref(),
        &plan.platform,
        emulation,
        timeouts,
        progress,
    )
    .await
}

/// Checks made before an image of `platforms` is built: this machine can run their
/// programs (`emulation`: dockerd builds them, on this machine; uv runs nothing of the
/// image), and — for several or a foreign platform — `base` (the image the Dockerfile
/// starts from, `None` for envd or a base that is no image name) has every one of them.
pub async fn preflight(
    spec: &NormalizedSpec,
    base: Option<&ImageRef>,
    platforms: &Platforms,
    emulation: bool,
    timeouts: Timeouts,
    progress: &Progress,
) -> Result<(), EngineError> {
    if emulation {
        crate::builders::emulation::check_local_daemon(platforms).map_err(BackendError::from)?;
    }
    match base {
        Some(base) if platforms.several() || platforms.iter().any(foreign) => {
            check_base(spec, base, platforms, timeouts, progress).await
        }
        _ => Ok(()),
    }
}

/// The registry session for `image`'s registry, with the credentials the spec's
/// `registry_config` (or the docker config) holds for it.
fn client_for(
    spec: &NormalizedSpec,
    image: &ImageRef,
    timeouts: Timeouts,
) -> Result<RegistryClient, EngineError> {
    let host = image.host();
    let config = spec.registry_config.as_deref().map(|p| spec.resolve(p));
    Ok(crate::registry::session(host, config.as_deref(), timeouts).map_err(BackendError::from)?)
}

/// The platforms of `image` in its registry; `None` when the registry cannot be asked, which
/// is said (`unknown`: the image as the line names it, and what happens instead).
async fn platforms_or_say(
    spec: &NormalizedSpec,
    image: &ImageRef,
    (what, instead): (&str, &str),
    timeouts: Timeouts,
    progress: &Progress,
) -> Result<Option<ImagePlatforms>, EngineError> {
    match platforms_of(&client_for(spec, image, timeouts)?, image).await {
        Ok(found) => Ok(Some(found)),
        Err(e) => {
            progress.event(Event::Info(&format!(
                "cannot check the platforms of {what} ({e}); {instead}"
            )));
            Ok(None)
        }
    }
}

/// The base image must have every platform: asked of its registry before any build, so that
/// a base lacking arm64 fails at once, naming it, instead of after the amd64 build. When the
/// registry cannot be asked, BuildKit will say.
async fn check_base(
    spec: &NormalizedSpec,
    base: &ImageRef,
    wanted: &Platforms,
    timeouts: Timeouts,
    progress: &Progress,
) -> Result<(), EngineError> {
    let what = format!("the base image {base}");
    let Some(found) = platforms_or_say(spec, base, (&what, "building"), timeouts, progress).await?
    else {
        return Ok(());
    };
    let missing = found.missing(wanted);
    if missing.is_empty() {
        progress.event(Event::Info(&format!("base image {base}: {found}")));
        return Ok(());
    }
    Err(EngineError::Invalid {
        name: spec.name().into(),
        at: Some(spec.at("base_image")),
        message: format!(
            "the base image {base} has no image for {}: it is {found}; every platform built \
             needs one in the base (an index of {}), or build fewer platforms (`platform`, or \
             --platform)",
            list(missing),
            list(wanted.iter())
        ),
    })
}

/// `linux/amd64, linux/arm64`: platforms as a message lists them.
pub(super) fn list<'a>(platforms: impl IntoIterator<Item = &'a Platform>) -> String {
    let names: Vec<&str> = platforms.into_iter().map(Platform::as_str).collect();
    names.join(", ")
}

/// noop with several platforms: the base must be an index that has every one of them.
/// When the registry cannot be asked, the image is used as is (flytekit checks nothing).
pub async fn check_noop_base(
    spec: &NormalizedSpec,
    image: &ImageRef,
    platforms: &Platforms,
    timeouts: Timeouts,
    progress: &Progress,
) -> Result<(), EngineError> {
    let name = image.to_string();
    let unknown = (name.as_str(), "using it as is");
    let Some(found) = platforms_or_say(spec, image, unknown, timeouts, progress).await? else {
        return Ok(());
    };
    let missing = found.missing(platforms);
    if !missing.is_empty() {
        return Err(EngineError::Invalid {
            name: image.to_string(),
            at: Some(spec.at("platform")),
            message: format!(
                "noop builder: platform asks for {platforms}, but {image} is {found}: no image for {}",
                list(missing)
            ),
        });
    }
    progress.event(Event::Info(&format!("{image}: an index with {platforms}")));
    Ok(())
}

/// Pushes `image` from dockerd with `credentials`, as one step: the digest dockerd reports
/// for it, when it says.
pub(super) async fn push(
    d: &DockerDaemon,
    image: &ImageRef,
    credentials: Option<&Credentials>,
    progress: &Progress,
) -> Result<Option<String>, BackendError> {
    let step = format!("push {image}");
    let pushing = d.push(image, credentials, "push", progress);
    progress.in_step("push", &step, pushing).await
}

/// Publishes what dockerd built ([`Built::Local`]) under `image`: one platform pushed as it
/// is; several each pushed under its platform tag, then the index joining them (carrying
/// `record`, the images' record of inputs), last. The digest is the publish's (dockerd's
/// report, or the index's own bytes).
pub(super) async fn publish(
    job: &Job<'_>,
    d: &DockerDaemon,
    built: &Built,
    image: &ImageRef,
    record: Option<&Inputs>,
) -> Result<Digest, EngineError> {
    let client = job.registry()?;
    let local = match built {
        Built::Local(local) => local,
        Built::Pushed { digest, .. } => return Ok(digest.clone()),
    };
    if let [one] = local.as_slice()
        && one.image == *image
    {
        let pushed = push(d, image, job.credentials, job.progress).await?;
        return match pushed.as_deref().map(Digest::parse) {
            Some(Ok(digest)) => Ok(digest),
            _ => super::pushed_digest(client, image).await,
        };
    }
    let mut entries = Vec::new();
    for one in local {
        let _scope = job.progress.platform_scope(one.platform.as_str());
        entries.push(push_platform(job, d, one).await?);
    }
    push_index(client, image, &entries, record, job.progress).await
}

/// Pushes one platform's image (from dockerd) and returns what the index names of it.
async fn push_platform(
    job: &Job<'_>,
    d: &DockerDaemon,
    one: &LocalImage,
) -> Result<IndexEntry, EngineError> {
    let (client, image) = (job.registry()?, &one.image);
    let pushed = push(d, image, job.credentials, job.progress).await?;
    let raw = match &pushed {
        Some(digest) => client.manifest_by_digest(image, digest).await,
        // dockerd did not say: the tag, just pushed (under the lock for dependency images).
        None => client.manifest(image).await,
    }
    .map_err(BackendError::from)?;
    let media_type = match &raw.manifest {
        oci_client::manifest::OciManifest::Image(m) => m
            .media_type
            .clone()
            .unwrap_or_else(|| oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string()),
        oci_client::manifest::OciManifest::ImageIndex(_) => {
            return Err(BackendError::Push {
                image: image.to_string(),
                message: "pushed one platform, but the registry returns an index".into(),
            }
            .into());
        }
    };
    Ok(IndexEntry {
        platform: one.platform.clone(),
        media_type,
        digest: raw.digest.to_string(),
        size: raw.bytes.len(),
    })
}

/// Pushes the index of `entries` under `image`: the last push, after every platform's. Its
/// digest is its bytes'.
async fn push_index(
    client: &RegistryClient,
    image: &ImageRef,
    entries: &[IndexEntry],
    record: Option<&Inputs>,
    progress: &Progress,
) -> Result<Digest, EngineError> {
    use crate::oci::{Index, image::Descriptor};
    let mut index = Index::default();
    if let Some(record) = record {
        super::recorded::annotate(&mut index, record);
    }
    for e in entries {
        let digest = Digest::parse(&e.digest).map_err(|err| BackendError::Push {
            image: image.to_string(),
            message: err.to_string(),
        })?;
        index.push_descriptor(
            &e.platform,
            Descriptor::new(&e.media_type, digest, e.size as u64),
        );
    }
    let step = format!("push index {image} ({} platforms)", entries.len());
    let publisher = crate::publish::registry::Registry::new(client, image);
    let pushing = publisher.push_index(&index, crate::publish::Check::none());
    let pushed = progress.in_step("push-index", &step, pushing).await;
    pushed.map_err(|e| super::published(e, None))
}

/// The dependency image of every platform built by dockerd: each built under a working tag
/// of this run's own (another imagespec, also of another user, may build the same one on
/// this daemon), labelled with what only the built image knows (the flytekit user's uid,
/// /root's owner and mode) under its real tag (its platform tag, for several), and pushed;
/// several are joined by an index, pushed last under the dependency tag.
pub(super) async fn build_dependency_images(
    job: &Job<'_>,
    deps: &BuildPlan,
    platforms: &Platforms,
) -> Result<(), EngineError> {
    let d = job.daemon.get().await?;
    let mut built = Vec::new();
    for platform in platforms.iter() {
        let _scope = platforms
            .several()
            .then(|| job.progress.platform_scope(platform.as_str()));
        let tagged = if platforms.several() {
            platform_tag(&deps.image, platform).map_err(BackendError::from)?
        } else {
            deps.image.clone()
        };
        let mut one = deps.clone();
        one.platform = platform.clone().into();
        let working = format!("-unlabelled-{}", working_suffix());
        one.image = tagged
            .with_tag_suffix(&working)
            .map_err(BackendError::from)?;
        let labelled = async {
            let docker = Docker { daemon: d };
            docker.build(&one, job.progress).await?;
            let facts = d.dependency_facts(&one.image, platform).await?;
            let labels = [(DEPENDENCY_LABEL, facts)];
            d.relabel(&one.image, &tagged, &labels, platform, job.progress)
                .await
        }
        .await;
        // The working tag goes also when building failed (it is this run's alone).
        d.untag(&one.image).await;
        labelled?;
        let image = LocalImage {
            platform: platform.clone(),
            image: tagged,
        };
        if platforms.several() {
            built.push(push_platform(job, d, &image).await?);
        } else {
            push(d, &image.image, job.credentials, job.progress).await?;
        }
    }
    if platforms.several() {
        push_index(job.registry()?, &deps.image, &built, None, job.progress).await?;
    }
    Ok(())
}
