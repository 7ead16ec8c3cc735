//! Writing a [`BuildPlan`]'s or an [`EnvdPlan`]'s context to a directory.
//!
//! `render -o DIR` hands DIR to `docker build DIR` (or `envd build`), which sends every file
//! in it: a file left from an earlier render (a source file since deleted, anything else put
//! there) would be built into the image under a tag that does not account for it. So a
//! render goes only into an empty (or missing) directory, or, when asked
//! ([`Existing::Replace`]), into one it empties first.

use super::envd::{BUILD_ENVD, EnvdPlan};
use super::plan::{BuildPlan, ContextFile};
use std::fs;
use std::path::{Path, PathBuf};

/// A context that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("writing the build context: {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is not empty ({count} entries, e.g. `{example}`): files left from an earlier render would be sent to `docker build` with the new context and end up in the image; pass --replace to empty it first, or choose an empty or new directory",
        dir.display()
    )]
    NotEmpty {
        dir: PathBuf,
        count: usize,
        example: String,
    },
    #[error(
        "{} holds {}, which the spec reads: --replace would delete it; render into another directory",
        dir.display(),
        input.display()
    )]
    HoldsInput { dir: PathBuf, input: PathBuf },
}

/// What to do with entries already in the directory a context is rendered into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse a directory that is not empty.
    Refuse,
    /// Remove everything in it first (but never the spec's own inputs).
    Replace,
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

    /// [`BuildPlan::write`] into a directory that holds nothing else afterwards: `dir` must
    /// be empty or missing, or is emptied first with [`Existing::Replace`]. `inputs` are
    /// further paths the spec reads (the spec file, `source_root`) besides the context's
    /// own sources, which `Replace` refuses to delete.
    pub fn render_into(
        &self,
        dir: &Path,
        existing: Existing,
        inputs: &[PathBuf],
    ) -> Result<(), WriteError> {
        prepare_dir(dir, existing, &self.files, inputs)?;
        self.write(dir)
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

    /// [`EnvdPlan::write`] into a directory that holds nothing else afterwards (as
    /// [`BuildPlan::render_into`]).
    pub fn render_into(
        &self,
        dir: &Path,
        existing: Existing,
        inputs: &[PathBuf],
    ) -> Result<(), WriteError> {
        prepare_dir(dir, existing, &self.files, inputs)?;
        self.write(dir)
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError::Io { path, source }
}

/// Where `path` is, with its directory's links resolved (the entry itself is not followed:
/// a link inside `dir` is in `dir`, wherever it points).
fn located(path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    let name = absolute.file_name()?;
    Some(absolute.parent()?.canonicalize().ok()?.join(name))
}

/// Makes `dir` ready for a render: created when missing; when it has entries, refused
/// ([`Existing::Refuse`]) or emptied ([`Existing::Replace`], unless a file the spec reads
/// is inside it).
fn prepare_dir(
    dir: &Path,
    existing: Existing,
    files: &[ContextFile],
    inputs: &[PathBuf],
) -> Result<(), WriteError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
        .map_err(io_error(dir))?
        .collect::<Result<_, _>>()
        .map_err(io_error(dir))?;
    if entries.is_empty() {
        return Ok(());
    }
    entries.sort_by_key(|e| e.file_name());
    if existing == Existing::Refuse {
        return Err(WriteError::NotEmpty {
            dir: dir.to_path_buf(),
            count: entries.len(),
            example: entries[0].file_name().to_string_lossy().into_owned(),
        });
    }
    let root = dir.canonicalize().map_err(io_error(dir))?;
    let sources = files.iter().filter_map(|f| match f {
        ContextFile::Copy { from, .. } => Some(from.as_path()),
        _ => None,
    });
    for input in sources.chain(inputs.iter().map(PathBuf::as_path)) {
        // Inside the directory, or the directory itself (a `source_root` rendered into):
        // emptying it would delete what the spec reads. One above it is not touched.
        if located(input).is_some_and(|at| at.starts_with(&root)) {
            return Err(WriteError::HoldsInput {
                dir: dir.to_path_buf(),
                input: input.to_path_buf(),
            });
        }
    }
    for entry in entries {
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let removed = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(io_error(&path))?;
    }
    Ok(())
}

fn write_file(dir: &Path, name: &str, content: &str) -> Result<(), WriteError> {
    let target = dir.join(name);
    fs::write(&target, content).map_err(io_error(&target))
}

/// Writes `files` into `dir`, in order (a later file replaces an earlier one).
fn write_files(dir: &Path, files: &[ContextFile]) -> Result<(), WriteError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    for file in files {
        match file {
            ContextFile::Copy { from, to } => {
                let target = dir.join(to);
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(io_error(parent))?;
                }
                // Follows symlinks and keeps the mode bits, as shutil.copy does.
                fs::copy(from, &target).map_err(io_error(from))?;
            }
            ContextFile::Content { to, content } => {
                let target = dir.join(to);
                fs::write(&target, content).map_err(io_error(&target))?;
            }
            ContextFile::Dir { to } => {
                let target = dir.join(to);
                fs::create_dir_all(&target).map_err(io_error(&target))?;
            }
        }
    }
    Ok(())
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
                    let err = |source| WriteError::Io {
                        path: from.clone(),
                        source,
                    };
                    let bytes = fs::read(from).map_err(err)?;
                    use std::os::unix::fs::PermissionsExt;
                    let mode = fs::metadata(from).map_err(err)?.permissions().mode() & 0o7777;
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
                .map_err(|source| WriteError::Io {
                    path: PathBuf::from(&path),
                    source,
                })?;
        }
        builder.into_inner().map_err(|source| WriteError::Io {
            path: PathBuf::from("<context tar>"),
            source,
        })
    }
}
