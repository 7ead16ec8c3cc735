//! Writing a [`BuildPlan`]'s context to a directory.

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
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| WriteError { path, source }
        };
        fs::create_dir_all(dir).map_err(err(dir))?;
        let dockerfile = dir.join("Dockerfile");
        fs::write(&dockerfile, crate::render::dockerfile(self)).map_err(err(&dockerfile))?;
        for file in &self.files {
            match file {
                ContextFile::Copy { from, to } => {
                    let target = dir.join(to);
                    if let Some(parent) = target.parent() {
                        fs::create_dir_all(parent).map_err(err(parent))?;
                    }
                    // Follows symlinks and keeps the mode bits, as shutil.copy does.
                    fs::copy(from, &target).map_err(err(from))?;
                }
                ContextFile::Content { to, content } => {
                    let target = dir.join(to);
                    fs::write(&target, content).map_err(err(&target))?;
                }
            }
        }
        Ok(())
    }
}
