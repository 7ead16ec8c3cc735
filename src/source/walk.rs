//! The source file set: flytekit's `list_all_files` / `list_imported_modules_as_files`.

use super::digest::{hash_files, HashedFile};
use super::ignore::IgnoreGroup;
use super::{pypath, SourceError};
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
        let ignore = IgnoreGroup::new(root, cwd)?;
        let mut walked: Vec<(String, PathBuf)> = Vec::new();
        walk_dir(root, &cwd.join(root), &ignore, &mut walked)?;
        walked.sort_by(|a, b| a.0.cmp(&b.0));
        let cwd_str = cwd.to_string_lossy();
        let files: Vec<SourceFile> = walked
            .into_iter()
            .map(|(py, path)| SourceFile { rel: pypath::relpath(&py, root, &cwd_str), path })
            .collect();
        let digest = hash_files(files.iter().map(|f| HashedFile { path: &f.path, rel: &f.rel }), &ignore.fingerprint)?;
        Ok(SourceSet { files, digest })
    }

    /// `source_copy_mode = loaded_modules`: the module files (as Python's `__file__` would
    /// name them) that lie in `root`.
    pub fn loaded_modules(root: &str, modules: &[String], cwd: &Path) -> Result<SourceSet, SourceError> {
        let cwd_str = cwd.to_string_lossy();
        let mut chosen: Vec<&String> = modules.iter().filter(|m| pypath::file_is_in_directory(m, root)).collect();
        chosen.sort();
        let files: Vec<SourceFile> = chosen
            .into_iter()
            .map(|m| SourceFile { rel: pypath::relpath(m, root, &cwd_str), path: cwd.join(m) })
            .collect();
        let digest = hash_files(files.iter().map(|f| HashedFile { path: &f.path, rel: &f.rel }), "modules")?;
        Ok(SourceSet { files, digest })
    }
}

/// One level of `os.walk(top, followlinks=False)` with flytekit's per-file checks; `py_dir` is
/// the directory as Python names it (`os.path.join` of what was walked).
fn walk_dir(py_dir: &str, dir: &Path, ignore: &IgnoreGroup, out: &mut Vec<(String, PathBuf)>) -> Result<(), SourceError> {
    // os.walk ignores directories it cannot list.
    let Ok(entries) = fs::read_dir(dir) else { return Ok(()) };
    let mut subdirs = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(SourceError::NonUtf8 { path: entry.path() });
        };
        let path = entry.path();
        let Ok(file_type) = entry.file_type() else { continue };
        // scandir's is_dir() follows symlinks; a symlinked directory is listed but not entered.
        let is_dir = file_type.is_dir() || (file_type.is_symlink() && path.is_dir());
        if is_dir {
            if name != ".git" && !file_type.is_symlink() {
                subdirs.push((pypath::join(py_dir, name), path));
            }
            continue;
        }
        // os.path.exists follows links: broken links are skipped, as are sockets.
        let Ok(meta) = fs::metadata(&path) else { continue };
        let ft = meta.file_type();
        if ft.is_socket() {
            continue;
        }
        let py_path = pypath::join(py_dir, name);
        if ignore.is_ignored(&py_path) {
            continue;
        }
        if ft.is_fifo() || ft.is_block_device() || ft.is_char_device() {
            return Err(SourceError::Special { path });
        }
        out.push((py_path, path));
    }
    for (py, path) in subdirs {
        walk_dir(&py, &path, ignore, out)?;
    }
    Ok(())
}
