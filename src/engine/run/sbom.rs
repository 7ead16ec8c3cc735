//! After a publish: the image's SBOM (one SPDX document per platform, [`crate::sbom`])
//! attached as an OCI 1.1 referrer in the registry ([`crate::publish::referrers`]), or
//! written beside the image into an OCI layout. Every build path ends here (a full build,
//! the fast path, the uv builder's, `--output`), with the digest its publish returned. An
//! SBOM that cannot be made or attached is a warning: the image is built and published.

use super::Job;
use crate::oci::{Digest, Image, ImageRef};
use crate::progress::Event;
use crate::publish::PublishError;
use crate::publish::layout::OutputTarget;
use crate::publish::referrers::{self, Listed};
use crate::registry::client::RegistryClient;
use crate::sbom::image::{self as sbom_image, PlatformImage, SbomError, Store};
use crate::sbom::{SPDX_MEDIA_TYPE, spdx::Document};
use std::collections::BTreeMap;

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

/// `SOURCE_DATE_EPOCH`, which sets the documents' `created`.
fn source_date_epoch() -> Option<String> {
    std::env::var("SOURCE_DATE_EPOCH").ok()
}

/// The artifact carrying `document`, about `subject`.
fn artifact(image: &sbom_image::PlatformImage, document: &Document) -> Image {
    let bytes = serde_json::to_vec(document).expect("a document serialises");
    let created = document.creation_info.created.clone();
    let annotations = BTreeMap::from([("org.opencontainers.image.created".to_string(), created)]);
    Image::artifact(
        SPDX_MEDIA_TYPE,
        SPDX_MEDIA_TYPE,
        bytes.into(),
        &image.descriptor,
        annotations,
    )
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
fn attached_message(image: &ImageRef, packages: usize, listed: &[Listed]) -> String {
    let how = match listed.first() {
        Some(Listed::ReferrersApi) | None => "the registry's referrers API".to_string(),
        Some(Listed::Tag(tag)) => format!("the referrers tag {tag}"),
    };
    let documents = if listed.len() == 1 {
        "an SBOM".to_string()
    } else {
        format!("{} SBOMs (one per platform)", listed.len())
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

/// The SBOM of the image just pushed as `image` attached to it, unless `--sbom=false`; a
/// failure is a warning.
pub(super) async fn attach(job: &Job<'_>, image: &ImageRef, published: Published<'_>) {
    let Some(client) = job.client.filter(|_| job.options.sbom) else {
        return;
    };
    let work = async {
        Ok::<_, std::convert::Infallible>(attach_all(job, client, image, published).await)
    };
    let step = format!("attach the SBOM of {image}");
    let Ok(result) = job.progress.in_step("sbom", &step, work).await;
    match result {
        Ok((packages, listed)) => job.info(&attached_message(image, packages, &listed)),
        Err(e) => warn(job, image, &e),
    }
}

fn warn(job: &Job<'_>, image: &ImageRef, e: &SbomFailure) {
    let message = format!("no SBOM for {image}: {e} (the image itself is published)");
    job.progress.event(Event::Warning(&message));
}

async fn attach_all(
    job: &Job<'_>,
    client: &RegistryClient,
    image: &ImageRef,
    published: Published<'_>,
) -> Result<(usize, Vec<Listed>), SbomFailure> {
    let repository = image.name();
    let epoch = source_date_epoch();
    let (epoch, timeouts) = (epoch.as_deref(), job.options.timeouts);
    let store = Store::Registry { client, image };
    let documents = match published {
        Published::Digest(digest) => {
            sbom_image::documents(store, repository, digest, epoch, timeouts).await?
        }
        Published::Images(images) => {
            sbom_image::documents_of(store, repository, images, epoch, timeouts).await?
        }
    };
    let mut listed = Vec::new();
    let mut packages = 0;
    for (platform_image, document) in &documents {
        packages += found_packages(document);
        let artifact = artifact(platform_image, document);
        listed.push(referrers::attach(client, image, &artifact).await?.listed);
    }
    Ok((packages, listed))
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
        let repository = image.name();
        let epoch = source_date_epoch();
        let store = Store::Layout(dir);
        let timeouts = job.options.timeouts;
        let documents =
            sbom_image::documents(store, repository, digest, epoch.as_deref(), timeouts).await?;
        let mut written = Vec::new();
        for (platform_image, document) in &documents {
            written.push(referrers::write_to_layout(
                dir,
                &artifact(platform_image, document),
            )?);
        }
        referrers::annotate_layout(dir, digest, &written)?;
        Ok::<_, SbomFailure>(documents.len())
    };
    match written.await {
        Ok(n) => job.info(&format!("wrote {n} SBOM(s) of {image} into {target}")),
        Err(e) => warn(job, image, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_says_how_the_sboms_are_listed() {
        let image: ImageRef = "r/a:t".parse().unwrap();
        let one = attached_message(&image, 12, &[Listed::Tag("sha256-ab".into())]);
        assert_eq!(
            one,
            "attached an SBOM to r/a:t (12 packages), listed by the referrers tag sha256-ab"
        );
        let two = attached_message(&image, 3, &[Listed::ReferrersApi, Listed::ReferrersApi]);
        assert!(two.contains("2 SBOMs (one per platform)"), "{two}");
        assert!(two.ends_with("the registry's referrers API"), "{two}");
    }
}
