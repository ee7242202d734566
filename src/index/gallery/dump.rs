//! The graphs of a [`GalleryIndex`]: inserting new slots into the hnsw_rs graph, and dumping it
//! (with its flat form and checksums) so that opening the index needs no re-insertion.

use std::path::Path;

use super::GalleryIndex;
use crate::index::search::graph::{release_freed_heap, Graph};
use crate::index::store::checksum::FileSum;
use crate::index::store::embeddings::EmbeddingStore;
use crate::index::store::metadata::{RECORDS_FILE, TOMBSTONES_FILE};
use crate::index::{IndexError, IndexManifest};

/// Vectors copied out of the store per parallel graph insertion.
const GRAPH_INSERT_CHUNK: usize = 16_384;

impl GalleryIndex {
    /// Inserts slots `from..` into the graph (those added after the last dump), creating the
    /// graph if needed.
    pub(super) fn insert_into_graph(&mut self, from: usize) {
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
}

/// Names of a graph dump's files: hnsw_rs's graph and data, and the flat graph.
pub(super) fn graph_files(basename: &str) -> [String; 3] {
    ["hnsw.graph", "hnsw.data", "flat"].map(|ext| format!("{basename}.{ext}"))
}

/// Fills in the checksums of an index written before they existed, from the files as they
/// are (their damage, if any, can no longer be told apart), before a change records more.
pub(super) fn record_missing_sums(
    dir: &Path,
    manifest: &mut IndexManifest,
) -> Result<(), IndexError> {
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
