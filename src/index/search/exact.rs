//! Brute-force search: dot products of the query with stored rows, in parallel chunks.

use rayon::prelude::*;

use super::score::{RowScorer, TopK};
use crate::index::store::embeddings::EmbeddingStore;

/// Rows scored per rayon task: large enough to amortise scheduling, small enough to balance.
const CHUNK_ROWS: usize = 2048;

/// Scores rows of the store; `slot_range` restricted by `allow`.
fn score_rows(
    store: &EmbeddingStore,
    query: &[f32],
    slots: std::ops::Range<usize>,
    allow: &(dyn Fn(usize) -> bool + Sync),
    top: &mut TopK,
) {
    let mut scorer = RowScorer::new(store, query);
    for s in slots.filter(|&s| allow(s)) {
        top.push(s, scorer.score(s));
    }
}

/// The `k` best slots among all rows passing `allow`, best first.
pub(crate) fn search_all(
    store: &EmbeddingStore,
    query: &[f32],
    k: usize,
    allow: &(dyn Fn(usize) -> bool + Sync),
) -> Vec<(usize, f32)> {
    let rows = store.rows();
    let chunks = rows.div_ceil(CHUNK_ROWS);
    (0..chunks)
        .into_par_iter()
        .map(|c| {
            let mut top = TopK::new(k);
            let end = ((c + 1) * CHUNK_ROWS).min(rows);
            score_rows(store, query, c * CHUNK_ROWS..end, allow, &mut top);
            top
        })
        .reduce(|| TopK::new(k), TopK::merge)
        .into_sorted()
}

/// The `k` best among the given slots, best first (for very selective filters).
pub(crate) fn search_slots(
    store: &EmbeddingStore,
    query: &[f32],
    k: usize,
    slots: &[usize],
) -> Vec<(usize, f32)> {
    let mut top = TopK::new(k);
    let mut scorer = RowScorer::new(store, query);
    for &s in slots {
        top.push(s, scorer.score(s));
    }
    top.into_sorted()
}
