//! The source file set: flytekit's `list_all_files` / `list_imported_modules_as_files`.

use super::digest::{HashedFile, hash_files};
use super::ignore::IgnoreGroup;
use super::{SourceError, pypath};
use rayon::prelude::*;
use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

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
    pub files: Vec<SourceFile>,
    pub digest: String,
}

impl SourceSet {
    /// `source_copy_mode = all`: every file under `root` (as written, relative to `cwd`)
    /// that the ignore rules keep.
    pub fn all(root: &str, cwd: &Path) -> Result<SourceSet, SourceError> {
        check_root(root, cwd)?;
        let ignore = IgnoreGroup::new(root, cwd)?;
        let mut walked = walk_dir(root, "", &cwd.join(root), &ignore)?;
        // git answered meanwhile; its rules apply last (the result is the same: a file is
        // kept only when no rule ignores it).
        walked.retain(|w| !ignore.is_ignored_by_git(&w.py_path, &w.rel));
        // flytekit sorts the walked path strings; they share the root prefix, so this is the
        // order of the relative paths.
        walked.par_sort_unstable_by(|a, b| a.py_path.cmp(&b.py_path));
        let files: Vec<SourceFile> = walked
            .iter()
            .map(|w| SourceFile {
                rel: w.rel.clone(),
                path: w.path.clone(),
            })
            .collect();
        let hashed: Vec<HashedFile> = files
            .iter()
            .zip(&walked)
            .map(|(f, w)| HashedFile {
                path: &f.path,
                rel: &f.rel,
                meta: &w.meta,
            })
            .collect();
        let digest = hash_files(&hashed, &ignore.fingerprint())?;
        Ok(SourceSet { files, digest })
    }

    /// `source_copy_mode = loaded_modules`: the module files (as Python's `__file__` would
    /// name them) that lie in `root`.
    pub fn loaded_modules(
        root: &str,
        modules: &[String],
        cwd: &Path,
    ) -> Result<SourceSet, SourceError> {
        check_root(root, cwd)?;
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
                fs::metadata(&f.path).map_err(|source| SourceError::Io {
                    path: f.path.clone(),
                    source,
                })
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
        Ok(SourceSet { files, digest })
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
/// and its stat data.
struct Walked {
    py_path: String,
    rel: String,
    path: PathBuf,
    meta: fs::Metadata,
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
) -> Result<Vec<Walked>, SourceError> {
    // os.walk ignores directories it cannot list.
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let entries: Vec<fs::DirEntry> = entries.flatten().collect();
    let examined: Vec<Result<Entry, SourceError>> = entries
        .par_iter()
        .map(|entry| examine(entry, py_dir, rel_dir, ignore))
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
        .map(|(py, rel, path)| walk_dir(py, rel, path, ignore))
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
        if name == ".git" || file_type.is_symlink() {
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
    if ft.is_fifo() || ft.is_block_device() || ft.is_char_device() {
        return Err(SourceError::Special { path });
    }
    Ok(Entry::File(Walked {
        py_path,
        rel,
        path,
        meta,
    }))
}
