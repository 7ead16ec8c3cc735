//! The dependency image's layers on the base: the user layer (the [`Overlay`] of the user
//! steps), the venv layer (`/root/.venv`, plus the mount points the Dockerfile's install
//! step leaves: `/root/.cache/uv` and `/usr/bin`) and the packages' layers, each written or
//! found where an earlier build pushed it ([`prepare_layers`]); [`super::config`] appends
//! them to the base ([`crate::oci::Image::append`]).

use super::DaemonlessError;
use super::base::{BaseTree, Kind};
use super::user::{Body, Overlay};
use super::uvlock::LockedWheels;
use crate::oci::image::{Blob, History, NewLayer};
use crate::oci::{Digest, ImageRef};
use crate::registry::client::RegistryClient;
use crate::sbom::layers::{LayerFacts, add_file};
use crate::source::layer::{Attrs, LAYER_GZIP, Layer, LayerWriter};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// An entry of a layer to write.
#[derive(Debug, Clone)]
enum Entry {
    Dir,
    Bytes(Vec<u8>),
    File(PathBuf),
    /// A file of an installed package, with the hash and size its `RECORD` line gives
    /// (`sha256=…,1234`, the size checked against the file's): its content in the layer's
    /// [`LayerPlan::key`], instead of reading it.
    Recorded(PathBuf, String),
    Symlink(String),
}

/// Paths → (owner and mode, what), written sorted with every parent present.
#[derive(Debug, Default)]
pub struct LayerPlan {
    entries: BTreeMap<String, (Attrs, Entry)>,
}

impl LayerPlan {
    /// Adds a directory at `path` (relative to `/`).
    pub fn dir(&mut self, path: &str, attrs: Attrs) {
        self.entries.insert(path.to_string(), (attrs, Entry::Dir));
    }

    /// Adds a file at `path` with `content`.
    pub fn bytes(&mut self, path: &str, attrs: Attrs, content: Vec<u8>) {
        self.entries
            .insert(path.to_string(), (attrs, Entry::Bytes(content)));
    }

    /// A directory entry for each parent of the entries that has none, with the base's
    /// attributes (a layer unpacked on its own must not hide them with defaults).
    fn add_parents(&mut self, base: &BaseTree) {
        let paths: Vec<String> = self.entries.keys().cloned().collect();
        for path in paths {
            let mut parent = path.as_str();
            while let Some((p, _)) = parent.rsplit_once('/') {
                parent = p;
                if self.entries.contains_key(parent) {
                    continue;
                }
                let attrs = base.node(parent).filter(|n| n.kind == Kind::Dir).map_or(
                    Attrs {
                        uid: 0,
                        gid: 0,
                        mode: 0o755,
                    },
                    |n| Attrs {
                        uid: n.uid,
                        gid: n.gid,
                        mode: n.mode,
                    },
                );
                self.entries.insert(parent.to_string(), (attrs, Entry::Dir));
            }
        }
    }

    /// Writes the layer into `dir`, every entry at `mtime`.
    fn write(&self, dir: &Path, mtime: u64) -> Result<Layer, crate::source::SourceError> {
        let mut layer = LayerWriter::new(dir)?.timed(mtime);
        self.add_to(&mut layer)?;
        layer.finish()
    }

    /// The layer's `diff_id`, computed without writing or compressing it.
    #[cfg(test)]
    fn diff_id(&self, mtime: u64) -> Result<Digest, crate::source::SourceError> {
        let mut layer = LayerWriter::diff_id_only().timed(mtime);
        self.add_to(&mut layer)?;
        layer.finish_diff_id()
    }

    fn add_to(&self, layer: &mut LayerWriter) -> Result<(), crate::source::SourceError> {
        for (path, (attrs, entry)) in &self.entries {
            match entry {
                Entry::Dir => layer.dir(path, *attrs)?,
                Entry::Bytes(b) => layer.bytes(path, *attrs, b)?,
                Entry::File(from) | Entry::Recorded(from, _) => layer.copy(path, *attrs, from)?,
                Entry::Symlink(target) => layer.symlink(path, *attrs, target)?,
            }
        }
        Ok(())
    }

    /// What the layer's tar would tell the SBOM ([`crate::sbom::layers`]), from the files
    /// at hand: the packages whose metadata it holds (a new layer deletes nothing); with
    /// `locked`, each wheel's sha256 as the lock gives it ([`LockedWheels::hash_of`], the
    /// tags its `.dist-info/WHEEL` lists).
    pub fn sbom_facts(&self, locked: Option<&LockedWheels>) -> std::io::Result<LayerFacts> {
        let mut facts = LayerFacts::default();
        for path in self.entries.keys() {
            if !crate::sbom::layers::cataloged(path) {
                continue;
            }
            if let Some(content) = self.content(path)? {
                add_file(&mut facts, path, content.len() as u64, &content[..])?;
            }
        }
        if let Some(locked) = locked {
            self.add_wheel_hashes(&mut facts, locked)?;
        }
        Ok(facts)
    }

    /// The content of the file at `path`; `None` for a directory or a link.
    fn content(&self, path: &str) -> std::io::Result<Option<Vec<u8>>> {
        match self.entries.get(path).map(|(_, entry)| entry) {
            Some(Entry::Bytes(b)) => Ok(Some(b.clone())),
            Some(Entry::File(from) | Entry::Recorded(from, _)) => std::fs::read(from).map(Some),
            _ => Ok(None),
        }
    }

    /// Each Python package of `facts` found in a `.dist-info/METADATA` beside a `WHEEL`
    /// file gets the sha256 `locked` gives of the wheel with that file's tags.
    fn add_wheel_hashes(
        &self,
        facts: &mut LayerFacts,
        locked: &LockedWheels,
    ) -> std::io::Result<()> {
        for (path, packages) in facts.files.iter_mut() {
            let Some(dist_info) = path.strip_suffix("/METADATA") else {
                continue;
            };
            let Some(wheel) = self.content(&format!("{dist_info}/WHEEL"))? else {
                continue;
            };
            let wheel = String::from_utf8_lossy(&wheel);
            for package in packages.iter_mut() {
                let hash = locked.hash_of(&package.name, &package.version, &wheel);
                package.sha256 = hash.map(str::to_string);
            }
        }
        Ok(())
    }

    /// A key of the layer's tar, cheaper than its `diff_id`: every entry's path, owner,
    /// mode and kind, with a file's content as its package's `RECORD` declares it (read
    /// and hashed only for a file no `RECORD` hashes: the venv's own, a `RECORD` itself).
    /// Two plans with one key give one tar; [`LayerKeys`] maps keys to `diff_id`s, so an
    /// unchanged package layer is neither read nor hashed again.
    fn key(&self, mtime: u64) -> Result<String, crate::source::SourceError> {
        use sha2::{Digest as _, Sha256};
        let mut key = Sha256::new();
        key.update(format!("imagespec layer key v1 {mtime}\n"));
        for (path, (attrs, entry)) in &self.entries {
            key.update(format!(
                "{path:?} {} {} {:o} ",
                attrs.uid, attrs.gid, attrs.mode
            ));
            match entry {
                Entry::Dir => key.update("d"),
                Entry::Bytes(b) => key.update(format!("b {:x}", Sha256::digest(b))),
                Entry::File(from) => {
                    let content =
                        std::fs::read(from).map_err(|source| crate::source::SourceError::Io {
                            path: from.clone(),
                            source,
                        })?;
                    key.update(format!("b {:x}", Sha256::digest(&content)));
                }
                Entry::Recorded(_, record) => key.update(format!("r {record:?}")),
                Entry::Symlink(target) => key.update(format!("l {target:?}")),
            }
            key.update("\n");
        }
        Ok(format!("{:x}", key.finalize()))
    }
}

/// The user layer: what the user steps changed.
pub fn user_layer(base: &BaseTree, overlay: &Overlay) -> LayerPlan {
    let mut plan = LayerPlan::default();
    for (path, item) in &overlay.items {
        let entry = match &item.body {
            Body::Dir => Entry::Dir,
            Body::File(b) => Entry::Bytes(b.clone()),
            Body::Symlink(t) => Entry::Symlink(t.clone()),
        };
        plan.entries.insert(path.clone(), (item.attrs, entry));
    }
    plan.add_parents(base);
    plan
}

/// How many shared layers the small installed packages are spread over (beside the venv's
/// own layer and the large packages' own layers). One layer per package would make an
/// image of a hundred layers for flytekit's 100 dependencies (slow to pull, near
/// overlayfs' limits); one layer for all would change whole with any package. Each small
/// package's files go to the shared layer its name hashes to, so adding or upgrading one
/// changes one small layer, and the others are found in the registry as they are
/// ([`prepare_layers`]).
pub const SHARED_PACKAGE_LAYERS: usize = 12;

/// A package whose files (as its `RECORD` sizes them) reach this many bytes gets a layer
/// of its own: a new small package then never shares a layer with a large one, so adding
/// `pyfiglet` to a flytekit spec compresses and uploads `pyfiglet` and one small layer,
/// not `botocore` again. About 20 of flytekit's 100 dependencies reach 1 MiB, and they
/// hold about 90% of the venv's bytes.
pub const OWN_LAYER_BYTES: u64 = 1 << 20;

/// At most this many packages get a layer of their own (the largest; ties by name): with
/// [`SHARED_PACKAGE_LAYERS`] and the venv's own layer, a venv is at most 53 layers, well
/// under overlayfs' 128 with any base.
pub const MAX_OWN_LAYERS: usize = 40;

/// Where a package's files go: a layer of its own, or one of the shared layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Shared(usize),
    Own(usize),
}

/// Each package's [`Slot`], from the bytes its files take: the [`MAX_OWN_LAYERS`] largest
/// of those reaching [`OWN_LAYER_BYTES`] get their own layer, numbered by name; every other
/// package goes to the shared layer its name hashes to. The same package set gives the
/// same layout on every machine (the image's digest is reproducible), and a package keeps
/// its slot when others are added unless it is pushed out of the largest forty.
fn package_layout(sizes: &BTreeMap<String, u64>) -> BTreeMap<String, Slot> {
    let packages: Vec<(&str, u64)> = sizes.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    let mut layout: BTreeMap<String, Slot> = sizes
        .keys()
        .map(|name| (name.clone(), Slot::Shared(shared_layer(name))))
        .collect();
    for (slot, i) in VENV_SPREAD.own(&packages).into_iter().enumerate() {
        layout.insert(packages[i].0.to_string(), Slot::Own(slot));
    }
    layout
}

/// The venv's [`Spread`].
const VENV_SPREAD: Spread = Spread {
    own_from: OWN_LAYER_BYTES,
    max_own: MAX_OWN_LAYERS,
    shared: SHARED_PACKAGE_LAYERS,
};

/// The rule both package layers follow (the venv's, [`package_layout`], and the apt
/// step's, [`super::apt_layers::layout`]): the `max_own` largest packages of at least
/// `own_from` (in the caller's unit) get a layer each; the others share `shared` layers by
/// a hash of their name. The same packages give the same spread on every machine.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub own_from: u64,
    pub max_own: usize,
    pub shared: usize,
}

impl Spread {
    /// The packages (indexes into `packages`: name and size) with a layer of their own:
    /// the largest from `own_from`, ties by name, at most `max_own`, in name order.
    pub fn own(&self, packages: &[(&str, u64)]) -> Vec<usize> {
        let mut own: Vec<usize> = (0..packages.len())
            .filter(|&i| packages[i].1 >= self.own_from)
            .collect();
        own.sort_by(|&a, &b| {
            (packages[b].1.cmp(&packages[a].1)).then(packages[a].0.cmp(packages[b].0))
        });
        own.truncate(self.max_own);
        own.sort_by_key(|&i| packages[i].0);
        own
    }

    /// The shared layer (of `shared`) a package goes to: by a hash of its name, the same
    /// on every machine and for every version.
    pub fn shared_layer(&self, name: &str) -> usize {
        use sha2::{Digest as _, Sha256};
        let hash = Sha256::digest(name.as_bytes());
        let n = u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"));
        (n % self.shared as u64) as usize
    }
}

/// The venv's layers: `venv` (a local directory) as `/root/.venv`, owned by `owner` (group
/// 0: `chown -R flytekit /root/.venv` after root made it), modes as a umask of 022 leaves
/// them; `/root` as `root_dir`. The first layer has the venv's directories, the files no
/// package owns (`pyvenv.cfg`, `bin/python`, activate scripts) and the install step's
/// mount points; then the packages' files (by their `RECORD`s) in the layers
/// [`package_layout`] gives them, each with its parent directories. Each comes with the history line it gets.
pub fn venv_layers(
    base: &BaseTree,
    venv: &Path,
    owner: u64,
    root_dir: Attrs,
) -> Result<Vec<(LayerPlan, String)>, DaemonlessError> {
    let records = package_records(venv).map_err(|source| DaemonlessError::Io {
        context: format!("reading the staged venv at {}", venv.display()),
        source,
    })?;
    let all = venv_entries(base, venv, owner, root_dir, &records.hashes)?;
    Ok(split_by_package(
        base,
        &all,
        &records.owners,
        &package_layout(&records.sizes),
    ))
}

/// Every entry of the venv layers: `/root`, the install step's mount points and the venv.
fn venv_entries(
    base: &BaseTree,
    venv: &Path,
    owner: u64,
    root_dir: Attrs,
    hashes: &BTreeMap<String, String>,
) -> Result<LayerPlan, DaemonlessError> {
    let mut all = LayerPlan::default();
    all.entries.insert("root".into(), (root_dir, Entry::Dir));
    let mount = Attrs {
        uid: 0,
        gid: 0,
        mode: 0o755,
    };
    // BuildKit leaves the cache mount's target and the uv binary's directory in the layer.
    all.entries
        .insert("root/.cache".into(), (mount, Entry::Dir));
    all.entries
        .insert("root/.cache/uv".into(), (mount, Entry::Dir));
    if let Some(n) = base.node("usr/bin").filter(|n| n.kind == Kind::Dir) {
        let attrs = Attrs {
            uid: n.uid,
            gid: n.gid,
            mode: n.mode,
        };
        all.entries.insert("usr/bin".into(), (attrs, Entry::Dir));
    }
    for entry in walkdir::WalkDir::new(venv).sort_by_file_name() {
        let entry = entry.map_err(|e| DaemonlessError::Io {
            context: format!("reading the staged venv at {}", venv.display()),
            source: e.into(),
        })?;
        let rel = entry
            .path()
            .strip_prefix(venv)
            .expect("walked below it")
            .to_string_lossy()
            .into_owned();
        let path = if rel.is_empty() {
            "root/.venv".to_string()
        } else {
            format!("root/.venv/{rel}")
        };
        let declared = hashes.get(&rel);
        all.entries
            .insert(path, venv_entry(&entry, owner, declared)?);
    }
    Ok(all)
}

/// One entry of the venv, owned by `owner` (group 0), modes as a umask of 022 leaves them;
/// `declared`: the hash and size a `RECORD` gives for it (`sha256=…,1234`), taken when the
/// size is the file's.
fn venv_entry(
    entry: &walkdir::DirEntry,
    owner: u64,
    declared: Option<&String>,
) -> Result<(Attrs, Entry), DaemonlessError> {
    let io = |source: std::io::Error| DaemonlessError::Io {
        context: format!("reading {}", entry.path().display()),
        source,
    };
    let kind = entry.file_type();
    let attrs = |mode| Attrs {
        uid: owner,
        gid: 0,
        mode,
    };
    Ok(if kind.is_symlink() {
        let target = std::fs::read_link(entry.path()).map_err(io)?;
        (
            attrs(0o777),
            Entry::Symlink(target.to_string_lossy().into_owned()),
        )
    } else if kind.is_dir() {
        (attrs(0o755), Entry::Dir)
    } else {
        use std::os::unix::fs::PermissionsExt;
        let meta = entry.metadata().map_err(|e| io(e.into()))?;
        let mode = if meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        let from = entry.path().to_path_buf();
        let size = meta.len().to_string();
        let file = match declared {
            Some(d) if d.rsplit_once(',').is_some_and(|(_, s)| s == size) => {
                Entry::Recorded(from, d.clone())
            }
            _ => Entry::File(from),
        };
        (attrs(mode), file)
    })
}

/// The venv's own layer (what no package owns) and the packages' layers (as `layout` puts
/// them: the shared ones, then the large packages' own), each with its parents and its
/// history line.
fn split_by_package(
    base: &BaseTree,
    all: &LayerPlan,
    owners: &BTreeMap<String, String>,
    layout: &BTreeMap<String, Slot>,
) -> Vec<(LayerPlan, String)> {
    let mut own = LayerPlan::default();
    let mut packages: BTreeMap<Slot, (LayerPlan, std::collections::BTreeSet<String>)> =
        BTreeMap::new();
    for (path, item) in &all.entries {
        let owner = path
            .strip_prefix("root/.venv/")
            .filter(|_| !matches!(item.1, Entry::Dir))
            .and_then(|rel| owners.get(rel));
        let Some(package) = owner else {
            own.entries.insert(path.clone(), item.clone());
            continue;
        };
        let slot = layout
            .get(package)
            .copied()
            .unwrap_or_else(|| Slot::Shared(shared_layer(package)));
        let (plan, names) = packages.entry(slot).or_default();
        names.insert(package.clone());
        plan.entries.insert(path.clone(), item.clone());
        // Its parents as the venv has them (`/root` as the user steps left it).
        let mut parent = path.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            parent = p;
            if let Some(dir) = all.entries.get(parent) {
                plan.entries.insert(parent.to_string(), dir.clone());
            }
        }
    }
    own.add_parents(base);
    let mut layers = vec![(own, "RUN uv venv /root/.venv".to_string())];
    for (mut plan, names) in packages.into_values() {
        plan.add_parents(base);
        let names: Vec<String> = names.into_iter().collect();
        layers.push((plan, format!("RUN uv pip install # {}", names.join(" "))));
    }
    layers
}

/// The shared layer (of [`SHARED_PACKAGE_LAYERS`]) a small package's files go to.
fn shared_layer(name: &str) -> usize {
    VENV_SPREAD.shared_layer(name)
}

/// Which installed package owns each file of `venv` (paths relative to it), from the
/// `RECORD` of each `*.dist-info` in its site-packages; the name is the distribution's, as
/// the directory spells it before the version (`PyYAML-6.0.2.dist-info` → `pyyaml`). A file
/// two packages list goes to the first in name order; files outside the venv are left out.
/// With the hash and size each `RECORD` line gives (`sha256=…,1234`), where it gives both,
/// and each package's bytes: the sizes its `RECORD` gives for the files it owns.
#[derive(Debug, Default)]
struct Records {
    owners: BTreeMap<String, String>,
    hashes: BTreeMap<String, String>,
    sizes: BTreeMap<String, u64>,
}

fn package_records(venv: &Path) -> std::io::Result<Records> {
    let mut records = Records::default();
    let lib = venv.join("lib");
    let mut sites = Vec::new();
    let entries = match std::fs::read_dir(&lib) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(records),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let site = entry?.path().join("site-packages");
        if site.is_dir() {
            sites.push(site);
        }
    }
    sites.sort();
    for site in sites {
        let site_rel = site
            .strip_prefix(venv)
            .expect("below the venv")
            .to_string_lossy()
            .into_owned();
        let mut dists: Vec<(String, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(&site)? {
            let path = entry?.path();
            let Some(dir) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(stem) = dir.strip_suffix(".dist-info") {
                let name = stem.split('-').next().unwrap_or(stem);
                dists.push((name.to_ascii_lowercase().replace(['_', '.'], "-"), path));
            }
        }
        dists.sort();
        for (name, dist) in dists {
            let record = match std::fs::read_to_string(dist.join("RECORD")) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for (file, hash) in record_rows(&record) {
                let Some(rel) = venv_relative(&site_rel, &file) else {
                    continue;
                };
                if records.owners.contains_key(&rel) {
                    continue;
                }
                let size = hash.as_deref().and_then(|h| h.rsplit_once(','));
                let size = size.and_then(|(_, n)| n.parse::<u64>().ok()).unwrap_or(0);
                *records.sizes.entry(name.clone()).or_default() += size;
                if let Some(hash) = hash {
                    records.hashes.insert(rel.clone(), hash);
                }
                records.owners.insert(rel, name.clone());
            }
        }
    }
    Ok(records)
}

/// The path fields of a `RECORD` file: CSV rows as Python's `csv` module writes them (a
/// field holding a comma, a quote or a line break is quoted), read by the `csv` crate; a
/// row without a path, or that is no CSV, is skipped.
#[cfg(test)]
fn record_paths(record: &str) -> impl Iterator<Item = String> + '_ {
    record_rows(record).map(|(path, _)| path)
}

/// The rows of a `RECORD` file (CSV, as Python's `csv` module writes it): each path, with its
/// `hash,size` when the row has both.
fn record_rows(record: &str) -> impl Iterator<Item = (String, Option<String>)> + '_ {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(record.as_bytes())
        .into_records()
        .filter_map(|row| {
            let row = row.ok()?;
            let path = row.get(0)?.to_string();
            let hash = match (row.get(1), row.get(2)) {
                (Some(h), Some(n)) if h.contains('=') && !n.is_empty() => Some(format!("{h},{n}")),
                _ => None,
            };
            Some((path, hash))
        })
        .filter(|(path, _)| !path.is_empty())
}

/// `file` (relative to the site-packages at `site_rel`, maybe with `..`) relative to the
/// venv; `None` when it leaves the venv.
fn venv_relative(site_rel: &str, file: &str) -> Option<String> {
    let mut parts: Vec<&str> = site_rel.split('/').collect();
    for part in file.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// A layer ready to push: written now, or found where it was pushed before.
#[derive(Debug)]
pub struct Ready {
    pub diff_id: Digest,
    pub digest: Digest,
    pub size: u64,
    /// The gzip'd tar to upload; `None` when the target repository has the blob already.
    pub written: Option<Layer>,
}

/// Where earlier layers were pushed: `diff_id` → blob, remembered in the imagespec cache
/// (`layers/<hex>.json`) so that a layer whose tar is the same as one pushed before is not
/// compressed again. Only a hint: the registry is asked whether it has the blob. An entry
/// made by another compressor ([`LAYER_GZIP`]: an older imagespec) is a miss, so the image
/// digest never depends on which version's cache a machine has.
#[derive(Debug, Clone)]
pub struct KnownLayers {
    dir: PathBuf,
    /// Layer keys ([`LayerPlan::key`]) → `diff_id`s (`layer-keys/<key>`, the `diff_id` in
    /// it): a layer whose key was seen is not hashed again to find its `diff_id`.
    keys: PathBuf,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct KnownLayer {
    // Typed: a record with anything but a digest here is a miss, never a blob name.
    diff_id: Digest,
    digest: Digest,
    size: u64,
    /// The image (`registry/repository:tag`) it was pushed with.
    image: ImageRef,
    /// The compressor that made the blob ([`LAYER_GZIP`]; none in older entries).
    #[serde(default)]
    gzip: String,
}

impl KnownLayers {
    /// In `cache` (the imagespec cache dir).
    pub fn in_cache(cache: &Path) -> KnownLayers {
        KnownLayers {
            dir: cache.join("layers"),
            keys: cache.join("layer-keys"),
        }
    }

    /// The `diff_id` of the layer with this key, as an earlier build found it.
    fn diff_id_of(&self, key: &str) -> Option<Digest> {
        let text = std::fs::read_to_string(self.keys.join(key)).ok()?;
        Digest::parse(text.trim()).ok()
    }

    /// Remembers the `diff_id` of the layer with this key (a cache that cannot be written
    /// only costs a later build a hash).
    fn put_key(&self, key: &str, diff_id: &Digest) {
        crate::scratch::keep_in_cache(&self.keys.join(key), diff_id.as_str().as_bytes());
    }

    fn path(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join(format!("{}.json", diff_id.hex()))
    }

    fn get(&self, diff_id: &Digest) -> Option<KnownLayer> {
        let known: KnownLayer =
            serde_json::from_slice(&std::fs::read(self.path(diff_id)).ok()?).ok()?;
        (known.diff_id == *diff_id && known.gzip == LAYER_GZIP).then_some(known)
    }

    /// The directory of the entries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of the layer keys.
    pub fn keys_dir(&self) -> &Path {
        &self.keys
    }

    /// Whether the file at `path` (in [`KnownLayers::dir`]) is an entry a lookup would use:
    /// a record for the `diff_id` its name says. Anything else is only ever a miss.
    pub fn is_whole_entry(path: &Path) -> bool {
        let Some(hex) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
        else {
            return false;
        };
        let Ok(bytes) = std::fs::read(path) else {
            return false;
        };
        serde_json::from_slice::<KnownLayer>(&bytes).is_ok_and(|k| k.diff_id.hex() == hex)
    }

    /// The layer `diff_id` as pushed before, when `target`'s repository has its blob or
    /// can mount it from the repository it was pushed to: ready, nothing to write.
    pub(super) async fn find(
        &self,
        target: &PushTarget<'_>,
        diff_id: &Digest,
    ) -> Result<Option<Ready>, DaemonlessError> {
        let Some(k) = self.get(diff_id) else {
            return Ok(None);
        };
        let (client, image) = (target.client, target.image);
        let same_registry = k.image.host() == image.host();
        let there = client.has_blob(image, k.digest.as_str()).await?
            || (same_registry && client.mount_blob(image, &k.image, k.digest.as_str()).await);
        Ok(there.then(|| Ready {
            diff_id: k.diff_id,
            digest: k.digest,
            size: k.size,
            written: None,
        }))
    }

    /// Remembers a layer pushed with `image` (a cache that cannot be written only costs a
    /// later build a compression).
    pub(super) fn put(&self, layer: &Layer, image: &ImageRef) {
        let known = KnownLayer {
            diff_id: layer.diff_id.clone(),
            digest: layer.digest.clone(),
            size: layer.size,
            image: image.clone(),
            gzip: LAYER_GZIP.to_string(),
        };
        if let Ok(json) = serde_json::to_vec(&known) {
            crate::scratch::keep_in_cache(&self.path(&layer.diff_id), &json);
        }
    }
}

/// A layer to write, or to find where an earlier build pushed it ([`prepare_layers`]):
/// a [`LayerPlan`], or the apt step's layer of some packages
/// ([`super::apt_layers`]).
pub trait PlannedLayer: Send + Sync + 'static {
    /// A key of the layer's tar, cheaper than its `diff_id`: one key, one tar.
    fn layer_key(&self, mtime: u64) -> Result<String, DaemonlessError>;
    /// Writes the compressed layer into `dir`.
    fn write_layer(&self, dir: &Path, mtime: u64) -> Result<Layer, DaemonlessError>;
}

impl PlannedLayer for LayerPlan {
    fn layer_key(&self, mtime: u64) -> Result<String, DaemonlessError> {
        Ok(self.key(mtime)?)
    }

    fn write_layer(&self, dir: &Path, mtime: u64) -> Result<Layer, DaemonlessError> {
        Ok(self.write(dir, mtime)?)
    }
}

/// Where the layers go: a repository of a registry, and what is known of layers pushed
/// before.
pub struct PushTarget<'a> {
    pub client: &'a RegistryClient,
    /// The image (`registry/repository:tag`) they are pushed with.
    pub image: &'a ImageRef,
    pub known: Option<&'a KnownLayers>,
}

/// [`prepare_layers`] of layers planned from files at hand, each layer's SBOM findings
/// (from those files; with `locked`, the wheels' hashes) handed to the SBOM by its blob
/// digest, so that it reads none of them back from the registry.
pub async fn prepare_described_layers(
    plans: Vec<LayerPlan>,
    locked: Option<&LockedWheels>,
    mtime: u64,
    target: Option<PushTarget<'_>>,
) -> Result<Vec<Ready>, DaemonlessError> {
    let facts: Vec<_> = plans.iter().map(|plan| plan.sbom_facts(locked)).collect();
    let layers = prepare_layers(plans, mtime, target).await?;
    for (layer, facts) in layers.iter().zip(facts) {
        if let Ok(facts) = facts {
            crate::sbom::layers::remember(layer.digest.hex(), &facts);
        }
    }
    Ok(layers)
}

/// How many layers [`prepare_layers`] looks up in the registry at once.
const FIND_JOBS: usize = 8;

/// Turns `plans` into layers ready to push to `target` (or to write to disk, with no
/// target): with [`KnownLayers`], a layer whose key was seen before has its `diff_id`
/// without being read, and one whose blob the registry has in the target repository, or
/// can mount from another repository of it, is taken as it is; the others are written
/// (compressed, in parallel: the one pass over their files).
pub async fn prepare_layers<P: PlannedLayer>(
    plans: Vec<P>,
    mtime: u64,
    target: Option<PushTarget<'_>>,
) -> Result<Vec<Ready>, DaemonlessError> {
    let plans = std::sync::Arc::new(plans);
    let mut found: Vec<Option<Ready>> = (0..plans.len()).map(|_| None).collect();
    if let Some(
        push @ PushTarget {
            known: Some(known), ..
        },
    ) = &target
    {
        let diff_ids = {
            let (plans, known) = (plans.clone(), (*known).clone());
            blocking("looking up the layers", move || {
                known_diff_ids(&plans, mtime, &known)
            })
            .await?
        };
        // Each lookup is up to three round trips (found? mounted? there now?): all at once.
        use futures_util::{StreamExt as _, TryStreamExt as _};
        let lookups = diff_ids.iter().map(|diff_id| async move {
            match diff_id {
                Some(diff_id) => known.find(push, diff_id).await,
                None => Ok(None),
            }
        });
        found = futures_util::stream::iter(lookups)
            .buffered(FIND_JOBS)
            .try_collect()
            .await?;
    }
    let missing: Vec<usize> = (0..plans.len()).filter(|&i| found[i].is_none()).collect();
    let written = {
        let plans = plans.clone();
        blocking("writing the layers", move || {
            use rayon::prelude::*;
            let dir = std::env::temp_dir();
            missing
                .par_iter()
                .map(|&i| Ok((i, plans[i].write_layer(&dir, mtime)?)))
                .collect::<Result<Vec<_>, DaemonlessError>>()
        })
        .await?
    };
    let mut written: BTreeMap<usize, Layer> = written.into_iter().collect();
    let mut ready = Vec::with_capacity(plans.len());
    for (i, hit) in found.into_iter().enumerate() {
        ready.push(match (hit, written.remove(&i)) {
            (Some(found), _) => found,
            (None, Some(layer)) => {
                if let Some(PushTarget {
                    image,
                    known: Some(known),
                    ..
                }) = &target
                {
                    known.put(&layer, image);
                    if let Ok(key) = plans[i].layer_key(mtime) {
                        known.put_key(&key, &layer.diff_id);
                    }
                }
                Ready {
                    diff_id: layer.diff_id.clone(),
                    digest: layer.digest.clone(),
                    size: layer.size,
                    written: Some(layer),
                }
            }
            (None, None) => unreachable!("every layer not found is written"),
        });
    }
    Ok(ready)
}

/// Each plan's `diff_id` as [`KnownLayers`] remembers it for the plan's key (computed in
/// parallel), `None` for a key never seen. An unseen layer is not hashed on its own: its
/// `diff_id` comes from writing it, which the build must do anyway unless the registry has
/// the blob, and a key is unseen only for a layer never built here (or one whose key was
/// pruned before its record: it is compressed again, and its push finds the blob there).
fn known_diff_ids<P: PlannedLayer>(
    plans: &[P],
    mtime: u64,
    known: &KnownLayers,
) -> Result<Vec<Option<Digest>>, DaemonlessError> {
    use rayon::prelude::*;
    plans
        .par_iter()
        .map(|p| Ok(known.diff_id_of(&p.layer_key(mtime)?)))
        .collect()
}

async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T, DaemonlessError> + Send + 'static,
) -> Result<T, DaemonlessError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DaemonlessError::Io {
            context: what.into(),
            source: std::io::Error::other(e.to_string()),
        })?
}

impl Ready {
    /// The layer to append, with its history line: the file written, or, when the target
    /// repository has it already, the blob there (`image`: the target).
    pub fn into_new_layer(self, image: &ImageRef, created_by: String) -> NewLayer {
        let blob = match self.written {
            Some(layer) => Blob::file(layer.file),
            None => Blob::Remote(image.clone()),
        };
        NewLayer {
            digest: self.digest,
            diff_id: self.diff_id,
            size: self.size,
            blob,
            history: History::new(&created_by, ""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::base::tests::tree;
    use super::super::user::Item;
    use super::*;

    #[test]
    fn layers_carry_every_parent_with_the_bases_attributes_and_are_reproducible() {
        let base = tree(&[("etc", 'd', ""), ("home", 'd', "")]);
        let mut overlay = Overlay::default();
        overlay.items.insert(
            "home/flytekit/.profile".into(),
            Item {
                attrs: Attrs {
                    uid: 1000,
                    gid: 1000,
                    mode: 0o644,
                },
                body: Body::File(b"export PATH=/x\n".to_vec()),
            },
        );
        overlay.items.insert(
            "etc/passwd".into(),
            Item {
                attrs: Attrs {
                    uid: 0,
                    gid: 0,
                    mode: 0o644,
                },
                body: Body::File(b"root:x:0:0::/root:/bin/sh\n".to_vec()),
            },
        );
        let plan = user_layer(&base, &overlay);
        let paths: Vec<&str> = plan.entries.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "etc",
                "etc/passwd",
                "home",
                "home/flytekit",
                "home/flytekit/.profile"
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let one = plan
            .write(dir.path(), crate::source::layer::LAYER_MTIME)
            .unwrap();
        let two = user_layer(&base, &overlay)
            .write(dir.path(), crate::source::layer::LAYER_MTIME)
            .unwrap();
        assert_eq!((one.digest, one.diff_id), (two.digest, two.diff_id));
    }

    #[test]
    fn the_venv_layer_is_owned_by_the_user_with_umask_022_modes() {
        use std::os::unix::fs::PermissionsExt;
        let stage = tempfile::tempdir().unwrap();
        let venv = stage.path().join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("bin/tool"), "#!/root/.venv/bin/python\n").unwrap();
        std::fs::set_permissions(
            venv.join("bin/tool"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        std::fs::set_permissions(
            venv.join("pyvenv.cfg"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("/usr/bin/python3", venv.join("bin/python")).unwrap();
        let (base, root) = usr_bin_base();
        let layers = venv_layers(&base, &venv, 1000, root).unwrap();
        assert_eq!(layers.len(), 1, "no package: the venv's own layer only");
        let plan = &layers[0].0;
        let got: Vec<(String, u32, u64, u64)> = plan
            .entries
            .iter()
            .map(|(p, (a, _))| (p.clone(), a.mode, a.uid, a.gid))
            .collect();
        let want = [
            ("root", 0o700, 1000, 0),
            ("root/.cache", 0o755, 0, 0),
            ("root/.cache/uv", 0o755, 0, 0),
            ("root/.venv", 0o755, 1000, 0),
            ("root/.venv/bin", 0o755, 1000, 0),
            ("root/.venv/bin/python", 0o777, 1000, 0),
            ("root/.venv/bin/tool", 0o755, 1000, 0),
            ("root/.venv/pyvenv.cfg", 0o644, 1000, 0),
            ("usr", 0o755, 0, 0),
            ("usr/bin", 0o755, 0, 0),
        ]
        .map(|(p, m, u, g)| (p.to_string(), m, u, g));
        assert_eq!(got, want);
    }

    /// A venv with two packages: `site-packages/<name>/__init__.py`, its dist-info and
    /// RECORD, and a console script in `bin/`.
    fn venv_with(packages: &[(&str, &str)]) -> tempfile::TempDir {
        let stage = tempfile::tempdir().unwrap();
        let venv = stage.path();
        let site = venv.join("lib/python3.11/site-packages");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::create_dir_all(&site).unwrap();
        std::fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        std::os::unix::fs::symlink("/usr/bin/python3", venv.join("bin/python")).unwrap();
        for (name, version) in packages {
            let dist = format!("{name}-{version}.dist-info");
            std::fs::create_dir_all(site.join(name)).unwrap();
            std::fs::create_dir_all(site.join(&dist)).unwrap();
            std::fs::write(site.join(name).join("__init__.py"), *version).unwrap();
            std::fs::write(venv.join("bin").join(format!("{name}-cli")), "#!python\n").unwrap();
            let record = format!(
                "{name}/__init__.py,sha256=x,1\n{dist}/RECORD,,\n\
                 ../../../bin/{name}-cli,sha256=y,9\n\"{name}/with,comma.py\",,\n"
            );
            std::fs::write(site.join(&dist).join("RECORD"), record).unwrap();
        }
        stage
    }

    /// A base holding only `usr/bin`, and the attributes of a root owned by uid 1000.
    fn usr_bin_base() -> (BaseTree, Attrs) {
        let base = tree(&[("usr/bin", 'd', "")]);
        let root = Attrs {
            uid: 1000,
            gid: 0,
            mode: 0o700,
        };
        (base, root)
    }

    #[test]
    fn packages_are_spread_over_layers_by_name_and_a_new_one_changes_one_layer() {
        let (base, root) = usr_bin_base();
        let diff_ids = |packages: &[(&str, &str)]| {
            let stage = venv_with(packages);
            let layers = venv_layers(&base, stage.path(), 1000, root).unwrap();
            let files: Vec<Vec<String>> = layers
                .iter()
                .map(|(p, _)| p.entries.keys().cloned().collect())
                .collect();
            let ids: BTreeMap<String, Digest> = layers
                .iter()
                .map(|(p, history)| {
                    (
                        history.clone(),
                        p.diff_id(crate::source::layer::LAYER_MTIME).unwrap(),
                    )
                })
                .collect();
            (files, ids)
        };
        let (files, before) = diff_ids(&[("requests", "2.32.3"), ("pyyaml", "6.0.2")]);
        // The venv's own layer: its directories and the files no package owns.
        assert!(files[0].contains(&"root/.venv/pyvenv.cfg".to_string()));
        assert!(files[0].contains(&"root/.venv/bin/python".to_string()));
        assert!(!files[0].iter().any(|f| f.ends_with("__init__.py")));
        // Every package file is in exactly one layer, with its parents.
        for wanted in [
            "root/.venv/lib/python3.11/site-packages/requests/__init__.py",
            "root/.venv/lib/python3.11/site-packages/pyyaml-6.0.2.dist-info/RECORD",
            "root/.venv/bin/pyyaml-cli",
        ] {
            let holding: Vec<&Vec<String>> = files
                .iter()
                .filter(|f| f.contains(&wanted.to_string()))
                .collect();
            assert_eq!(holding.len(), 1, "{wanted}");
            assert!(
                holding[0].contains(&"root".to_string()),
                "parents of {wanted}"
            );
        }
        assert_eq!(
            shared_layer("requests") == shared_layer("pyyaml"),
            files.len() == 2,
            "{files:?}"
        );
        // Adding a package (into a layer of its own name) leaves the other packages'
        // layers as they were: same diff_ids.
        let (_, after) = diff_ids(&[
            ("requests", "2.32.3"),
            ("pyyaml", "6.0.2"),
            ("six", "1.17.0"),
        ]);
        let unchanged = before
            .iter()
            .filter(|(h, id)| h.starts_with("RUN uv pip install") && after.get(*h) == Some(id))
            .count();
        let untouched_layers = [shared_layer("requests"), shared_layer("pyyaml")]
            .into_iter()
            .filter(|l| *l != shared_layer("six"))
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        assert_eq!(unchanged, untouched_layers, "{before:?}\n{after:?}");
    }

    /// Large packages get layers of their own (the largest forty, numbered by name), small
    /// ones the shared layer of their name; adding a package moves no other package.
    #[test]
    fn large_packages_get_their_own_layers_and_small_ones_share_by_name() {
        let mib = OWN_LAYER_BYTES;
        let sizes: BTreeMap<String, u64> = [
            ("botocore", 20 * mib),
            ("grpcio", 18 * mib),
            ("six", 40_000),
            ("idna", mib - 1),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
        let layout = package_layout(&sizes);
        assert_eq!(layout["botocore"], Slot::Own(0));
        assert_eq!(layout["grpcio"], Slot::Own(1));
        assert_eq!(layout["six"], Slot::Shared(shared_layer("six")));
        assert_eq!(layout["idna"], Slot::Shared(shared_layer("idna")));
        // A new small package and a new large one: every other package keeps its slot
        // (the own layers are numbered by name, so a name after the others moves none).
        let mut more = sizes.clone();
        more.insert("pyfiglet".into(), 6 * mib);
        more.insert("attrs".into(), 200_000);
        let after = package_layout(&more);
        for name in sizes.keys() {
            assert_eq!(after[name], layout[name], "{name}");
        }
        assert_eq!(after["pyfiglet"], Slot::Own(2));
        // At most MAX_OWN_LAYERS own layers: the largest; the rest share.
        let many: BTreeMap<String, u64> = (0..MAX_OWN_LAYERS as u64 + 5)
            .map(|i| (format!("p{i:03}"), mib + i))
            .collect();
        let layout = package_layout(&many);
        let own = layout
            .values()
            .filter(|s| matches!(s, Slot::Own(_)))
            .count();
        assert_eq!(own, MAX_OWN_LAYERS);
        assert!(
            matches!(layout["p000"], Slot::Shared(_)),
            "the smallest share"
        );
        assert!(matches!(layout["p044"], Slot::Own(_)));
    }

    /// A large package's files are a layer of their own, sized by its `RECORD`.
    #[test]
    fn a_large_package_is_a_layer_of_its_own() {
        let (base, root) = usr_bin_base();
        let stage = venv_with(&[("requests", "2.32.3"), ("pyyaml", "6.0.2")]);
        let site = stage.path().join("lib/python3.11/site-packages");
        let record = site.join("requests-2.32.3.dist-info/RECORD");
        let text = std::fs::read_to_string(&record).unwrap();
        let big = format!("requests/big.bin,sha256=z,{OWN_LAYER_BYTES}\n");
        std::fs::write(&record, format!("{text}{big}")).unwrap();
        std::fs::write(site.join("requests/big.bin"), b"x").unwrap();
        let layers = venv_layers(&base, stage.path(), 1000, root).unwrap();
        let histories: Vec<&str> = layers.iter().map(|(_, h)| h.as_str()).collect();
        assert_eq!(
            histories,
            [
                "RUN uv venv /root/.venv",
                "RUN uv pip install # pyyaml",
                "RUN uv pip install # requests"
            ]
        );
        let requests = &layers[2].0.entries;
        assert!(requests.contains_key("root/.venv/lib/python3.11/site-packages/requests/big.bin"));
        assert!(!requests.keys().any(|k| k.contains("pyyaml")));
    }

    /// The findings a plan hands to the SBOM are those the SBOM reads from the layer written.
    #[test]
    fn a_plans_sbom_facts_are_what_its_written_layer_gives() {
        let (base, root) = usr_bin_base();
        let stage = venv_with(&[("requests", "2.32.3"), ("pyyaml", "6.0.2")]);
        let site = stage.path().join("lib/python3.11/site-packages");
        for (name, version) in [("requests", "2.32.3"), ("pyyaml", "6.0.2")] {
            let metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
            std::fs::write(
                site.join(format!("{name}-{version}.dist-info/METADATA")),
                metadata,
            )
            .unwrap();
        }
        let layers = venv_layers(&base, stage.path(), 1000, root).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut found = Vec::new();
        for (plan, _) in &layers {
            let written = plan.write(dir.path(), 0).unwrap();
            let file = std::fs::File::open(written.file.path()).unwrap();
            let read = crate::sbom::layers::read_layer(file).unwrap();
            assert_eq!(plan.sbom_facts(None).unwrap(), read);
            found.extend(read.files.into_values().flatten().map(|p| p.name));
        }
        found.sort();
        assert_eq!(found, ["pyyaml", "requests"]);
        // With a lock, the wheel whose tags the WHEEL file lists gets the lock's hash.
        for dist in ["requests-2.32.3", "pyyaml-6.0.2"] {
            let wheel = "Wheel-Version: 1.0\nTag: py3-none-any\n";
            std::fs::write(site.join(format!("{dist}.dist-info/WHEEL")), wheel).unwrap();
        }
        let hex = "70761cfe03c773ceb22aa2f671b4757976145175cdfca038c02654d061d6dcc6";
        let lock = format!(
            "version = 1\n[[package]]\nname = \"requests\"\nversion = \"2.32.3\"\n\
             wheels = [{{ url = \"https://f.org/requests-2.32.3-py3-none-any.whl\", \
             hash = \"sha256:{hex}\" }}]\n"
        );
        let locked = LockedWheels::of(&lock);
        let layers = venv_layers(&base, stage.path(), 1000, root).unwrap();
        let hashes: BTreeMap<String, Option<String>> = layers
            .iter()
            .flat_map(|(plan, _)| plan.sbom_facts(Some(&locked)).unwrap().files)
            .flat_map(|(_, packages)| packages)
            .map(|p| (p.name, p.sha256))
            .collect();
        assert_eq!(hashes["requests"].as_deref(), Some(hex));
        assert_eq!(hashes["pyyaml"], None, "not in the lock: no hash");
    }

    /// A package layer's key follows its `RECORD` (a file is not read for it), and a key
    /// seen before gives the `diff_id` remembered for it without hashing the layer.
    #[test]
    fn a_package_layer_is_keyed_by_its_record_and_not_hashed_again() {
        let (base, root) = usr_bin_base();
        let stage = tempfile::tempdir().unwrap();
        let venv = stage.path();
        let site = venv.join("lib/python3.11/site-packages");
        std::fs::create_dir_all(site.join("six-1.17.0.dist-info")).unwrap();
        std::fs::write(site.join("six.py"), "six = 6\n").unwrap();
        let record =
            |hash: &str| format!("six.py,sha256={hash},8\nsix-1.17.0.dist-info/RECORD,,\n");
        let record_file = site.join("six-1.17.0.dist-info/RECORD");
        std::fs::write(&record_file, record("aaa")).unwrap();
        let package_layer = || {
            let mut layers = venv_layers(&base, venv, 1000, root).unwrap();
            assert_eq!(layers.len(), 2, "the venv's own layer and six's");
            layers.pop().unwrap().0
        };
        let mtime = crate::source::layer::LAYER_MTIME;
        let key = package_layer().key(mtime).unwrap();
        assert!(matches!(
            package_layer().entries.get("root/.venv/lib/python3.11/site-packages/six.py"),
            Some((_, Entry::Recorded(_, r))) if r == "sha256=aaa,8"
        ));
        // The same RECORD: the same key, the file unread; another RECORD: another key.
        std::fs::write(site.join("six.py"), "six = 7\n").unwrap();
        assert_eq!(package_layer().key(mtime).unwrap(), key);
        std::fs::write(&record_file, record("bbb")).unwrap();
        let other = package_layer().key(mtime).unwrap();
        assert_ne!(other, key);
        assert_ne!(
            package_layer().key(mtime + 1).unwrap(),
            other,
            "the time is in it"
        );

        let cache = tempfile::tempdir().unwrap();
        let known = KnownLayers::in_cache(cache.path());
        let plans = vec![package_layer()];
        // A key never seen: no diff_id (the layer is written, not hashed on its own).
        assert_eq!(known_diff_ids(&plans, mtime, &known).unwrap(), [None]);
        // What the cache says is taken as it is: nothing is hashed.
        let planted = Digest::parse(&format!("sha256:{}", "0".repeat(64))).unwrap();
        known.put_key(&other, &planted);
        assert_eq!(
            known_diff_ids(&plans, mtime, &known).unwrap(),
            [Some(planted)]
        );
    }

    #[test]
    fn record_paths_are_csv_fields_resolved_against_site_packages() {
        let paths = |record: &str| record_paths(record).collect::<Vec<_>>();
        assert_eq!(paths("a/b.py,sha256=x,3"), ["a/b.py"]);
        assert_eq!(paths("\"a/we,ird\"\"q.py\",sha256=x,3"), ["a/we,ird\"q.py"]);
        assert_eq!(paths(""), Vec::<String>::new());
        assert_eq!(paths("a.py,,\n,,\n\"b\nc.py\",,\n"), ["a.py", "b\nc.py"]);
        let site = "lib/python3.11/site-packages";
        assert_eq!(
            venv_relative(site, "../../../bin/tool").as_deref(),
            Some("bin/tool")
        );
        assert_eq!(venv_relative(site, "../../../../etc/passwd"), None);
        assert_eq!(
            venv_relative(site, "./x/y.py").as_deref(),
            Some("lib/python3.11/site-packages/x/y.py")
        );
    }

    #[test]
    fn a_blob_another_compressor_made_is_not_taken_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let known = KnownLayers::in_cache(dir.path());
        let mut writer = LayerWriter::new(dir.path()).unwrap();
        writer
            .bytes(
                "a",
                Attrs {
                    uid: 0,
                    gid: 0,
                    mode: 0o644,
                },
                b"a",
            )
            .unwrap();
        let layer = writer.finish().unwrap();
        let image: ImageRef = "r.test/x:deps-1".parse().unwrap();
        known.put(&layer, &image);
        assert!(
            known.get(&layer.diff_id).is_some(),
            "this compressor's entry"
        );
        // An entry as an older imagespec wrote it: no compressor named.
        let path = known.path(&layer.diff_id);
        let mut old: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        old.as_object_mut().unwrap().remove("gzip");
        std::fs::write(&path, old.to_string()).unwrap();
        assert!(
            known.get(&layer.diff_id).is_none(),
            "a miss: the layer is compressed again"
        );
    }
}
