//! Writing a [`BuildPlan`]'s or an [`EnvdPlan`]'s context to a directory.

use super::envd::{BUILD_ENVD, EnvdPlan};
use super::plan::{BuildPlan, ContextFile};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A context that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing the build context: {}: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl BuildPlan {
    /// Writes the Dockerfile and every context file into `dir` (created if missing; files
    /// of an earlier context there are replaced).
    pub fn write(&self, dir: &Path) -> Result<(), WriteError> {
        // In flytekit's order: the files first, the Dockerfile last (a `copy` entry named
        // `Dockerfile` must not replace it).
        write_files(dir, &self.files)?;
        write_file(dir, "Dockerfile", &crate::render::dockerfile(self))
    }
}

impl EnvdPlan {
    /// Writes `build.envd` and every context file into `dir` (created if missing; files of
    /// an earlier context there are replaced).
    pub fn write(&self, dir: &Path) -> Result<(), WriteError> {
        // flytekit's envd plugin writes build.envd last: it replaces a source file so named.
        write_files(dir, &self.files)?;
        write_file(dir, BUILD_ENVD, &crate::render::envd::build_envd(self))
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError { path, source }
}

fn write_file(dir: &Path, name: &str, content: &str) -> Result<(), WriteError> {
    let mut inside = Inside::new(dir);
    let target = inside.file(name)?;
    create_new(&target)?
        .write_all(content.as_bytes())
        .map_err(io_error(&target))
}

/// Writes `files` into `dir`, in order (a later file replaces an earlier one).
fn write_files(dir: &Path, files: &[ContextFile]) -> Result<(), WriteError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut inside = Inside::new(dir);
    for file in files {
        match file {
            ContextFile::Copy { from, to } => {
                let target = inside.file(to)?;
                copy_file(from, &target)?;
            }
            ContextFile::Content { to, content } => {
                let target = inside.file(to)?;
                create_new(&target)?
                    .write_all(content.as_bytes())
                    .map_err(io_error(&target))?;
            }
            ContextFile::Dir { to } => {
                inside.dir(to)?;
            }
        }
    }
    Ok(())
}

/// Paths inside an output directory, made so that nothing is written outside it: a path
/// that climbs out (`src/../../x`) is refused, and so is a directory on the way that is a
/// symbolic link (a context written into a tree someone else controls, or an earlier
/// context there, could hold `src -> /etc`). A link where a file goes is replaced by the
/// file, never written through.
struct Inside<'a> {
    root: &'a Path,
    /// Directories below the root known to be real directories.
    checked: std::collections::HashSet<PathBuf>,
}

impl<'a> Inside<'a> {
    fn new(root: &'a Path) -> Inside<'a> {
        Inside {
            root,
            checked: Default::default(),
        }
    }

    /// `to`'s parts once `.` and empty parts are dropped; an error if `..` climbs out.
    fn parts<'t>(&self, to: &'t str) -> Result<Vec<&'t str>, WriteError> {
        let mut parts: Vec<&str> = Vec::new();
        for part in to.split('/') {
            match part {
                "" | "." => {}
                ".." if parts.pop().is_some() => {}
                ".." => return Err(self.outside(to)),
                part => parts.push(part),
            }
        }
        if to.starts_with('/') {
            return Err(self.outside(to));
        }
        Ok(parts)
    }

    fn outside(&self, to: &str) -> WriteError {
        WriteError {
            path: self.root.join(to),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "`{to}` is outside {} once `..` is resolved: nothing is written there",
                    self.root.display()
                ),
            ),
        }
    }

    /// Makes the directory `to` (and its parents) below the root.
    fn dir(&mut self, to: &str) -> Result<PathBuf, WriteError> {
        let parts = self.parts(to)?;
        self.make_dirs(&parts)
    }

    fn make_dirs(&mut self, parts: &[&str]) -> Result<PathBuf, WriteError> {
        let mut path = self.root.to_path_buf();
        for part in parts {
            path.push(part);
            if self.checked.contains(&path) {
                continue;
            }
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(WriteError {
                        path,
                        source: std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            "a symbolic link where the context needs a directory: imagespec \
                             does not write through it (it could lead outside the output); \
                             remove it",
                        ),
                    });
                }
                Ok(_) => {
                    return Err(WriteError {
                        path,
                        source: std::io::Error::new(
                            std::io::ErrorKind::AlreadyExists,
                            "a file where the context needs a directory",
                        ),
                    });
                }
                Err(_) => match fs::create_dir(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        // Made meanwhile: check it again.
                        return self.make_dirs(parts);
                    }
                    Err(e) => return Err(io_error(&path)(e)),
                },
            }
            self.checked.insert(path.clone());
        }
        Ok(path)
    }

    /// The path of the file `to` below the root, its directories made; whatever was at
    /// that path as a link is gone.
    fn file(&mut self, to: &str) -> Result<PathBuf, WriteError> {
        let parts = self.parts(to)?;
        let Some((name, dirs)) = parts.split_last() else {
            return Err(self.outside(to));
        };
        let target = self.make_dirs(dirs)?.join(name);
        if fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(&target).map_err(io_error(&target))?;
        }
        Ok(target)
    }
}

/// Opens `target` for writing from scratch, never through a link (`O_NOFOLLOW`).
fn create_new(target: &Path) -> Result<fs::File, WriteError> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(O_NOFOLLOW)
        .open(target)
        .map_err(io_error(target))
}

#[cfg(target_os = "linux")]
const O_NOFOLLOW: i32 = 0o400000;
#[cfg(not(target_os = "linux"))]
const O_NOFOLLOW: i32 = 0x0100;

/// Copies the regular file `from` (links followed, as shutil.copy does) to `target` with
/// its permission bits; a FIFO or device is refused, never read.
fn copy_file(from: &Path, target: &Path) -> Result<(), WriteError> {
    use std::os::unix::fs::PermissionsExt;
    let mut source = crate::source::untrusted::open_regular(from).map_err(io_error(from))?;
    let mode = source
        .metadata()
        .map_err(io_error(from))?
        .permissions()
        .mode()
        & 0o7777;
    let mut out = create_new(target)?;
    std::io::copy(&mut source, &mut out).map_err(io_error(from))?;
    out.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_error(target))
}

/// The fixed modification time of every context entry (1980-01-01, as flytekit's own tars):
/// the same files give the same COPY layers, whenever they were checked out.
pub const CONTEXT_MTIME: u64 = 315_532_800;

impl BuildPlan {
    /// The context as an uncompressed tar in memory, entries sorted, with fixed times and
    /// owners and the files' own permission bits, for sending to a builder.
    pub fn context_tar(&self) -> Result<Vec<u8>, WriteError> {
        // Sorted by path; a later file replaces an earlier one at the same path, and the
        // Dockerfile comes last, as when the context is written to disk.
        let mut entries: std::collections::BTreeMap<String, (Vec<u8>, u32, tar::EntryType)> =
            Default::default();
        for file in &self.files {
            match file {
                ContextFile::Copy { from, to } => {
                    let err = |source| WriteError {
                        path: from.clone(),
                        source,
                    };
                    // Never a FIFO or a device: it would block, or never end.
                    let mut file = crate::source::untrusted::open_regular(from).map_err(err)?;
                    let mut bytes = Vec::new();
                    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(err)?;
                    use std::os::unix::fs::PermissionsExt;
                    let mode = file.metadata().map_err(err)?.permissions().mode() & 0o7777;
                    entries.insert(to.clone(), (bytes, mode, tar::EntryType::Regular));
                }
                ContextFile::Content { to, content } => {
                    entries.insert(
                        to.clone(),
                        (content.clone().into_bytes(), 0o644, tar::EntryType::Regular),
                    );
                }
                ContextFile::Dir { to } => {
                    entries.insert(
                        format!("{to}/"),
                        (Vec::new(), 0o755, tar::EntryType::Directory),
                    );
                }
            }
        }
        entries.insert(
            "Dockerfile".into(),
            (
                crate::render::dockerfile(self).into_bytes(),
                0o644,
                tar::EntryType::Regular,
            ),
        );
        let mut builder = tar::Builder::new(Vec::new());
        for (path, (bytes, mode, kind)) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(mode);
            header.set_mtime(CONTEXT_MTIME);
            header.set_uid(0);
            header.set_gid(0);
            header.set_entry_type(kind);
            builder
                .append_data(&mut header, &path, bytes.as_slice())
                .map_err(|source| WriteError {
                    path: PathBuf::from(&path),
                    source,
                })?;
        }
        builder.into_inner().map_err(|source| WriteError {
            path: PathBuf::from("<context tar>"),
            source,
        })
    }
}
