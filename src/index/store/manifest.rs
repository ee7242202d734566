//! The manifest: what an index holds and how it was built. Rewriting it atomically is the
//! commit point of every change.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::checksum::FileSum;
use super::fsio;
use crate::index::HnswParams;
use crate::index::IndexError;

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
    /// Size and CRC-32 of every other file of the generation, by file name (`None` in indexes
    /// written before checksums existed: recorded at their next change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<BTreeMap<String, FileSum>>,
    /// CRC-32 of this file as written with this value set to `00000000` (hex; last field, so
    /// it is found as the file's last `"manifest_crc32"` key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_crc32: Option<String>,
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
            files: Some(BTreeMap::new()),
            manifest_crc32: None,
        }
    }

    /// Records `name`'s checksum (no-op in an index written before checksums, until
    /// [`IndexManifest::files`] is filled in).
    pub(crate) fn set_sum(&mut self, name: &str, sum: FileSum) {
        if let Some(files) = &mut self.files {
            files.insert(name.to_string(), sum);
        }
    }

    /// Extends `name`'s checksum by appended bytes.
    pub(crate) fn extend_sum(&mut self, name: &str, appended: FileSum) {
        if let Some(files) = &mut self.files {
            let sum = files.entry(name.to_string()).or_default();
            *sum = sum.then(appended);
        }
    }

    /// The recorded checksum of `name`.
    pub(crate) fn sum(&self, name: &str) -> Option<FileSum> {
        self.files.as_ref()?.get(name).copied()
    }

    /// Reads and checks `manifest.json` in `dir` (its own checksum included).
    pub(crate) fn read(dir: &Path) -> Result<Self, IndexError> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(IndexError::NoIndex(path))
            }
            r => r.map_err(IndexError::io(&path))?,
        };
        let m: IndexManifest = serde_json::from_slice(&bytes)
            .map_err(|e| IndexError::corrupt(&path, format!("invalid manifest JSON: {e}")))?;
        if m.files.is_some() && m.manifest_crc32.is_none() {
            return Err(IndexError::corrupt(
                &path,
                "records file checksums but not its own: the file is damaged",
            ));
        }
        if let Some(recorded) = &m.manifest_crc32 {
            let actual = self_crc(&bytes);
            if actual.as_deref() != Some(recorded.as_str()) {
                let found = actual.unwrap_or_else(|| "none".into());
                return Err(IndexError::corrupt(
                    &path,
                    format!("checksum mismatch (crc32 {found}, the file records {recorded}): the file is damaged"),
                ));
            }
        }
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

    /// Writes the manifest atomically (the commit point of a change) with its own checksum.
    /// An index written before checksums stays without them until they are all filled in.
    pub(crate) fn write(&mut self, dir: &Path) -> Result<(), IndexError> {
        self.updated_at = Utc::now();
        self.manifest_crc32 = self.files.is_some().then(|| PLACEHOLDER.to_string());
        let mut json = serde_json::to_vec_pretty(self).expect("manifest serialises");
        if let Some(at) = crc_value_at(&json) {
            let crc = format!("{:08x}", crc32fast::hash(&json));
            json[at..at + 8].copy_from_slice(crc.as_bytes());
            self.manifest_crc32 = Some(crc);
        }
        fsio::write_atomic(&dir.join(MANIFEST_FILE), &json)
    }
}

/// The checksum's value while the manifest's own checksum is computed.
const PLACEHOLDER: &str = "00000000";
/// How the checksum's key and the start of its value are written.
const CRC_KEY: &[u8] = b"\"manifest_crc32\": \"";

/// Offset of the 8 hex digits of the manifest's checksum in its JSON text.
fn crc_value_at(json: &[u8]) -> Option<usize> {
    let key = json.windows(CRC_KEY.len()).rposition(|w| w == CRC_KEY)?;
    let at = key + CRC_KEY.len();
    (json.len() >= at + 8).then_some(at)
}

/// The checksum a manifest's text should record: its CRC-32 with the recorded value replaced
/// by the placeholder (`None` without a checksum key).
pub(crate) fn self_crc(json: &[u8]) -> Option<String> {
    let at = crc_value_at(json)?;
    let mut copy = json.to_vec();
    copy[at..at + 8].copy_from_slice(PLACEHOLDER.as_bytes());
    Some(format!("{:08x}", crc32fast::hash(&copy)))
}

/// File name of the manifest inside a generation directory.
pub(crate) const MANIFEST_FILE: &str = "manifest.json";
