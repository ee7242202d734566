//! Exact (brute-force) ranking: every query against every gallery item by dot product, in chunks
//! of queries so that memory stays `chunk × gallery`.

use candle_core::{Device, Tensor};

use super::{EvalError, RankingAccumulator, RankingMetrics};

/// Queries per similarity chunk: 256 × a 20k gallery is 20 MB of scores.
const QUERY_CHUNK: usize = 256;

/// Embeddings (L2-normalised rows) and the person label of each row.
#[derive(Debug, Clone, Copy)]
pub struct Embeddings<'a> {
    /// One embedding per item, all of the same length.
    pub rows: &'a [Vec<f32>],
    /// Person label of each row.
    pub pids: &'a [usize],
}

impl Embeddings<'_> {
    fn matrix(&self, dim: usize) -> Result<Tensor, EvalError> {
        if self.rows.len() != self.pids.len() {
            return Err(EvalError::Input(format!(
                "{} embeddings but {} person labels",
                self.rows.len(),
                self.pids.len()
            )));
        }
        let mut flat = Vec::with_capacity(self.rows.len() * dim);
        for row in self.rows {
            if row.len() != dim {
                return Err(EvalError::Input(format!(
                    "embeddings of different dimensions ({} and {dim})",
                    row.len()
                )));
            }
            flat.extend_from_slice(row);
        }
        Ok(Tensor::from_vec(
            flat,
            (self.rows.len(), dim),
            &Device::Cpu,
        )?)
    }
}

/// Ranks every gallery item for every query by descending dot product and scores the rankings.
/// `max_rank` is the length of the reported CMC curve.
pub fn rank_exact(
    queries: Embeddings<'_>,
    gallery: Embeddings<'_>,
    max_rank: usize,
) -> Result<RankingMetrics, EvalError> {
    let dim = gallery.rows.first().map_or(0, Vec::len);
    if dim == 0 || queries.rows.is_empty() {
        return Err(EvalError::Input("no queries or no gallery".into()));
    }
    let gallery_t = gallery.matrix(dim)?.t()?;
    let queries_m = queries.matrix(dim)?;
    let mut acc = RankingAccumulator::new(max_rank);
    let mut start = 0;
    while start < queries.rows.len() {
        let len = QUERY_CHUNK.min(queries.rows.len() - start);
        let scores = queries_m.narrow(0, start, len)?.matmul(&gallery_t)?;
        for (i, row) in scores.to_vec2::<f32>()?.iter().enumerate() {
            acc.add_scores(row, queries.pids[start + i], gallery.pids);
        }
        start += len;
    }
    Ok(acc.finish())
}
