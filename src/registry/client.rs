//! The OCI distribution client (oci-client): does a tag exist — asked of the registry
//! directly, so deciding that nothing needs building takes no daemon — and what the fast
//! path needs: manifests (Docker schema 2 and OCI, indexes resolved to a platform), blobs
//! uploaded streamed from disk and skipped when present, manifests pushed last. Transient
//! failures (connection errors, 5xx, 429) are retried with backoff.
//!
//! Plain HTTP is used for `localhost`/`127.0.0.1` registries and those listed in
//! `IMAGESPEC_INSECURE_REGISTRIES` (comma-separated hosts), TLS otherwise.

use crate::registry::auth::Credentials;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

/// Whether a tag exists (flytekit's `exist()`: yes, no, or cannot tell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existence {
    Yes,
    No,
    Unknown(String),
}

/// `registry/repository:tag` as an oci-client reference, split the way Docker splits it.
/// (Parsing with `Reference::from_str` compiles the full reference grammar's regexes on every
/// run: most of a no-op `build`'s time.)
fn reference(image: &str) -> Reference {
    let host = super::registry_host(image);
    let rest = image
        .strip_prefix(host)
        .map_or(image, |r| r.trim_start_matches('/'));
    let (repository, tag) = super::split_tag(rest);
    let repository = if host == "docker.io" && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository.to_string()
    };
    Reference::with_tag(
        host.to_string(),
        repository,
        tag.unwrap_or("latest").to_string(),
    )
}

/// An error and its causes on one line (reqwest's own message says only "error sending
/// request"; the cause says why, e.g. an untrusted certificate).
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    text
}

/// A client for one registry.
pub struct RegistryClient {
    client: Client,
    auth: RegistryAuth,
}

fn insecure(host: &str) -> bool {
    let name = host.split(':').next().unwrap_or(host);
    name == "localhost"
        || name == "127.0.0.1"
        || name == "[::1]"
        || std::env::var("IMAGESPEC_INSECURE_REGISTRIES")
            .is_ok_and(|v| v.split(',').any(|h| h.trim() == host))
}

impl RegistryClient {
    /// A client for `host` with optional credentials.
    pub fn new(host: &str, credentials: Option<&Credentials>) -> RegistryClient {
        let protocol = if insecure(host) {
            ClientProtocol::HttpsExcept(vec![host.to_string()])
        } else {
            ClientProtocol::Https
        };
        // One PUT per blob: the distribution registry takes it in one round trip, where the
        // chunked protocol needs three.
        let client = Client::new(ClientConfig {
            protocol,
            use_monolithic_push: true,
            ..Default::default()
        });
        let auth = match credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        RegistryClient { client, auth }
    }

    /// HEAD of the manifest: does `image` (`registry/repo:tag`) exist?
    pub async fn exists(&self, image: &str) -> Existence {
        let reference = reference(image);
        use oci_client::errors::{OciDistributionError as E, OciErrorCode as C};
        match self
            .client
            .fetch_manifest_digest(&reference, &self.auth)
            .await
        {
            Ok(_) => Existence::Yes,
            Err(E::ImageManifestNotFoundError(_)) => Existence::No,
            Err(E::RegistryError { envelope, .. })
                if envelope
                    .errors
                    .iter()
                    .any(|e| matches!(e.code, C::ManifestUnknown | C::NameUnknown)) =>
            {
                Existence::No
            }
            Err(E::AuthenticationFailure(_)) => Existence::Unknown(
                "authentication failed: check the credentials for this registry".into(),
            ),
            Err(e) => Existence::Unknown(with_causes(&e)),
        }
    }
}

/// A registry request that failed (after retries, when it was worth retrying).
#[derive(Debug, thiserror::Error)]
#[error("registry {image}: {what}: {message}")]
pub struct RegistryError {
    pub image: String,
    pub what: String,
    pub message: String,
    /// The registry answered that the manifest or repository does not exist.
    pub not_found: bool,
}

/// Manifest media types the client accepts.
const MANIFEST_TYPES: [&str; 4] = [
    oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
    oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
];

/// A manifest as the registry stores it.
#[derive(Debug, Clone)]
pub struct RawManifest {
    pub bytes: bytes::Bytes,
    /// `sha256:…` of `bytes`.
    pub digest: String,
    pub manifest: oci_client::manifest::OciManifest,
}

/// How many times a transient failure is tried again, and the first pause (doubled each time).
const RETRIES: u32 = 3;
const FIRST_BACKOFF_MS: u64 = 300;

fn transient(e: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::OciDistributionError as E;
    match e {
        E::RequestError(r) => {
            r.is_connect()
                || r.is_timeout()
                || r.is_request()
                || r.status()
                    .is_some_and(|s| s.is_server_error() || s.as_u16() == 429)
        }
        E::ServerError { code, .. } => *code >= 500 || *code == 429,
        E::IoError(_) => true,
        _ => false,
    }
}

impl RegistryClient {
    /// Runs `attempt` until it succeeds, fails for good, or the retries are used up.
    async fn retry<T, F, Fut>(
        &self,
        image: &str,
        what: &str,
        mut attempt: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = oci_client::errors::Result<T>>,
    {
        let mut pause = FIRST_BACKOFF_MS;
        let mut tries = 0;
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) if tries < RETRIES && transient(&e) => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                    pause *= 2;
                }
                Err(e) => {
                    use oci_client::errors::{OciDistributionError as E, OciErrorCode as C};
                    let not_found = match &e {
                        E::ImageManifestNotFoundError(_) => true,
                        E::RegistryError { envelope, .. } => envelope
                            .errors
                            .iter()
                            .any(|e| matches!(e.code, C::ManifestUnknown | C::NameUnknown)),
                        _ => false,
                    };
                    let message = match &e {
                        oci_client::errors::OciDistributionError::AuthenticationFailure(_) => {
                            "authentication failed: check the credentials for this registry"
                                .to_string()
                        }
                        _ => with_causes(&e),
                    };
                    return Err(RegistryError {
                        image: image.to_string(),
                        what: what.to_string(),
                        message,
                        not_found,
                    });
                }
            }
        }
    }

    /// The manifest `image` names (a tag or `@digest`), as stored.
    pub async fn manifest(&self, image: &str) -> Result<RawManifest, RegistryError> {
        let reference = reference(image);
        self.manifest_of(image, &reference).await
    }

    async fn manifest_of(
        &self,
        image: &str,
        reference: &Reference,
    ) -> Result<RawManifest, RegistryError> {
        let (bytes, digest) = self
            .retry(image, "reading the manifest", || {
                self.client
                    .pull_manifest_raw(reference, &self.auth, &MANIFEST_TYPES)
            })
            .await?;
        let manifest = serde_json::from_slice(&bytes).map_err(|e| RegistryError {
            image: image.to_string(),
            what: "reading the manifest".into(),
            message: e.to_string(),
            not_found: false,
        })?;
        Ok(RawManifest {
            bytes,
            digest,
            manifest,
        })
    }

    /// The manifest `digest` in `image`'s repository, as stored.
    pub async fn manifest_by_digest(
        &self,
        image: &str,
        digest: &str,
    ) -> Result<RawManifest, RegistryError> {
        let by_digest = reference(image).clone_with_digest(digest.to_string());
        self.manifest_of(image, &by_digest).await
    }

    /// The image manifest of `image` for `platform` (`os/arch[/variant]`): the manifest
    /// itself, or the matching entry of an index.
    pub async fn image_manifest(
        &self,
        image: &str,
        platform: &str,
    ) -> Result<(RawManifest, oci_client::manifest::OciImageManifest), RegistryError> {
        use oci_client::manifest::OciManifest;
        let raw = self.manifest(image).await?;
        match &raw.manifest {
            OciManifest::Image(m) => {
                let m = m.clone();
                Ok((raw, m))
            }
            OciManifest::ImageIndex(index) => {
                let mut parts = platform.split('/');
                let (os, arch, variant) = (
                    parts.next().unwrap_or("linux"),
                    parts.next().unwrap_or("amd64"),
                    parts.next(),
                );
                let entry = index.manifests.iter().find(|e| {
                    e.platform.as_ref().is_some_and(|p| {
                        p.os.to_string() == os
                            && p.architecture.to_string() == arch
                            && (variant.is_none() || p.variant.as_deref() == variant)
                    })
                });
                let Some(entry) = entry else {
                    return Err(RegistryError {
                        image: image.into(),
                        what: "reading the manifest".into(),
                        message: format!("the index has no image for {platform}"),
                        not_found: true,
                    });
                };
                let by_digest = reference(image).clone_with_digest(entry.digest.clone());
                let raw = self.manifest_of(image, &by_digest).await?;
                match &raw.manifest {
                    OciManifest::Image(m) => {
                        let m = m.clone();
                        Ok((raw, m))
                    }
                    OciManifest::ImageIndex(_) => Err(RegistryError {
                        image: image.into(),
                        what: "reading the manifest".into(),
                        message: "an index inside an index".into(),
                        not_found: false,
                    }),
                }
            }
        }
    }

    /// A (small) blob's bytes, e.g. an image config.
    pub async fn blob(&self, image: &str, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let reference = reference(image);
        self.retry(image, &format!("reading blob {digest}"), || async {
            let mut out = Vec::new();
            let descriptor = oci_client::manifest::OciDescriptor {
                digest: digest.to_string(),
                ..Default::default()
            };
            self.client
                .pull_blob(&reference, &descriptor, &mut out)
                .await?;
            Ok(out)
        })
        .await
    }

    /// A blob streamed to `out` (a layer: not held in memory).
    pub async fn blob_to_file(
        &self,
        image: &str,
        digest: &str,
        out: &std::path::Path,
    ) -> Result<(), RegistryError> {
        let reference = reference(image);
        self.retry(image, &format!("reading blob {digest}"), || async {
            let mut file = tokio::fs::File::create(out).await?;
            let descriptor = oci_client::manifest::OciDescriptor {
                digest: digest.to_string(),
                ..Default::default()
            };
            self.client
                .pull_blob(&reference, &descriptor, &mut file)
                .await?;
            tokio::io::AsyncWriteExt::flush(&mut file).await?;
            Ok(())
        })
        .await
    }

    /// Whether the repository of `image` has the blob.
    pub async fn has_blob(&self, image: &str, digest: &str) -> Result<bool, RegistryError> {
        let reference = reference(image);
        self.retry(image, &format!("checking blob {digest}"), || {
            self.client.blob_exists(&reference, digest)
        })
        .await
    }

    /// Uploads the file at `path` as blob `digest`, streamed, unless the registry has it.
    /// Returns whether it was uploaded.
    pub async fn push_blob_file(
        &self,
        image: &str,
        path: &std::path::Path,
        digest: &str,
        size: u64,
    ) -> Result<bool, RegistryError> {
        if self.has_blob(image, digest).await? {
            return Ok(false);
        }
        let reference = reference(image);
        self.retry(image, &format!("uploading blob {digest}"), || async {
            let file = tokio::fs::File::open(path).await?;
            let stream = futures_util::TryStreamExt::map_err(
                tokio_util::io::ReaderStream::with_capacity(file, 1 << 20),
                oci_client::errors::OciDistributionError::from,
            );
            self.client
                .push_blob_stream(&reference, stream, digest, Some(size))
                .await
        })
        .await?;
        Ok(true)
    }

    /// Uploads `data` as blob `digest` unless the registry has it.
    pub async fn push_blob_bytes(
        &self,
        image: &str,
        data: bytes::Bytes,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        if self.has_blob(image, digest).await? {
            return Ok(false);
        }
        let reference = reference(image);
        self.retry(image, &format!("uploading blob {digest}"), || {
            self.client.push_blob(&reference, data.clone(), digest)
        })
        .await?;
        Ok(true)
    }

    /// Pushes a manifest under `image`'s tag: the last step of a push, so that an
    /// interrupted push never publishes a tag.
    pub async fn push_manifest(
        &self,
        image: &str,
        body: bytes::Bytes,
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let reference = reference(image);
        let content_type = reqwest_header(media_type);
        self.retry(image, "pushing the manifest", || {
            self.client
                .push_manifest_raw(&reference, body.clone(), content_type.clone())
        })
        .await?;
        Ok(())
    }
}

impl RegistryClient {
    /// Pushes a manifest by its digest, untagged (a platform's manifest inside an index).
    pub async fn push_manifest_by_digest(
        &self,
        image: &str,
        body: bytes::Bytes,
        media_type: &str,
        digest: &str,
    ) -> Result<(), RegistryError> {
        let reference = reference(image).clone_with_digest(digest.to_string());
        let content_type = reqwest_header(media_type);
        self.retry(image, "pushing a platform manifest", || {
            self.client
                .push_manifest_raw(&reference, body.clone(), content_type.clone())
        })
        .await?;
        Ok(())
    }
}

fn reqwest_header(media_type: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(media_type).unwrap_or_else(|_| {
        http::HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_without_the_grammar_regexes() {
        for (image, want) in [
            ("localhost:5000/a/b:t", "localhost:5000/a/b:t"),
            ("ghcr.io/org/x:1.0", "ghcr.io/org/x:1.0"),
            ("python:3.11", "docker.io/library/python:3.11"),
            ("user/app", "docker.io/user/app:latest"),
        ] {
            let fast = reference(image);
            let parsed: Reference = want.parse().expect("valid");
            assert_eq!(
                (fast.registry(), fast.repository(), fast.tag()),
                (parsed.registry(), parsed.repository(), parsed.tag()),
                "{image}"
            );
        }
    }
}
