//! Ranking metrics of text-to-image retrieval: CMC (R@K), mean average precision as IRRA reports
//! it, mINP, and the authors' trapezoid AP variant.
//!
//! Every gallery image with the query's person id is a positive. A query without any positive in
//! the gallery counts as a miss at every rank and zero AP/INP, as the authors' evaluator does
//! (it averages over all queries); the number of such queries is reported.

use serde::Serialize;

/// Accumulates per-query rankings into the metrics, one query at a time (so a large evaluation
/// never holds the whole similarity matrix).
#[derive(Debug, Clone)]
pub struct RankingAccumulator {
    max_rank: usize,
    /// `hits_at[k]`: queries whose first positive is at 0-based rank k (k < max_rank).
    hits_at: Vec<usize>,
    ap_sum: f64,
    ap_authors_sum: f64,
    inp_sum: f64,
    queries: usize,
    without_positive: usize,
}

/// Retrieval quality over a set of queries. Fractions in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankingMetrics {
    /// Rank-1 accuracy: the share of queries whose best match is a positive.
    pub r1: f64,
    /// Rank-5 accuracy.
    pub r5: f64,
    /// Rank-10 accuracy.
    pub r10: f64,
    /// Mean of the standard (non-interpolated) average precision, as IRRA.
    pub map: f64,
    /// Mean inverse negative penalty: positives / rank of the last positive (1-based).
    pub minp: f64,
    /// The authors' trapezoid AP variant (`R1_mAP_CUHK`), for comparison with their numbers.
    pub map_authors: f64,
    /// CMC curve: `cmc[k]` is R@(k+1).
    pub cmc: Vec<f64>,
    /// Number of queries.
    pub queries: usize,
    /// Queries with no positive in the gallery (counted as misses).
    pub queries_without_positive: usize,
}

impl RankingAccumulator {
    /// An empty accumulator reporting the CMC curve up to `max_rank` (at least 10).
    pub fn new(max_rank: usize) -> Self {
        let max_rank = max_rank.max(10);
        Self {
            max_rank,
            hits_at: vec![0; max_rank],
            ap_sum: 0.0,
            ap_authors_sum: 0.0,
            inp_sum: 0.0,
            queries: 0,
            without_positive: 0,
        }
    }

    /// Adds one query given the 0-based ranks of its positives, in increasing order.
    pub fn add_positive_ranks(&mut self, ranks: &[usize]) {
        self.add_truncated(ranks, ranks.len());
    }

    /// Adds one query whose ranking was cut at some depth (a top-k search): `ranks` are the
    /// positives found, `positives` how many the gallery holds. Positives beyond the depth
    /// contribute zero precision to AP and make INP zero (their rank is unknown, so the ranking
    /// is scored as if they came last), so the truncated metrics never exceed the full ones.
    pub fn add_truncated(&mut self, ranks: &[usize], positives: usize) {
        self.queries += 1;
        let Some(&first) = ranks.first() else {
            self.without_positive += 1;
            return;
        };
        if first < self.max_rank {
            self.hits_at[first] += 1;
        }
        let n = positives.max(ranks.len()) as f64;
        let mut ap = 0.0;
        let mut ap_authors = 0.0;
        for (i, &r) in ranks.iter().enumerate() {
            let precision = (i + 1) as f64 / (r + 1) as f64;
            ap += precision;
            let previous = if r == 0 { 1.0 } else { i as f64 / r as f64 };
            ap_authors += (previous + precision) / 2.0;
        }
        self.ap_sum += ap / n;
        self.ap_authors_sum += ap_authors / n;
        if ranks.len() == positives.max(ranks.len()) {
            let last = ranks[ranks.len() - 1];
            self.inp_sum += n / (last + 1) as f64;
        }
    }

    /// Adds one query given, for each gallery item in ranked order, whether it is a positive.
    pub fn add_ranked_matches(&mut self, matches: impl IntoIterator<Item = bool>) {
        let ranks: Vec<usize> = matches
            .into_iter()
            .enumerate()
            .filter_map(|(r, m)| m.then_some(r))
            .collect();
        self.add_positive_ranks(&ranks);
    }

    /// Adds one query from its similarity to every gallery item (higher = better). Ties keep the
    /// gallery order, so results are deterministic.
    pub fn add_scores(&mut self, scores: &[f32], query_pid: usize, gallery_pids: &[usize]) {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        self.add_ranked_matches(order.iter().map(|&g| gallery_pids[g] == query_pid));
    }

    /// Number of queries added so far.
    pub fn queries(&self) -> usize {
        self.queries
    }

    /// The metrics over the queries added so far (all zero when none were added).
    pub fn finish(&self) -> RankingMetrics {
        let q = self.queries.max(1) as f64;
        let mut cmc = Vec::with_capacity(self.max_rank);
        let mut cumulative = 0usize;
        for hits in &self.hits_at {
            cumulative += hits;
            cmc.push(cumulative as f64 / q);
        }
        RankingMetrics {
            r1: cmc[0],
            r5: cmc[4],
            r10: cmc[9],
            map: self.ap_sum / q,
            minp: self.inp_sum / q,
            map_authors: self.ap_authors_sum / q,
            cmc,
            queries: self.queries,
            queries_without_positive: self.without_positive,
        }
    }
}
