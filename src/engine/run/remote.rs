//! `build` (and the dependency image of `build_dependencies_then_append`) on a remote
//! buildkitd ([`crate::builders::remote`]): the builder pushes the image itself, so the
//! image must go to a registry; the digest is the one BuildKit's exporter pushed.
//!
//! A full build pushes under the tag from inside the solve: the tag check (the files did not
//! change meanwhile) runs after it, and a changed tree fails the build after the push, as
//! a dockerd build's check would fail before it (the next build with the files as they are
//! then has another tag).

use super::{Action, Done, Job, Planned, platforms};
use crate::builders::builder::{Builder as _, Built};
use crate::builders::remote::{RemoteBuildkit, RemoteOptions};
use crate::engine::{EngineError, Target};
use crate::explain;
use crate::oci::{Digest, Platforms};
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

/// The checks made before a remote build: each platform is `os/arch[/variant]` and the
/// base has it (this machine's emulation does not matter: the builder runs the steps).
async fn preflight(job: &Job<'_>, plan: &BuildPlan) -> Result<(), EngineError> {
    platforms::preflight(
        job.spec,
        Some(&plan.pull_ref(&plan.base_image)),
        &plan.platform,
        false,
        job.options.timeouts,
        job.progress,
    )
    .await
}

/// `plan` solved on the builder for `platforms` and pushed by it: the digest it pushed.
pub(super) async fn solve(
    job: &Job<'_>,
    plan: &BuildPlan,
    platforms: &Platforms,
    remote: &RemoteOptions,
) -> Result<Digest, EngineError> {
    let builder = builder(job, remote)?;
    job.info(&format!(
        "building {} on the BuildKit builder at {}",
        plan.image, builder.host
    ));
    match builder.build(plan, platforms, job.progress).await? {
        Built::Pushed {
            digest: Some(digest),
            ..
        } => Ok(digest),
        Built::Pushed { image, .. } => super::pushed_digest(job.registry()?, &image).await,
        Built::Local(_) => unreachable!("the remote builder pushes"),
    }
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
    preflight(job, plan).await?;
    let digest = solve(job, plan, platforms, remote).await?;
    crate::tag::verify_unchanged(job.spec, &job.options.tag, job.tag)?;
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
