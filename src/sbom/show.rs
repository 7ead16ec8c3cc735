//! `imagespec sbom`: the SBOM attached to each platform of an image, or, where none is,
//! the one attaching would give, computed from the image now.

use super::image::{PlatformImage, SbomError, Store, attached, contents, platform_images};
use crate::oci::{ImageRef, Platform};
use crate::registry::client::RegistryClient;
use crate::timeouts::Timeouts;

/// One platform's SBOM.
#[derive(Debug, Clone)]
pub struct Shown {
    pub platform: Option<Platform>,
    /// Attached to the image (else computed now).
    pub attached: bool,
    /// The SPDX JSON document, as attached (or as attaching would write it).
    pub document: Vec<u8>,
}

/// The SBOM of each platform of `image` (only `platform`'s, when given).
pub async fn show(
    client: &RegistryClient,
    image: &ImageRef,
    platform: Option<&Platform>,
    source_date_epoch: Option<&str>,
    timeouts: Timeouts,
) -> Result<Vec<Shown>, SbomError> {
    let digest = client
        .digest(image)
        .await?
        .ok_or_else(|| SbomError::NotFound {
            image: image.clone(),
        })?;
    let store = Store::Registry { client, image };
    let repository = image.name();
    let wanted = |i: &PlatformImage| platform.is_none() || i.platform.as_ref() == platform;
    let mut shown = Vec::new();
    for one in platform_images(store, &digest)
        .await?
        .into_iter()
        .filter(wanted)
    {
        if let Some(document) = attached(client, image, &one.descriptor.digest).await? {
            shown.push(Shown {
                platform: one.platform,
                attached: true,
                document,
            });
            continue;
        }
        let contents = contents(store, repository, &one, source_date_epoch, timeouts).await?;
        let document = serde_json::to_vec(&super::document(&contents)).expect("serialises");
        shown.push(Shown {
            platform: one.platform,
            attached: false,
            document,
        });
    }
    Ok(shown)
}
