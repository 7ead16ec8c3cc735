//! `build`: the whole Dockerfile built by BuildKit through dockerd (one solve per platform),
//! or build.envd by envd; then pushed (several platforms: each, then the index) or kept in
//! the daemon, as the strategy's target says.

use super::{Action, Done, Job, Planned, platforms, remote};
use crate::builders::builder::{Builder, Docker};
use crate::builders::envd::Envd;
use crate::engine::{EngineError, Target};
use crate::oci::Digest;

/// The Dockerfile of `planned` built for its platforms (by dockerd's BuildKit, or on the
/// remote builder the options name), checked against the files, then published to `target`.
pub(super) async fn build_image(
    job: &Job<'_>,
    planned: Planned,
    target: Target,
    reason: &str,
) -> Result<Done, EngineError> {
    let plan = &planned.plan;
    let digest = match &job.options.remote {
        Some(_) => Some(remote::build_image(job, plan).await?),
        None => build_on_dockerd(job, &planned, target, reason).await?,
    };
    Ok(planned.made(job, Action::Built, digest))
}

/// The plan of `planned` built by dockerd's BuildKit, checked against the files, then pushed (the digest)
/// or kept in the daemon.
async fn build_on_dockerd(
    job: &Job<'_>,
    planned: &Planned,
    target: Target,
    reason: &str,
) -> Result<Option<Digest>, EngineError> {
    let plan = &planned.plan;
    platforms::preflight_plan(job, plan, true).await?;
    if target == Target::Registry && job.options.fast_path {
        job.info(reason);
    }
    let d = job.daemon.get().await?;
    let built = Docker { daemon: d }.build(plan, job.progress).await?;
    crate::tag::verify_unchanged(job.spec, &job.options.tag, job.tag)?;
    let record = Some(&planned.inputs);
    Ok(match target {
        Target::Registry => Some(platforms::publish(job, d, &built, &plan.image, record).await?),
        Target::Daemon => None,
    })
}

/// build.envd built by envd into dockerd (its default context uses dockerd's BuildKit); the
/// push is ours, from dockerd (src/builders/envd.rs says why).
pub(super) async fn build_envd(job: &Job<'_>, target: Target) -> Result<Done, EngineError> {
    let (spec, options) = (job.spec, job.options);
    platforms::preflight(
        spec,
        None,
        options.render.platforms(spec),
        true,
        options.timeouts,
        job.progress,
    )
    .await?;
    let plan = crate::plan::EnvdPlan::new(spec, job.tag, &options.render)?;
    let d = job.daemon.get().await?;
    let envd = Envd::find()?;
    let built = Builder::build(&envd, &plan, job.progress).await?;
    crate::tag::verify_unchanged(spec, &options.tag, job.tag)?;
    let digest = match target {
        Target::Registry => Some(platforms::publish(job, d, &built, &plan.image, None).await?),
        Target::Daemon => None,
    };
    Ok(Done::made(job, Action::Built, digest))
}
