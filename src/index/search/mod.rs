//! How an index is searched: scoring and top-k, exact scans, the walk of the dumped (flat)
//! graph and of the hnsw_rs graph of images added since, filters, person grouping, and the
//! [`plan`](plan::SearchPlan) that picks among them for one query.

pub(crate) mod exact;
pub(crate) mod filter;
pub(crate) mod flat;
pub(crate) mod graph;
pub(crate) mod hits;
pub(crate) mod params;
pub(crate) mod plan;
pub(crate) mod score;
