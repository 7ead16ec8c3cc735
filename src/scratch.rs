//! Temporary files and folders of a run ("scratch"): what a run writes before the result is
//! complete, so that an interrupted run leaves nothing a later one could mistake for it.
//!
//! Every scratch entry is named `.imagespec-tmp-<kind>-<random>` and holds an OS file lock
//! (`flock`) for as long as this process uses it. It is removed when its value is dropped
//! (an error path), when SIGINT/SIGTERM ends the run ([`install_signal_handler`]: the
//! handler removes every registered entry, then exits 130/143), and, when a run was killed
//! outright (SIGKILL, a crash, a power cut), by the next run that creates scratch in the
//! same directory: the lock died with its owner, so an entry whose lock can be taken is a
//! leftover ([`sweep`]). Nothing is guessed from process ids, which another process, or
//! another PID namespace sharing the directory, may reuse.
//!
//! ```
//! use imagespec::scratch::ScratchFile;
//! let dir = tempfile::tempdir()?;
//! let scratch = ScratchFile::new_in(dir.path(), "blob")?;
//! std::fs::write(scratch.path(), b"complete")?;
//! scratch.persist(&dir.path().join("result"))?;
//! assert_eq!(std::fs::read(dir.path().join("result"))?, b"complete");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Writes `bytes` to `path`, an entry of a cache, through a scratch file in its directory
/// (made when missing) renamed over it: a reader finds the whole entry or none, and a
/// killed run leaves only scratch ([`sweep`]). Best effort: a cache that cannot be written
/// only costs a later miss.
pub fn keep_in_cache(path: &Path, bytes: &[u8]) {
    let Some(dir) = path.parent() else { return };
    let write = || -> io::Result<()> {
        fs::create_dir_all(dir)?;
        let scratch = ScratchFile::new_in(dir, "cache")?;
        fs::write(scratch.path(), bytes)?;
        scratch.rename_to(path)
    };
    let _ = write();
}

/// The name every scratch entry starts with. The source walk skips names with it (a run's
/// own temporary files, with `TMPDIR` inside `source_root`, are not source files).
pub const PREFIX: &str = ".imagespec-tmp-";

/// The entries this process has made and not yet removed or persisted. Creating, persisting
/// and removing happen under this lock, so the signal handler (which holds it until the
/// process exits) never misses an entry created at the same moment.
fn registry() -> MutexGuard<'static, HashSet<PathBuf>> {
    static REGISTRY: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    locked(&REGISTRY)
}

/// Directories this process has already swept: once per directory is enough.
fn swept() -> MutexGuard<'static, HashSet<PathBuf>> {
    static SWEPT: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    locked(&SWEPT)
}

/// The set in `cell`, locked (a poisoned lock still holds a usable set).
fn locked(
    cell: &'static OnceLock<Mutex<HashSet<PathBuf>>>,
) -> MutexGuard<'static, HashSet<PathBuf>> {
    cell.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn remove_entry(path: &Path) {
    // Best effort: what cannot be removed now is a leftover the next run sweeps.
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            // Other threads of this run may still be writing into it (a signal ends the run
            // while blobs download): a file made after the walk leaves the folder not empty.
            // A few more tries, a moment apart, catch those; what is left is swept later.
            for _ in 0..5 {
                match fs::remove_dir_all(path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    _ => break,
                }
            }
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Whether `locked` (an open handle on `path`) still names the entry at `path`: a sweeper
/// may have removed a fresh entry between its creation and its lock.
fn still_there(locked: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (locked.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// Opens the scratch entry `path` (a file or a folder) to lock it, never through a link and
/// never blocking: a name that looks like scratch but is a link or a FIFO (planted in an
/// output directory, or in a shared `TMPDIR`) is not ours, and opening a FIFO would wait
/// forever for a writer.
fn open_entry(path: &Path) -> io::Result<File> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)?;
    let file_type = file.metadata()?.file_type();
    if file_type.is_file() || file_type.is_dir() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file or a folder", path.display()),
        ))
    }
}

/// Makes a scratch entry in `dir` with `create`, locks it and registers it; retried when a
/// concurrent sweep took the fresh entry for a leftover.
fn create_locked<T>(
    dir: &Path,
    kind: &str,
    mode: Option<u32>,
    create: impl Fn(&tempfile::Builder) -> io::Result<(T, PathBuf)>,
) -> io::Result<(T, File, PathBuf)> {
    sweep(dir);
    let prefix = format!("{PREFIX}{kind}-");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(mode));
    }
    for _ in 0..16 {
        let mut registered = registry();
        let (value, path) = create(&builder)?;
        let lock = match open_entry(&path) {
            Ok(lock) => lock,
            // Removed by another run's sweep before it could be locked: try a new name.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                remove_entry(&path);
                return Err(e);
            }
        };
        match lock.try_lock() {
            Ok(()) if still_there(&lock, &path) => {
                registered.insert(path.clone());
                return Ok((value, lock, path));
            }
            // Taken for a leftover by another run's sweep: it removes it; try a new name.
            Ok(()) | Err(fs::TryLockError::WouldBlock) => continue,
            Err(fs::TryLockError::Error(e)) => {
                remove_entry(&path);
                return Err(e);
            }
        }
    }
    Err(io::Error::other(format!(
        "{}: could not create a temporary entry (removed by another process each time)",
        dir.display()
    )))
}

/// A scratch file, removed on drop unless persisted.
#[derive(Debug)]
pub struct ScratchFile {
    path: PathBuf,
    file: File,
    _lock: File,
    persisted: bool,
}

impl ScratchFile {
    /// Creates an empty file `.imagespec-tmp-<kind>-<random>` in `dir` (created if
    /// missing), after sweeping the leftovers of killed runs there. Only its owner may
    /// read it (mode 0600): a layer of source files in a shared `TMPDIR` is nobody else's.
    pub fn new_in(dir: &Path, kind: &str) -> io::Result<ScratchFile> {
        Self::create(dir, kind, None)
    }

    /// [`ScratchFile::new_in`] for a file that becomes an output once persisted (a blob, an
    /// archive, `index.json`): created with mode 0666 less the umask (0644 under the usual
    /// 022), as `docker save`, `skopeo copy` and a shell's `>` make their files, instead of
    /// a temporary file's 0600, which a rename would carry over.
    pub fn for_output_in(dir: &Path, kind: &str) -> io::Result<ScratchFile> {
        Self::create(dir, kind, Some(0o666))
    }

    fn create(dir: &Path, kind: &str, mode: Option<u32>) -> io::Result<ScratchFile> {
        fs::create_dir_all(dir)?;
        let (file, lock, path) = create_locked(dir, kind, mode, |builder| {
            let (file, path) = builder.tempfile_in(dir)?.keep().map_err(|e| e.error)?;
            Ok((file, path))
        })?;
        Ok(ScratchFile {
            path,
            file,
            _lock: lock,
            persisted: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file, open for reading and writing.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Flushes the file to disk and renames it to `target` (replacing what is there): the
    /// target is either as before or complete, also after a power cut.
    pub fn persist(self, target: &Path) -> io::Result<()> {
        self.file.sync_all()?;
        self.rename_to(target)
    }

    /// Renames the file to `target` (replacing what is there) without flushing it to disk:
    /// for a cache entry, which a power cut may lose but a reader never finds half written.
    fn rename_to(mut self, target: &Path) -> io::Result<()> {
        let mut registered = registry();
        fs::rename(&self.path, target)?;
        registered.remove(&self.path);
        self.persisted = true;
        Ok(())
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        if !self.persisted {
            let mut registered = registry();
            remove_entry(&self.path);
            registered.remove(&self.path);
        }
    }
}

/// A scratch folder, removed with its contents on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
    _lock: File,
}

impl ScratchDir {
    /// Creates a folder `.imagespec-tmp-<kind>-<random>` in `dir` (created if missing),
    /// after sweeping the leftovers of killed runs there.
    pub fn new_in(dir: &Path, kind: &str) -> io::Result<ScratchDir> {
        fs::create_dir_all(dir)?;
        let ((), lock, path) = create_locked(dir, kind, None, |builder| {
            Ok(((), builder.tempdir_in(dir)?.keep()))
        })?;
        Ok(ScratchDir { path, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Unregistered first, removed outside the registry's lock: a folder of thousands
        // of files takes a while, and other scratch entries are made meanwhile. Should the
        // run end before it is gone, its lock goes with the process and the next run's
        // sweep removes the rest.
        registry().remove(&self.path);
        remove_entry(&self.path);
    }
}

/// Whether `name` is a scratch entry's (of this or any run).
pub fn is_scratch_name(name: &str) -> bool {
    name.starts_with(PREFIX)
}

/// Removes the scratch entries in `dir` that no process holds: leftovers of runs that were
/// killed before they could remove them. Once per directory and process; best effort.
pub fn sweep(dir: &Path) {
    let key = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !swept().insert(key) {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_str().is_some_and(is_scratch_name) {
            continue;
        }
        let path = entry.path();
        // Never a link or a FIFO: not made by a run, and a FIFO would block the open.
        let Ok(handle) = open_entry(&path) else {
            continue;
        };
        // Taken: its owner is gone (the lock dies with the process). Held: in use.
        if handle.try_lock().is_ok() {
            remove_entry(&path);
        }
    }
}

/// Removes every registered entry and ends the process with `code`, holding the registry
/// lock so that no entry is created meanwhile.
fn remove_all_and_exit(code: i32) -> ! {
    let registered = registry();
    eprintln!(
        "interrupted: removing {} temporary file(s) and folder(s)",
        registered.len()
    );
    for path in registered.iter() {
        remove_entry(path);
    }
    std::process::exit(code)
}

/// On SIGINT or SIGTERM: remove this run's scratch entries, then exit 130 or 143 (128 +
/// the signal, as a shell reports it). Call once, early; later calls do nothing.
pub fn install_signal_handler() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // A thread of its own with a small runtime: signals are handled the same whether
        // the command runs async code or not, and while the main runtime is busy.
        let ready = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("imagespec-signals".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build();
                let Ok(runtime) = runtime else { return };
                runtime.block_on(async move {
                    use tokio::signal::unix::{SignalKind, signal};
                    let (Ok(mut int), Ok(mut term)) = (
                        signal(SignalKind::interrupt()),
                        signal(SignalKind::terminate()),
                    ) else {
                        return;
                    };
                    let _ = ready.0.send(());
                    let code = tokio::select! {
                        _ = int.recv() => 130,
                        _ = term.recv() => 143,
                    };
                    remove_all_and_exit(code);
                });
            });
        // Wait until the handlers are in place, so a signal right after this call is caught.
        if spawned.is_ok() {
            let _ = ready.1.recv_timeout(std::time::Duration::from_secs(5));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn dropped_entries_are_removed_and_persisted_ones_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let file = ScratchFile::new_in(dir.path(), "blob").unwrap();
        let folder = ScratchDir::new_in(dir.path(), "staging").unwrap();
        fs::write(folder.path().join("inside"), "x").unwrap();
        assert!(
            names(dir.path()).iter().all(|n| is_scratch_name(n)),
            "{:?}",
            names(dir.path())
        );
        assert_eq!(names(dir.path()).len(), 2);
        drop(file);
        drop(folder);
        assert!(names(dir.path()).is_empty());
        assert!(registry().iter().all(|p| !p.starts_with(dir.path())));

        let file = ScratchFile::new_in(dir.path(), "blob").unwrap();
        std::io::Write::write_all(&mut file.file(), b"done").unwrap();
        file.persist(&dir.path().join("final")).unwrap();
        assert_eq!(names(dir.path()), ["final"]);
        assert_eq!(fs::read(dir.path().join("final")).unwrap(), b"done");
    }

    /// Entries named like scratch that a run never makes (a FIFO, a link) are left alone
    /// and never opened: a FIFO would block the open, a link lead elsewhere.
    #[test]
    fn sweeping_leaves_fifos_and_links_alone() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join(format!("{PREFIX}blob-fifo"));
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(format!("{PREFIX}blob-link"))).unwrap();
        let (done, wait) = std::sync::mpsc::channel();
        let at = dir.path().to_path_buf();
        std::thread::spawn(move || {
            let _ = done.send(ScratchFile::new_in(&at, "blob").map(drop));
        });
        wait.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the sweep blocked on a FIFO")
            .unwrap();
        assert_eq!(
            names(dir.path()),
            [
                format!("{PREFIX}blob-fifo"),
                format!("{PREFIX}blob-link"),
                "victim".to_string()
            ]
        );
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
    }

    /// Output files are created 0666 less the umask (the mode a rename keeps); private
    /// scratch 0600.
    #[test]
    fn output_files_are_0666_less_the_umask_and_private_ones_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        File::create(&probe).unwrap();
        let usual = fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
        let mode = |f: &ScratchFile| fs::metadata(f.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode(&ScratchFile::for_output_in(dir.path(), "out").unwrap()),
            usual
        );
        assert_eq!(
            mode(&ScratchFile::new_in(dir.path(), "layer").unwrap()),
            0o600
        );
    }

    #[test]
    fn sweeping_removes_unlocked_leftovers_and_keeps_live_entries() {
        let dir = tempfile::tempdir().unwrap();
        // A leftover of a killed run: named like scratch, nobody holds its lock.
        fs::write(dir.path().join(format!("{PREFIX}blob-dead")), "partial").unwrap();
        fs::create_dir(dir.path().join(format!("{PREFIX}staging-dead"))).unwrap();
        fs::write(dir.path().join("user-file"), "keep").unwrap();
        // A live entry of another run: its lock is held (here by another open file).
        let live = dir.path().join(format!("{PREFIX}blob-live"));
        fs::write(&live, "in use").unwrap();
        let holder = File::open(&live).unwrap();
        holder.try_lock().unwrap();

        let mine = ScratchFile::new_in(dir.path(), "blob").unwrap();
        let mut left = names(dir.path());
        left.retain(|n| Path::new(n) != mine.path().file_name().unwrap());
        assert_eq!(
            left,
            [format!("{PREFIX}blob-live"), "user-file".to_string()]
        );
        drop(holder);
    }
}
