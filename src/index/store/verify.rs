//! Verification of a generation's files against the checksums its manifest records
//! (`ivt index verify`, CLI commands before they open an index, and the server's background
//! check after start-up).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::checksum::{mismatch, FileSum};
use super::embeddings::EmbeddingStore;
use super::manifest::{self_crc, MANIFEST_FILE};
use super::metadata::RECORDS_FILE;
use crate::index::IndexError;
use crate::index::IndexManifest;

/// The outcome for one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileCheck {
    /// File name inside the generation directory.
    pub file: String,
    /// Bytes the checksum covers.
    pub bytes: u64,
    /// Whether the file matches its checksum.
    pub ok: bool,
    /// What is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome of verifying every file of an index generation.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The generation directory verified.
    pub generation: PathBuf,
    /// False for an index written before checksums existed (nothing could be checked).
    pub checksummed: bool,
    /// True when no file is damaged.
    pub ok: bool,
    /// One entry per file, the manifest first.
    pub files: Vec<FileCheck>,
    /// Bytes read.
    pub bytes_read: u64,
    /// Wall time of the pass.
    pub seconds: f64,
}

impl VerifyReport {
    /// The damaged files.
    pub fn damaged(&self) -> impl Iterator<Item = &FileCheck> {
        self.files.iter().filter(|f| !f.ok)
    }

    /// `Ok` when nothing is damaged, else [`IndexError::Corrupt`] naming the first damaged file
    /// (and the others in its message).
    pub fn into_result(self) -> Result<Self, IndexError> {
        let damaged: Vec<&FileCheck> = self.damaged().collect();
        let Some((first, others)) = damaged.split_first() else {
            return Ok(self);
        };
        let mut message = first.error.clone().unwrap_or_default();
        if !others.is_empty() {
            let names: Vec<&str> = others.iter().map(|f| f.file.as_str()).collect();
            message.push_str(&format!("; also damaged: {}", names.join(", ")));
        }
        Err(IndexError::corrupt(
            self.generation.join(&first.file),
            message,
        ))
    }
}

/// Checks every file of the generation in `dir` against its manifest.
pub(crate) fn verify_generation(dir: &Path) -> Result<VerifyReport, IndexError> {
    let start = Instant::now();
    let path = dir.join(MANIFEST_FILE);
    let bytes = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IndexError::NoIndex(path))
        }
        r => r.map_err(IndexError::io(&path))?,
    };
    let mut report = VerifyReport {
        generation: dir.to_path_buf(),
        checksummed: true,
        ok: true,
        files: Vec::new(),
        bytes_read: bytes.len() as u64,
        seconds: 0.0,
    };
    let manifest = serde_json::from_slice::<IndexManifest>(&bytes);
    let manifest_error = match &manifest {
        Err(e) => Some(format!("invalid manifest JSON: {e}")),
        Ok(m) => match (&m.manifest_crc32, self_crc(&bytes)) {
            (None, _) if m.files.is_none() => None,
            (Some(recorded), Some(actual)) if *recorded == actual => None,
            (recorded, actual) => Some(format!(
                "checksum mismatch (crc32 {}, the file records {}): the file is damaged",
                actual.as_deref().unwrap_or("none"),
                recorded.as_deref().unwrap_or("none")
            )),
        },
    };
    report.files.push(FileCheck {
        file: MANIFEST_FILE.into(),
        bytes: bytes.len() as u64,
        ok: manifest_error.is_none(),
        error: manifest_error,
    });
    match manifest {
        Ok(IndexManifest {
            files: Some(files), ..
        }) => {
            for (name, recorded) in files {
                let check = check_file(dir, &name, recorded);
                report.bytes_read += check.bytes;
                report.files.push(check);
            }
        }
        Ok(_) => report.checksummed = false,
        Err(_) => {}
    }
    report.ok = report.files.iter().all(|f| f.ok);
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// Files appended to: their checksum covers the committed prefix, later bytes are a torn append.
fn is_appended(name: &str) -> bool {
    name == RECORDS_FILE
        || [
            crate::index::VectorStorage::F32,
            crate::index::VectorStorage::F16,
        ]
        .iter()
        .any(|s| name == EmbeddingStore::file_name(*s))
}

fn check_file(dir: &Path, name: &str, recorded: FileSum) -> FileCheck {
    let path = dir.join(name);
    let error = match FileSum::of_file(&path, Some(recorded.bytes)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("missing".to_string()),
        Err(e) => Some(format!("cannot read: {e}")),
        Ok((_, actual)) if actual != recorded => Some(mismatch(recorded, actual)),
        Ok((len, _)) if len != recorded.bytes && !is_appended(name) => Some(format!(
            "{len} bytes, the manifest records {} (replaced or appended to)",
            recorded.bytes
        )),
        Ok(_) => None,
    };
    FileCheck {
        file: name.to_string(),
        bytes: recorded.bytes,
        ok: error.is_none(),
        error,
    }
}
