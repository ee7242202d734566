//! The gallery index shared by all requests. Searches take a read lock on the blocking pool, so
//! many run in parallel; adds and removals take the write lock and are durable when they return.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::infer::blocking;
use super::{metrics, ServiceError};
use crate::index::{
    GalleryIndex, HnswParams, ImageHit, ImageRecord, IndexError, PersonHit, SearchFilter,
    SearchParams,
};

/// Search results, grouped as asked.
#[derive(Debug, Clone)]
pub enum Ranked {
    /// One hit per person, best first.
    Persons(Vec<PersonHit>),
    /// One hit per image, best first.
    Images(Vec<ImageHit>),
}

/// The shared index. A std `RwLock` is right here: it is only ever taken on blocking-pool
/// threads, never held across an `.await`.
#[derive(Clone)]
pub struct Gallery {
    index: Arc<RwLock<GalleryIndex>>,
}

impl Gallery {
    /// Opens the index in `dir`, or creates an empty one for this model when `dir` does not exist.
    /// Blocking: call from a blocking context.
    pub fn open_or_create(dir: &Path, fingerprint: &str, dim: usize) -> Result<Self, ServiceError> {
        let index = if dir.exists() {
            GalleryIndex::open(dir, fingerprint)?
        } else {
            tracing::info!(dir = %dir.display(), "no index yet: creating an empty one for this model");
            GalleryIndex::create(dir, fingerprint, dim, HnswParams::default())?
        };
        if index.dim() != dim {
            return Err(IndexError::Dimension {
                expected: index.dim(),
                got: dim,
            }
            .into());
        }
        metrics::gallery_size(index.len());
        Ok(Self {
            index: Arc::new(RwLock::new(index)),
        })
    }

    /// Live images.
    pub fn size(&self) -> Result<usize, ServiceError> {
        Ok(self.read()?.len())
    }

    /// The model fingerprint recorded in the index.
    pub fn fingerprint(&self) -> Result<String, ServiceError> {
        Ok(self.read()?.fingerprint().to_string())
    }

    /// Ranks the gallery for `query`; returns the hits and the gallery size searched.
    pub async fn search(
        &self,
        query: Vec<f32>,
        params: SearchParams,
        filter: SearchFilter,
        by_person: bool,
    ) -> Result<(Ranked, usize), ServiceError> {
        let this = self.clone();
        blocking(move || {
            let index = this.read()?;
            let ranked = if by_person {
                Ranked::Persons(index.search_persons(&query, &params, &filter)?)
            } else {
                Ranked::Images(index.search_images(&query, &params, &filter)?)
            };
            Ok((ranked, index.len()))
        })
        .await?
    }

    /// Adds embedded images; returns the gallery size after the change.
    pub async fn add(&self, items: Vec<(ImageRecord, Vec<f32>)>) -> Result<usize, ServiceError> {
        let this = self.clone();
        blocking(move || {
            let mut index = this.write()?;
            index.add(items)?;
            metrics::gallery_size(index.len());
            Ok(index.len())
        })
        .await?
    }

    /// Removes images by id and every image of the given persons, all or nothing: when an id
    /// does not exist nothing is removed and NOT_FOUND names the missing ids.
    pub async fn remove(
        &self,
        image_ids: Vec<String>,
        person_ids: Vec<String>,
    ) -> Result<(usize, usize), ServiceError> {
        let this = self.clone();
        blocking(move || {
            let mut index = this.write()?;
            check_exist(&index, &image_ids, &person_ids)?;
            let mut removed = index.remove_images(&image_ids)?;
            removed += index.remove_persons(&person_ids)?;
            metrics::gallery_size(index.len());
            Ok((removed, index.len()))
        })
        .await?
    }

    /// Dumps the HNSW graph when online adds left it ahead of its last dump, so that the next
    /// start need not re-insert them. (The images themselves were durable when added.)
    pub async fn persist(&self) -> Result<(), ServiceError> {
        let this = self.clone();
        blocking(move || {
            let mut index = this.write()?;
            let pending = index.graph_pending();
            if pending > 0 {
                index.save_graph()?;
                tracing::info!(pending, "graph saved");
            }
            Ok(())
        })
        .await?
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, GalleryIndex>, ServiceError> {
        self.index
            .read()
            .map_err(|_| ServiceError::Internal("index lock poisoned by a panic".into()))
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, GalleryIndex>, ServiceError> {
        self.index
            .write()
            .map_err(|_| ServiceError::Internal("index lock poisoned by a panic".into()))
    }
}

fn check_exist(
    index: &GalleryIndex,
    image_ids: &[String],
    person_ids: &[String],
) -> Result<(), ServiceError> {
    let missing_images: Vec<&str> = image_ids
        .iter()
        .filter(|id| !index.contains(id))
        .map(String::as_str)
        .collect();
    let missing_persons: Vec<&str> = if person_ids.is_empty() {
        Vec::new()
    } else {
        // The index has no person lookup; one scan per removal call is acceptable for a rare,
        // already write-locked operation.
        let live: HashSet<&str> = index
            .live_items()
            .map(|(r, _)| r.person_id.as_str())
            .collect();
        person_ids
            .iter()
            .map(String::as_str)
            .filter(|id| !live.contains(id))
            .collect()
    };
    let mut parts = Vec::new();
    if !missing_images.is_empty() {
        parts.push(format!("image ids {}", missing_images.join(", ")));
    }
    if !missing_persons.is_empty() {
        parts.push(format!("person ids {}", missing_persons.join(", ")));
    }
    if parts.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::NotFound(format!(
            "{} not in the gallery; nothing removed",
            parts.join(" and ")
        )))
    }
}
