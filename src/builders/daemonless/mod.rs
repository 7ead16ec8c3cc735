//! The daemonless dependency builder: a dependency image made on this machine with uv and
//! pushed straight to the registry, with no daemon, no container and no emulation (the
//! image's platform only picks the wheels).
//!
//! It does what the Dockerfile's steps before the source copy do (templates/Dockerfile.j2,
//! for a spec [`crate::engine::dependency_builder`] lets through): read the base image
//! ([`base`]: its file tree, Python and C library, from the registry), add the `flytekit`
//! user and hand it `/root` and `/home` ([`user`]), install the packages into
//! `/root/.venv` with uv for the image's platform and Python ([`venv`]: `uv pip install`, or
//! a `uv.lock`'s locked set as `uv sync` installs it, [`uvlock`]), and push the layers
//! with the config the Dockerfile gives ([`image`], [`config`]) and the
//! [`DEPENDENCY_LABEL`] facts, so that the registry fast path appends the source to it.
//! Same inputs, same digests.
//!
//! Whether the base can be read from its registry is found out before the decision
//! ([`look_at_bases`], kept in a [`Preflight`] the build starts from). What only the build
//! can tell — the base has no Python or no glibc, a package has no wheel, a lock's source
//! needs a build — is a [`Fallback`]: the caller builds the dependency image with dockerd
//! instead and says why.
//!
//! Deliberate differences from the Docker build, which the e2e comparison lists: no
//! bytecode (`__pycache__`; Python writes it on first import, the venv belongs to the user
//! that runs it), and the `/etc/shadow` day of the user's last password change (the base's
//! creation day instead of the build's).

pub mod apt_layers;
pub(crate) mod base;
pub(crate) mod config;
pub(crate) mod image;
pub(crate) mod kept;
mod pins;
pub(crate) mod push;
pub(crate) mod user;
pub(crate) mod uvlock;
pub(crate) mod venv;

use crate::oci::epoch::SourceDateEpoch;
use crate::oci::{Digest, Image, ImageRef, Platform};
use crate::plan::{BuildPlan, ContextFile, DEPENDENCY_LABEL, PythonInstall};
use crate::progress::{Event, Progress};
use crate::registry::client::{RegistryClient, RegistryError};
use crate::sbom::layers::LayerFacts;
use base::BaseTree;
use pins::Pins;
use std::path::PathBuf;
use std::sync::Arc;

/// Why the dependency image is left to dockerd, found while building (one line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Fallback(pub String);

/// A base without what the user steps need: left to dockerd, saying why.
impl From<user::UserError> for Fallback {
    fn from(e: user::UserError) -> Fallback {
        Fallback(e.to_string())
    }
}

/// A base whose Python cannot be told: left to dockerd, saying why.
impl From<base::PythonError> for Fallback {
    fn from(e: base::PythonError) -> Fallback {
        Fallback(e.to_string())
    }
}

/// The daemonless build did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DaemonlessError {
    /// Not possible this way: dockerd should build it.
    #[error("{0}")]
    Fallback(#[from] Fallback),
    #[error(transparent)]
    Uv(#[from] venv::UvError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Layer(#[from] crate::source::SourceError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A descriptor's digest is not a digest (the registry's manifest names a path).
    #[error("the base image's manifest: {0}")]
    Digest(#[from] crate::oci::digest::DigestError),
    #[error(transparent)]
    Epoch(#[from] crate::oci::epoch::EpochError),
    /// Found before the decision (the base read, the apt step), for a reason not to fall
    /// back from, and reported by the build.
    #[error(transparent)]
    Before(Arc<DaemonlessError>),
    /// A suite's `InRelease` whose signature does not verify with the base's keys.
    #[error(transparent)]
    AptSignature(#[from] crate::apt::signature::SignatureError),
    /// A later platform's install waited for the versions of the first platform, whose
    /// build ended without them (its own error says why).
    #[error("the build for {0}, whose versions every platform installs, did not finish")]
    FirstPlatform(Platform),
}

impl DaemonlessError {
    /// What was found before the decision, as the build reports it: a [`Fallback`] stays
    /// one (dockerd builds then).
    fn before(e: &Arc<DaemonlessError>) -> DaemonlessError {
        match &**e {
            DaemonlessError::Fallback(why) => DaemonlessError::Fallback(why.clone()),
            _ => DaemonlessError::Before(Arc::clone(e)),
        }
    }
}

impl From<venv::InstallError> for DaemonlessError {
    fn from(e: venv::InstallError) -> Self {
        match e {
            venv::InstallError::Fallback(f) => DaemonlessError::Fallback(f),
            venv::InstallError::Failed(e) => DaemonlessError::Uv(e),
        }
    }
}

/// Where base trees read from registries are kept, in the cache dir (one file per base
/// manifest digest).
pub const BASES_DIR: &str = "daemonless-bases";
/// Where venvs are staged, in the cache dir (beside uv's cache: same file system).
pub const STAGING_DIR: &str = "staging";
/// The prefix of a staged venv's directory in [`STAGING_DIR`] as earlier versions named it
/// (now a scratch folder, `.imagespec-tmp-venv-*`); `prune` removes old ones.
pub const STAGING_PREFIX: &str = "imagespec-venv-";
/// uv's cache, in the cache dir.
pub const UV_CACHE_DIR: &str = "uv";

/// The imagespec cache dir (`$IMAGESPEC_CACHE_DIR`, else `$XDG_CACHE_HOME/imagespec`, else
/// `~/.cache/imagespec`), unless `IMAGESPEC_NO_CACHE` is set.
fn cache_dir() -> Option<PathBuf> {
    crate::source::cache_home_if_enabled()
}

/// Days since 1970-01-01 of an RFC 3339 time's date (`2026-12-01T14:18:52Z` → 20788).
pub fn days_since_epoch(time: &str) -> Option<i64> {
    let date = time.get(..10)?;
    let mut parts = date.split('-');
    let (y, m, d): (i64, i64, i64) = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146097 + doe - 719468)
}

/// The base image read from its registry: the image (its layers left there), its file
/// tree, and the session it was read with.
struct Base {
    image: ImageRef,
    client: Arc<RegistryClient>,
    value: Image,
    config: serde_json::Value,
    tree: BaseTree,
}

/// The base image of one platform as its registry answered before the decision: its
/// manifest and config read and checked (the platform, no `ONBUILD`), or why the daemonless
/// builder cannot start from it. The apt step and the build read its layers through it and
/// ask for the manifest no more. Cheap to clone.
#[derive(Clone)]
pub struct SeenBase {
    pub platform: Platform,
    read: Result<Arc<BaseImage>, Arc<DaemonlessError>>,
}

impl SeenBase {
    /// Why uv cannot build on it (one line), when the read failed.
    pub fn why_not(&self) -> Option<String> {
        self.read.as_ref().err().map(|e| e.to_string())
    }
}

impl std::fmt::Debug for SeenBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeenBase")
            .field("platform", &self.platform)
            .field("why_not", &self.why_not())
            .finish()
    }
}

/// A base image's manifest and config, read with `client`.
struct BaseImage {
    image: ImageRef,
    client: Arc<RegistryClient>,
    digest: Digest,
    manifest: oci_client::manifest::OciImageManifest,
    value: Image,
}

/// What the daemonless builder found out before the decision, for each platform: the base
/// image as read ([`look_at_bases`]) and the apt step ([`prepare_apt`]). The build starts
/// from it and resolves nothing again.
#[derive(Clone, Debug, Default)]
pub struct Preflight {
    pub bases: Vec<SeenBase>,
    pub apt: Vec<apt_layers::Prepared>,
}

impl Preflight {
    /// Why uv cannot build: the first platform whose base could not be read.
    pub fn unreadable_base(&self) -> Option<String> {
        self.bases.iter().find_map(SeenBase::why_not)
    }

    /// Each platform's apt facts ([`crate::engine::Facts::apt`]).
    pub fn apt_facts(&self) -> Vec<(Platform, crate::apt::facts::AptFacts)> {
        self.apt
            .iter()
            .map(|p| (p.platform.clone(), p.facts.clone()))
            .collect()
    }

    fn base(&self, platform: &Platform) -> Option<&SeenBase> {
        seen_on(&self.bases, platform)
    }
}

/// The base of `platform` among those `seen`.
fn seen_on<'a>(seen: &'a [SeenBase], platform: &Platform) -> Option<&'a SeenBase> {
    seen.iter().find(|s| &s.platform == platform)
}

/// The base image of `deps` (from its mirror when the defaults file names one) for each of
/// its platforms, read from its registry (the platforms at once): what decides whether uv
/// can start from it.
pub async fn look_at_bases(deps: &BuildPlan, timeouts: crate::timeouts::Timeouts) -> Vec<SeenBase> {
    let image = deps.pulled_base();
    let each = deps.platform.iter().map(|platform| async {
        let read = look_at_base(&image, platform, timeouts).await;
        SeenBase {
            platform: platform.clone(),
            read: read.map(Arc::new).map_err(Arc::new),
        }
    });
    futures_util::future::join_all(each).await
}

/// The manifest and config of `image` for `platform` ([`read_base_image`]), with the
/// session they were read with.
async fn look_at_base(
    image: &ImageRef,
    platform: &Platform,
    timeouts: crate::timeouts::Timeouts,
) -> Result<BaseImage, DaemonlessError> {
    let host = image.host();
    let credentials = crate::registry::auth::lookup(host, None).map_err(|e| {
        Fallback(format!(
            "the base image {image} cannot be read from its registry ({e})"
        ))
    })?;
    let client = RegistryClient::new(host, credentials.as_ref(), timeouts);
    let (digest, manifest, value) = read_base_image(&client, image, platform).await?;
    Ok(BaseImage {
        image: image.clone(),
        client: Arc::new(client),
        digest,
        manifest,
        value,
    })
}

/// The manifest and config of `image` for `platform`, as a value, checked to be that
/// platform and to have no `ONBUILD` trigger; and the manifest's digest.
async fn read_base_image(
    client: &RegistryClient,
    image: &ImageRef,
    platform: &Platform,
) -> Result<(Digest, oci_client::manifest::OciImageManifest, Image), DaemonlessError> {
    // What to do comes before the cause, which can be long (a resolver's or TLS error).
    let unreadable = |e: &dyn std::fmt::Display| {
        Fallback(format!(
            "the base image {image} cannot be read from its registry: read it through a \
             mirror (`[defaults.registry_mirrors]` in the defaults file, docs/defaults.md) or \
             name a base a reachable registry has (`base_image`); the cause: {e}"
        ))
    };
    let (raw, manifest) = client
        .image_manifest(image, platform)
        .await
        .map_err(|e| unreadable(&e))?;
    let declared = u64::try_from(manifest.config.size).ok();
    let bytes = client
        .blob(image, &manifest.config.digest, declared)
        .await
        .map_err(|e| unreadable(&e))?;
    let config = crate::oci::manifest::check_config(&bytes).map_err(|e| unreadable(&e))?;
    let value = Image::from_registry(&manifest, bytes.into(), image).map_err(|e| unreadable(&e))?;
    // A single-platform base is returned for any platform asked: it must be the one.
    let (os, arch) = (platform.os(), platform.architecture());
    let field = |k: &str| config.get(k).and_then(|v| v.as_str());
    if field("os").is_some_and(|o| o != os) || field("architecture").is_some_and(|a| a != arch) {
        return Err(Fallback(format!(
            "the base image {image} is {}/{}, not {platform}",
            field("os").unwrap_or("?"),
            field("architecture").unwrap_or("?")
        ))
        .into());
    }
    if config
        .pointer("/config/OnBuild")
        .and_then(|v| v.as_array())
        .is_some_and(|a| !a.is_empty())
    {
        return Err(Fallback(format!("the base image {image} has ONBUILD triggers")).into());
    }
    Ok((raw.digest, manifest, value))
}

/// The base of `platform`: as seen before the decision when it was, else read now; and its
/// file tree (kept on this machine by the manifest's digest, else read from its layers).
async fn read_base(
    image: &ImageRef,
    platform: &Platform,
    seen: Option<&SeenBase>,
    timeouts: crate::timeouts::Timeouts,
    progress: &Progress,
) -> Result<Base, DaemonlessError> {
    let looked = match seen.map(|s| &s.read) {
        Some(Ok(base)) => Arc::clone(base),
        Some(Err(e)) => return Err(DaemonlessError::before(e)),
        None => Arc::new(look_at_base(image, platform, timeouts).await?),
    };
    let BaseImage {
        image,
        client,
        digest,
        manifest,
        value,
    } = &*looked;
    let config = value.config();
    let cached = cache_dir().map(|d| {
        d.join(BASES_DIR)
            .join(format!("{}.v4.json", digest.file_name()))
    });
    let cached_base = cached
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<KeptBase>(&b).ok());
    let kept = match cached_base {
        Some(kept) => kept,
        None => {
            let step = format!(
                "read {image} for {platform} ({} layers)",
                manifest.layers.len()
            );
            let reading = read_tree(client, image, manifest);
            let kept = progress.in_step("base", &step, reading).await?;
            if let Some(path) = cached {
                keep_tree(&path, &kept);
            }
            kept
        }
    };
    kept.hand_to_the_sbom();
    let tree = kept.tree;
    Ok(Base {
        image: image.clone(),
        client: Arc::clone(client),
        value: value.clone(),
        config,
        tree,
    })
}

/// A base's tree as read from its layers, with what each layer says of its packages (the
/// SBOM's findings, [`crate::sbom::layers`]), made in the same read: kept together on this
/// machine by the base's digest.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeptBase {
    tree: BaseTree,
    /// Each layer's blob digest and findings (none for a layer whose tar the SBOM's reader
    /// refused: the SBOM reads that one itself, and says why).
    findings: Vec<(Digest, LayerFacts)>,
}

impl KeptBase {
    /// The findings of the base's layers handed to the SBOM's findings cache (those it
    /// lacks), so that the image's SBOM reads none of the base's layers again.
    fn hand_to_the_sbom(&self) {
        for (digest, facts) in &self.findings {
            if crate::sbom::layers::cached(digest.hex()).is_none() {
                crate::sbom::layers::remember(digest.hex(), facts);
            }
        }
    }
}

/// Keeps a base's tree in the cache (one that cannot be written only costs the next build
/// a download).
fn keep_tree(path: &std::path::Path, kept: &KeptBase) {
    if let Ok(json) = serde_json::to_vec(kept) {
        crate::scratch::keep_in_cache(path, &json);
    }
}

/// Downloads each layer of the base (streamed to a temporary file) and applies it, reading
/// the SBOM's findings from the same decompressed stream.
async fn read_tree(
    client: &RegistryClient,
    image: &ImageRef,
    manifest: &oci_client::manifest::OciImageManifest,
) -> Result<KeptBase, DaemonlessError> {
    let dir = tempfile::tempdir().map_err(|source| DaemonlessError::Io {
        context: "a temporary directory".into(),
        source,
    })?;
    let mut tree = BaseTree::default();
    let mut findings = Vec::new();
    for layer in &manifest.layers {
        let gzip = layer.media_type.ends_with("gzip");
        if !gzip && !layer.media_type.ends_with(".tar") {
            return Err(Fallback(format!(
                "a layer of the base image is {} (only tar and tar+gzip are read)",
                layer.media_type
            ))
            .into());
        }
        // Only a checked digest names a file (the manifest is the registry's).
        let digest = Digest::parse(&layer.digest)?;
        let file = dir.path().join(digest.file_name());
        client
            .blob_to_file(
                image,
                &layer.digest,
                Some(layer.size.max(0) as u64),
                &file,
                None,
            )
            .await?;
        let facts;
        (tree, facts) = tokio::task::spawn_blocking(move || {
            let reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&file)?);
            let (applied, facts) = if gzip {
                let tar = flate2::read::MultiGzDecoder::new(reader);
                crate::sbom::layers::read_beside(tar, |tar| tree.apply_layer(tar))
            } else {
                crate::sbom::layers::read_beside(reader, |tar| tree.apply_layer(tar))
            };
            applied.map_err(|e| std::io::Error::other(e.to_string()))?;
            std::fs::remove_file(&file)?;
            Ok::<_, std::io::Error>((tree, facts.ok()))
        })
        .await
        .map_err(|e| DaemonlessError::Io {
            context: "reading a layer of the base image".into(),
            source: std::io::Error::other(e.to_string()),
        })?
        .map_err(|source| DaemonlessError::Io {
            context: format!("reading layer {} of {image}", layer.digest),
            source,
        })?;
        findings.extend(facts.map(|facts| (digest, facts)));
    }
    Ok(KeptBase { tree, findings })
}

/// What the install step reads from the dependency plan: the base's interpreter and the
/// packages (a requirements file, or a `uv.lock` with its `pyproject.toml`).
struct InstallInputs {
    base_python: String,
    args: String,
    files: InputFiles,
}

enum InputFiles {
    Requirements(String),
    Lock { lock: String, pyproject: String },
}

impl InstallInputs {
    fn read(deps: &BuildPlan) -> Result<InstallInputs, DaemonlessError> {
        let file = |name: &str| {
            deps.files.iter().find_map(|f| match f {
                ContextFile::Content { to, content } if to == name => Some(Ok(content.clone())),
                ContextFile::Copy { from, to } if to == name => Some(
                    std::fs::read_to_string(from).map_err(|source| DaemonlessError::Io {
                        context: format!("reading {}", from.display()),
                        source,
                    }),
                ),
                _ => None,
            })
        };
        match &deps.install {
            PythonInstall::Venv { base_python, args } => Ok(InstallInputs {
                base_python: base_python.clone(),
                args: args.clone(),
                files: InputFiles::Requirements(
                    file("requirements_uv.txt").transpose()?.unwrap_or_default(),
                ),
            }),
            PythonInstall::UvLock {
                base_python: Some(base_python),
                args,
            } => {
                let missing = |name: &str| Fallback(format!("no {name} in the build context"));
                Ok(InstallInputs {
                    base_python: base_python.clone(),
                    args: args.clone(),
                    files: InputFiles::Lock {
                        lock: file("uv.lock").ok_or_else(|| missing("uv.lock"))??,
                        pyproject: file("pyproject.toml")
                            .ok_or_else(|| missing("pyproject.toml"))??,
                    },
                })
            }
            _ => Err(Fallback("the packages are not installed into a venv by uv".into()).into()),
        }
    }

    fn packages(&self) -> (&str, venv::Packages<'_>) {
        let packages = match &self.files {
            InputFiles::Requirements(requirements) => venv::Packages::Requirements {
                args: &self.args,
                requirements,
            },
            InputFiles::Lock { lock, pyproject } => venv::Packages::Lock {
                args: &self.args,
                lock,
                pyproject,
            },
        };
        (&self.base_python, packages)
    }
}

/// The daemonless build of a dependency plan's images: each platform's wheels, the
/// versions of the first platform's resolution (one set of versions, as one lock would
/// give), no emulation. The platforms are built at once ([`DependencyBuild::platforms`]):
/// only a later platform's uv install waits, for the first platform's versions. Nothing is
/// pushed here: each [`Made::image`] goes to a publisher ([`crate::publish`]).
pub struct DependencyBuild<'a> {
    deps: &'a BuildPlan,
    inputs: InstallInputs,
    uv: PathBuf,
    /// The registry the images go to, when they are to be pushed there (layers it has from
    /// an earlier build are then not written again).
    push_to: Option<&'a RegistryClient>,
    timeouts: crate::timeouts::Timeouts,
    /// `SOURCE_DATE_EPOCH`: every time the build writes, when set.
    epoch: Option<SourceDateEpoch>,
    /// What the decision saw of each platform's base and apt step.
    preflight: Preflight,
}

/// One platform's dependency image, ready to publish.
pub struct Made {
    /// The base's registry client and name: the base layers are read from there.
    pub base_client: Arc<RegistryClient>,
    pub base_image: ImageRef,
    /// The dependency image: the base's layers (in its registry), ours (files, or blobs
    /// the target repository has), the config.
    pub image: Image,
}

impl<'a> DependencyBuild<'a> {
    /// The build of `deps` (a [`BuildPlan::dependencies`] plan), to be pushed to `push_to`'s
    /// registry as `deps.image`, or kept on this machine (`None`).
    pub fn new(
        deps: &'a BuildPlan,
        push_to: Option<&'a RegistryClient>,
        timeouts: crate::timeouts::Timeouts,
    ) -> Result<DependencyBuild<'a>, DaemonlessError> {
        Ok(DependencyBuild {
            deps,
            inputs: InstallInputs::read(deps)?,
            uv: venv::find_uv()?,
            push_to,
            timeouts,
            epoch: SourceDateEpoch::from_env()?,
            preflight: Preflight::default(),
        })
    }

    /// The bases read and the apt steps worked out before the decision: built on as they
    /// are, not read or resolved again.
    pub fn with_preflight(mut self, preflight: Preflight) -> DependencyBuild<'a> {
        self.preflight = preflight;
        self
    }

    /// The dependency image of each platform of the plan, in its order: futures to run at
    /// once (each then publishes its own). What needs no other platform — the base, the
    /// apt layers, the user steps, a `uv.lock`'s install — starts at once for every
    /// platform; a later platform's `uv pip install` starts when the first platform's
    /// versions are known ([`pins::waits_for_first`]), beside the first's layers and push.
    pub fn platforms<'s>(
        &'s self,
        progress: &'s Progress,
    ) -> Vec<impl std::future::Future<Output = Result<Made, DaemonlessError>> + 's> {
        let (base_python, packages) = self.inputs.packages();
        let platforms = &self.deps.platform;
        let install = Installing {
            uv: &self.uv,
            push_to: self.push_to.map(|client| (client, &self.deps.image)),
            timeouts: self.timeouts,
            base_python,
            packages,
            constraints: None,
            resolved: None,
            epoch: self.epoch,
        };
        let each = Pins::each(platforms.iter(), &packages);
        platforms
            .iter()
            .zip(each)
            .map(move |(platform, pins)| {
                make_platform(
                    self.deps,
                    platform,
                    install,
                    pins,
                    &self.preflight,
                    progress,
                )
            })
            .collect()
    }
}

/// A dependency image made on this machine and kept on disk (for `--output` of a spec
/// without a registry): its base's layers stay in the base's registry, ours are files.
pub struct LocalDependency {
    /// The base's registry client: the base layers are read from there.
    pub base_client: Arc<RegistryClient>,
    pub image: crate::builders::registry::DependencyImage,
}

/// Makes the dependency image of every platform of `deps` (one resolution, the platforms
/// at once, as [`DependencyBuild::platforms`], on what the decision saw) on this machine
/// without pushing it anywhere. Its steps name their platform.
pub async fn make_local(
    deps: &BuildPlan,
    preflight: &Preflight,
    timeouts: crate::timeouts::Timeouts,
    progress: &Progress,
) -> Result<Vec<LocalDependency>, DaemonlessError> {
    let build = DependencyBuild::new(deps, None, timeouts)?.with_preflight(preflight.clone());
    let each = build.platforms(progress).into_iter().map(|making| async {
        let made = making.await?;
        let image = crate::builders::registry::DependencyImage::from_image(&deps.image, made.image)
            .ok_or_else(|| Fallback("the dependency image has no dependency label".into()))?;
        Ok::<_, DaemonlessError>(LocalDependency {
            base_client: made.base_client,
            image,
        })
    });
    futures_util::future::try_join_all(each).await
}

/// The apt step of `deps` for each of its platforms, worked out before the decision on the
/// bases `seen` (their trees read, the package set resolved, the `.deb`s fetched and their
/// scripts read): empty without `apt_packages`. Nothing is built. The platforms are
/// worked out at once (each its own base, index and `.deb`s: the network for one while the
/// other parses), in the order of `deps.platform`.
pub async fn prepare_apt(
    deps: &BuildPlan,
    seen: &[SeenBase],
    timeouts: crate::timeouts::Timeouts,
    progress: &Progress,
) -> Vec<apt_layers::Prepared> {
    if deps.apt_packages.is_empty() {
        return Vec::new();
    }
    let pulled = deps.pulled_base();
    let each = deps.platform.iter().map(|platform| {
        let seen = seen_on(seen, platform);
        prepare_apt_for(deps, &pulled, platform, seen, timeouts, progress)
    });
    futures_util::future::join_all(each).await
}

/// [`prepare_apt`] of one platform.
async fn prepare_apt_for(
    deps: &BuildPlan,
    pulled: &crate::oci::ImageRef,
    platform: &Platform,
    seen: Option<&SeenBase>,
    timeouts: crate::timeouts::Timeouts,
    progress: &Progress,
) -> apt_layers::Prepared {
    match read_base(pulled, platform, seen, timeouts, progress).await {
        Ok(base) => apt_layers::prepare(&base.tree, platform, &deps.apt_packages, progress).await,
        Err(e) => apt_layers::Prepared::not_resolved(platform, e),
    }
}

/// What the install step of every platform shares.
#[derive(Clone, Copy)]
struct Installing<'a> {
    uv: &'a std::path::Path,
    /// The dependency image's registry and name, when its layers are to be pushed there
    /// (else they are written to disk only).
    push_to: Option<(&'a RegistryClient, &'a ImageRef)>,
    /// The timeouts of the image's registry session, for reading the base.
    timeouts: crate::timeouts::Timeouts,
    base_python: &'a str,
    packages: venv::Packages<'a>,
    /// Another platform's pins (a lock pins them already: unused).
    constraints: Option<&'a str>,
    /// Told this platform's versions as soon as they are resolved (the first platform's,
    /// for the others).
    resolved: Option<venv::OnResolved<'a>>,
    /// `SOURCE_DATE_EPOCH`: the layers' times, the config's `created`, the shadow day.
    epoch: Option<SourceDateEpoch>,
}

impl<'a> Installing<'a> {
    /// Where the layers go, when they are pushed, with what `known` says of earlier pushes.
    fn target<'k>(&self, known: Option<&'k image::KnownLayers>) -> Option<image::PushTarget<'k>>
    where
        'a: 'k,
    {
        let (client, image) = self.push_to?;
        Some(image::PushTarget {
            client,
            image,
            known,
        })
    }
}

/// The base checked for what the install needs: its Python and its wheels' platform.
struct Checked {
    env: config::DependencyEnv,
    python: base::BasePython,
    python_platform: String,
}

fn check_base(
    deps: &BuildPlan,
    base: &Base,
    platform: &Platform,
    installing: &Installing<'_>,
) -> Result<Checked, DaemonlessError> {
    let env = config::dependency_env(&base_env(base), deps).map_err(|e| Fallback(e.to_string()))?;
    let install_path = env.at_install.get("PATH").unwrap_or_default().to_string();
    let python = base
        .tree
        .python(installing.base_python, &install_path)
        .map_err(Fallback::from)?;
    let glibc = match base.tree.libc() {
        Some(base::Libc::Glibc { major, minor }) => (major, minor),
        Some(base::Libc::Musl) => {
            return Err(
                Fallback("the base image uses musl (manylinux wheels need glibc)".into()).into(),
            );
        }
        None => {
            return Err(Fallback("no glibc (libc.so.6) found in the base image".into()).into());
        }
    };
    let python_platform = venv::python_platform(platform, glibc)?;
    Ok(Checked {
        env,
        python,
        python_platform,
    })
}

/// The `Env` of the base's config.
fn base_env(base: &Base) -> Vec<String> {
    base.config
        .pointer("/config/Env")
        .and_then(|e| serde_json::from_value(e.clone()).ok())
        .unwrap_or_default()
}

/// The user steps: the `flytekit` user added, `/root` and `/home` handed to it, its
/// `.profile`; and what `/root` is then.
struct UserSteps {
    overlay: user::Overlay,
    flytekit: user::User,
    root_dir: crate::source::layer::Attrs,
}

fn user_steps(
    base: &Base,
    path_at_end: &str,
    epoch: Option<SourceDateEpoch>,
) -> Result<UserSteps, DaemonlessError> {
    let tree = &base.tree;
    let base_path = crate::oci::config::EnvList::from_config(&base_env(base))
        .get("PATH")
        .unwrap_or(crate::oci::config::DEFAULT_PATH)
        .to_string();
    let has_user = tree.content("etc/passwd").is_some_and(|p| {
        String::from_utf8_lossy(&p)
            .lines()
            .any(|l| l.starts_with("flytekit:"))
    });
    if !has_user && tree.executable("useradd", &base_path).is_none() {
        return Err(Fallback("the base image has no useradd".into()).into());
    }
    // `SOURCE_DATE_EPOCH`'s day, else the base's creation day: never today's.
    let day = epoch.map(SourceDateEpoch::days).or_else(|| {
        base.config
            .get("created")
            .and_then(|c| c.as_str())
            .and_then(days_since_epoch)
    });
    let mut overlay = user::Overlay::default();
    let flytekit = user::useradd(tree, &mut overlay, day).map_err(Fallback::from)?;
    for dir in ["root", "home"] {
        user::chown_r(tree, &mut overlay, dir, flytekit.uid).map_err(Fallback::from)?;
    }
    user::append_profile(tree, &mut overlay, &flytekit, path_at_end).map_err(Fallback::from)?;
    let root_dir = overlay
        .items
        .get("root")
        .map(|i| i.attrs)
        .ok_or_else(|| Fallback("the base image has no /root".into()))?;
    Ok(UserSteps {
        overlay,
        flytekit,
        root_dir,
    })
}

/// Where a venv is staged: a scratch directory, or a kept venv's ([`kept`]), kept for a
/// later build once the layers are written ([`Stage::done`]).
enum Stage {
    Scratch(crate::scratch::ScratchDir),
    Kept(kept::Slot, kept::Kept),
}

impl Stage {
    fn path(&self) -> &std::path::Path {
        match self {
            Stage::Scratch(dir) => dir.path(),
            Stage::Kept(slot, _) => slot.path(),
        }
    }

    /// The layers are written: a kept venv is kept now (a run may end before background
    /// work does); what is left (removing the scratch directory, or the kept venvs this one
    /// supersedes) is returned, to run in the background.
    fn done(self) -> Box<dyn FnOnce() + Send> {
        match self {
            Stage::Scratch(dir) => Box::new(move || drop(dir)),
            Stage::Kept(slot, kept) => match slot.keep(&kept) {
                Ok(tidy) => Box::new(move || tidy.run()),
                Err(_) => Box::new(|| ()),
            },
        }
    }
}

/// The kept venv to start from (and what it was made from), or a new one to keep, for a
/// requirements install; `None` for others (a lock, an option line in the requirements)
/// or without a cache dir. A later platform's venv (installed with the first platform's
/// versions as constraints) is kept under a key with those constraints in it, and taken
/// only when the requirements are the same ([`venv::Install`] adds nothing to it).
fn kept_stage(
    staging: &std::path::Path,
    checked: &Checked,
    installing: &Installing<'_>,
) -> Option<(kept::Slot, Option<kept::Kept>, kept::Kept)> {
    let venv::Packages::Requirements { args, requirements } = installing.packages else {
        return None;
    };
    let lines = kept::requirement_lines(requirements)?;
    let uv = std::fs::metadata(installing.uv).ok()?;
    let uv_id = format!(
        "{} {} {:?}",
        installing.uv.display(),
        uv.len(),
        uv.modified().ok()
    );
    let python = &checked.python;
    let mut parts = vec![
        "requirements v1",
        &uv_id,
        &python.path,
        &python.version,
        &python.minor,
        &checked.python_platform,
        args,
    ];
    if let Some(constraints) = installing.constraints {
        parts.extend(["constraints", constraints]);
    }
    let key = kept::key(&parts);
    let store = staging.join("kept");
    let (slot, previous) = match kept::take(&store, &key, &lines) {
        Some((slot, previous)) => (slot, Some(previous)),
        None => (kept::fresh(&store).ok()?, None),
    };
    let next = kept::Kept {
        key,
        lines,
        pins: String::new(),
        uv_form: kept::UvForm::default(),
    };
    Some((slot, previous, next))
}

/// The venv installed by uv into a staging directory (beside uv's cache when there is one:
/// same file system, so uv links files instead of copying them), from the kept venv of an
/// earlier build when the requirements only add to its own ([`kept`]); the directory, the
/// venv in it and the versions installed.
async fn install_venv(
    deps: &BuildPlan,
    platform: &Platform,
    checked: &Checked,
    installing: &Installing<'_>,
    progress: &Progress,
) -> Result<(Stage, PathBuf, String), DaemonlessError> {
    let cache = cache_dir();
    let staging = cache
        .as_ref()
        .map_or_else(std::env::temp_dir, |c| c.join(STAGING_DIR));
    let _ = std::fs::create_dir_all(&staging);
    let kept_stage = cache
        .as_ref()
        .and_then(|_| kept_stage(&staging, checked, installing));
    let (stage, previous) = match kept_stage {
        Some((slot, previous, next)) => (Stage::Kept(slot, next), previous),
        // Scratch: removed in the background after the layers are written; a run that
        // ends first leaves it to the next run's sweep (its lock died with it).
        None => {
            let dir = crate::scratch::ScratchDir::new_in(&staging, "venv").map_err(|source| {
                DaemonlessError::Io {
                    context: format!("a staging directory in {}", staging.display()),
                    source,
                }
            })?;
            (Stage::Scratch(dir), None)
        }
    };
    let (python, python_platform) = (&checked.python, &checked.python_platform);
    let install = venv::Install {
        uv: installing.uv,
        python,
        python_platform,
        packages: installing.packages,
        ca_bundle: deps.ca_bundle.as_deref(),
        cache_dir: cache.map(|d| d.join(UV_CACHE_DIR)),
        constraints: match installing.packages {
            venv::Packages::Requirements { .. } => installing.constraints,
            venv::Packages::Lock { .. } => None,
        },
        resolved: installing.resolved,
    };
    let how = match installing.packages {
        venv::Packages::Requirements { .. } => "uv pip install",
        venv::Packages::Lock { .. } => "uv sync of uv.lock (uv export, uv pip install)",
    };
    let step = format!(
        "{how} for {platform} ({python_platform}), Python {} ({})",
        python.version, python.path
    );
    let made = async {
        install
            .make(stage.path(), previous.as_ref())
            .await
            .map_err(DaemonlessError::from)
    };
    let made = progress.in_step("uv", &step, made).await?;
    if made.incremental {
        progress.event(Event::Info(
            "started from the venv an earlier build kept: only the added requirements installed",
        ));
    }
    let stage = match stage {
        Stage::Kept(slot, mut next) => {
            next.pins = made.pins.clone();
            next.uv_form = made.uv_form;
            Stage::Kept(slot, next)
        }
        scratch => scratch,
    };
    Ok((stage, made.venv, made.pins))
}

/// The user and venv layers, written or found where an earlier build pushed them, each
/// with its history line.
async fn write_layers(
    base: &Base,
    user: &UserSteps,
    venv_dir: &std::path::Path,
    installing: &Installing<'_>,
    progress: &Progress,
) -> Result<Vec<(image::Ready, String)>, DaemonlessError> {
    let tree = &base.tree;
    let mut plans = vec![(
        image::user_layer(tree, &user.overlay),
        "RUN id -u flytekit || useradd --create-home --shell /bin/bash flytekit; \
         chown -R flytekit /root /home; .profile"
            .to_string(),
    )];
    plans.extend(image::venv_layers(
        tree,
        venv_dir,
        user.flytekit.uid,
        user.root_dir,
    )?);
    // The venv's own layer is the install step's: what made the venv.
    if let Some((_, created_by)) = plans.get_mut(1) {
        *created_by = match installing.packages {
            venv::Packages::Requirements { args, .. } => {
                format!("RUN uv venv /root/.venv && uv pip install {args}")
            }
            venv::Packages::Lock { args, .. } => {
                format!("RUN uv sync --python {} {args}", installing.base_python)
            }
        };
    }
    let (plans, history): (Vec<_>, Vec<_>) = plans.into_iter().unzip();
    // What the SBOM would read in them, from the files at hand (before they move), with
    // the wheels' hashes a lock gives.
    let locked = match installing.packages {
        venv::Packages::Lock { lock, .. } => Some(uvlock::LockedWheels::of(lock)),
        venv::Packages::Requirements { .. } => None,
    };
    let known = cache_dir().map(|d| image::KnownLayers::in_cache(&d));
    let target = installing.target(known.as_ref());
    let mtime = crate::oci::epoch::layer_mtime(installing.epoch);
    let layers = image::prepare_described_layers(plans, locked.as_ref(), mtime, target).await?;
    let reused = layers.iter().filter(|l| l.written.is_none()).count();
    if reused > 0 {
        progress.event(Event::Info(&format!(
            "{reused} of {} layers unchanged since an earlier build: not compressed again",
            layers.len()
        )));
    }
    Ok(layers.into_iter().zip(history).collect())
}

/// One platform's dependency image: what needs no other platform (its base, the checks,
/// the user steps, the apt layers) at once with its uv install and the user and venv
/// layers, the install waiting for the first platform's versions when `pins` says so
/// ([`DependencyBuild::platforms`]).
async fn make_platform(
    deps: &BuildPlan,
    platform: &Platform,
    installing: Installing<'_>,
    pins: Pins,
    preflight: &Preflight,
    progress: &Progress,
) -> Result<Made, DaemonlessError> {
    // From its registry's mirror when the defaults file names one: its layers are then read
    // (and mounted) from there.
    let base_ref = deps.pulled_base();
    let seen = preflight.base(platform);
    let base = read_base(&base_ref, platform, seen, installing.timeouts, progress).await?;
    let apt = apt_step(deps, &base, platform, preflight, progress).await;
    let checked = check_base(deps, &base, platform, &installing)?;
    let path_at_end = checked
        .env
        .at_end
        .get("PATH")
        .unwrap_or_default()
        .to_string();
    let user = user_steps(&base, &path_at_end, installing.epoch)?;
    let known = cache_dir().map(|d| image::KnownLayers::in_cache(&d));
    let target = installing.target(known.as_ref());
    // At once: the apt layers (unpacking and compressing, on blocking threads) and uv's
    // install (a child process, mostly the network and the disk) then the user and venv
    // layers. Neither reads the other.
    let mtime = crate::oci::epoch::layer_mtime(installing.epoch);
    let ours = Ours {
        deps,
        platform,
        base: &base,
        checked: &checked,
        user: &user,
        installing,
        pins,
    };
    let (apt, ours) = tokio::join!(
        apt_layers::new_layers(apt.as_ref(), deps, mtime, target.as_ref(), progress),
        ours.run(progress),
    );
    let layers = apt?.into_iter().chain(ours?).collect();
    let root_dir = user.root_dir;
    let label = format!(
        "{} {} {} {:o}",
        user.flytekit.uid, root_dir.uid, root_dir.gid, root_dir.mode
    );
    let with = config::DependencyConfig {
        env: &checked.env.at_end,
        entrypoint: deps.entrypoint.as_deref(),
        labels: &[(DEPENDENCY_LABEL, label)],
        epoch: installing.epoch,
    };
    let image = config::dependency_image(&base.value, &with, layers);
    Ok(Made {
        base_client: base.client,
        base_image: base.image,
        image,
    })
}

/// The apt step of `platform` as worked out before the decision; else (a caller that did
/// not) worked out now on `base`, by the same rule; `None` without `apt_packages`.
async fn apt_step(
    deps: &BuildPlan,
    base: &Base,
    platform: &Platform,
    preflight: &Preflight,
    progress: &Progress,
) -> Option<apt_layers::Prepared> {
    let prepared = preflight.apt.iter().find(|p| &p.platform == platform);
    match prepared {
        Some(apt) => Some(apt.clone()),
        None if !deps.apt_packages.is_empty() => {
            Some(apt_layers::prepare(&base.tree, platform, &deps.apt_packages, progress).await)
        }
        None => None,
    }
}

/// A platform's own layers to make: the venv installed (with the first platform's
/// versions, for a later one), then the user and venv layers written.
struct Ours<'b> {
    deps: &'b BuildPlan,
    platform: &'b Platform,
    base: &'b Base,
    checked: &'b Checked,
    user: &'b UserSteps,
    installing: Installing<'b>,
    pins: Pins,
}

impl Ours<'_> {
    /// Installs the venv (telling its versions to the platforms that wait for them), then
    /// writes the user and venv layers.
    async fn run(
        mut self,
        progress: &Progress,
    ) -> Result<Vec<crate::oci::image::NewLayer>, DaemonlessError> {
        let (deps, platform) = (self.deps, self.platform);
        let constraints = self.pins.constraints().await?;
        let pins = &self.pins;
        let tell = |resolved: &str| pins.tell(resolved);
        let installing = Installing {
            constraints: constraints.as_deref(),
            resolved: Some(venv::OnResolved(&tell)),
            ..self.installing
        };
        let installed = install_venv(deps, platform, self.checked, &installing, progress);
        let (stage, venv_dir, resolved) = installed.await?;
        // Told again when the dry run already did (a kept venv's install has none).
        self.pins.tell(&resolved);
        let step = format!("write the user and venv layers for {platform}");
        let writing = write_layers(self.base, self.user, &venv_dir, &installing, progress);
        let layers = progress.in_step("layers", &step, writing).await?;
        // Thousands of files: removed (or kept for a later build) while the layers upload.
        tokio::task::spawn_blocking(stage.done());
        Ok(layers
            .into_iter()
            .map(|(ready, created_by)| ready.into_new_layer(&deps.image, created_by))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_since_epoch_of_rfc3339_dates() {
        assert_eq!(days_since_epoch("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            days_since_epoch("2026-12-01T14:18:52.115515819Z"),
            Some(20788)
        );
        assert_eq!(days_since_epoch("2000-03-01"), Some(11017));
        assert_eq!(days_since_epoch("garbage"), None);
    }
}
