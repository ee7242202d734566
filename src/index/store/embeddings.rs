//! The stored embeddings: one row per slot in `embeddings.f32` (or `.f16`), little-endian,
//! memory-mapped so that opening a large index neither reads nor copies it.

use std::fs::File;
use std::path::{Path, PathBuf};

use half::f16;
use memmap2::{Mmap, MmapOptions};

use super::checksum::FileSum;
use super::fsio;
use super::manifest::VectorStorage;
use crate::index::IndexError;

/// Row-major embedding matrix backed by a read-only memory map of the committed rows.
pub(crate) struct EmbeddingStore {
    path: PathBuf,
    dim: usize,
    storage: VectorStorage,
    rows: usize,
    /// `None` while the store is empty (a zero-length file cannot be mapped).
    map: Option<Mmap>,
}

impl EmbeddingStore {
    /// File name of the store for a storage kind.
    pub(crate) fn file_name(storage: VectorStorage) -> &'static str {
        match storage {
            VectorStorage::F32 => "embeddings.f32",
            VectorStorage::F16 => "embeddings.f16",
        }
    }

    /// Opens the first `rows` rows of the store in `dir`.
    pub(crate) fn open(
        dir: &Path,
        dim: usize,
        storage: VectorStorage,
        rows: usize,
    ) -> Result<Self, IndexError> {
        let path = dir.join(Self::file_name(storage));
        let mut store = EmbeddingStore {
            path,
            dim,
            storage,
            rows: 0,
            map: None,
        };
        store.remap(rows)?;
        Ok(store)
    }

    fn row_bytes(&self) -> usize {
        self.dim * self.storage.width()
    }

    /// Maps the first `rows` rows; fails with `Corrupt` when the file is shorter.
    fn remap(&mut self, rows: usize) -> Result<(), IndexError> {
        let want = (rows * self.row_bytes()) as u64;
        let file = match File::open(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && rows == 0 => {
                self.rows = 0;
                self.map = None;
                return Ok(());
            }
            r => r.map_err(IndexError::io(&self.path))?,
        };
        let len = file.metadata().map_err(IndexError::io(&self.path))?.len();
        if len < want {
            return Err(IndexError::corrupt(
                &self.path,
                format!("truncated: {len} bytes, the manifest records {rows} rows ({want} bytes)"),
            ));
        }
        self.map = if rows == 0 {
            None
        } else {
            // SAFETY: the index only ever appends past the mapped range or replaces whole
            // generation directories, so the mapped bytes are never modified while mapped.
            let map = unsafe { MmapOptions::new().len(want as usize).map(&file) }
                .map_err(IndexError::io(&self.path))?;
            Some(map)
        };
        self.rows = rows;
        Ok(())
    }

    /// Appends rows durably and maps them; returns the checksum of the bytes appended.
    pub(crate) fn append(&mut self, vectors: &[&[f32]]) -> Result<FileSum, IndexError> {
        let mut bytes = Vec::with_capacity(vectors.len() * self.row_bytes());
        for v in vectors {
            debug_assert_eq!(v.len(), self.dim);
            match self.storage {
                VectorStorage::F32 => v.iter().for_each(|x| bytes.extend(x.to_le_bytes())),
                VectorStorage::F16 => v
                    .iter()
                    .for_each(|x| bytes.extend(f16::from_f32(*x).to_le_bytes())),
            }
        }
        let committed = (self.rows * self.row_bytes()) as u64;
        fsio::append_synced(&self.path, committed, &bytes)?;
        self.remap(self.rows + vectors.len())?;
        Ok(FileSum::of(&bytes))
    }

    /// Number of committed rows.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Embedding dimension.
    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// All rows as f32 (only for f32 storage). Little-endian hosts only, like the file format.
    pub(crate) fn as_f32(&self) -> Option<&[f32]> {
        (self.storage == VectorStorage::F32).then(|| bytemuck::cast_slice(self.bytes()))
    }

    /// All rows as f16 (only for f16 storage).
    pub(crate) fn as_f16(&self) -> Option<&[f16]> {
        (self.storage == VectorStorage::F16).then(|| bytemuck::cast_slice(self.bytes()))
    }

    /// The stored bytes of row `slot` (identical rows score identically).
    pub(crate) fn raw_row(&self, slot: usize) -> &[u8] {
        let n = self.row_bytes();
        &self.bytes()[slot * n..(slot + 1) * n]
    }

    /// Copies row `slot` into an f32 vector.
    pub(crate) fn row(&self, slot: usize) -> Vec<f32> {
        let range = slot * self.dim..(slot + 1) * self.dim;
        match (self.as_f32(), self.as_f16()) {
            (Some(all), _) => all[range].to_vec(),
            (_, Some(all)) => all[range].iter().map(|h| h.to_f32()).collect(),
            _ => unreachable!("storage is f32 or f16"),
        }
    }
}

#[cfg(target_endian = "big")]
compile_error!("the index file format is little-endian; big-endian hosts are not supported");
