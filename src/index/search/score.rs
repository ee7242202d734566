//! Scoring: the dot product, a row scorer over the stored embeddings and a bounded top-k, shared
//! by exact search and the graph walks so that every path scores alike.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use half::f16;

use crate::index::store::embeddings::EmbeddingStore;

/// A scored slot ordered so that a `BinaryHeap` pops the *worst* first (a bounded top-k).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scored {
    pub(crate) score: f32,
    pub(crate) slot: usize,
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reverse on score so the heap's top is the lowest score; ties prefer lower slots.
        other
            .score
            .total_cmp(&self.score)
            .then(self.slot.cmp(&other.slot))
    }
}

/// Keeps the best `k` scores seen.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Scored>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    pub(crate) fn push(&mut self, slot: usize, score: f32) {
        let item = Scored { score, slot };
        if self.heap.len() < self.k {
            self.heap.push(item);
        } else if self.heap.peek().is_some_and(|worst| item < *worst) {
            self.heap.pop();
            self.heap.push(item);
        }
    }

    /// The lowest score kept, once `k` are kept (a candidate must beat it to enter).
    pub(crate) fn full_at(&self) -> Option<f32> {
        (self.heap.len() >= self.k)
            .then(|| self.heap.peek().map(|w| w.score))
            .flatten()
    }

    pub(crate) fn merge(mut self, other: TopK) -> TopK {
        for s in other.heap {
            self.push(s.slot, s.score);
        }
        self
    }

    /// Best first.
    pub(crate) fn into_sorted(self) -> Vec<(usize, f32)> {
        let mut v = self.heap.into_vec();
        v.sort();
        v.into_iter().map(|s| (s.slot, s.score)).collect()
    }
}

/// Dot product, using AVX2 when the CPU has it (checked once per call, a cached atomic load):
/// the crate is built for baseline x86-64, which only has 4-wide SSE2.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

/// [`dot_portable`] compiled with AVX2 enabled (8-wide lanes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_portable(a, b)
}

/// Dot product with 16 independent accumulators so the compiler can vectorise it (float
/// addition is not associative, so a plain running sum stays scalar).
#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Scores single rows of the store against one query (f16 rows converted through a reusable
/// buffer): exact search and graph walks score alike.
pub(crate) struct RowScorer<'a> {
    store: &'a EmbeddingStore,
    query: &'a [f32],
    buf: Vec<f32>,
}

impl<'a> RowScorer<'a> {
    pub(crate) fn new(store: &'a EmbeddingStore, query: &'a [f32]) -> Self {
        let buf = if store.as_f16().is_some() {
            vec![0f32; store.dim()]
        } else {
            Vec::new()
        };
        RowScorer { store, query, buf }
    }

    /// The query's dot product with row `slot`.
    pub(crate) fn score(&mut self, slot: usize) -> f32 {
        let dim = self.store.dim();
        let range = slot * dim..(slot + 1) * dim;
        if let Some(all) = self.store.as_f32() {
            dot(self.query, &all[range])
        } else if let Some(all) = self.store.as_f16() {
            f16_to_f32(&all[range], &mut self.buf);
            dot(self.query, &self.buf)
        } else {
            f32::NEG_INFINITY
        }
    }
}

fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    src.convert_to_f32_slice(dst);
}

/// The best `k` of already scored `(slot, score)` pairs, in the order exact search ranks them.
pub(crate) fn top_k(scored: impl IntoIterator<Item = (usize, f32)>, k: usize) -> Vec<(usize, f32)> {
    let mut top = TopK::new(k);
    for (slot, score) in scored {
        top.push(slot, score);
    }
    top.into_sorted()
}
