//! The gallery behind one small trait, so that the service and the CLI run unchanged on the
//! embedded index ([`EmbeddedGallery`], the default) or on Milvus
//! ([`MilvusGallery`](super::milvus::MilvusGallery)).

use std::collections::HashSet;
use std::path::Path;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::store::verify::verify_generation;
use super::GalleryIndex;
use super::HnswParams;
use super::ImageHit;
use super::ImageRecord;
use super::IndexError;
use super::PersonHit;
use super::SearchFilter;
use super::SearchParams;

/// A searchable gallery of image embeddings. Methods block (call them from a blocking context);
/// all take `&self`, and implementations make concurrent searches and changes safe.
pub trait GalleryBackend: Send + Sync {
    /// "embedded" or "milvus".
    fn kind(&self) -> &'static str;
    /// Where the gallery lives (a directory, or `milvus://host:port/collection`).
    fn location(&self) -> String;
    /// Fingerprint of the model whose embeddings the gallery holds.
    fn fingerprint(&self) -> String;
    /// Embedding dimension.
    fn dim(&self) -> usize;
    /// Live images (for Milvus: as of the last change or health check; no network call).
    fn len(&self) -> usize;
    /// True when the gallery holds no image.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The HNSW candidate list a search uses when it does not set one.
    fn default_ef(&self) -> usize;
    /// A live image's record and stored embedding (`None` when no live image has that id).
    fn image(&self, image_id: &str) -> Result<Option<(ImageRecord, Vec<f32>)>, IndexError>;
    /// The `top_k` images most similar to `query` that pass `filter`, best first.
    fn search_images(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: &SearchFilter,
    ) -> Result<Vec<ImageHit>, IndexError>;
    /// The `top_k` persons most similar to `query`, each scored by their best image that passes
    /// `filter`, with those images best first.
    fn search_persons(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: &SearchFilter,
    ) -> Result<Vec<PersonHit>, IndexError>;
    /// Adds images; fails without adding any when an id is already present or repeated.
    /// Returns the gallery size after the change.
    fn add(&self, items: Vec<(ImageRecord, Vec<f32>)>) -> Result<usize, IndexError>;
    /// Removes images by id and every image of the given persons, all or nothing: when an id
    /// is absent nothing is removed and [`IndexError::UnknownIds`] names the absent ids. Returns
    /// (images removed, gallery size after).
    fn remove(
        &self,
        image_ids: &[String],
        person_ids: &[String],
    ) -> Result<(usize, usize), IndexError>;
    /// Makes recent changes cheaper to reload (embedded: dump the graph; Milvus: flush).
    fn persist(&self) -> Result<(), IndexError>;
    /// Whether the gallery can serve right now (Milvus: the server answers and the collection
    /// exists); refreshes the cached size.
    fn check_health(&self) -> Result<(), IndexError>;
    /// Checks the stored files against their recorded checksums (embedded index; a remote
    /// backend checks its own storage): `Corrupt` names a damaged file.
    fn verify(&self) -> Result<(), IndexError> {
        Ok(())
    }
}

/// The embedded hnsw_rs index as a [`GalleryBackend`]: searches share a read lock, changes take
/// the write lock and are durable when they return.
pub struct EmbeddedGallery {
    index: RwLock<GalleryIndex>,
}

impl EmbeddedGallery {
    /// Wraps an open index.
    pub fn new(index: GalleryIndex) -> Self {
        Self {
            index: RwLock::new(index),
        }
    }

    /// Opens the index in `dir` for writing (taking its writer lock), or creates an empty one
    /// for this model when `dir` does not exist.
    pub fn open_or_create(dir: &Path, fingerprint: &str, dim: usize) -> Result<Self, IndexError> {
        let index = if dir.exists() {
            GalleryIndex::open(dir, fingerprint)?
        } else {
            tracing::info!(dir = %dir.display(), "no index yet: creating an empty one for this model");
            GalleryIndex::create(dir, fingerprint, dim, HnswParams::default())?
        };
        Self::checked(index, dim)
    }

    /// Opens the index in `dir` read-only: no writer lock, changes refused.
    pub fn open_read_only(dir: &Path, fingerprint: &str, dim: usize) -> Result<Self, IndexError> {
        Self::checked(GalleryIndex::open_read_only(dir, fingerprint)?, dim)
    }

    fn checked(index: GalleryIndex, dim: usize) -> Result<Self, IndexError> {
        if index.dim() != dim {
            return Err(IndexError::Dimension {
                expected: index.dim(),
                got: dim,
            });
        }
        Ok(Self::new(index))
    }

    fn read(&self) -> RwLockReadGuard<'_, GalleryIndex> {
        // A panic while holding the lock cannot leave the index half-changed on disk (changes
        // are committed by an atomic manifest write), so a poisoned lock is still usable.
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, GalleryIndex> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl GalleryBackend for EmbeddedGallery {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn location(&self) -> String {
        self.read().path().display().to_string()
    }

    fn fingerprint(&self) -> String {
        self.read().fingerprint().to_string()
    }

    fn dim(&self) -> usize {
        self.read().dim()
    }

    fn len(&self) -> usize {
        self.read().len()
    }

    fn default_ef(&self) -> usize {
        self.read().manifest().hnsw.ef_search
    }

    fn image(&self, image_id: &str) -> Result<Option<(ImageRecord, Vec<f32>)>, IndexError> {
        let index = self.read();
        Ok(index
            .record(image_id)
            .cloned()
            .zip(index.embedding(image_id)))
    }

    fn search_images(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: &SearchFilter,
    ) -> Result<Vec<ImageHit>, IndexError> {
        self.read().search_images(query, params, filter)
    }

    fn search_persons(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: &SearchFilter,
    ) -> Result<Vec<PersonHit>, IndexError> {
        self.read().search_persons(query, params, filter)
    }

    fn add(&self, items: Vec<(ImageRecord, Vec<f32>)>) -> Result<usize, IndexError> {
        let mut index = self.write();
        index.add(items)?;
        Ok(index.len())
    }

    fn remove(
        &self,
        image_ids: &[String],
        person_ids: &[String],
    ) -> Result<(usize, usize), IndexError> {
        let mut index = self.write();
        let missing_images: Vec<String> = image_ids
            .iter()
            .filter(|id| !index.contains(id))
            .cloned()
            .collect();
        let missing_persons: Vec<String> = if person_ids.is_empty() {
            Vec::new()
        } else {
            // The index has no person lookup; one scan per removal call is acceptable for a
            // rare, already write-locked operation.
            let live: HashSet<&str> = index
                .live_items()
                .map(|(r, _)| r.person_id.as_str())
                .collect();
            person_ids
                .iter()
                .filter(|id| !live.contains(id.as_str()))
                .cloned()
                .collect()
        };
        missing(&missing_images, &missing_persons)?;
        let mut removed = index.remove_images(image_ids)?;
        removed += index.remove_persons(person_ids)?;
        Ok((removed, index.len()))
    }

    fn persist(&self) -> Result<(), IndexError> {
        let mut index = self.write();
        let pending = index.graph_pending();
        if pending > 0 && !index.is_read_only() {
            index.save_graph()?;
            tracing::info!(pending, "graph saved");
        }
        Ok(())
    }

    fn check_health(&self) -> Result<(), IndexError> {
        Ok(())
    }

    /// Verifies without holding the index, so that searches and changes go on meanwhile; a
    /// change made during the pass can look like damage, so a failure is confirmed while
    /// holding the index (changes wait for that second pass only).
    fn verify(&self) -> Result<(), IndexError> {
        let dir = self.read().generation_dir().to_path_buf();
        let report = verify_generation(&dir)?;
        if !report.ok {
            self.read().verify_files()?.into_result()?;
        }
        tracing::info!(generation = %dir.display(), files = report.files.len(),
            bytes = report.bytes_read, seconds = report.seconds, checksummed = report.checksummed,
            "index files verified");
        Ok(())
    }
}

/// [`IndexError::UnknownIds`] naming the absent ids, or `Ok` when none is absent.
pub(crate) fn missing(images: &[String], persons: &[String]) -> Result<(), IndexError> {
    let mut parts = Vec::new();
    if !images.is_empty() {
        parts.push(format!("image ids {}", super::validate::list_ids(images)));
    }
    if !persons.is_empty() {
        parts.push(format!("person ids {}", super::validate::list_ids(persons)));
    }
    if parts.is_empty() {
        Ok(())
    } else {
        Err(IndexError::UnknownIds(format!(
            "{} not in the gallery; nothing removed",
            parts.join(" and ")
        )))
    }
}
