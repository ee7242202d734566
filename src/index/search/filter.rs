//! Search filters: the public description and its compiled, per-slot form.

use chrono::{DateTime, Utc};

use crate::index::store::duplicates::Duplicates;
use crate::index::store::metadata::Metadata;
use crate::index::IndexError;

/// Restricts a search to part of the gallery. Every condition must hold; empty means "any".
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    /// Keep only images from these cameras (empty = any camera).
    pub camera_ids: Vec<String>,
    /// Keep only images captured at or after this time (images without a time are dropped).
    pub captured_from: Option<DateTime<Utc>>,
    /// Keep only images captured at or before this time (images without a time are dropped).
    pub captured_to: Option<DateTime<Utc>>,
    /// Drop images of these persons.
    pub exclude_person_ids: Vec<String>,
    /// Drop these images (a search by a gallery image leaves the query image out).
    pub exclude_image_ids: Vec<String>,
}

impl SearchFilter {
    /// True when the filter keeps every image.
    pub fn is_empty(&self) -> bool {
        self.camera_ids.is_empty()
            && self.captured_from.is_none()
            && self.captured_to.is_none()
            && self.exclude_person_ids.is_empty()
            && self.exclude_image_ids.is_empty()
    }

    /// Rejects filters that can never match anything by construction.
    pub fn validate(&self) -> Result<(), IndexError> {
        if let (Some(from), Some(to)) = (self.captured_from, self.captured_to) {
            if from > to {
                return Err(IndexError::InvalidFilter(format!(
                    "captured_from {from} is after captured_to {to}"
                )));
            }
        }
        if self.camera_ids.iter().any(|c| c.is_empty()) {
            return Err(IndexError::InvalidFilter("empty camera id".into()));
        }
        Ok(())
    }
}

/// A filter resolved against the metadata columns, so that testing a slot inside the HNSW
/// traversal is a few integer comparisons instead of string lookups.
pub(crate) struct CompiledFilter<'a> {
    meta: &'a Metadata,
    dups: &'a Duplicates,
    /// Allowed camera codes, sorted; `None` means any camera.
    cameras: Option<Vec<u32>>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    /// Excluded person codes, sorted.
    excluded: Vec<u32>,
    /// Excluded image slots, sorted.
    excluded_slots: Vec<usize>,
}

impl<'a> CompiledFilter<'a> {
    /// Resolves names to the codes used by `meta`. Unknown cameras simply match nothing.
    /// `dups` makes graph walks treat copies of an image as one ([`CompiledFilter::walk_allows`]).
    pub(crate) fn new(meta: &'a Metadata, dups: &'a Duplicates, filter: &SearchFilter) -> Self {
        let cameras = (!filter.camera_ids.is_empty()).then(|| {
            let mut codes: Vec<u32> = filter
                .camera_ids
                .iter()
                .filter_map(|c| meta.camera_code(c))
                .collect();
            codes.sort_unstable();
            codes
        });
        let mut excluded: Vec<u32> = filter
            .exclude_person_ids
            .iter()
            .filter_map(|p| meta.person_code(p))
            .collect();
        excluded.sort_unstable();
        let mut excluded_slots: Vec<usize> = filter
            .exclude_image_ids
            .iter()
            .filter_map(|id| meta.live_slot(id))
            .collect();
        excluded_slots.sort_unstable();
        CompiledFilter {
            meta,
            dups,
            cameras,
            from_ms: filter.captured_from.map(|t| t.timestamp_millis()),
            to_ms: filter.captured_to.map(|t| t.timestamp_millis()),
            excluded,
            excluded_slots,
        }
    }

    /// Whether the image in `slot` is live and passes the filter.
    pub(crate) fn allows(&self, slot: usize) -> bool {
        let Some(row) = self.meta.row(slot) else {
            return false;
        };
        if row.removed {
            return false;
        }
        if let Some(cams) = &self.cameras {
            match row.camera {
                Some(c) if cams.binary_search(&c).is_ok() => {}
                _ => return false,
            }
        }
        if self.from_ms.is_some() || self.to_ms.is_some() {
            let Some(t) = row.captured_ms else {
                return false;
            };
            if self.from_ms.is_some_and(|f| t < f) || self.to_ms.is_some_and(|e| t > e) {
                return false;
            }
        }
        self.excluded.binary_search(&row.person).is_err()
            && self.excluded_slots.binary_search(&slot).is_err()
    }

    /// Whether a graph walk may return `slot`: it or one of its exact copies passes (the walk's
    /// results are expanded into the copies that pass, see [`Duplicates::expand`]).
    pub(crate) fn walk_allows(&self, slot: usize) -> bool {
        self.dups.allows(slot, |s| self.allows(s))
    }

    /// True when the filter keeps (nearly) everything: only tombstones and a few excluded
    /// images need to be checked, so it never makes the search switch to exact.
    pub(crate) fn is_trivial(&self) -> bool {
        self.cameras.is_none()
            && self.from_ms.is_none()
            && self.to_ms.is_none()
            && self.excluded.is_empty()
    }

    /// True when some images are excluded by id.
    pub(crate) fn excludes_images(&self) -> bool {
        !self.excluded_slots.is_empty()
    }
}

impl hnsw_rs::filter::FilterT for CompiledFilter<'_> {
    fn hnsw_filter(&self, id: &usize) -> bool {
        self.walk_allows(*id)
    }
}
