//! `build`: the whole Dockerfile built by BuildKit through dockerd (one solve per platform),
//! or build.envd by envd; then pushed (several platforms: each, then the index) or kept in
//! the daemon, as the strategy's target says.

use super::{Action, Done, Job, Planned, platforms};
use crate::builders::builder::{Builder, Docker};
use crate::builders::envd::Envd;
use crate::engine::{EngineError, Target};
use crate::explain;
use crate::oci::Platforms;

/// The Dockerfile of `planned` built by dockerd's BuildKit for `platforms`, checked against
/// the files, then published to `target`.
pub(super) async fn build_image(
    job: &Job<'_>,
    planned: Planned,
    platforms: &Platforms,
    target: Target,
    reason: &str,
) -> Result<Done, EngineError> {
    let plan = &planned.plan;
    platforms::preflight_plan(job, plan, true).await?;
    if target == Target::Registry && job.options.fast_path {
        job.info(reason);
    }
    let d = job.daemon.get().await?;
    let built = Docker { daemon: d }
        .build(plan, platforms, job.progress)
        .await?;
    crate::tag::verify_unchanged(job.spec, &job.options.tag, job.tag)?;
    let digest = match target {
        Target::Registry => Some(platforms::publish(job, d, &built, &plan.image).await?),
        Target::Daemon => None,
    };
    explain::record_last_built(&planned.inputs);
    if let Some(digest) = &digest {
        super::recorded::remember(digest, &planned.inputs);
    }
    Ok(Done {
        action: Action::Built,
        pushed: target == Target::Registry,
        image: job.tag.image.clone(),
        digest,
    })
}

/// build.envd built by envd into dockerd (its default context uses dockerd's BuildKit); the
/// push is ours, from dockerd (src/builders/envd.rs says why).
pub(super) async fn build_envd(
    job: &Job<'_>,
    platforms: &Platforms,
    target: Target,
) -> Result<Done, EngineError> {
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
    let built = Builder::build(&envd, &plan, platforms, job.progress).await?;
    crate::tag::verify_unchanged(spec, &options.tag, job.tag)?;
    let digest = match target {
        Target::Registry => Some(platforms::publish(job, d, &built, &plan.image).await?),
        Target::Daemon => None,
    };
    Ok(Done {
        action: Action::Built,
        pushed: target == Target::Registry,
        image: job.tag.image.clone(),
        digest,
    })
}
