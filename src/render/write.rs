//! Writing a [`BuildPlan`]'s or an [`EnvdPlan`]'s context to a directory.
//!
//! `render -o DIR` hands DIR to `docker build DIR` (or `envd build`), which sends every file
//! in it: a file left from an earlier render (a source file since deleted, anything else put
//! there) would be built into the image under a tag that does not account for it. So a
//! render goes only into an empty (or missing) directory, or, when asked
//! ([`Existing::Replace`]), into one it empties first.

use crate::plan::{BUILD_ENVD, BuildPlan, ContextFile, EnvdPlan};
use crate::source::layer::SparseFile;
use std::fs;
use std::io::Write;
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
    #[error(
        "{} is a symbolic link (to {}) where the context needs a directory: imagespec does \
         not write through it (it could lead outside the output); remove the link",
        path.display(),
        target.display()
    )]
    Link { path: PathBuf, target: PathBuf },
}

/// What to do with entries already in the directory a context is rendered into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse a directory that is not empty.
    Refuse,
    /// Remove everything in it first (but never the spec's own inputs).
    Replace,
}

/// The `render_into` method of a plan with `files` and a `write` method, with these docs:
/// the same for [`BuildPlan`] and [`EnvdPlan`].
macro_rules! render_into {
    ($(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn render_into(
            &self,
            dir: &Path,
            existing: Existing,
            inputs: &[PathBuf],
        ) -> Result<(), WriteError> {
            prepare_dir(dir, existing, &self.files, inputs)?;
            self.write(dir)
        }
    };
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

    render_into! {
        /// [`BuildPlan::write`] into a directory that holds nothing else afterwards: `dir`
        /// must be empty or missing, or is emptied first with [`Existing::Replace`]. `inputs`
        /// are further paths the spec reads (the spec file, `source_root`) besides the
        /// context's own sources, which `Replace` refuses to delete.
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

    render_into! {
        /// [`EnvdPlan::write`] into a directory that holds nothing else afterwards (as
        /// [`BuildPlan::render_into`]).
    }
}

impl BuildPlan {
    /// The sparse files the context copies: the image layer a builder makes of them holds
    /// their holes as zeros (see `SparseFile`).
    pub fn sparse_files(&self) -> Vec<SparseFile> {
        copied_sparse_files(&self.files)
    }
}

impl EnvdPlan {
    /// The sparse files the context copies (as [`BuildPlan::sparse_files`]).
    pub fn sparse_files(&self) -> Vec<SparseFile> {
        copied_sparse_files(&self.files)
    }
}

fn copied_sparse_files(files: &[ContextFile]) -> Vec<SparseFile> {
    crate::source::layer::sparse_files(files.iter().filter_map(|file| match file {
        ContextFile::Copy { from, .. } => Some(from.as_path()),
        _ => None,
    }))
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
        WriteError::Io {
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
                    return Err(WriteError::Link {
                        target: fs::read_link(&path).map_err(io_error(&path))?,
                        path,
                    });
                }
                Ok(_) => {
                    return Err(WriteError::Io {
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
/// its permission bits and its holes; a FIFO or device is refused, never read.
fn copy_file(from: &Path, target: &Path) -> Result<(), WriteError> {
    use std::os::unix::fs::PermissionsExt;
    let mut source = crate::source::untrusted::open_regular(from).map_err(io_error(from))?;
    let meta = source.metadata().map_err(io_error(from))?;
    let mode = meta.permissions().mode() & 0o7777;
    let mut out = create_new(target)?;
    copy_keeping_holes(&mut source, &mut out, meta.len()).map_err(io_error(from))?;
    out.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_error(target))
}

/// Copies the first `len` bytes of `source` to the empty `out`, keeping the holes of a
/// sparse file: only its data (`SEEK_DATA` to `SEEK_HOLE`) is copied, the rest left
/// unwritten and the length set at the end, so a 20 GiB disk image holding 12 KiB stays
/// 12 KiB on disk. `std::io::copy` and `std::fs::copy` use `copy_file_range`, which writes
/// holes out as zeros on a file system without reflinks (ext4), as `cp --sparse=never`.
/// Where holes cannot be asked for, the file is copied whole.
fn copy_keeping_holes(source: &mut fs::File, out: &mut fs::File, len: u64) -> std::io::Result<()> {
    use rustix::fs::{SeekFrom, seek};
    use std::io::{Read, Seek};
    let mut at = 0;
    while at < len {
        let data = match seek(&*source, SeekFrom::Data(at)) {
            Ok(data) => data.min(len),
            // Nothing but a hole from `at` to the end.
            Err(rustix::io::Errno::NXIO) => break,
            Err(_) if at == 0 => {
                source.rewind()?;
                std::io::copy(&mut (&*source).take(len), out)?;
                break;
            }
            Err(e) => return Err(e.into()),
        };
        let hole = seek(&*source, SeekFrom::Hole(data))?.min(len);
        source.seek(std::io::SeekFrom::Start(data))?;
        out.seek(std::io::SeekFrom::Start(data))?;
        let copied = std::io::copy(&mut (&*source).take(hole - data), out)?;
        if copied < hole - data {
            // Shorter than it was: the rest reads as zeros, as a hole.
            break;
        }
        at = hole.max(data + 1);
    }
    out.set_len(len)
}

/// The fixed modification time of every context entry (1980-01-01, as flytekit's own tars):
/// the same files give the same COPY layers, whenever they were checked out.
pub const CONTEXT_MTIME: u64 = 315_532_800;

/// A context entry's content, read when the tar is written.
enum TarSource<'a> {
    File(&'a Path),
    Bytes(Vec<u8>),
    Dir,
}

/// Reads exactly `size` bytes: a file that grew or shrank since it was stat'ed fails the
/// tar instead of corrupting it (a tar entry's size is written before its bytes).
struct Exactly<R> {
    inner: R,
    left: u64,
    path: PathBuf,
}

impl<R: std::io::Read> std::io::Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::other(format!(
                "{} changed while the build context was sent: {} bytes missing",
                self.path.display(),
                self.left
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

impl BuildPlan {
    /// The context as an uncompressed tar written to `out` as it is made (files are read
    /// one at a time, never held whole), entries sorted, with fixed times and owners and
    /// the files' own permission bits, for sending to a builder.
    pub fn write_context_tar(&self, out: impl std::io::Write) -> Result<(), WriteError> {
        // Sorted by path; a later file replaces an earlier one at the same path, and the
        // Dockerfile comes last, as when the context is written to disk.
        let mut entries: std::collections::BTreeMap<String, TarSource> = Default::default();
        for file in &self.files {
            match file {
                ContextFile::Copy { from, to } => {
                    entries.insert(to.clone(), TarSource::File(from));
                }
                ContextFile::Content { to, content } => {
                    entries.insert(to.clone(), TarSource::Bytes(content.clone().into_bytes()));
                }
                ContextFile::Dir { to } => {
                    entries.insert(format!("{to}/"), TarSource::Dir);
                }
            }
        }
        // The builder pulls from the mirrors; the Dockerfile on disk and the dependency key
        // keep the spec's names.
        entries.insert(
            "Dockerfile".into(),
            TarSource::Bytes(crate::render::dockerfile(&self.pulled()).into_bytes()),
        );
        let mut builder = tar::Builder::new(out);
        for (path, source) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(CONTEXT_MTIME);
            header.set_uid(0);
            header.set_gid(0);
            let tar_error = |source| WriteError::Io {
                path: PathBuf::from(&path),
                source,
            };
            match source {
                TarSource::File(from) => {
                    use std::os::unix::fs::PermissionsExt;
                    // Follows links, as the copy to a directory does; never a FIFO or a
                    // device: it would block, or never end.
                    let file =
                        crate::source::untrusted::open_regular(from).map_err(io_error(from))?;
                    let meta = file.metadata().map_err(io_error(from))?;
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(meta.permissions().mode() & 0o7777);
                    header.set_size(meta.len());
                    let reader = Exactly {
                        inner: std::io::BufReader::with_capacity(1 << 16, file),
                        left: meta.len(),
                        path: from.to_path_buf(),
                    };
                    builder
                        .append_data(&mut header, &path, reader)
                        .map_err(io_error(from))?;
                }
                TarSource::Bytes(bytes) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(0o644);
                    header.set_size(bytes.len() as u64);
                    builder
                        .append_data(&mut header, &path, bytes.as_slice())
                        .map_err(tar_error)?;
                }
                TarSource::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    builder
                        .append_data(&mut header, &path, std::io::empty())
                        .map_err(tar_error)?;
                }
            }
        }
        builder
            .into_inner()
            .and_then(|mut out| out.flush())
            .map_err(|source| WriteError::Io {
                path: PathBuf::from("<context tar>"),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn plan(dir: &Path) -> BuildPlan {
        fs::create_dir_all(dir.join("src/pkg")).unwrap();
        fs::write(dir.join("src/pkg/main.py"), "print('x')\n").unwrap();
        fs::write(dir.join("src/run.sh"), "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.join("src/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        let text = "name = \"x\"\nsource_root = \"src\"\nsource_copy_mode = \"all\"\n";
        let file = crate::SpecFile::parse(&dir.join("spec.toml"), text).unwrap();
        let (_, spec) = file.select(None).unwrap();
        let tag = crate::tag::compute(spec, &Default::default()).unwrap();
        BuildPlan::new(spec, &tag, &Default::default()).unwrap()
    }

    /// The streamed tar holds what a render writes to disk, byte for byte, with the files'
    /// modes, sorted.
    #[test]
    fn the_context_tar_holds_the_rendered_context() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path());
        let mut tar_bytes = Vec::new();
        plan.write_context_tar(&mut tar_bytes).unwrap();
        let rendered = dir.path().join("ctx");
        plan.write(&rendered).unwrap();

        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            if entry.header().entry_type() == tar::EntryType::Regular {
                let mut body = Vec::new();
                entry.read_to_end(&mut body).unwrap();
                assert_eq!(body, fs::read(rendered.join(&name)).unwrap(), "{name}");
            }
            assert_eq!(entry.header().mtime().unwrap(), CONTEXT_MTIME);
            if name.ends_with("run.sh") {
                assert_eq!(entry.header().mode().unwrap(), 0o755);
            }
            names.push(name);
        }
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert!(names.contains(&"Dockerfile".to_string()), "{names:?}");
        assert!(
            names.iter().any(|n| n.ends_with("pkg/main.py")),
            "{names:?}"
        );
    }

    /// A sparse file is copied with its holes (a few blocks on disk, not its length) and
    /// the same bytes; a file without holes, and one that is all hole, too.
    #[test]
    fn copies_keep_the_holes_of_sparse_files() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        /// What a file holds: its name, its data (offset, bytes), its length.
        type Case<'a> = (&'a str, &'a [(u64, &'a [u8])], u64);
        let cases: [Case; 4] = [
            (
                "data, hole, data, hole",
                &[(0, b"head"), (16 << 20, b"middle")],
                64 << 20,
            ),
            (
                "hole, data at the end",
                &[((32 << 20) - 3, b"end")],
                32 << 20,
            ),
            ("all hole", &[], 48 << 20),
            ("dense", &[(0, &[9u8; 100_000])], 100_000),
        ];
        for (what, data, len) in cases {
            let from = dir.path().join("from");
            let file = fs::File::create(&from).unwrap();
            file.set_len(len).unwrap();
            for (at, bytes) in data {
                std::os::unix::fs::FileExt::write_all_at(&file, bytes, *at).unwrap();
            }
            drop(file);
            let to = dir.path().join("to");
            let _ = fs::remove_file(&to);
            copy_file(&from, &to).unwrap();
            assert!(fs::read(&from).unwrap() == fs::read(&to).unwrap(), "{what}");
            let (a, b) = (fs::metadata(&from).unwrap(), fs::metadata(&to).unwrap());
            assert_eq!(b.len(), len, "{what}");
            assert!(
                b.blocks() <= a.blocks() + 8,
                "{what}: {} blocks, {} in the source",
                b.blocks(),
                a.blocks()
            );
        }
    }

    /// The sparse files a context copies are named (the builders warn with them); the
    /// others are not.
    #[test]
    fn a_plan_names_its_sparse_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(plan(dir.path()).sparse_files(), []);
        let holes = dir.path().join("src/pkg/disk.img");
        fs::File::create(&holes).unwrap().set_len(4 << 20).unwrap();
        let found = plan(dir.path()).sparse_files();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].path.ends_with("pkg/disk.img"), "{found:?}");
        assert_eq!((found[0].apparent, found[0].on_disk), (4 << 20, 0));
    }

    /// A link planted where the context needs a directory is refused, naming where it
    /// points; nothing is written through it.
    #[test]
    fn a_link_where_a_directory_goes_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path());
        let out = dir.path().join("ctx");
        let victim = dir.path().join("victim");
        fs::create_dir_all(&out).unwrap();
        fs::create_dir_all(&victim).unwrap();
        std::os::unix::fs::symlink(&victim, out.join("src")).unwrap();
        let err = plan.write(&out).unwrap_err();
        assert!(
            matches!(&err, WriteError::Link { path, target } if *path == out.join("src") && *target == victim),
            "{err}"
        );
        assert_eq!(fs::read_dir(&victim).unwrap().count(), 0);
    }

    /// A file that is shorter than stat said when it is sent fails the tar (a tar entry's
    /// size is written first), instead of sending a corrupt context.
    #[test]
    fn a_file_shorter_than_its_header_fails() {
        let mut reader = Exactly {
            inner: &b"abc"[..],
            left: 5,
            path: PathBuf::from("src/x.py"),
        };
        let mut out = Vec::new();
        let err = reader.read_to_end(&mut out).unwrap_err();
        assert!(err.to_string().contains("src/x.py changed"), "{err}");
        let mut exact = Exactly {
            inner: &b"abcdef"[..],
            left: 3,
            path: PathBuf::from("y"),
        };
        let mut out = Vec::new();
        exact.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc", "never more than the header says");
    }
}
