//! The OCI distribution client (oci-client): does a tag exist — asked of the registry
//! directly, so deciding that nothing needs building takes no daemon — and what the fast
//! path needs: manifests (Docker schema 2 and OCI, indexes resolved to a platform), blobs
//! uploaded streamed from disk and skipped when present, manifests pushed last.
//!
//! Every request, the existence HEAD included, has a connect timeout and a stall timeout
//! ([`crate::timeouts`]: no byte moved for that long, however long the whole transfer
//! takes), and is retried with backoff when the failure may pass (cannot connect, 5xx,
//! 429, a stall). All of them are idempotent: blobs are content-addressed and a manifest PUT
//! of the same bytes writes the same tag.
//!
//! Plain HTTP is used for `localhost`/`127.0.0.1` registries and those listed in
//! `IMAGESPEC_INSECURE_REGISTRIES` (comma-separated hosts), TLS otherwise.

use crate::registry::auth::Credentials;
use crate::timeouts::{Activity, Stalled, Timeouts, unless_stalled};
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
    host: String,
    timeouts: Timeouts,
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
    pub fn new(
        host: &str,
        credentials: Option<&Credentials>,
        timeouts: Timeouts,
    ) -> RegistryClient {
        let protocol = if insecure(host) {
            ClientProtocol::HttpsExcept(vec![host.to_string()])
        } else {
            ClientProtocol::Https
        };
        // One PUT per blob: the distribution registry takes it in one round trip, where the
        // chunked protocol needs three. No `read_timeout`: reqwest counts it from the start
        // of the request until the answer's head, so it would cut a long upload; stalls are
        // caught by `unless_stalled` instead.
        let client = Client::new(ClientConfig {
            protocol,
            use_monolithic_push: true,
            connect_timeout: Some(timeouts.connect),
            ..Default::default()
        });
        let auth = match credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        RegistryClient {
            client,
            auth,
            host: host.to_string(),
            timeouts,
        }
    }

    /// The timeouts this client's requests have.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// HEAD of the manifest: does `image` (`registry/repo:tag`) exist? Retried like every
    /// request; what is left after the retries is "cannot tell", with the reason.
    pub async fn exists(&self, image: &str) -> Existence {
        let reference = reference(image);
        let asked = self
            .retry(image, "HEAD of the manifest", |_| {
                self.client.fetch_manifest_digest(&reference, &self.auth)
            })
            .await;
        match asked {
            Ok(_) => Existence::Yes,
            Err(e) if e.not_found => Existence::No,
            Err(e) => Existence::Unknown(format!("{}: {}", e.what, e.message)),
        }
    }
}

impl RegistryClient {
    /// The digest of `image`'s manifest (or index) as the registry stores it, or `None` when
    /// the registry does not have it.
    pub async fn digest(&self, image: &str) -> Result<Option<String>, RegistryError> {
        let reference = reference(image);
        let asked = self
            .retry(image, "HEAD of the manifest", |_| {
                self.client.fetch_manifest_digest(&reference, &self.auth)
            })
            .await;
        match asked {
            Ok(digest) => Ok(Some(digest)),
            Err(e) if e.not_found => Ok(None),
            Err(e) => Err(e),
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

/// Why one attempt of a request failed.
enum Failure {
    Registry(oci_client::errors::OciDistributionError),
    Stalled(Stalled),
}

/// Whether trying again may help.
fn transient(failure: &Failure) -> bool {
    use oci_client::errors::OciDistributionError as E;
    match failure {
        Failure::Stalled(_) => true,
        Failure::Registry(E::RequestError(r)) => {
            r.is_connect()
                || r.is_timeout()
                || r.is_request()
                || r.status()
                    .is_some_and(|s| s.is_server_error() || s.as_u16() == 429)
        }
        Failure::Registry(E::ServerError { code, .. }) => *code >= 500 || *code == 429,
        Failure::Registry(E::IoError(_)) => true,
        Failure::Registry(_) => false,
    }
}

/// Whether the registry answered that the manifest or repository does not exist.
fn not_found(failure: &Failure) -> bool {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode as C};
    match failure {
        Failure::Registry(E::ImageManifestNotFoundError(_)) => true,
        Failure::Registry(E::RegistryError { envelope, .. }) => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, C::ManifestUnknown | C::NameUnknown)),
        _ => false,
    }
}

impl RegistryClient {
    /// What went wrong, in words a user can act on (never with the credentials).
    fn describe(&self, failure: &Failure) -> String {
        use oci_client::errors::{OciDistributionError as E, OciErrorCode as C};
        let host = &self.host;
        let refused = || match self.auth {
            RegistryAuth::Anonymous => format!(
                "{host} asks for credentials and none were found: `docker login {host}`, or \
                 the spec's `registry_config`"
            ),
            _ => format!(
                "{host} refused the credentials: check them (`docker login {host}`, or the \
                 spec's `registry_config`)"
            ),
        };
        match failure {
            Failure::Stalled(stalled) => format!(
                "{host} stalled: {stalled} (--stall-timeout / {})",
                crate::timeouts::STALL_TIMEOUT_ENV
            ),
            Failure::Registry(E::AuthenticationFailure(_) | E::UnauthorizedError { .. }) => {
                format!("401 Unauthorized: {}", refused())
            }
            Failure::Registry(E::RegistryError { envelope, .. })
                if envelope
                    .errors
                    .iter()
                    .any(|e| matches!(e.code, C::Unauthorized | C::Denied)) =>
            {
                format!("access denied: {}", refused())
            }
            Failure::Registry(E::RequestError(r)) if r.is_connect() && r.is_timeout() => format!(
                "cannot connect to {host}: no connection within {} (--connect-timeout / {})",
                crate::timeouts::seconds(self.timeouts.connect),
                crate::timeouts::CONNECT_TIMEOUT_ENV
            ),
            Failure::Registry(E::RequestError(r)) if r.is_connect() => {
                // The innermost cause says it ("Connection refused"); the wrappers do not.
                let mut cause: &(dyn std::error::Error + 'static) = r;
                while let Some(next) = cause.source() {
                    cause = next;
                }
                format!("cannot connect to {host}: {cause}")
            }
            Failure::Registry(e) => with_causes(e),
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are used up. Each
    /// attempt gets a fresh [`Activity`] to touch as its bytes move, and is given up when
    /// it shows no sign of life for the stall timeout.
    async fn retry<T, F, Fut>(
        &self,
        image: &str,
        what: &str,
        mut attempt: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut(Activity) -> Fut,
        Fut: std::future::Future<Output = oci_client::errors::Result<T>>,
    {
        let mut pause = FIRST_BACKOFF_MS;
        let mut tries = 0;
        loop {
            let activity = Activity::new();
            let outcome = unless_stalled(attempt(activity.clone()), &activity, self.timeouts.stall)
                .await
                .map_err(Failure::Stalled)
                .and_then(|r| r.map_err(Failure::Registry));
            match outcome {
                Ok(v) => return Ok(v),
                Err(e) if tries < RETRIES && transient(&e) => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                    pause *= 2;
                }
                Err(e) => {
                    let mut message = self.describe(&e);
                    if tries > 0 {
                        message.push_str(&format!(" ({} attempts)", tries + 1));
                    }
                    return Err(RegistryError {
                        image: image.to_string(),
                        what: what.to_string(),
                        message,
                        not_found: not_found(&e),
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
            .retry(image, "reading the manifest", |_| {
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
        self.retry(image, &format!("reading blob {digest}"), |activity| async {
            let mut out = Touching::new(Vec::new(), activity);
            let descriptor = oci_client::manifest::OciDescriptor {
                digest: digest.to_string(),
                ..Default::default()
            };
            self.client
                .pull_blob(&reference, &descriptor, &mut out)
                .await?;
            Ok(out.inner)
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
        self.retry(image, &format!("reading blob {digest}"), |activity| async {
            let mut file = Touching::new(tokio::fs::File::create(out).await?, activity);
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
        self.retry(image, &format!("checking blob {digest}"), |_| {
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
        self.retry(
            image,
            &format!("uploading blob {digest}"),
            |activity| async {
                let file = tokio::fs::File::open(path).await?;
                // A chunk taken by the connection is a sign of life: the registry reads.
                let stream = futures_util::StreamExt::inspect(
                    futures_util::TryStreamExt::map_err(
                        tokio_util::io::ReaderStream::with_capacity(file, 1 << 20),
                        oci_client::errors::OciDistributionError::from,
                    ),
                    move |_| activity.touch(),
                );
                self.client
                    .push_blob_stream(&reference, stream, digest, Some(size))
                    .await
            },
        )
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
        self.retry(image, &format!("uploading blob {digest}"), |_| {
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
        self.retry(image, "pushing the manifest", |_| {
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
        self.retry(image, "pushing a platform manifest", |_| {
            self.client
                .push_manifest_raw(&reference, body.clone(), content_type.clone())
        })
        .await?;
        Ok(())
    }
}

/// A writer that records each write as a sign of life of the download feeding it.
struct Touching<W> {
    inner: W,
    activity: Activity,
}

impl<W> Touching<W> {
    fn new(inner: W, activity: Activity) -> Touching<W> {
        Touching { inner, activity }
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Touching<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.activity.touch();
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl RegistryClient {
    /// Asks the registry to mount blob `digest` from `from` (another repository of the same
    /// registry) into `image`'s repository; `false` when it would not (the blob must then
    /// be uploaded).
    pub async fn mount_blob(&self, image: &str, from: &str, digest: &str) -> bool {
        let target = reference(image);
        let source = reference(from);
        self.client
            .store_auth_if_needed(target.resolve_registry(), &self.auth)
            .await;
        self.client
            .mount_blob(&target, &source, digest)
            .await
            .is_ok()
            && self.has_blob(image, digest).await.unwrap_or(false)
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
    use oci_client::errors::OciDistributionError as E;

    #[test]
    fn what_is_retried_and_what_is_not_found() {
        let server = |code| {
            Failure::Registry(E::ServerError {
                code,
                url: "http://r/v2/x/manifests/t".into(),
                message: String::new(),
            })
        };
        let unknown_manifest = || {
            let envelope: oci_client::errors::OciEnvelope = serde_json::from_str(
                r#"{"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown", "detail": null}]}"#,
            )
            .expect("envelope");
            Failure::Registry(E::RegistryError {
                envelope,
                url: String::new(),
            })
        };
        let stalled = Failure::Stalled(Stalled(std::time::Duration::from_secs(3)));
        for (failure, retried, not_found_) in [
            (stalled, true, false),
            (server(503), true, false),
            (server(500), true, false),
            (server(429), true, false),
            (server(404), false, false),
            (
                Failure::Registry(E::UnauthorizedError { url: String::new() }),
                false,
                false,
            ),
            (unknown_manifest(), false, true),
        ] {
            assert_eq!(
                (transient(&failure), not_found(&failure)),
                (retried, not_found_)
            );
        }
    }

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
