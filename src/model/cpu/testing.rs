//! Helpers for the kernels' tests.

use candle_core::Tensor;

/// Largest absolute difference between two tensors of one shape.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// `len` fixed values uniform in `[lo, hi)` (xorshift32 from `seed`): inputs whose verdict does
/// not change between runs.
pub fn fixed_values(len: usize, seed: u32, lo: f32, hi: f32) -> Vec<f32> {
    let mut state = seed.max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            lo + (state >> 8) as f32 / (1u32 << 24) as f32 * (hi - lo)
        })
        .collect()
}
