//! `imagespec sbom`: the SBOM (or provenance) attached to each platform of an image, or,
//! where none is, the one attaching would give, computed from the image now. CycloneDX is
//! always computed (what is attached is SPDX).

use super::image::{PlatformImage, Reading, SbomError, Store, attached, contents, platform_images};
use super::provenance::{IN_TOTO_MEDIA_TYPE, Invocation};
use crate::oci::{ImageRef, Platform};
use crate::registry::client::RegistryClient;
use crate::timeouts::Timeouts;

/// Which document to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// The SPDX 2.3 SBOM.
    Spdx,
    /// The SBOM as CycloneDX 1.6.
    CycloneDx,
    /// The SLSA provenance v1 statement.
    Provenance,
}

/// One platform's document.
#[derive(Debug, Clone)]
pub struct PlatformDocument {
    pub platform: Option<Platform>,
    /// Attached to the image (else computed now).
    pub attached: bool,
    /// The JSON document, as attached (or as attaching would write it).
    pub document: Vec<u8>,
}

/// The `what` of each platform of `image` (only `platform`'s, when given).
pub async fn show(
    client: &RegistryClient,
    image: &ImageRef,
    platform: Option<&Platform>,
    what: Shown,
    source_date_epoch: Option<crate::oci::epoch::SourceDateEpoch>,
    timeouts: Timeouts,
) -> Result<Vec<PlatformDocument>, SbomError> {
    let digest = client
        .digest(image)
        .await?
        .ok_or_else(|| SbomError::NotFound {
            image: image.clone(),
        })?;
    let store = Store::Registry { client, image };
    let repository = image.name();
    let wanted = |i: &PlatformImage| platform.is_none() || i.platform.as_ref() == platform;
    let media_type = match what {
        Shown::Spdx => Some(super::SPDX_MEDIA_TYPE),
        Shown::Provenance => Some(IN_TOTO_MEDIA_TYPE),
        Shown::CycloneDx => None,
    };
    let mut shown = Vec::new();
    for one in platform_images(store, &digest)
        .await?
        .into_iter()
        .filter(wanted)
    {
        let subject = &one.descriptor.digest;
        if let Some(media_type) = media_type
            && let Some(document) = attached(client, image, subject, media_type).await?
        {
            shown.push(PlatformDocument {
                platform: one.platform,
                attached: true,
                document,
            });
            continue;
        }
        let reading = Reading {
            store,
            repository,
            source_date_epoch,
            timeouts,
        };
        let (contents, _) = contents(reading, &one).await?;
        let document = match what {
            Shown::Spdx => serde_json::to_vec(&super::document(&contents)),
            Shown::CycloneDx => serde_json::to_vec(&super::cyclonedx::bom(&contents)),
            Shown::Provenance => {
                // Not built here: the run is unknown, its times the image's `created`.
                let run = Invocation {
                    builder: "unknown".into(),
                    id: String::new(),
                    started_on: contents.created.clone(),
                    finished_on: contents.created.clone(),
                };
                let statement = super::provenance::statement(&contents, &one.config, &run);
                serde_json::to_vec(&statement)
            }
        };
        shown.push(PlatformDocument {
            platform: one.platform,
            attached: false,
            document: document.expect("serialises"),
        });
    }
    Ok(shown)
}
