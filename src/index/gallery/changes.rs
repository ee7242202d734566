//! Changing a [`GalleryIndex`]: adds, removals and compaction.

use super::dump::record_missing_sums;
use super::GalleryIndex;
use crate::index::store::checksum::FileSum;
use crate::index::store::embeddings::EmbeddingStore;
use crate::index::store::fsio;
use crate::index::store::metadata::{encode_records, RECORDS_FILE, TOMBSTONES_FILE};
use crate::index::validate::check_new_items;
use crate::index::{ImageRecord, IndexError};

/// Rows copied per `add` while compacting (bounds the memory of one batch).
const COMPACT_BATCH: usize = 4096;

impl GalleryIndex {
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
        fsio::append_synced(
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
