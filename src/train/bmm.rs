//! Bidirectional mask modelling (BMM): in training, each image pass and each text pass keeps the
//! class token and drops a random number of the other tokens, at the same positions for the whole
//! batch (as the authors do), so the network must align from partial evidence.

use candle_core::{Result, Tensor};
use rand::Rng;

/// Which token positions to keep: `0` (the class token) always, and all but `k` of the others,
/// with `k` uniform in `0..=floor(ratio * (tokens - 1))`. Sorted ascending.
pub fn kept_positions<R: Rng>(tokens: usize, ratio: f32, rng: &mut R) -> Vec<usize> {
    let others = tokens.saturating_sub(1);
    let max_drop = ((ratio.clamp(0.0, 1.0) as f64) * others as f64).floor() as usize;
    let k = rng.random_range(0..=max_drop);
    let mut dropped = vec![false; others];
    for i in rand::seq::index::sample(rng, others, k) {
        dropped[i] = true;
    }
    let mut kept = Vec::with_capacity(tokens - k);
    if tokens > 0 {
        kept.push(0);
    }
    kept.extend((0..others).filter(|&i| !dropped[i]).map(|i| i + 1));
    kept
}

/// Drops tokens of `[B, N, D]` embeddings (and the matching columns of a `[B, N]` padding mask)
/// at random positions shared by the batch. A ratio of 0 returns the inputs unchanged.
pub fn drop_tokens<R: Rng>(
    tokens: &Tensor,
    mask: Option<&Tensor>,
    ratio: f32,
    rng: &mut R,
) -> Result<(Tensor, Option<Tensor>)> {
    let n = tokens.dim(1)?;
    if ratio <= 0.0 || n <= 1 {
        return Ok((tokens.clone(), mask.cloned()));
    }
    let kept = kept_positions(n, ratio, rng);
    if kept.len() == n {
        return Ok((tokens.clone(), mask.cloned()));
    }
    let index: Vec<u32> = kept.iter().map(|&i| i as u32).collect();
    let index = Tensor::new(index.as_slice(), tokens.device())?;
    let tokens = tokens.index_select(&index, 1)?;
    let mask = mask.map(|m| m.index_select(&index, 1)).transpose()?;
    Ok((tokens, mask))
}
