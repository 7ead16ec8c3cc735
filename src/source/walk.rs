//! The source file set: flytekit's `list_all_files` / `list_imported_modules_as_files`.

use super::SourceError;
use super::digest::{HashedFile, hash_files};
use super::ignore::{GIT_TIMEOUT, IgnoreGroup};
use super::untrusted::{self, LinkPolicy, Root};
use crate::py::path as pypath;
use rayon::prelude::*;
use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// How long git may take when the tree holds a file that cannot be read: git hangs on a
/// FIFO it reads, and the answer only decides whether the refusal is needed.
const GIT_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

/// A file that goes into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to `source_root`, `/`-separated: where it lands under `/root`.
    pub rel: String,
    /// Where to read it (symlinks to files are read through).
    pub path: PathBuf,
}

/// The files of `source_root` an image gets, and flytekit's `ls_digest` of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSet {
    /// What the image gets: the files flytekit hashes, less those the ignore rules exclude
    /// when read as written (see [`SourceSet::excluded`]).
    pub files: Vec<SourceFile>,
    /// Files flytekit hashes (so they are part of the tag) that `.dockerignore`, `.gitignore`
    /// or the standard patterns exclude when matched against paths relative to the root.
    /// flytekit matches a relative `source_root`'s files as walked (`src/secrets.json`), so
    /// its rules never apply; imagespec keeps flytekit's name but leaves these files out of
    /// the image. Relative to the root, sorted. Empty for an absolute `source_root`.
    pub excluded: Vec<String>,
    pub digest: String,
}

impl SourceSet {
    /// `source_copy_mode = all`: every file under `root` (as written, relative to `cwd`)
    /// that the ignore rules keep; links out of the root refused.
    pub fn all(root: &str, cwd: &Path) -> Result<SourceSet, SourceError> {
        SourceSet::all_with(root, cwd, LinkPolicy::default())
    }

    /// [`SourceSet::all`] with links out of the root allowed or not.
    pub fn all_with(root: &str, cwd: &Path, links: LinkPolicy) -> Result<SourceSet, SourceError> {
        check_root(root, cwd)?;
        let links = Root::new(&cwd.join(root), links)?;
        let ignore = IgnoreGroup::new(root, cwd, &links)?;
        let mut walked = walk_dir(root, "", &cwd.join(root), &ignore, &links)?;
        // flytekit sorts the walked path strings; they share the root prefix, so this is the
        // order of the relative paths.
        walked.par_sort_unstable_by(|a, b| a.py_path.cmp(&b.py_path));
        // git answered meanwhile; its rules apply last (the result is the same: a file is
        // kept only when no rule ignores it). A file that cannot be read (a FIFO, a link out
        // of the root) is refused only if git does not ignore it either; but git itself
        // hangs on a FIFO it reads (a `.gitignore`), so then it gets a short time only.
        let problem = walked.iter().any(|w| w.problem.is_some());
        match ignore.wait_for_git(if problem { GIT_GRACE } else { GIT_TIMEOUT }) {
            Err(_) if problem => {}
            result => result?,
        }
        walked.retain(|w| !ignore.is_ignored_by_git(&w.py_path, &w.rel));
        // The first in path order, so that every run names the same one.
        if let Some(problem) = walked.iter_mut().find_map(|w| w.problem.take()) {
            return Err(*problem);
        }
        let hashed: Vec<HashedFile> = walked
            .iter()
            .map(|w| HashedFile {
                path: &w.path,
                rel: &w.rel,
                meta: &w.meta,
            })
            .collect();
        let digest = hash_files(&hashed, &ignore.fingerprint())?;
        // For an absolute root flytekit's matching is the rules' own: nothing differs.
        let relative = !pypath::isabs(root);
        let (excluded, kept): (Vec<Walked>, Vec<Walked>) = walked
            .into_iter()
            .partition(|w| relative && ignore.rules_exclude(&w.rel));
        Ok(SourceSet {
            files: kept
                .into_iter()
                .map(|w| SourceFile {
                    rel: w.rel,
                    path: w.path,
                })
                .collect(),
            excluded: excluded.into_iter().map(|w| w.rel).collect(),
            digest,
        })
    }

    /// The warning for files that are part of the tag but not of the image, if any.
    pub fn exclusion_warning(&self, name: &str, root: &str) -> Option<String> {
        const SHOWN: usize = 20;
        if self.excluded.is_empty() {
            return None;
        }
        let n = self.excluded.len();
        let mut list = self.excluded[..n.min(SHOWN)].join(", ");
        if n > SHOWN {
            list.push_str(&format!(" and {} more", n - SHOWN));
        }
        Some(format!(
            "image `{name}`: {n} file{s} under source_root {root:?} {are} left out of the image \
             because .dockerignore, .gitignore or the standard patterns exclude {them}, but \
             flytekit hashes {them} into the tag (it matches a relative source_root's files as \
             walked, \"{root}/...\", so the rules never apply); the name stays flytekit's and \
             changes when {them_or_it} change{s_verb}: {list}",
            s = if n == 1 { "" } else { "s" },
            are = if n == 1 { "is" } else { "are" },
            them = if n == 1 { "it" } else { "them" },
            them_or_it = if n == 1 { "it" } else { "they" },
            s_verb = if n == 1 { "s" } else { "" },
        ))
    }

    /// `source_copy_mode = loaded_modules`: the module files (as Python's `__file__` would
    /// name them) that lie in `root`.
    pub fn loaded_modules(
        root: &str,
        modules: &[String],
        cwd: &Path,
        links: LinkPolicy,
    ) -> Result<SourceSet, SourceError> {
        check_root(root, cwd)?;
        let links = Root::new(&cwd.join(root), links)?;
        let cwd_str = cwd.to_string_lossy();
        let mut chosen: Vec<&String> = modules
            .iter()
            .filter(|m| pypath::file_is_in_directory(m, root))
            .collect();
        chosen.sort();
        let files: Vec<SourceFile> = chosen
            .into_iter()
            .map(|m| SourceFile {
                rel: pypath::relpath(m, root, &cwd_str),
                path: cwd.join(m),
            })
            .collect();
        let metas = files
            .iter()
            .map(|f| {
                // A path that climbs out (`src/../../x`) is no link: the plan refuses to
                // write it outside the context. One that stays inside as written must not
                // leave the root through a link.
                if !f.rel.starts_with("..") {
                    links.check_link(&f.path)?;
                }
                let meta = fs::metadata(&f.path).map_err(|source| SourceError::Io {
                    path: f.path.clone(),
                    source,
                })?;
                if untrusted::is_special(meta.file_type()) {
                    return Err(SourceError::Special {
                        path: f.path.clone(),
                    });
                }
                Ok(meta)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let hashed: Vec<HashedFile> = files
            .iter()
            .zip(&metas)
            .map(|(f, meta)| HashedFile {
                path: &f.path,
                rel: &f.rel,
                meta,
            })
            .collect();
        let digest = hash_files(&hashed, "modules")?;
        Ok(SourceSet {
            files,
            excluded: Vec::new(),
            digest,
        })
    }
}

/// flytekit runs git in `source_root` before walking it, so a missing root fails there.
fn check_root(root: &str, cwd: &Path) -> Result<(), SourceError> {
    let dir = cwd.join(root);
    if dir.is_dir() {
        Ok(())
    } else {
        Err(SourceError::MissingRoot {
            root: root.to_string(),
            dir,
        })
    }
}

/// A file the walk kept: its path as Python names it, relative to the root, where it is,
/// its stat data, and why it cannot be read (raised only if no rule ignores it).
struct Walked {
    py_path: String,
    rel: String,
    path: PathBuf,
    meta: fs::Metadata,
    problem: Option<Box<SourceError>>,
}

enum Entry {
    Dir {
        py: String,
        rel: String,
        path: PathBuf,
    },
    File(Walked),
    Skip,
}

/// `os.walk(top, followlinks=False)` below `py_dir` with flytekit's per-file checks; `py_dir`
/// is the directory as Python names it (`os.path.join` of what was walked), `rel_dir` the same
/// relative to the root. Directory entries are examined in parallel (stat is the cost); the
/// caller sorts, so order here does not matter.
fn walk_dir(
    py_dir: &str,
    rel_dir: &str,
    dir: &Path,
    ignore: &IgnoreGroup,
    links: &Root,
) -> Result<Vec<Walked>, SourceError> {
    // os.walk ignores directories it cannot list.
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let entries: Vec<fs::DirEntry> = entries.flatten().collect();
    let examined: Vec<Result<Entry, SourceError>> = entries
        .par_iter()
        .map(|entry| examine(entry, py_dir, rel_dir, ignore, links))
        .collect();
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for e in examined {
        match e? {
            Entry::File(w) => files.push(w),
            Entry::Dir { py, rel, path } => dirs.push((py, rel, path)),
            Entry::Skip => {}
        }
    }
    let below: Vec<Result<Vec<Walked>, SourceError>> = dirs
        .par_iter()
        .map(|(py, rel, path)| walk_dir(py, rel, path, ignore, links))
        .collect();
    for b in below {
        files.extend(b?);
    }
    Ok(files)
}

fn examine(
    entry: &fs::DirEntry,
    py_dir: &str,
    rel_dir: &str,
    ignore: &IgnoreGroup,
    links: &Root,
) -> Result<Entry, SourceError> {
    let name = entry.file_name();
    let Some(name) = name.to_str() else {
        return Err(SourceError::NonUtf8 { path: entry.path() });
    };
    // A run's own temporary files (with TMPDIR or an --output target inside source_root)
    // are not source: hashing them would change the tag while the run writes them.
    if crate::scratch::is_scratch_name(name) {
        return Ok(Entry::Skip);
    }
    let path = entry.path();
    let Ok(file_type) = entry.file_type() else {
        return Ok(Entry::Skip);
    };
    // A directory entry's name never holds `/`, `.` or `..`, so the relative path is the
    // joined names: what `os.path.relpath(walked, root)` gives.
    let rel = if rel_dir.is_empty() {
        name.to_string()
    } else {
        format!("{rel_dir}/{name}")
    };
    // scandir's is_dir() follows symlinks; a symlinked directory is listed but not entered.
    if file_type.is_dir() || (file_type.is_symlink() && path.is_dir()) {
        if name == ".git" || file_type.is_symlink() || links.is_own_cache(&rel) {
            return Ok(Entry::Skip);
        }
        return Ok(Entry::Dir {
            py: pypath::join(py_dir, name),
            rel,
            path,
        });
    }
    // os.path.exists follows links: broken links are skipped, as are sockets. For a non-link
    // the entry's own stat is the same and cheaper (fstatat on the open directory).
    let meta = if file_type.is_symlink() {
        fs::metadata(&path)
    } else {
        entry.metadata()
    };
    let Ok(meta) = meta else {
        return Ok(Entry::Skip);
    };
    let ft = meta.file_type();
    if ft.is_socket() {
        return Ok(Entry::Skip);
    }
    let py_path = pypath::join(py_dir, name);
    if ignore.is_ignored_by_patterns(&py_path, &rel) {
        return Ok(Entry::Skip);
    }
    let mut problem = None;
    if file_type.is_symlink() {
        match links.check_link(&path) {
            Ok(true) => {}
            Ok(false) => return Ok(Entry::Skip),
            Err(e) => problem = Some(Box::new(e)),
        }
    }
    if problem.is_none() && untrusted::is_special(ft) {
        problem = Some(Box::new(SourceError::Special { path: path.clone() }));
    }
    Ok(Entry::File(Walked {
        py_path,
        rel,
        path,
        meta,
        problem,
    }))
}
