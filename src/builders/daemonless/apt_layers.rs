//! The Dockerfile's `apt-get install --no-install-recommends` step without a daemon
//! ([`crate::apt`]): the base's sources and dpkg status read from its tree, the package set
//! resolved against the mirror's indexes for the platform's own architecture (no
//! emulation), every chosen package's maintainer scripts checked against the rule of
//! [`crate::apt::scripts`] ([`prepare`], before the decision: its [`AptFacts`] say whether
//! the step is laid down here), then its layers ([`new_layers`], at the build): the
//! packages' files spread over a few layers by package ([`layout`]), each cached by its
//! `.deb`s, and the dpkg database (`status`, `info/`). A base that is not Debian-like, a
//! package set apt would resolve otherwise, or a package whose scripts must run is left to
//! dockerd by the decision, naming why.

use super::base::{BaseTree, Kind};
use super::image;
use super::{DaemonlessError, Fallback};
use crate::apt::facts::{self, AptFacts, PackageFacts};
use crate::apt::signature::KeyringFile;
use crate::apt::{deb, deb822, fetch, resolve, scripts, sources};
use crate::oci::Platform;
use crate::progress::{Event, Progress};
use crate::source::layer::{Attrs, Layer, LayerWriter};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The apt layers of `prepared` (none without one), to go below the user and venv layers,
/// each with its history line: the packages' files spread over a few layers ([`layout`]),
/// then the dpkg database (`status`, `info/`, apt's `extended_states`). Each is cached by
/// content ([`image::prepare_layers`]): a package layer by its `.deb`s' SHA256s and the
/// base's directory links it is laid over, the database by its bytes. Adding one package
/// writes the layer it lands in and the database's; an unchanged layer whose blob
/// `target`'s repository has (or mounts) is taken as it is — nothing unpacked, compressed
/// or uploaded again.
pub async fn new_layers(
    prepared: Option<&Prepared>,
    deps: &crate::plan::BuildPlan,
    mtime: u64,
    target: Option<&image::PushTarget<'_>>,
    progress: &Progress,
) -> Result<Vec<crate::oci::image::NewLayer>, DaemonlessError> {
    let Some(prepared) = prepared else {
        return Ok(Vec::new());
    };
    let chosen = chosen(prepared)?;
    let step = format!("write the apt layers for {}", prepared.platform);
    let writing = ready_layers(&chosen, mtime, target);
    let (ready, groups) = progress.in_step("apt", &step, writing).await?;
    let reused = ready.iter().filter(|r| r.written.is_none()).count();
    let platform = &prepared.platform;
    if reused == ready.len() {
        progress.event(Event::Info(&format!(
            "apt layers for {platform} unchanged since an earlier build: not written again"
        )));
    } else if reused > 0 {
        progress.event(Event::Info(&format!(
            "{reused} of {} apt layers for {platform} unchanged since an earlier build: not \
             written again",
            ready.len()
        )));
    }
    let step_line = created_by(&deps.apt_packages);
    let mut lines: Vec<String> = groups
        .iter()
        .map(|group| {
            let names: Vec<&str> = group.iter().map(|&i| chosen.name(i)).collect();
            format!("{step_line} # {}", names.join(" "))
        })
        .collect();
    lines.push(step_line);
    Ok(ready
        .into_iter()
        .zip(lines)
        .map(|(ready, line)| ready.into_new_layer(&deps.image, line))
        .collect())
}

/// The packages' layers ([`layout`]'s groups, with them) and the database's, ready.
async fn ready_layers(
    chosen: &Arc<Chosen>,
    mtime: u64,
    target: Option<&image::PushTarget<'_>>,
) -> Result<(Vec<image::Ready>, Vec<Vec<usize>>), DaemonlessError> {
    let again = || {
        target.map(|t| image::PushTarget {
            client: t.client,
            image: t.image,
            known: t.known,
        })
    };
    let sizes: Vec<(&str, u64)> = (0..chosen.debs.len())
        .map(|i| (chosen.name(i), chosen.installed_kib(i)))
        .collect();
    let groups = layout(&sizes);
    let unpacked = Arc::new(Mutex::new(BTreeMap::new()));
    let kept = super::cache_dir().map(|d| d.join("apt").join("unpacked"));
    let plans = groups
        .iter()
        .map(|group| PackageLayer {
            chosen: chosen.clone(),
            members: group.clone(),
            unpacked: unpacked.clone(),
            kept: kept.clone(),
        })
        .collect();
    let mut ready = image::prepare_layers(plans, mtime, again()).await?;
    let db = {
        let chosen = chosen.clone();
        tokio::task::spawn_blocking(move || database(&chosen, &unpacked, kept.as_deref()))
            .await
            .map_err(|e| DaemonlessError::Io {
                context: "writing the dpkg database layer".into(),
                source: std::io::Error::other(e.to_string()),
            })??
    };
    // dpkg's status, from the bytes at hand: the SBOM does not read the layer back.
    ready.extend(image::prepare_described_layers(vec![db], None, mtime, again()).await?);
    Ok((ready, groups))
}

/// Installed size (KiB, the `Installed-Size` the index and the `.deb` give) from which a
/// package gets a layer of its own.
pub const OWN_LAYER_KIB: u64 = 4 * 1024;
/// At most this many packages get a layer of their own: the largest (then by name).
pub const MAX_OWN_LAYERS: usize = 10;
/// The other packages are spread over this many layers, by a hash of their name.
pub const SHARED_LAYERS: usize = 6;

/// How a package set is spread over layers, the same on every machine for the same
/// packages (names and `Installed-Size`s, KiB): each of the largest, from
/// [`OWN_LAYER_KIB`] (at most [`MAX_OWN_LAYERS`]), alone, in name order; the others in
/// [`SHARED_LAYERS`] layers by a hash of their name (empty ones left out), each in name
/// order. One layer for all would change whole with any package; one per package would make
/// a hundred layers of a large set (slow to pull, near overlayfs' limits). Indexes into
/// `packages`.
pub fn layout(packages: &[(&str, u64)]) -> Vec<Vec<usize>> {
    let own = APT_SPREAD.own(packages);
    let mut shared: Vec<Vec<usize>> = vec![Vec::new(); SHARED_LAYERS];
    for i in (0..packages.len()).filter(|i| !own.contains(i)) {
        shared[shared_layer(packages[i].0)].push(i);
    }
    let mut groups: Vec<Vec<usize>> = own.into_iter().map(|i| vec![i]).collect();
    for mut group in shared.into_iter().filter(|g| !g.is_empty()) {
        group.sort_by_key(|&i| packages[i].0);
        groups.push(group);
    }
    groups
}

/// The apt step's [`image::Spread`].
const APT_SPREAD: image::Spread = image::Spread {
    own_from: OWN_LAYER_KIB,
    max_own: MAX_OWN_LAYERS,
    shared: SHARED_LAYERS,
};

/// The shared layer (of [`SHARED_LAYERS`]) a package goes to.
fn shared_layer(name: &str) -> usize {
    APT_SPREAD.shared_layer(name)
}

/// One layer of packages' files: the `.deb`s of `members` unpacked in turn (a directory two
/// of them ship goes in once, as the first has it). What each unpacked is kept for the
/// database (`unpacked`, and by the `.deb`'s SHA256 in `kept`: a later build that finds the
/// layer pushed does not unpack it to list it).
struct PackageLayer {
    chosen: Arc<Chosen>,
    members: Vec<usize>,
    unpacked: Arc<Mutex<BTreeMap<usize, deb::Unpacked>>>,
    kept: Option<PathBuf>,
}

impl image::PlannedLayer for PackageLayer {
    /// What the layer is made of: each `.deb` (by the SHA256 its file is named by) and the
    /// base's directory links they are unpacked through.
    fn layer_key(&self, mtime: u64) -> Result<String, DaemonlessError> {
        use sha2::{Digest as _, Sha256};
        let mut hash = Sha256::new();
        hash.update(format!(
            "imagespec apt package layer v1 {mtime}\n{:?}\n",
            self.chosen.dir_links
        ));
        for &i in &self.members {
            hash.update(format!("{}\n", self.chosen.sha256(i)));
        }
        Ok(format!("{:x}", hash.finalize()))
    }

    /// Also hands the SBOM what the layer holds for its catalogers (a Python package's
    /// metadata a `.deb` ships), by the blob's digest: it does not read the layer back.
    fn write_layer(&self, dir: &std::path::Path, mtime: u64) -> Result<Layer, DaemonlessError> {
        use crate::sbom::layers::{FILE_LIMIT, cataloged, facts_of_kept, remember};
        let mut layer = LayerWriter::new(dir)?
            .timed(mtime)
            .keeping(cataloged, FILE_LIMIT);
        let mut seen = BTreeSet::new();
        for &i in &self.members {
            let unpacked = self.chosen.unpack(i, &mut layer, &mut seen)?;
            if let (Some(kept), Ok(json)) = (&self.kept, serde_json::to_vec(&unpacked)) {
                let at = kept.join(format!("{}.json", self.chosen.sha256(i)));
                crate::scratch::keep_in_cache(&at, &json);
            }
            if let Ok(mut all) = self.unpacked.lock() {
                all.insert(i, unpacked);
            }
        }
        let kept = layer.take_kept();
        let written = layer.finish()?;
        remember(written.digest.hex(), &facts_of_kept(&kept));
        Ok(written)
    }
}

/// The history line of the apt layers, as the Dockerfile's step reads.
fn created_by(names: &[String]) -> String {
    format!(
        "RUN apt-get update && apt-get install -y --no-install-recommends {}",
        names.join(" ")
    )
}

fn fallback(e: impl std::fmt::Display) -> DaemonlessError {
    Fallback(e.to_string()).into()
}

/// What the apt step reads from the base: its sources and installed packages.
struct BaseApt {
    /// Each source with the keyrings its `InRelease` must verify with.
    sources: Vec<(sources::Source, Vec<KeyringFile>)>,
    status: String,
    /// apt's `/var/lib/apt/extended_states` (which packages were installed only as
    /// dependencies: `apt-get autoremove` removes them), the base's then with the step's.
    extended_states: String,
    /// The directories `apt-get update` makes that the base lacks (`/var/log/apt`,
    /// `/var/lib/apt/lists/partial`, owned by `_apt`), with their parents.
    apt_dirs: Vec<(String, Attrs)>,
}

fn read_base(tree: &BaseTree) -> Result<BaseApt, DaemonlessError> {
    let text = |path: &str| {
        let resolved = tree.resolve(path).map_or(path.to_string(), |(p, _)| p);
        tree.content(&resolved)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let os = text("etc/os-release")
        .or_else(|| text("usr/lib/os-release"))
        .map(|t| sources::OsRelease::parse(&t))
        .unwrap_or_default();
    if !os.is_debian_like() {
        return Err(fallback(format!(
            "`apt_packages` need a Debian or Ubuntu base (os-release ID {:?})",
            os.id
        )));
    }
    let mut files: Vec<(String, String)> = text("etc/apt/sources.list")
        .map(|t| vec![("etc/apt/sources.list".to_string(), t)])
        .unwrap_or_default();
    for (path, node) in tree.below("etc/apt/sources.list.d") {
        if node.kind == Kind::File {
            files.extend(text(path).map(|t| (path.clone(), t)));
        }
    }
    let sources = sources::all_sources(&files).map_err(fallback)?;
    if sources.is_empty() {
        return Err(fallback("the base image has no apt sources"));
    }
    let sources = sources
        .into_iter()
        .map(|source| {
            let keys = keyrings(tree, &source)?;
            Ok((source, keys))
        })
        .collect::<Result<_, DaemonlessError>>()?;
    let status = text("var/lib/dpkg/status")
        .ok_or_else(|| fallback("the base image has no /var/lib/dpkg/status"))?;
    let apt_dirs = apt_dirs(tree, text("etc/passwd").as_deref());
    let extended_states = text("var/lib/apt/extended_states").unwrap_or_default();
    Ok(BaseApt {
        sources,
        status,
        extended_states,
        apt_dirs,
    })
}

/// The keyrings `source`'s `InRelease` must verify with, as apt-secure(8) picks them: those
/// its `signed-by` names (files, or a key block written in the paragraph), else apt's
/// default ones (`/etc/apt/trusted.gpg`, `/etc/apt/trusted.gpg.d/*.gpg|*.asc`). A keyring
/// named but absent is left out (no key then is the signature check's error);
/// fingerprints in `signed-by` are not read (dockerd's apt does).
fn keyrings(
    tree: &BaseTree,
    source: &sources::Source,
) -> Result<Vec<KeyringFile>, DaemonlessError> {
    let file = |path: &str| {
        let at = path.trim_start_matches('/');
        let resolved = tree.resolve(at).map_or(at.to_string(), |(p, _)| p);
        tree.content(&resolved).map(|bytes| KeyringFile {
            path: format!("/{at}"),
            bytes: bytes.to_vec(),
        })
    };
    let Some(signed_by) = &source.signed_by else {
        let mut found: Vec<KeyringFile> = file("etc/apt/trusted.gpg").into_iter().collect();
        for (path, node) in tree.below("etc/apt/trusted.gpg.d") {
            if node.kind != Kind::Symlink && node.kind != Kind::File {
                continue;
            }
            if path.ends_with(".gpg") || path.ends_with(".asc") {
                found.extend(file(path));
            }
        }
        return Ok(found);
    };
    if signed_by.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
        // A deb822 field's continuation lines, a lone `.` standing for an empty line.
        let block: Vec<&str> = signed_by
            .lines()
            .map(str::trim)
            .map(|l| if l == "." { "" } else { l })
            .collect();
        return Ok(vec![KeyringFile {
            path: format!("the Signed-By key block of {}", source.uri),
            bytes: block.join("\n").into_bytes(),
        }]);
    }
    let mut found = Vec::new();
    for entry in signed_by.split([',', ' ', '\n']).filter(|e| !e.is_empty()) {
        if !entry.starts_with('/') {
            return Err(fallback(format!(
                "the apt source {} is signed-by a key fingerprint ({entry}), which is not read                  without a daemon",
                source.uri
            )));
        }
        found.extend(file(entry));
    }
    Ok(found)
}

/// The directories `apt-get update` leaves that `tree` lacks (`/var/log/apt`,
/// `/var/lib/apt/lists/partial`, owned by `_apt` as `passwd` says), with their parents.
fn apt_dirs(tree: &BaseTree, passwd: Option<&str>) -> Vec<(String, Attrs)> {
    let apt_uid = passwd
        .and_then(|p| {
            p.lines()
                .find_map(|l| l.strip_prefix("_apt:")?.split(':').nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    let root = |mode| Attrs {
        uid: 0,
        gid: 0,
        mode,
    };
    let leaves = [
        ("var/log/apt", root(0o755)),
        (
            "var/lib/apt/lists/partial",
            Attrs {
                uid: apt_uid,
                gid: 0,
                mode: 0o700,
            },
        ),
    ];
    let mut apt_dirs = Vec::new();
    for (leaf, attrs) in leaves.into_iter().filter(|(l, _)| tree.node(l).is_none()) {
        let mut at = String::new();
        for part in leaf.split('/') {
            at = if at.is_empty() {
                part.to_string()
            } else {
                format!("{at}/{part}")
            };
            let here = tree.node(&at).map_or(root(0o755), |n| Attrs {
                uid: n.uid,
                gid: n.gid,
                mode: n.mode,
            });
            if !apt_dirs.iter().any(|(p, _)| p == &at) {
                apt_dirs.push((at.clone(), if at == leaf { attrs } else { here }));
            }
        }
    }
    apt_dirs
}

/// One platform's apt step worked out before the build, so that the decision is made once
/// ([`crate::engine::decide`], `imagespec plan` shows it): the [`AptFacts`] the decision
/// reads and, when the packages were resolved, what writing their layers needs (the base's
/// apt files, each chosen `.deb` on this machine with its control files). Cheap to clone.
#[derive(Clone)]
pub struct Prepared {
    pub platform: Platform,
    pub facts: AptFacts,
    chosen: Option<Arc<Chosen>>,
    /// The error behind [`AptFacts::Failed`], kept for the build to report.
    error: Option<Arc<DaemonlessError>>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("platform", &self.platform)
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}

/// What writing the layers of a resolved package set needs.
struct Chosen {
    base: BaseApt,
    debs: Vec<(PathBuf, deb::ControlFiles)>,
    /// Each `.deb`'s package name and `Installed-Size` (KiB), from its control file.
    names: Vec<String>,
    sizes: Vec<u64>,
    dir_links: Vec<(String, String)>,
    /// Holds the `.deb`s' directory (a temporary one without a cache).
    _fetcher: fetch::Fetcher,
}

/// The apt step of `names` on `tree` for `platform`, worked out: resolved, fetched, every
/// package's scripts read. What makes it dockerd's is [`AptFacts::Unavailable`] (or a
/// package's script facts); an error to report is [`AptFacts::Failed`].
pub async fn prepare(
    tree: &BaseTree,
    platform: &Platform,
    names: &[String],
    progress: &Progress,
) -> Prepared {
    match resolve_and_fetch(tree, platform, names, progress).await {
        Ok((packages, chosen)) => Prepared {
            platform: platform.clone(),
            facts: AptFacts::Resolved(packages),
            chosen: Some(Arc::new(chosen)),
            error: None,
        },
        Err(e) => Prepared::not_resolved(platform, e),
    }
}

impl Prepared {
    /// A step that could not be worked out: a [`Fallback`] is [`AptFacts::Unavailable`]
    /// (dockerd builds it), any other error [`AptFacts::Failed`] (reported).
    pub fn not_resolved(platform: &Platform, e: DaemonlessError) -> Prepared {
        let (facts, error) = match e {
            DaemonlessError::Fallback(why) => (AptFacts::Unavailable(why.0), None),
            e => (AptFacts::Failed(e.to_string()), Some(Arc::new(e))),
        };
        Prepared {
            platform: platform.clone(),
            facts,
            chosen: None,
            error,
        }
    }
}

/// The packages `names` add for `platform`, each with its `.deb` on this machine, its
/// control files and what its scripts need.
async fn resolve_and_fetch(
    tree: &BaseTree,
    platform: &Platform,
    names: &[String],
    progress: &Progress,
) -> Result<(Vec<PackageFacts>, Chosen), DaemonlessError> {
    let mut base = read_base(tree)?;
    let arch = sources::dpkg_arch(platform)
        .ok_or_else(|| fallback(format!("Debian has no architecture for {platform}")))?;
    let fetcher = fetch::Fetcher::new(
        super::cache_dir()
            .as_deref()
            .filter(|d| std::fs::create_dir_all(d).is_ok()),
    )
    .map_err(fallback)?;
    let step = format!("apt indexes for {arch}");
    let universe = progress
        .in_step("apt", &step, fetcher.universe(&base.sources, arch))
        .await
        .map_err(|e| match e {
            // A bad or missing signature is an error, never a fallback.
            fetch::FetchError::Signature(e) => DaemonlessError::AptSignature(e),
            e => fallback(e),
        })?;
    let status = deb822::parse(&base.status).map_err(fallback)?;
    let installed = resolve::installed(&status);
    let chosen = resolve::resolve(&universe, &installed, names).map_err(fallback)?;
    let auto = chosen
        .iter()
        .map(|p| p.name())
        .filter(|n| !names.iter().any(|r| r == n));
    base.extended_states = auto_installed(&base.extended_states, auto, arch);
    let step = format!("{} .debs for {arch}", chosen.len());
    let fetching = async {
        use futures_util::{StreamExt as _, TryStreamExt as _};
        // A few at once (a set of small `.deb`s is mostly round trips), kept in order.
        let paths: Vec<PathBuf> = futures_util::stream::iter(&chosen)
            .map(|package| fetcher.deb(package))
            .buffered(DEBS_AT_ONCE)
            .try_collect()
            .await
            .map_err(fallback)?;
        let (mut debs, mut facts) = (Vec::new(), Vec::new());
        for (package, path) in chosen.iter().zip(paths) {
            let control = deb::read_control(std::fs::File::open(&path).map_err(fallback)?)
                .map_err(fallback)?;
            facts.push(package_facts(tree, package, &control));
            debs.push((path, control));
        }
        Ok::<_, DaemonlessError>((debs, facts))
    };
    let (debs, facts) = progress.in_step("apt", &step, fetching).await?;
    let (names, sizes) = debs
        .iter()
        .map(|(_, control)| {
            let paragraph = control.paragraph().ok();
            let field = |f| {
                paragraph
                    .as_ref()
                    .and_then(|p| p.get(f))
                    .map(str::to_string)
            };
            let size = field("Installed-Size").and_then(|s| s.trim().parse().ok());
            (field("Package").unwrap_or_default(), size.unwrap_or(0))
        })
        .unzip();
    let chosen = Chosen {
        base,
        debs,
        names,
        sizes,
        dir_links: directory_links(tree),
        _fetcher: fetcher,
    };
    Ok((facts, chosen))
}

/// How many `.deb`s are downloaded at once.
const DEBS_AT_ONCE: usize = 4;

/// `extended_states` with `auto` (the packages apt adds as dependencies only) marked
/// `Auto-Installed: 1` for `arch`, as `apt-get install` records them.
fn auto_installed<'a>(
    extended_states: &str,
    auto: impl Iterator<Item = &'a str>,
    arch: &str,
) -> String {
    let mut out = extended_states.trim_end().to_string();
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    for name in auto {
        out.push_str(&format!(
            "Package: {name}\nArchitecture: {arch}\nAuto-Installed: 1\n\n"
        ));
    }
    out
}

/// What `package`'s scripts need on `tree` ([`scripts::effects`]).
fn package_facts(
    tree: &BaseTree,
    package: &resolve::Available,
    control: &deb::ControlFiles,
) -> PackageFacts {
    let files = control
        .files
        .iter()
        .map(|(k, v)| (k.as_str(), std::str::from_utf8(v).unwrap_or("\u{0}")));
    let scripts = scripts::effects(package.name(), files);
    let removes_base_alternative = scripts.as_ref().ok().and_then(|effects| {
        effects
            .removed_alternatives
            .iter()
            .find(|name| {
                tree.node(&format!("var/lib/dpkg/alternatives/{name}"))
                    .is_some()
            })
            .cloned()
    });
    PackageFacts {
        name: package.name().to_string(),
        version: package.version().to_string(),
        scripts,
        removes_base_alternative,
    }
}

/// The resolved package set of a prepared step. A step the decision left to dockerd is a
/// [`Fallback`] (the engine does not build it this way).
fn chosen(prepared: &Prepared) -> Result<Arc<Chosen>, DaemonlessError> {
    if let Some(e) = &prepared.error {
        return Err(DaemonlessError::Before(e.clone()));
    }
    match (&prepared.facts, &prepared.chosen) {
        (AptFacts::Resolved(packages), Some(chosen)) => match facts::blocker(packages) {
            Some((package, why)) => Err(fallback(format!("apt package {package}: {why}"))),
            None => Ok(chosen.clone()),
        },
        (AptFacts::Unavailable(why) | AptFacts::Failed(why), _) => Err(fallback(why)),
        (AptFacts::Resolved(_), None) => Err(fallback("the apt step was not prepared")),
    }
}

impl Chosen {
    /// The `i`th package's name.
    fn name(&self, i: usize) -> &str {
        self.names.get(i).map_or("", String::as_str)
    }

    /// The `i`th package's `Installed-Size` (KiB; 0 when it gives none).
    fn installed_kib(&self, i: usize) -> u64 {
        self.sizes.get(i).copied().unwrap_or(0)
    }

    /// The SHA256 of the `i`th `.deb`: the name of its file.
    fn sha256(&self, i: usize) -> String {
        self.debs[i]
            .0
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The target of a directory link the base has at `path`.
    fn dir_link(&self, path: &str) -> Option<String> {
        self.dir_links
            .iter()
            .find(|(link, _)| link == path)
            .map(|(_, t)| t.clone())
    }

    /// Unpacks the `i`th `.deb`'s data into `layer` ([`deb::unpack_data`]).
    fn unpack(
        &self,
        i: usize,
        layer: &mut LayerWriter,
        seen: &mut BTreeSet<String>,
    ) -> Result<deb::Unpacked, DaemonlessError> {
        let (path, control) = &self.debs[i];
        let file = std::fs::File::open(path).map_err(|e| DaemonlessError::Io {
            context: format!("reading {}", path.display()),
            source: e,
        })?;
        let dir_link = |p: &str| self.dir_link(p);
        deb::unpack_data(
            std::io::BufReader::new(file),
            control,
            layer,
            &dir_link,
            seen,
        )
        .map_err(|e| fallback(format!("apt package {}: {e}", self.name(i))))
    }
}

/// The base's top directories that are symlinks to directories (`bin` → `usr/bin`).
fn directory_links(tree: &BaseTree) -> Vec<(String, String)> {
    tree.entries
        .iter()
        .filter(|(p, n)| n.kind == Kind::Symlink && !p.contains('/'))
        .filter_map(|(p, _)| {
            let (target, node) = tree.resolve(p)?;
            (node.kind == Kind::Dir).then(|| (p.clone(), target))
        })
        .collect()
}

/// The dpkg database layer: the base's `status` with a paragraph for each package, their
/// `info/` files, apt's `extended_states` and the directories `apt-get update` leaves. What
/// each package unpacked comes from `unpacked` (the layers written now), else from `kept`
/// (by its `.deb`'s SHA256), else from unpacking it again (a layer found pushed whose
/// record was pruned). Two packages shipping one file is a [`Fallback`], as one layer had it.
fn database(
    chosen: &Chosen,
    unpacked: &Mutex<BTreeMap<usize, deb::Unpacked>>,
    kept: Option<&std::path::Path>,
) -> Result<super::image::LayerPlan, DaemonlessError> {
    let mut status = chosen.base.status.trim_end().to_string();
    status.push_str("\n\n");
    let mut info = BTreeMap::new();
    let mut all = Vec::new();
    for (i, (_, control)) in chosen.debs.iter().enumerate() {
        let now = unpacked.lock().ok().and_then(|mut u| u.remove(&i));
        let found = now.or_else(|| {
            let at = kept?.join(format!("{}.json", chosen.sha256(i)));
            serde_json::from_slice::<deb::Unpacked>(&std::fs::read(at).ok()?).ok()
        });
        let list = match found {
            Some(list) => list,
            None => chosen.unpack(i, &mut LayerWriter::diff_id_only(), &mut BTreeSet::new())?,
        };
        let (paragraph, files) = deb::database_entries(control, &list).map_err(fallback)?;
        status.push_str(&paragraph.to_text());
        status.push('\n');
        info.extend(files);
        all.push((chosen.name(i), list));
    }
    shipped_once(&all, &|p| chosen.dir_link(p)).map_err(fallback)?;
    Ok(database_plan(&chosen.base, &info, &status))
}

/// The database layer's entries.
fn database_plan(
    base: &BaseApt,
    info: &BTreeMap<String, Vec<u8>>,
    status: &str,
) -> super::image::LayerPlan {
    let dir = Attrs {
        uid: 0,
        gid: 0,
        mode: 0o755,
    };
    let mut db = super::image::LayerPlan::default();
    for d in [
        "var",
        "var/lib",
        "var/lib/apt",
        "var/lib/dpkg",
        "var/lib/dpkg/info",
    ] {
        db.dir(d, dir);
    }
    for (path, attrs) in &base.apt_dirs {
        db.dir(path, *attrs);
    }
    for (name, bytes) in info {
        let mode = if deb::is_script(name) { 0o755 } else { 0o644 };
        let path = format!("var/lib/dpkg/info/{name}");
        db.bytes(&path, Attrs { mode, ..dir }, bytes.clone());
    }
    let file = Attrs { mode: 0o644, ..dir };
    db.bytes("var/lib/dpkg/status", file, status.as_bytes().to_vec());
    if !base.extended_states.is_empty() {
        let states = base.extended_states.as_bytes().to_vec();
        db.bytes("var/lib/apt/extended_states", file, states);
    }
    db
}

/// Whether each path the packages unpack to (through the base's directory links) is one
/// package's, or a directory they all ship as one: the packages' layers may be laid over
/// each other in any order only then. Else which two ship what.
fn shipped_once(
    packages: &[(&str, deb::Unpacked)],
    dir_link: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let mut owners: std::collections::HashMap<String, (&str, bool)> = Default::default();
    for (name, unpacked) in packages {
        for listed in &unpacked.list {
            let rel = listed.trim_start_matches('/');
            let is_dir = unpacked.dirs.contains(listed);
            if rel == "." || (is_dir && dir_link(rel).is_some()) {
                continue;
            }
            let path = deb::redirect(rel, dir_link);
            match owners.get(&path) {
                Some((other, other_dir)) if !(is_dir && *other_dir) => {
                    return Err(format!("apt packages {other} and {name} both ship /{path}"));
                }
                Some(_) => {}
                None => {
                    owners.insert(path, (name, is_dir));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::base::tests::tree;
    use super::*;

    const OS_RELEASE: &str = "ID=debian\nVERSION_CODENAME=bookworm\n";
    const SOURCES: &str = "deb http://deb.debian.org/debian bookworm main\n";
    const PASSWD: &str =
        "root:x:0:0::/root:/bin/sh\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n";
    const STATUS: &str = "Package: libc6\nStatus: install ok installed\nVersion: 2.36\n";
    const KEY: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";

    fn debian() -> BaseTree {
        tree(&[
            ("bin", 'l', "usr/bin"),
            ("usr", 'd', ""),
            ("usr/bin", 'd', ""),
            ("usr/lib/os-release", 'f', OS_RELEASE),
            ("etc/os-release", 'l', "../usr/lib/os-release"),
            ("etc/apt/sources.list", 'f', SOURCES),
            ("etc/passwd", 'f', PASSWD),
            ("var/lib/dpkg/status", 'f', STATUS),
            ("var/log", 'd', ""),
            ("etc/apt/trusted.gpg.d/debian.asc", 'f', KEY),
            ("etc/apt/trusted.gpg.d/README", 'f', "not a keyring"),
        ])
    }

    #[test]
    fn dependencies_only_are_marked_auto_installed_after_the_bases_marks() {
        let base = "Package: a\nArchitecture: amd64\nAuto-Installed: 1\n";
        assert_eq!(
            auto_installed(base, ["libjq1", "libonig5"].into_iter(), "arm64"),
            "Package: a\nArchitecture: amd64\nAuto-Installed: 1\n\n\
             Package: libjq1\nArchitecture: arm64\nAuto-Installed: 1\n\n\
             Package: libonig5\nArchitecture: arm64\nAuto-Installed: 1\n\n"
        );
        assert_eq!(auto_installed("", std::iter::empty(), "amd64"), "");
    }

    #[test]
    fn signed_by_names_the_keyrings_else_apts_defaults() {
        let base = tree(&[
            ("usr/share/keyrings/debian-archive-keyring.gpg", 'f', "keys"),
            ("etc/apt/trusted.gpg.d/other.gpg", 'f', "other"),
        ]);
        let source = |signed_by: Option<&str>| sources::Source {
            uri: "http://deb.debian.org/debian".into(),
            suite: "bookworm".into(),
            components: vec!["main".into()],
            architectures: Vec::new(),
            signed_by: signed_by.map(String::from),
        };
        let paths = |s| -> Vec<String> {
            keyrings(&base, &source(s))
                .unwrap()
                .into_iter()
                .map(|k| k.path)
                .collect()
        };
        assert_eq!(
            paths(Some("/usr/share/keyrings/debian-archive-keyring.gpg")),
            ["/usr/share/keyrings/debian-archive-keyring.gpg"]
        );
        assert_eq!(paths(None), ["/etc/apt/trusted.gpg.d/other.gpg"]);
        assert!(paths(Some("/usr/share/keyrings/absent.gpg")).is_empty());
        let inline = "\n-----BEGIN PGP PUBLIC KEY BLOCK-----\n.\nmQINBGP\n-----END PGP PUBLIC KEY BLOCK-----";
        let block = keyrings(&base, &source(Some(inline))).unwrap();
        assert!(
            String::from_utf8_lossy(&block[0].bytes)
                .starts_with("\n-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBGP")
        );
        assert!(matches!(
            keyrings(&base, &source(Some("0123ABCD"))),
            Err(DaemonlessError::Fallback(_))
        ));
    }

    #[test]
    fn a_debian_base_is_read_with_its_links_and_missing_apt_directories() {
        let base = debian();
        let read = read_base(&base).unwrap();
        assert_eq!(read.sources[0].0.uri, "http://deb.debian.org/debian");
        let keys: Vec<_> = read.sources[0].1.iter().map(|k| k.path.as_str()).collect();
        assert_eq!(
            keys,
            ["/etc/apt/trusted.gpg.d/debian.asc"],
            "apt's default keyrings"
        );
        assert!(read.status.starts_with("Package: libc6"));
        assert_eq!(
            directory_links(&base),
            [("bin".to_string(), "usr/bin".to_string())]
        );
        let dirs: Vec<_> = read
            .apt_dirs
            .iter()
            .map(|(p, a)| format!("{p} {} {:o}", a.uid, a.mode))
            .collect();
        assert_eq!(
            dirs,
            [
                "var 0 755",
                "var/log 0 755",
                "var/log/apt 0 755",
                "var/lib 0 755",
                "var/lib/apt 0 755",
                "var/lib/apt/lists 0 755",
                "var/lib/apt/lists/partial 42 700",
            ]
        );
    }

    #[test]
    fn large_packages_get_a_layer_each_and_the_others_share_a_few_by_name() {
        let mib = |n: u64| n * 1024;
        let packages = [
            ("perl-modules-5.36", mib(17)),
            ("git", mib(40)),
            ("jq", 100),
            ("libjq1", 400),
            ("curl", 500),
            ("libperl5.36", mib(28)),
            ("git-man", mib(4)),
        ];
        let groups = layout(&packages);
        let names = |packages: &[(&'static str, u64)]| -> Vec<Vec<&str>> {
            layout(packages)
                .iter()
                .map(|g| g.iter().map(|&i| packages[i].0).collect())
                .collect()
        };
        let named = names(&packages);
        // From OWN_LAYER_KIB, alone and in name order; then the shared layers.
        assert_eq!(
            named[..4],
            [
                vec!["git"],
                vec!["git-man"],
                vec!["libperl5.36"],
                vec!["perl-modules-5.36"]
            ]
        );
        let mut small: Vec<&str> = named[4..].concat();
        small.sort();
        assert_eq!(small, ["curl", "jq", "libjq1"]);
        for group in &groups[4..] {
            let layer = shared_layer(packages[group[0]].0);
            assert!(group.iter().all(|&i| shared_layer(packages[i].0) == layer));
        }
        // The same set in another order: the same layers.
        let mut reversed = packages;
        reversed.reverse();
        assert_eq!(names(&reversed), named);
        // One small package more changes one shared layer and adds nothing else.
        let mut more = packages.to_vec();
        more.push(("tree", 150));
        let with_tree = names(&more);
        let changed: Vec<_> = with_tree.iter().filter(|g| !named.contains(g)).collect();
        assert_eq!(changed.len(), 1, "{with_tree:?}");
        assert!(changed[0].contains(&"tree"));
        assert!(with_tree.len() <= named.len() + 1);
    }

    #[test]
    fn a_hundred_packages_make_at_most_a_bounded_number_of_layers() {
        let names: Vec<String> = (0..150).map(|i| format!("lib{i}")).collect();
        let packages: Vec<(&str, u64)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), (i as u64) * 100))
            .collect();
        let groups = layout(&packages);
        assert_eq!(groups.len(), MAX_OWN_LAYERS + SHARED_LAYERS);
        let own: Vec<&str> = groups[..MAX_OWN_LAYERS]
            .iter()
            .map(|g| packages[g[0]].0)
            .collect();
        // The ten largest (lib140 … lib149), in name order.
        let mut largest: Vec<&str> = names[140..].iter().map(String::as_str).collect();
        largest.sort();
        assert_eq!(own, largest);
        let mut all: Vec<usize> = groups.concat();
        all.sort();
        assert_eq!(all, (0..150).collect::<Vec<_>>(), "each package once");
        assert!(layout(&[]).is_empty());
    }

    #[test]
    fn a_file_two_packages_ship_is_refused_a_directory_is_not() {
        let unpacked = |paths: &[&str], dirs: &[&str]| deb::Unpacked {
            list: paths.iter().map(|p| p.to_string()).collect(),
            conffiles: Default::default(),
            dirs: dirs.iter().map(|p| p.to_string()).collect(),
        };
        let dir_link = |p: &str| (p == "bin").then(|| "usr/bin".to_string());
        let a = unpacked(
            &["/.", "/usr", "/usr/bin", "/usr/bin/a"],
            &["/usr", "/usr/bin"],
        );
        let b = unpacked(&["/.", "/bin", "/bin/b"], &["/bin"]);
        assert_eq!(
            shipped_once(&[("a", a.clone()), ("b", b)], &dir_link),
            Ok(())
        );
        let c = unpacked(&["/.", "/bin", "/bin/a"], &["/bin"]);
        assert_eq!(
            shipped_once(&[("a", a.clone()), ("c", c)], &dir_link),
            Err("apt packages a and c both ship /usr/bin/a".to_string())
        );
        // A directory of one where another has a file.
        let d = unpacked(
            &["/usr", "/usr/bin", "/usr/bin/a", "/usr/bin/a/x"],
            &["/usr", "/usr/bin", "/usr/bin/a"],
        );
        assert!(shipped_once(&[("a", a), ("d", d)], &dir_link).is_err());
    }

    #[test]
    fn a_base_that_is_not_debian_falls_back() {
        let alpine = tree(&[("etc/os-release", 'f', "ID=alpine\n")]);
        let Err(DaemonlessError::Fallback(why)) = read_base(&alpine) else {
            panic!("not Debian")
        };
        assert_eq!(
            why.to_string(),
            "`apt_packages` need a Debian or Ubuntu base (os-release ID \"alpine\")"
        );
        let no_sources = tree(&[("etc/os-release", 'f', "ID=debian\n")]);
        assert!(read_base(&no_sources).is_err());
    }
}
