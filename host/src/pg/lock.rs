//! File locks that serialize initdb, start, stop and the creation of the
//! server's system user across processes.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use super::Error;

/// How long to wait for another process's initdb or start, which pg_ctl
/// bounds by its own timeout.
const LOCK_TIMEOUT: Duration = Duration::from_secs(300);

const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// An exclusive `flock` on a lock file, released on drop or when the
/// process exits.
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Takes the lock on `path`, creating the file if needed, and waits up to
    /// [`LOCK_TIMEOUT`] for a process that holds it.
    ///
    /// `flock` locks belong to an open file description, so two tasks of one
    /// process exclude each other as well.
    pub(crate) async fn acquire(path: &Path) -> Result<Self, Error> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|source| Error::io("open lock file", path, source))?;

        let started = Instant::now();
        let mut logged = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(FileLock { _file: file }),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(source)) => {
                    return Err(Error::io("lock", path, source));
                }
            }
            if started.elapsed() >= LOCK_TIMEOUT {
                return Err(Error::LockTimeout {
                    path: path.to_owned(),
                    secs: LOCK_TIMEOUT.as_secs(),
                });
            }
            if !logged {
                tracing::info!(lock = %path.display(), "waiting for another sandtable process to release its lock");
                logged = true;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lock_excludes_second_holder_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");

        let first = FileLock::acquire(&path).await.unwrap();
        let second = tokio::time::timeout(Duration::from_millis(300), FileLock::acquire(&path));
        assert!(
            second.await.is_err(),
            "second lock was granted while the first was held"
        );

        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), FileLock::acquire(&path));
        assert!(
            third.await.is_ok(),
            "lock was not granted after the holder dropped it"
        );
    }
}
