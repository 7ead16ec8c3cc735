//! Locks between the imagespec runs of one machine: an OS file lock (`flock`) per image
//! being made, in imagespec's cache directory, so that concurrent builds of specs sharing a
//! dependency image build and push it once; the others wait, then find it in the registry.
//! The lock is released when the holder ends in any way (also SIGKILL): a crashed run never
//! blocks the next one.
//!
//! `ImageLock::acquire(image, say)` waits (saying so) until the lock is free and holds it
//! until dropped: between it and the drop, check the registry again, build, push.

use crate::oci::{Digest, ImageRef};
use std::fs::{self, File};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a run waits for another one making the same image, unless
/// `IMAGESPEC_LOCK_TIMEOUT_SECS` says otherwise: as long as a daemon build may take.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(3 * 3600);

/// A lock that could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another imagespec run has been making {image} for {} s (lock {}): giving up; \
         raise IMAGESPEC_LOCK_TIMEOUT_SECS to wait longer",
        waited.as_secs(),
        path.display()
    )]
    Timeout {
        image: String,
        path: PathBuf,
        waited: Duration,
    },
}

/// Held while this run makes one image; released on drop.
#[derive(Debug)]
pub struct ImageLock {
    _file: Option<File>,
}

/// Where the lock files are: `<imagespec cache dir>/locks`.
fn lock_dir() -> PathBuf {
    crate::source::cache_home()
        .unwrap_or_else(|| std::env::temp_dir().join("imagespec"))
        .join("locks")
}

/// The lock file of `image`: its name is (the first 32 hex digits of) the digest of the
/// reference, with a readable prefix.
fn lock_path(image: &ImageRef) -> PathBuf {
    let digest = Digest::of_bytes(image.to_string().as_bytes());
    lock_dir().join(format!("image-{}.lock", &digest.hex()[..32]))
}

/// The wait bound: `IMAGESPEC_LOCK_TIMEOUT_SECS` when it is a number of seconds, else
/// [`DEFAULT_WAIT`].
fn wait_bound() -> Duration {
    std::env::var("IMAGESPEC_LOCK_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_WAIT, Duration::from_secs)
}

/// Whether an imagespec run on this machine holds the lock of `image` now (is making it):
/// `imagespec prune` leaves such an image's working tags alone.
pub fn is_held(image: &ImageRef) -> bool {
    let Ok(file) = File::open(lock_path(image)) else {
        return false;
    };
    matches!(file.try_lock(), Err(fs::TryLockError::WouldBlock))
}

impl ImageLock {
    /// Takes the lock of `image`, waiting (bounded) while another run holds it; `say` gets
    /// one line when the wait starts and one when it ends. When the lock file cannot be
    /// made at all (a read-only cache directory), the run goes on unlocked after saying so:
    /// coordination is a help, not a condition for building.
    pub async fn acquire(image: &ImageRef, say: impl Fn(&str)) -> Result<ImageLock, LockError> {
        let name = image.to_string();
        ImageLock::acquire_at(lock_path(image), &name, wait_bound(), say).await
    }

    async fn acquire_at(
        path: PathBuf,
        image: &str,
        bound: Duration,
        say: impl Fn(&str),
    ) -> Result<ImageLock, LockError> {
        let opened = path
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| {
                File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
            });
        let file = match opened {
            Ok(file) => file,
            Err(e) => {
                say(&format!(
                    "cannot create the lock {} ({e}): not coordinating with other imagespec runs",
                    path.display()
                ));
                return Ok(ImageLock { _file: None });
            }
        };
        let started = Instant::now();
        let mut announced = false;
        loop {
            match file.try_lock() {
                Ok(()) => {
                    if announced {
                        say(&format!(
                            "the other imagespec run is done with {image} (waited {} s)",
                            started.elapsed().as_secs()
                        ));
                    }
                    return Ok(ImageLock { _file: Some(file) });
                }
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => {
                    say(&format!(
                        "cannot lock {} ({e}): not coordinating with other imagespec runs",
                        path.display()
                    ));
                    return Ok(ImageLock { _file: None });
                }
            }
            if !announced {
                say(&format!(
                    "waiting for another imagespec building {image} (lock {})",
                    path.display()
                ));
                announced = true;
            }
            if started.elapsed() >= bound {
                return Err(LockError::Timeout {
                    image: image.to_string(),
                    path,
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_held_lock_makes_the_next_run_wait_bounded_then_take_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks/x.lock");
        let said = std::sync::Mutex::new(Vec::<String>::new());
        let say = |m: &str| said.lock().unwrap().push(m.to_string());
        let first = ImageLock::acquire_at(path.clone(), "img", Duration::ZERO, say)
            .await
            .unwrap();
        assert!(said.lock().unwrap().is_empty(), "no wait, nothing said");

        // flock locks of two open files conflict, also within one process.
        let waited = ImageLock::acquire_at(path.clone(), "img", Duration::from_millis(300), say)
            .await
            .unwrap_err();
        assert!(
            waited.to_string().contains("another imagespec run"),
            "{waited}"
        );
        assert!(said.lock().unwrap()[0].starts_with("waiting for another imagespec building img"));

        let release = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(first);
        };
        let (taken, ()) = tokio::join!(
            ImageLock::acquire_at(path.clone(), "img", Duration::from_secs(30), say),
            release
        );
        taken.unwrap();
        assert!(
            said.lock()
                .unwrap()
                .last()
                .unwrap()
                .contains("is done with img")
        );
    }

    #[test]
    fn lock_files_are_per_image_and_safe_names() {
        let path = |image: &str| lock_path(&image.parse().unwrap());
        let a = path("localhost:5000/app:deps-1");
        let b = path("localhost:5000/app:deps-2");
        assert_ne!(a, b);
        assert_eq!(a, path("localhost:5000/app:deps-1"));
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("image-") && name.ends_with(".lock"));
        assert!(!name.contains([':', '/']));
    }
}
