//! Writing a [`BuildPlan`]'s or an [`EnvdPlan`]'s context to a directory.

use super::envd::{BUILD_ENVD, EnvdPlan};
use super::plan::{BuildPlan, ContextFile};
use std::fs;
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
                    let err = |source| WriteError {
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
