//! `build` (and the dependency image of `build_dependencies_then_append`) on a remote
//! buildkitd ([`crate::builders::remote`]): the builder pushes the image itself, so the
//! image must go to a registry; the digest is the one BuildKit's exporter pushed.
//!
//! A full build is pushed by digest (no tag moves); once flytekit's check holds (the files
//! did not change meanwhile), the tag is put on that manifest here: its bytes read back and
//! pushed under the tag, a few kilobytes.

use super::{Action, Done, Job, Planned, platforms};
use crate::builders::BackendError;
use crate::builders::remote::{RemoteBuildkit, RemoteOptions};
use crate::engine::{EngineError, Target};
use crate::explain;
use crate::oci::{Digest, ImageRef, Platforms};
use crate::plan::BuildPlan;

/// The remote builder of `remote`, named in the progress.
fn builder(job: &Job<'_>, remote: &RemoteOptions) -> Result<RemoteBuildkit, EngineError> {
    remote
        .builder(job.options.timeouts)
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

/// The whole Dockerfile of `planned` built on the remote builder and pushed by it.
pub(super) async fn build_image(
    job: &Job<'_>,
    planned: Planned,
    platforms: &Platforms,
    target: Target,
    remote: &RemoteOptions,
) -> Result<Done, EngineError> {
    if target == Target::Daemon {
        return Err(EngineError::Invalid {
            name: job.spec.name().into(),
            at: Some(job.spec.at("registry")),
            message: format!(
                "the remote builder at {} pushes the image it builds: the spec needs a \
                 `registry` and the build must push (no --no-push)",
                remote.names()
            ),
        });
    }
    let plan = &planned.plan;
    // No emulation check: the builder runs the steps, not this machine.
    platforms::preflight_plan(job, plan, false).await?;
    let builder = builder(job, remote)?;
    job.info(&format!(
        "building {} on the BuildKit builder at {}",
        plan.image, builder.host
    ));
    let digest = builder
        .build_untagged(plan, platforms, job.progress)
        .await?;
    // The tag moves only once the files are known not to have changed meanwhile.
    crate::tag::verify_unchanged(job.spec, &job.options.tag, job.tag)?;
    tag(job, &plan.image, &digest).await?;
    job.info(&format!(
        "pushed {} ({digest}) from the builder",
        plan.image
    ));
    explain::record_last_built(&planned.inputs);
    super::recorded::remember(&digest, &planned.inputs);
    Ok(Done {
        action: Action::Built,
        pushed: true,
        image: job.tag.image.clone(),
        digest: Some(digest),
    })
}

/// The dependency image of every platform made on the remote builder, labelled with its
/// facts and pushed by it under `deps.image` (an index for several platforms).
pub(super) async fn build_dependency_images(
    job: &Job<'_>,
    deps: &BuildPlan,
    platforms: &Platforms,
    remote: &RemoteOptions,
) -> Result<(), EngineError> {
    let builder = builder(job, remote)?;
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
