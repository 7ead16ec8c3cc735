//! Which files go into the image, and the digests flytekit computes over them.
//!
//! Walk once: the [`SourceSet`] whose digest becomes part of the tag is the same list of
//! files the build later copies. Walks and digests follow flytekit 1.16:
//! - `source_copy_mode = all`: `ls_files` → `list_all_files` (no directory symlinks followed,
//!   `.git` skipped, broken links and sockets skipped, [`IgnoreGroup`] applied), sorted by
//!   path; the digest is md5 over each file's bytes followed by its relative path with the
//!   separators removed.
//! - `loaded_modules`: the given module files that lie in `source_root` (no ignore rules).
//! - `copy`: `compute_digest` (directories walked in directory order, files sorted per
//!   directory, nothing ignored).
//! - `requirements`: sha1 of the file's bytes with surrounding whitespace stripped.

mod digest;
pub(crate) mod ignore;
pub mod imports;
pub(crate) mod layer;
pub(crate) mod untrusted;
mod walk;

pub use digest::{
    CopyEntry, CopySet, cache_home, cache_home_if_enabled, copy_digest, digest_cache_in,
    is_whole_cache_entry, requirements_digest,
};
pub use ignore::IgnoreGroup;
pub use untrusted::LinkPolicy;
pub use walk::SourceSet;

use std::path::PathBuf;

/// A problem with the files a spec points at.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("`source_root` {root:?} is not a directory ({})", dir.display())]
    MissingRoot { root: String, dir: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: file name is not valid UTF-8 (flytekit cannot hash it either)", path.display())]
    NonUtf8 { path: PathBuf },
    #[error(
        "{}: is a FIFO or device, which imagespec never reads (flytekit would block on it \
         forever); remove it, or keep it out of what is copied (.dockerignore, for source_root)",
        path.display()
    )]
    Special { path: PathBuf },
    #[error("{0}")]
    ExternalLink(Box<untrusted::LinkOutside>),
    #[error(
        "{}: `git ls-files` gave no answer within {seconds} s (flytekit would wait forever); \
         is a .gitignore a FIFO?",
        dir.display()
    )]
    GitTimeout { dir: PathBuf, seconds: u64 },
    #[error(".dockerignore: {0}")]
    Pattern(#[from] crate::py::fnmatch::PatternError),
    /// An entry named `.wh.NAME` in a layer imagespec writes: a whiteout, which deletes
    /// `NAME` from the layers below.
    #[error(
        "{path}: a name starting with `.wh.` is an OCI whiteout (in a layer it deletes files \
         of the layers below instead of adding one): not written"
    )]
    Whiteout { path: String },
}
