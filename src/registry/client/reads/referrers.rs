//! The referrers API (OCI distribution-spec 1.1, `GET /v2/<name>/referrers/<digest>`): the
//! index of the manifests whose `subject` is a digest. A registry without it answers 404
//! (the distribution registry 2.x does): its referrers are then kept under the referrers
//! tag schema's `sha256-<hex>` tag instead (see `crate::publish::referrers`). oci-client's
//! `pull_referrers` falls back to that tag by itself, so it cannot say which one a
//! registry has: asked here, with the client's credentials, retries and bounds.

use super::super::{Failure, RegistryClient, reference};
use crate::oci::manifest::MANIFEST_LIMIT;
use crate::oci::{Digest, ImageRef};
use crate::registry::body;
use crate::registry::client::{Operation, RegistryError};

impl RegistryClient {
    /// The referrers API's index of `subject` in `image`'s repository, as sent; `None` when
    /// the registry has no referrers API (it answers 404).
    pub async fn referrers(
        &self,
        image: &ImageRef,
        subject: &Digest,
    ) -> Result<Option<bytes::Bytes>, RegistryError> {
        let reference = reference(image);
        let reference = &reference;
        let url = self.v2_url(reference, "referrers", subject.as_str());
        let url = &url;
        self.retry(
            image,
            Operation::ReadManifest,
            false,
            |activity, _, auth| async move {
                let accept = oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE;
                let response = self
                    .send_read(reference, &auth, |c| {
                        c.get(url).header(http::header::ACCEPT, accept)
                    })
                    .await?;
                if response.status() == http::StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                if !response.status().is_success() {
                    return Err(super::error_answer(response, url).await.into());
                }
                let body = body::read_limited(response, MANIFEST_LIMIT, Some(&activity));
                Ok(Some(body.await.map_err(Failure::from)?))
            },
        )
        .await
    }
}

impl RegistryClient {
    /// The referrers of `subject` in `image`'s repository: the referrers API's index, else
    /// the one under the referrers tag schema's tag (none there: no referrers).
    pub async fn referrers_listed(
        &self,
        image: &ImageRef,
        subject: &Digest,
    ) -> Result<Vec<oci_client::manifest::ImageIndexEntry>, RegistryError> {
        let bytes = match self.referrers(image, subject).await? {
            Some(bytes) => bytes,
            None => {
                let tag = crate::oci::image::artifact::fallback_tag(subject);
                match self.manifest(&image.with_tag(tag)).await {
                    Ok(raw) => raw.bytes,
                    Err(e) if e.not_found() => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                }
            }
        };
        // Entries that do not parse are not referrers this client can use.
        let index: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let entries = index.get("manifests").and_then(serde_json::Value::as_array);
        Ok(entries
            .into_iter()
            .flatten()
            .filter_map(|e| serde_json::from_value(e.clone()).ok())
            .collect())
    }
}
