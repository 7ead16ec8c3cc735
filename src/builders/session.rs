//! A BuildKit build whose context is streamed: the session is served here, not by bollard.
//!
//! bollard 0.21's gRPC build (`Moby::docker_build`) takes the context as one `Bytes` and
//! copies it twice more before sending it (`UploadProvider` keeps a `Vec` and clones it per
//! pull): a 1.5 GB source file made a 2.9 GB process. Its session types are crate-private, so
//! this module does what it does, with the context written while it is sent:
//!
//! 1. `POST /session` upgraded to h2c on dockerd (BuildKit's session protocol, as the
//!    docker CLI opens it); on that connection dockerd is the gRPC client and we serve
//!    `moby.upload.v1.Upload/Pull` (the context tar, produced on a blocking thread into a
//!    small bounded channel), `moby.buildkit.secrets.v1.Secrets/GetSecret` (the build's
//!    secret files), `moby.filesync.v1.Auth/Credentials` (registry credentials for every
//!    image the build pulls: `FROM`, `COPY --from`) and `grpc.health.v1.Health/Check`;
//! 2. `Control.Solve` over `POST /grpc` (as [`super::buildkit_status`] follows progress)
//!    with the Dockerfile frontend, `context=http://buildkit-session/<id>` (the frontend
//!    pulls the tar through the session and unpacks it) and the `moby` exporter, which tags
//!    the image in dockerd.
//!
//! Memory stays at the channel's few chunks whatever the context's size.
//!
//! The services ([`SessionServices`], also `FileSend` for what a `tar` exporter sends back)
//! do not depend on what carries them: [`solve`] serves them on dockerd's `/session`, the
//! remote builder ([`super::remote`]) inside a buildkitd's `Control.Session` stream.
//! [`solve_request`] makes the solve for either (`moby` exporter for dockerd; `image`, pushed
//! by the builder, with a registry cache for a remote one).

use super::buildkit_status::{self, DaemonAddress};
use crate::batched::{Batched, Sink};
use bollard_buildkit_proto::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
    health_check_response::ServingStatus,
    health_server::{Health, HealthServer},
};
use bollard_buildkit_proto::moby::buildkit::secrets::v1::{
    GetSecretRequest, GetSecretResponse,
    secrets_server::{Secrets, SecretsServer},
};
use bollard_buildkit_proto::moby::buildkit::v1::{
    CacheOptions, SolveRequest, control_client::ControlClient,
};
use bollard_buildkit_proto::moby::filesync::v1::{
    BytesMessage as FileBytes, CredentialsRequest, CredentialsResponse, FetchTokenRequest,
    FetchTokenResponse, GetTokenAuthorityRequest, GetTokenAuthorityResponse,
    VerifyTokenAuthorityRequest, VerifyTokenAuthorityResponse,
    auth_server::{Auth, AuthServer},
    file_send_server::{FileSend, FileSendServer},
};
use bollard_buildkit_proto::moby::upload::v1::{
    BytesMessage,
    upload_server::{Upload, UploadServer},
};
use futures_util::Stream;
use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};

/// Writes a build context (an uncompressed tar) into the writer it is given; may be called
/// more than once (each pull of the context gets a fresh copy).
pub type ContextWriter =
    Arc<dyn Fn(&mut dyn std::io::Write) -> Result<(), ContextError> + Send + Sync + 'static>;

/// Why a build context was not written.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error(transparent)]
    Write(#[from] crate::render::WriteError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The size of one message of context bytes, and how many may wait to be sent: what the
/// context costs in memory.
const CHUNK: usize = 256 * 1024;
const CHUNKS_IN_FLIGHT: usize = 4;
/// BuildKit's largest secret.
const MAX_SECRET: u64 = 500 * 1024;

/// A failed solve: BuildKit's message, or why the context could not be sent.
#[derive(Debug)]
pub enum SolveError {
    /// The context could not be written (a file vanished or changed meanwhile).
    Context(String),
    /// BuildKit's answer (a failing step, a bad Dockerfile...).
    Build(String),
    /// dockerd's session or gRPC endpoint could not be reached.
    Connect(String),
}

/// Hands each chunk of the context to the upload stream, blocking while it is full.
struct Channel {
    tx: tokio::sync::mpsc::Sender<Result<BytesMessage, Status>>,
}

impl Sink for Channel {
    fn take(&mut self, data: Vec<u8>) -> std::io::Result<()> {
        self.tx
            .blocking_send(Ok(BytesMessage { data }))
            .map_err(|_| std::io::Error::other("BuildKit stopped reading the context"))
    }
}

type MessageStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;
/// A request of a client-streaming call, and what every call answers.
type Streamed<T> = Request<tonic::Streaming<T>>;
type Answer<T> = Result<Response<T>, Status>;

/// `Upload.Pull`: the context, made as it is sent.
struct ContextUpload {
    context: ContextWriter,
    /// Why writing the context failed, for the error the build reports.
    failure: Arc<Mutex<Option<String>>>,
}

#[tonic::async_trait]
impl Upload for ContextUpload {
    type PullStream = MessageStream<BytesMessage>;

    async fn pull(&self, _request: Streamed<BytesMessage>) -> Answer<Self::PullStream> {
        let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
        let context = self.context.clone();
        let failure = self.failure.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Batched::new(Channel { tx: tx.clone() }, CHUNK);
            let written =
                context(&mut out).and_then(|()| out.finish().map(drop).map_err(ContextError::from));
            if let Err(e) = written {
                let message = e.to_string();
                let _ = tx.blocking_send(Err(Status::aborted(message.clone())));
                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|message| (message, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Where a build secret comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// A file, read when BuildKit asks (`pip_secret_mounts`, the CA bundle).
    File(PathBuf),
    /// A value held here (an index URL with credentials): sent, never shown.
    Value(crate::redact::SecretString),
}

/// `Secrets.GetSecret`: the build's secrets, by id, files read when asked.
struct SecretFiles {
    files: HashMap<String, SecretSource>,
}

#[tonic::async_trait]
impl Secrets for SecretFiles {
    async fn get_secret(&self, request: Request<GetSecretRequest>) -> Answer<GetSecretResponse> {
        let id = &request.get_ref().id;
        let path = match self.files.get(id) {
            None => return Err(Status::not_found(format!("no secret `{id}`"))),
            Some(SecretSource::Value(value)) => {
                return Ok(Response::new(GetSecretResponse {
                    data: value.expose().as_bytes().to_vec(),
                }));
            }
            Some(SecretSource::File(path)) => path,
        };
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| Status::failed_precondition(format!("{}: {e}", path.display())))?
            .len();
        if size > MAX_SECRET {
            return Err(Status::failed_precondition(format!(
                "{}: {size} bytes, more than BuildKit's {MAX_SECRET} for a secret",
                path.display()
            )));
        }
        let data = tokio::fs::read(path)
            .await
            .map_err(|e| Status::failed_precondition(format!("{}: {e}", path.display())))?;
        Ok(Response::new(GetSecretResponse { data }))
    }
}

/// `Auth`: the credentials for a registry BuildKit pulls from, from the same lookup as the
/// push ([`crate::registry::auth::lookup`]: the spec's `registry_config` or docker's config,
/// its helpers). BuildKit then talks to the registry and its token server itself, as with
/// docker's CLI: an identity token goes as the secret with an empty username, which BuildKit
/// (containerd's authorizer) exchanges with `grant_type=refresh_token`; a password with
/// `grant_type=password`. The token methods (`FetchToken`, token authority) are not offered:
/// BuildKit falls back to these credentials without them.
struct RegistryCredentials {
    registry_config: Option<PathBuf>,
}

/// BuildKit's answer for `credentials`: a username and secret, or an empty username and the
/// identity token (docker's convention), or nothing (anonymous).
fn credentials_response(
    credentials: Option<crate::registry::auth::Credentials>,
) -> CredentialsResponse {
    match credentials {
        Some(c) => match c.identity_token() {
            Some(token) => CredentialsResponse {
                username: String::new(),
                secret: token.to_string(),
            },
            None => CredentialsResponse {
                username: c.username,
                secret: c.password,
            },
        },
        None => CredentialsResponse::default(),
    }
}

#[tonic::async_trait]
impl Auth for RegistryCredentials {
    async fn credentials(
        &self,
        request: Request<CredentialsRequest>,
    ) -> Answer<CredentialsResponse> {
        let host = request.into_inner().host;
        let config = self.registry_config.clone();
        // A helper is a process: not on the runtime's threads.
        let found = tokio::task::spawn_blocking(move || {
            crate::registry::auth::lookup(&host, config.as_deref())
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        // The error names the file, registry and helper, never a secret.
        .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(credentials_response(found)))
    }
    async fn fetch_token(
        &self,
        _request: Request<FetchTokenRequest>,
    ) -> Answer<FetchTokenResponse> {
        Err(Status::unimplemented("fetch_token"))
    }
    async fn get_token_authority(
        &self,
        _request: Request<GetTokenAuthorityRequest>,
    ) -> Answer<GetTokenAuthorityResponse> {
        Err(Status::unimplemented("get_token_authority"))
    }
    async fn verify_token_authority(
        &self,
        _request: Request<VerifyTokenAuthorityRequest>,
    ) -> Answer<VerifyTokenAuthorityResponse> {
        Err(Status::unimplemented("verify_token_authority"))
    }
}

/// The most an exporter may send back through the session (`FileSend`): small files only
/// (what a build found out), never an image.
const MAX_RECEIVED: usize = 1 << 20;

/// `FileSend.DiffCopy`: what BuildKit's `tar` exporter sends, kept (up to [`MAX_RECEIVED`]).
struct Received {
    bytes: Arc<Mutex<Vec<u8>>>,
}

#[tonic::async_trait]
impl FileSend for Received {
    type DiffCopyStream = MessageStream<FileBytes>;

    async fn diff_copy(&self, request: Streamed<FileBytes>) -> Answer<Self::DiffCopyStream> {
        let mut incoming = request.into_inner();
        let mut kept = Vec::new();
        while let Some(message) = incoming.message().await? {
            if kept.len() + message.data.len() > MAX_RECEIVED {
                return Err(Status::resource_exhausted(format!(
                    "more than {MAX_RECEIVED} bytes exported to this client"
                )));
            }
            kept.extend_from_slice(&message.data);
        }
        *self.bytes.lock().unwrap_or_else(|p| p.into_inner()) = kept;
        Ok(Response::new(Box::pin(futures_util::stream::empty())))
    }
}

/// `Health`: BuildKit checks that the session still answers.
struct Alive;

#[tonic::async_trait]
impl Health for Alive {
    async fn check(&self, _request: Request<HealthCheckRequest>) -> Answer<HealthCheckResponse> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }
    async fn list(&self, _request: Request<HealthListRequest>) -> Answer<HealthListResponse> {
        Err(Status::unimplemented("list"))
    }
    type WatchStream = MessageStream<HealthCheckResponse>;
    async fn watch(&self, _request: Request<HealthCheckRequest>) -> Answer<Self::WatchStream> {
        Err(Status::unimplemented("watch"))
    }
}

/// A random id as BuildKit makes them (sessions, uploads).
pub fn new_id() -> String {
    bollard::grpc::BuildRef::random().as_ref().to_string()
}

/// What to build, for [`solve`].
pub struct Solve<'a> {
    /// The name the `moby` exporter tags in dockerd.
    pub image: &'a str,
    /// `os/arch[/variant]`.
    pub platform: &'a str,
    pub context: ContextWriter,
    /// Secret ids and where each comes from.
    pub secrets: &'a [(String, SecretSource)],
    /// Labels the image gets (the frontend's `label:KEY` options).
    pub labels: &'a [(String, String)],
    /// The build's ref, which [`buildkit_status::follow`] follows.
    pub build_ref: String,
    /// The spec's `registry_config` (else docker's config): credentials for the pulls.
    pub registry_config: Option<PathBuf>,
}

/// A plan's context (written while it is sent: a large source file is never held in
/// memory) and its secrets (`pip_secret_mounts`, index URLs with credentials, the CA bundle).
pub fn plan_inputs(plan: &crate::plan::BuildPlan) -> (ContextWriter, Vec<(String, SecretSource)>) {
    let written = Arc::new(plan.clone());
    let context: ContextWriter = Arc::new(move |out| Ok(written.write_context_tar(out)?));
    let mut secrets: Vec<(String, SecretSource)> = plan
        .secrets
        .iter()
        .map(|s| (s.id.clone(), SecretSource::File(s.source.clone())))
        .collect();
    secrets.extend(
        plan.index_secrets
            .iter()
            .map(|s| (s.id.clone(), SecretSource::Value(s.url.clone()))),
    );
    if let Some(ca) = &plan.ca_bundle {
        secrets.push(("imagespec_ca_bundle".into(), SecretSource::File(ca.clone())));
    }
    (context, secrets)
}

/// A context holding only `dockerfile` (a relabel, a small solve of our own).
pub fn dockerfile_only(dockerfile: &str) -> Result<ContextWriter, ContextError> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(crate::render::CONTEXT_MTIME);
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
    let tar = tar.into_inner()?;
    Ok(Arc::new(move |out| Ok(out.write_all(&tar)?)))
}

/// A Dockerfile `LABEL` line for `key` and `value` (quoted).
pub fn label_line(key: &str, value: &str) -> String {
    format!(
        "LABEL {key}=\"{}\"\n",
        value.replace('\\', "\\\\").replace('"', "\\\"")
    )
}

/// The headers that open our session: its id and the gRPC methods it serves (as HTTP
/// headers on dockerd's `/session`, as gRPC metadata on `Control.Session`).
pub fn session_headers(session_id: &str) -> Vec<(&'static str, String)> {
    let methods = [
        "/moby.upload.v1.Upload/Pull",
        "/moby.buildkit.secrets.v1.Secrets/GetSecret",
        "/moby.filesync.v1.Auth/Credentials",
        "/moby.filesync.v1.FileSend/DiffCopy",
        "/grpc.health.v1.Health/Check",
    ];
    let mut headers = vec![
        ("X-Docker-Expose-Session-Uuid", session_id.to_string()),
        ("X-Docker-Expose-Session-Name", "imagespec".to_string()),
        ("X-Docker-Expose-Session-Sharedkey", String::new()),
    ];
    headers.extend(
        methods
            .iter()
            .map(|m| ("X-Docker-Expose-Session-Grpc-Method", m.to_string())),
    );
    headers
}

/// Where a solve's image goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exporter {
    /// dockerd's `moby` exporter: tagged in dockerd as `image`.
    Moby { image: String },
    /// BuildKit's `image` exporter, pushed to `image`'s registry by the builder itself (the
    /// credentials come through the session's `Auth`).
    Push { image: String },
    /// The same, pushed by digest only into `repository` (no tag is moved).
    PushByDigest { repository: String },
    /// BuildKit's `tar` exporter: the result's files sent back through the session (small
    /// results only, [`MAX_RECEIVED`]).
    Tar,
}

/// What one solve makes and where it goes.
pub struct SolveTarget<'a> {
    /// `os/arch[/variant]`, or several joined by commas (one solve, an index).
    pub platform: String,
    /// Labels the image gets (the frontend's `label:KEY` options).
    pub labels: &'a [(String, String)],
    pub exporter: Exporter,
    /// Cache imports and exports (a registry cache; none for dockerd).
    pub cache: CacheOptions,
}

/// The Dockerfile frontend's solve of `target`, its context read from our session's upload
/// `upload_id`.
pub fn solve_request(
    target: SolveTarget<'_>,
    build_ref: String,
    session_id: String,
    upload_id: &str,
) -> SolveRequest {
    let mut frontend_attrs = HashMap::from([
        ("platform".to_string(), target.platform),
        ("image-resolve-mode".to_string(), "default".to_string()),
        (
            "context".to_string(),
            format!("http://buildkit-session/{upload_id}"),
        ),
    ]);
    frontend_attrs.insert("filename".into(), "Dockerfile".into());
    for (key, value) in target.labels {
        frontend_attrs.insert(format!("label:{key}"), value.clone());
    }
    // The frontend resolves its cache imports itself: buildctl passes them as this
    // attribute too (client/solve.go), `[{"Type": …, "Attrs": {…}}]`.
    if !target.cache.imports.is_empty() {
        let imports: Vec<serde_json::Value> = target
            .cache
            .imports
            .iter()
            .map(|i| serde_json::json!({"Type": i.r#type, "Attrs": i.attrs}))
            .collect();
        frontend_attrs.insert(
            "cache-imports".into(),
            serde_json::Value::Array(imports).to_string(),
        );
    }
    let mut request = SolveRequest {
        r#ref: build_ref,
        session: session_id,
        frontend: "dockerfile.v0".into(),
        frontend_attrs,
        cache: Some(target.cache),
        ..Default::default()
    };
    match target.exporter {
        // dockerd 20.10's BuildKit knows only the one exporter of the first API.
        Exporter::Moby { image } => {
            request.exporter_deprecated = "moby".into();
            request.exporter_attrs_deprecated = HashMap::from([("name".to_string(), image)]);
        }
        Exporter::Push { image } => {
            request.exporters = vec![exporter("image", &[("name", &image), ("push", "true")])]
        }
        Exporter::PushByDigest { repository } => {
            let attrs = [
                ("name", repository.as_str()),
                ("push", "true"),
                ("push-by-digest", "true"),
            ];
            request.exporters = vec![exporter("image", &attrs)];
        }
        Exporter::Tar => request.exporters = vec![exporter("tar", &[])],
    }
    request
}

/// An exporter of BuildKit's current API (`SolveRequest.exporters`).
fn exporter(
    kind: &str,
    attrs: &[(&str, &str)],
) -> bollard_buildkit_proto::moby::buildkit::v1::Exporter {
    bollard_buildkit_proto::moby::buildkit::v1::Exporter {
        r#type: kind.into(),
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// What a build's session serves, whatever carries it (dockerd's `/session` upgrade, or a
/// remote buildkitd's `Control.Session`, [`super::remote`]): the context, the secrets, the
/// registry credentials, the health check.
pub struct SessionServices {
    context: ContextWriter,
    secrets: HashMap<String, SecretSource>,
    registry_config: Option<PathBuf>,
    /// Why writing the context failed, for the error the build reports.
    failure: Arc<Mutex<Option<String>>>,
    /// What a `tar` exporter sent back.
    received: Arc<Mutex<Vec<u8>>>,
}

impl SessionServices {
    /// The services of a build of `context` with `secrets`, pulling with the credentials
    /// of `registry_config` (else docker's config).
    pub fn new(
        context: ContextWriter,
        secrets: &[(String, SecretSource)],
        registry_config: Option<PathBuf>,
    ) -> SessionServices {
        SessionServices {
            context,
            secrets: secrets.iter().cloned().collect(),
            registry_config,
            failure: Arc::new(Mutex::new(None)),
            received: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Where what a `tar` exporter sends back is kept (read it after the solve).
    pub fn received(&self) -> Arc<Mutex<Vec<u8>>> {
        self.received.clone()
    }

    /// Why the context could not be written, once the solve is over.
    pub fn context_failure(failure: &Arc<Mutex<Option<String>>>) -> Option<String> {
        failure.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Serves these services on the one connection `io` until `stopped` resolves; returns
    /// the handle of the server's task and where a context failure is kept.
    pub fn serve<IO>(
        self,
        io: IO,
        stopped: tokio::sync::oneshot::Receiver<()>,
    ) -> (tokio::task::JoinHandle<()>, Arc<Mutex<Option<String>>>)
    where
        IO: tokio::io::AsyncRead
            + tokio::io::AsyncWrite
            + tonic::transport::server::Connected
            + Unpin
            + Send
            + 'static,
    {
        let failure = self.failure.clone();
        let upload = UploadServer::new(ContextUpload {
            context: self.context,
            failure: self.failure,
        });
        // The incoming stream stays open so that the server does not shut down after
        // accepting its one connection.
        let incoming = futures_util::StreamExt::chain(
            futures_util::stream::iter([Ok::<_, std::io::Error>(io)]),
            futures_util::stream::pending(),
        );
        let server = tonic::transport::Server::builder()
            .add_service(HealthServer::new(Alive))
            .add_service(upload.max_encoding_message_size(16 << 20))
            .add_service(SecretsServer::new(SecretFiles {
                files: self.secrets,
            }))
            .add_service(AuthServer::new(RegistryCredentials {
                registry_config: self.registry_config,
            }))
            .add_service(FileSendServer::new(Received {
                bytes: self.received,
            }))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            });
        let task = tokio::spawn(async move {
            let _ = server.await;
        });
        (task, failure)
    }
}

/// Builds through a session of our own (see the module's documentation).
/// `within` bounds opening the session and the `/grpc` connection (the connect timeout).
pub async fn solve(
    address: &DaemonAddress,
    within: std::time::Duration,
    build: Solve<'_>,
) -> Result<(), SolveError> {
    let session_id = new_id();
    let upload_id = new_id();
    let services = SessionServices::new(build.context, build.secrets, build.registry_config);
    let headers = session_headers(&session_id);
    let io = buildkit_status::upgraded(address.clone(), "/session", &headers, within)
        .await
        .map_err(|e| SolveError::Connect(format!("opening a BuildKit session: {e}")))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // One connection, served until the solve is over (then closed gracefully).
    let (server, failure) = services.serve(io.into_inner(), stopped);

    let target = SolveTarget {
        platform: build.platform.to_string(),
        labels: build.labels,
        exporter: Exporter::Moby {
            image: build.image.to_string(),
        },
        cache: CacheOptions::default(),
    };
    let request = solve_request(target, build.build_ref, session_id, &upload_id);
    let solved = async {
        let channel = buildkit_status::control_channel(address.clone(), within)
            .await
            .map_err(|e| SolveError::Connect(format!("reaching BuildKit: {e}")))?;
        ControlClient::new(channel)
            .max_decoding_message_size(16 << 20)
            .solve(request)
            .await
            .map_err(|status| SolveError::Build(status.message().to_string()))
    }
    .await;
    let _ = stop.send(());
    // The session closes once dockerd has seen the shutdown; a daemon that does not answer
    // any more must not hold the build.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    match solved {
        Ok(_) => Ok(()),
        Err(e) => Err(SessionServices::context_failure(&failure).map_or(e, SolveError::Context)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What BuildKit is sent for these credentials.
    fn response(username: &str, password: &str) -> CredentialsResponse {
        credentials_response(Some(crate::registry::auth::Credentials {
            username: username.into(),
            password: password.into(),
        }))
    }

    #[test]
    fn a_pushed_solve_names_its_exporter_and_its_cache_for_the_frontend() {
        use bollard_buildkit_proto::moby::buildkit::v1::CacheOptionsEntry;
        let import = CacheOptionsEntry {
            r#type: "registry".into(),
            attrs: HashMap::from([("ref".to_string(), "r/a:buildcache".to_string())]),
        };
        let target = SolveTarget {
            platform: "linux/amd64,linux/arm64".into(),
            labels: &[("k".into(), "v".into())],
            exporter: Exporter::Push {
                image: "r/a:1".into(),
            },
            cache: CacheOptions {
                imports: vec![import],
                ..Default::default()
            },
        };
        let request = solve_request(target, "ref".into(), "s".into(), "u");
        assert_eq!(
            request.frontend_attrs["platform"],
            "linux/amd64,linux/arm64"
        );
        assert_eq!(request.frontend_attrs["label:k"], "v");
        assert_eq!(
            request.frontend_attrs["cache-imports"],
            r#"[{"Type":"registry","Attrs":{"ref":"r/a:buildcache"}}]"#
        );
        assert_eq!(request.exporters[0].r#type, "image");
        assert_eq!(request.exporters[0].attrs["push"], "true");
        assert_eq!(request.exporter_deprecated, "");
        let moby = SolveTarget {
            platform: "linux/amd64".into(),
            labels: &[],
            exporter: Exporter::Moby {
                image: "r/a:1".into(),
            },
            cache: CacheOptions::default(),
        };
        let request = solve_request(moby, "ref".into(), "s".into(), "u");
        assert_eq!(request.exporter_deprecated, "moby");
        assert!(request.exporters.is_empty());
        assert!(!request.frontend_attrs.contains_key("cache-imports"));
    }

    #[test]
    fn identity_tokens_go_to_buildkit_as_docker_sends_them() {
        let token = response("<token>", "idt");
        assert_eq!(
            (token.username.as_str(), token.secret.as_str()),
            ("", "idt")
        );
        let basic = response("me", "pw");
        assert_eq!(
            (basic.username.as_str(), basic.secret.as_str()),
            ("me", "pw")
        );
        assert_eq!(credentials_response(None), CredentialsResponse::default());
    }

    /// The context reaches the stream whole, in chunks no larger than a message, with at
    /// most a few chunks waiting (the writer blocks until they are read).
    #[tokio::test(flavor = "multi_thread")]
    async fn the_context_reaches_the_channel_in_bounded_chunks_in_order() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
        let data: Vec<u8> = (0..(3 * CHUNK + 1234)).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let mut out = Batched::new(Channel { tx }, CHUNK);
            for piece in sent.chunks(10_000) {
                std::io::Write::write_all(&mut out, piece).unwrap();
            }
            out.finish().unwrap();
        });
        let mut received = Vec::new();
        while let Some(message) = rx.recv().await {
            let message = message.unwrap();
            assert!(message.data.len() <= CHUNK);
            received.extend(message.data);
        }
        writer.await.unwrap();
        assert!(received == data);
    }
}
