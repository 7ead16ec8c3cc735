//! The fast path's two strategies: `append` (the source layer on the dependency images
//! found while the facts were gathered) and `build_dependencies_then_append` (the
//! dependency images made first, by uv without a daemon or by dockerd, then the same).

use super::{Action, Done, Job, Planned, platforms, published, tag_check};
use crate::builders::BackendError;
use crate::builders::builder::{Builder as _, Built, Uv};
use crate::builders::daemonless::DaemonlessError;
use crate::builders::registry::{self as registry_backend, DependencyImage};
use crate::engine::{DependencyBuilder, EngineError};
use crate::oci::{Digest, ImageRef, Index, Platform, Platforms};
use crate::publish::Check;
use crate::publish::registry::{Reference, Registry};
use crate::sbom::image::PlatformImage;

/// `append`: the dependency images were found (and read) while the facts were gathered.
pub(super) async fn append(
    job: &Job<'_>,
    planned: Planned,
    found: &[DependencyImage],
    platforms: &Platforms,
) -> Result<Done, EngineError> {
    announce_found(job, &planned, found.len(), platforms);
    append_source(job, &planned, found, false).await
}

/// Says the dependency images were found (`n` of them).
pub(super) fn announce_found(job: &Job<'_>, planned: &Planned, n: usize, platforms: &Platforms) {
    if platforms.several() {
        job.info(&format!(
            "dependencies unchanged ({}, {n} platforms): appending the source",
            planned.deps.image
        ));
    } else {
        job.info(&format!(
            "dependencies unchanged ({}): appending the source",
            planned.deps.image
        ));
    }
}

/// `build_dependencies_then_append`: the dependency images made by `builder` (uv, else
/// dockerd) and pushed, then the source appended to them.
pub(super) async fn build_dependencies_then_append(
    job: &Job<'_>,
    planned: Planned,
    builder: Option<&DependencyBuilder>,
    platforms: &Platforms,
) -> Result<Done, EngineError> {
    let (found, made_now) = made_dependency_images(job, &planned, builder, platforms).await?;
    append_source(job, &planned, &found, made_now).await
}

/// The source layer on each platform's dependency image (`found`, in the order of the
/// plan's platforms; `made_now`: by this run), pushed (several: as one index, last), while
/// another thread checks the tag still matches the files.
async fn append_source(
    job: &Job<'_>,
    planned: &Planned,
    found: &[DependencyImage],
    made_now: bool,
) -> Result<Done, EngineError> {
    let appending = Appending {
        job,
        planned,
        made_now,
    };
    let plan = &planned.plan;
    // A dependency image made now is described before the source layer is written, and its
    // SBOM attached beside that and the push.
    let made = match made_now {
        true => super::sbom::hand_over_made(job, found, &plan.platform),
        false => Vec::new(),
    };
    let attaching = super::sbom::attach_made(job, &plan.image, &plan.labels, made);
    let pushing = async {
        match found {
            [one] if !plan.platform.several() => appending.push_one(one).await,
            several => appending.push_index(several).await,
        }
    };
    let (digest, ()) = tokio::join!(pushing, attaching);
    Ok(planned.made(job, Action::Appended, Some(digest?)))
}

/// The step that pushes `assembled` as `image`: `target` (` for linux/arm64`, or empty) and
/// `on` (what the layer goes on, or empty) are said as given.
fn push_step(
    image: &ImageRef,
    target: &str,
    assembled: &registry_backend::Assembled,
    on: &str,
) -> String {
    format!(
        "push {image}{target} ({}, {}{on})",
        crate::progress::count(assembled.files, "file"),
        crate::progress::bytes(assembled.layer_size)
    )
}

/// The source layer appended to the dependency images of `planned` (`made_now`: by this
/// run) and pushed.
struct Appending<'a, 'j> {
    job: &'a Job<'j>,
    planned: &'a Planned,
    made_now: bool,
}

impl Appending<'_, '_> {
    /// The publisher of the plan's image, its pushes shown as the `append` step.
    fn publisher(&self) -> Result<Registry<'_>, EngineError> {
        let client = self.job.registry()?;
        Ok(Registry::new(client, &self.planned.plan.image).metered(self.job.progress, "append"))
    }

    /// The source layer on `deps` (the image of `platform`, `None` for the only one), and
    /// the image as its SBOM describes it.
    async fn assemble(
        &self,
        deps: &DependencyImage,
        platform: Option<&Platform>,
    ) -> Result<(registry_backend::Assembled, PlatformImage), EngineError> {
        let (plan, progress) = (&self.planned.plan, self.job.progress);
        let assembled = registry_backend::assemble_image(plan, deps, progress).await?;
        let image = PlatformImage::of(&assembled.image, platform.cloned());
        let image = image.on_dependency(&deps.image, &deps.value, self.made_now);
        Ok((assembled, image))
    }

    /// The source layer on the dependency image, pushed under the tag once the tag check holds.
    async fn push_one(&self, deps: &DependencyImage) -> Result<Digest, EngineError> {
        let (job, plan) = (self.job, &self.planned.plan);
        let (assembled, image) = self.assemble(deps, None).await?;
        // The dependency image was named by the line before ("dependencies unchanged (...)").
        let step = push_step(&plan.image, "", &assembled, " on the dependency image");
        let publisher = self.publisher()?;
        let pushing = publisher.push(&assembled.image, Reference::Tag, tag_check(job));
        let pushing = job.progress.in_step("append", &step, pushing);
        // The SBOM is made of the image value, beside its push, and attached once it is pushed.
        let (pushed, sbom) = super::sbom::beside(job, &plan.image, vec![image], pushing).await;
        let pushed = pushed.map_err(|e| published(e, None))?;
        let already = if pushed.uploaded.contains(&assembled.layer_digest) {
            ""
        } else {
            " (already in the registry)"
        };
        job.info(&format!(
            "pushed {} ({}), {}, a layer of {}{already}",
            plan.image,
            pushed.digest,
            crate::progress::count(assembled.files, "file"),
            crate::progress::bytes(assembled.layer_size)
        ));
        super::sbom::finish_beside(job, &plan.image, sbom).await;
        Ok(pushed.digest)
    }

    /// Each platform's image (the source layer on its dependency image) pushed by digest, then
    /// their index under the tag once the tag check holds.
    async fn push_index(&self, found: &[DependencyImage]) -> Result<Digest, EngineError> {
        let (job, plan) = (self.job, &self.planned.plan);
        let platforms = &plan.platform;
        let publisher = self.publisher()?;
        let mut index = Index::default();
        super::recorded::annotate(&mut index, &self.planned.inputs);
        let (mut images, mut assembled) = (Vec::new(), Vec::new());
        for (platform, deps) in platforms.iter().zip(found) {
            let (made, image) = self.assemble(deps, Some(platform)).await?;
            index.push_descriptor(platform, made.image.descriptor());
            images.push(image);
            assembled.push((platform, made));
        }
        let pushing = async {
            for (platform, assembled) in &assembled {
                let step = push_step(&plan.image, &format!(" for {platform}"), assembled, "");
                let pushing = publisher.push(&assembled.image, Reference::Digest, Check::none());
                job.progress.in_step("append", &step, pushing).await?;
            }
            publisher.push_index(&index, tag_check(job)).await
        };
        // The SBOMs are made of the image values, beside their push, and attached once it is done.
        let (digest, sbom) = super::sbom::beside(job, &plan.image, images, pushing).await;
        let digest = digest.map_err(|e| published(e, None))?;
        job.info(&format!(
            "pushed {} ({}), an index of {} platforms",
            plan.image,
            digest,
            platforms.len()
        ));
        super::sbom::finish_beside(job, &plan.image, sbom).await;
        Ok(digest)
    }
}

/// The dependency image of every platform, made now: the registry lacked one of them when
/// the facts were gathered. Concurrent builds of specs sharing it (two CI jobs of one repo)
/// make it once: the others wait for the lock, then find it. Without that, each would push
/// its own build of it, and their images would differ.
pub(super) async fn dependency_images(
    job: &Job<'_>,
    planned: &Planned,
    builder: Option<&DependencyBuilder>,
    platforms: &Platforms,
) -> Result<Vec<DependencyImage>, EngineError> {
    let (images, _) = made_dependency_images(job, planned, builder, platforms).await?;
    Ok(images)
}

/// [`dependency_images`], and whether this run made them (`false`: another run pushed them
/// meanwhile).
async fn made_dependency_images(
    job: &Job<'_>,
    planned: &Planned,
    builder: Option<&DependencyBuilder>,
    platforms: &Platforms,
) -> Result<(Vec<DependencyImage>, bool), EngineError> {
    let (client, deps) = (job.registry()?, &planned.deps);
    let uv = builder == Some(&DependencyBuilder::Uv);
    // Said before anything needs dockerd: the decision's reason, not a fallback.
    if let Some(DependencyBuilder::Docker(why)) = builder {
        job.info(&format!("the dependency image needs BuildKit: {why}"));
    }
    let emulation = !uv && job.options.remote.is_none();
    platforms::preflight_plan(job, &planned.plan, emulation).await?;
    let _lock = crate::lock::ImageLock::acquire(&deps.image, |message| job.info(message))
        .await
        .map_err(BackendError::from)?;
    // Asked again under the lock: another run may have pushed it since the facts.
    if let Some(found) =
        registry_backend::find_dependency_images(client, &deps.image, platforms).await?
    {
        job.info(&format!(
            "dependency image {} pushed meanwhile by another run: appending the source",
            deps.image
        ));
        return Ok((found, false));
    }
    if platforms.several() {
        job.info(&format!(
            "dependency image {} not found, building it for {}",
            deps.image,
            platforms::list(platforms.iter())
        ));
    } else {
        job.info(&format!(
            "dependency image {} not found, building it",
            deps.image
        ));
    }
    // What only the build finds out (no wheel, no Python in the base) falls back to dockerd;
    // the apt step was worked out before the decision.
    let made = if uv {
        by_uv(job, planned, platforms).await?
    } else {
        None
    };
    if let Some(made) = made {
        return Ok((made, true));
    }
    if job.options.remote.is_some() {
        super::remote::build_dependency_images(job, deps, platforms).await?;
    } else {
        if uv {
            check_emulation(platforms)?;
        }
        platforms::build_dependency_images(job, deps, platforms).await?;
    }
    Ok((read_back(job, deps, platforms).await?, true))
}

/// The dependency images uv made and pushed, as pushed (not read back: the registry is
/// asked once per fact); `None` when uv cannot make them, after it said why (dockerd makes
/// them then).
async fn by_uv(
    job: &Job<'_>,
    planned: &Planned,
    platforms: &Platforms,
) -> Result<Option<Vec<DependencyImage>>, EngineError> {
    let uv = Uv {
        client: job.registry()?,
        preflight: &planned.preflight,
    };
    match uv.build(&planned.deps, job.progress).await {
        Ok(Built::Pushed {
            images: Some(images),
            ..
        }) => Ok(Some(as_dependency_images(&planned.deps.image, images)?)),
        Ok(_) => Ok(Some(read_back(job, &planned.deps, platforms).await?)),
        Err(BackendError::Daemonless(DaemonlessError::Fallback(why))) => {
            if platforms.several() {
                job.info(&format!(
                    "cannot build the dependency images without a daemon ({why}): \
                     building them with dockerd, one platform at a time"
                ));
            } else {
                job.info(&format!(
                    "cannot build the dependency image without a daemon ({why}): \
                     building it with dockerd"
                ));
            }
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Before dockerd builds what uv could not: this machine runs every platform's programs
/// (the check [`platforms::preflight`] leaves out when uv was to build).
fn check_emulation(platforms: &Platforms) -> Result<(), EngineError> {
    crate::builders::emulation::check_local_daemon(platforms).map_err(BackendError::from)?;
    Ok(())
}

/// The images uv pushed as `image`, as dependency images (each has the dependency label
/// uv put on it).
fn as_dependency_images(
    image: &ImageRef,
    images: Vec<crate::oci::Image>,
) -> Result<Vec<DependencyImage>, EngineError> {
    let unlabelled = || BackendError::Push {
        image: image.to_string(),
        message: "pushed without the dependency label".into(),
    };
    let each = images
        .into_iter()
        .map(|value| DependencyImage::from_image(image, value).ok_or_else(unlabelled));
    Ok(each.collect::<Result<_, _>>()?)
}

/// The dependency images just pushed, read back from the registry (their manifests and
/// configs are what the source layer is appended to).
async fn read_back(
    job: &Job<'_>,
    deps: &crate::plan::BuildPlan,
    platforms: &Platforms,
) -> Result<Vec<DependencyImage>, EngineError> {
    let client = job.registry()?;
    let found = registry_backend::find_dependency_images(client, &deps.image, platforms).await?;
    Ok(found.ok_or_else(|| BackendError::Push {
        image: deps.image.to_string(),
        message: "pushed, but the registry does not return it".into(),
    })?)
}
