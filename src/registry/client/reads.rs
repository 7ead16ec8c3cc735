//! What is read from a registry — manifests, blobs, the existence `HEAD` — is read here, on
//! reqwest, rather than through oci-client: oci-client holds a manifest's body and an error
//! answer's body whole however large they are (an endless one aborts the process), and
//! accepts any string as a descriptor's digest. Here every body has a bound
//! ([`MANIFEST_LIMIT`], [`CONFIG_LIMIT`], [`body::ERROR_BODY_LIMIT`]), every manifest passes
//! [`check_manifest`] before it is returned, and every blob is hashed as it streams and
//! refused when it is not the digest asked for.
//!
//! Credentials are the client's (basic, a docker token flow, an identity token), through
//! [`RegistryClient::send_with_credentials`]; a token is kept per scope for the next read.
//! A redirect (a blob served from object storage) is followed by reqwest, which drops the
//! `Authorization` header when the host or port changes.

use super::{AnswerError, Failure, MANIFEST_TYPES, RegistryClient, Scoped};
use crate::oci::Digest;
use crate::oci::manifest::{MANIFEST_LIMIT, ManifestError, check_manifest};
use crate::registry::body::{self, BodyError};
use crate::timeouts::Activity;
use oci_client::Reference;
use oci_client::errors::{OciDistributionError as E, OciEnvelope};
use oci_client::secrets::RegistryAuth;
use tokio::io::AsyncWriteExt;

mod referrers;

impl From<BodyError> for Failure {
    fn from(e: BodyError) -> Failure {
        match e {
            BodyError::Http(e) => Failure::Registry(E::RequestError(e)),
            e => Failure::Answer(AnswerError::Body(e)),
        }
    }
}

fn refused(e: ManifestError) -> Failure {
    Failure::Answer(AnswerError::Manifest(e))
}

impl RegistryClient {
    /// The HTTP client of reads: one per registry client, so connections are reused.
    pub(super) fn read_client(&self) -> Result<&reqwest::Client, E> {
        if let Some(c) = self.read_http.get() {
            return Ok(c);
        }
        let made = reqwest::Client::builder()
            .connect_timeout(self.timeouts.connect)
            .build()?;
        Ok(self.read_http.get_or_init(|| made))
    }

    /// Sends the read `request` with `auth` (what [`RegistryClient::access`] gave: a bearer
    /// token covering `reference`'s repository, or the basic credentials), answering a
    /// token challenge if the registry still sends one.
    async fn send_read(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
        request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, E> {
        self.send_as(reference, auth, "pull", request).await
    }

    /// [`RegistryClient::send_read`] for `actions` on the repository (`pull`, `pull,push`).
    pub(super) async fn send_as(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
        actions: &str,
        request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, E> {
        let http = self.read_client()?;
        let scope = format!("repository:{}:{actions}", reference.repository());
        let held = match auth {
            RegistryAuth::Bearer(token) => Some(token.clone()),
            _ => None,
        };
        let scoped = Scoped::new(http, scope, held);
        Ok(self
            .send_with_credentials(|| request(scoped.http), &scoped)
            .await?)
    }

    /// `…/v2/<repository>/<kind>/<tag or digest>`.
    fn v2_url(&self, reference: &Reference, kind: &str, name: &str) -> String {
        format!(
            "{}/v2/{}/{kind}/{name}",
            self.base_url(reference),
            reference.repository()
        )
    }

    pub(super) fn manifest_url(&self, reference: &Reference) -> String {
        let name = reference.digest().or(reference.tag()).unwrap_or("latest");
        self.v2_url(reference, "manifests", name)
    }

    /// The registry's successful answer to `method` on the manifest (any manifest type
    /// accepted), or the error its answer is.
    async fn manifest_answer(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
        method: http::Method,
    ) -> Result<reqwest::Response, Failure> {
        let url = self.manifest_url(reference);
        let accept = MANIFEST_TYPES.join(", ");
        let response = self
            .send_read(reference, auth, |c| {
                c.request(method.clone(), &url)
                    .header(http::header::ACCEPT, accept.as_str())
            })
            .await?;
        if !response.status().is_success() {
            return Err(error_answer(response, &url).await.into());
        }
        Ok(response)
    }

    /// `HEAD` of the manifest: its digest as the registry says it (`None` when it sends no
    /// `Docker-Content-Digest`); not found is an error with `not_found`.
    pub(super) async fn head_manifest(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
    ) -> Result<Option<Digest>, Failure> {
        let response = self
            .manifest_answer(reference, auth, http::Method::HEAD)
            .await?;
        // A registry answers with the type it stored: anything else is not a manifest.
        if let Some(kind) = header(&response, http::header::CONTENT_TYPE) {
            let kind = kind.split(';').next().unwrap_or("").trim();
            if !MANIFEST_TYPES.contains(&kind) {
                return Err(refused(ManifestError::MediaType(body::one_line(kind))));
            }
        }
        let Some(said) = response.headers().get("docker-content-digest") else {
            return Ok(None);
        };
        let digest =
            Digest::parse(said.to_str().unwrap_or("")).map_err(|source| AnswerError::Digest {
                what: "Docker-Content-Digest".into(),
                source,
            })?;
        if let Some(asked) = reference.digest()
            && digest.as_str() != asked
        {
            return Err(AnswerError::OtherManifest {
                asked: asked.to_string(),
                answered: digest,
            }
            .into());
        }
        Ok(Some(digest))
    }

    /// `GET` of the manifest: at most [`MANIFEST_LIMIT`], its digest checked against the
    /// registry's header and the digest asked for, its content by [`check_manifest`].
    pub(super) async fn get_manifest(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
        activity: &Activity,
    ) -> Result<super::RawManifest, Failure> {
        let response = self
            .manifest_answer(reference, auth, http::Method::GET)
            .await?;
        let content_type = header(&response, http::header::CONTENT_TYPE);
        let said = header(&response, "docker-content-digest");
        let bytes = match body::read_limited(response, MANIFEST_LIMIT, Some(activity)).await {
            Err(BodyError::TooLarge { limit }) => {
                return Err(refused(ManifestError::TooLarge { limit }));
            }
            other => other?,
        };
        let digest = Digest::of_bytes(&bytes);
        for (whose, expected) in [
            ("the registry's digest", said.as_deref()),
            ("the digest asked for", reference.digest()),
        ] {
            let Some(expected) = expected else { continue };
            let expected = Digest::parse(expected).map_err(|source| AnswerError::Digest {
                what: whose.into(),
                source,
            })?;
            let mut actual = expected.verifier();
            actual.update(&bytes);
            if actual.finish() != expected {
                return Err(AnswerError::ManifestContent {
                    whose,
                    expected,
                    actual: digest,
                }
                .into());
            }
        }
        let manifest = check_manifest(&bytes, content_type.as_deref()).map_err(refused)?;
        Ok(super::RawManifest {
            bytes,
            digest,
            manifest,
        })
    }

    /// `GET` of the blob into `out`, hashed as it streams; refused past its limit, or when
    /// its content is not its digest. `received` hears the bytes so far.
    pub(super) async fn get_blob<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
        blob: Blob<'_>,
        out: &mut W,
        activity: &Activity,
        received: Option<crate::progress::Meter>,
    ) -> Result<(), Failure> {
        let digest = blob.digest;
        let url = self.v2_url(reference, "blobs", digest.as_str());
        let mut response = self.send_read(reference, auth, |c| c.get(&url)).await?;
        if !response.status().is_success() {
            return Err(error_answer(response, &url).await.into());
        }
        let too_large = |limit: Limit| -> Failure {
            AnswerError::BlobTooLarge {
                digest: digest.clone(),
                limit,
            }
            .into()
        };
        if let Some(limit) = blob.limit
            && response.content_length().is_some_and(|n| n > limit.bytes)
        {
            return Err(too_large(limit));
        }
        let mut verifier = digest.verifier();
        let mut so_far = 0u64;
        while let Some(chunk) = response.chunk().await? {
            activity.touch();
            so_far += chunk.len() as u64;
            if let Some(limit) = blob.limit
                && so_far > limit.bytes
            {
                return Err(too_large(limit));
            }
            verifier.update(&chunk);
            out.write_all(&chunk).await?;
            if let Some(received) = &received {
                received(so_far);
            }
        }
        let actual = verifier.finish();
        if &actual != digest {
            return Err(AnswerError::BlobContent {
                digest: digest.clone(),
                actual,
            }
            .into());
        }
        Ok(())
    }
}

/// A blob to read: its digest, and how much of it may come.
pub(super) struct Blob<'a> {
    pub digest: &'a Digest,
    pub limit: Option<Limit>,
}

/// How much of a blob is read: the size its descriptor declares, or a cap of ours.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    bytes: u64,
    declared: bool,
}

impl Limit {
    pub(super) fn new(bytes: u64, declared: bool) -> Limit {
        Limit { bytes, declared }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.declared {
            write!(f, "is larger than its descriptor's {} bytes", self.bytes)
        } else {
            write!(
                f,
                "is larger than {}",
                crate::oci::manifest::size(self.bytes)
            )
        }
    }
}

fn header(
    response: &reqwest::Response,
    name: impl reqwest::header::AsHeaderName,
) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The error a non-success answer is: distribution's error envelope when the body is one
/// (read up to [`body::ERROR_BODY_LIMIT`]), else by the status alone.
pub(super) async fn error_answer(response: reqwest::Response, url: &str) -> E {
    let status = response.status().as_u16();
    let text = body::read_prefix(response).await;
    let envelope = serde_json::from_str::<OciEnvelope>(&text)
        .ok()
        .filter(|e| !e.errors.is_empty())
        .map(|mut e| {
            // The registry's words go into a message: one short line each.
            e.errors.truncate(3);
            for error in &mut e.errors {
                error.message = body::one_line(&error.message);
                error.detail = serde_json::Value::Null;
            }
            e
        });
    match (status, envelope) {
        (401, _) => E::UnauthorizedError { url: url.into() },
        // A server error or a rate limit is retried (`transient`) whatever its body says:
        // a 503 with an error envelope is as passing as one without.
        (code, _) if code >= 500 || code == 429 => E::ServerError {
            code,
            url: url.into(),
            message: body::one_line(&text),
        },
        (_, Some(envelope)) => E::RegistryError {
            envelope,
            url: url.into(),
        },
        (404, None) => E::ImageManifestNotFoundError(url.into()),
        (code, None) => E::ServerError {
            code,
            url: url.into(),
            message: body::one_line(&text),
        },
    }
}
