//! [`MilvusGallery`] as a [`GalleryBackend`].

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use super::expr::{filter_expr, is_in};
use super::proto::milvus as m;
use super::{MilvusGallery, IDS_PER_QUERY, MAX_TOPK};
use crate::index::backend::{missing, GalleryBackend};
use crate::index::search::hits::persons_by_widening;
use crate::index::validate::check_new_items;
use crate::index::{ImageHit, ImageRecord, IndexError, PersonHit, SearchFilter, SearchParams};

impl GalleryBackend for MilvusGallery {
    fn kind(&self) -> &'static str {
        "milvus"
    }

    fn location(&self) -> String {
        let host = self
            .client
            .uri()
            .split("://")
            .nth(1)
            .unwrap_or(self.client.uri())
            .to_string();
        format!("milvus://{host}/{}", self.config.collection)
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    fn default_ef(&self) -> usize {
        self.config.hnsw.ef_search
    }

    fn image(&self, image_id: &str) -> Result<Option<(ImageRecord, Vec<f32>)>, IndexError> {
        self.block_on(self.image_row(image_id))
    }

    fn search_images(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: &SearchFilter,
    ) -> Result<Vec<ImageHit>, IndexError> {
        self.check_query(query, params, filter)?;
        let expr = filter_expr(filter);
        self.block_on(self.search_k(query, params.top_k, self.ef(params, params.top_k), &expr))
    }

    fn search_persons(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: &SearchFilter,
    ) -> Result<Vec<PersonHit>, IndexError> {
        self.check_query(query, params, filter)?;
        let expr = filter_expr(filter);
        // The embedded index's widening, step for step, so both rank persons alike.
        persons_by_widening(params.top_k, self.len().max(1), MAX_TOPK, |k| {
            self.block_on(self.search_k(query, k, self.ef(params, k), &expr))
        })
    }

    fn add(&self, items: Vec<(ImageRecord, Vec<f32>)>) -> Result<usize, IndexError> {
        let _writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        // Presence in the collection is checked below, in one query for the whole batch.
        check_new_items(&items, self.dim, |_| false)?;
        if items.is_empty() {
            return Ok(self.len());
        }
        let ids: Vec<String> = items.iter().map(|(r, _)| r.image_id.clone()).collect();
        self.block_on(async {
            if let Some(dup) = self.present_images(&ids).await?.into_iter().next() {
                return Err(IndexError::DuplicateImageId(dup));
            }
            for chunk in items.chunks(self.config.insert_batch.max(1)) {
                self.upsert(chunk).await?;
            }
            Ok(())
        })?;
        Ok(self.count.fetch_add(items.len(), Ordering::Relaxed) + items.len())
    }

    fn remove(
        &self,
        image_ids: &[String],
        person_ids: &[String],
    ) -> Result<(usize, usize), IndexError> {
        let _writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        if image_ids.is_empty() && person_ids.is_empty() {
            return Ok((0, self.len()));
        }
        let removed = self.block_on(async {
            let images = self.present_images(image_ids).await?;
            let persons = self.present_persons(person_ids).await?;
            let absent = |ids: &[String], present: &HashSet<String>| -> Vec<String> {
                ids.iter()
                    .filter(|i| !present.contains(*i))
                    .cloned()
                    .collect()
            };
            missing(&absent(image_ids, &images), &absent(person_ids, &persons))?;
            let mut clauses = Vec::new();
            for chunk in image_ids.chunks(IDS_PER_QUERY) {
                clauses.push(is_in("image_id", chunk));
            }
            for chunk in person_ids.chunks(IDS_PER_QUERY) {
                clauses.push(is_in("person_id", chunk));
            }
            let expr = clauses
                .iter()
                .map(|c| format!("({c})"))
                .collect::<Vec<_>>()
                .join(" or ");
            let n = self.count_where(&expr).await?;
            // Deletes go by primary key, which every Milvus version accepts: person ids are
            // resolved to their image ids first (a query returns at most MAX_TOPK rows, so a
            // person with more images takes several rounds).
            for chunk in image_ids.chunks(IDS_PER_QUERY) {
                self.delete_where(is_in("image_id", chunk)).await?;
            }
            for chunk in person_ids.chunks(IDS_PER_QUERY) {
                loop {
                    let ids = self
                        .strings_where(is_in("person_id", chunk), "image_id")
                        .await?;
                    for c in ids.chunks(IDS_PER_QUERY) {
                        self.delete_where(is_in("image_id", c)).await?;
                    }
                    if ids.len() < MAX_TOPK {
                        break;
                    }
                }
            }
            Ok::<usize, IndexError>(n)
        })?;
        let size = self.refresh_count()?;
        Ok((removed, size))
    }

    fn persist(&self) -> Result<(), IndexError> {
        self.block_on(self.client.send(
            "Flush",
            m::FlushRequest {
                db_name: self.db(),
                collection_names: vec![self.name()],
                ..Default::default()
            },
            |mut c, req| async move { c.flush(req).await },
        ))?;
        Ok(())
    }

    fn check_health(&self) -> Result<(), IndexError> {
        self.block_on(async {
            if !self.has_collection().await? {
                return Err(IndexError::Unavailable(format!(
                    "collection `{}` no longer exists at {}",
                    self.config.collection,
                    self.client.uri()
                )));
            }
            // A restarted server comes back with the collection released.
            self.load().await
        })?;
        self.refresh_count().map(|_| ())
    }
}
