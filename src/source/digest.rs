//! flytekit's digests, with a stat-keyed cache for the source tree.
//!
//! The tree digest is one md5 stream over every file, so it cannot be updated per file.
//! Instead the whole result is cached under a key made of every file's path, size, mtime,
//! ctime, inode and device plus the ignore rules: an unchanged tree is answered without
//! reading a byte. ctime cannot be set by users, so an edit always changes the key; files
//! changed within the last second make the result uncacheable (git's "racy" rule).
//!
//! Within one run the same key is also remembered in memory (whatever `IMAGESPEC_NO_CACHE`
//! says), so the check that the files did not change during a build (flytekit recomputes the
//! tag) re-stats them instead of re-reading them, as git compares its index. Files changed
//! within the last 50 ms are not remembered: a second change inside one timestamp tick could
//! keep every stat field.

use super::SourceError;
use super::untrusted::{self, LinkPolicy, Root};
use crate::py::path as pypath;
use md5::{Digest, Md5};
use rayon::prelude::*;
use sha1::Sha1;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A file to feed into a tree digest, with its stat data (taken once, by the walk).
pub struct HashedFile<'a> {
    pub path: &'a Path,
    pub rel: &'a str,
    pub meta: &'a fs::Metadata,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// This run's tree digests by stat key.
fn memo() -> &'static std::sync::Mutex<std::collections::HashMap<String, String>> {
    static MEMO: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
        std::sync::OnceLock::new();
    MEMO.get_or_init(Default::default)
}

/// Files up to this size are read by worker threads into memory, a batch at a time;
/// larger ones are streamed by the hashing thread.
const IN_MEMORY: u64 = 4 << 20;
const BATCH: usize = 512;

/// md5 over each file's bytes then its relative path with `/` removed (flytekit's
/// `_filehash_update` + `_pathhash_update`), cached by stat data.
pub fn hash_files(files: &[HashedFile<'_>], rules: &str) -> Result<String, SourceError> {
    let mut key = Md5::new();
    key.update(b"imagespec-tree-v1\0");
    key.update(rules.as_bytes());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut racy = false;
    for f in files {
        let meta = f.meta;
        racy |= meta.mtime() >= now - 1 || meta.ctime() >= now - 1;
        key.update(f.path.as_os_str().as_encoded_bytes());
        key.update(b"\0");
        key.update(f.rel.as_bytes());
        for n in [
            meta.size() as i64,
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
            meta.ino() as i64,
            meta.dev() as i64,
        ] {
            key.update(n.to_le_bytes());
        }
    }
    let key = hex(&key.finalize());
    if let Some(hit) = memo().lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(hit);
    }
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    let margin = 50_000_000i128;
    let fresh = files.iter().any(|f| {
        let (m, c) = (
            f.meta.mtime() as i128 * 1_000_000_000 + f.meta.mtime_nsec() as i128,
            f.meta.ctime() as i128 * 1_000_000_000 + f.meta.ctime_nsec() as i128,
        );
        m >= now_ns - margin || c >= now_ns - margin
    });
    let cache = cache_dir().map(|d| d.join(&key));
    if let Some(hit) = cache
        .as_ref()
        .and_then(|p| fs::read(p).ok())
        .and_then(|bytes| decode_entry(&key, &bytes))
    {
        return Ok(hit);
    }
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    for batch in files.chunks(BATCH) {
        // Reading is syscall-bound: spread open/read/close over the cores, hash in order.
        let contents: Vec<Option<Result<Vec<u8>, SourceError>>> = batch
            .par_iter()
            .map(|f| (f.meta.size() <= IN_MEMORY).then(|| read_small(f.path, f.meta.size())))
            .collect();
        for (f, content) in batch.iter().zip(contents) {
            match content {
                Some(bytes) => hasher.update(bytes?),
                None => hash_file_into(&mut hasher, f.path, &mut buf)?,
            }
            hasher.update(f.rel.replace('/', "").as_bytes());
        }
    }
    let digest = hex(&hasher.finalize());
    if let (Some(path), false) = (cache, racy) {
        store(&path, &digest);
    }
    if let (false, Ok(mut m)) = (fresh, memo().lock()) {
        m.insert(key, digest.clone());
    }
    Ok(digest)
}

/// Reads a whole file whose size stat gave, without the extra read that only finds EOF: a
/// short read of a regular file that reached the promised size is its end.
fn read_small(path: &Path, size: u64) -> Result<Vec<u8>, SourceError> {
    let mut file = untrusted::open_regular(path).map_err(io_err(path))?;
    let size = size as usize;
    let mut bytes = vec![0u8; size + 1];
    let mut filled = 0;
    loop {
        let n = file.read(&mut bytes[filled..]).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        filled += n;
        if filled < bytes.len() {
            if filled == size {
                break;
            }
            continue;
        }
        // The file grew since it was stat'ed: keep reading.
        bytes.resize(bytes.len() * 2, 0);
    }
    bytes.truncate(filled);
    Ok(bytes)
}

fn hash_file_into(hasher: &mut Md5, path: &Path, buf: &mut [u8]) -> Result<(), SourceError> {
    let mut file = untrusted::open_regular(path).map_err(io_err(path))?;
    loop {
        let n = file.read(buf).map_err(io_err(path))?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

/// One `copy` entry and the files it holds (what was hashed is what is copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyEntry {
    /// The entry as written in the spec.
    pub written: String,
    /// Where it is.
    pub path: PathBuf,
    /// Whether it is a directory (copied as a tree) or a file.
    pub is_dir: bool,
    /// For a directory, its files relative to it, in hashing order; for a file, the file
    /// under its base name.
    pub files: Vec<(String, PathBuf)>,
}

/// The `copy` entries and flytekit's `compute_digest` over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySet {
    pub entries: Vec<CopyEntry>,
    pub digest: String,
    /// The link policy the files were checked under (flytekit's own `copytree`, which
    /// follows directory links, is checked under the same).
    pub links: LinkPolicy,
}

/// flytekit's `compute_digest(copy)`: each entry (relative to `cwd`) is a directory, walked
/// in directory order with files sorted per directory and paths relative to the entry, or a
/// file, hashed under its base name. Missing entries, broken links and sockets are skipped,
/// as flytekit skips them. An entry that reaches outside `cwd` through a link, or a link in
/// a directory entry whose target leaves that entry, is refused under `links`; FIFOs and
/// devices are refused always.
pub fn copy_digest(
    entries: &[String],
    cwd: &Path,
    links: LinkPolicy,
) -> Result<CopySet, SourceError> {
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut out = Vec::new();
    let anchor = Root::new(cwd, links)?;
    for entry in entries {
        anchor.check_written(entry)?;
        let path = cwd.join(entry);
        let is_dir = path.is_dir();
        let mut listed = Vec::new();
        let root = if is_dir {
            let root = Root::new(&path, links)?;
            walk_in_dir_order(&path, "", &root, &mut listed)?;
            Some(root)
        } else {
            listed.push((pypath::basename(entry).to_string(), path.clone()));
            None
        };
        let mut files = Vec::new();
        for (rel, file) in listed {
            if let Some(root) = &root {
                let is_link = fs::symlink_metadata(&file).is_ok_and(|m| m.file_type().is_symlink());
                if is_link && !root.check_link(&file)? {
                    continue;
                }
            }
            if hash_existing(&mut hasher, &file, &rel, &mut buf)? {
                files.push((rel, file));
            }
        }
        out.push(CopyEntry {
            written: entry.clone(),
            path,
            is_dir,
            files,
        });
    }
    Ok(CopySet {
        entries: out,
        digest: hex(&hasher.finalize()),
        links,
    })
}

/// Hashes a file that exists and is no socket; says whether it did.
fn hash_existing(
    hasher: &mut Md5,
    path: &Path,
    rel: &str,
    buf: &mut [u8],
) -> Result<bool, SourceError> {
    use std::os::unix::fs::FileTypeExt;
    match fs::metadata(path) {
        Err(_) => Ok(false),
        Ok(m) if m.file_type().is_socket() => Ok(false),
        Ok(m) if untrusted::is_special(m.file_type()) => Err(SourceError::Special {
            path: path.to_path_buf(),
        }),
        Ok(_) => {
            hash_file_into(hasher, path, buf)?;
            hasher.update(rel.replace('/', "").as_bytes());
            Ok(true)
        }
    }
}

/// `os.walk(top)` order: this directory's files (sorted), then each subdirectory in the order
/// the directory lists them, not following directory symlinks.
fn walk_in_dir_order(
    dir: &Path,
    rel: &str,
    root: &Root,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), SourceError> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for entry in entries.flatten() {
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| SourceError::NonUtf8 { path: entry.path() })?;
        // A run's temporary files are not part of a `copy` directory (as in the walk).
        if crate::scratch::is_scratch_name(&name) {
            continue;
        }
        let path = entry.path();
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() || (ft.is_symlink() && path.is_dir()) {
            if !ft.is_symlink() && !root.is_own_cache(&child) {
                dirs.push((child, path));
            }
        } else {
            files.push((name, child, path));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    out.extend(files.into_iter().map(|(_, child, path)| (child, path)));
    for (child, path) in dirs {
        walk_in_dir_order(&path, &child, root, out)?;
    }
    Ok(())
}

/// sha1 hex of the requirements file's bytes with ASCII whitespace stripped at both ends.
/// A FIFO or a device is refused, never read.
pub fn requirements_digest(path: &Path) -> Result<String, std::io::Error> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut untrusted::open_regular(path)?, &mut bytes)?;
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let start = bytes.iter().position(|b| !ws(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !ws(b)).map_or(start, |i| i + 1);
    Ok(hex(&Sha1::digest(&bytes[start..end])))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// imagespec's cache directory: `$IMAGESPEC_CACHE_DIR`, else `$XDG_CACHE_HOME/imagespec`,
/// else `~/.cache/imagespec` (also where the locks between runs live: `lock`).
pub fn cache_home() -> Option<PathBuf> {
    std::env::var_os("IMAGESPEC_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(|x| PathBuf::from(x).join("imagespec"))
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/imagespec"))
                })
        })
}

/// [`cache_home`], unless `IMAGESPEC_NO_CACHE` turns the caches off (tree digests, base
/// trees, the last-build records).
pub fn cache_home_if_enabled() -> Option<PathBuf> {
    if std::env::var_os("IMAGESPEC_NO_CACHE").is_some_and(|v| v != "0" && !v.is_empty()) {
        return None;
    }
    cache_home()
}

/// Where tree digests are cached: `tree-digests` in [`cache_home_if_enabled`].
fn cache_dir() -> Option<PathBuf> {
    Some(digest_cache_in(&cache_home_if_enabled()?))
}

/// The first line of a cache entry: its format and version.
const ENTRY_HEADER: &str = "imagespec-tree-digest 2";

/// A cache entry: the header, the digest, and a sha256 over both and the entry's key (its
/// file name), so that a file that is not exactly what was stored under that name (zeros
/// after a crash, a truncated write, another version's format, a file copied elsewhere)
/// reads as a miss.
fn encode_entry(key: &str, digest: &str) -> String {
    format!(
        "{ENTRY_HEADER}\n{digest}\n{}\n",
        entry_checksum(key, digest)
    )
}

fn entry_checksum(key: &str, digest: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let mut hash = Sha256::new();
    hash.update(ENTRY_HEADER.as_bytes());
    hash.update(b"\0");
    hash.update(key.as_bytes());
    hash.update(b"\0");
    hash.update(digest.as_bytes());
    hex(&hash.finalize())
}

/// The digest a cache entry holds, or `None` for anything but a valid entry for `key`.
fn decode_entry(key: &str, bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.strip_suffix('\n')?.split('\n');
    let (header, digest, checksum) = (lines.next()?, lines.next()?, lines.next()?);
    let md5_hex = digest.len() == 32
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (lines.next().is_none()
        && header == ENTRY_HEADER
        && md5_hex
        && checksum == entry_checksum(key, digest))
    .then(|| digest.to_string())
}

/// The directory of tree-digest cache entries inside the cache dir `cache`.
pub fn digest_cache_in(cache: &Path) -> PathBuf {
    cache.join("tree-digests")
}

/// Whether the file at `path` is a whole tree-digest cache entry for its own name (what a
/// lookup would use); anything else is only ever a miss (`imagespec prune` removes it).
pub fn is_whole_cache_entry(path: &Path) -> bool {
    let Some(key) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    std::fs::read(path).is_ok_and(|bytes| decode_entry(key, &bytes).is_some())
}

fn store(path: &Path, digest: &str) {
    // Best effort: a cache that cannot be written only costs speed. Written to a scratch
    // file, flushed and renamed: the entry is whole or absent, and an interrupted run
    // leaves no partial file under the key's name.
    let (Some(dir), Some(key)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let Ok(file) = crate::scratch::ScratchFile::new_in(dir, "digest") else {
        return;
    };
    let entry = encode_entry(key, digest);
    if std::io::Write::write_all(&mut file.file(), entry.as_bytes()).is_ok() {
        let _ = file.persist(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(dir: &Path) -> String {
        let path = dir.join("a.py");
        let meta = fs::metadata(&path).unwrap();
        hash_files(
            &[HashedFile {
                path: &path,
                rel: "a.py",
                meta: &meta,
            }],
            "test",
        )
        .unwrap()
    }

    #[test]
    fn cache_entries_are_read_only_when_whole_and_for_their_key() {
        let digest = "0123456789abcdef0123456789abcdef";
        let entry = encode_entry("key", digest);
        assert_eq!(
            decode_entry("key", entry.as_bytes()).as_deref(),
            Some(digest)
        );
        assert_eq!(decode_entry("other-key", entry.as_bytes()), None);
        assert_eq!(decode_entry("key", &[0u8; 32]), None);
        assert_eq!(decode_entry("key", digest.as_bytes()), None, "version 1");
        assert_eq!(
            decode_entry("key", &entry.as_bytes()[..entry.len() - 5]),
            None
        );
        assert_eq!(decode_entry("key", b""), None);
        assert_eq!(decode_entry("key", b"\xff\xfe garbage"), None);
        let flipped = entry.replacen("0123", "0124", 1);
        assert_eq!(decode_entry("key", flipped.as_bytes()), None);
        let extra = format!("{entry}more\n");
        assert_eq!(decode_entry("key", extra.as_bytes()), None);
    }

    #[test]
    fn the_in_memory_memo_never_hides_an_edit() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("a.py");
        fs::write(&file, "one").unwrap();
        // Old enough to be remembered.
        std::thread::sleep(std::time::Duration::from_millis(80));
        let first = digest_of(tmp.path());
        assert_eq!(digest_of(tmp.path()), first);
        fs::write(&file, "two").unwrap();
        let second = digest_of(tmp.path());
        assert_ne!(
            second, first,
            "an edit changes ctime, so the key, so the digest"
        );
        fs::write(&file, "one").unwrap();
        assert_eq!(
            digest_of(tmp.path()),
            first,
            "fresh files are hashed, not remembered"
        );
    }
}
