//! Publishing to a registry, as go-containerregistry's `remote.Write`: every layer blob is
//! made present in the target repository (found there, mounted from another repository of
//! the same registry, copied from another registry, or uploaded streamed from its file),
//! then the config, then the manifest last: an interrupted push never publishes the tag.
//! An index's images are pushed by digest, and the index last under the tag.
//!
//! ```no_run
//! # async fn f(client: &imagespec::registry::RegistryClient, image: &imagespec::oci::Image)
//! # -> Result<(), imagespec::publish::PublishError> {
//! use imagespec::publish::{Check, Publisher, registry::Registry};
//! let name: imagespec::oci::ImageRef = "localhost:5000/app:v1".parse().expect("a name");
//! let digest = Registry::new(client, &name).publish(image, Check::none()).await?;
//! println!("pushed {digest}");
//! # Ok(()) }
//! ```

use super::{Check, PublishError, Publisher};
use crate::oci::image::{Blob, Layer};
use crate::oci::{Digest, Image, ImageRef, Index};
use crate::progress::Progress;
use crate::registry::client::RegistryClient;

/// How many layer blobs are made present at once (go-containerregistry's `remote.Write`
/// default is 4): an image of 30 package layers is not 30 round trips one after another,
/// and one large upload does not hold up the small ones behind it.
const LAYER_JOBS: usize = 4;

/// A registry repository to push to, under `name`'s tag.
pub struct Registry<'a> {
    client: &'a RegistryClient,
    /// `registry/repository:tag`.
    name: &'a ImageRef,
    /// Where blobs of another registry are read from (else from `client`).
    source: Option<&'a RegistryClient>,
    /// The step whose meters hear the bytes of each upload.
    meter: Option<(&'a Progress, &'static str)>,
}

/// How a manifest is pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// Under the name's tag.
    Tag,
    /// By its digest only (a platform's manifest, which an index names).
    Digest,
}

/// A pushed manifest.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: Digest,
    /// The layers that had to be uploaded (the others were in the registry).
    pub uploaded: Vec<Digest>,
}

impl<'a> Registry<'a> {
    /// Pushes to `name` (`registry/repository:tag`) through `client`.
    pub fn new(client: &'a RegistryClient, name: &'a ImageRef) -> Registry<'a> {
        Registry {
            client,
            name,
            source: None,
            meter: None,
        }
    }

    /// Reads blobs that are in another registry (a base image's) with `source`.
    pub fn copying_from(mut self, source: &'a RegistryClient) -> Registry<'a> {
        self.source = Some(source);
        self
    }

    /// Reports the bytes of each upload to `progress`'s step `step`.
    pub fn metered(mut self, progress: &'a Progress, step: &'static str) -> Registry<'a> {
        self.meter = Some((progress, step));
        self
    }

    fn meter(&self, digest: &Digest, size: u64) -> Option<crate::progress::Meter> {
        self.meter
            .map(|(progress, step)| progress.meter(step, digest.as_str(), size))
    }

    /// Makes `layer`'s blob present in the repository; whether it was uploaded.
    async fn put_layer(&self, layer: &Layer) -> Result<bool, PublishError> {
        let (digest, size) = (&layer.descriptor.digest, layer.descriptor.size);
        match &layer.blob {
            Blob::File(file) => Ok(self
                .client
                .push_blob_file(
                    self.name,
                    file.path(),
                    digest.as_str(),
                    size,
                    self.meter(digest, size),
                )
                .await?),
            Blob::Bytes(bytes) => Ok(self
                .client
                .push_blob_bytes(self.name, bytes.clone(), digest.as_str())
                .await?),
            Blob::Remote(from) => self.copy_remote(from, digest, size).await,
        }
    }

    /// A blob of the image `from`: nothing to do when that is this repository (a
    /// dependency image's layers, under another tag); else found here, mounted (same
    /// registry) or copied through a file.
    async fn copy_remote(
        &self,
        from: &ImageRef,
        digest: &Digest,
        size: u64,
    ) -> Result<bool, PublishError> {
        if from.name() == self.name.name()
            || self.client.has_blob(self.name, digest.as_str()).await?
        {
            return Ok(false);
        }
        if from.host() == self.name.host()
            && self
                .client
                .mount_blob(self.name, from, digest.as_str())
                .await
        {
            return Ok(false);
        }
        let io = |context: &str| {
            let context = context.to_string();
            move |source| PublishError::Io { context, source }
        };
        let copies = tempfile::tempdir().map_err(io("a temporary directory"))?;
        let file = copies.path().join(digest.file_name());
        let source = self.source.unwrap_or(self.client);
        source
            .blob_to_file(from, digest.as_str(), Some(size), &file, None)
            .await?;
        self.client
            .push_blob_file(
                self.name,
                &file,
                digest.as_str(),
                size,
                self.meter(digest, size),
            )
            .await?;
        Ok(true)
    }

    /// Pushes `image`: its blobs, then (once `check` holds, which runs meanwhile) the
    /// manifest, under the tag or by digest.
    pub async fn push(
        &self,
        image: &Image,
        reference: Reference,
        check: Check,
    ) -> Result<Pushed, PublishError> {
        let checked = check.start();
        let layers = async {
            use futures_util::{StreamExt as _, TryStreamExt as _};
            let put: Vec<(bool, &Layer)> =
                futures_util::stream::iter(image.layers().iter().map(|layer| async move {
                    Ok::<_, PublishError>((self.put_layer(layer).await?, layer))
                }))
                .buffered(LAYER_JOBS)
                .try_collect()
                .await?;
            Ok::<_, PublishError>(
                put.into_iter()
                    .filter(|(uploaded, _)| *uploaded)
                    .map(|(_, layer)| layer.descriptor.digest.clone())
                    .collect::<Vec<_>>(),
            )
        };
        let config = self.client.push_blob_bytes(
            self.name,
            image.config_bytes().clone(),
            image.config_descriptor().digest.as_str(),
        );
        let (uploaded, config) = tokio::join!(layers, config);
        let uploaded = uploaded?;
        config?;
        checked.finish().await?;
        let body = image.manifest_bytes();
        let digest = Digest::of_bytes(&body);
        match reference {
            Reference::Tag => {
                self.client
                    .push_manifest(self.name, body.into(), image.media_type())
                    .await?
            }
            Reference::Digest => {
                self.client
                    .push_manifest_by_digest(
                        self.name,
                        body.into(),
                        image.media_type(),
                        digest.as_str(),
                    )
                    .await?
            }
        }
        Ok(Pushed { digest, uploaded })
    }

    /// Pushes `index` under the tag, after its images (by digest) and `check`.
    pub async fn push_index(&self, index: &Index, check: Check) -> Result<Digest, PublishError> {
        let checked = check.start();
        for entry in &index.manifests {
            if let Some(image) = &entry.image {
                self.push(image, Reference::Digest, Check::none()).await?;
            }
        }
        checked.finish().await?;
        let body = index.to_bytes();
        let digest = Digest::of_bytes(&body);
        self.client
            .push_manifest(self.name, body.into(), index.media_type())
            .await?;
        Ok(digest)
    }
}

impl Publisher for Registry<'_> {
    async fn publish(&self, image: &Image, check: Check) -> Result<Digest, PublishError> {
        Ok(self.push(image, Reference::Tag, check).await?.digest)
    }

    async fn publish_index(&self, index: &Index, check: Check) -> Result<Digest, PublishError> {
        self.push_index(index, check).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository(image: &str) -> String {
        image.parse::<ImageRef>().unwrap().name().to_string()
    }

    #[test]
    fn a_repository_is_the_name_without_tag_or_digest() {
        assert_eq!(
            repository("localhost:5000/a/b:deps-1"),
            "localhost:5000/a/b"
        );
        assert_eq!(repository("localhost:5000/a/b"), "localhost:5000/a/b");
        assert_eq!(
            repository("ghcr.io/a/b@sha256:0123456789abcdef0123456789abcdef"),
            "ghcr.io/a/b",
            "a digest's colon is not a tag's"
        );
        assert_ne!(
            repository("localhost:5000/a/b:1"),
            repository("localhost:5000/a/c:1")
        );
    }
}
