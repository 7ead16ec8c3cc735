//! The local-cache part of `imagespec prune`: entries of imagespec's cache directory
//! ([`crate::source::cache_home`]) that no run will use again, by rules a reader can check:
//!
//! | area | removed when |
//! |---|---|
//! | scratch entries (`.imagespec-tmp-*`, anywhere in the cache) | no process holds their lock (a run killed before it could remove them; [`crate::scratch`]) |
//! | `staging/imagespec-venv-*` (venvs staged by uv builds) | older than a day (a build stages for minutes) |
//! | `staging/kept/*` (venvs kept for a later build to add to: [`crate::builders::daemonless`]) | no build holds its lock, and not kept again for 14 days (a miss costs one install from uv's cache) |
//! | `layers/*.json` (known layers: `diff_id` → blob) | not a whole record for the name (a lookup only misses on it) |
//! | `layers/*.tmp` (unfinished writes) | older than a day |
//! | `tree-digests/*` (source digests) | not a whole entry, or not written for 30 days (a miss costs one re-hash) |
//! | `layer-keys/*` (layer keys → `diff_id`) | an unfinished write older than a day, or not written for 30 days (a miss costs one hash of that layer) |
//! | `daemonless-bases/*` (base file trees) | not used for 14 days (the newer of access and write time; a miss costs one read of the base's layers) |
//! | `apt/sha256/*`, `apt/fields/*`, `apt/unpacked/*`, `apt/layers/*` (`.deb`s and indexes by content, their kept fields, what each `.deb` unpacks to, apt layer records of older versions) | not used for 14 days (the newer of access and write time; a miss costs one download from the mirror, or one parse) |
//! | `uv/` (uv's cache) | only with `--uv-cache` (a miss costs every wheel's download) |
//!
//! Never touched: `locks/` (a run may wait on one), `last-built/` (`imagespec explain`'s
//! records, one small file per repository).
//!
//! The decision ([`stale`]) is a pure function of what [`scan`] finds.

use crate::builders::daemonless::image::KnownLayers;
use crate::builders::daemonless::{BASES_DIR, STAGING_DIR, STAGING_PREFIX, UV_CACHE_DIR};
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// How old an entry of each kind may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ages {
    pub staging: Duration,
    pub unfinished: Duration,
    pub tree_digests: Duration,
    pub base_trees: Duration,
    pub kept_venvs: Duration,
    pub layer_keys: Duration,
    pub apt_files: Duration,
}

impl Default for Ages {
    fn default() -> Ages {
        Ages {
            staging: DAY,
            unfinished: DAY,
            tree_digests: 30 * DAY,
            base_trees: 14 * DAY,
            kept_venvs: 14 * DAY,
            layer_keys: 30 * DAY,
            apt_files: 14 * DAY,
        }
    }
}

/// Which part of the cache an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    Scratch,
    Staging,
    KnownLayer,
    TreeDigest,
    BaseTree,
    KeptVenv,
    LayerKey,
    AptFile,
    UvCache,
}

impl Area {
    /// In words, for the listing.
    pub fn name(self) -> &'static str {
        match self {
            Area::Scratch => "scratch entry",
            Area::Staging => "staged venv",
            Area::KnownLayer => "known layer",
            Area::TreeDigest => "source digest",
            Area::BaseTree => "base tree",
            Area::KeptVenv => "kept venv",
            Area::LayerKey => "layer key",
            Area::AptFile => "apt file",
            Area::UvCache => "uv cache",
        }
    }
}

/// A cache entry as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    pub area: Area,
    /// Since it was last written (base trees: last used, where the file system says).
    pub age: Duration,
    /// A scratch entry whose lock a live process holds.
    pub locked: bool,
    /// A record a lookup would use (known layers, tree digests); true for other areas.
    pub whole: bool,
    /// An unfinished write (`*.tmp`).
    pub unfinished: bool,
    /// Bytes (a directory's files summed).
    pub size: u64,
}

/// Why `entry` goes, or `None` when it stays.
pub fn stale(entry: &Entry, ages: &Ages) -> Option<String> {
    match entry.area {
        Area::Scratch => {
            (!entry.locked).then(|| "left by a run that ended (no process holds its lock)".into())
        }
        Area::UvCache => Some("--uv-cache".into()),
        Area::KnownLayer | Area::TreeDigest | Area::LayerKey if entry.unfinished => {
            (entry.age > ages.unfinished).then(|| "an unfinished write older than a day".into())
        }
        Area::KnownLayer | Area::TreeDigest if !entry.whole => {
            Some("not a whole record (a lookup only misses on it)".into())
        }
        Area::KeptVenv if entry.locked => None,
        area => {
            let (limit, since, cost) = age_rule(area, ages)?;
            let days = entry.age.as_secs() / DAY.as_secs();
            (entry.age > limit).then(|| format!("{since} {days} day(s) ({cost})"))
        }
    }
}

/// The areas whose entries go once unused for long: the limit, what the age counts, and what
/// a lookup that then misses costs.
fn age_rule(area: Area, ages: &Ages) -> Option<(Duration, &'static str, &'static str)> {
    Some(match area {
        Area::Staging => (ages.staging, "left staged for", "no build stages that long"),
        Area::TreeDigest => (
            ages.tree_digests,
            "not written for",
            "a miss costs one re-hash",
        ),
        Area::LayerKey => (
            ages.layer_keys,
            "not written for",
            "a miss costs one hash of that layer",
        ),
        Area::AptFile => (
            ages.apt_files,
            "not used for",
            "a miss costs one download from the mirror, or one parse",
        ),
        Area::BaseTree => (
            ages.base_trees,
            "not used for",
            "a miss reads the base's layers again",
        ),
        Area::KeptVenv => (
            ages.kept_venvs,
            "not kept again for",
            "a miss costs one install from uv's cache",
        ),
        Area::Scratch | Area::UvCache | Area::KnownLayer => return None,
    })
}

fn age_since(now: SystemTime, then: Option<SystemTime>) -> Duration {
    then.and_then(|t| now.duration_since(t).ok())
        .unwrap_or_default()
}

/// Bytes of the files under `path` (links not followed).
pub fn size_of(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Whether a live process holds the scratch entry at `path`.
fn scratch_locked(path: &Path) -> bool {
    match fs::File::open(path) {
        Ok(file) => matches!(file.try_lock(), Err(fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

/// The entries of the cache directory `cache` that [`stale`] has a rule for (`uv`: also
/// uv's cache, as one entry).
pub fn scan(cache: &Path, uv: bool, now: SystemTime) -> Vec<Entry> {
    let mut out = Vec::new();
    let entry = |path: PathBuf, area: Area, meta: &fs::Metadata| Entry {
        age: age_since(now, meta.modified().ok()),
        size: if meta.is_dir() {
            size_of(&path)
        } else {
            meta.len()
        },
        path,
        area,
        locked: false,
        whole: true,
        unfinished: false,
    };
    let known_layers = KnownLayers::in_cache(cache);
    let dirs = [
        (cache.to_path_buf(), None),
        (cache.join(STAGING_DIR), Some(Area::Staging)),
        (known_layers.dir().to_path_buf(), Some(Area::KnownLayer)),
        (
            crate::source::digest_cache_in(cache),
            Some(Area::TreeDigest),
        ),
        (cache.join(BASES_DIR), Some(Area::BaseTree)),
        (cache.join(STAGING_DIR).join("kept"), Some(Area::KeptVenv)),
        (known_layers.keys_dir().to_path_buf(), Some(Area::LayerKey)),
        (cache.join("apt/sha256"), Some(Area::AptFile)),
        (cache.join("apt/fields"), Some(Area::AptFile)),
        (cache.join("apt/unpacked"), Some(Area::AptFile)),
        (cache.join("apt/layers"), Some(Area::AptFile)),
        // Scratch entries only: the records themselves stay.
        (cache.join("last-built"), None),
    ];
    for (dir, area) in dirs {
        let Ok(listing) = fs::read_dir(&dir) else {
            continue;
        };
        for found in listing.flatten() {
            let path = found.path();
            let name = found.file_name().to_string_lossy().into_owned();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if crate::scratch::is_scratch_name(&name) {
                let mut e = entry(path.clone(), Area::Scratch, &meta);
                e.locked = scratch_locked(&path);
                out.push(e);
                continue;
            }
            let Some(area) = area else { continue };
            let mut e = entry(path.clone(), area, &meta);
            match area {
                Area::Staging if !name.starts_with(STAGING_PREFIX) => continue,
                Area::KnownLayer | Area::TreeDigest | Area::LayerKey if name.ends_with(".tmp") => {
                    e.unfinished = true;
                }
                Area::KnownLayer => e.whole = KnownLayers::is_whole_entry(&path),
                Area::TreeDigest => e.whole = crate::source::is_whole_cache_entry(&path),
                Area::KeptVenv => {
                    // Kept again: its record rewritten; in use: its lock held.
                    e.locked = scratch_locked(&path.join("lock"));
                    if let Ok(record) = fs::metadata(path.join("kept.json")) {
                        e.age = age_since(now, record.modified().ok());
                    }
                }
                Area::BaseTree | Area::AptFile => {
                    // Read, not written, when used: the access time says when, where the
                    // file system keeps it (relatime: to the day).
                    let used = meta.accessed().ok().max(meta.modified().ok());
                    e.age = age_since(now, used);
                }
                _ => {}
            }
            out.push(e);
        }
    }
    if uv {
        let path = cache.join(UV_CACHE_DIR);
        if let Ok(meta) = fs::symlink_metadata(&path) {
            out.push(entry(path, Area::UvCache, &meta));
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Why an entry was not removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("removing {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A scratch entry whose lock a run holds again.
    #[error("{} is in use again: left", path.display())]
    InUse { path: PathBuf },
    #[error("running {}: {source}", uv.display())]
    RunUv {
        uv: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("uv cache clean --cache-dir {}: {status}: {stderr}", dir.display())]
    UvFailed {
        dir: PathBuf,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error(
        "uv cache clean --cache-dir {}: no end after 600 s (another uv holds the cache?)",
        dir.display()
    )]
    UvHung { dir: PathBuf },
    #[error("waiting for uv: {source}")]
    WaitUv {
        #[source]
        source: std::io::Error,
    },
}

/// Removes `entry` (a scratch entry only while its lock can be taken; uv's cache with
/// `uv cache clean` when uv is here, so a running uv is waited for as uv does).
pub fn remove(entry: &Entry) -> Result<(), RemoveError> {
    let path = &entry.path;
    let gone = |r: std::io::Result<()>| match r {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => Err(RemoveError::Remove {
            path: path.clone(),
            source,
        }),
        _ => Ok(()),
    };
    let remove_path = || -> std::io::Result<()> {
        if fs::symlink_metadata(path)?.is_dir() {
            fs::remove_dir_all(path)
        } else {
            fs::remove_file(path)
        }
    };
    match entry.area {
        Area::Scratch => {
            let Ok(handle) = fs::File::open(path) else {
                return Ok(());
            };
            if handle.try_lock().is_err() {
                return Err(RemoveError::InUse { path: path.clone() });
            }
            gone(remove_path())
        }
        Area::UvCache => match crate::builders::daemonless::venv::find_uv() {
            Ok(uv) => uv_cache_clean(&uv, path),
            Err(_) => gone(remove_path()),
        },
        _ => gone(remove_path()),
    }
}

/// `uv cache clean --cache-dir DIR`, bounded (uv waits for a running uv's lock).
fn uv_cache_clean(uv: &Path, dir: &Path) -> Result<(), RemoveError> {
    let mut child = std::process::Command::new(uv)
        .args(["cache", "clean", "--cache-dir"])
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|source| RemoveError::RunUv {
            uv: uv.to_path_buf(),
            source,
        })?;
    let started = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(RemoveError::UvFailed {
                    dir: dir.to_path_buf(),
                    status,
                    stderr: err.trim().to_string(),
                });
            }
            Ok(None) if started.elapsed() > Duration::from_secs(600) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RemoveError::UvHung {
                    dir: dir.to_path_buf(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(source) => return Err(RemoveError::WaitUv { source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(area: Area, age_days: u64) -> Entry {
        Entry {
            path: PathBuf::from("x"),
            area,
            age: DAY * age_days as u32 + Duration::from_secs(1),
            locked: false,
            whole: true,
            unfinished: false,
            size: 1,
        }
    }

    #[test]
    fn each_area_has_its_rule() {
        let ages = Ages::default();
        let goes = |e: &Entry| stale(e, &ages).is_some();
        // Kept venvs: two weeks, and never while a build holds one.
        assert!(!goes(&entry(Area::KeptVenv, 13)));
        assert!(goes(&entry(Area::KeptVenv, 14)));
        assert!(!goes(&Entry {
            locked: true,
            ..entry(Area::KeptVenv, 30)
        }));
        // Scratch: the lock decides, not the age.
        assert!(goes(&entry(Area::Scratch, 0)));
        assert!(!goes(&Entry {
            locked: true,
            ..entry(Area::Scratch, 30)
        }));
        // Staged venvs: a day.
        assert!(!goes(&Entry {
            age: Duration::from_secs(3600),
            ..entry(Area::Staging, 0)
        }));
        assert!(goes(&entry(Area::Staging, 1)));
        // Known layers: whole ones stay whatever their age; broken ones go at once.
        assert!(!goes(&entry(Area::KnownLayer, 400)));
        assert!(goes(&Entry {
            whole: false,
            ..entry(Area::KnownLayer, 0)
        }));
        // An unfinished write goes after a day (a run may be writing it now).
        let unfinished = Entry {
            unfinished: true,
            whole: false,
            ..entry(Area::KnownLayer, 0)
        };
        assert!(!goes(&Entry {
            age: Duration::from_secs(60),
            ..unfinished.clone()
        }));
        assert!(goes(&Entry {
            age: DAY * 2,
            ..unfinished
        }));
        // Tree digests: broken, or 30 days.
        assert!(!goes(&entry(Area::TreeDigest, 29)));
        assert!(goes(&entry(Area::TreeDigest, 30)));
        assert!(goes(&Entry {
            whole: false,
            ..entry(Area::TreeDigest, 0)
        }));
        // Base trees: 14 days unused.
        assert!(!goes(&entry(Area::BaseTree, 13)));
        assert!(goes(&entry(Area::BaseTree, 14)));
        // Layer keys: 30 days written; apt files: 14 days unused.
        assert!(!goes(&entry(Area::LayerKey, 29)));
        assert!(goes(&entry(Area::LayerKey, 30)));
        assert!(!goes(&entry(Area::AptFile, 13)));
        assert!(goes(&entry(Area::AptFile, 14)));
        // uv's cache is only ever scanned when asked for.
        assert!(goes(&entry(Area::UvCache, 0)));
    }

    #[test]
    fn a_scan_finds_what_the_rules_name_and_nothing_else() {
        let cache = tempfile::tempdir().unwrap();
        let c = cache.path();
        for dir in [
            "staging/imagespec-venv-old/lib",
            "staging/other",
            "layers",
            "layer-keys",
            "apt/sha256",
            "apt/unpacked",
            "tree-digests",
            "daemonless-bases",
            "last-built",
            "locks",
            "uv/wheels",
        ] {
            fs::create_dir_all(c.join(dir)).unwrap();
        }
        fs::write(c.join("staging/imagespec-venv-old/lib/a.py"), "12345").unwrap();
        let hex = "ab".repeat(32);
        fs::write(
            c.join(format!("layers/{hex}.json")),
            format!(
                r#"{{"diff_id":"sha256:{hex}","digest":"sha256:{hex}","size":1,"image":"r/a:t"}}"#
            ),
        )
        .unwrap();
        fs::write(c.join(format!("layers/{}.json", "cd".repeat(32))), "{trunc").unwrap();
        fs::write(c.join("tree-digests/0123"), "garbage").unwrap();
        fs::write(c.join("layer-keys/k1"), "sha256:x").unwrap();
        fs::write(c.join(format!("apt/sha256/{hex}")), "a .deb").unwrap();
        fs::write(c.join(format!("apt/unpacked/{hex}.json")), "{}").unwrap();
        fs::write(c.join("last-built/r_a.json"), "{}").unwrap();
        fs::write(c.join("locks/image-1.lock"), "").unwrap();
        fs::write(c.join("uv/wheels/w.whl"), "wheel").unwrap();
        // A leftover scratch file, and one a live "run" (this test) holds.
        fs::write(c.join("tree-digests/.imagespec-tmp-digest-dead"), "x").unwrap();
        let live = c.join("tree-digests/.imagespec-tmp-digest-live");
        fs::write(&live, "x").unwrap();
        let held = fs::File::open(&live).unwrap();
        held.lock().unwrap();

        let later = SystemTime::now() + DAY * 2;
        let found = scan(c, false, later);
        let names: Vec<(String, Area)> = found
            .iter()
            .map(|e| {
                let rel = e.path.strip_prefix(c).unwrap().display().to_string();
                (rel, e.area)
            })
            .collect();
        assert_eq!(
            names,
            vec![
                (format!("apt/sha256/{hex}"), Area::AptFile),
                (format!("apt/unpacked/{hex}.json"), Area::AptFile),
                ("layer-keys/k1".into(), Area::LayerKey),
                (format!("layers/{}.json", "ab".repeat(32)), Area::KnownLayer),
                (format!("layers/{}.json", "cd".repeat(32)), Area::KnownLayer),
                ("staging/imagespec-venv-old".into(), Area::Staging),
                (
                    "tree-digests/.imagespec-tmp-digest-dead".into(),
                    Area::Scratch
                ),
                (
                    "tree-digests/.imagespec-tmp-digest-live".into(),
                    Area::Scratch
                ),
                ("tree-digests/0123".into(), Area::TreeDigest),
            ],
            "locks, last-built records and uv's cache are not scanned"
        );
        let ages = Ages::default();
        let stale_names: Vec<&str> = found
            .iter()
            .filter(|e| stale(e, &ages).is_some())
            .map(|e| e.path.file_name().unwrap().to_str().unwrap())
            .collect();
        let broken = format!("{}.json", "cd".repeat(32));
        assert_eq!(
            stale_names,
            vec![
                broken.as_str(),
                "imagespec-venv-old",
                ".imagespec-tmp-digest-dead",
                "0123"
            ]
        );
        assert_eq!(found[5].size, 5, "a directory's size is its files'");

        for e in found.iter().filter(|e| stale(e, &ages).is_some()) {
            remove(e).unwrap();
        }
        assert!(!c.join("staging/imagespec-venv-old").exists());
        assert!(live.exists() && c.join("staging/other").exists());
        assert!(c.join(format!("layers/{}.json", "ab".repeat(32))).exists());

        let with_uv = scan(c, true, later);
        let uv = with_uv.iter().find(|e| e.area == Area::UvCache).unwrap();
        assert_eq!(uv.size, 5);
        drop(held);
    }
}
