//! [`GalleryIndex`]: the searchable, persisted gallery.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::index::search::flat::FlatGraph;
use crate::index::search::graph::{release_freed_heap, Graph};
use crate::index::store::duplicates::Duplicates;
use crate::index::store::embeddings::EmbeddingStore;
use crate::index::store::layout;
use crate::index::store::manifest::{IndexManifest, VectorStorage};
use crate::index::store::metadata::Metadata;
use crate::index::store::verify::{verify_generation, VerifyReport};
use crate::index::{GraphDump, HnswParams, ImageRecord, IndexError, WriterLock};

mod changes;
mod dump;
mod query;

/// A gallery of image embeddings with metadata, searchable by image or by person.
///
/// Searches take `&self` and may run concurrently; changes take `&mut self` and are durable
/// when they return (callers serialise them, e.g. behind an `RwLock`). Across processes, an
/// index opened for writing holds its directory's [`WriterLock`]; one opened with
/// [`GalleryIndex::open_read_only`] holds none and refuses changes.
pub struct GalleryIndex {
    /// Index root (holds `CURRENT` and the generation directories).
    root: PathBuf,
    /// The generation directory this instance reads and appends to.
    dir: PathBuf,
    manifest: IndexManifest,
    meta: Metadata,
    vectors: EmbeddingStore,
    /// Groups of slots with identical vectors, expanded by every search.
    dups: Duplicates,
    /// The dumped graph in its compact serving form, over slots `0..flat.len()`.
    flat: Option<FlatGraph>,
    /// A live hnsw_rs graph: over every slot while there is no `flat` (a build), else over the
    /// slots added since (`flat.len()..`). Removed slots are filtered out of both.
    graph: Option<Graph>,
    /// The directory's writer lock, shared with generations built from this instance
    /// (compaction); `None` when opened read-only.
    lock: Option<Arc<WriterLock>>,
}

impl GalleryIndex {
    /// Creates a new, empty index at `dir` (f32 storage) and persists it.
    pub fn create(
        dir: &Path,
        model_fingerprint: &str,
        dim: usize,
        params: HnswParams,
    ) -> Result<Self, IndexError> {
        Self::create_with_storage(dir, model_fingerprint, dim, params, VectorStorage::F32)
    }

    /// Like [`GalleryIndex::create`], choosing the embedding storage precision.
    pub fn create_with_storage(
        dir: &Path,
        model_fingerprint: &str,
        dim: usize,
        params: HnswParams,
        storage: VectorStorage,
    ) -> Result<Self, IndexError> {
        let lock = lock_creating(dir)?;
        if layout::exists(dir) {
            return Err(IndexError::AlreadyExists(dir.to_path_buf()));
        }
        let mut index = Self::build_locked(dir, model_fingerprint, dim, params, storage, lock)?;
        index.publish()?;
        Ok(index)
    }

    /// Starts a new generation in `dir` that stays invisible to `open` until
    /// [`GalleryIndex::publish`]; an existing index keeps serving meanwhile (to read-only
    /// processes: a writer holding the directory's lock makes this fail with `Locked`).
    pub fn begin_build(
        dir: &Path,
        model_fingerprint: &str,
        dim: usize,
        params: HnswParams,
        storage: VectorStorage,
    ) -> Result<Self, IndexError> {
        let lock = lock_creating(dir)?;
        Self::build_locked(dir, model_fingerprint, dim, params, storage, lock)
    }

    fn build_locked(
        dir: &Path,
        model_fingerprint: &str,
        dim: usize,
        params: HnswParams,
        storage: VectorStorage,
        lock: Arc<WriterLock>,
    ) -> Result<Self, IndexError> {
        if dim == 0 {
            return Err(IndexError::InvalidParams(
                "dimension must be positive".into(),
            ));
        }
        params.validate().map_err(IndexError::InvalidParams)?;
        let building = layout::new_building(dir)?;
        let mut manifest = IndexManifest::new(model_fingerprint, dim, params);
        manifest.storage = storage;
        manifest.write(&building)?;
        Self::load(dir, building, model_fingerprint, Some(lock))
    }

    /// Continues the build interrupted in `dir`, if any (`None` when there is none).
    pub fn resume_build(dir: &Path, model_fingerprint: &str) -> Result<Option<Self>, IndexError> {
        if !dir.is_dir() {
            return Ok(None);
        }
        let lock = Arc::new(WriterLock::acquire(dir)?);
        match layout::pending_build(dir)? {
            Some(building) => Self::load(dir, building, model_fingerprint, Some(lock)).map(Some),
            None => Ok(None),
        }
    }

    /// Makes this generation the live index of its directory (atomically) and removes older
    /// generations.
    pub fn publish(&mut self) -> Result<(), IndexError> {
        if self.is_building() {
            self.writable()?;
            self.insert_into_graph(self.graph_len());
            if self.graph_pending() > 0 {
                self.save_graph()?;
            }
            self.dir = layout::publish(&self.root, &self.dir)?;
            self.vectors = EmbeddingStore::open(
                &self.dir,
                self.manifest.dim,
                self.manifest.storage,
                self.manifest.slots,
            )?;
        }
        Ok(())
    }

    /// Opens the index at `dir` for reading and writing, taking its writer lock (held until
    /// the index is dropped); refuses an index built with another model.
    pub fn open(dir: &Path, model_fingerprint: &str) -> Result<Self, IndexError> {
        let lock = Arc::new(WriterLock::acquire(dir)?);
        let generation = layout::current(dir)?;
        Self::load(dir, generation, model_fingerprint, Some(lock))
    }

    /// Opens the index at `dir` for searching only: no lock is taken (a writer may hold it),
    /// and changes fail with [`IndexError::ReadOnly`]. Changes a writer makes later are not
    /// seen; a compaction's files stay readable while they are open.
    pub fn open_read_only(dir: &Path, model_fingerprint: &str) -> Result<Self, IndexError> {
        let generation = layout::current(dir)?;
        Self::load(dir, generation, model_fingerprint, None)
    }

    /// Opens the index at `dir` for writing whatever model built it: for maintenance that
    /// never compares embeddings with a model's (remove, compact).
    pub fn open_any(dir: &Path) -> Result<Self, IndexError> {
        let lock = Arc::new(WriterLock::acquire(dir)?);
        let generation = layout::current(dir)?;
        let fingerprint = IndexManifest::read(&generation)?.model_fingerprint;
        Self::load(dir, generation, &fingerprint, Some(lock))
    }

    /// Whether this instance was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.lock.is_none()
    }

    fn writable(&self) -> Result<&Arc<WriterLock>, IndexError> {
        self.lock
            .as_ref()
            .ok_or_else(|| IndexError::ReadOnly(self.root.clone()))
    }

    /// Deletes interrupted builds in `dir` (a fresh build does this instead of resuming).
    /// Returns how many were deleted.
    pub fn discard_pending_builds(dir: &Path) -> Result<usize, IndexError> {
        if !dir.is_dir() {
            return Ok(0);
        }
        let _lock = WriterLock::acquire(dir)?;
        let mut n = 0;
        while let Some(building) = layout::pending_build(dir)? {
            std::fs::remove_dir_all(&building).map_err(IndexError::io(&building))?;
            n += 1;
        }
        Ok(n)
    }

    /// Checks every file of the live generation of the index at `dir` against the checksums
    /// its manifest records, reading them whole (about 7 GB for a 1M x 768 f32 index). A
    /// damaged file is reported in the result, not as an error.
    pub fn verify(dir: &Path) -> Result<VerifyReport, IndexError> {
        verify_generation(&layout::current(dir)?)
    }

    /// [`GalleryIndex::verify`] for the generation this instance serves. Changes made
    /// meanwhile (by `&mut self` in another thread) can make a file look damaged: confirm a
    /// failure while holding the index.
    pub fn verify_files(&self) -> Result<VerifyReport, IndexError> {
        verify_generation(&self.dir)
    }

    /// Opens the index at `dir` after verifying all its files ([`GalleryIndex::verify`]):
    /// fails with `Corrupt` naming the first damaged file.
    pub fn open_verified(dir: &Path, model_fingerprint: &str) -> Result<Self, IndexError> {
        Self::verify(dir)?.into_result()?;
        Self::open(dir, model_fingerprint)
    }

    /// [`GalleryIndex::open_verified`], read-only ([`GalleryIndex::open_read_only`]).
    pub fn open_verified_read_only(
        dir: &Path,
        model_fingerprint: &str,
    ) -> Result<Self, IndexError> {
        Self::verify(dir)?.into_result()?;
        Self::open_read_only(dir, model_fingerprint)
    }

    /// Reads the manifest of the index at `dir` without loading it (for `ivt index info`).
    pub fn read_manifest(dir: &Path) -> Result<IndexManifest, IndexError> {
        IndexManifest::read(&layout::current(dir)?)
    }

    fn load(
        root: &Path,
        dir: PathBuf,
        model_fingerprint: &str,
        lock: Option<Arc<WriterLock>>,
    ) -> Result<Self, IndexError> {
        let manifest = IndexManifest::read(&dir)?;
        if manifest.model_fingerprint != model_fingerprint {
            return Err(IndexError::ModelMismatch {
                path: root.to_path_buf(),
                index_fingerprint: manifest.model_fingerprint.clone(),
                model_fingerprint: model_fingerprint.to_string(),
            });
        }
        if manifest.files.is_none() {
            tracing::warn!(index = %root.display(),
                "index written before file checksums: its files cannot be verified until its next change records them");
        }
        let meta = Metadata::read(&dir, &manifest)?;
        let vectors = EmbeddingStore::open(&dir, manifest.dim, manifest.storage, manifest.slots)?;
        let dups = Duplicates::of(&vectors);
        let flat = match &manifest.graph {
            Some(dump) => Some(load_flat(&dir, dump)?),
            None => None,
        };
        let mut index = GalleryIndex {
            root: root.to_path_buf(),
            dir,
            manifest,
            meta,
            vectors,
            dups,
            flat,
            graph: None,
            lock,
        };
        index.sync_counts();
        if !index.is_building() {
            index.insert_into_graph(index.graph_len());
        }
        // The records file and the parsing's temporaries are freed by now.
        release_freed_heap();
        Ok(index)
    }

    /// Slots the graphs cover (the flat graph's, then the live graph's).
    fn graph_len(&self) -> usize {
        self.flat.as_ref().map_or(0, FlatGraph::len) + self.graph.as_ref().map_or(0, Graph::len)
    }

    /// True for an unpublished generation: its graph is built in one parallel pass at publish
    /// time instead of batch by batch, and searches on it are exact.
    fn is_building(&self) -> bool {
        self.dir.extension().is_some_and(|e| e == "building")
    }

    /// Recomputes the manifest counts from the tombstones (the source of truth for removals).
    fn sync_counts(&mut self) {
        self.manifest.slots = self.meta.slots();
        self.manifest.removed = self.meta.removed();
        self.manifest.count = self.manifest.slots - self.manifest.removed;
    }

    /// Live (non-removed) images.
    pub fn len(&self) -> usize {
        self.manifest.count
    }

    /// True when no live image is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    /// Fingerprint of the model whose embeddings the index holds.
    pub fn fingerprint(&self) -> &str {
        &self.manifest.model_fingerprint
    }

    /// The manifest (format version, model, counts, HNSW parameters, ...).
    pub fn manifest(&self) -> &IndexManifest {
        &self.manifest
    }

    /// The index root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The generation directory this instance reads.
    pub(crate) fn generation_dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a live image has this id.
    pub fn contains(&self, image_id: &str) -> bool {
        self.meta.live_slot(image_id).is_some()
    }

    /// The record of a live image.
    pub fn record(&self, image_id: &str) -> Option<&ImageRecord> {
        self.meta.live_slot(image_id).map(|s| self.meta.record(s))
    }

    /// The stored embedding of a live image.
    pub fn embedding(&self, image_id: &str) -> Option<Vec<f32>> {
        self.meta.live_slot(image_id).map(|s| self.vectors.row(s))
    }

    /// All live records with their stored embeddings, in slot order (for rebuilds and exports).
    pub fn live_items(&self) -> impl Iterator<Item = (&ImageRecord, Vec<f32>)> + '_ {
        (0..self.meta.slots())
            .filter(|&s| self.meta.row(s).is_some_and(|r| !r.removed))
            .map(|s| (self.meta.record(s), self.vectors.row(s)))
    }
}

/// Creates `dir` if needed and takes its writer lock.
fn lock_creating(dir: &Path) -> Result<Arc<WriterLock>, IndexError> {
    std::fs::create_dir_all(dir).map_err(IndexError::io(dir))?;
    Ok(Arc::new(WriterLock::acquire(dir)?))
}

/// The dumped graph in its compact form: read from its `.flat` file, or (an index written
/// before that file existed) reloaded through hnsw_rs and flattened.
fn load_flat(dir: &Path, dump: &GraphDump) -> Result<FlatGraph, IndexError> {
    if let Some(bytes) = dump.flat_bytes {
        Graph::check_dump(dir, dump)?;
        let path = dir.join(format!("{}.flat", dump.basename));
        return FlatGraph::read(&path, bytes, dump.points);
    }
    let graph = Graph::load(dir, dump)?;
    let flat = graph.to_flat(dir);
    drop(graph);
    release_freed_heap();
    flat
}
