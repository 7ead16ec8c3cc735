//! Reading a source tree that may be an attacker's: CI builds pull requests, so the spec and
//! the files it points at are data from whoever wrote them.
//!
//! Two rules hold for everything that is hashed or copied:
//! - **Links stay inside their root.** A symbolic link whose target resolves outside
//!   `source_root` (or outside a `copy` entry) is refused with [`SourceError::ExternalLink`]:
//!   flytekit reads links through, so `src/x -> /etc/shadow` would bake a host file into the
//!   image. [`LinkPolicy::AllowExternal`] (`--allow-external-links`, an operator's choice,
//!   never the spec's) keeps flytekit's behaviour. Links inside are read through, as
//!   flytekit reads them.
//! - **Only regular files are read.** A FIFO or a device (`/dev/zero`) would block or never
//!   end: [`open_regular`] opens without blocking and checks what it opened, so a file
//!   swapped for a FIFO between the walk and the read fails instead of hanging.

use super::SourceError;
use std::fs::{self, File};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Whether links may lead outside the directory they are found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkPolicy {
    /// Refuse links whose target leaves the root (the default).
    #[default]
    StayInside,
    /// Read links through wherever they point, as flytekit does (`--allow-external-links`).
    AllowExternal,
}

/// A link whose target leaves its root: the link, its target as written, where that
/// resolves, and the root.
#[derive(Debug)]
pub struct LinkOutside {
    pub link: PathBuf,
    pub target: PathBuf,
    pub resolved: PathBuf,
    pub root: PathBuf,
}

impl std::fmt::Display for LinkOutside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is a symbolic link to {} ({}), outside {}: a link in the tree could bake any \
             host file into the image, so imagespec does not follow it; remove the link, copy \
             the file in, or pass --allow-external-links (IMAGESPEC_ALLOW_EXTERNAL_LINKS=1) if \
             you trust the tree",
            self.link.display(),
            self.target.display(),
            self.resolved.display(),
            self.root.display()
        )
    }
}

/// Where imagespec's cache directory lies below `real` (a canonical path), relative to it;
/// `None` when it lies elsewhere, is `real` itself or does not exist yet (then no walk
/// meets it: a walk that starts after it is made finds it here).
fn own_cache_within(real: &Path) -> Option<String> {
    let cache = fs::canonicalize(crate::source::cache_home()?).ok()?;
    let rel = cache.strip_prefix(real).ok()?.to_str()?;
    (!rel.is_empty()).then(|| rel.to_string())
}

/// A directory whose links must not lead out of it.
#[derive(Debug, Clone)]
pub struct Root {
    /// The directory as the user named it (for messages).
    shown: PathBuf,
    /// Its canonical path, which resolved targets are compared with.
    real: PathBuf,
    policy: LinkPolicy,
    /// imagespec's cache directory relative to the root, when it lies inside (with
    /// `XDG_CACHE_HOME=$PWD/.cache` and `source_root = "."`, say): never source, like a run's
    /// scratch files. Hashing it would change the tag whenever a run writes a cache entry,
    /// and a cache written while the tag is checked again would fail the build.
    own_cache: Option<String>,
}

impl Root {
    /// The root `dir` (which must exist) under `policy`.
    pub fn new(dir: &Path, policy: LinkPolicy) -> Result<Root, SourceError> {
        let real = fs::canonicalize(dir).map_err(|source| SourceError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let own_cache = own_cache_within(&real);
        Ok(Root {
            shown: dir.to_path_buf(),
            real,
            policy,
            own_cache,
        })
    }

    /// Whether `rel` (a directory relative to the root, `/`-separated) is imagespec's own
    /// cache directory, which walks leave out.
    pub fn is_own_cache(&self, rel: &str) -> bool {
        self.own_cache.as_deref() == Some(rel)
    }

    /// The policy links are checked under.
    pub fn policy(&self) -> LinkPolicy {
        self.policy
    }

    /// Checks `link` (a path at or below the root whose last component is a symbolic link):
    /// `Ok(true)` when it may be read, `Ok(false)` when it resolves to nothing (dangling, a
    /// loop: flytekit skips those), an error when its target lies outside the root.
    pub fn check_link(&self, link: &Path) -> Result<bool, SourceError> {
        let Ok(resolved) = fs::canonicalize(link) else {
            return Ok(false);
        };
        if self.policy == LinkPolicy::AllowExternal || resolved.starts_with(&self.real) {
            return Ok(true);
        }
        Err(SourceError::ExternalLink(Box::new(LinkOutside {
            link: link.to_path_buf(),
            target: fs::read_link(link).unwrap_or_else(|_| resolved.clone()),
            resolved,
            root: self.shown.clone(),
        })))
    }

    /// Checks a path written relative to the root (e.g. a `copy` entry relative to the
    /// spec's directory): when it stays inside the root as written (relative, no `..`
    /// climbing out) but a link on the way leads outside, the first such link is refused.
    /// Absolute and `..` paths are not links: what they name is the spec's own choice.
    pub fn check_written(&self, written: &str) -> Result<(), SourceError> {
        if self.policy == LinkPolicy::AllowExternal || !stays_inside(Path::new(written)) {
            return Ok(());
        }
        let mut path = self.shown.clone();
        for part in Path::new(written).components() {
            let Component::Normal(part) = part else {
                continue;
            };
            path.push(part);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => {
                    self.check_link(&path)?;
                }
                Ok(_) => {}
                // Missing: flytekit skips what does not exist; nothing to read.
                Err(_) => return Ok(()),
            }
        }
        Ok(())
    }
}

/// A relative path with no `..` (after `.` and empty parts are dropped) that climbs above
/// its start.
fn stays_inside(path: &Path) -> bool {
    let mut depth = 0usize;
    for part in path.components() {
        match part {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// A FIFO, a character or block device: reading one blocks or never ends.
pub fn is_special(file_type: fs::FileType) -> bool {
    file_type.is_fifo() || file_type.is_char_device() || file_type.is_block_device()
}

/// Opens `path` for reading only when it is a regular file (links followed). The open
/// does not block (`O_NONBLOCK`: a FIFO would wait for a writer) and the type is checked on
/// the opened file, so a file replaced by a FIFO or a device after it was listed fails here
/// instead of hanging. `O_NONBLOCK` changes nothing for reads of a regular file.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)?;
    let file_type = file.metadata()?.file_type();
    if file_type.is_file() {
        Ok(file)
    } else {
        Err(not_regular(file_type))
    }
}

/// The error for a path that is not a regular file (what `open_regular` refuses).
pub fn not_regular(file_type: fs::FileType) -> std::io::Error {
    let what = if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_dir() {
        "a directory"
    } else {
        "something else"
    };
    let why = if is_special(file_type) {
        ": imagespec never reads one (reading could block forever)"
    } else {
        ""
    };
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{what}, not a regular file{why}"),
    )
}

/// `O_NONBLOCK` (Linux and the BSDs agree on neither value: take the platform's).
#[cfg(target_os = "linux")]
const O_NONBLOCK: i32 = 0o4000;
#[cfg(not(target_os = "linux"))]
const O_NONBLOCK: i32 = 0x0004;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_out_of_the_root_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::os::unix::fs::symlink("/etc", dir.path().join("host"))?;
        let root = Root::new(dir.path(), LinkPolicy::StayInside)?;
        assert!(root.check_link(&dir.path().join("host")).is_err());
        Ok(())
    }

    #[test]
    fn written_paths_that_climb_out_are_not_links() {
        assert!(stays_inside(Path::new("a/b")));
        assert!(stays_inside(Path::new("./a/../b")));
        assert!(!stays_inside(Path::new("../a")));
        assert!(!stays_inside(Path::new("a/../../b")));
        assert!(!stays_inside(Path::new("/etc")));
    }

    #[test]
    fn links_inside_pass_links_outside_fail_dangling_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("root")).unwrap();
        fs::write(d.join("root/a"), "a").unwrap();
        fs::write(d.join("outside"), "o").unwrap();
        std::os::unix::fs::symlink("a", d.join("root/in")).unwrap();
        std::os::unix::fs::symlink("../outside", d.join("root/out")).unwrap();
        std::os::unix::fs::symlink("nowhere", d.join("root/dangling")).unwrap();
        let root = Root::new(&d.join("root"), LinkPolicy::StayInside).unwrap();
        assert!(root.check_link(&d.join("root/in")).unwrap());
        assert!(!root.check_link(&d.join("root/dangling")).unwrap());
        let err = root
            .check_link(&d.join("root/out"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("root/out") && err.contains("../outside"),
            "{err}"
        );
        let open = Root::new(&d.join("root"), LinkPolicy::AllowExternal).unwrap();
        assert!(open.check_link(&d.join("root/out")).unwrap());
    }

    #[test]
    fn a_link_on_the_way_of_a_written_path_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::os::unix::fs::symlink("/etc", d.join("etc")).unwrap();
        let root = Root::new(d, LinkPolicy::StayInside).unwrap();
        assert!(root.check_written("etc/hostname").is_err());
        assert!(root.check_written("etc").is_err());
        assert!(root.check_written("missing/x").is_ok());
        assert!(root.check_written("/etc").is_ok(), "absolute: not a link");
    }

    #[test]
    fn fifos_and_devices_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = open_regular(&fifo).unwrap_err();
        assert!(err.to_string().contains("a FIFO"), "{err}");
        let err = open_regular(Path::new("/dev/zero")).unwrap_err();
        assert!(err.to_string().contains("a device"), "{err}");
        assert!(open_regular(Path::new("/dev/null")).is_err());
    }
}
