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
//! Credentials: a username and password go to oci-client as basic auth (it fetches and
//! renews bearer tokens itself); an identity token is exchanged here
//! ([`super::token`]: oci-client cannot) for an access token covering every repository this
//! client has touched, renewed before it ends, and handed to a fresh oci-client as `Bearer`.
//!
//! Plain HTTP is used for `localhost`/`127.0.0.1` registries and those listed in
//! `IMAGESPEC_INSECURE_REGISTRIES` (comma-separated hosts), TLS otherwise.

use crate::oci::manifest::{CONFIG_LIMIT, check_config};
use crate::oci::reference::{DOCKER_HUB, Repository};
use crate::oci::{Digest, ImageRef, Platform};
use crate::registry::auth::Credentials;
use crate::registry::body;
use crate::registry::token;
use crate::timeouts::{Activity, Stalled, Timeouts, unless_stalled};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

mod error;
mod reads;
use error::with_causes;
pub use error::{
    AnswerError, Operation, Refusal, RegistryError, RegistryErrorKind, Transport, refusal_message,
};
use reads::Limit;

/// Whether a tag exists (flytekit's `exist()`: yes, no, or cannot tell), as a registry or
/// dockerd answers it: one type for both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existence {
    Yes,
    No,
    /// Could not tell (no permission, registry down…): flytekit's `None`.
    Unknown(String),
}

/// `image` as an oci-client reference: its host, its repository at the host (Docker Hub's
/// `library/` added to a one-part name) and its digest, else its tag (`latest` when none).
/// (Parsing with `Reference::from_str` would compile the full grammar's regexes again.)
fn reference(image: &ImageRef) -> Reference {
    let (host, repository) = at_host(image.name());
    match image.digest() {
        Some(digest) => Reference::with_digest(host, repository, digest.to_string()),
        None => Reference::with_tag(host, repository, image.tag().unwrap_or("latest").into()),
    }
}

/// A repository's host and its path there, as oci-client names them.
fn at_host(repository: &Repository) -> (String, String) {
    let (host, path) = (repository.host(), repository.path());
    let path = if host == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    (host.to_string(), path)
}

/// A client for one registry.
pub struct RegistryClient {
    client: Arc<Client>,
    auth: RegistryAuth,
    credentials: Option<Credentials>,
    /// The docker config consulted (for "no credentials for HOST in FILE").
    config: Option<PathBuf>,
    identity: Option<Identity>,
    /// Bearer tokens, fetched here (a bounded read) for every request of a registry with a
    /// token server, so that oci-client never reads a token server's answer itself.
    tokens: tokio::sync::Mutex<TokenState>,
    host: String,
    timeouts: Timeouts,
    /// The HTTP client of reads and token requests, made on first use.
    read_http: std::sync::OnceLock<reqwest::Client>,
}

/// An identity token (exchanged for access tokens by OAuth2's refresh grant).
struct Identity {
    refresh_token: String,
}

#[derive(Default)]
struct TokenState {
    /// The registry's `Bearer` challenge, once asked (`Some(None)`: it has no token server).
    challenge: Option<Option<token::Challenge>>,
    /// Every repository asked for so far, and whether for a push: one token covers them all
    /// (the fast path reads one repository and writes another).
    scopes: BTreeMap<String, bool>,
    current: Option<Current>,
}

struct Current {
    client: Arc<Client>,
    token: String,
    renew_at: Instant,
    scopes: BTreeMap<String, bool>,
}

/// The oci-client configuration for `host`. One PUT per blob: the distribution registry
/// takes it in one round trip, where the chunked protocol needs three. No `read_timeout`:
/// reqwest counts it from the start of the request until the answer's head, so it would cut
/// a long upload; stalls are caught by `unless_stalled` instead.
fn client_config(host: &str, timeouts: Timeouts) -> ClientConfig {
    let protocol = if insecure(host) {
        ClientProtocol::HttpsExcept(vec![host.to_string()])
    } else {
        ClientProtocol::Https
    };
    ClientConfig {
        protocol,
        use_monolithic_push: true,
        connect_timeout: Some(timeouts.connect),
        ..Default::default()
    }
}

/// The scopes of the token request: `repository:NAME:pull[,push]`.
fn scopes(repositories: &BTreeMap<String, bool>) -> Vec<String> {
    repositories
        .iter()
        .map(|(name, push)| {
            format!(
                "repository:{name}:{}",
                if *push { "pull,push" } else { "pull" }
            )
        })
        .collect()
}

/// Whether `have` covers every scope of `want`.
fn covers(have: &BTreeMap<String, bool>, want: &BTreeMap<String, bool>) -> bool {
    want.iter()
        .all(|(name, push)| have.get(name).is_some_and(|h| *h || !*push))
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
    /// A client for `host` with optional credentials (see [`crate::registry::session`],
    /// which looks them up).
    pub fn new(
        host: &str,
        credentials: Option<&Credentials>,
        timeouts: Timeouts,
    ) -> RegistryClient {
        let client = Arc::new(Client::new(client_config(host, timeouts)));
        let identity = credentials
            .and_then(Credentials::identity_token)
            .map(|t| Identity {
                refresh_token: t.to_string(),
            });
        let auth = match credentials {
            Some(c) if identity.is_none() => {
                RegistryAuth::Basic(c.username.clone(), c.password.clone())
            }
            _ => RegistryAuth::Anonymous,
        };
        RegistryClient {
            client,
            auth,
            credentials: credentials.cloned(),
            config: None,
            identity,
            tokens: Default::default(),
            host: host.to_string(),
            timeouts,
            read_http: Default::default(),
        }
    }

    /// Names the docker config the credentials were looked up in (for errors).
    pub fn with_config(mut self, config: Option<PathBuf>) -> RegistryClient {
        self.config = config;
        self
    }

    /// The credentials this client uses (also for a push through dockerd).
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// The oci-client and credentials for a request on `reference`'s repository: for a
    /// registry with a token server, a client holding a live access token covering every
    /// repository asked for so far (fetched here: docker's `GET` flow with the username and
    /// password, or an identity token's exchange); else the shared client and the basic
    /// credentials (oci-client then reads no token answer).
    async fn access(
        &self,
        reference: &Reference,
        push: bool,
    ) -> Result<(Arc<Client>, RegistryAuth), Failure> {
        let mut state = self.tokens.lock().await;
        let challenge = match &state.challenge {
            Some(c) => c.clone(),
            None => {
                let c = self.challenge().await?;
                state.challenge = Some(c.clone());
                c
            }
        };
        let Some(challenge) = challenge else {
            if self.identity.is_some() {
                return Err(Failure::Registry(
                    OciDistributionError::AuthenticationFailure(format!(
                        "an identity token is configured for {}, but it names no token \
                         server (no Bearer challenge): log in with a username and password",
                        self.host
                    )),
                ));
            }
            self.client
                .store_auth_if_needed(reference.resolve_registry(), &self.auth)
                .await;
            return Ok((self.client.clone(), self.auth.clone()));
        };
        let entry = state
            .scopes
            .entry(reference.repository().to_string())
            .or_insert(false);
        *entry |= push;
        if let Some(current) = &state.current
            && Instant::now() < current.renew_at
            && covers(&current.scopes, &state.scopes)
        {
            return Ok((
                current.client.clone(),
                RegistryAuth::Bearer(current.token.clone()),
            ));
        }
        let wanted = state.scopes.clone();
        let access = self.token(&challenge, &scopes(&wanted)).await?;
        let client = Arc::new(Client::new(client_config(&self.host, self.timeouts)));
        let auth = RegistryAuth::Bearer(access.token.clone());
        client
            .store_auth_if_needed(reference.resolve_registry(), &auth)
            .await;
        state.current = Some(Current {
            client: client.clone(),
            token: access.token,
            renew_at: Instant::now() + access.expires_in - token::refresh_margin(access.expires_in),
            scopes: wanted,
        });
        Ok((client, auth))
    }

    /// An access token for `scopes` from the token server of `challenge`, with this
    /// client's credentials.
    async fn token(
        &self,
        challenge: &token::Challenge,
        scopes: &[String],
    ) -> Result<token::AccessToken, token::TokenError> {
        let http = self
            .read_client()
            .map_err(|e| token::TokenError::new(with_causes(&e)))?;
        match &self.identity {
            Some(identity) => {
                token::exchange(http, challenge, scopes, &identity.refresh_token).await
            }
            None => token::fetch(http, challenge, scopes, self.basic()).await,
        }
    }

    /// The username and password, unless the credentials are an identity token.
    fn basic(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .filter(|c| c.identity_token().is_none())
            .map(|c| (c.username.as_str(), c.password.as_str()))
    }

    /// The registry's token challenge (from an unauthenticated `GET /v2/`, its body not
    /// read), or `None` when it names no token server.
    async fn challenge(&self) -> oci_client::errors::Result<Option<token::Challenge>> {
        let response = self
            .read_client()?
            .get(format!("{}://{}/v2/", self.scheme(), self.host))
            .send()
            .await?;
        Ok(response
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .and_then(token::bearer_challenge))
    }

    /// The timeouts this client's requests have.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// HEAD of the manifest: does `image` (`registry/repo:tag`) exist? Retried like every
    /// request; what is left after the retries is "cannot tell", with the reason.
    pub async fn exists(&self, image: &ImageRef) -> Existence {
        match self.digest(image).await {
            Ok(Some(_)) => Existence::Yes,
            Ok(None) => Existence::No,
            Err(e) => Existence::Unknown(e.detail()),
        }
    }
}

impl RegistryClient {
    /// The digest of `image`'s manifest (or index) as the registry stores it, or `None` when
    /// the registry does not have it. A `HEAD`; its `Docker-Content-Digest` must be a
    /// [`Digest`] (a registry that sends none is asked for the manifest, and its bytes hashed).
    pub async fn digest(&self, image: &ImageRef) -> Result<Option<Digest>, RegistryError> {
        let reference = reference(image);
        let reference = &reference;
        let asked = self
            .retry(
                image,
                Operation::CheckManifest,
                false,
                |_, _, auth| async move { self.head_manifest(reference, &auth).await },
            )
            .await;
        match asked {
            Ok(Some(digest)) => Ok(Some(digest)),
            Ok(None) => self.manifest(image).await.map(|m| Some(m.digest)),
            Err(e) if e.not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
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
    pub digest: Digest,
    pub manifest: oci_client::manifest::OciManifest,
}

/// How many times a transient failure is tried again, and the first pause (doubled each time).
const RETRIES: u32 = 3;
const FIRST_BACKOFF_MS: u64 = 300;

/// Why one attempt of a request failed.
enum Failure {
    Registry(OciDistributionError),
    Stalled(Stalled),
    /// Our checks refused what the registry sent.
    Answer(AnswerError),
    /// No token: the token server refused (`refused`), or its answer is not one.
    Token(token::TokenError),
}

impl From<OciDistributionError> for Failure {
    fn from(e: OciDistributionError) -> Failure {
        Failure::Registry(e)
    }
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Failure {
        Failure::Registry(e.into())
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Registry(e.into())
    }
}

impl From<AnswerError> for Failure {
    fn from(e: AnswerError) -> Failure {
        Failure::Answer(e)
    }
}

impl From<token::TokenError> for Failure {
    fn from(e: token::TokenError) -> Failure {
        Failure::Token(e)
    }
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
        Failure::Registry(_) | Failure::Answer(_) | Failure::Token(_) => false,
    }
}

/// Whether the registry answered that the manifest or repository does not exist.
#[cfg(test)]
fn not_found(failure: &Failure) -> bool {
    matches!(failure, Failure::Registry(e) if unknown(e))
}

/// Whether `e` is the registry's "no such manifest or repository".
fn unknown(e: &OciDistributionError) -> bool {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode as C};
    match e {
        E::ImageManifestNotFoundError(_) => true,
        E::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, C::ManifestUnknown | C::NameUnknown)),
        _ => false,
    }
}

/// Whether the registry refused access (401, or `UNAUTHORIZED`/`DENIED`).
fn is_refusal(failure: &Failure) -> bool {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode as C};
    match failure {
        Failure::Registry(E::AuthenticationFailure(_) | E::UnauthorizedError { .. }) => true,
        Failure::Registry(E::RegistryError { envelope, .. }) => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, C::Unauthorized | C::Denied)),
        Failure::Registry(E::ServerError { code, .. }) => *code == 401 || *code == 403,
        Failure::Token(e) => e.refused,
        _ => false,
    }
}

impl RegistryClient {
    /// For a refusal, whose and why (asking the token server whether the credentials
    /// themselves are good: a registry says only "unauthorized" either way).
    async fn refused(
        &self,
        failure: &Failure,
        reference: &Reference,
        push: bool,
    ) -> Option<Refusal> {
        use oci_client::errors::OciDistributionError as E;
        if !is_refusal(failure) {
            return None;
        }
        let user = match &self.credentials {
            None => {
                return Some(Refusal::Anonymous {
                    config: self.config.clone(),
                });
            }
            Some(c) if c.identity_token().is_some() => "the identity token".to_string(),
            Some(c) => c.username.clone(),
        };
        let bad = match failure {
            // The token exchange's own refusal (identity tokens).
            Failure::Registry(E::AuthenticationFailure(reason)) => Some(reason.clone()),
            Failure::Token(e) => Some(e.message.clone()),
            _ if self.identity.is_none() => self.credentials_refused(reference, push).await,
            _ => None,
        };
        Some(match bad {
            Some(reason) => Refusal::BadCredentials {
                user,
                reason: Some(reason).filter(|r| !r.is_empty()),
            },
            None if push => Refusal::NoPush { user },
            None => Refusal::NoPull { user },
        })
    }

    /// Whether the token server refuses this client's username and password for a pull of
    /// `reference` (its words, or empty), asked with a bounded read; for a registry without
    /// a token server, a refused read is the password's.
    async fn credentials_refused(&self, reference: &Reference, push: bool) -> Option<String> {
        let Some(challenge) = self.challenge().await.ok()? else {
            return (!push).then(String::new);
        };
        let http = self.read_client().ok()?;
        let scope = [format!("repository:{}:pull", reference.repository())];
        match token::fetch(http, &challenge, &scope, self.basic()).await {
            Err(e) => Some(e.said.unwrap_or_default()),
            Ok(_) => None,
        }
    }

    /// What went wrong, in words a user can act on (never with the credentials); a refusal
    /// has been told apart by [`RegistryClient::refused`] already.
    fn kind(&self, failure: Failure) -> RegistryErrorKind {
        use oci_client::errors::OciDistributionError as E;
        let host = self.host.clone();
        let failure = match failure {
            Failure::Stalled(source) => return RegistryErrorKind::Stalled { host, source },
            Failure::Answer(source) => return RegistryErrorKind::AnswerRefused { host, source },
            Failure::Token(e) => {
                let source = AnswerError::Token(e);
                return RegistryErrorKind::AnswerRefused { host, source };
            }
            Failure::Registry(e) => e,
        };
        match failure {
            E::RequestError(r) if r.is_connect() && r.is_timeout() => {
                RegistryErrorKind::ConnectTimeout {
                    host,
                    after: self.timeouts.connect,
                    transport: r,
                }
            }
            E::RequestError(r) if r.is_connect() => RegistryErrorKind::Unreachable {
                host,
                source: Transport(r),
            },
            // Our own checks of what the registry sent (bounds, digests, manifest shape).
            E::SpecViolationError(said) => RegistryErrorKind::AnswerRefused {
                host,
                source: AnswerError::Said(said),
            },
            source if unknown(&source) => RegistryErrorKind::NotFound { source },
            source => RegistryErrorKind::Request { source },
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are used up. Each
    /// attempt gets a fresh [`Activity`] to touch as its bytes move, and is given up when
    /// it shows no sign of life for the stall timeout.
    async fn retry<T, F, Fut>(
        &self,
        image: &ImageRef,
        operation: Operation,
        push: bool,
        mut attempt: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut(Activity, Arc<Client>, RegistryAuth) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let mut pause = FIRST_BACKOFF_MS;
        let mut tries = 0;
        let reference = reference(image);
        loop {
            let activity = Activity::new();
            let one = async {
                let (client, auth) = self.access(&reference, push).await?;
                attempt(activity.clone(), client, auth).await
            };
            let outcome = unless_stalled(one, &activity, self.timeouts.stall)
                .await
                .map_err(Failure::Stalled)
                .and_then(|r| r);
            match outcome {
                Ok(v) => return Ok(v),
                Err(e) if tries < RETRIES && transient(&e) => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                    pause *= 2;
                }
                Err(e) => {
                    let kind = match self.refused(&e, &reference, push).await {
                        Some(refusal) => RegistryErrorKind::Refused {
                            host: self.host.clone(),
                            repository: reference.repository().to_string(),
                            refusal,
                        },
                        None => self.kind(e),
                    };
                    return Err(RegistryError {
                        attempts: tries + 1,
                        ..RegistryError::new(image, operation, kind)
                    });
                }
            }
        }
    }

    /// The manifest `image` names (a tag or `@digest`), as stored.
    pub async fn manifest(&self, image: &ImageRef) -> Result<RawManifest, RegistryError> {
        let reference = reference(image);
        self.manifest_of(image, &reference).await
    }

    async fn manifest_of(
        &self,
        image: &ImageRef,
        reference: &Reference,
    ) -> Result<RawManifest, RegistryError> {
        self.retry(
            image,
            Operation::ReadManifest,
            false,
            |activity, _, auth| async move { self.get_manifest(reference, &auth, &activity).await },
        )
        .await
    }

    /// The manifest `digest` in `image`'s repository, as stored.
    pub async fn manifest_by_digest(
        &self,
        image: &ImageRef,
        digest: &str,
    ) -> Result<RawManifest, RegistryError> {
        let by_digest = reference(image).clone_with_digest(digest.to_string());
        self.manifest_of(image, &by_digest).await
    }

    /// The image manifest of `image` for `platform` (`os/arch[/variant]`): the manifest
    /// itself, or the matching entry of an index.
    pub async fn image_manifest(
        &self,
        image: &ImageRef,
        platform: &Platform,
    ) -> Result<(RawManifest, oci_client::manifest::OciImageManifest), RegistryError> {
        let raw = self.manifest(image).await?;
        self.platform_manifest(image, raw, platform).await
    }

    /// The image manifest for `platform` of `raw`, `image`'s manifest as already read: `raw`
    /// itself, or the matching entry of the index it is (read by its digest).
    pub async fn platform_manifest(
        &self,
        image: &ImageRef,
        raw: RawManifest,
        platform: &Platform,
    ) -> Result<(RawManifest, oci_client::manifest::OciImageManifest), RegistryError> {
        use oci_client::manifest::OciManifest;
        match &raw.manifest {
            OciManifest::Image(m) => {
                let m = m.clone();
                Ok((raw, m))
            }
            OciManifest::ImageIndex(index) => {
                let (os, arch, variant) =
                    (platform.os(), platform.architecture(), platform.variant());
                let entry = index.manifests.iter().find(|e| {
                    e.platform.as_ref().is_some_and(|p| {
                        p.os.to_string() == os
                            && p.architecture.to_string() == arch
                            && (variant.is_none() || p.variant.as_deref() == variant)
                    })
                });
                let Some(entry) = entry else {
                    return Err(RegistryError::new(
                        image,
                        Operation::ReadManifest,
                        RegistryErrorKind::NoPlatform {
                            platform: platform.clone(),
                        },
                    ));
                };
                let by_digest = reference(image).clone_with_digest(entry.digest.clone());
                let raw = self.manifest_of(image, &by_digest).await?;
                match &raw.manifest {
                    OciManifest::Image(m) => {
                        let m = m.clone();
                        Ok((raw, m))
                    }
                    OciManifest::ImageIndex(_) => Err(RegistryError::new(
                        image,
                        Operation::ReadManifest,
                        RegistryErrorKind::NestedIndex,
                    )),
                }
            }
        }
    }

    /// A (small) blob's bytes, e.g. an image config: at most its `declared` size (the
    /// descriptor's) and `CONFIG_LIMIT`, checked against `digest`.
    pub async fn blob(
        &self,
        image: &ImageRef,
        digest: &str,
        declared: Option<u64>,
    ) -> Result<Vec<u8>, RegistryError> {
        let operation = Operation::ReadBlob(body::one_line(digest));
        let digest = valid_digest(image, &operation, digest)?;
        if let Some(size) = declared.filter(|&s| s > CONFIG_LIMIT) {
            return Err(RegistryError::new(
                image,
                operation,
                RegistryErrorKind::ConfigTooLarge { size },
            ));
        }
        let limit = Limit::new(declared.unwrap_or(CONFIG_LIMIT), declared.is_some());
        let reference = reference(image);
        let (reference, digest) = (&reference, &digest);
        self.retry(image, operation, false, |activity, _, auth| async move {
            let mut out = Vec::new();
            let blob = reads::Blob {
                digest,
                limit: Some(limit),
            };
            self.get_blob(reference, &auth, blob, &mut out, &activity, None)
                .await?;
            Ok(out)
        })
        .await
    }

    /// The config of `manifest` (an image in `image`'s repository): read up to its
    /// descriptor's size, checked against its digest and by `check_config`.
    pub async fn config(
        &self,
        image: &ImageRef,
        manifest: &oci_client::manifest::OciImageManifest,
    ) -> Result<serde_json::Value, RegistryError> {
        let descriptor = &manifest.config;
        let declared = u64::try_from(descriptor.size).ok();
        let bytes = self.blob(image, &descriptor.digest, declared).await?;
        check_config(&bytes).map_err(|source| {
            RegistryError::new(
                image,
                Operation::ReadConfig,
                RegistryErrorKind::Config { source },
            )
        })
    }

    /// A blob streamed to `out` (a layer: not held in memory), checked against `digest`.
    /// `digest` is checked to be a [`Digest`] before anything is written.
    pub async fn blob_to_file(
        &self,
        image: &ImageRef,
        digest: &str,
        declared: Option<u64>,
        out: &std::path::Path,
        received: Option<crate::progress::Meter>,
    ) -> Result<(), RegistryError> {
        let operation = Operation::ReadBlob(body::one_line(digest));
        let digest = valid_digest(image, &operation, digest)?;
        let reference = reference(image);
        let (reference, digest) = (&reference, &digest);
        self.retry(image, operation, false, |activity, _, auth| {
            let received = received.clone();
            async move {
                let mut file = tokio::fs::File::create(out).await?;
                if let Some(received) = &received {
                    received(0);
                }
                let limit = declared.map(|size| Limit::new(size, true));
                let blob = reads::Blob { digest, limit };
                self.get_blob(reference, &auth, blob, &mut file, &activity, received)
                    .await?;
                tokio::io::AsyncWriteExt::flush(&mut file).await?;
                Ok(())
            }
        })
        .await
    }

    /// Whether the repository of `image` has the blob.
    pub async fn has_blob(&self, image: &ImageRef, digest: &str) -> Result<bool, RegistryError> {
        let reference = reference(image);
        let reference = &reference;
        self.retry(
            image,
            Operation::CheckBlob(digest.to_string()),
            false,
            |_, c, _| async move { Ok(c.blob_exists(reference, digest).await?) },
        )
        .await
    }

    /// Uploads the file at `path` as blob `digest`, streamed, unless the registry has it;
    /// `sent` hears the bytes sent so far (from 0 again when an upload is retried).
    /// Returns whether it was uploaded.
    pub async fn push_blob_file(
        &self,
        image: &ImageRef,
        path: &std::path::Path,
        digest: &str,
        size: u64,
        sent: Option<crate::progress::Meter>,
    ) -> Result<bool, RegistryError> {
        self.push_blob_streamed(image, digest, size, |activity| {
            let sent = sent.clone();
            async move {
                let file = tokio::fs::File::open(path).await?;
                if let Some(sent) = &sent {
                    sent(0);
                }
                let mut so_far = 0u64;
                // A chunk taken by the connection is a sign of life: the registry reads.
                Ok(futures_util::StreamExt::inspect(
                    futures_util::TryStreamExt::map_err(
                        tokio_util::io::ReaderStream::with_capacity(file, 1 << 20),
                        oci_client::errors::OciDistributionError::from,
                    ),
                    move |chunk| {
                        activity.touch();
                        if let (Some(sent), Ok(chunk)) = (&sent, chunk) {
                            so_far += chunk.len() as u64;
                            sent(so_far);
                        }
                    },
                ))
            }
        })
        .await
    }

    /// Uploads `data` as blob `digest` unless the registry has it, as a stream of one chunk:
    /// oci-client's upload of bytes unwraps the upload's `Location` as a URL (a registry
    /// answering one that is none panicked the process); its stream upload returns the
    /// error.
    pub async fn push_blob_bytes(
        &self,
        image: &ImageRef,
        data: bytes::Bytes,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        let size = data.len() as u64;
        self.push_blob_streamed(image, digest, size, |_| {
            let data = data.clone();
            async move { Ok(futures_util::stream::once(async move { Ok(data) })) }
        })
        .await
    }

    /// Uploads blob `digest` (`size` bytes) from the stream `open` makes (again for each
    /// try, retried) unless the registry has it; whether it was uploaded.
    async fn push_blob_streamed<S, F, Fut>(
        &self,
        image: &ImageRef,
        digest: &str,
        size: u64,
        open: F,
    ) -> Result<bool, RegistryError>
    where
        S: futures_util::Stream<Item = oci_client::errors::Result<bytes::Bytes>> + Send + 'static,
        F: Fn(Activity) -> Fut,
        Fut: std::future::Future<Output = Result<S, Failure>>,
    {
        if self.has_blob(image, digest).await? {
            return Ok(false);
        }
        let reference = reference(image);
        let (reference, open) = (&reference, &open);
        let operation = Operation::UploadBlob(digest.to_string());
        self.retry(image, operation, true, |activity, c, _| async move {
            let stream = open(activity).await?;
            Ok(c.push_blob_stream(reference, stream, digest, Some(size))
                .await?)
        })
        .await?;
        Ok(true)
    }

    /// Pushes a manifest under `image`'s tag: the last step of a push, so that an
    /// interrupted push never publishes a tag.
    pub async fn push_manifest(
        &self,
        image: &ImageRef,
        body: bytes::Bytes,
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let tagged = reference(image);
        self.put_manifest(image, &tagged, body, media_type, Operation::PushManifest)
            .await
    }

    /// Pushes `body` (of `media_type`) as the manifest `reference` names, retried: a `PUT` on
    /// reqwest, not oci-client's, which panics when a registry answers a push by digest
    /// without a `Location` header (ECR does; so does go-containerregistry's registry). The
    /// `Location` is not needed: the manifest's digest is known.
    async fn put_manifest(
        &self,
        image: &ImageRef,
        reference: &Reference,
        body: bytes::Bytes,
        media_type: &str,
        operation: Operation,
    ) -> Result<(), RegistryError> {
        let url = &self.manifest_url(reference);
        let content_type = &reqwest_header(media_type);
        self.retry(image, operation, true, |_, _, auth| {
            let body = &body;
            async move {
                let request = |http: &reqwest::Client| {
                    (http.put(url))
                        .header(http::header::CONTENT_TYPE, content_type)
                        .body(body.clone())
                };
                let response = self.send_as(reference, &auth, "pull,push", request).await?;
                if response.status().is_success() {
                    Ok(())
                } else {
                    Err(reads::error_answer(response, url).await.into())
                }
            }
        })
        .await
    }
}

/// `digest` as a [`Digest`], or the error naming it.
fn valid_digest(
    image: &ImageRef,
    operation: &Operation,
    digest: &str,
) -> Result<Digest, RegistryError> {
    Digest::parse(digest).map_err(|source| {
        RegistryError::new(
            image,
            operation.clone(),
            RegistryErrorKind::Digest { source },
        )
    })
}

impl RegistryClient {
    /// Pushes a manifest by its digest, untagged (a platform's manifest inside an index).
    pub async fn push_manifest_by_digest(
        &self,
        image: &ImageRef,
        body: bytes::Bytes,
        media_type: &str,
        digest: &str,
    ) -> Result<(), RegistryError> {
        let by_digest = reference(image).clone_with_digest(digest.to_string());
        let operation = Operation::PushPlatformManifest;
        self.put_manifest(image, &by_digest, body, media_type, operation)
            .await
    }
}

impl RegistryClient {
    /// Asks the registry to mount blob `digest` from `from` (another repository of the same
    /// registry) into `image`'s repository; `false` when it would not (the blob must then
    /// be uploaded).
    pub async fn mount_blob(&self, image: &ImageRef, from: &ImageRef, digest: &str) -> bool {
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

/// How many tags one page of a tag list asks for.
const TAGS_PAGE: usize = 1000;
/// Past this many pages a listing stops: a registry that ignored `last` would send its first
/// page forever.
const MAX_TAG_PAGES: usize = 10_000;

/// The `rel="next"` target of a `Link` header (`<url>; rel="next"`), as written.
pub fn next_link(header: &str) -> Option<&str> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then_some(target)
    })
}

/// One page of a tag list.
struct TagsPage {
    tags: Vec<String>,
    /// The `Link` header's next page, if any.
    next: Option<String>,
}

impl RegistryClient {
    /// The plain HTTP client (the reads' own) for the requests oci-client does not make
    /// (tag pages with their `Link` header, manifest deletes).
    fn http(
        &self,
        repository: &ImageRef,
        operation: &Operation,
    ) -> Result<&reqwest::Client, RegistryError> {
        self.read_client().map_err(|source| {
            RegistryError::new(
                repository,
                operation.clone(),
                RegistryErrorKind::Request { source },
            )
        })
    }

    /// `http` for the registries [`insecure`] names, `https` otherwise.
    fn scheme(&self) -> &'static str {
        if insecure(&self.host) {
            "http"
        } else {
            "https"
        }
    }

    /// `scheme://host` of the registry, as oci-client addresses it.
    fn base_url(&self, reference: &Reference) -> String {
        format!("{}://{}", self.scheme(), reference.resolve_registry())
    }

    /// Sends `request()` with this client's credentials: basic ones as they are (or the
    /// token `scoped` holds); when the registry answers with a `Bearer` challenge, a token
    /// for its scope is fetched (docker's flow, or the identity token's exchange), kept in
    /// `scoped` for the next request, and the request sent again. A token the token server
    /// refuses leaves the registry's 401 as the answer.
    async fn send_with_credentials(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
        scoped: &Scoped<'_>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let (scope, token) = (&scoped.scope, &scoped.token);
        let basic = self.basic();
        let held = token.lock().map(|t| t.clone()).unwrap_or_default();
        let first = match (&held, basic) {
            (Some(t), _) => request().bearer_auth(t),
            (None, Some((user, password))) => request().basic_auth(user, Some(password)),
            (None, None) => request(),
        }
        .send()
        .await?;
        if first.status() != http::StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        let Some(challenge) = first
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .and_then(token::bearer_challenge)
        else {
            return Ok(first);
        };
        let scopes = [scope.to_string()];
        let access = self.token(&challenge, &scopes).await;
        let Ok(access) = access else {
            return Ok(first);
        };
        if let Ok(mut t) = token.lock() {
            *t = Some(access.token.clone());
        }
        request().bearer_auth(&access.token).send().await
    }

    /// Every tag of `repository` (`registry/name`), page by page: `?n=1000`, then the page
    /// the `Link` header names (distribution's pagination; oci-client does not return
    /// headers), or, from a registry that sends a full page and no `Link`, `&last=<the
    /// page's greatest tag>`. Empty when the registry has no such repository.
    pub async fn tags(&self, repository: &Repository) -> Result<Vec<String>, RegistryError> {
        self.tags_in_pages(repository, TAGS_PAGE).await
    }

    /// [`RegistryClient::tags`], `page` tags per request.
    pub async fn tags_in_pages(
        &self,
        repository: &Repository,
        page: usize,
    ) -> Result<Vec<String>, RegistryError> {
        let repository = &ImageRef::from(repository.clone());
        let failed = |kind| RegistryError::new(repository, Operation::ListTags, kind);
        let page = page.max(1);
        let reference = reference(repository);
        let base = self.base_url(&reference);
        let first = format!("{base}/v2/{}/tags/list?n={page}", reference.repository());
        let scope = format!("repository:{}:pull", reference.repository());
        let scoped = &Scoped::new(self.http(repository, &Operation::ListTags)?, scope, None);
        let mut all = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut url = first.clone();
        for _ in 0..MAX_TAG_PAGES {
            let fetched = self
                .retry(repository, Operation::ListTags, false, |_, _, _| {
                    let url = url.clone();
                    async move { self.tags_page(scoped, &url).await }
                })
                .await;
            let fetched = match fetched {
                Ok(p) => p,
                Err(e) if e.not_found() => return Ok(all),
                Err(e) => return Err(e),
            };
            let full = fetched.tags.len() >= page;
            let greatest = fetched.tags.iter().max().cloned();
            let fresh: Vec<String> = fetched
                .tags
                .into_iter()
                .filter(|t| seen.insert(t.clone()))
                .collect();
            if fresh.is_empty() {
                break;
            }
            all.extend(fresh);
            url = match (fetched.next, greatest) {
                (Some(next), _) if next.starts_with('/') => format!("{base}{next}"),
                (Some(next), _) if next.starts_with(&format!("{base}/")) => next,
                // Credentials go to the registry only; a listing cut short could make a
                // used dependency image look unused.
                (Some(next), _) => {
                    return Err(failed(RegistryErrorKind::NextPageElsewhere { next }));
                }
                (None, Some(greatest)) if full => {
                    let mut next = reqwest::Url::parse(&first)
                        .map_err(|source| failed(RegistryErrorKind::Url { source }))?;
                    next.query_pairs_mut().append_pair("last", &greatest);
                    next.to_string()
                }
                _ => break,
            };
        }
        Ok(all)
    }

    /// One page of a tag list.
    async fn tags_page(&self, scoped: &Scoped<'_>, url: &str) -> Result<TagsPage, Failure> {
        use oci_client::errors::OciDistributionError as E;
        let request = || scoped.http.get(url);
        let response = self.send_with_credentials(request, scoped).await?;
        let status = response.status().as_u16();
        let next = response
            .headers()
            .get(http::header::LINK)
            .and_then(|h| h.to_str().ok())
            .and_then(next_link)
            .map(str::to_string);
        match status {
            200 => {
                #[derive(serde::Deserialize)]
                struct Listing {
                    #[serde(default)]
                    tags: Option<Vec<String>>,
                }
                let body = body::read_limited(response, body::TAGS_LIMIT, None).await?;
                let listing: Listing = serde_json::from_slice(&body).map_err(E::from)?;
                Ok(TagsPage {
                    tags: listing.tags.unwrap_or_default(),
                    next,
                })
            }
            404 => Err(E::ImageManifestNotFoundError(url.to_string()).into()),
            401 | 403 => Err(E::UnauthorizedError { url: url.into() }.into()),
            _ => Err(reads::error_answer(response, url).await.into()),
        }
    }

    /// Deletes the manifest `digest` of `repository` (`DELETE /v2/<name>/manifests/<digest>`;
    /// every tag naming it goes with it). `Ok(false)` when the registry does not have it (any
    /// more). Retried like every request; the refusals say what to change: a registry that
    /// does not allow deleting (distribution: `storage: delete: enabled: true`), credentials
    /// without the right.
    pub async fn delete_manifest(
        &self,
        repository: &Repository,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        let repository = &ImageRef::from(repository.clone());
        let operation = Operation::Delete(digest.to_string());
        let reference = reference(repository);
        let url = format!(
            "{}/v2/{}/manifests/{digest}",
            self.base_url(&reference),
            reference.repository()
        );
        let scope = format!("repository:{}:delete", reference.repository());
        let scoped = &Scoped::new(self.http(repository, &operation)?, scope, None);
        let url = &url;
        let answer = self
            .retry(repository, operation.clone(), false, |_, _, _| async move {
                self.delete_once(scoped, url).await
            })
            .await?;
        let refused = |kind| Err(RegistryError::new(repository, operation, kind));
        let host = self.host.clone();
        match answer {
            DeleteAnswer::Deleted => Ok(true),
            DeleteAnswer::Gone => Ok(false),
            DeleteAnswer::NotAllowed => refused(RegistryErrorKind::DeleteNotAllowed { host }),
            DeleteAnswer::Refused(status) => refused(RegistryErrorKind::DeleteRefused {
                status,
                who: match &self.credentials {
                    None => "anonymous access".to_string(),
                    Some(c) if c.identity_token().is_some() => "the identity token".to_string(),
                    Some(c) => c.username.clone(),
                },
                host,
                repository: reference.repository().to_string(),
            }),
        }
    }

    /// One `DELETE`. Failures that may pass are errors (retried); the registry's refusals
    /// are answers.
    async fn delete_once(&self, scoped: &Scoped<'_>, url: &str) -> Result<DeleteAnswer, Failure> {
        let accept = MANIFEST_TYPES.join(", ");
        let request = || (scoped.http.delete(url)).header(http::header::ACCEPT, accept.as_str());
        let response = self.send_with_credentials(request, scoped).await?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(DeleteAnswer::Deleted),
            404 => Ok(DeleteAnswer::Gone),
            401 | 403 => Ok(DeleteAnswer::Refused(status)),
            405 => Ok(DeleteAnswer::NotAllowed),
            _ => Err(reads::error_answer(response, url).await.into()),
        }
    }
}

/// Requests of one scope (`repository:<name>:pull`) through one HTTP client, with the
/// bearer token for that scope once one is held (given, or fetched on a challenge).
pub(super) struct Scoped<'a> {
    http: &'a reqwest::Client,
    scope: String,
    token: std::sync::Mutex<Option<String>>,
}

impl<'a> Scoped<'a> {
    pub(super) fn new(http: &'a reqwest::Client, scope: String, token: Option<String>) -> Self {
        let token = std::sync::Mutex::new(token);
        Scoped { http, scope, token }
    }
}

/// What a registry answered to a `DELETE` of a manifest.
enum DeleteAnswer {
    Deleted,
    /// 404: it does not have it (any more).
    Gone,
    /// 405: deleting is turned off.
    NotAllowed,
    /// 401 or 403: not with these credentials.
    Refused(u16),
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

    #[tokio::test]
    async fn a_server_error_with_an_error_envelope_is_retried() {
        let answer = |code: u16, body: &'static str| {
            let response = http::Response::builder().status(code).body(body).unwrap();
            reads::error_answer(
                reqwest::Response::from(response),
                "http://r/v2/x/manifests/t",
            )
        };
        let envelope = r#"{"errors": [{"code": "UNAVAILABLE", "message": "fault: 503"}]}"#;
        let failure = Failure::Registry(answer(503, envelope).await);
        assert!(transient(&failure), "a 503 with an envelope");
        let failure = Failure::Registry(answer(429, envelope).await);
        assert!(transient(&failure), "a rate limit with an envelope");
        let unknown = r#"{"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]}"#;
        let failure = Failure::Registry(answer(404, unknown).await);
        assert!(!transient(&failure) && not_found(&failure));
    }

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
    fn the_next_page_is_the_link_marked_next() {
        assert_eq!(
            next_link(r#"</v2/app/tags/list?last=b&n=2>; rel="next""#),
            Some("/v2/app/tags/list?last=b&n=2")
        );
        assert_eq!(
            next_link(
                r#"<https://r/v2/a/tags/list?n=1&last=x>; rel="prev", <https://r/v2/a/tags/list?n=1&last=y>; rel=next"#
            ),
            Some("https://r/v2/a/tags/list?n=1&last=y")
        );
        assert_eq!(next_link(r#"</v2/a/tags/list>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    /// A registry that pages its tag list (the e2e registry, distribution 2.x, ignores
    /// `n`): tags `t0`…`t6`, `n` and `last` honoured; with `link`, a `Link` header names
    /// the next page. Serves until dropped; records the paths asked for.
    async fn paging_registry(
        link: bool,
    ) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = asked.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split(' ').nth(1).unwrap_or("").to_string();
                log.lock().unwrap().push(path.clone());
                let url = reqwest::Url::parse(&format!("http://x{path}")).unwrap();
                let query: std::collections::HashMap<String, String> =
                    url.query_pairs().into_owned().collect();
                let n: usize = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(100);
                let all: Vec<String> = (0..7).map(|i| format!("t{i}")).collect();
                let after: Vec<&String> = all
                    .iter()
                    .filter(|t| query.get("last").is_none_or(|l| t.as_str() > l.as_str()))
                    .collect();
                let page: Vec<&String> = after.iter().take(n).copied().collect();
                let more = after.len() > page.len();
                let body = serde_json::json!({"name": "app", "tags": page}).to_string();
                let mut head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                if link && more {
                    let last = page.last().map_or("", |t| t.as_str());
                    head.push_str(&format!(
                        "Link: </v2/app/tags/list?last={last}&n={n}>; rel=\"next\"\r\n"
                    ));
                }
                let _ = socket
                    .write_all(format!("{head}\r\n{body}").as_bytes())
                    .await;
                let _ = socket.shutdown().await;
            }
        });
        (host, asked)
    }

    #[tokio::test]
    async fn tag_lists_are_followed_page_by_page() {
        let want: Vec<String> = (0..7).map(|i| format!("t{i}")).collect();
        for link in [true, false] {
            let (host, asked) = paging_registry(link).await;
            let client = RegistryClient::new(&host, None, Timeouts::default());
            let tags = client
                .tags_in_pages(format!("{host}/app").parse::<ImageRef>().unwrap().name(), 3)
                .await
                .unwrap();
            assert_eq!(tags, want, "link: {link}");
            let all = asked.lock().unwrap().clone();
            // One `GET /v2/` (does it have a token server?), then the pages.
            assert_eq!(all.iter().filter(|p| *p == "/v2/").count(), 1, "{all:?}");
            let asked: Vec<&String> = all.iter().filter(|p| p.contains("/tags/")).collect();
            // 3 + 3 + 1 (no Link: a short page ends the list).
            assert_eq!(asked.len(), 3, "link: {link}: {asked:?}");
            assert!(asked[1].contains("last=t2"), "{asked:?}");
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
            let fast = reference(&image.parse().unwrap());
            let parsed: Reference = want.parse().expect("valid");
            assert_eq!(
                (fast.registry(), fast.repository(), fast.tag()),
                (parsed.registry(), parsed.repository(), parsed.tag()),
                "{image}"
            );
        }
    }
}
