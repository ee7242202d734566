//! Exact duplicates among the stored vectors (identical frames of a still camera, the same crop
//! indexed twice), so that every copy stays reachable through the graph.
//!
//! hnsw_rs's neighbour selection keeps about one link between identical points, so a graph walk
//! finds only some of many copies of one vector (97 of 300 at `ef` 4096). Copies are instead
//! grouped by their stored bytes (CRC-32, then a byte compare), and a search expands every slot
//! it finds into its whole group with the same score, before the top-k cut. The groups are
//! derived from the embeddings whenever an index is opened, so they can never disagree with
//! them: nothing is added to the index format, and removals and compactions need no bookkeeping
//! here (removed copies are left out by the filter when a group is expanded).

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use super::embeddings::EmbeddingStore;

/// The groups of slots holding byte-identical vectors.
#[derive(Debug, Default)]
pub(crate) struct Duplicates {
    /// CRC-32 of a row → the first slot with those bytes.
    first: HashMap<u32, u32>,
    /// Further distinct rows whose CRC collides with `first`'s (rare): their first slots.
    collided: HashMap<u32, Vec<u32>>,
    /// Slot → its group in `groups`, for slots with at least one copy.
    group_of: HashMap<u32, u32>,
    /// Groups of two or more slots, each in slot order.
    groups: Vec<Vec<u32>>,
}

impl Duplicates {
    /// The groups among all rows of `store` (reads every row once, hashing in parallel).
    pub(crate) fn of(store: &EmbeddingStore) -> Self {
        let mut dups = Duplicates::default();
        dups.extend(store, 0);
        dups
    }

    /// Takes rows `from..` of `store` (just appended) into account.
    pub(crate) fn extend(&mut self, store: &EmbeddingStore, from: usize) {
        let hashes: Vec<u32> = (from..store.rows())
            .into_par_iter()
            .map(|s| crc32fast::hash(store.raw_row(s)))
            .collect();
        for (slot, hash) in (from..).zip(hashes) {
            self.insert(store, slot as u32, hash);
        }
    }

    fn insert(&mut self, store: &EmbeddingStore, slot: u32, hash: u32) {
        let bytes = store.raw_row(slot as usize);
        let same = |s: &u32| store.raw_row(*s as usize) == bytes;
        let Some(&first) = self.first.get(&hash) else {
            self.first.insert(hash, slot);
            return;
        };
        let original = if same(&first) {
            Some(first)
        } else {
            self.collided
                .get(&hash)
                .and_then(|c| c.iter().copied().find(same))
        };
        let Some(original) = original else {
            self.collided.entry(hash).or_default().push(slot);
            return;
        };
        let group = match self.group_of.get(&original) {
            Some(&g) => g,
            None => {
                self.groups.push(vec![original]);
                let g = (self.groups.len() - 1) as u32;
                self.group_of.insert(original, g);
                g
            }
        };
        self.groups[group as usize].push(slot);
        self.group_of.insert(slot, group);
    }

    /// True when no two rows are identical.
    pub(crate) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Every slot identical to `slot` (itself included), if it has copies.
    pub(crate) fn group(&self, slot: usize) -> Option<&[u32]> {
        let g = *self.group_of.get(&u32::try_from(slot).ok()?)?;
        Some(&self.groups[g as usize])
    }

    /// Whether a graph walk may return `slot`: when it, or one of its copies, passes `allow`
    /// (a removed or filtered-out copy stands in for the others).
    pub(crate) fn allows(&self, slot: usize, allow: impl Fn(usize) -> bool) -> bool {
        if allow(slot) {
            return true;
        }
        self.group(slot)
            .is_some_and(|g| g.iter().any(|&s| allow(s as usize)))
    }

    /// The best `k` of `found` (scored slots, from a graph walk or a scan) with every slot
    /// replaced by all its copies that pass `allow`, at the same score.
    pub(crate) fn expand(
        &self,
        found: Vec<(usize, f32)>,
        k: usize,
        allow: impl Fn(usize) -> bool,
    ) -> Vec<(usize, f32)> {
        if self.is_empty() {
            return found;
        }
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(found.len());
        for (slot, score) in found {
            match self.group(slot) {
                Some(group) => {
                    let copies = group.iter().map(|&s| s as usize);
                    out.extend(
                        copies
                            .filter(|&s| allow(s) && seen.insert(s))
                            .map(|s| (s, score)),
                    );
                }
                None if seen.insert(slot) => out.push((slot, score)),
                None => {}
            }
        }
        crate::index::search::score::top_k(out, k)
    }
}
