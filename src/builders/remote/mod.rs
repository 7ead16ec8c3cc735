//! A BuildKit builder that talks to any buildkitd (buildx's `remote` driver, envd's
//! `--builder tcp`): the Dockerfile frontend solves on the remote builder, the build's
//! session (the context streamed, secrets, registry credentials) is carried inside
//! `Control.Session` ([`connect`]), and the builder pushes the result itself with BuildKit's
//! `image` exporter (`push=true`), so that nothing large crosses this machine's link. Several
//! platforms are one solve (`platform=a,b`: an index, exported by BuildKit) when the
//! builder's workers have them all; a builder without one is refused before anything runs.
//!
//! A registry cache ([`cache`]) makes an ephemeral builder start warm.
//!
//! dockerd's own BuildKit is not driven through this client: dockerd 20.10's `/grpc` has no
//! `image` exporter with push (its `moby` exporter tags into dockerd, which then pushes),
//! no registry cache export, and runs one platform per solve; [`super::docker`] keeps those.

pub mod cache;
pub mod connect;
pub mod dependency;
pub mod host;

use super::BackendError;
use super::builder::{Builder, Built};
use super::session::{self, SessionServices, SolveTarget};
use crate::oci::{Digest, ImageRef, Platforms};
use crate::plan::BuildPlan;
use crate::progress::{Event, Progress};
use crate::render::steps::StepLabels;
use crate::timeouts::Timeouts;
use bollard_buildkit_proto::moby::buildkit::v1::{
    ListWorkersRequest, StatusRequest, control_client::ControlClient,
};
use futures_util::StreamExt;
use host::BuilderHost;
use tonic::transport::Channel;

/// Why a remote build did not happen (a failing step is [`BackendError::BuildFailed`]).
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "the BuildKit builder at {host} is not reachable: {source}; start it, or fix --builder-host / {}",
        host::BUILDKIT_HOST_ENV
    )]
    Unreachable {
        host: String,
        #[source]
        source: connect::ConnectError,
    },
    #[error(
        "the BuildKit builder at {host} refused the TLS connection: {detail}; check --tlscacert, --tlscert and --tlskey (buildkitd must trust the client certificate's CA, and --tlscacert must hold the CA of buildkitd's certificate)"
    )]
    Tls { host: String, detail: String },
    #[error("the BuildKit builder at {host} answered `{call}` with: {detail}")]
    Refused {
        host: String,
        call: &'static str,
        detail: String,
    },
    #[error(
        "the BuildKit builder at {host} cannot build {}: its workers build {}; build fewer platforms or use a builder that has them",
        missing.join(", "),
        if has.is_empty() { "no platform".to_string() } else { has.join(", ") }
    )]
    MissingPlatforms {
        host: String,
        missing: Vec<String>,
        has: Vec<String>,
    },
    #[error("the BuildKit builder at {host} pushed {image} but did not say its digest")]
    NoDigest { host: String, image: String },
}

/// The remote builders chosen (`--builder-host`, `BUILDKIT_HOST`, the defaults file) and
/// their registry cache. One builder today; a list, so that images built in parallel can
/// be spread over several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOptions {
    pub hosts: Vec<BuilderHost>,
    pub cache: cache::CacheChoice,
    /// The builds each host has going, shared by the images of one run.
    pub load: host::Load,
}

impl RemoteOptions {
    /// The builder a build runs on: the least busy host, counted busy while the builder
    /// lives.
    pub fn builder(&self, timeouts: Timeouts) -> Option<RemoteBuildkit> {
        let lease = self.load.take(self.hosts.len())?;
        self.hosts.get(lease.index()).map(|host| RemoteBuildkit {
            host: host.clone(),
            cache: self.cache.clone(),
            timeouts,
            _lease: Some(lease),
        })
    }

    /// The addresses, for messages.
    pub fn names(&self) -> String {
        let names: Vec<String> = self.hosts.iter().map(ToString::to_string).collect();
        names.join(", ")
    }
}

/// A remote buildkitd, its cache and the timeouts of its connection.
pub struct RemoteBuildkit {
    pub host: BuilderHost,
    pub cache: cache::CacheChoice,
    pub timeouts: Timeouts,
    /// The host counted busy while this builder lives (several hosts share a run).
    _lease: Option<host::Lease>,
}

impl Builder for RemoteBuildkit {
    type Plan = BuildPlan;

    /// Solves `plan` for its platforms on the builder, which pushes `plan.image` itself.
    async fn build(&self, plan: &BuildPlan, progress: &Progress) -> Result<Built, BackendError> {
        let exporter = session::Exporter::Push {
            image: plan.image.to_string(),
        };
        let digest = self.solve(plan, &plan.platform, exporter, progress).await?;
        let image = plan.image.clone();
        // The builder has the images, not this process: they are read back when needed.
        let images = None;
        Ok(Built::Pushed {
            image,
            digest,
            images,
        })
    }
}

/// The repository of `image` (without its tag or digest): where a push by digest goes.
pub fn repository_of(image: &ImageRef) -> String {
    image.name().to_string()
}

/// BuildKit's answer in words, and whether it is a TLS failure (a client certificate
/// refused, an unknown CA: rustls's "received fatal alert", "invalid peer certificate").
fn tls_failure(text: &str) -> bool {
    let lower = text.to_lowercase();
    [
        "fatal alert",
        "certificate",
        "tls handshake",
        "peer sent no certificates",
    ]
    .iter()
    .any(|m| lower.contains(m))
}

/// The platforms asked for that `has` (the workers' `os/arch[/variant]`) lacks. A worker's
/// `linux/arm/v7` serves `linux/arm/v7` only; `linux/arm64` serves `linux/arm64/v8` too.
pub fn missing_platforms(wanted: &Platforms, has: &[String]) -> Vec<String> {
    let normal = |p: &str| p.trim_end_matches("/v8").to_string();
    wanted
        .iter()
        .filter(|w| !has.iter().any(|h| normal(h) == normal(w.as_str())))
        .map(|w| w.to_string())
        .collect()
}

impl RemoteBuildkit {
    fn host_name(&self) -> String {
        self.host.to_string()
    }

    /// A failed call as [`RemoteError`]: TLS, unreachable, or the builder's answer.
    fn refused(&self, call: &'static str, status: &tonic::Status) -> RemoteError {
        let mut detail = status.message().to_string();
        if let Some(source) = std::error::Error::source(status) {
            detail = format!("{detail}: {}", super::buildkit_status::with_causes(source));
        }
        if tls_failure(&detail) {
            RemoteError::Tls {
                host: self.host_name(),
                detail,
            }
        } else {
            RemoteError::Refused {
                host: self.host_name(),
                call,
                detail,
            }
        }
    }

    /// Connects and checks the workers have every platform (the first call: a wrong
    /// certificate or an unreachable builder fails here, before anything is sent).
    pub(crate) async fn connect(&self, platforms: &Platforms) -> Result<Channel, RemoteError> {
        let channel = connect::control(&self.host, self.timeouts.connect)
            .await
            .map_err(|source| match &source {
                connect::ConnectError::Transport(_) if tls_failure(&source.to_string()) => {
                    RemoteError::Tls {
                        host: self.host_name(),
                        detail: source.to_string(),
                    }
                }
                _ => RemoteError::Unreachable {
                    host: self.host_name(),
                    source,
                },
            })?;
        let mut control = ControlClient::new(channel.clone());
        let asking = control.list_workers(ListWorkersRequest::default());
        let workers = tokio::time::timeout(self.timeouts.stall, asking)
            .await
            .map_err(|_| RemoteError::Refused {
                host: self.host_name(),
                call: "ListWorkers",
                detail: format!(
                    "no answer within {} (--stall-timeout)",
                    crate::timeouts::seconds(self.timeouts.stall)
                ),
            })?
            .map_err(|status| self.refused("ListWorkers", &status))?
            .into_inner();
        let mut has = Vec::new();
        for worker in &workers.record {
            for p in &worker.platforms {
                let mut name = format!("{}/{}", p.os, p.architecture);
                if !p.variant.is_empty() {
                    name = format!("{name}/{}", p.variant);
                }
                if !has.contains(&name) {
                    has.push(name);
                }
            }
        }
        let missing = missing_platforms(platforms, &has);
        if !missing.is_empty() {
            return Err(RemoteError::MissingPlatforms {
                host: self.host_name(),
                missing,
                has,
            });
        }
        Ok(channel)
    }

    /// Builds `plan` for `platforms` and pushes it by digest into its repository, no tag
    /// moved (the caller tags it once its checks hold): the digest.
    pub async fn build_untagged(
        &self,
        plan: &BuildPlan,
        platforms: &Platforms,
        progress: &Progress,
    ) -> Result<Digest, BackendError> {
        let exporter = session::Exporter::PushByDigest {
            repository: repository_of(&plan.image),
        };
        self.solve(plan, platforms, exporter, progress).await
    }

    /// One solve of `plan` for every platform, pushed by the builder as `exporter` says,
    /// with the registry cache: the digest it pushed (an index for several platforms).
    async fn solve(
        &self,
        plan: &BuildPlan,
        platforms: &Platforms,
        exporter: session::Exporter,
        progress: &Progress,
    ) -> Result<Digest, BackendError> {
        let channel = self.connect(platforms).await?;
        for sparse in plan.sparse_files() {
            progress.event(Event::Warning(&sparse.to_string()));
        }
        let (cache, said) = self.cache.options(&plan.image);
        progress.event(Event::Info(&said));
        let solve = RemoteSolve::of_plan(plan, platforms, exporter, cache);
        let solved = self.run(&channel, solve, progress).await?;
        self.digest_of(solved, &plan.image)
    }

    /// The digest the exporter pushed, which it must say.
    fn digest_of(&self, solved: Solved, image: &ImageRef) -> Result<Digest, BackendError> {
        solved.digest.ok_or_else(|| {
            RemoteError::NoDigest {
                host: self.host_name(),
                image: image.to_string(),
            }
            .into()
        })
    }

    /// Runs `solve` on `channel` (from [`RemoteBuildkit::connect`]), its session carried by
    /// `Control.Session`, its progress followed.
    async fn run(
        &self,
        channel: &Channel,
        solve: RemoteSolve<'_>,
        progress: &Progress,
    ) -> Result<Solved, BackendError> {
        let services = SessionServices::new(solve.context, &solve.secrets, solve.registry_config);
        let received = services.received();
        let session_id = session::new_id();
        let upload_id = session::new_id();
        let build_ref = session::new_id();
        let io = connect::hijack(
            ControlClient::new(channel.clone()),
            &session::session_headers(&session_id),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (server, failure) = services.serve(io, stopped);
        let target = SolveTarget {
            platform: solve.platforms.to_string(),
            labels: solve.labels,
            exporter: solve.exporter,
            cache: solve.cache,
        };
        let request = session::solve_request(target, build_ref.clone(), session_id, &upload_id);
        let mut tracker = crate::builders::docker::StepTracker::new(solve.steps);
        let solved =
            follow_while(channel.clone(), request, build_ref, &mut tracker, progress).await;
        // The solve has returned: the builder asks nothing more on this session. buildkitd
        // keeps the session's stream open until this side ends it, so a graceful shutdown
        // (which waits for the builder to close first) only ever timed out, 5 s on every
        // remote build: end it here.
        drop(stop);
        server.abort();
        let _ = server.await;
        progress.clear();
        let response = match solved {
            Ok(response) => response,
            Err(status) => {
                if let Some(message) = SessionServices::context_failure(&failure) {
                    return Err(BackendError::Context(message));
                }
                return Err(self.failed(&status, &tracker, progress));
            }
        };
        let received = std::mem::take(&mut *received.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(Solved {
            digest: response
                .exporter_response
                .get("containerimage.digest")
                .and_then(|d| Digest::parse(d).ok()),
            received,
        })
    }

    /// A failed solve: the failing step, its command and output; else the builder's words.
    fn failed(
        &self,
        status: &tonic::Status,
        tracker: &crate::builders::docker::StepTracker,
        progress: &Progress,
    ) -> BackendError {
        let (step, log) = tracker.failed();
        if step.is_none()
            && matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
            )
            && tls_failure(&format!("{status:?}"))
        {
            return self.refused("Solve", status).into();
        }
        let message = status.message().to_string();
        let (command, message) = match super::failed_command(&message) {
            Some((command, ending)) => (Some(command), ending),
            None => (None, message),
        };
        BackendError::BuildFailed {
            step,
            command,
            message,
            log_shown: progress.shows_step_output() && !log.is_empty(),
            log,
        }
    }
}

/// One solve: its context and secrets, what it builds for which platforms, where the
/// result goes, its cache, how its steps are shown.
struct RemoteSolve<'a> {
    context: session::ContextWriter,
    secrets: Vec<(String, session::SecretSource)>,
    registry_config: Option<std::path::PathBuf>,
    labels: &'a [(String, String)],
    platforms: &'a Platforms,
    exporter: session::Exporter,
    cache: bollard_buildkit_proto::moby::buildkit::v1::CacheOptions,
    steps: StepLabels,
}

impl<'a> RemoteSolve<'a> {
    /// The solve of a plan's Dockerfile and context.
    fn of_plan(
        plan: &'a BuildPlan,
        platforms: &'a Platforms,
        exporter: session::Exporter,
        cache: bollard_buildkit_proto::moby::buildkit::v1::CacheOptions,
    ) -> RemoteSolve<'a> {
        let (context, secrets) = session::plan_inputs(plan);
        RemoteSolve {
            context,
            secrets,
            registry_config: plan.registry_config.clone(),
            labels: &plan.labels,
            platforms,
            exporter,
            cache,
            steps: StepLabels::new(plan),
        }
    }
}

/// What a solve gave: the digest an image exporter pushed, the bytes a tar exporter sent.
struct Solved {
    digest: Option<Digest>,
    received: Vec<u8>,
}

/// Runs `request` on `channel` while `Control.Status` of `build_ref` feeds `tracker`.
async fn follow_while(
    channel: Channel,
    request: bollard_buildkit_proto::moby::buildkit::v1::SolveRequest,
    build_ref: String,
    tracker: &mut crate::builders::docker::StepTracker,
    progress: &Progress,
) -> Result<bollard_buildkit_proto::moby::buildkit::v1::SolveResponse, tonic::Status> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut status_client = ControlClient::new(channel.clone()).max_decoding_message_size(16 << 20);
    let follower = tokio::spawn(async move {
        // Status waits for the build to appear, so it may be asked before Solve starts.
        let mut stream = status_client
            .status(StatusRequest { r#ref: build_ref })
            .await?
            .into_inner();
        while let Some(message) = stream.next().await {
            let _ = tx.send(message?);
        }
        Ok::<_, tonic::Status>(())
    });
    let mut solve_client = ControlClient::new(channel).max_decoding_message_size(16 << 20);
    let solve = solve_client.solve(request);
    tokio::pin!(solve);
    let result = loop {
        tokio::select! {
            result = &mut solve => break result,
            Some(status) = rx.recv() => tracker.apply(status, progress),
        }
    };
    // What the status stream still has (it ends with the build).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), follower).await;
    while let Ok(status) = rx.try_recv() {
        tracker.apply(status, progress);
    }
    result.map(tonic::Response::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_by_digest_goes_to_the_images_repository() {
        assert_eq!(
            repository_of(&"localhost:5000/a/b:deps-1".parse().unwrap()),
            "localhost:5000/a/b"
        );
        assert_eq!(
            repository_of(
                &"r/a@sha256:0000000000000000000000000000000000000000000000000000000000000000"
                    .parse()
                    .unwrap()
            ),
            "r/a"
        );
        assert_eq!(repository_of(&"app".parse().unwrap()), "app");
    }

    #[test]
    fn a_platform_the_workers_lack_is_named() {
        let has = vec!["linux/amd64".to_string(), "linux/arm64".to_string()];
        let wanted = Platforms::parse("linux/amd64,linux/arm64/v8,linux/s390x").unwrap();
        assert_eq!(missing_platforms(&wanted, &has), vec!["linux/s390x"]);
        assert!(missing_platforms(&Platforms::parse("linux/amd64").unwrap(), &has).is_empty());
    }

    #[test]
    fn tls_failures_are_told_from_other_answers() {
        assert!(tls_failure(
            "transport error: received fatal alert: CertificateRequired"
        ));
        assert!(tls_failure("invalid peer certificate: UnknownIssuer"));
        assert!(!tls_failure("connection refused"));
    }

    #[test]
    fn a_builder_without_a_platform_says_which_it_has() {
        let e = RemoteError::MissingPlatforms {
            host: "tcp://b:1".into(),
            missing: vec!["linux/s390x".into()],
            has: vec!["linux/amd64".into()],
        };
        assert_eq!(
            e.to_string(),
            "the BuildKit builder at tcp://b:1 cannot build linux/s390x: its workers build linux/amd64; build fewer platforms or use a builder that has them"
        );
    }
}
