//! The Dockerfile's `apt-get install --no-install-recommends` step without a daemon
//! ([`crate::apt`]): the base's sources and dpkg status read from its tree, the package set
//! resolved against the mirror's indexes for the platform's own architecture (no
//! emulation), every chosen package's maintainer scripts checked against the rule of
//! [`crate::apt::scripts`] ([`prepare`], before the decision: its [`AptFacts`] say whether
//! the step is laid down here), then two layers ([`layers`], at the build): the packages'
//! files, and the dpkg database (`status`, `info/`). A base that is not Debian-like, a
//! package set apt would resolve otherwise, or a package whose scripts must run is left to
//! dockerd by the decision, naming why.

use super::base::{BaseTree, Kind};
use super::{DaemonlessError, Fallback};
use crate::apt::facts::{self, AptFacts, PackageFacts};
use crate::apt::signature::KeyringFile;
use crate::apt::{deb, deb822, fetch, resolve, scripts, sources};
use crate::oci::Platform;
use crate::progress::{Event, Progress};
use crate::source::layer::{Attrs, Layer, LayerWriter};
use std::path::PathBuf;
use std::sync::Arc;

/// The apt layers of `prepared` (none without one), to go below the user and venv layers,
/// each with the Dockerfile step's history line. Cached by content: when the same step
/// (the same base status, the same `.deb`s: [`content_key`]) was written and pushed before
/// and `target`'s repository has (or mounts) its blobs, they are taken as they are —
/// nothing unpacked, compressed or uploaded again.
pub async fn new_layers(
    prepared: Option<&Prepared>,
    deps: &crate::plan::BuildPlan,
    target: Option<&super::image::PushTarget<'_>>,
    progress: &Progress,
) -> Result<Vec<crate::oci::image::NewLayer>, DaemonlessError> {
    let Some(prepared) = prepared else {
        return Ok(Vec::new());
    };
    let record = prepared.chosen.as_ref().and_then(|chosen| {
        let dir = super::cache_dir()?.join("apt").join("layers");
        Some(dir.join(format!("{}.json", content_key(chosen))))
    });
    let ready = match reused(record.as_deref(), target).await? {
        Some(ready) => {
            progress.event(Event::Info(&format!(
                "apt layers for {} unchanged since an earlier build: not written again",
                prepared.platform
            )));
            ready
        }
        None => {
            let step = format!("write the apt layers for {}", prepared.platform);
            let made = progress.in_step("apt", &step, layers(prepared)).await?;
            remember(record.as_deref(), &made, target);
            made.into_iter()
                .map(|layer| super::image::Ready {
                    diff_id: layer.diff_id.clone(),
                    digest: layer.digest.clone(),
                    size: layer.size,
                    written: Some(layer),
                })
                .collect()
        }
    };
    Ok(ready
        .into_iter()
        .map(|ready| ready.into_new_layer(&deps.image, created_by(&deps.apt_packages)))
        .collect())
}

/// What the apt layers are made of, hashed: the base's dpkg status, the directories and
/// links they are laid over, and each `.deb` (by the SHA256 its cached file is named by),
/// in order. The same key, the same layers.
fn content_key(chosen: &Chosen) -> String {
    use sha2::{Digest as _, Sha256};
    let mut hash = Sha256::new();
    hash.update(b"imagespec apt layers 1\n");
    hash.update(chosen.base.status.as_bytes());
    hash.update(chosen.base.extended_states.as_bytes());
    hash.update(format!(
        "\n{:?}\n{:?}\n",
        chosen.base.apt_dirs, chosen.dir_links
    ));
    for (path, _) in &chosen.debs {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        hash.update(format!("{}\n", name.unwrap_or_default()));
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The layers a record names, when every one of them is where `target` can take it from.
async fn reused(
    record: Option<&std::path::Path>,
    target: Option<&super::image::PushTarget<'_>>,
) -> Result<Option<Vec<super::image::Ready>>, DaemonlessError> {
    let (Some(record), Some(target)) = (record, target) else {
        return Ok(None);
    };
    let Some(known) = target.known else {
        return Ok(None);
    };
    let Some(diff_ids) = std::fs::read(record)
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<crate::oci::Digest>>(&b).ok())
    else {
        return Ok(None);
    };
    let mut ready = Vec::new();
    for diff_id in &diff_ids {
        match known.find(target, diff_id).await? {
            Some(found) => ready.push(found),
            None => return Ok(None),
        }
    }
    Ok((!ready.is_empty()).then_some(ready))
}

/// Records the layers just written under their content key, and each as pushed with the
/// target (a cache that cannot be written only costs a later build the writing).
fn remember(
    record: Option<&std::path::Path>,
    made: &[Layer],
    target: Option<&super::image::PushTarget<'_>>,
) {
    let (Some(record), Some(target)) = (record, target) else {
        return;
    };
    let Some(known) = target.known else {
        return;
    };
    for layer in made {
        known.put(layer, target.image);
    }
    let diff_ids: Vec<&str> = made.iter().map(|l| l.diff_id.as_str()).collect();
    if let Ok(json) = serde_json::to_vec(&diff_ids) {
        crate::scratch::keep_in_cache(record, &json);
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
        let (mut debs, mut facts) = (Vec::new(), Vec::new());
        for package in &chosen {
            let path = fetcher.deb(package).await.map_err(fallback)?;
            let control = deb::read_control(std::fs::File::open(&path).map_err(fallback)?)
                .map_err(fallback)?;
            facts.push(package_facts(tree, package, &control));
            debs.push((path, control));
        }
        Ok::<_, DaemonlessError>((debs, facts))
    };
    let (debs, facts) = progress.in_step("apt", &step, fetching).await?;
    let chosen = Chosen {
        base,
        debs,
        dir_links: directory_links(tree),
        _fetcher: fetcher,
    };
    Ok((facts, chosen))
}

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

/// The two apt layers of a prepared step: the files, the dpkg database. A step the
/// decision left to dockerd is a [`Fallback`] (the engine does not build it this way).
pub async fn layers(prepared: &Prepared) -> Result<Vec<Layer>, DaemonlessError> {
    if let Some(e) = &prepared.error {
        return Err(DaemonlessError::Before(e.clone()));
    }
    let chosen = match (&prepared.facts, &prepared.chosen) {
        (AptFacts::Resolved(packages), Some(chosen)) => match facts::blocker(packages) {
            Some((package, why)) => {
                return Err(fallback(format!("apt package {package}: {why}")));
            }
            None => chosen.clone(),
        },
        (AptFacts::Unavailable(why) | AptFacts::Failed(why), _) => return Err(fallback(why)),
        (AptFacts::Resolved(_), None) => return Err(fallback("the apt step was not prepared")),
    };
    let writing =
        tokio::task::spawn_blocking(move || write(&chosen.base, &chosen.debs, &chosen.dir_links));
    writing.await.map_err(|e| DaemonlessError::Io {
        context: "writing the apt layers".into(),
        source: std::io::Error::other(e.to_string()),
    })?
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

fn write(
    base: &BaseApt,
    debs: &[(PathBuf, deb::ControlFiles)],
    dir_links: &[(String, String)],
) -> Result<Vec<Layer>, DaemonlessError> {
    let dir_link = |p: &str| {
        dir_links
            .iter()
            .find(|(link, _)| link == p)
            .map(|(_, t)| t.clone())
    };
    let tmp = std::env::temp_dir();
    let mut data = LayerWriter::new(&tmp)?;
    let mut status = base.status.trim_end().to_string();
    status.push_str("\n\n");
    let mut info = std::collections::BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for (path, control) in debs {
        let file = std::fs::File::open(path).map_err(|e| DaemonlessError::Io {
            context: format!("reading {}", path.display()),
            source: e,
        })?;
        let list = deb::unpack_data(
            std::io::BufReader::new(file),
            control,
            &mut data,
            &dir_link,
            &mut seen,
        )
        .map_err(fallback)?;
        let (paragraph, files) = deb::database_entries(control, &list).map_err(fallback)?;
        status.push_str(&paragraph.to_text());
        status.push('\n');
        info.extend(files);
    }
    let mut db = LayerWriter::new(&tmp)?;
    let dir = Attrs {
        uid: 0,
        gid: 0,
        mode: 0o755,
    };
    let mut dirs: std::collections::BTreeMap<&str, Attrs> = base
        .apt_dirs
        .iter()
        .map(|(p, a)| (p.as_str(), *a))
        .collect();
    for d in [
        "var",
        "var/lib",
        "var/lib/apt",
        "var/lib/dpkg",
        "var/lib/dpkg/info",
    ] {
        dirs.entry(d).or_insert(dir);
    }
    for (path, attrs) in dirs {
        db.dir(path, attrs)?;
    }
    for (name, bytes) in &info {
        let mode = if deb::is_script(name) { 0o755 } else { 0o644 };
        db.bytes(
            &format!("var/lib/dpkg/info/{name}"),
            Attrs { mode, ..dir },
            bytes,
        )?;
    }
    db.bytes(
        "var/lib/dpkg/status",
        Attrs { mode: 0o644, ..dir },
        status.as_bytes(),
    )?;
    if !base.extended_states.is_empty() {
        db.bytes(
            "var/lib/apt/extended_states",
            Attrs { mode: 0o644, ..dir },
            base.extended_states.as_bytes(),
        )?;
    }
    Ok(vec![data.finish()?, db.finish()?])
}

#[cfg(test)]
mod tests {
    use super::super::base::tests::tree;
    use super::*;

    fn debian() -> BaseTree {
        tree(&[
            ("bin", 'l', "usr/bin"),
            ("usr", 'd', ""),
            ("usr/bin", 'd', ""),
            (
                "usr/lib/os-release",
                'f',
                "ID=debian\nVERSION_CODENAME=bookworm\n",
            ),
            ("etc/os-release", 'l', "../usr/lib/os-release"),
            (
                "etc/apt/sources.list",
                'f',
                "deb http://deb.debian.org/debian bookworm main\n",
            ),
            (
                "etc/passwd",
                'f',
                "root:x:0:0::/root:/bin/sh\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n",
            ),
            (
                "var/lib/dpkg/status",
                'f',
                "Package: libc6\nStatus: install ok installed\nVersion: 2.36\n",
            ),
            ("var/log", 'd', ""),
            (
                "etc/apt/trusted.gpg.d/debian.asc",
                'f',
                "-----BEGIN PGP PUBLIC KEY BLOCK-----",
            ),
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
