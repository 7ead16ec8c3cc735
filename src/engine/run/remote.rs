//! `build` (and the dependency image of `build_dependencies_then_append`) on a remote
//! buildkitd ([`crate::builders::remote`]): the builder pushes the image itself, so the
//! image must go to a registry; the digest is the one BuildKit's exporter pushed.
//!
//! A full build is pushed by digest (no tag moves); once flytekit's check holds (the files
//! did not change meanwhile), the tag is put on that manifest here: its bytes read back and
//! pushed under the tag, a few kilobytes.

use super::{Job, platforms};
use crate::builders::BackendError;
use crate::builders::remote::RemoteBuildkit;
use crate::engine::EngineError;
use crate::oci::{Digest, ImageRef, Platforms};
use crate::plan::BuildPlan;

/// The remote builder the options name, named in the progress.
fn builder(job: &Job<'_>) -> Result<RemoteBuildkit, EngineError> {
    let remote = job.options.remote.as_ref();
    remote
        .and_then(|r| r.builder(job.options.timeouts))
        .ok_or_else(|| EngineError::Invalid {
            name: job.spec.name().into(),
            at: None,
            message: "no remote builder given".into(),
        })
}

/// Moves `image`'s tag to `digest` (pushed by the builder into its repository): the
/// manifest read back (small) and put under the tag, the same bytes.
async fn tag(job: &Job<'_>, image: &ImageRef, digest: &Digest) -> Result<(), EngineError> {
    use oci_client::manifest::{OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciManifest};
    let client = job.registry()?;
    let raw = client
        .manifest_by_digest(image, digest.as_ref())
        .await
        .map_err(BackendError::from)?;
    let media_type = match &raw.manifest {
        OciManifest::Image(m) => m.media_type.clone(),
        OciManifest::ImageIndex(i) => i.media_type.clone(),
    };
    let media_type = media_type.unwrap_or_else(|| match &raw.manifest {
        OciManifest::Image(_) => OCI_IMAGE_MEDIA_TYPE.to_string(),
        OciManifest::ImageIndex(_) => OCI_IMAGE_INDEX_MEDIA_TYPE.to_string(),
    });
    let step = format!("tag {image}");
    let pushing = client.push_manifest(image, raw.bytes, &media_type);
    let pushed = job.progress.in_step("push", &step, pushing).await;
    pushed.map_err(BackendError::from)?;
    Ok(())
}

/// The whole Dockerfile `plan` built on the remote builder and pushed by it (`decide`
/// refused a remote build of an image that would stay here): the digest, tagged once the
/// files are known not to have changed meanwhile.
pub(super) async fn build_image(job: &Job<'_>, plan: &BuildPlan) -> Result<Digest, EngineError> {
    let builder = builder(job)?;
    // No emulation check: the builder runs the steps, not this machine.
    platforms::preflight_plan(job, plan, false).await?;
    job.info(&format!(
        "building {} on the BuildKit builder at {}",
        plan.image, builder.host
    ));
    let digest = builder
        .build_untagged(plan, &plan.platform, job.progress)
        .await?;
    crate::tag::verify_unchanged(job.spec, &job.options.tag, job.tag)?;
    tag(job, &plan.image, &digest).await?;
    job.info(&format!(
        "pushed {} ({digest}) from the builder",
        plan.image
    ));
    Ok(digest)
}

/// The dependency image of every platform made on the remote builder, labelled with its
/// facts and pushed by it under `deps.image` (an index for several platforms).
pub(super) async fn build_dependency_images(
    job: &Job<'_>,
    deps: &BuildPlan,
    platforms: &Platforms,
) -> Result<(), EngineError> {
    let builder = builder(job)?;
    job.info(&format!(
        "building the dependency image on the BuildKit builder at {}",
        builder.host
    ));
    let digest = builder
        .build_dependency_image(deps, platforms, job.progress)
        .await?;
    job.info(&format!(
        "pushed {} ({digest}) from the builder",
        deps.image
    ));
    Ok(())
}
