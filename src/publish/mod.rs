//! Where a built image goes, as ko's `pkg/publish`: a [`Publisher`] takes an image value
//! ([`crate::oci::Image`], or an [`crate::oci::Index`] of several platforms) and makes it
//! visible under its name, returning the digest it has there, so the final digest comes
//! from the publish and not from another request. A publisher never knows how the image
//! was made (the fast path, the uv builder and dockerd's per-platform builds all end here).
//!
//! - `registry::Registry`: blobs uploaded (or mounted, or found in the repository),
//!   manifest put last, so an interrupted push never publishes the tag;
//! - [`layout::Layout`]: an OCI layout directory, an oci-archive or a docker-archive.
//!
//! A [`Check`] runs before the image becomes visible (before the manifest is put, or
//! `index.json` written): flytekit's check that the tag still matches the files.

pub mod layout;
pub mod referrers;
pub mod registry;

use crate::oci::{Digest, Image, Index};
use crate::registry::client::RegistryError;
use crate::tag::TagError;

/// A publish that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A request to the registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Writing the layout or archive failed.
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    /// The [`Check`] failed: nothing was made visible.
    #[error(transparent)]
    Check(#[from] TagError),
    /// A blob copied between registries: a file of this machine.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// What must still hold when the image becomes visible; runs on a blocking thread.
pub struct Check(Option<Box<dyn FnOnce() -> Result<(), TagError> + Send + 'static>>);

impl Check {
    /// Nothing to check.
    pub fn none() -> Check {
        Check(None)
    }

    /// `check` (it may read files: run on a blocking thread, while blobs upload).
    pub fn new(check: impl FnOnce() -> Result<(), TagError> + Send + 'static) -> Check {
        Check(Some(Box::new(check)))
    }

    /// Starts the check; the returned task says how it ended.
    fn start(self) -> Started {
        Started(self.0.map(tokio::task::spawn_blocking))
    }
}

/// A [`Check`] under way.
struct Started(Option<tokio::task::JoinHandle<Result<(), TagError>>>);

impl Started {
    async fn finish(self) -> Result<(), PublishError> {
        match self.0 {
            None => Ok(()),
            Some(task) => task.await.map_err(|e| PublishError::Io {
                context: "checking the tag".into(),
                source: std::io::Error::other(e.to_string()),
            })?,
        }
        .map_err(PublishError::from)
    }
}

/// Makes images visible under a name: a registry's tag, a layout's `index.json`, an
/// archive. Each returns the digest of what it published.
pub trait Publisher {
    /// Publishes `image`, after `check` holds.
    fn publish(
        &self,
        image: &Image,
        check: Check,
    ) -> impl Future<Output = Result<Digest, PublishError>>;

    /// Publishes every image of `index` and then `index` itself, after `check` holds.
    fn publish_index(
        &self,
        index: &Index,
        check: Check,
    ) -> impl Future<Output = Result<Digest, PublishError>>;
}
