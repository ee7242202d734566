//! The gallery shared by all requests: a [`GalleryBackend`] (the embedded index or Milvus),
//! called on the blocking pool so that searches run in parallel and never stall the runtime.

use std::sync::Arc;

use super::infer::blocking;
use super::{metrics, ServiceError};
use crate::index::milvus::{MilvusConfig, MilvusGallery};
use crate::index::{
    EmbeddedGallery, GalleryBackend, ImageHit, ImageRecord, PersonHit, SearchFilter, SearchParams,
};

/// Search results, grouped as asked.
#[derive(Debug, Clone)]
pub enum Ranked {
    /// One hit per person, best first.
    Persons(Vec<PersonHit>),
    /// One hit per image, best first.
    Images(Vec<ImageHit>),
}

/// The shared gallery.
#[derive(Clone)]
pub struct Gallery {
    backend: Arc<dyn GalleryBackend>,
    /// `--read-only`: AddImages and RemoveImages are refused with FAILED_PRECONDITION.
    read_only: bool,
}

impl Gallery {
    /// Serves `backend`.
    pub fn new(backend: Arc<dyn GalleryBackend>) -> Self {
        metrics::gallery_size(backend.len());
        Self {
            backend,
            read_only: false,
        }
    }

    /// The same gallery refusing changes (`ivt serve --read-only`).
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Fails with FAILED_PRECONDITION when this server may not change the gallery; handlers
    /// call it before any decoding, so refused writes cost nothing.
    pub fn check_writable(&self) -> Result<(), ServiceError> {
        if self.read_only {
            return Err(ServiceError::ReadOnly);
        }
        Ok(())
    }

    /// Opens the embedded index in `dir`: read-only (no writer lock; the index must exist), or
    /// for writing, taking the directory's writer lock and creating an empty index for this
    /// model when `dir` does not exist. Blocking: call from a blocking context.
    pub fn open_embedded(
        dir: &std::path::Path,
        fingerprint: &str,
        dim: usize,
        read_only: bool,
    ) -> Result<Self, ServiceError> {
        if read_only {
            let backend = EmbeddedGallery::open_read_only(dir, fingerprint, dim)?;
            return Ok(Self::new(Arc::new(backend)).read_only());
        }
        let backend = EmbeddedGallery::open_or_create(dir, fingerprint, dim)?;
        Ok(Self::new(Arc::new(backend)))
    }

    /// Opens (or creates) the gallery collection in Milvus. Blocking.
    pub fn open_milvus(
        config: MilvusConfig,
        fingerprint: &str,
        dim: usize,
    ) -> Result<Self, ServiceError> {
        let backend = MilvusGallery::open_or_create(config, fingerprint, dim)?;
        Ok(Self::new(Arc::new(backend)))
    }

    /// The backend ("embedded" or "milvus") and where the gallery lives.
    pub fn describe(&self) -> (&'static str, String) {
        (self.backend.kind(), self.backend.location())
    }

    /// Live images (cached by remote backends; no I/O).
    pub fn size(&self) -> usize {
        self.backend.len()
    }

    /// The model fingerprint recorded with the gallery.
    pub fn fingerprint(&self) -> String {
        self.backend.fingerprint()
    }

    /// A live image's record and stored embedding; NOT_FOUND when the gallery has no such id.
    pub async fn image(&self, image_id: String) -> Result<(ImageRecord, Vec<f32>), ServiceError> {
        let backend = self.backend.clone();
        blocking(move || {
            backend.image(&image_id)?.ok_or_else(|| {
                ServiceError::NotFound(format!("image_id `{image_id}` is not in the gallery"))
            })
        })
        .await?
    }

    /// Ranks the gallery for `query`; returns the hits and the gallery size searched.
    pub async fn search(
        &self,
        query: Vec<f32>,
        params: SearchParams,
        filter: SearchFilter,
        by_person: bool,
    ) -> Result<(Ranked, usize), ServiceError> {
        let backend = self.backend.clone();
        let span = tracing::info_span!("search", by_person);
        blocking(move || {
            let _span = span.entered();
            let ranked = if by_person {
                Ranked::Persons(backend.search_persons(&query, &params, &filter)?)
            } else {
                Ranked::Images(backend.search_images(&query, &params, &filter)?)
            };
            Ok((ranked, backend.len()))
        })
        .await?
    }

    /// Adds embedded images; returns the gallery size after the change.
    pub async fn add(&self, items: Vec<(ImageRecord, Vec<f32>)>) -> Result<usize, ServiceError> {
        self.check_writable()?;
        let backend = self.backend.clone();
        let span = tracing::info_span!("add", images = items.len());
        blocking(move || {
            let _span = span.entered();
            let size = backend.add(items)?;
            metrics::gallery_size(size);
            Ok(size)
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
        self.check_writable()?;
        let backend = self.backend.clone();
        let span = tracing::info_span!("remove");
        blocking(move || {
            let _span = span.entered();
            let (removed, size) = backend.remove(&image_ids, &person_ids)?;
            metrics::gallery_size(size);
            Ok((removed, size))
        })
        .await?
    }

    /// Makes recent changes cheap to reload (the images themselves were durable when added).
    pub async fn persist(&self) -> Result<(), ServiceError> {
        if self.read_only {
            return Ok(());
        }
        let backend = self.backend.clone();
        blocking(move || Ok(backend.persist()?)).await?
    }

    /// Checks the gallery's stored files against their checksums (see
    /// [`GalleryBackend::verify`]).
    pub async fn verify(&self) -> Result<(), ServiceError> {
        let backend = self.backend.clone();
        blocking(move || Ok(backend.verify()?)).await?
    }

    /// Whether the backend can serve right now (Milvus: reachable, collection present).
    pub async fn check_health(&self) -> Result<(), ServiceError> {
        let backend = self.backend.clone();
        blocking(move || {
            backend.check_health()?;
            metrics::gallery_size(backend.len());
            Ok(())
        })
        .await?
    }
}
