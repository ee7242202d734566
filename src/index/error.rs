//! The index layer's error type.

use std::path::PathBuf;

/// Errors creating, opening, searching or changing a gallery index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// There is no index at this directory (it, or its `CURRENT` or manifest, does not exist).
    #[error("no gallery index at {0}: build one with `ivt index build`")]
    NoIndex(PathBuf),
    /// A directory that should be created already holds an index.
    #[error("an index already exists at {0}; remove it or pick another directory")]
    AlreadyExists(PathBuf),
    /// A file of the index is damaged, truncated or inconsistent with the manifest.
    #[error("corrupt index file {path}: {message}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The index was built with another model (its embeddings are not comparable).
    #[error(
        "index at {path} was built with model {index_fingerprint}, but the loaded model is \
         {model_fingerprint}; rebuild the index with this model or load the model it was built with"
    )]
    ModelMismatch {
        /// The index directory.
        path: PathBuf,
        /// Fingerprint recorded in the index manifest.
        index_fingerprint: String,
        /// Fingerprint of the model the caller uses.
        model_fingerprint: String,
    },
    /// The index format is newer (or older) than this program understands.
    #[error("index at {path} has format version {found}; this build reads version {supported}")]
    FormatVersion {
        /// The index directory.
        path: PathBuf,
        /// Version in the manifest.
        found: u32,
        /// Version this build reads and writes.
        supported: u32,
    },
    /// An image id is already present in the index (or twice in one batch).
    #[error("image id {} is already in the index", super::validate::quote_id(.0))]
    DuplicateImageId(String),
    /// A record is unusable (e.g. an empty image id).
    #[error("invalid image record: {0}")]
    InvalidRecord(String),
    /// A record exceeds a size limit (id, path or attribute length, attribute count; see
    /// [`ImageRecord::check_sizes`](super::ImageRecord::check_sizes)).
    #[error("image record too large: {0}")]
    RecordTooLarge(String),
    /// A search filter cannot be satisfied as written (e.g. `from` after `to`).
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    /// Search parameters are out of range (e.g. `top_k` = 0).
    #[error("invalid search parameters: {0}")]
    InvalidParams(String),
    /// A vector has the wrong number of dimensions.
    #[error("embedding has {got} dimensions, the index holds {expected}-dimensional vectors")]
    Dimension {
        /// The index dimension.
        expected: usize,
        /// The dimension given.
        got: usize,
    },
    /// A vector contains NaN or infinite values.
    #[error("embedding contains NaN or infinite values")]
    NonFinite,
    /// The HNSW graph could not be built, dumped or reloaded.
    #[error("HNSW graph error in {path}: {message}")]
    Graph {
        /// The index directory.
        path: PathBuf,
        /// What hnsw_rs reported.
        message: String,
    },
    /// Ids asked for (e.g. to remove) that the gallery does not hold.
    #[error("not found: {0}")]
    UnknownIds(String),
    /// The gallery server (Milvus) cannot be reached; retried with backoff before this.
    #[error("gallery backend unavailable: {0}")]
    Unavailable(String),
    /// The gallery server (Milvus) refused or failed an operation.
    #[error("gallery backend error: {0}")]
    Backend(String),
    /// Another process (or another open index in this one) holds the index's writer lock.
    #[error(
        "index at {path} is locked by another writer ({holder}); stop it first, or open the \
         index read-only (`ivt serve --read-only`)"
    )]
    Locked {
        /// The index directory.
        path: PathBuf,
        /// Who holds the lock (its PID, from the lock file).
        holder: String,
    },
    /// A change was asked of an index opened read-only.
    #[error("index at {0} is open read-only: changes are refused")]
    ReadOnly(PathBuf),
    /// Reading or writing a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl IndexError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> IndexError {
        let path = path.into();
        move |source| IndexError::Io { path, source }
    }

    /// A corruption error for `path`.
    pub(crate) fn corrupt(path: impl Into<PathBuf>, message: impl Into<String>) -> IndexError {
        IndexError::Corrupt {
            path: path.into(),
            message: message.into(),
        }
    }
}
