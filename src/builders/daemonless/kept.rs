//! Kept venvs: the staging venv of a dependency build, kept on this machine (in the cache
//! dir's `staging/kept/<id>/`) as the image has it, so that a later build of the same base,
//! Python, platform, uv and install arguments whose requirements keep every line of its
//! requirements starts from it and uv installs only what the new lines add, as
//! `pip install` into the previous environment would (the Dockerfile's install step with
//! BuildKit's layer cache, extended to a change that only adds lines). Any other change
//! (a line removed or changed, another base, a package a new line would upgrade) makes a
//! venv from nothing.
//!
//! A kept venv is one directory holding `root/.venv`, `kept.json` (what it was made from:
//! [`Kept`]) and `lock`, which a build holds (`flock`) while it uses the directory: a
//! build takes a kept venv ([`take`]) by locking it and removing its `kept.json` (a build
//! that ends before writing it again leaves a directory no build takes, which the next
//! [`Slot::keep`] removes). Its files are hard links into uv's cache, as the staging venv's
//! are: a kept venv costs inodes, not bytes.

use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// How many kept venvs a cache holds at most (the oldest others are removed).
pub const MAX_KEPT: usize = 4;

const META: &str = "kept.json";
const LOCK: &str = "lock";

/// What a kept venv was made from, and how uv made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// Everything but the requirements that the venv depends on ([`key`]).
    pub key: String,
    /// The requirement lines it was installed from ([`requirement_lines`]).
    pub lines: Vec<String>,
    /// The versions in it (`name==version` lines).
    pub pins: String,
    /// What turning it into the image's venv changed, to undo before uv runs again.
    pub uv_form: UvForm,
}

/// The parts of a staging venv that [`super::venv::make_the_images`] changes, as uv left
/// them: the `python*` links of `bin/`, `pyvenv.cfg`, and the name of `lib/python*`
/// (`(uv's, the image's)`, when they differ).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UvForm {
    pub links: Vec<(String, String)>,
    pub cfg: String,
    pub lib: Option<(String, String)>,
}

/// The key of a kept venv: what, besides its requirement lines, the venv depends on (the uv
/// binary, the interpreter and platform it installs for, the install arguments).
pub fn key(parts: &[&str]) -> String {
    use sha2::{Digest as _, Sha256};
    let json = serde_json::to_string(parts).expect("strings serialize");
    format!("{:x}", Sha256::digest(json.as_bytes()))
}

/// The requirement lines of a requirements file, trimmed, without blank lines and comments;
/// `None` when a line is an option (`-r`, `--index-url`…): such a file is never incremental.
pub fn requirement_lines(requirements: &str) -> Option<Vec<String>> {
    let mut lines = Vec::new();
    for line in requirements.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('-') {
            return None;
        }
        lines.push(line.to_string());
    }
    lines.sort();
    lines.dedup();
    Some(lines)
}

/// The lines of `wanted` that `kept` does not have; `None` when `kept` has a line `wanted`
/// does not (a removed or changed requirement: not an addition).
pub fn added<'a>(kept: &[String], wanted: &'a [String]) -> Option<Vec<&'a str>> {
    if !kept.iter().all(|l| wanted.contains(l)) {
        return None;
    }
    Some(
        wanted
            .iter()
            .filter(|l| !kept.contains(l))
            .map(String::as_str)
            .collect(),
    )
}

/// Of `candidates`, the one to start from for `key` and `lines`: the same key, no line that
/// `lines` lacks, and of those the one with most lines (least to install).
pub fn choose(candidates: &[Kept], key: &str, lines: &[String]) -> Option<usize> {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, k)| k.key == key && added(&k.lines, lines).is_some())
        .max_by_key(|(_, k)| k.lines.len())
        .map(|(i, _)| i)
}

/// A kept venv's directory, locked by this build. Dropped without [`Slot::keep`], it is
/// removed.
#[derive(Debug)]
pub struct Slot {
    dir: PathBuf,
    lock: Option<File>,
}

impl Slot {
    /// The directory the venv is staged in (`root/.venv` below it).
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Keeps the venv for a later build as `kept` says it was made; then (the returned
    /// [`Tidy`], slow: thousands of files) the kept venvs it supersedes can be removed.
    pub fn keep(mut self, kept: &Kept) -> io::Result<Tidy> {
        let json = serde_json::to_vec(kept).map_err(io::Error::other)?;
        let tmp = self.dir.join(format!("{META}.tmp"));
        fs::write(&tmp, json)?;
        fs::rename(&tmp, self.dir.join(META))?;
        self.lock = None;
        Ok(Tidy {
            this: self.dir.clone(),
            kept: kept.clone(),
        })
    }
}

/// What a kept venv supersedes, to remove ([`Tidy::run`]).
#[derive(Debug)]
pub struct Tidy {
    this: PathBuf,
    kept: Kept,
}

impl Tidy {
    /// Removes the kept venvs this one supersedes (same key, no line it lacks), those no
    /// build finished, and the oldest beyond [`MAX_KEPT`]; none that a build holds.
    pub fn run(self) {
        if let Some(store) = self.this.parent() {
            tidy(store, &self.this, &self.kept);
        }
    }
}

impl Slot {
    /// Unlocks the directory and leaves it as it is.
    fn release(mut self) {
        self.lock = None;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.lock.is_some() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A new, empty kept-venv directory in `store`, locked.
pub fn fresh(store: &Path) -> io::Result<Slot> {
    fs::create_dir_all(store)?;
    let dir = tempfile::Builder::new()
        .prefix("venv-")
        .tempdir_in(store)?
        .keep();
    let lock = File::create(dir.join(LOCK))?;
    lock.try_lock().map_err(io::Error::other)?;
    Ok(Slot {
        dir,
        lock: Some(lock),
    })
}

/// The kept venv in `store` to start from for `key` and `lines` ([`choose`]), locked and
/// taken (its `kept.json` removed), with what it was made from.
pub fn take(store: &Path, key: &str, lines: &[String]) -> Option<(Slot, Kept)> {
    let mut found = Vec::new();
    for dir in fs::read_dir(store).ok()?.flatten() {
        let dir = dir.path();
        let kept = fs::read(dir.join(META))
            .ok()
            .and_then(|b| serde_json::from_slice::<Kept>(&b).ok());
        if let Some(kept) = kept {
            found.push((dir, kept));
        }
    }
    loop {
        let candidates: Vec<Kept> = found.iter().map(|(_, k)| k.clone()).collect();
        let i = choose(&candidates, key, lines)?;
        let (dir, kept) = found.swap_remove(i);
        if let Some(slot) = lock(&dir) {
            // Read again under the lock: another build may have taken and kept it since.
            let now = fs::read(dir.join(META))
                .ok()
                .and_then(|b| serde_json::from_slice::<Kept>(&b).ok());
            if now.as_ref() == Some(&kept) && fs::remove_file(dir.join(META)).is_ok() {
                return Some((slot, kept));
            }
            slot.release();
        }
    }
}

/// `dir` locked by this build, when no other holds it.
fn lock(dir: &Path) -> Option<Slot> {
    let lock = File::options()
        .read(true)
        .write(true)
        .open(dir.join(LOCK))
        .ok()?;
    lock.try_lock().ok()?;
    Some(Slot {
        dir: dir.to_path_buf(),
        lock: Some(lock),
    })
}

/// Removes, of the kept venvs in `store` other than `this`, those no build holds that
/// `kept` supersedes or that no build finished, then the oldest beyond [`MAX_KEPT`].
fn tidy(store: &Path, this: &Path, kept: &Kept) {
    let Ok(listing) = fs::read_dir(store) else {
        return;
    };
    let mut others = Vec::new();
    for dir in listing.flatten() {
        let dir = dir.path();
        if dir == this || !dir.is_dir() {
            continue;
        }
        let Some(slot) = lock(&dir) else { continue };
        let meta = fs::metadata(dir.join(META)).ok();
        let other = fs::read(dir.join(META))
            .ok()
            .and_then(|b| serde_json::from_slice::<Kept>(&b).ok());
        match other {
            Some(o) if !(o.key == kept.key && added(&o.lines, &kept.lines).is_some()) => {
                let at = meta.and_then(|m| m.modified().ok());
                others.push((at, slot));
                continue;
            }
            // Superseded, or never finished: dropped while locked, it is removed.
            _ => drop(slot),
        }
    }
    others.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    for (i, (_, slot)) in others.into_iter().enumerate() {
        if i + 1 < MAX_KEPT {
            slot.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(key: &str, lines: &[&str]) -> Kept {
        Kept {
            key: key.into(),
            lines: lines.iter().map(|l| l.to_string()).collect(),
            pins: String::new(),
            uv_form: UvForm::default(),
        }
    }

    fn lines(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn requirement_lines_are_sorted_plain_lines_and_an_option_is_never_incremental() {
        assert_eq!(
            requirement_lines("requests\n\n# c\n pyyaml \nrequests\n"),
            Some(lines(&["pyyaml", "requests"]))
        );
        assert_eq!(requirement_lines("requests\n--index-url https://x\n"), None);
        assert_eq!(requirement_lines("-r other.txt\n"), None);
    }

    #[test]
    fn the_kept_venv_chosen_has_the_same_key_no_line_too_many_and_most_lines() {
        let candidates = [
            kept("k", &["a"]),
            kept("k", &["a", "b"]),
            kept("other", &["a", "b", "c"]),
            kept("k", &["a", "z"]),
        ];
        assert_eq!(choose(&candidates, "k", &lines(&["a", "b", "c"])), Some(1));
        assert_eq!(choose(&candidates, "k", &lines(&["a"])), Some(0));
        assert_eq!(choose(&candidates, "k", &lines(&["b"])), None);
        assert_eq!(choose(&candidates, "x", &lines(&["a"])), None);
        assert_eq!(added(&lines(&["a"]), &lines(&["a", "b"])), Some(vec!["b"]));
        assert_eq!(added(&lines(&["a", "c"]), &lines(&["a", "b"])), None);
    }

    #[test]
    fn a_kept_venv_is_taken_once_and_one_not_kept_again_is_removed() {
        let store = tempfile::tempdir().unwrap();
        let slot = fresh(store.path()).unwrap();
        let dir = slot.path().to_path_buf();
        fs::create_dir_all(dir.join("root/.venv")).unwrap();
        let one = kept("k", &["a"]);
        slot.keep(&one).unwrap().run();
        let wanted = lines(&["a", "b"]);
        let (taken, was) = take(store.path(), "k", &wanted).unwrap();
        assert_eq!(was, one);
        assert_eq!(taken.path(), dir);
        assert!(
            take(store.path(), "k", &wanted).is_none(),
            "taken: not twice"
        );
        drop(taken);
        assert!(!dir.exists(), "not kept again: removed");

        // A newer kept venv supersedes an older one of the same key.
        let old = fresh(store.path()).unwrap();
        let old_dir = old.path().to_path_buf();
        old.keep(&kept("k", &["a"])).unwrap().run();
        let (taken, _) = take(store.path(), "k", &wanted).unwrap();
        let other = fresh(store.path()).unwrap();
        let other_dir = other.path().to_path_buf();
        other.keep(&kept("j", &["a"])).unwrap().run();
        taken.keep(&kept("k", &["a", "b"])).unwrap().run();
        assert!(old_dir.exists(), "itself");
        assert!(other_dir.exists(), "another key's stays");
        let newer = fresh(store.path()).unwrap();
        newer.keep(&kept("k", &["a", "b", "c"])).unwrap().run();
        assert!(!old_dir.exists(), "superseded: removed");
        assert!(other_dir.exists());
    }
}
