//! [`GalleryIndex`]: the searchable, persisted gallery.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::checksum::FileSum;
use super::duplicates::Duplicates;
use super::embeddings::EmbeddingStore;
use super::filter::CompiledFilter;
use super::flat::FlatGraph;
use super::graph::{release_freed_heap, Graph};
use super::hits::persons_by_widening;
use super::manifest::{IndexManifest, VectorStorage};
use super::metadata::{encode_records, Metadata, RECORDS_FILE, TOMBSTONES_FILE};
use super::validate::{check_new_items, check_search};
use super::verify::{verify_generation, VerifyReport};
use super::{exact, layout, HnswParams, ImageHit, ImageRecord, IndexError, PersonHit};
use super::{SearchFilter, SearchParams, WriterLock};

/// Rows copied per `add` while compacting (bounds the memory of one batch).
const COMPACT_BATCH: usize = 4096;

/// Vectors copied out of the store per parallel graph insertion.
const GRAPH_INSERT_CHUNK: usize = 16_384;

/// Upper bound on how much a filter widens the HNSW candidate list.
const MAX_EF_WIDENING: usize = 8;

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

    /// Inserts slots `from..` into the graph (those added after the last dump), creating the
    /// graph if needed.
    fn insert_into_graph(&mut self, from: usize) {
        let slots = self.meta.slots();
        if from >= slots {
            return;
        }
        let graph = self
            .graph
            .get_or_insert_with(|| Graph::new(&self.manifest.hnsw, slots - from));
        // In chunks, so a bulk build never holds a second copy of every vector.
        for start in (from..slots).step_by(GRAPH_INSERT_CHUNK) {
            let end = (start + GRAPH_INSERT_CHUNK).min(slots);
            let rows: Vec<Vec<f32>> = (start..end).map(|s| self.vectors.row(s)).collect();
            let items: Vec<(&[f32], usize)> = rows
                .iter()
                .zip(start..end)
                .map(|(v, s)| (v.as_slice(), s))
                .collect();
            graph.insert(&items);
        }
    }

    /// Slots in the graph that its last dump does not cover (re-inserted at every open).
    pub fn graph_pending(&self) -> usize {
        let dumped = self.manifest.graph.as_ref().map_or(0, |g| g.points);
        self.meta.slots().saturating_sub(dumped)
    }

    /// Dumps the graph so that opening the index needs no re-insertion; the old dump is
    /// deleted once the manifest points at the new one. Afterwards the graph is held in its
    /// compact form only.
    pub fn save_graph(&mut self) -> Result<(), IndexError> {
        self.writable()?;
        if self.graph_pending() == 0 && self.graph.is_none() {
            return Ok(());
        }
        if let (Some(_), Some(dump)) = (&self.flat, &self.manifest.graph) {
            // Adding to the dumped graph needs hnsw_rs's own form of it: reload that (for the
            // duration of this call) and insert the slots added since.
            let full = Graph::load(&self.dir, dump)?;
            self.flat = None;
            self.graph = Some(full);
            self.insert_into_graph(self.graph_len());
        }
        let Some(graph) = &self.graph else {
            return Ok(());
        };
        let basename = format!("graph-{:09}", graph.len());
        let mut dump = graph.dump(&self.dir, &basename)?;
        let flat = graph.to_flat(&self.dir)?;
        let flat_sum = flat.write(&self.dir.join(format!("{}.flat", dump.basename)))?;
        dump.flat_bytes = Some(flat_sum.bytes);
        let mut manifest = self.manifest.clone();
        record_missing_sums(&self.dir, &mut manifest)?;
        if let (Some(old), Some(files)) = (&manifest.graph, &mut manifest.files) {
            for name in graph_files(&old.basename) {
                files.remove(&name);
            }
        }
        let [graph_file, data_file, flat_file] = graph_files(&dump.basename);
        for name in [&graph_file, &data_file] {
            let path = self.dir.join(name);
            let (_, sum) = FileSum::of_file(&path, None).map_err(IndexError::io(&path))?;
            manifest.set_sum(name, sum);
        }
        manifest.set_sum(&flat_file, flat_sum);
        let old = manifest.graph.replace(dump.clone());
        manifest.write(&self.dir)?;
        self.manifest = manifest;
        self.flat = Some(flat);
        self.graph = None;
        release_freed_heap();
        if let Some(old) = old.filter(|o| o.basename != dump.basename) {
            for name in graph_files(&old.basename) {
                // A leftover file only wastes disk space; the manifest no longer names it.
                let _ = std::fs::remove_file(self.dir.join(name));
            }
        }
        Ok(())
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

    /// The `top_k` images most similar to `query` that pass `filter`, best first.
    pub fn search_images(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: &SearchFilter,
    ) -> Result<Vec<ImageHit>, IndexError> {
        self.check_query(query, params, filter)?;
        let found = self.search_slots(query, params.top_k, params, filter);
        Ok(self.to_hits(found))
    }

    /// The `top_k` persons most similar to `query` (each scored by their best image that passes
    /// `filter`, with those images listed best first).
    pub fn search_persons(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: &SearchFilter,
    ) -> Result<Vec<PersonHit>, IndexError> {
        self.check_query(query, params, filter)?;
        persons_by_widening(params.top_k, self.len(), usize::MAX, |k| {
            Ok(self.to_hits(self.search_slots(query, k, params, filter)))
        })
    }

    fn check_query(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: &SearchFilter,
    ) -> Result<(), IndexError> {
        check_search(query, self.dim(), params, filter)
    }

    /// The best `k` slots (with scores) for a query.
    fn search_slots(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams,
        filter: &SearchFilter,
    ) -> Vec<(usize, f32)> {
        let compiled = CompiledFilter::new(&self.meta, &self.dups, filter);
        let found = self.search_distinct(query, k, params, &compiled);
        self.dups.expand(found, k, |s| compiled.allows(s))
    }

    /// [`GalleryIndex::search_slots`] before copies of the slots found are added.
    fn search_distinct(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams,
        compiled: &CompiledFilter,
    ) -> Vec<(usize, f32)> {
        if params.exact || (self.flat.is_none() && self.graph.is_none()) {
            return exact::search_all(&self.vectors, query, k, &|s| compiled.allows(s));
        }
        // Fraction of the graph's points that may be returned (tombstones and filter aside).
        let slots = self.meta.slots().max(1) as f64;
        let mut allowed_fraction = self.len() as f64 / slots;
        if !compiled.is_trivial() {
            let allowed: Vec<usize> = (0..self.meta.slots())
                .filter(|&s| compiled.allows(s))
                .collect();
            // A selective filter: scoring the few allowed rows beats walking the graph, where
            // they may be too sparse to be found.
            if (allowed.len() as f64) < self.manifest.hnsw.exact_filter_fraction * self.len() as f64
            {
                return exact::search_slots(&self.vectors, query, k, &allowed);
            }
            allowed_fraction = allowed.len() as f64 / slots;
        }
        let ef = params.ef.unwrap_or(self.manifest.hnsw.ef_search).max(k);
        // Filtered-out nodes still occupy the candidate list: widen it so that about `ef` of
        // the candidates can pass (bounded, since very selective filters are exact above).
        let widened = (ef as f64 / allowed_fraction.max(1e-6)).ceil() as usize;
        let ef = widened.clamp(ef, ef * MAX_EF_WIDENING);
        let needs_filter =
            !compiled.is_trivial() || compiled.excludes_images() || self.meta.removed() > 0;
        let Some(graph) = &self.graph else {
            return self.search_flat(query, k, ef, needs_filter.then_some(compiled));
        };
        let filter: Option<&dyn hnsw_rs::prelude::FilterT> =
            if needs_filter { Some(compiled) } else { None };
        let found = graph.search(query, k, ef, filter);
        if self.flat.is_some() {
            // `graph` holds only the slots added since the dump: merge with the flat graph's.
            let added: Vec<usize> = found.into_iter().map(|(slot, _)| slot).collect();
            let mut best = exact::search_slots(&self.vectors, query, k, &added);
            best.extend(self.search_flat(query, k, ef, needs_filter.then_some(compiled)));
            return exact::top_k(best, k);
        }
        // Re-score with exact search's dot product so graph and exact results carry identical
        // scores. With f32 storage the graph holds the very same vectors: scoring from them
        // leaves the embeddings file untouched, so a serving process keeps one copy of the
        // vectors in memory, not two (the kernel maps 64 KiB around every page read).
        if self.manifest.storage == VectorStorage::F32 && found.iter().all(|(_, v)| v.is_some()) {
            let scored = found
                .iter()
                .filter_map(|(slot, v)| v.as_ref().map(|v| (*slot, exact::dot(query, v))));
            return exact::top_k(scored, k);
        }
        let slots: Vec<usize> = found.into_iter().map(|(slot, _)| slot).collect();
        exact::search_slots(&self.vectors, query, k, &slots)
    }

    /// Searches the flat graph, scoring rows of the embeddings store as exact search does.
    fn search_flat(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&CompiledFilter>,
    ) -> Vec<(usize, f32)> {
        let Some(flat) = &self.flat else {
            return Vec::new();
        };
        let mut scorer = exact::RowScorer::new(&self.vectors, query);
        let allow = |s: usize| filter.is_none_or(|f| f.walk_allows(s));
        flat.search(&mut |s| scorer.score(s), k, ef, &allow)
    }

    fn to_hits(&self, found: Vec<(usize, f32)>) -> Vec<ImageHit> {
        found
            .into_iter()
            .map(|(slot, score)| ImageHit {
                record: self.meta.record(slot).clone(),
                score,
            })
            .collect()
    }

    /// Adds images with their embeddings; durable (fsynced) when it returns. Fails without
    /// changing anything if an id is already live or repeated, or a vector is malformed.
    pub fn add(&mut self, items: Vec<(ImageRecord, Vec<f32>)>) -> Result<(), IndexError> {
        self.writable()?;
        self.check_new_items(&items)?;
        if items.is_empty() {
            return Ok(());
        }
        let records: Vec<&ImageRecord> = items.iter().map(|(r, _)| r).collect();
        let lines = encode_records(&records);
        let vectors: Vec<&[f32]> = items.iter().map(|(_, v)| v.as_slice()).collect();
        let mut manifest = self.manifest.clone();
        record_missing_sums(&self.dir, &mut manifest)?;
        super::fsio::append_synced(
            &self.dir.join(RECORDS_FILE),
            self.manifest.records_bytes,
            &lines,
        )?;
        manifest.extend_sum(RECORDS_FILE, FileSum::of(&lines));
        let appended = self.vectors.append(&vectors)?;
        manifest.extend_sum(EmbeddingStore::file_name(manifest.storage), appended);
        manifest.records_bytes += lines.len() as u64;
        manifest.slots += items.len();
        manifest.count += items.len();
        manifest.write(&self.dir)?;
        self.manifest = manifest;
        let first = self.meta.slots();
        self.dups.extend(&self.vectors, first);
        for (record, _) in items {
            self.meta.push(record);
        }
        if !self.is_building() {
            self.insert_into_graph(first);
        }
        Ok(())
    }

    fn check_new_items(&self, items: &[(ImageRecord, Vec<f32>)]) -> Result<(), IndexError> {
        check_new_items(items, self.dim(), |id| self.contains(id))
    }

    /// Rebuilds the index without its removed images (a new generation, made live atomically)
    /// and returns it. `self` keeps answering from the old, now superseded files.
    pub fn compact(&self) -> Result<GalleryIndex, IndexError> {
        let m = &self.manifest;
        let lock = self.writable()?.clone();
        let mut next = Self::build_locked(
            &self.root,
            &m.model_fingerprint,
            m.dim,
            m.hnsw.clone(),
            m.storage,
            lock,
        )?;
        let live: Vec<usize> = (0..self.meta.slots())
            .filter(|&s| self.meta.row(s).is_some_and(|r| !r.removed))
            .collect();
        let copied = live.chunks(COMPACT_BATCH).try_for_each(|chunk| {
            let items = chunk
                .iter()
                .map(|&s| (self.meta.record(s).clone(), self.vectors.row(s)))
                .collect();
            next.add(items)
        });
        match copied.and_then(|()| next.publish()) {
            Ok(()) => Ok(next),
            Err(e) => {
                next.discard();
                Err(e)
            }
        }
    }

    /// Deletes an unpublished generation (a failed build or compaction).
    pub fn discard(self) {
        if self.is_building() {
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                tracing::warn!(path = %self.dir.display(), error = %e, "cannot remove unfinished index");
            }
        }
    }

    /// Removes images by id (unknown ids are ignored); durable when it returns. Returns how
    /// many were removed.
    pub fn remove_images(&mut self, image_ids: &[String]) -> Result<usize, IndexError> {
        let slots: Vec<usize> = image_ids
            .iter()
            .filter_map(|id| self.meta.live_slot(id))
            .collect();
        self.remove_slots(&slots)
    }

    /// Removes every image of the given persons; durable when it returns. Returns how many
    /// images were removed.
    pub fn remove_persons(&mut self, person_ids: &[String]) -> Result<usize, IndexError> {
        let codes: Vec<u32> = person_ids
            .iter()
            .filter_map(|p| self.meta.person_code(p))
            .collect();
        let slots = self.meta.live_slots_of_persons(&codes);
        self.remove_slots(&slots)
    }

    fn remove_slots(&mut self, slots: &[usize]) -> Result<usize, IndexError> {
        self.writable()?;
        let removed = slots.iter().filter(|&&s| self.meta.mark_removed(s)).count();
        if removed == 0 {
            return Ok(0);
        }
        record_missing_sums(&self.dir, &mut self.manifest)?;
        let sum = self.meta.write_tombstones(&self.dir)?;
        self.manifest.set_sum(TOMBSTONES_FILE, sum);
        self.sync_counts();
        self.manifest.write(&self.dir)?;
        Ok(removed)
    }
}

/// Creates `dir` if needed and takes its writer lock.
fn lock_creating(dir: &Path) -> Result<Arc<WriterLock>, IndexError> {
    std::fs::create_dir_all(dir).map_err(IndexError::io(dir))?;
    Ok(Arc::new(WriterLock::acquire(dir)?))
}

/// Names of a graph dump's files: hnsw_rs's graph and data, and the flat graph.
fn graph_files(basename: &str) -> [String; 3] {
    ["hnsw.graph", "hnsw.data", "flat"].map(|ext| format!("{basename}.{ext}"))
}

/// Fills in the checksums of an index written before they existed, from the files as they
/// are (their damage, if any, can no longer be told apart), before a change records more.
fn record_missing_sums(dir: &Path, manifest: &mut IndexManifest) -> Result<(), IndexError> {
    if manifest.files.is_some() {
        return Ok(());
    }
    let row = (manifest.dim * manifest.storage.width()) as u64;
    let mut files = vec![
        (
            EmbeddingStore::file_name(manifest.storage).to_string(),
            Some(manifest.slots as u64 * row),
        ),
        (RECORDS_FILE.to_string(), Some(manifest.records_bytes)),
        (TOMBSTONES_FILE.to_string(), None),
    ];
    if let Some(dump) = &manifest.graph {
        let [graph, data, flat] = graph_files(&dump.basename);
        files.extend([(graph, None), (data, None)]);
        if dump.flat_bytes.is_some() {
            files.push((flat, None));
        }
    }
    let mut sums = std::collections::BTreeMap::new();
    for (name, bytes) in files {
        let path = dir.join(&name);
        match FileSum::of_file(&path, bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            r => {
                sums.insert(name, r.map_err(IndexError::io(&path))?.1);
            }
        }
    }
    tracing::info!(dir = %dir.display(), "recording file checksums in an index written before them");
    manifest.files = Some(sums);
    Ok(())
}

/// The dumped graph in its compact form: read from its `.flat` file, or (an index written
/// before that file existed) reloaded through hnsw_rs and flattened.
fn load_flat(dir: &Path, dump: &super::GraphDump) -> Result<FlatGraph, IndexError> {
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
