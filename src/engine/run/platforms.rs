//! Several platforms without buildx. dockerd 20.10's embedded BuildKit builds one platform
//! per solve (the frontend's `platform` option) and its image store keeps one platform per
//! tag, so each platform's image is built, tagged and pushed on its own, and the image index
//! that joins them is assembled here and pushed last, under the image's tag, after every
//! platform's manifest (what buildx does with one builder node per platform). A tag never
//! names an index with a platform missing.
//!
//! Each platform's manifest is pushed under a tag of its own, `<tag>-<os>-<arch>[-<variant>]`
//! (`…:deps-0123…-linux-arm64`): dockerd pushes tags only (its push API has no push by
//! digest), and the distribution API deletes manifests, not tags (deleting one would delete
//! what the index names). The tag is fixed, not one per run, so rebuilds overwrite one tag per
//! platform instead of leaving a new one each time; the index names each manifest by the
//! digest dockerd reported for its push, so a later push to that tag does not change it.
//!
//! Before the daemon builds anything, [`preflight`] checks what would fail halfway: that
//! this machine runs every platform's programs ([`crate::builders::emulation`]) and that the
//! base image has every platform.

use super::{connect, push, working_suffix};
use crate::Error;
use crate::builders::BackendError;
use crate::builders::docker::DockerDaemon;
use crate::builders::registry::{self as registry_backend, DependencyImage};
use crate::engine::{Platform, Platforms};
use crate::plan::{BuildPlan, DEPENDENCY_LABEL};
use crate::progress::{Event, Progress};
use crate::registry::auth::Credentials;
use crate::registry::client::RegistryClient;
use crate::registry::index::{IndexEntry, platforms_of};
use crate::spec::NormalizedSpec;
use crate::timeouts::Timeouts;

/// The tag one platform's image is pushed under before the index joins them.
pub fn platform_tag(image: &str, platform: &str) -> String {
    let suffix = Platform::parse(platform).map_or_else(
        |_| platform.replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
        |p| p.tag_suffix(),
    );
    format!("{image}-{suffix}")
}

/// Whether the daemon's build of `platform` runs programs this machine does not run
/// natively (then the base is checked too).
fn foreign(platform: &str) -> bool {
    !crate::builders::emulation::runs_natively(platform, std::env::consts::ARCH)
}

/// Checks made before an image of `platform` (one or several, comma-separated) is built:
/// each is `os/arch[/variant]`, this machine can run its programs (`emulation`: dockerd
/// builds them, on this machine; uv runs nothing of the image), and — for several or a
/// foreign platform — `base` (the image the Dockerfile starts from, `None` for envd) has
/// every one of them.
pub async fn preflight(
    spec: &NormalizedSpec,
    base: Option<&str>,
    platform: &str,
    emulation: bool,
    timeouts: Timeouts,
    progress: &Progress,
) -> Result<(), Error> {
    let platforms = Platforms::parse(platform);
    let list: Vec<&str> = platforms.iter().collect();
    for p in &list {
        Platform::parse(p).map_err(|message| Error::Builder {
            name: spec.name().into(),
            at: Some(spec.at("platform")),
            message: format!("platform {message}"),
        })?;
    }
    if emulation {
        crate::builders::emulation::check_local_daemon(&list).map_err(BackendError::from)?;
    }
    match base {
        Some(base) if platforms.several() || list.iter().any(|p| foreign(p)) => {
            check_base(spec, base, &list, timeouts, progress).await
        }
        _ => Ok(()),
    }
}

/// The registry session for `image`'s registry, with the credentials the spec's
/// `registry_config` (or the docker config) holds for it.
fn client_for(
    spec: &NormalizedSpec,
    image: &str,
    timeouts: Timeouts,
) -> Result<RegistryClient, Error> {
    let host = crate::registry::registry_host(image);
    let config = spec.registry_config.as_deref().map(|p| spec.resolve(p));
    Ok(crate::registry::session(host, config.as_deref(), timeouts).map_err(BackendError::from)?)
}

/// The base image must have every platform: asked of its registry before any build, so that
/// a base lacking arm64 fails at once, naming it, instead of after the amd64 build. When the
/// registry cannot be asked, BuildKit will say.
async fn check_base(
    spec: &NormalizedSpec,
    base: &str,
    wanted: &[&str],
    timeouts: Timeouts,
    progress: &Progress,
) -> Result<(), Error> {
    let found = match platforms_of(&client_for(spec, base, timeouts)?, base).await {
        Ok(found) => found,
        Err(e) => {
            progress.event(Event::Info(&format!(
                "cannot check the platforms of the base image {base} ({e}); building"
            )));
            return Ok(());
        }
    };
    let missing = found.missing(wanted);
    if missing.is_empty() {
        progress.event(Event::Info(&format!("base image {base}: {found}")));
        return Ok(());
    }
    Err(Error::Builder {
        name: spec.name().into(),
        at: Some(spec.at("base_image")),
        message: format!(
            "the base image {base} has no image for {}: it is {found}; every platform built \
             needs one in the base (an index of {}), or build fewer platforms (`platform`, or \
             --platform)",
            missing.join(", "),
            wanted.join(", ")
        ),
    })
}

/// noop with several platforms: the base must be an index that has every one of them.
/// When the registry cannot be asked, the image is used as is (flytekit checks nothing).
pub async fn check_noop_base(
    spec: &NormalizedSpec,
    image: &str,
    platform: &str,
    timeouts: Timeouts,
    progress: &Progress,
) -> Result<(), Error> {
    let found = match platforms_of(&client_for(spec, image, timeouts)?, image).await {
        Ok(found) => found,
        Err(e) => {
            progress.event(Event::Info(&format!(
                "cannot check the platforms of {image} ({e}); using it as is"
            )));
            return Ok(());
        }
    };
    let wanted = Platforms::parse(platform);
    let wanted: Vec<&str> = wanted.iter().collect();
    let missing = found.missing(&wanted);
    if !missing.is_empty() {
        return Err(Error::Builder {
            name: image.into(),
            at: Some(spec.at("platform")),
            message: format!(
                "noop builder: platform asks for {platform}, but {image} is {found}: no image for {}",
                missing.join(", ")
            ),
        });
    }
    progress.event(Event::Info(&format!("{image}: an index with {platform}")));
    Ok(())
}

/// Pushes `image` (one platform's, from dockerd) and returns what the index names of it.
async fn push_platform(
    d: &DockerDaemon,
    client: &RegistryClient,
    image: &str,
    platform: &str,
    credentials: Option<&Credentials>,
    progress: &Progress,
) -> Result<IndexEntry, Error> {
    let pushed = push(d, image, credentials, progress).await?;
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
                image: image.into(),
                message: "pushed one platform, but the registry returns an index".into(),
            }
            .into());
        }
    };
    Ok(IndexEntry {
        platform: platform.to_string(),
        media_type,
        digest: raw.digest.to_string(),
        size: raw.bytes.len(),
    })
}

/// Pushes the index of `entries` under `image`: the last push, after every platform's.
async fn push_index(
    client: &RegistryClient,
    image: &str,
    entries: &[IndexEntry],
    progress: &Progress,
) -> Result<(), Error> {
    use crate::oci::{Digest, Index, image::Descriptor};
    let mut index = Index::default();
    for e in entries {
        let digest = Digest::parse(&e.digest).map_err(|err| BackendError::Push {
            image: image.into(),
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
    let pushed = super::in_step(progress, "push-index", &step, pushing).await;
    pushed.map_err(|e| super::published(e, None))?;
    Ok(())
}

/// The full image of `plan` for each of its platforms: all built first (one solve each),
/// then `verify` (the tag still matches the files), then each pushed, then the index.
pub async fn build_and_push(
    d: &DockerDaemon,
    client: &RegistryClient,
    plan: &BuildPlan,
    credentials: Option<&Credentials>,
    progress: &Progress,
    verify: impl FnOnce() -> Result<(), Error>,
) -> Result<(), Error> {
    let platforms = Platforms::parse(&plan.platform);
    let mut built = Vec::new();
    for platform in platforms.iter() {
        let _scope = progress.platform_scope(platform);
        let mut one = plan.clone();
        one.platform = platform.to_string();
        one.image = platform_tag(&plan.image, platform);
        d.build(&one, progress).await?;
        built.push(one);
    }
    verify()?;
    let mut entries = Vec::new();
    for one in &built {
        let _scope = progress.platform_scope(&one.platform);
        entries.push(
            push_platform(d, client, &one.image, &one.platform, credentials, progress).await?,
        );
    }
    push_index(client, &plan.image, &entries, progress).await
}

/// The dependency image of every platform of `plan`: `found` (looked up while the facts
/// were gathered), else built per platform with dockerd, each labelled and pushed, and the
/// index pushed last under the dependency tag.
pub async fn dependency_images(
    client: &RegistryClient,
    plan: &BuildPlan,
    credentials: Option<&Credentials>,
    progress: &Progress,
    daemon: &mut Option<DockerDaemon>,
    found: Option<Vec<DependencyImage>>,
) -> Result<Vec<DependencyImage>, Error> {
    let deps_plan = plan.dependencies();
    let platforms = Platforms::parse(&plan.platform);
    let platforms: Vec<&str> = platforms.iter().collect();
    if let Some(found) = found {
        progress.event(Event::Info(&format!(
            "dependencies unchanged ({}, {} platforms): appending the source",
            deps_plan.image,
            found.len()
        )));
        return Ok(found);
    }
    // As for one platform (see `dependency_image`): one run builds it, the others wait.
    let _lock = crate::lock::ImageLock::acquire(&deps_plan.image, |message| {
        progress.event(Event::Info(message))
    })
    .await
    .map_err(BackendError::from)?;
    if let Some(found) =
        registry_backend::find_dependency_images(client, &deps_plan.image, &platforms).await?
    {
        progress.event(Event::Info(&format!(
            "dependency image {} pushed meanwhile by another run: appending the source",
            deps_plan.image
        )));
        return Ok(found);
    }
    progress.event(Event::Info(&format!(
        "dependency image {} not found, building it for {}",
        deps_plan.image,
        platforms.join(", ")
    )));
    let d = connect(daemon, client.timeouts()).await?;
    let mut entries = Vec::new();
    for platform in &platforms {
        let _scope = progress.platform_scope(platform);
        let tagged = platform_tag(&deps_plan.image, platform);
        let mut one = deps_plan.clone();
        one.platform = platform.to_string();
        one.image = format!("{tagged}-unlabelled-{}", working_suffix());
        let labelled = async {
            d.build(&one, progress).await?;
            let facts = d.dependency_facts(&one.image, platform).await?;
            d.relabel(
                &one.image,
                &tagged,
                &[(DEPENDENCY_LABEL, facts)],
                platform,
                progress,
            )
            .await
        }
        .await;
        d.untag(&one.image).await;
        labelled?;
        entries.push(push_platform(d, client, &tagged, platform, credentials, progress).await?);
    }
    push_index(client, &deps_plan.image, &entries, progress).await?;
    let found =
        registry_backend::find_dependency_images(client, &deps_plan.image, &platforms).await?;
    Ok(found.ok_or_else(|| BackendError::Push {
        image: deps_plan.image.clone(),
        message: "pushed, but the registry does not return it for every platform".into(),
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_platform_has_a_tag_of_its_own() {
        assert_eq!(
            platform_tag("localhost:5000/app:deps-0123", "linux/arm64"),
            "localhost:5000/app:deps-0123-linux-arm64"
        );
        assert_eq!(platform_tag("r/a:T", "linux/arm/v7"), "r/a:T-linux-arm-v7");
    }
}
