//! Searching a [`GalleryIndex`]: by image or by person, through the plan chosen per query.

use super::GalleryIndex;
use crate::index::search::exact;
use crate::index::search::filter::CompiledFilter;
use crate::index::search::hits::persons_by_widening;
use crate::index::search::plan::{Graphs, SearchPlan, Walk};
use crate::index::search::score::{self, RowScorer};
use crate::index::validate::check_search;
use crate::index::{ImageHit, IndexError, PersonHit, SearchFilter, SearchParams, VectorStorage};

impl GalleryIndex {
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

    /// The best `k` slots (with scores) for a query: the plan chosen for it, executed, and the
    /// slots found expanded into their identical copies.
    fn search_slots(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams,
        filter: &SearchFilter,
    ) -> Vec<(usize, f32)> {
        let compiled = CompiledFilter::new(&self.meta, &self.dups, filter);
        let graphs = match (&self.flat, &self.graph) {
            (None, None) => Graphs::None,
            (Some(_), None) => Graphs::Flat,
            (None, Some(_)) => Graphs::Live,
            (Some(_), Some(_)) => Graphs::FlatAndLive,
        };
        let sizes = (self.len(), self.meta.slots());
        let plan = SearchPlan::choose(k, params, &self.manifest.hnsw, graphs, &compiled, sizes);
        let found = match plan {
            SearchPlan::Exact => {
                exact::search_all(&self.vectors, query, k, &|s| compiled.allows(s))
            }
            SearchPlan::Allowed(slots) => exact::search_slots(&self.vectors, query, k, &slots),
            SearchPlan::Flat(walk) => self.walk_flat(query, k, walk, &compiled),
            SearchPlan::Live(walk) => self.walk_live(query, k, walk, &compiled),
            SearchPlan::FlatAndLive(walk) => {
                // The live graph holds only the slots added since the dump: merge.
                let mut best = self.walk_live(query, k, walk, &compiled);
                best.extend(self.walk_flat(query, k, walk, &compiled));
                score::top_k(best, k)
            }
        };
        self.dups.expand(found, k, |s| compiled.allows(s))
    }

    /// Walks the flat graph, scoring rows of the embeddings store as exact search does.
    fn walk_flat(
        &self,
        query: &[f32],
        k: usize,
        walk: Walk,
        filter: &CompiledFilter,
    ) -> Vec<(usize, f32)> {
        let Some(flat) = &self.flat else {
            return Vec::new();
        };
        let mut scorer = RowScorer::new(&self.vectors, query);
        let allow = |s: usize| !walk.filtered || filter.walk_allows(s);
        flat.search(&mut |s| scorer.score(s), k, walk.ef, &allow)
    }

    /// Walks the hnsw_rs graph and scores what it finds as exact search does.
    fn walk_live(
        &self,
        query: &[f32],
        k: usize,
        walk: Walk,
        filter: &CompiledFilter,
    ) -> Vec<(usize, f32)> {
        let Some(graph) = &self.graph else {
            return Vec::new();
        };
        let filter: Option<&dyn hnsw_rs::prelude::FilterT> = walk.filtered.then_some(filter);
        let found = graph.search(query, k, walk.ef, filter);
        // Scores from the graph's own vectors when they are the stored ones (f32): scoring
        // leaves the embeddings file untouched, so a serving process keeps one copy of the
        // vectors in memory, not two (the kernel maps 64 KiB around every page read).
        if self.manifest.storage == VectorStorage::F32 && found.iter().all(|(_, v)| v.is_some()) {
            let scored = found
                .iter()
                .filter_map(|(slot, v)| v.as_ref().map(|v| (*slot, score::dot(query, v))));
            return score::top_k(scored, k);
        }
        let slots: Vec<usize> = found.into_iter().map(|(slot, _)| slot).collect();
        exact::search_slots(&self.vectors, query, k, &slots)
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
}
