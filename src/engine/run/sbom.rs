//! After a publish: the image's SBOM (one SPDX document per platform, [`crate::sbom`])
//! attached as an OCI 1.1 referrer in the registry ([`crate::publish::referrers`]), or
//! written beside the image into an OCI layout. Every build path ends here (a full build,
//! the fast path, the uv builder's, `--output`), with the digest its publish returned. An
//! SBOM that cannot be made or attached is a warning: the image is built and published.

use super::Job;
use crate::builders::registry::DependencyImage;
use crate::engine::Builder;
use crate::explain::INPUTS_LABEL;
use crate::oci::Platforms;
use crate::oci::epoch::SourceDateEpoch;
use crate::oci::image::Descriptor;
use crate::oci::{Digest, Image, ImageRef};
use crate::progress::Event;
use crate::publish::PublishError;
use crate::publish::layout::OutputTarget;
use crate::publish::referrers::{self, Listed, Unlisted};
use crate::registry::client::RegistryClient;
use crate::sbom::image::{
    self as sbom_image, Described, MadeDependency, PlatformImage, Reading, SbomError, Store,
};
use crate::sbom::provenance::{self, IN_TOTO_MEDIA_TYPE, Invocation};
use crate::sbom::{SPDX_MEDIA_TYPE, spdx::Document};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// Why no SBOM was attached.
#[derive(Debug, thiserror::Error)]
enum SbomFailure {
    #[error("reading the image: {0}")]
    Read(#[from] SbomError),
    #[error("attaching it: {0}")]
    Attach(#[from] PublishError),
    #[error("writing it: {0}")]
    Write(#[from] crate::publish::layout::LayoutError),
}

/// `SOURCE_DATE_EPOCH`, which sets the documents' `created` (the command line refused a
/// bad value before the build).
fn source_date_epoch() -> Option<SourceDateEpoch> {
    SourceDateEpoch::from_env().ok().flatten()
}

/// The artifact carrying `document`, about `subject`.
fn artifact(subject: &Descriptor, document: &Document) -> Image {
    let bytes = serde_json::to_vec(document).expect("a document serialises");
    let created = document.creation_info.created.clone();
    content_artifact(SPDX_MEDIA_TYPE, subject, bytes, created)
}

/// An artifact of `media_type` holding `bytes`, about `subject`, made at `created`.
fn content_artifact(
    media_type: &str,
    subject: &Descriptor,
    bytes: Vec<u8>,
    created: String,
) -> Image {
    let annotations = BTreeMap::from([("org.opencontainers.image.created".to_string(), created)]);
    Image::artifact(media_type, media_type, bytes.into(), subject, annotations)
}

/// RFC 3339 in whole seconds, UTC.
fn rfc3339(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    let at = at.replace_nanosecond(0).unwrap_or(at);
    let text = at.format(&time::format_description::well_known::Rfc3339);
    text.unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// The run, for the provenance: the builder that made the image (`append`: the fast path),
/// an id unique to this build, when it started and now.
fn invocation(job: &Job<'_>, appended: bool) -> Invocation {
    let builder = match (appended, &job.options.remote, Builder::of(job.spec)) {
        (true, _, _) => "registry-append",
        (false, Some(_), _) => "remote-buildkit",
        (false, None, Builder::Envd) => "envd",
        (false, None, _) => "docker",
    };
    let nanos = job
        .started
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Invocation {
        builder: builder.to_string(),
        id: format!("{}-{}", nanos.as_nanos(), std::process::id()),
        started_on: rfc3339(job.started),
        finished_on: rfc3339(SystemTime::now()),
    }
}

/// The artifacts about one platform image: its SBOM, and its provenance unless turned off.
fn artifacts_of(job: &Job<'_>, described: &Described, run: &Invocation) -> Vec<Image> {
    let subject = &described.image.descriptor;
    let mut artifacts = vec![artifact(subject, &described.document)];
    if job.options.provenance {
        let statement = provenance::statement(&described.contents, &described.image.config, run);
        let bytes = serde_json::to_vec(&statement).expect("a statement serialises");
        let created = run.finished_on.clone();
        artifacts.push(content_artifact(
            IN_TOTO_MEDIA_TYPE,
            subject,
            bytes,
            created,
        ));
    }
    artifacts
}

/// How many packages `document` lists besides the image, its base and its source.
fn found_packages(document: &Document) -> usize {
    let purpose = |p: &crate::sbom::spdx::SpdxPackage| p.primary_package_purpose.clone();
    document
        .packages
        .iter()
        .filter(|p| purpose(p).as_deref() == Some("LIBRARY"))
        .count()
}

/// What is said once the SBOMs are attached: `n` documents, packages in all, where.
fn attached_message(
    image: &ImageRef,
    packages: usize,
    listed: &[Listed],
    provenance: bool,
) -> String {
    let how = match listed.first() {
        Some(Listed::ReferrersApi) | None => "the registry's referrers API".to_string(),
        Some(Listed::Tag(tag)) => format!("the referrers tag {tag}"),
    };
    let documents = if listed.len() == 1 {
        "an SBOM".to_string()
    } else {
        format!("{} SBOMs (one per platform)", listed.len())
    };
    let documents = if provenance {
        format!("{documents} and provenance")
    } else {
        documents
    };
    format!("attached {documents} to {image} ({packages} packages), listed by {how}")
}

/// What the SBOM is made of: the images as pushed, or only the digest (read back).
pub(super) enum Published<'a> {
    /// The manifest (or index) digest of an image another program pushed (dockerd).
    Digest(&'a Digest),
    /// The images just pushed, one per platform (their manifests are not read back).
    Images(Vec<PlatformImage>),
}

/// The SBOM of the image just pushed as `image` attached to it, unless `--sbom=false`, and
/// its provenance, unless `--provenance=false`; a failure is a warning.
pub(super) async fn attach(job: &Job<'_>, image: &ImageRef, published: Published<'_>) {
    let Some(client) = job.client.filter(|_| job.options.sbom) else {
        return;
    };
    let work = async {
        let prepared = prepare(job, client, image, published).await?;
        finish(client, image, prepared).await
    };
    attach_step(job, image, work).await;
}

/// What is left of the SBOM once its image is pushed ([`beside`]): its artifacts' manifests
/// and their listing, or why there is none.
pub(super) struct Pending(Option<Result<Prepared, SbomFailure>>);

/// Runs `pushing` (the push of `images` as `image`) and, at the same time, what the SBOM
/// needs only the images for: the documents (the dependency image's SBOM, the layers this
/// machine wrote), the upload of the artifacts' blobs and, on a registry without the
/// referrers API, their listing under the referrers tag (named by the image's digest,
/// which is known before the push: the images' manifests are made here). With the API,
/// [`finish_beside`] pushes the artifacts' manifests after the push succeeded: one round
/// trip.
pub(super) async fn beside<T>(
    job: &Job<'_>,
    image: &ImageRef,
    images: Vec<PlatformImage>,
    pushing: impl std::future::Future<Output = T>,
) -> (T, Pending) {
    let Some(client) = job.client.filter(|_| job.options.sbom) else {
        return (pushing.await, Pending(None));
    };
    let preparing = prepare(job, client, image, Published::Images(images));
    let (pushed, prepared) = tokio::join!(pushing, preparing);
    (pushed, Pending(Some(prepared)))
}

/// Attaches what [`beside`] prepared, once the image is pushed; a failure is a warning.
pub(super) async fn finish_beside(job: &Job<'_>, image: &ImageRef, pending: Pending) {
    let (Some(client), Pending(Some(prepared))) = (job.client, pending) else {
        return;
    };
    let work = async { finish(client, image, prepared?).await };
    attach_step(job, image, work).await;
}

/// Runs `work` as the step that attaches the SBOM of `image`, and says what it did.
async fn attach_step(
    job: &Job<'_>,
    image: &ImageRef,
    work: impl std::future::Future<Output = Result<(usize, Vec<Listed>), SbomFailure>>,
) {
    let work = async { Ok::<_, std::convert::Infallible>(work.await) };
    let step = format!("attach the SBOM of {image}");
    let Ok(result) = job.progress.in_step("sbom", &step, work).await;
    match result {
        Ok((packages, listed)) => {
            let provenance = job.options.provenance;
            job.info(&attached_message(image, packages, &listed, provenance))
        }
        Err(e) => warn(job, image, &e),
    }
}

fn warn(job: &Job<'_>, image: &ImageRef, e: &SbomFailure) {
    let message = format!("no SBOM for {image}: {e} (the image itself is published)");
    job.progress.event(Event::Warning(&message));
}

/// How `image` is described when read from `store`: named by its repository, dated by
/// `SOURCE_DATE_EPOCH`.
fn reading<'a>(job: &Job<'_>, image: &'a ImageRef, store: Store<'a>) -> Reading<'a> {
    Reading {
        store,
        repository: image.name(),
        source_date_epoch: source_date_epoch(),
        timeouts: job.options.timeouts,
    }
}

/// The documents of each platform image, their artifacts, and how far each platform's
/// artifacts went without being listed.
pub(super) struct Prepared {
    documents: Vec<Described>,
    artifacts: Vec<Vec<Image>>,
    unlisted: Vec<Option<Unlisted>>,
    /// The dependency images' documents attached now, kept on this machine by [`finish`].
    keep: Vec<(Digest, Vec<u8>)>,
}

/// What needs no manifest of `image` in the registry, so that it can run beside its push:
/// the documents, the artifacts made of them (the provenance's `finishedOn` is when the
/// image was made, before its push), everything of their listing that may go before the
/// image ([`Unlisted`]: their blobs uploaded, all platforms' at once; without the referrers
/// API, listed under the referrers tag), and the dependency images'
/// own SBOMs (those images are pushed).
async fn prepare(
    job: &Job<'_>,
    client: &RegistryClient,
    image: &ImageRef,
    published: Published<'_>,
) -> Result<Prepared, SbomFailure> {
    let reading = reading(job, image, Store::Registry { client, image });
    let appended = matches!(published, Published::Images(_));
    let documents = match published {
        Published::Digest(digest) => sbom_image::documents(reading, digest).await?,
        Published::Images(images) => sbom_image::documents_of(reading, images).await?,
    };
    let run = invocation(job, appended);
    let artifacts: Vec<Vec<Image>> = documents
        .iter()
        .map(|described| artifacts_of(job, described, &run))
        .collect();
    let uploads = (artifacts.iter()).map(|a| Unlisted::upload(client, image, a));
    let dependencies = documents.iter().map(|d| attach_dependency(job, client, d));
    let (unlisted, kept) = tokio::join!(
        futures_util::future::try_join_all(uploads),
        futures_util::future::join_all(dependencies)
    );
    Ok(Prepared {
        documents,
        artifacts,
        unlisted: unlisted?,
        keep: kept.into_iter().flatten().collect(),
    })
}

/// The prepared artifacts listed as referrers of their images (all platforms at once), once
/// the images are pushed, and the dependency images' documents kept: the packages found,
/// and how each platform's artifacts are listed.
async fn finish(
    client: &RegistryClient,
    image: &ImageRef,
    prepared: Prepared,
) -> Result<(usize, Vec<Listed>), SbomFailure> {
    let Prepared {
        documents,
        artifacts,
        unlisted,
        keep,
    } = prepared;
    for (digest, bytes) in &keep {
        crate::sbom::reuse::keep(digest, bytes);
    }
    let lists = unlisted
        .into_iter()
        .zip(&artifacts)
        .map(|(u, a)| async move {
            match u {
                Some(u) => u.list(client, image, a).await,
                None => Ok(Vec::new()),
            }
        });
    let listed = futures_util::future::try_join_all(lists).await;
    let listed = listed?.into_iter().filter_map(|attached| {
        let first = attached.into_iter().next();
        first.map(|a| a.listed)
    });
    let packages = documents.iter().map(|d| found_packages(&d.document));
    Ok((packages.sum(), listed.collect()))
}

/// The dependency image's SBOM (read from its layers now: it had none) attached to it, so
/// the next fast path on it, on any machine, reads none of its layers: its digest and the
/// document's bytes, to keep on this machine once the image is pushed; a failure is a
/// warning.
async fn attach_dependency(
    job: &Job<'_>,
    client: &RegistryClient,
    described: &Described,
) -> Option<(Digest, Vec<u8>)> {
    let (dependency, document) = described.dependency.as_ref()?;
    attach_document(
        job,
        client,
        &dependency.image,
        &dependency.descriptor,
        document,
    )
    .await
}

/// `document` attached to the image `descriptor` (in `name`'s repository): its digest and
/// the document's bytes, to keep on this machine; a failure is a warning.
async fn attach_document(
    job: &Job<'_>,
    client: &RegistryClient,
    name: &ImageRef,
    descriptor: &Descriptor,
    document: &Document,
) -> Option<(Digest, Vec<u8>)> {
    let artifacts = [artifact(descriptor, document)];
    match referrers::attach(client, name, &artifacts).await {
        Ok(_) => {
            let bytes = serde_json::to_vec(document).expect("a document serialises");
            Some((descriptor.digest.clone(), bytes))
        }
        Err(e) => {
            warn(job, name, &SbomFailure::Attach(e));
            None
        }
    }
}

/// The dependency images `found` (one per platform of `platforms`) this run made, handed to
/// this run's SBOMs of the images appended to them ([`sbom_image::hand_over_made`]), so
/// that [`attach_made`] describes and attaches them beside that image's build, not after
/// it; none with `--sbom=false`, nor those whose layers' findings this machine lacks.
pub(super) fn hand_over_made(
    job: &Job<'_>,
    found: &[DependencyImage],
    platforms: &Platforms,
) -> Vec<MadeDependency> {
    if job.client.is_none() || !job.options.sbom {
        return Vec::new();
    }
    let several = platforms.several();
    let each = found
        .iter()
        .zip(platforms.iter())
        .filter_map(|(deps, platform)| {
            let image = PlatformImage::of(&deps.value, several.then(|| platform.clone()));
            sbom_image::hand_over_made(&deps.image, image)
        });
    each.collect()
}

/// The document of each dependency image in `made` (its base named by `labels`' inputs
/// label, as the image appended to it names it) attached to it, all at once, and kept on
/// this machine; a failure is a warning.
pub(super) async fn attach_made(
    job: &Job<'_>,
    image: &ImageRef,
    labels: &[(String, String)],
    made: Vec<MadeDependency>,
) {
    let Some(client) = job.client.filter(|_| job.options.sbom && !made.is_empty()) else {
        return;
    };
    let inputs: Option<serde_json::Value> = (labels.iter())
        .find(|(key, _)| key == INPUTS_LABEL)
        .and_then(|(_, value)| serde_json::from_str(value).ok());
    let reading = reading(job, image, Store::Registry { client, image });
    let each = made.iter().map(|made| async {
        let contents = sbom_image::dependency_contents(reading, made, inputs.as_ref()).await;
        let document = crate::sbom::document(&contents);
        let descriptor = &made.image.descriptor;
        attach_document(job, client, &made.name, descriptor, &document).await
    });
    for (digest, bytes) in futures_util::future::join_all(each)
        .await
        .into_iter()
        .flatten()
    {
        crate::sbom::reuse::keep(&digest, &bytes);
    }
}

/// The SBOM of the image written to `target` (`digest`, as its `index.json` names it)
/// written beside it, for an OCI layout directory; archives carry none (`imagespec sbom`
/// computes it from the image).
pub(super) async fn write_into(job: &Job<'_>, target: &OutputTarget, digest: &Digest) {
    if !job.options.sbom {
        return;
    }
    let OutputTarget::OciDir(dir) = target else {
        job.info(&format!(
            "{target}: an archive holds no referrers, so no SBOM is written into it \
             (`imagespec sbom` computes one from the image)"
        ));
        return;
    };
    let image = &job.tag.image;
    let written = async {
        let reading = reading(job, image, Store::Layout(dir));
        let documents = sbom_image::documents(reading, digest).await?;
        let run = invocation(job, false);
        let mut written = Vec::new();
        for described in &documents {
            for artifact in artifacts_of(job, described, &run) {
                written.push(referrers::write_to_layout(dir, &artifact)?);
            }
        }
        referrers::annotate_layout(dir, digest, &written)?;
        Ok::<_, SbomFailure>(documents.len())
    };
    match written.await {
        Ok(n) => job.info(&format!(
            "wrote {} of {image} into {target}",
            crate::progress::count(n, "SBOM")
        )),
        Err(e) => warn(job, image, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_says_how_the_sboms_are_listed() {
        let image: ImageRef = "r/a:t".parse().unwrap();
        let one = attached_message(&image, 12, &[Listed::Tag("sha256-ab".into())], false);
        assert_eq!(
            one,
            "attached an SBOM to r/a:t (12 packages), listed by the referrers tag sha256-ab"
        );
        let both = [Listed::ReferrersApi, Listed::ReferrersApi];
        let two = attached_message(&image, 3, &both, true);
        assert!(
            two.contains("2 SBOMs (one per platform) and provenance"),
            "{two}"
        );
        assert!(two.ends_with("the registry's referrers API"), "{two}");
    }
}
