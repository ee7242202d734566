//! The choice of how one query is searched, made in one place ([`SearchPlan::choose`]) and
//! then executed by the gallery.

use super::filter::CompiledFilter;
use super::params::{HnswParams, SearchParams};

/// Upper bound on how much a filter widens the HNSW candidate list.
const MAX_EF_WIDENING: usize = 8;

/// Which graphs an index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Graphs {
    /// None yet: an unpublished build (its graph is built at publish time).
    None,
    /// The dumped graph in its compact form, over every slot.
    Flat,
    /// Only an hnsw_rs graph (an index whose graph was never dumped).
    Live,
    /// The flat graph, plus an hnsw_rs graph of the slots added since the dump.
    FlatAndLive,
}

/// A graph walk's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Walk {
    /// Candidate list size, widened for filters.
    pub(crate) ef: usize,
    /// Whether the walk must test the filter (and tombstones) on the nodes it returns.
    pub(crate) filtered: bool,
}

/// How one query is searched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SearchPlan {
    /// Score every stored row: asked for, or there is no graph.
    Exact,
    /// Score only these rows: a filter so selective that a walk could miss them.
    Allowed(Vec<usize>),
    /// Walk the flat graph.
    Flat(Walk),
    /// Walk the hnsw_rs graph, which covers every slot.
    Live(Walk),
    /// Walk both graphs and merge.
    FlatAndLive(Walk),
}

impl SearchPlan {
    /// The plan for the best `k` slots of a gallery of `live` images in `slots` slots, under
    /// `filter`.
    pub(crate) fn choose(
        k: usize,
        params: &SearchParams,
        hnsw: &HnswParams,
        graphs: Graphs,
        filter: &CompiledFilter,
        (live, slots): (usize, usize),
    ) -> SearchPlan {
        if params.exact || graphs == Graphs::None {
            return SearchPlan::Exact;
        }
        // Fraction of the graph's points that may be returned (tombstones and filter aside).
        let all = slots.max(1) as f64;
        let mut allowed_fraction = live as f64 / all;
        if !filter.is_trivial() {
            let allowed: Vec<usize> = (0..slots).filter(|&s| filter.allows(s)).collect();
            // A selective filter: scoring the few allowed rows beats walking the graph, where
            // they may be too sparse to be found.
            if (allowed.len() as f64) < hnsw.exact_filter_fraction * live as f64 {
                return SearchPlan::Allowed(allowed);
            }
            allowed_fraction = allowed.len() as f64 / all;
        }
        let ef = params.ef.unwrap_or(hnsw.ef_search).max(k);
        // Filtered-out nodes still occupy the candidate list: widen it so that about `ef` of
        // the candidates can pass (bounded, since very selective filters are exact above).
        let widened = (ef as f64 / allowed_fraction.max(1e-6)).ceil() as usize;
        let walk = Walk {
            ef: widened.clamp(ef, ef * MAX_EF_WIDENING),
            filtered: !filter.is_trivial() || filter.excludes_images() || live < slots,
        };
        match graphs {
            Graphs::Flat => SearchPlan::Flat(walk),
            Graphs::Live => SearchPlan::Live(walk),
            _ => SearchPlan::FlatAndLive(walk),
        }
    }
}
