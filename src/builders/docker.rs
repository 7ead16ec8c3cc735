//! The Docker backend: builds through dockerd's embedded BuildKit with bollard (the gRPC
//! Moby driver: secrets, cache mounts, the built-in Dockerfile frontend), follows progress
//! with BuildKit's `Control.Status` ([`super::buildkit_status`]), tags into dockerd and
//! pushes with bollard.
//!
//! No call waits forever ([`crate::timeouts`]): every request's answer must start within
//! the stall timeout (bollard's per-request timeout), the push's progress stream must move
//! within it, and a build must report status within it — or, in a step that prints nothing
//! for longer, dockerd must still answer `/_ping`.

use super::BackendError;
use super::buildkit_status::{self, DaemonAddress};
use super::session::{self, Solve, SolveError};
use crate::oci::{ImageRef, Platform};
use crate::plan::BuildPlan;
use crate::progress::{Event, Progress};
use crate::registry::auth::Credentials;
use crate::render::steps::StepLabels;
use crate::timeouts::Timeouts;
use bollard::auth::DockerCredentials;
use bollard::grpc::BuildRef;
use futures_util::StreamExt;
use std::collections::HashMap;

/// The daemon address when `DOCKER_HOST` is unset.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

pub use crate::registry::client::Existence;

/// A connected dockerd.
pub struct DockerDaemon {
    client: bollard::Docker,
    host: String,
    address: DaemonAddress,
    timeouts: Timeouts,
}

impl DockerDaemon {
    /// Connects to `DOCKER_HOST` (default `unix:///var/run/docker.sock`) and checks that the
    /// daemon answers (`/_ping` within the connect timeout, `/version` within the stall
    /// timeout).
    pub async fn connect(timeouts: Timeouts) -> Result<DockerDaemon, BackendError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_string());
        let unreachable = |detail: String| BackendError::DaemonUnreachable {
            host: host.clone(),
            detail,
        };
        let address = DaemonAddress::parse(&host).ok_or_else(|| {
            unreachable("DOCKER_HOST must be unix:///path or tcp://host:port".into())
        })?;
        // bollard's timeout runs until the head of each answer (not through a streamed
        // body): the stall timeout, since a healthy dockerd answers at once, also the
        // pushes and waits whose bodies come later.
        let answer_within = timeouts.stall.as_secs_f64().ceil().max(1.0) as u64;
        let client = match &address {
            DaemonAddress::Unix(path) => bollard::Docker::connect_with_unix(
                path,
                answer_within,
                bollard::API_DEFAULT_VERSION,
            ),
            DaemonAddress::Tcp(addr) => bollard::Docker::connect_with_http(
                addr,
                answer_within,
                bollard::API_DEFAULT_VERSION,
            ),
        }
        .map_err(|e| unreachable(e.to_string()))?;
        match tokio::time::timeout(timeouts.connect, client.ping()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(unreachable(root_cause(&e))),
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer to /_ping within {}",
                    crate::timeouts::seconds(timeouts.connect)
                )));
            }
        }
        let client = match tokio::time::timeout(timeouts.stall, client.negotiate_version()).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) if !matches!(e, bollard::errors::Error::RequestTimeoutError) => {
                return Err(unreachable(root_cause(&e)));
            }
            _ => {
                return Err(BackendError::DaemonStalled {
                    host: host.clone(),
                    what: "no answer to GET /version".into(),
                    after: timeouts.stall,
                });
            }
        };
        Ok(DockerDaemon {
            client,
            host,
            address,
            timeouts,
        })
    }

    /// A failed request in words: bollard's "Timeout error" says which request timed out.
    fn failure(&self, request: &str, e: &bollard::errors::Error) -> String {
        match e {
            bollard::errors::Error::RequestTimeoutError => format!(
                "dockerd at {} did not answer {request} within {} (--stall-timeout / {})",
                self.host,
                crate::timeouts::seconds(self.timeouts.stall),
                crate::timeouts::STALL_TIMEOUT_ENV
            ),
            e => root_cause(e),
        }
    }

    /// Whether dockerd answers `/_ping` within the stall timeout.
    async fn answers_ping(&self) -> bool {
        tokio::time::timeout(self.timeouts.stall, self.client.ping())
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The daemon address in use.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether dockerd has `image` locally (flytekit's `exist()` for a spec without a
    /// registry; with one, the registry is asked directly: [`crate::registry::client`]).
    pub async fn exists_locally(&self, image: &ImageRef) -> Existence {
        match self.client.inspect_image(&image.to_string()).await {
            Ok(_) => Existence::Yes,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Existence::No,
            Err(e) => Existence::Unknown(self.failure(&format!("GET /images/{image}/json"), &e)),
        }
    }

    /// Builds `plan` into dockerd as `plan.image`, streaming BuildKit's progress.
    pub async fn build(&self, plan: &BuildPlan, progress: &Progress) -> Result<(), BackendError> {
        if plan.platform.several() {
            return Err(BackendError::MultiPlatform {
                platform: plan.platform.clone(),
            });
        }
        for sparse in plan.sparse_files() {
            progress.event(Event::Warning(&sparse.to_string()));
        }
        let (context, secrets) = session::plan_inputs(plan);
        let image = plan.image.to_string();
        let build = Solve {
            image: &image,
            platform: plan.platform.first().as_str(),
            context,
            secrets: &secrets,
            labels: &plan.labels,
            build_ref: String::new(),
            registry_config: plan.registry_config.clone(),
        };
        self.build_context(build, StepLabels::new(plan), progress)
            .await
    }

    /// Builds `image` as `from` plus `labels` (no layer is added).
    pub async fn relabel(
        &self,
        from: &ImageRef,
        image: &ImageRef,
        labels: &[(&str, String)],
        platform: &Platform,
        progress: &Progress,
    ) -> Result<(), BackendError> {
        let mut dockerfile = format!("FROM {from}\n");
        for (k, v) in labels {
            dockerfile.push_str(&session::label_line(k, v));
        }
        let context = session::dockerfile_only(&dockerfile)
            .map_err(|e| BackendError::Context(e.to_string()))?;
        let name = image.to_string();
        let build = Solve {
            image: &name,
            platform: platform.as_str(),
            context,
            secrets: &[],
            labels: &[],
            build_ref: String::new(),
            registry_config: None,
        };
        let from = format!("FROM {from}");
        let label = format!("label {image}");
        self.build_context(
            build,
            StepLabels::of([(from.as_str(), label.as_str())]),
            progress,
        )
        .await
    }

    /// What the fast path needs to know of a dependency image's file system, as the
    /// `DEPENDENCY_LABEL` value: `<flytekit uid> <uid> <gid> <mode>` of /root. Asked of a
    /// short-lived container (`id`, `stat`), which the image's own tools answer exactly.
    /// `platform`: the image's (another architecture's runs under emulation).
    pub async fn dependency_facts(
        &self,
        image: &ImageRef,
        platform: &Platform,
    ) -> Result<String, BackendError> {
        let out = self
            .run_script(image, platform.as_str(), DEPENDENCY_FACTS_SCRIPT)
            .await?;
        dependency_facts(image, &out)
    }

    /// Runs `script` with `/bin/sh -c` as root in a container of `image`; its stdout.
    async fn run_script(
        &self,
        image: &ImageRef,
        platform: &str,
        script: &str,
    ) -> Result<String, BackendError> {
        use bollard::models::ContainerCreateBody;
        let failed = |e: bollard::errors::Error| {
            BackendError::Context(format!(
                "running a container of {image}: {}",
                self.failure("a container request", &e)
            ))
        };
        // The container's streams come after their answers' heads: bounded here.
        let stall = self.timeouts.stall;
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
            cmd: Some(vec![]),
            user: Some("0".into()),
            network_disabled: Some(true),
            ..Default::default()
        };
        let created = self
            .client
            .create_container(
                Some(bollard::query_parameters::CreateContainerOptions {
                    name: None,
                    platform: platform.to_string(),
                }),
                body,
            )
            .await
            .map_err(failed)?;
        let result = async {
            self.client
                .start_container(
                    &created.id,
                    None::<bollard::query_parameters::StartContainerOptions>,
                )
                .await?;
            let mut wait = self.client.wait_container(
                &created.id,
                None::<bollard::query_parameters::WaitContainerOptions>,
            );
            while let Some(w) = tokio::time::timeout(stall, wait.next())
                .await
                .map_err(|_| bollard::errors::Error::RequestTimeoutError)?
            {
                w?;
            }
            let options = bollard::query_parameters::LogsOptions {
                stdout: true,
                stderr: true,
                ..Default::default()
            };
            let mut logs = self.client.logs(&created.id, Some(options));
            let mut out = String::new();
            while let Some(chunk) = tokio::time::timeout(stall, logs.next())
                .await
                .map_err(|_| bollard::errors::Error::RequestTimeoutError)?
            {
                if let bollard::container::LogOutput::StdOut { message } = chunk? {
                    out.push_str(&String::from_utf8_lossy(&message));
                }
            }
            Ok::<_, bollard::errors::Error>(out)
        }
        .await;
        let remove = bollard::query_parameters::RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        let _ = self
            .client
            .remove_container(&created.id, Some(remove))
            .await;
        result.map_err(failed)
    }

    /// Removes the tag `image` from dockerd (the image stays while other tags use it).
    pub async fn untag(&self, image: &ImageRef) {
        let _ = self
            .client
            .remove_image(
                &image.to_string(),
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    }

    /// Builds the Dockerfile in `build.context` (an uncompressed tar, written as it is
    /// sent) as `build.image` (its `build_ref` is made here); its steps are shown with
    /// `labels`.
    async fn build_context(
        &self,
        mut build: Solve<'_>,
        labels: StepLabels,
        progress: &Progress,
    ) -> Result<(), BackendError> {
        let build_ref = BuildRef::random();
        let ref_id = build_ref.as_ref().to_string();
        build.build_ref = ref_id.clone();

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut follower = tokio::spawn(buildkit_status::follow(
            self.address.clone(),
            ref_id.clone(),
            self.timeouts,
            move |status| {
                let _ = tx.send(status);
            },
        ));
        let solve = session::solve(&self.address, self.timeouts.connect, build);
        tokio::pin!(solve);
        let mut tracker = StepTracker::new(labels);
        let stall = self.timeouts.stall;
        let mut seen_status = false;
        let mut quiet_since = tokio::time::Instant::now();
        let stalled = |what: String| BackendError::DaemonStalled {
            host: self.host.clone(),
            what,
            after: stall,
        };
        // Returning drops `solve`, which closes its connections: dockerd cancels the build.
        let result = loop {
            tokio::select! {
                result = &mut solve => break result,
                Some(status) = rx.recv() => {
                    seen_status = true;
                    quiet_since = tokio::time::Instant::now();
                    tracker.apply(status, progress);
                }
                () = tokio::time::sleep_until(quiet_since + stall) => {
                    if !seen_status {
                        // BuildKit reports its first step as soon as the build starts.
                        progress.clear();
                        // The status follower's own failure, when it has one, says more.
                        let mut why = String::new();
                        if follower.is_finished()
                            && let Ok(Err(e)) = (&mut follower).await
                        {
                            why = format!(": {e}");
                        }
                        follower.abort();
                        return Err(stalled(format!(
                            "no build status from BuildKit (POST /grpc){why}"
                        )));
                    }
                    // A step may print nothing for long: go on while dockerd answers.
                    if !self.answers_ping().await {
                        progress.clear();
                        follower.abort();
                        return Err(stalled(
                            "no build status and no answer to /_ping".into(),
                        ));
                    }
                    quiet_since = tokio::time::Instant::now();
                }
            }
        };
        // Drain what the status stream still has (it ends with the build).
        if let Ok(Ok(_)) = tokio::time::timeout(std::time::Duration::from_secs(5), follower).await {
        }
        while let Ok(status) = rx.try_recv() {
            tracker.apply(status, progress);
        }
        progress.clear();
        self.solved(result, &tracker, progress).await
    }

    /// What a solve's end means: done, or why it failed (the failing step, its command and
    /// output, whether dockerd went away).
    async fn solved(
        &self,
        result: Result<(), SolveError>,
        tracker: &StepTracker,
        progress: &Progress,
    ) -> Result<(), BackendError> {
        let message = match result {
            Ok(()) => return Ok(()),
            Err(SolveError::Context(message)) => return Err(BackendError::Context(message)),
            Err(SolveError::Connect(detail)) => {
                return Err(BackendError::DaemonUnreachable {
                    host: self.host.clone(),
                    detail,
                });
            }
            Err(SolveError::Build(message)) => message,
        };
        let (step, log) = tracker.failed();
        let (command, mut message) = match super::failed_command(&message) {
            Some((command, ending)) => (Some(command), ending),
            None => (None, message),
        };
        // A dropped connection with no failing step: say whether the daemon itself went away.
        if step.is_none() && !self.answers_ping().await {
            message = format!(
                "{message}: dockerd at {} stopped answering during the build (did it crash? see its log)",
                self.host
            );
        }
        Err(BackendError::BuildFailed {
            step,
            command,
            message,
            log_shown: progress.shows_step_output() && !log.is_empty(),
            log,
        })
    }

    /// Pushes `image` (`repo:tag`) with `credentials`, reporting per-layer progress as
    /// step `step`'s; the digest of the manifest pushed, when dockerd says it (it does, in
    /// its last status).
    pub async fn push(
        &self,
        image: &ImageRef,
        credentials: Option<&Credentials>,
        step: &str,
        progress: &Progress,
    ) -> Result<Option<String>, BackendError> {
        let mut digest = None;
        let options = bollard::query_parameters::PushImageOptions {
            tag: image.tag().map(String::from),
            platform: None,
        };
        let repo = image.name().to_string();
        let mut stream =
            self.client
                .push_image(&repo, Some(options), credentials.map(docker_credentials));
        let failed = |message: String| BackendError::Push {
            image: image.to_string(),
            message,
        };
        // dockerd reports a layer's progress as it uploads: silence is a stall, of dockerd
        // or of the registry it pushes to.
        while let Some(item) = tokio::time::timeout(self.timeouts.stall, stream.next())
            .await
            .map_err(|_| BackendError::DaemonStalled {
                host: self.host.clone(),
                what: format!("no progress pushing {image} (dockerd or the registry stalled)"),
                after: self.timeouts.stall,
            })?
        {
            let info = item.map_err(|e| {
                let message = self.failure(&format!("the push of {image}"), &e);
                failed(push_refusal(&message, credentials, image).unwrap_or(message))
            })?;
            if let Some(detail) = info.error_detail {
                let message = detail.message.unwrap_or_default();
                return Err(failed(
                    push_refusal(&message, credentials, image).unwrap_or(message),
                ));
            }
            if let Some(status) = info.status.as_deref() {
                digest = pushed_digest(status).or(digest);
                let (current, total) = info
                    .progress_detail
                    .map_or((None, None), |d| (d.current, d.total));
                // bollard's PushImageInfo leaves out dockerd's layer `id`: the printer tells
                // layers apart by their size.
                progress.event(Event::Push {
                    step,
                    layer: None,
                    status,
                    current: current.and_then(|c| u64::try_from(c).ok()),
                    total: total.and_then(|t| u64::try_from(t).ok()),
                });
            }
        }
        Ok(digest)
    }
}

/// The shell script that prints a dependency image's facts (`DEPENDENCY_LABEL`).
pub(crate) const DEPENDENCY_FACTS_SCRIPT: &str =
    r#"printf '%s %s\n' "$(id -u flytekit)" "$(stat -c '%u %g %a' /root)""#;

/// [`DEPENDENCY_FACTS_SCRIPT`]'s output checked: `<uid> <uid> <gid> <octal mode>`.
pub(crate) fn dependency_facts(image: &ImageRef, out: &str) -> Result<String, BackendError> {
    let fields: Vec<&str> = out.split_whitespace().collect();
    let valid = fields.len() == 4
        && fields[..3].iter().all(|f| f.parse::<u64>().is_ok())
        && u32::from_str_radix(fields[3], 8).is_ok();
    if !valid {
        return Err(BackendError::Context(format!(
            "{image}: could not read the flytekit user and /root (`id`, `stat`): {out:?}"
        )));
    }
    Ok(fields.join(" "))
}

/// dockerd's "denied"/"unauthorized" for a push, as the line a user acts on. The build
/// asked the registry whether the image exists with the same credentials first, so a
/// refusal now is of the push, not of the credentials.
fn push_refusal(
    message: &str,
    credentials: Option<&Credentials>,
    image: &ImageRef,
) -> Option<String> {
    use crate::registry::client::{Refusal, refusal_message};
    // The registry's own words as dockerd relays them (not "permission denied" on a socket).
    let lower = message.to_lowercase();
    if ![
        "denied: requested access",
        "unauthorized: ",
        "insufficient_scope",
    ]
    .iter()
    .any(|m| lower.contains(m))
    {
        return None;
    }
    let refusal = match credentials {
        None => Refusal::Anonymous { config: None },
        Some(c) if c.identity_token().is_some() => Refusal::NoPush {
            user: "the identity token".into(),
        },
        Some(c) => Refusal::NoPush {
            user: c.username.clone(),
        },
    };
    Some(refusal_message(&refusal, image.host(), image.repository()))
}

/// The manifest digest in dockerd's last push status, `TAG: digest: sha256:… size: N`
/// (what `docker push` prints): the manifest it pushed, whoever moves the tag afterwards.
fn pushed_digest(status: &str) -> Option<String> {
    let rest = status.split_once(": digest: ")?.1;
    let digest = rest.split_whitespace().next()?;
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| digest.to_string())
}

fn docker_credentials(c: &Credentials) -> DockerCredentials {
    if let Some(token) = c.identity_token() {
        DockerCredentials {
            identitytoken: Some(token.to_string()),
            ..Default::default()
        }
    } else {
        DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.clone()),
            ..Default::default()
        }
    }
}

/// The innermost message of an error chain: one clear cause, not a stack of wrappers.
/// A tagged image in dockerd, as `imagespec prune` reads it.
#[derive(Debug, Clone)]
pub struct LocalImage {
    pub id: String,
    /// `repository:tag`, as `docker images` shows them.
    pub tags: Vec<String>,
    pub labels: HashMap<String, String>,
    /// Unix seconds.
    pub created: i64,
    /// Bytes, shared layers included (`docker images`' SIZE).
    pub size: u64,
}

/// What `GET /images/{id}/json` tells `imagespec prune`.
#[derive(Debug, Clone)]
pub struct ImageLayers {
    /// Diff ids, base first.
    pub layers: Vec<String>,
    /// Unix seconds; `None` when dockerd does not say.
    pub last_tagged: Option<i64>,
}

/// A request of `imagespec prune` that dockerd did not answer as asked: the request, and
/// what went wrong in words (dockerd's root cause, or the stall).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DaemonRequestError {
    /// `GET /images/json`, `DELETE /images/{image}`…
    pub request: String,
    message: String,
    #[source]
    pub source: bollard::errors::Error,
}

impl DockerDaemon {
    /// `source` of `request` as a [`DaemonRequestError`].
    fn request_failed(
        &self,
        request: String,
        source: bollard::errors::Error,
    ) -> DaemonRequestError {
        DaemonRequestError {
            message: self.failure(&request, &source),
            request,
            source,
        }
    }

    /// Every tagged image (`GET /images/json`).
    pub async fn images(&self) -> Result<Vec<LocalImage>, DaemonRequestError> {
        let listed = self
            .client
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await
            .map_err(|e| self.request_failed("GET /images/json".into(), e))?;
        Ok(listed
            .into_iter()
            .map(|i| LocalImage {
                id: i.id,
                tags: i
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
                labels: i.labels,
                created: i.created,
                size: u64::try_from(i.size).unwrap_or(0),
            })
            .filter(|i| !i.tags.is_empty())
            .collect())
    }

    /// An image's layers and when it was last tagged on this daemon.
    pub async fn image_layers(&self, image: &str) -> Result<ImageLayers, DaemonRequestError> {
        let inspected = self
            .client
            .inspect_image(image)
            .await
            .map_err(|e| self.request_failed(format!("GET /images/{image}/json"), e))?;
        let layers = inspected.root_fs.and_then(|r| r.layers).unwrap_or_default();
        let last_tagged = inspected
            .metadata
            .and_then(|m| m.last_tag_time)
            .map(|t| t.unix_timestamp())
            // dockerd writes the zero time for an image never tagged here.
            .filter(|t| *t > 0);
        Ok(ImageLayers {
            layers,
            last_tagged,
        })
    }

    /// Removes the tag `image` (`DELETE /images/{image}`, never forced: dockerd refuses
    /// while a container uses the image); the image goes with its last tag.
    pub async fn remove_tag(&self, image: &str) -> Result<(), DaemonRequestError> {
        self.client
            .remove_image(
                image,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
            .map(drop)
            .map_err(|e| self.request_failed(format!("DELETE /images/{image}"), e))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// A BuildKit step's name without its stage prefix (`[stage-1 6/10] RUN ...` is
/// `RUN ...`, `[internal] load metadata for ...` is `load metadata for ...`).
fn without_stage(name: &str) -> &str {
    match (name.starts_with('['), name.find("] ")) {
        (true, Some(end)) => &name[end + 2..],
        _ => name,
    }
}

/// This run's working tag of a dependency image (`…:deps-0123-unlabelled-4242-0a1b2c3d`,
/// see `crate::engine::run`): noise in a step's name.
static WORKING_TAG: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"-unlabelled-[0-9]+-[0-9a-f]+").expect("a valid pattern")
});

/// What the progress view calls a BuildKit step: the plan's label for its instruction, else
/// BuildKit's name without the noise (the stage prefix, `--mount=` options, runs of spaces,
/// this run's working tag).
fn step_label(labels: &StepLabels, name: &str) -> String {
    let instruction = without_stage(name);
    if let Some(label) = labels.label(instruction) {
        return label.to_string();
    }
    let words: Vec<&str> = instruction
        .split_whitespace()
        .filter(|w| !w.starts_with("--mount="))
        .collect();
    let tidy = WORKING_TAG.replace_all(&words.join(" "), "").into_owned();
    match tidy.as_str() {
        // The frontend unpacking the context imagespec sent.
        "copy /context /" => "unpack the build context".into(),
        _ => tidy,
    }
}

/// Turns BuildKit status messages into step events.
pub(crate) struct StepTracker {
    labels: StepLabels,
    /// Per step: BuildKit's name and the label shown.
    names: HashMap<String, (String, String)>,
    seen: std::collections::HashSet<String>,
    started: std::collections::HashSet<String>,
    done: std::collections::HashSet<String>,
    logs: HashMap<String, Vec<String>>,
    partial: HashMap<String, String>,
    failed: Option<(String, String)>,
}

impl StepTracker {
    pub(crate) fn new(labels: StepLabels) -> StepTracker {
        StepTracker {
            labels,
            names: HashMap::new(),
            seen: Default::default(),
            started: Default::default(),
            done: Default::default(),
            logs: HashMap::new(),
            partial: HashMap::new(),
            failed: None,
        }
    }

    pub(crate) fn apply(
        &mut self,
        status: bollard_buildkit_proto::moby::buildkit::v1::StatusResponse,
        progress: &Progress,
    ) {
        for v in status.vertexes {
            let label = step_label(&self.labels, &v.name);
            self.names
                .insert(v.digest.clone(), (v.name.clone(), label.clone()));
            // BuildKit's own bookkeeping steps ("[internal] load metadata for ...") are shown
            // like the others, as buildx shows them: one that hangs (a registry that does not
            // answer) is then the step on screen, not a silent terminal.
            if self.seen.insert(v.digest.clone()) {
                progress.event(Event::StepQueued { id: &v.digest });
            }
            if v.started.is_some() && self.started.insert(v.digest.clone()) && !v.cached {
                progress.event(Event::StepStarted {
                    id: &v.digest,
                    name: &v.name,
                    label: Some(&label),
                });
            }
            if (v.completed.is_some() || v.cached) && self.done.insert(v.digest.clone()) {
                if let Some(rest) = self.partial.remove(&v.digest).filter(|r| !r.is_empty()) {
                    self.logs
                        .entry(v.digest.clone())
                        .or_default()
                        .push(rest.clone());
                    progress.event(Event::Log {
                        id: &v.digest,
                        text: &rest,
                    });
                }
                let error = (!v.error.is_empty()).then_some(v.error.as_str());
                if error.is_some() {
                    self.failed = Some((v.digest.clone(), v.error.clone()));
                }
                progress.event(Event::StepDone {
                    id: &v.digest,
                    name: &v.name,
                    label: Some(&label),
                    cached: v.cached,
                    error,
                });
            }
        }
        for log in status.logs {
            // BuildKit sends output in chunks that may end mid-line: pass on whole lines.
            let pending = self.partial.entry(log.vertex.clone()).or_default();
            pending.push_str(&String::from_utf8_lossy(&log.msg));
            if let Some(end) = pending.rfind('\n') {
                let complete: String = pending.drain(..=end).collect();
                self.logs
                    .entry(log.vertex.clone())
                    .or_default()
                    .extend(complete.lines().map(str::to_string));
                progress.event(Event::Log {
                    id: &log.vertex,
                    text: &complete,
                });
            }
        }
    }

    /// The failing step's label and the tail of its output.
    pub(crate) fn failed(&self) -> (Option<String>, Vec<String>) {
        match &self.failed {
            Some((digest, _)) => {
                let log = self.logs.get(digest).cloned().unwrap_or_default();
                let tail = log[log.len().saturating_sub(40)..].to_vec();
                (self.names.get(digest).map(|(_, label)| label.clone()), tail)
            }
            None => (None, Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pushed_digest_is_read_from_dockerds_last_status() {
        let hex = "a".repeat(64);
        assert_eq!(
            pushed_digest(&format!("bookworm: digest: sha256:{hex} size: 529")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(pushed_digest("Pushed"), None);
        assert_eq!(pushed_digest("x: digest: sha256:abc size: 1"), None);
    }

    #[test]
    fn buildkit_names_become_labels_or_lose_their_noise() {
        let labels = StepLabels::of([(
            "RUN --mount=type=cache,target=/var/cache/apt apt-get update && apt-get install -y git",
            "install apt packages: git",
        )]);
        let cases = [
            (
                "[stage-1 2/12] RUN --mount=type=cache,target=/var/cache/apt apt-get update \
                 &&   apt-get install -y git",
                "install apt packages: git",
            ),
            (
                "[stage-1 6/10] RUN --mount=type=cache,target=/root/.cache/uv uv pip install x",
                "RUN uv pip install x",
            ),
            (
                "[internal] load metadata for localhost:5000/uv:0.5",
                "load metadata for localhost:5000/uv:0.5",
            ),
            (
                "[1/1] FROM localhost:5000/x:deps-0a1b-unlabelled-4242-0a1b2c3d",
                "FROM localhost:5000/x:deps-0a1b",
            ),
            ("copy /context /", "unpack the build context"),
            ("exporting to image", "exporting to image"),
        ];
        for (name, label) in cases {
            assert_eq!(step_label(&labels, name), label, "{name}");
        }
    }
}
