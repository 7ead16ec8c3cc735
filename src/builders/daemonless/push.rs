//! A dependency image made by uv without a daemon and pushed ([`crate::publish::registry`]):
//! each platform's image pushed as it is made (by digest when there are several), then their
//! index under the dependency tag.

use super::{DaemonlessError, DependencyBuild};
use crate::oci::{Digest, Image, Index};
use crate::plan::BuildPlan;
use crate::progress::Progress;
use crate::publish::registry::{Reference, Registry};
use crate::publish::{Check, PublishError};
use crate::registry::client::RegistryClient;

/// Why the daemonless dependency image is not in the registry.
#[derive(Debug, thiserror::Error)]
pub enum UvError {
    #[error(transparent)]
    Build(#[from] DaemonlessError),
    #[error("pushing the dependency image: {0}")]
    Publish(#[from] PublishError),
}

/// Builds the dependency image of `deps` (a [`BuildPlan::dependencies`] plan) for each of
/// its platforms with uv on what the decision saw (`preflight`) and pushes it to
/// `client`'s registry as `deps.image` (several: one index). The platforms are built at
/// once ([`DependencyBuild::platforms`]), each pushed as soon as it is made. Returns the
/// digest of what the tag names and each platform's image as pushed (its layers in the
/// registry now, [`Image::pushed_to`]), in the order of the plan's platforms.
pub async fn build_and_push(
    client: &RegistryClient,
    deps: &BuildPlan,
    preflight: &super::Preflight,
    progress: &Progress,
) -> Result<(Digest, Vec<Image>), UvError> {
    let platforms = &deps.platform;
    let build = DependencyBuild::new(deps, Some(client), client.timeouts())?
        .with_preflight(preflight.clone());
    let several = platforms.several();
    let each = build
        .platforms(progress)
        .into_iter()
        .zip(platforms.iter())
        .map(|(making, platform)| async move {
            let made = making.await?;
            push_one(client, deps, platform.clone(), made, several, progress).await
        });
    let pushed = futures_util::future::try_join_all(each).await?;
    let mut index = Index::default();
    let mut images = Vec::new();
    for (platform, image, digest) in pushed {
        if !several {
            return Ok((digest, vec![image]));
        }
        index.push_descriptor(&platform, image.descriptor());
        images.push(image);
    }
    let publisher = Registry::new(client, &deps.image);
    Ok((publisher.push_index(&index, Check::none()).await?, images))
}

/// Pushes one platform's image (by digest when there are `several`): the platform, the
/// image as pushed and the digest pushed.
async fn push_one(
    client: &RegistryClient,
    deps: &BuildPlan,
    platform: crate::oci::Platform,
    made: super::Made,
    several: bool,
    progress: &Progress,
) -> Result<(crate::oci::Platform, Image, Digest), UvError> {
    let (name, reference) = if several {
        let name = format!(
            "push {} for {platform} (on {})",
            deps.image, made.base_image
        );
        (name, Reference::Digest)
    } else {
        let name = format!("push {} (on {})", deps.image, made.base_image);
        (name, Reference::Tag)
    };
    let publisher = Registry::new(client, &deps.image)
        .copying_from(&made.base_client)
        .metered(progress, "push-deps");
    let pushing = publisher.push(&made.image, reference, Check::none());
    let pushed = progress.in_step("push-deps", &name, pushing).await?;
    Ok((platform, made.image.pushed_to(&deps.image), pushed.digest))
}
