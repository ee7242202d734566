//! One writer per index directory, across processes: every writer (a serving process with
//! writes enabled, `ivt index build/add/remove/compact`) holds an OS advisory lock on
//! `<index>/LOCK` for as long as it may write, and writes its PID into the file so that a
//! refused writer can name the holder. Readers take no lock. The kernel releases the lock when
//! the holder exits, however it exits, so a stale PID in the file never blocks anyone.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::index::IndexError;

/// Name of the lock file inside an index directory.
pub const LOCK_FILE: &str = "LOCK";

/// How long a lock that this very process seems to hold is retried (see `acquire`).
const OWN_LOCK_GRACE: Duration = Duration::from_secs(2);
const RETRY_EVERY: Duration = Duration::from_millis(10);

/// The held writer lock of one index directory; released when dropped.
#[derive(Debug)]
pub struct WriterLock {
    // Held for its lock: closing the file releases it.
    _file: File,
    path: PathBuf,
}

impl WriterLock {
    /// Takes the writer lock of the index directory `dir` (which must exist), or fails at once
    /// with [`IndexError::Locked`] naming the PID of the process holding it.
    pub fn acquire(dir: &Path) -> Result<Self, IndexError> {
        let path = dir.join(LOCK_FILE);
        let mut file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
        {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(IndexError::NoIndex(dir.to_path_buf()))
            }
            r => r.map_err(IndexError::io(&path))?,
        };
        let own = format!("PID {}", std::process::id());
        let mut waited = Duration::ZERO;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let holder = holder(&path);
                    // The lock belongs to an open file, which a child process forked by another
                    // thread of this process shares until it execs: a lock this process just
                    // released can look held for that moment. Another process's lock, or ours
                    // still held after the grace period, is refused.
                    if holder != own || waited >= OWN_LOCK_GRACE {
                        return Err(IndexError::Locked {
                            path: dir.to_path_buf(),
                            holder,
                        });
                    }
                    std::thread::sleep(RETRY_EVERY);
                    waited += RETRY_EVERY;
                }
                Err(TryLockError::Error(e)) => return Err(IndexError::io(&path)(e)),
            }
        }
        // The PID is informative only (the lock is the kernel's): no fsync needed.
        file.set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(IndexError::io(&path))?;
        Ok(WriterLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Who holds the lock, as written in the lock file ("PID n", or unknown while the holder has
/// not written it yet).
fn holder(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => format!("PID {}", s.trim()),
        _ => "a process whose PID is not recorded yet".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = WriterLock::acquire(dir.path()).unwrap();
        let pid = std::process::id().to_string();
        match WriterLock::acquire(dir.path()) {
            Err(IndexError::Locked { holder, .. }) => assert_eq!(holder, format!("PID {pid}")),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        WriterLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn a_missing_directory_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            WriterLock::acquire(&missing),
            Err(IndexError::NoIndex(_))
        ));
        assert!(!missing.exists());
    }
}
