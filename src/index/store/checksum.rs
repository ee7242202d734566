//! File checksums recorded in the manifest: CRC-32 (crc32fast, 20-27 GB/s here with the CPU's
//! carry-less multiply) of each file's committed bytes. CRC-32 rather than a faster-to-verify
//! hash because CRCs combine: appending to the embeddings or records costs the CRC of the new
//! bytes only, never a re-read of a multi-gigabyte file.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::index::IndexError;

/// Read size while checksumming a file.
const CHUNK: usize = 8 << 20;

/// Size and CRC-32 of a file's first `bytes` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileSum {
    /// Bytes covered (a file may be longer: bytes past a committed length are a torn append).
    pub bytes: u64,
    /// CRC-32 (IEEE) of those bytes.
    pub crc32: u32,
}

impl FileSum {
    /// The checksum of `data`.
    pub fn of(data: &[u8]) -> Self {
        FileSum {
            bytes: data.len() as u64,
            crc32: crc32fast::hash(data),
        }
    }

    /// The checksum of this file's bytes followed by `more`'s (CRC combination: O(log n), no
    /// re-read).
    pub fn then(self, more: FileSum) -> Self {
        let mut h = crc32fast::Hasher::new_with_initial_len(self.crc32, self.bytes);
        h.combine(&crc32fast::Hasher::new_with_initial_len(
            more.crc32, more.bytes,
        ));
        FileSum {
            bytes: self.bytes + more.bytes,
            crc32: h.finalize(),
        }
    }

    /// Checksums the first `bytes` bytes of `path` (all of it when `None`). Returns the file's
    /// length with the sum; the sum covers fewer bytes when the file is shorter.
    pub fn of_file(path: &Path, bytes: Option<u64>) -> std::io::Result<(u64, FileSum)> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        let want = bytes.unwrap_or(len).min(len);
        let mut h = crc32fast::Hasher::new();
        let mut buf = vec![0u8; CHUNK.min(want as usize).max(1)];
        let mut left = want;
        while left > 0 {
            let n = (left as usize).min(buf.len());
            f.read_exact(&mut buf[..n])?;
            h.update(&buf[..n]);
            left -= n as u64;
        }
        drop_cached(&f, len);
        Ok((
            len,
            FileSum {
                bytes: want,
                crc32: h.finalize(),
            },
        ))
    }
}

/// Fails with `Corrupt` naming `path` unless `actual` is the recorded checksum (`None`: nothing
/// recorded, an index written before checksums).
pub(crate) fn check_sum(
    path: &Path,
    recorded: Option<FileSum>,
    actual: FileSum,
) -> Result<(), IndexError> {
    match recorded {
        Some(r) if r != actual => Err(IndexError::corrupt(path, mismatch(r, actual))),
        _ => Ok(()),
    }
}

/// How a checksum mismatch is reported.
pub(crate) fn mismatch(recorded: FileSum, actual: FileSum) -> String {
    if actual.bytes < recorded.bytes {
        format!(
            "truncated: {} bytes, the manifest records {}",
            actual.bytes, recorded.bytes
        )
    } else {
        format!(
            "checksum mismatch (crc32 {:08x} over {} bytes, the manifest records {:08x}): the file is damaged",
            actual.crc32, actual.bytes, recorded.crc32
        )
    }
}

/// Asks the kernel to drop the file's clean cached pages: a verification pass over a large
/// gallery should not push the pages searches use out of memory. Pages other processes or the
/// index itself use are simply read again when needed.
fn drop_cached(f: &File, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: advisory call on a valid descriptor; it changes no memory of ours.
        unsafe {
            libc::posix_fadvise(f.as_raw_fd(), 0, len as i64, libc::POSIX_FADV_DONTNEED);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (f, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_combine_like_one_pass_and_files_sum_their_prefix() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let (a, b) = data.split_at(37_123);
        assert_eq!(FileSum::of(a).then(FileSum::of(b)), FileSum::of(&data));
        assert_eq!(FileSum::default().then(FileSum::of(a)), FileSum::of(a));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, &data).unwrap();
        assert_eq!(
            FileSum::of_file(&path, Some(a.len() as u64)).unwrap(),
            (data.len() as u64, FileSum::of(a))
        );
        assert_eq!(FileSum::of_file(&path, None).unwrap().1, FileSum::of(&data));
    }
}
