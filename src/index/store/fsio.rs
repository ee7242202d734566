//! Durable file writes: atomic replacement (temp file + fsync + rename) and synced appends.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::index::IndexError;

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IndexError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(IndexError::io(&tmp))?;
    f.write_all(bytes).map_err(IndexError::io(&tmp))?;
    f.sync_all().map_err(IndexError::io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(IndexError::io(path))?;
    sync_parent(path)
}

/// Truncates `path` to `committed` bytes (dropping a torn tail left by a crash), appends
/// `bytes` and fsyncs.
pub(crate) fn append_synced(path: &Path, committed: u64, bytes: &[u8]) -> Result<(), IndexError> {
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(IndexError::io(path))?;
    let len = f.metadata().map_err(IndexError::io(path))?.len();
    if len < committed {
        return Err(IndexError::corrupt(
            path,
            format!("file has {len} bytes, the manifest records {committed}"),
        ));
    }
    f.set_len(committed).map_err(IndexError::io(path))?;
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(committed))
        .map_err(IndexError::io(path))?;
    f.write_all(bytes).map_err(IndexError::io(path))?;
    f.sync_all().map_err(IndexError::io(path))
}

/// Fsyncs the directory holding `path`, so that a rename or a new file survives a crash.
pub(crate) fn sync_parent(path: &Path) -> Result<(), IndexError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_dir(dir)
}

/// Fsyncs a directory (a no-op where directories cannot be opened, e.g. Windows).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), IndexError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(IndexError::io(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
