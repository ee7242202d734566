//! Search and HNSW construction parameters.

use serde::{Deserialize, Serialize};

/// How many results to return and how hard to look for them.
#[derive(Debug, Clone)]
pub struct SearchParams {
    /// Number of results (images, or persons for person search).
    pub top_k: usize,
    /// HNSW candidate list size; larger is slower and more accurate. `None` uses the index default.
    pub ef: Option<usize>,
    /// Brute-force search over every stored embedding instead of the graph.
    pub exact: bool,
}

impl Default for SearchParams {
    fn default() -> Self {
        SearchParams {
            top_k: 10,
            ef: None,
            exact: false,
        }
    }
}

/// HNSW graph parameters, fixed when an index is created and recorded in its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Neighbours kept per node on upper layers (twice as many on layer 0); hnsw_rs allows ≤ 256.
    pub max_nb_connection: usize,
    /// Candidate list size while inserting; larger builds slower, better graphs.
    pub ef_construction: usize,
    /// Default candidate list size while searching (a query can override it).
    pub ef_search: usize,
    /// Below this fraction of the gallery passing a filter, search is exact: a graph walk that
    /// may only visit a few allowed nodes loses recall, while scanning them is cheap.
    pub exact_filter_fraction: f64,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            max_nb_connection: 24,
            ef_construction: 200,
            ef_search: 96,
            exact_filter_fraction: 0.02,
        }
    }
}

impl HnswParams {
    /// Checks the ranges hnsw_rs accepts.
    pub fn validate(&self) -> Result<(), String> {
        if !(2..=256).contains(&self.max_nb_connection) {
            return Err(format!(
                "max_nb_connection must be in 2..=256, got {}",
                self.max_nb_connection
            ));
        }
        if self.ef_construction == 0 || self.ef_search == 0 {
            return Err("ef_construction and ef_search must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.exact_filter_fraction) {
            return Err("exact_filter_fraction must be in [0, 1]".into());
        }
        Ok(())
    }
}
