//! The source layer: the files the source and `copy` COPY steps put under `/root`, as one
//! deterministic gzip'd tar written straight to disk (never whole in memory).
//!
//! It is what BuildKit's `COPY --chown=flytekit` would leave: regular files with their own
//! permission bits (links to files read through, as the build context has them), directories
//! `0755`, everything owned by the `flytekit` user (`--chown=user` without a group gives the
//! group with the same number as the user), times fixed to the build context's 1980 epoch.
//! Entries are sorted, the gzip headers carry no name or time and the compression is cut at
//! fixed points, so the same files give the same layer digest on every machine.
//!
//! `write_layer_keeping(entries, owner, root_attrs, mtime, dir, keep)` writes it, keeping the
//! files an SBOM's catalogers read; the tests below read layers back entry by entry.

use super::SourceError;
use crate::batched::{Batched, Sink};
use crate::oci::Digest;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read as _, Write};
use std::path::{Path, PathBuf};

/// The modification time of every entry unless `SOURCE_DATE_EPOCH` sets one: the build
/// context's (1980-01-01), which BuildKit's COPY keeps.
pub const LAYER_MTIME: u64 = crate::oci::epoch::DEFAULT_LAYER_MTIME;

/// A file or directory that lands under `/root` (path relative to it, `/`-separated).
#[derive(Debug, Clone, PartialEq)]
pub enum RootEntry {
    File { to: String, from: PathBuf },
    Dir { to: String },
}

/// Numeric owner of the layer's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u64,
    pub gid: u64,
}

/// Owner and permission bits of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirAttrs {
    pub uid: u64,
    pub gid: u64,
    pub mode: u32,
}

/// A layer written to disk.
#[derive(Debug)]
pub struct Layer {
    /// The gzip'd tar (deleted when this value is dropped, or the run interrupted).
    pub file: crate::scratch::ScratchFile,
    /// `sha256:…` of the compressed bytes (the blob digest).
    pub digest: Digest,
    /// `sha256:…` of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// Compressed size in bytes.
    pub size: u64,
    /// Number of files in it.
    pub files: usize,
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    written: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// gzip, compressed in parallel: the input is cut into fixed 1 MiB pieces, each compressed
/// as a gzip member of its own (on all cores, a batch at a time, so memory stays bounded),
/// and the members are written in order. A file of several members is one gzip stream to
/// every reader (RFC 1952; Go's, Python's, zlib's), and fixed pieces keep the output — and
/// the layer digest — the same on every machine.
type ParallelGzip<W> = Batched<GzipMembers<W>>;

fn parallel_gzip<W: Write>(inner: W) -> ParallelGzip<W> {
    Batched::new(GzipMembers { inner }, GZIP_BATCH)
}

const GZIP_PIECE: usize = 1 << 20;

/// What compresses layers, as a cache of blobs by `diff_id` records it: another imagespec
/// may compress the same tar to other bytes (another level, piece size or deflate
/// implementation), so its blob is not this one's.
pub const LAYER_GZIP: &str = concat!(
    "imagespec ",
    env!("CARGO_PKG_VERSION"),
    ": flate2 (zlib-rs) level 1, 1 MiB members"
);
const GZIP_BATCH: usize = 16 * GZIP_PIECE;

/// Each batch's pieces compressed in parallel, written to `inner` in order.
struct GzipMembers<W: Write> {
    inner: W,
}

impl<W: Write> Sink for GzipMembers<W> {
    fn take(&mut self, batch: Vec<u8>) -> std::io::Result<()> {
        use rayon::prelude::*;
        let members: Vec<std::io::Result<Vec<u8>>> = batch
            .par_chunks(GZIP_PIECE)
            .map(|piece| {
                // Level 1: about three times faster than the default for source code, a
                // little larger; fixed, so the digest stays reproducible.
                let mut gz = flate2::GzBuilder::new().mtime(0).write(
                    Vec::with_capacity(piece.len() / 2),
                    flate2::Compression::fast(),
                );
                gz.write_all(piece)?;
                gz.finish()
            })
            .collect();
        for member in members {
            self.inner.write_all(&member?)?;
        }
        Ok(())
    }
}

fn digest_of(hash: Sha256) -> Digest {
    Digest::from_sha256(&hash.finalize())
}

/// `a/./b` → `a/b`; `.` → `` (the directory itself).
fn clean(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Owner and permission bits of a layer entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attrs {
    pub uid: u64,
    pub gid: u64,
    /// Permission bits (`0o7777`).
    pub mode: u32,
}

/// Where a layer's tar goes: gzip'd into its file, or nowhere (only its digest is wanted).
enum Output {
    Gzip(ParallelGzip<Hashing<std::io::BufWriter<fs::File>>>),
    Discard,
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Gzip(w) => w.write(buf),
            Output::Discard => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Gzip(w) => w.flush(),
            Output::Discard => Ok(()),
        }
    }
}

/// Whether a component of `path` starts with `.wh.`: a name an image layer reads as a
/// whiteout (`.wh.NAME` deletes `NAME` below it, `.wh..wh..opq` a directory's contents).
pub fn is_whiteout(path: &str) -> bool {
    path.split('/').any(|part| part.starts_with(".wh."))
}

/// A deterministic layer written entry by entry: the caller adds directories, files and
/// links in the order they are to appear (sorted, parents first), each with its owner and
/// mode; times are [`LAYER_MTIME`] (or [`LayerWriter::timed`]'s), user and group names
/// empty, gzip as for the source layer. The same entries give the same digest on every
/// machine.
pub struct LayerWriter {
    tar: tar::Builder<Hashing<Output>>,
    /// Every entry's modification time.
    mtime: u64,
    /// The gzip'd tar's file and its directory (none for [`LayerWriter::diff_id_only`]).
    file: Option<(crate::scratch::ScratchFile, PathBuf)>,
    files: usize,
    /// Which regular files to keep a copy of as they are written, and up to what size
    /// ([`LayerWriter::keeping`]).
    keep: Option<Keep>,
    kept: Vec<KeptFile>,
}

/// Which regular files a writer keeps a copy of, and up to what size.
#[derive(Clone, Copy)]
struct Keep {
    wanted: fn(&str) -> bool,
    limit: u64,
}

/// A regular file a [`LayerWriter::keeping`] writer kept as it wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptFile {
    /// As written into the layer (relative to `/`).
    pub path: String,
    pub size: u64,
    /// Its bytes; empty past the writer's limit.
    pub bytes: Vec<u8>,
}

impl LayerWriter {
    /// A new layer in a temporary file in `dir`.
    pub fn new(dir: &Path) -> Result<LayerWriter, SourceError> {
        let io = |source| SourceError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let file = crate::scratch::ScratchFile::new_in(dir, "layer").map_err(io)?;
        let out = Hashing {
            inner: std::io::BufWriter::with_capacity(1 << 20, file.file().try_clone().map_err(io)?),
            hash: Sha256::new(),
            written: 0,
        };
        Ok(Self::with_output(
            Output::Gzip(parallel_gzip(out)),
            Some((file, dir.to_path_buf())),
        ))
    }

    /// A layer of which nothing is written: the entries are only walked (the apt step
    /// unpacks a `.deb` through it to list its files when its layer is not written).
    pub fn diff_id_only() -> LayerWriter {
        Self::with_output(Output::Discard, None)
    }

    fn with_output(
        output: Output,
        file: Option<(crate::scratch::ScratchFile, PathBuf)>,
    ) -> LayerWriter {
        let mut tar = tar::Builder::new(Hashing {
            inner: output,
            hash: Sha256::new(),
            written: 0,
        });
        tar.mode(tar::HeaderMode::Deterministic);
        LayerWriter {
            tar,
            mtime: LAYER_MTIME,
            file,
            files: 0,
            keep: None,
            kept: Vec::new(),
        }
    }

    /// The same writer keeping a copy of each regular file `wanted` names (its bytes when
    /// at most `limit`): what a layer's reader would find in it (the SBOM's catalogers'
    /// files), known without reading the layer back.
    pub fn keeping(mut self, wanted: fn(&str) -> bool, limit: u64) -> LayerWriter {
        self.keep = Some(Keep { wanted, limit });
        self
    }

    /// The files kept so far ([`LayerWriter::keeping`]), in the order written.
    pub fn take_kept(&mut self) -> Vec<KeptFile> {
        std::mem::take(&mut self.kept)
    }

    /// The same writer with `mtime` as every entry's time (`SOURCE_DATE_EPOCH`'s, see
    /// [`crate::oci::epoch::layer_mtime`]).
    pub fn timed(mut self, mtime: u64) -> LayerWriter {
        self.mtime = mtime;
        self
    }

    fn header(&self, kind: tar::EntryType, attrs: Attrs, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_uid(attrs.uid);
        header.set_gid(attrs.gid);
        header.set_mode(attrs.mode & 0o7777);
        header.set_mtime(self.mtime);
        header.set_size(size);
        header
    }

    /// Refuses a path an image layer would read as a whiteout ([`is_whiteout`]): whatever
    /// it comes from (a `.deb`, a wheel, a source tree), it would delete files of the layers
    /// below rather than add one.
    fn named(path: &str) -> Result<(), SourceError> {
        match is_whiteout(path) {
            true => Err(SourceError::Whiteout {
                path: path.to_string(),
            }),
            false => Ok(()),
        }
    }

    fn failed(path: &str) -> impl FnOnce(std::io::Error) -> SourceError {
        let path = PathBuf::from(path);
        move |source| SourceError::Io { path, source }
    }

    /// A directory (`path` relative to `/`, without a trailing slash).
    pub fn dir(&mut self, path: &str, attrs: Attrs) -> Result<(), SourceError> {
        Self::named(path)?;
        let mut header = self.header(tar::EntryType::Directory, attrs, 0);
        self.tar
            .append_data(&mut header, format!("{path}/"), std::io::empty())
            .map_err(Self::failed(path))
    }

    /// A regular file of `size` bytes read from `content`.
    pub fn file(
        &mut self,
        path: &str,
        attrs: Attrs,
        size: u64,
        content: impl std::io::Read,
    ) -> Result<(), SourceError> {
        Self::named(path)?;
        let mut header = self.header(tar::EntryType::Regular, attrs, size);
        match self.keep {
            Some(keep) if (keep.wanted)(path) => {
                let mut bytes = Vec::new();
                if size <= keep.limit {
                    let mut content = content.take(size);
                    content
                        .read_to_end(&mut bytes)
                        .map_err(Self::failed(path))?;
                    self.tar.append_data(&mut header, path, &bytes[..])
                } else {
                    self.tar.append_data(&mut header, path, content)
                }
                .map_err(Self::failed(path))?;
                let path = path.to_string();
                self.kept.push(KeptFile { path, size, bytes });
            }
            _ => self
                .tar
                .append_data(&mut header, path, content)
                .map_err(Self::failed(path))?,
        }
        self.files += 1;
        Ok(())
    }

    /// A regular file with these bytes.
    pub fn bytes(&mut self, path: &str, attrs: Attrs, content: &[u8]) -> Result<(), SourceError> {
        self.file(path, attrs, content.len() as u64, content)
    }

    /// A regular file copied from the local file `from` (its content only).
    pub fn copy(&mut self, path: &str, attrs: Attrs, from: &Path) -> Result<(), SourceError> {
        let io = |source| SourceError::Io {
            path: from.to_path_buf(),
            source,
        };
        let source = super::untrusted::open_regular(from).map_err(io)?;
        let size = source.metadata().map_err(io)?.len();
        self.file(
            path,
            attrs,
            size,
            std::io::BufReader::with_capacity(1 << 16, source),
        )
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, attrs: Attrs, target: &str) -> Result<(), SourceError> {
        self.link(tar::EntryType::Symlink, path, attrs, target)
    }

    /// A hard link to `target`, an earlier entry of this layer (a `.deb`'s hard links).
    pub fn hardlink(&mut self, path: &str, attrs: Attrs, target: &str) -> Result<(), SourceError> {
        self.link(tar::EntryType::Link, path, attrs, target)
    }

    fn link(
        &mut self,
        kind: tar::EntryType,
        path: &str,
        attrs: Attrs,
        target: &str,
    ) -> Result<(), SourceError> {
        Self::named(path)?;
        let mut header = self.header(kind, attrs, 0);
        self.tar
            .append_link(&mut header, path, target)
            .map_err(Self::failed(path))
    }

    /// Ends the tar and the gzip stream; the layer's digests and size.
    /// (For a [`LayerWriter::diff_id_only`] writer, use [`LayerWriter::finish_diff_id`]:
    /// this one then fails, having no file.)
    pub fn finish(self) -> Result<Layer, SourceError> {
        let Some((file, dir)) = self.file else {
            return Err(SourceError::Io {
                path: PathBuf::new(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a layer hashed without a file has no blob",
                ),
            });
        };
        let io = |source| SourceError::Io {
            path: dir.clone(),
            source,
        };
        let raw = self.tar.into_inner().map_err(io)?;
        let diff_id = digest_of(raw.hash);
        let Output::Gzip(gzip) = raw.inner else {
            unreachable!("a writer with a file gzips into it")
        };
        let mut compressed = gzip.finish().map_err(io)?.inner;
        compressed.flush().map_err(io)?;
        Ok(Layer {
            file,
            digest: digest_of(compressed.hash),
            diff_id,
            size: compressed.written,
            files: self.files,
        })
    }

    /// Ends the tar; its `diff_id` (`sha256:…` of the uncompressed tar).
    #[cfg(test)]
    pub fn finish_diff_id(self) -> Result<Digest, SourceError> {
        let raw = self.tar.into_inner().map_err(|source| SourceError::Io {
            path: PathBuf::new(),
            source,
        })?;
        Ok(digest_of(raw.hash))
    }
}

/// Writes `entries` as a layer under `root/` into a new file in `dir`, every entry at
/// `mtime`. `root_dir` is what `/root` itself is in the image below: a layer is unpacked on
/// its own, so a parent it leaves out would be made anew (root-owned, 0755) and hide the
/// one below.
#[cfg(test)]
pub fn write_layer(
    entries: &[RootEntry],
    owner: Owner,
    root_dir: DirAttrs,
    mtime: u64,
    dir: &Path,
) -> Result<Layer, SourceError> {
    let writer = LayerWriter::new(dir)?.timed(mtime);
    Ok(write_entries(entries, owner, root_dir, writer)?.0)
}

/// [`write_layer`], keeping a copy of each file `wanted` names as it goes in
/// ([`LayerWriter::keeping`], at most `limit` bytes each): the layer and those files.
pub fn write_layer_keeping(
    entries: &[RootEntry],
    owner: Owner,
    root_dir: DirAttrs,
    mtime: u64,
    dir: &Path,
    (wanted, limit): (fn(&str) -> bool, u64),
) -> Result<(Layer, Vec<KeptFile>), SourceError> {
    let writer = LayerWriter::new(dir)?.timed(mtime).keeping(wanted, limit);
    write_entries(entries, owner, root_dir, writer)
}

/// The entries written through `layer` (see [`write_layer`]), and the files it kept.
fn write_entries(
    entries: &[RootEntry],
    owner: Owner,
    root_dir: DirAttrs,
    mut layer: LayerWriter,
) -> Result<(Layer, Vec<KeptFile>), SourceError> {
    // Later entries replace earlier ones at the same path, as a later COPY does. Every
    // parent directory below /root is an entry of its own (0755, owned like the files).
    let mut tree: BTreeMap<String, Option<&Path>> = BTreeMap::new();
    let add_parents = |tree: &mut BTreeMap<String, Option<&Path>>, path: &str| {
        let mut prefix = String::new();
        for part in path.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            tree.entry(prefix.clone()).or_insert(None);
        }
    };
    for entry in entries {
        let (RootEntry::Dir { to } | RootEntry::File { to, .. }) = entry;
        // The plan refuses these already; a layer never climbs out of /root either.
        if to.starts_with('/') || clean(to).split('/').any(|part| part == "..") {
            return Err(SourceError::Io {
                path: PathBuf::from(format!("/root/{to}")),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "outside /root once `..` is resolved: not written into the layer",
                ),
            });
        }
        match entry {
            RootEntry::Dir { to } => {
                let to = clean(to);
                if !to.is_empty() {
                    add_parents(&mut tree, &to);
                }
            }
            RootEntry::File { to, from } => {
                let to = clean(to);
                if let Some((parent, _)) = to.rsplit_once('/') {
                    add_parents(&mut tree, parent);
                }
                tree.insert(to, Some(from.as_path()));
            }
        }
    }

    layer.dir(
        "root",
        Attrs {
            uid: root_dir.uid,
            gid: root_dir.gid,
            mode: root_dir.mode,
        },
    )?;
    // BTreeMap order puts `a` before `a/b` and `a-b` before `a/b`: a directory's entry still
    // precedes its contents, which is all extraction needs.
    for (rel, from) in &tree {
        let path = format!("root/{rel}");
        let attrs = |mode| Attrs {
            uid: owner.uid,
            gid: owner.gid,
            mode,
        };
        match from {
            None => layer.dir(&path, attrs(0o755))?,
            Some(from) => {
                use std::os::unix::fs::PermissionsExt;
                let io = |source| SourceError::Io {
                    path: from.to_path_buf(),
                    source,
                };
                let source = super::untrusted::open_regular(from).map_err(io)?;
                let meta = source.metadata().map_err(io)?;
                layer.file(
                    &path,
                    attrs(meta.permissions().mode() & 0o7777),
                    meta.len(),
                    std::io::BufReader::with_capacity(1 << 16, source),
                )?;
            }
        }
    }
    let kept = layer.take_kept();
    Ok((layer.finish()?, kept))
}

/// How much of a file must be holes before a layer of it is worth a warning.
const SPARSE_WARNING: u64 = 1 << 20;

/// A sparse file that goes into an image layer: a tar holds its holes as zeros, so the
/// layer (and the image, once unpacked) holds all `apparent` bytes where the disk holds
/// `on_disk`. GNU tar's sparse entries would keep the holes, but the `tar` crate does not
/// write them, BuildKit's COPY does not make them, and image tools unpack them densely
/// anyway; so the user is told instead (a 20 GiB disk image of 12 KiB is a 20 GiB layer to
/// read, compress and unpack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseFile {
    pub path: PathBuf,
    /// Its length.
    pub apparent: u64,
    /// What it takes on disk (`st_blocks` × 512).
    pub on_disk: u64,
}

impl SparseFile {
    /// `path` (links followed) when it is a regular file with at least 1 MiB of holes:
    /// fewer blocks than its length, and a hole before its end (`SEEK_HOLE`; a compressed
    /// file system also shows fewer blocks, but no holes). `None` for anything else,
    /// unreadable files too: reading them for the layer reports those.
    pub fn check(path: &Path) -> Option<SparseFile> {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(path).ok()?;
        let (apparent, on_disk) = (meta.len(), meta.blocks().saturating_mul(512));
        if !meta.is_file() || on_disk.saturating_add(SPARSE_WARNING) > apparent {
            return None;
        }
        let file = super::untrusted::open_regular(path).ok()?;
        let hole = rustix::fs::seek(&file, rustix::fs::SeekFrom::Hole(0)).ok()?;
        (hole < apparent).then(|| SparseFile {
            path: path.to_path_buf(),
            apparent,
            on_disk,
        })
    }
}

impl std::fmt::Display for SparseFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let apparent = indicatif::HumanBytes(self.apparent);
        write!(
            f,
            "{} is a sparse file of {apparent} ({} on disk): the image layer holds all \
             {apparent} (a layer cannot keep holes); leave it out of the image if it need \
             not be there",
            self.path.display(),
            indicatif::HumanBytes(self.on_disk),
        )
    }
}

/// The sparse files among `paths` (see [`SparseFile::check`]), each once, in order.
pub fn sparse_files<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Vec<SparseFile> {
    let mut seen = std::collections::HashSet::new();
    paths
        .into_iter()
        .filter(|path| seen.insert(*path))
        .filter_map(SparseFile::check)
        .collect()
}

/// The sparse files `entries` copy into a layer.
pub fn sparse_entries(entries: &[RootEntry]) -> Vec<SparseFile> {
    sparse_files(entries.iter().filter_map(|entry| match entry {
        RootEntry::File { from, .. } => Some(from.as_path()),
        RootEntry::Dir { .. } => None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `len` bytes with `data` bytes of data at its start and a hole after.
    fn sparse(path: &Path, data: usize, len: u64) {
        let file = fs::File::create(path).unwrap();
        (&file).write_all(&vec![7u8; data]).unwrap();
        file.set_len(len).unwrap();
    }

    #[test]
    fn a_whiteout_name_is_not_written_and_kept_files_are_what_the_layer_holds() {
        let tmp = tempfile::tempdir().unwrap();
        let attrs = Attrs {
            uid: 0,
            gid: 0,
            mode: 0o644,
        };
        let mut layer = LayerWriter::new(tmp.path())
            .unwrap()
            .keeping(|p| p.ends_with("METADATA"), 4);
        for refused in ["usr/.wh.bin", "opt/.wh..wh..opq", ".wh.etc/x"] {
            let err = layer.bytes(refused, attrs, b"").unwrap_err().to_string();
            assert!(err.contains("OCI whiteout"), "{err}");
            let err = layer.dir(refused, attrs).unwrap_err().to_string();
            assert!(err.contains(refused), "{err}");
            assert!(layer.symlink(refused, attrs, "x").is_err());
            assert!(layer.hardlink(refused, attrs, "x").is_err());
        }
        layer.bytes("a/METADATA", attrs, b"abc").unwrap();
        layer.bytes("b/METADATA", attrs, b"too long").unwrap();
        layer.bytes("c/other", attrs, b"other").unwrap();
        let kept = layer.take_kept();
        let written = layer.finish().unwrap();
        let kept: Vec<_> = kept
            .iter()
            .map(|k| (k.path.as_str(), k.size, &k.bytes[..]))
            .collect();
        assert_eq!(
            kept,
            [("a/METADATA", 3, &b"abc"[..]), ("b/METADATA", 8, &b""[..])]
        );
        let file = fs::File::open(written.file.path()).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut found = Vec::new();
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut body = String::new();
            std::io::Read::read_to_string(&mut entry, &mut body).unwrap();
            found.push((entry.path().unwrap().display().to_string(), body));
        }
        let found: Vec<_> = found
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("a/METADATA", "abc"),
                ("b/METADATA", "too long"),
                ("c/other", "other")
            ]
        );
    }

    #[test]
    fn sparse_files_are_found_with_their_sizes_and_dense_ones_are_not() {
        let tmp = tempfile::tempdir().unwrap();
        let holes = tmp.path().join("holes.img");
        sparse(&holes, 4096, 8 << 20);
        let dense = tmp.path().join("dense.bin");
        fs::write(&dense, vec![1u8; 3 << 20]).unwrap();
        let small_hole = tmp.path().join("small-hole.bin");
        sparse(&small_hole, 4096, 64 << 10);
        let link = tmp.path().join("link.img");
        std::os::unix::fs::symlink(&holes, &link).unwrap();

        let found = sparse_files([
            holes.as_path(),
            dense.as_path(),
            small_hole.as_path(),
            holes.as_path(),
            link.as_path(),
            tmp.path(),
            Path::new("/nonexistent/x"),
        ]);
        let paths: Vec<&Path> = found.iter().map(|f| f.path.as_path()).collect();
        assert_eq!(paths, [holes.as_path(), link.as_path()], "{found:?}");
        assert_eq!(found[0].apparent, 8 << 20);
        assert!(found[0].on_disk < 1 << 20, "{found:?}");
        let message = found[0].to_string();
        assert!(
            message.contains("holes.img is a sparse file of 8.00 MiB (")
                && message.contains("on disk): the image layer holds all 8.00 MiB"),
            "{message}"
        );
    }

    fn entries(dir: &Path) -> Vec<RootEntry> {
        fs::create_dir_all(dir.join("pkg")).unwrap();
        fs::write(dir.join("pkg/a.py"), "print('a')\n").unwrap();
        fs::write(dir.join("b.txt"), "b").unwrap();
        vec![
            RootEntry::File {
                to: "pkg/a.py".into(),
                from: dir.join("pkg/a.py"),
            },
            RootEntry::Dir {
                to: "./data/empty".into(),
            },
            RootEntry::File {
                to: "b.txt".into(),
                from: dir.join("b.txt"),
            },
            RootEntry::File {
                to: "./pkg/a.py".into(),
                from: dir.join("b.txt"),
            },
        ]
    }

    /// `/root` as a Debian base has it (mode 0700, group root), owned by `uid`.
    fn root_dir(uid: u64) -> DirAttrs {
        DirAttrs {
            uid,
            gid: 0,
            mode: 0o700,
        }
    }

    #[test]
    fn the_files_asked_for_are_kept_as_written() {
        let tmp = tempfile::tempdir().unwrap();
        let e = entries(tmp.path());
        let owner = Owner { uid: 1, gid: 1 };
        let wanted: fn(&str) -> bool = |path| path.ends_with(".py");
        let (kept_layer, kept) = write_layer_keeping(
            &e,
            owner,
            root_dir(1),
            LAYER_MTIME,
            tmp.path(),
            (wanted, 64),
        )
        .unwrap();
        let plain = write_layer(&e, owner, root_dir(1), LAYER_MTIME, tmp.path()).unwrap();
        assert_eq!(kept_layer.digest, plain.digest, "keeping changes no byte");
        let kept: Vec<(&str, u64, &[u8])> = kept
            .iter()
            .map(|k| (k.path.as_str(), k.size, &k.bytes[..]))
            .collect();
        // The later entry at `pkg/a.py` (b.txt's bytes) is what the layer holds.
        assert_eq!(kept, [("root/pkg/a.py", 1, &b"b"[..])]);
    }

    #[test]
    fn layers_are_deterministic_and_later_entries_win() {
        let tmp = tempfile::tempdir().unwrap();
        let e = entries(tmp.path());
        let owner = Owner {
            uid: 1000,
            gid: 1000,
        };
        let root = root_dir(1000);
        let one = write_layer(&e, owner, root, LAYER_MTIME, tmp.path()).unwrap();
        let two = write_layer(&e, owner, root, LAYER_MTIME, tmp.path()).unwrap();
        assert_eq!(
            (&one.digest, &one.diff_id, one.size),
            (&two.digest, &two.diff_id, two.size)
        );
        assert_eq!(one.files, 2);

        let gz = flate2::read::GzDecoder::new(fs::File::open(one.file.path()).unwrap());
        let mut archive = tar::Archive::new(gz);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let h = entry.header().clone();
            let mut body = String::new();
            std::io::Read::read_to_string(&mut entry, &mut body).unwrap();
            seen.push((
                entry.path().unwrap().display().to_string(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.mtime().unwrap(),
                body,
            ));
        }
        let names: Vec<_> = seen.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "root/",
                "root/b.txt",
                "root/data/",
                "root/data/empty/",
                "root/pkg/",
                "root/pkg/a.py"
            ]
        );
        assert_eq!(seen[5].4, "b", "the later entry at the same path wins");
        assert!(seen.iter().all(|s| s.2 == 1000 && s.3 == LAYER_MTIME));
        assert_eq!((seen[0].1, seen[2].1), (0o700, 0o755));

        let other = write_layer(
            &e,
            Owner {
                uid: 1001,
                gid: 1001,
            },
            root,
            LAYER_MTIME,
            tmp.path(),
        )
        .unwrap();
        assert_ne!(other.digest, one.digest, "ownership is part of the layer");
    }

    #[test]
    fn big_layers_are_several_gzip_members_read_as_one_stream() {
        let tmp = tempfile::tempdir().unwrap();
        // 3.5 MiB of poorly compressible bytes: four gzip pieces.
        let mut state = 1u64;
        let bytes: Vec<u8> = (0..(7 << 19))
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect();
        fs::write(tmp.path().join("big.bin"), &bytes).unwrap();
        let e = vec![RootEntry::File {
            to: "big.bin".into(),
            from: tmp.path().join("big.bin"),
        }];
        let root = root_dir(0);
        let layer =
            write_layer(&e, Owner { uid: 1, gid: 1 }, root, LAYER_MTIME, tmp.path()).unwrap();
        let gz = flate2::read::MultiGzDecoder::new(fs::File::open(layer.file.path()).unwrap());
        let mut archive = tar::Archive::new(gz);
        let mut entries = archive.entries().unwrap();
        let _root = entries.next().unwrap().unwrap();
        let mut big = entries.next().unwrap().unwrap();
        let mut read = Vec::new();
        std::io::Read::read_to_end(&mut big, &mut read).unwrap();
        assert!(read == bytes, "the file comes back whole");
        let again =
            write_layer(&e, Owner { uid: 1, gid: 1 }, root, LAYER_MTIME, tmp.path()).unwrap();
        assert_eq!(again.digest, layer.digest);
    }

    /// The header fields that could carry this machine, of one entry read back.
    struct Seen {
        path: String,
        mtime: u64,
        ids: (u64, u64),
        /// User and group names (empty when none).
        names: (Vec<u8>, Vec<u8>),
    }

    fn headers(layer: &Layer) -> Vec<Seen> {
        let gz = flate2::read::MultiGzDecoder::new(fs::File::open(layer.file.path()).unwrap());
        let mut archive = tar::Archive::new(gz);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                Seen {
                    path: e.path().unwrap().display().to_string(),
                    mtime: h.mtime().unwrap(),
                    ids: (h.uid().unwrap(), h.gid().unwrap()),
                    names: (
                        h.username_bytes().unwrap_or_default().to_vec(),
                        h.groupname_bytes().unwrap_or_default().to_vec(),
                    ),
                }
            })
            .collect()
    }

    #[test]
    fn headers_carry_nothing_of_the_machine_and_the_time_given() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // The same files at two places, with other times on disk.
        let (e1, e2) = (entries(one.path()), entries(two.path()));
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        for f in ["pkg/a.py", "b.txt"] {
            fs::File::options()
                .write(true)
                .open(two.path().join(f))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let owner = Owner { uid: 7, gid: 8 };
        let root = root_dir(0);
        let a = write_layer(&e1, owner, root, LAYER_MTIME, one.path()).unwrap();
        let b = write_layer(&e2, owner, root, LAYER_MTIME, two.path()).unwrap();
        assert_eq!((&a.digest, &a.diff_id), (&b.digest, &b.diff_id));
        for seen in headers(&a) {
            let path = &seen.path;
            assert_eq!(seen.mtime, LAYER_MTIME, "{path}");
            assert!(
                seen.names.0.is_empty() && seen.names.1.is_empty(),
                "{path}: no names"
            );
            if path != "root/" {
                assert_eq!(seen.ids, (7, 8), "{path}");
            }
        }

        // SOURCE_DATE_EPOCH's time instead: every entry, and a new digest.
        let timed = write_layer(&e1, owner, root, 1_700_000_000, one.path()).unwrap();
        assert!(headers(&timed).iter().all(|h| h.mtime == 1_700_000_000));
        assert_ne!(timed.diff_id, a.diff_id);
        let root_only = |writer: LayerWriter| {
            let mut writer = writer;
            let attrs = Attrs {
                uid: 0,
                gid: 0,
                mode: 0o700,
            };
            writer.dir("root", attrs).unwrap();
            writer.finish_diff_id().unwrap()
        };
        assert_ne!(
            root_only(LayerWriter::diff_id_only().timed(1_700_000_000)),
            root_only(LayerWriter::diff_id_only())
        );
    }

    /// `bytes` through [`ParallelGzip`] on a pool of `threads`, written `chunk` bytes at a
    /// time.
    fn gzip_on(threads: usize, chunk: usize, bytes: &[u8]) -> Vec<u8> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut gz = parallel_gzip(Vec::new());
            for piece in bytes.chunks(chunk) {
                gz.write_all(piece).unwrap();
            }
            gz.finish().unwrap().inner
        })
    }

    #[test]
    fn gzip_gives_the_same_bytes_on_any_number_of_cores_and_writes() {
        // More than one batch (16 MiB), not a multiple of a piece, partly compressible.
        let bytes: Vec<u8> = (0..(GZIP_BATCH + 3 * GZIP_PIECE + 12_345))
            .map(|i| ((i / 7) as u8).wrapping_mul((i % 251) as u8))
            .collect();
        let one = gzip_on(1, 1 << 20, &bytes);
        assert_eq!(one, gzip_on(4, 1 << 20, &bytes), "4 cores");
        assert_eq!(one, gzip_on(3, 65_537, &bytes), "3 cores, other writes");
        // No time (bytes 4..8), no OS (byte 9: 255, unknown), no name (FLG 0).
        assert_eq!(&one[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&one[4..8], &[0, 0, 0, 0]);
        assert_eq!(one[9], 255);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&one[..]), &mut back)
            .unwrap();
        assert!(back == bytes, "one stream to a reader");
    }
}
