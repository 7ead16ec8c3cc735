//! `write_output` (`--output`): the image assembled on its dependency images (no RUN step
//! runs) and written to disk; nothing is pushed except, when the registry lacks it, the
//! dependency image. Without a registry, the dependency image of each platform is made on
//! this machine with uv and written with the image. Several platforms are one index.

use super::{Action, Done, Job, Planned};
use crate::builders::BackendError;
use crate::builders::registry::{self as registry_backend, DependencyImage};
use crate::engine::{EngineError, OutputDependencies};
use crate::oci::{Image, Index, Platform, Platforms};
use crate::plan::BuildPlan;
use crate::publish::layout::{Layout, OutputTarget};
use crate::publish::{Check, Publisher};
use crate::registry::client::RegistryClient;

/// `write_output`: the dependency images found, made and pushed first, or made here
/// (`Local`); the image assembled on them and written to `--output`.
pub(super) async fn write_output(
    job: &Job<'_>,
    planned: Planned,
    dependencies: &OutputDependencies,
    platforms: &Platforms,
) -> Result<Done, EngineError> {
    let Some(target) = job.options.output.as_ref() else {
        return Err(EngineError::Invalid {
            name: job.spec.name().into(),
            at: None,
            message: "write_output without --output".into(),
        });
    };
    let deps = match dependencies {
        OutputDependencies::Local => {
            write_output_local(job, &planned, target, platforms).await?;
            return Ok(written(job, &planned));
        }
        OutputDependencies::Found(found) => {
            super::append::announce_found(job, &planned, found.0.len(), platforms);
            found.0.clone()
        }
        OutputDependencies::Build(builder) => {
            super::append::dependency_images(job, &planned, builder.as_ref(), platforms).await?
        }
    };
    let client = job.registry()?;
    write_assembled(job, &planned.plan, target, client, &deps, platforms).await?;
    Ok(written(job, &planned))
}

fn written(job: &Job<'_>, planned: &Planned) -> Done {
    planned.made(job, Action::Written, None)
}

/// The image of each platform assembled on its dependency image (from the registry) and
/// written to `target`.
async fn write_assembled(
    job: &Job<'_>,
    plan: &BuildPlan,
    target: &OutputTarget,
    client: &RegistryClient,
    deps: &[DependencyImage],
    platforms: &Platforms,
) -> Result<(), EngineError> {
    let images = assemble_each(job, plan, platforms, deps).await?;
    write_images(job, client, images, target).await
}

/// Each platform's image assembled on its dependency image (in `platforms`' order), then the
/// tag checked against the files (flytekit's check, before anything is written).
async fn assemble_each<'d>(
    job: &Job<'_>,
    plan: &BuildPlan,
    platforms: &Platforms,
    deps: impl IntoIterator<Item = &'d DependencyImage>,
) -> Result<Vec<(Platform, Image)>, EngineError> {
    let mut images = Vec::new();
    for (platform, deps) in platforms.iter().zip(deps) {
        let _scope = platforms
            .several()
            .then(|| job.progress.platform_scope(platform.as_str()));
        let assembled = registry_backend::assemble_image(plan, deps, job.progress).await?;
        images.push((platform.clone(), assembled.image));
    }
    crate::tag::verify_unchanged(job.spec, &job.options.tag, job.tag)?;
    Ok(images)
}

/// `--output` of a spec without a registry: the dependency image of each platform made on
/// this machine with uv (no daemon, nothing pushed), the source layer on it, and the image
/// written with the base's layers read from the base's registry.
async fn write_output_local(
    job: &Job<'_>,
    planned: &Planned,
    target: &OutputTarget,
    platforms: &Platforms,
) -> Result<(), EngineError> {
    let (progress, options) = (job.progress, job.options);
    use crate::builders::daemonless::{DaemonlessError, make_local};
    let (plan, deps_plan) = (&planned.plan, &planned.deps);
    let made = match make_local(deps_plan, &planned.preflight, options.timeouts, progress).await {
        Ok(made) => made,
        Err(DaemonlessError::Fallback(why)) => {
            return Err(BackendError::Output {
                target: target.to_string(),
                source: crate::publish::layout::LayoutError::Io {
                    path: std::path::PathBuf::from(plan.image.to_string()),
                    source: std::io::Error::other(format!(
                        "{why}; so the dependencies cannot be installed without a daemon, \
                         and with no `registry` there is nowhere to keep a dependency image \
                         dockerd would build"
                    )),
                },
            }
            .into());
        }
        Err(e) => return Err(BackendError::from(e).into()),
    };
    let deps: Vec<&DependencyImage> = made.iter().map(|m| &m.image).collect();
    let images = assemble_each(job, plan, platforms, deps).await?;
    // Every platform's base is the same image in the same registry.
    write_images(job, &made[0].base_client, images, target).await
}

/// The output step: `images` (one per platform, in order; several: an index) written to
/// `target`, their remote layers read with `client`.
async fn write_images(
    job: &Job<'_>,
    client: &RegistryClient,
    images: Vec<(Platform, Image)>,
    target: &OutputTarget,
) -> Result<(), EngineError> {
    let progress = job.progress;
    let layout = Layout {
        client,
        name: &job.tag.image,
        target,
        progress,
    };
    let step = format!("write {target}");
    let writing = async {
        if images.len() > 1 {
            let index = Index::of_images(images);
            layout.publish_index(&index, Check::none()).await
        } else {
            let (_, image) = images.into_iter().next().expect("one platform at least");
            layout.publish(&image, Check::none()).await
        }
    };
    let written = progress
        .in_step(crate::progress::OUTPUT_STEP, &step, writing)
        .await;
    let digest = written.map_err(|e| super::published(e, Some(target)))?;
    super::sbom::write_into(job, target, &digest).await;
    Ok(())
}
