//! The manifest: what an index holds and how it was built. Rewriting it atomically is the
//! commit point of every change.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{fsio, HnswParams, IndexError};

/// Version of the on-disk layout written by this build.
pub const FORMAT_VERSION: u32 = 1;

/// How embeddings are stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VectorStorage {
    /// 4 bytes per value, exact.
    #[default]
    F32,
    /// 2 bytes per value: half the disk and page cache, cosine error below 1e-3.
    F16,
}

impl VectorStorage {
    /// Bytes per stored value.
    pub fn width(self) -> usize {
        match self {
            VectorStorage::F32 => 4,
            VectorStorage::F16 => 2,
        }
    }
}

/// A dump of the HNSW graph covering the first `points` slots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphDump {
    /// hnsw_rs basename: files `<basename>.hnsw.graph` and `<basename>.hnsw.data`.
    pub basename: String,
    /// Number of slots in the dump; slots added later are inserted again at load time.
    pub points: usize,
    /// Size of the `.hnsw.graph` file, to detect truncation before hnsw_rs reads it.
    pub graph_bytes: u64,
    /// Size of the `.hnsw.data` file.
    pub data_bytes: u64,
    /// Size of `<basename>.flat`, the compact form searches use (absent in indexes written
    /// before it existed: they are flattened when opened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flat_bytes: Option<u64>,
}

/// Everything needed to interpret an index directory; printed by `ivt index info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexManifest {
    /// On-disk layout version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Fingerprint (sha256 of config + weights) of the model that produced the embeddings.
    pub model_fingerprint: String,
    /// Embedding dimension.
    pub dim: usize,
    /// Live (searchable) images.
    pub count: usize,
    /// Stored rows, including removed ones until `compact`.
    pub slots: usize,
    /// Rows removed but not yet compacted away.
    pub removed: usize,
    /// Embedding storage precision.
    pub storage: VectorStorage,
    /// Similarity used by search.
    pub metric: String,
    /// HNSW parameters.
    pub hnsw: HnswParams,
    /// The persisted graph, if one was dumped.
    pub graph: Option<GraphDump>,
    /// Committed length of `records.jsonl` (bytes past it are a torn write).
    pub records_bytes: u64,
    /// When the index was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl IndexManifest {
    /// A manifest for a new, empty index.
    pub fn new(model_fingerprint: &str, dim: usize, hnsw: HnswParams) -> Self {
        let now = Utc::now();
        IndexManifest {
            format_version: FORMAT_VERSION,
            model_fingerprint: model_fingerprint.to_string(),
            dim,
            count: 0,
            slots: 0,
            removed: 0,
            storage: VectorStorage::F32,
            metric: "dot (cosine on L2-normalised vectors)".into(),
            hnsw,
            graph: None,
            records_bytes: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// Reads and checks `manifest.json` in `dir`.
    pub(crate) fn read(dir: &Path) -> Result<Self, IndexError> {
        let path = dir.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(IndexError::NotFound(path))
            }
            r => r.map_err(IndexError::io(&path))?,
        };
        let m: IndexManifest = serde_json::from_str(&text)
            .map_err(|e| IndexError::corrupt(&path, format!("invalid manifest JSON: {e}")))?;
        if m.format_version != FORMAT_VERSION {
            return Err(IndexError::FormatVersion {
                path,
                found: m.format_version,
                supported: FORMAT_VERSION,
            });
        }
        if m.dim == 0 || m.removed > m.slots {
            return Err(IndexError::corrupt(&path, "inconsistent counts"));
        }
        Ok(m)
    }

    /// Writes the manifest atomically (the commit point of a change).
    pub(crate) fn write(&mut self, dir: &Path) -> Result<(), IndexError> {
        self.updated_at = Utc::now();
        let json = serde_json::to_vec_pretty(self).expect("manifest serialises");
        fsio::write_atomic(&dir.join(MANIFEST_FILE), &json)
    }
}

/// File name of the manifest inside a generation directory.
pub(crate) const MANIFEST_FILE: &str = "manifest.json";
