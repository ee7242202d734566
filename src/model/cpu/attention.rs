//! Self-attention for CPU inference as one operation.
//!
//! Composed from candle ops, attention copies q, k and v out of the qkv projection, runs a
//! batched product whose tiny per-head matrices each start a multi-threaded GEMM, makes separate
//! passes for the scale, the mask and the softmax, and copies the heads back together. Here every
//! (sample, head) pair is one task on the thread pool: its products read q, k and v in place
//! (strided) with single-threaded GEMMs, the scale, mask and softmax run on the scores while they
//! are in cache, and the head's output is written into its columns. Arithmetic is the composed
//! path's: the same products, then `* scale`, `+ mask`, and the softmax of candle-nn's
//! `softmax_last_dim` (max-subtracted `exp`, divided by the sum).

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::kernels;
use super::kernels::Precision;
use super::lanes;
use super::storage::SharedOut;

/// Multi-head self-attention over `qkv` `[B, N, 3C]` (the qkv projection's output, laid out as
/// q | k | v, each `heads` x `C / heads`), with an optional additive key mask `[B, N]`, for the
/// first `queries` tokens (all `N`, or 1 where only the class token's output is needed; keys and
/// values always come from every token). Returns the heads' outputs concatenated,
/// `[B, queries, C]`, before the output projection. For passes on the fast path
/// ([`super::fast_path`]).
pub fn self_attention(
    qkv: &Tensor,
    mask: Option<&Tensor>,
    heads: usize,
    scale: f32,
    queries: usize,
    kernels: Option<Precision>,
) -> Result<Tensor> {
    let (b, n, _) = qkv.dims3()?;
    if queries == 0 || queries > n {
        candle_core::bail!("fused-self-attention: {queries} queries over {n} tokens");
    }
    let mask = match mask {
        Some(m) => Some(
            m.to_dtype(DType::F32)?
                .reshape((b, n))?
                .flatten_all()?
                .to_vec1::<f32>()?,
        ),
        None => None,
    };
    qkv.contiguous()?.apply_op1_no_bwd(&FusedAttention {
        heads,
        scale,
        mask,
        queries,
        kernels,
    })
}

struct FusedAttention {
    heads: usize,
    queries: usize,
    /// The AVX-512 kernels' precision for the two products, or None for the `gemm` crate's f32.
    kernels: Option<Precision>,
    scale: f32,
    mask: Option<Vec<f32>>,
}

/// `dst[m x n] = lhs[m x k] * rhs[k x n]`, any strides (in elements), on the calling thread.
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_strides: (usize, usize),
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
) {
    assert!(fits(dst.len(), dst_strides, m, n));
    // SAFETY: `dst` is borrowed mutably and every index its strides reach is inside it.
    unsafe {
        matmul_into(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_strides,
            lhs,
            lhs_strides,
            rhs,
            rhs_strides,
        )
    }
}

/// Whether a `rows x cols` matrix with strides `(rs, cs)` lies inside `len` elements.
fn fits(len: usize, (rs, cs): (usize, usize), rows: usize, cols: usize) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
}

/// [`matmul`] into a raw destination, for tasks that each write their own (interleaved) part
/// of one output.
///
/// # Safety
/// Every element `dst + i * dst_rs + j * dst_cs` (`i < m`, `j < n`) must be valid for writes
/// and written by nothing else meanwhile; it must not overlap `lhs` or `rhs`.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_into(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    (dst_rs, dst_cs): (usize, usize),
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    assert!(fits(lhs.len(), (lhs_rs, lhs_cs), m, k));
    assert!(fits(rhs.len(), (rhs_rs, rhs_cs), k, n));
    // SAFETY: the asserts above keep every index the input strides reach inside the slices;
    // the caller vouches for `dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// `row = softmax(row * scale + mask)`, as candle-nn's `softmax_last_dim` (max-subtracted `exp`,
/// divided by the sum), with a vectorised `exp` ([`exp`]): libm's scalar `expf` was 8 % of an
/// image pass (311 keys per row). Compiled twice, for AVX-512 and for the baseline, and chosen
/// at run time.
fn softmax_row(row: &mut [f32], scale: f32, mask: Option<&[f32]>) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked above).
        unsafe { softmax_row_avx512(row, scale, mask) };
        return;
    }
    softmax_row_generic(row, scale, mask);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_row_avx512(row: &mut [f32], scale: f32, mask: Option<&[f32]>) {
    softmax_row_generic(row, scale, mask);
}

#[inline(always)]
fn softmax_row_generic(row: &mut [f32], scale: f32, mask: Option<&[f32]>) {
    match mask {
        Some(mask) => row
            .iter_mut()
            .zip(mask)
            .for_each(|(s, m)| *s = *s * scale + m),
        None => row.iter_mut().for_each(|s| *s *= scale),
    }
    let max = lanes::max(row);
    row.iter_mut().for_each(|s| *s = exp(*s - max));
    let inv = 1.0 / lanes::sum(row, |v| v);
    row.iter_mut().for_each(|s| *s *= inv);
}

/// `e^x` in f32 within 2 ulp of the exact value (Cephes' `expf`: `x = n ln 2 + r`, a degree-6
/// polynomial for `e^r`, `2^n` put into the exponent), branch-free so that loops over it
/// vectorise; 0 below -87.3 (where f32 results would be subnormal), as softmax's masked scores
/// (-10000) need, and saturating at `e^88.3` (softmax passes `x <= 0`).
#[inline(always)]
#[allow(clippy::excessive_precision)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_375;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.3, 88.3);
    let n = (xc * LOG2E + ROUND) - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_150_0e-4_f32;
    p = p * r + 1.398_199_950_7e-3;
    p = p * r + 8.333_451_907_3e-3;
    p = p * r + 4.166_579_589_4e-2;
    p = p * r + 1.666_666_545_9e-1;
    p = p * r + 5.000_000_120_1e-1;
    let er = p * r * r + r + 1.0;
    // SAFETY: `n` is a whole number in [-126, 127] (from the clamped `x`), so it converts
    // exactly; unchecked, the conversion vectorises (a saturating `as` did not).
    let n = unsafe { n.to_int_unchecked::<i32>() };
    let scaled = f32::from_bits(er.to_bits().wrapping_add((n << 23) as u32));
    if x < -87.3 {
        0.0
    } else {
        scaled
    }
}

impl CustomOp1 for FusedAttention {
    fn name(&self) -> &'static str {
        "fused-self-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = super::storage::contiguous_f32(self.name(), storage, layout)?;
        let (b, n, c3) = layout.shape().dims3()?;
        let c = c3 / 3;
        if c * 3 != c3 || self.heads == 0 || c % self.heads != 0 {
            candle_core::bail!(
                "fused-self-attention: {c3} features do not split into q, k, v of {} heads",
                self.heads
            );
        }
        if let Some(mask) = &self.mask {
            if mask.len() != b * n {
                candle_core::bail!(
                    "fused-self-attention: mask has {} entries for {b}x{n}",
                    mask.len()
                );
            }
        }
        let hd = c / self.heads;
        let nq = self.queries.min(n);
        // Not zeroed: the tasks write every element (each its head's columns of its sample's
        // rows), in parallel, straight from the products.
        let mut dst: Vec<f32> = Vec::with_capacity(b * nq * c);
        let out = SharedOut(dst.as_mut_ptr());
        (0..b * self.heads).into_par_iter().for_each(|task| {
            let (bi, h) = (task / self.heads, task % self.heads);
            let sample = &src[bi * n * c3..(bi + 1) * n * c3];
            let q = &sample[h * hd..];
            let k = &sample[c + h * hd..];
            let v = &sample[2 * c + h * hd..];
            // scores = q k^T: k read as its transpose (row stride 1, column stride 3C).
            let mut scores = vec![0f32; nq * n];
            let at = out.at(bi * nq * c + h * hd);
            match self.kernels {
                // SAFETY: the precision was packed for, so the CPU has its instructions;
                // `scores` holds nq x n.
                #[cfg(target_arch = "x86_64")]
                Some(p) => unsafe {
                    let dst = scores.as_mut_ptr();
                    kernels::small_product(p, (nq, n, hd), q, c3, k, (c3, 1), dst, n)
                },
                _ => matmul(nq, n, hd, &mut scores, (n, 1), q, (c3, 1), k, (1, c3)),
            }
            let mask = self.mask.as_ref().map(|m| &m[bi * n..(bi + 1) * n]);
            for row in scores.chunks_mut(n) {
                softmax_row(row, self.scale, mask);
            }
            // SAFETY: this task alone writes rows `bi * nq ..` x columns `h * hd ..` of `dst`
            // (nq x hd elements, row stride C), all inside its b * nq * c capacity. The values
            // are read as the transpose of a [hd, n] weight (strides 1, 3C).
            match self.kernels {
                #[cfg(target_arch = "x86_64")]
                Some(p) => unsafe {
                    kernels::small_product(p, (nq, hd, n), &scores, n, v, (1, c3), at, c)
                },
                _ => unsafe { matmul_into(nq, hd, n, at, (c, 1), &scores, (n, 1), v, (c3, 1)) },
            }
        });
        // SAFETY: the (sample, head) tasks above wrote every element.
        unsafe { dst.set_len(b * nq * c) };
        Ok((CpuStorage::F32(dst), Shape::from((b, nq, c))))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, D};

    use super::{self_attention, Precision};
    use crate::model::cpu::testing::{fixed_values, max_diff};

    /// Attention from candle's operations over the first `queries` tokens.
    fn composed(qkv: &Tensor, mask: &Tensor, heads: usize, scale: f64, queries: usize) -> Tensor {
        let (b, n, c3) = qkv.dims3().unwrap();
        let (c, hd) = (c3 / 3, c3 / 3 / heads);
        let qkv = qkv
            .reshape((b, n, 3, heads, hd))
            .unwrap()
            .permute((2, 0, 3, 1, 4))
            .unwrap();
        let part = |i: usize| qkv.get(i).unwrap().contiguous().unwrap();
        let q = part(0).narrow(2, 0, queries).unwrap().contiguous().unwrap();
        let scores = (q.matmul(&part(1).t().unwrap()).unwrap() * scale)
            .unwrap()
            .broadcast_add(&mask.reshape((b, 1, 1, n)).unwrap())
            .unwrap();
        candle_nn::ops::softmax(&scores, D::Minus1)
            .unwrap()
            .matmul(&part(2))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b, queries, c))
            .unwrap()
    }

    #[test]
    fn exp_is_within_two_ulp_over_softmaxs_range() {
        // Every 97th f32 bit pattern from -87.3 to 0 (max-subtracted scores), and past it.
        let (lo, hi) = ((-87.3f32).to_bits(), (-0f32).to_bits());
        let mut worst = 0f64;
        for bits in (hi..=lo).step_by(97) {
            let x = f32::from_bits(bits);
            let want = (x as f64).exp();
            let got = super::exp(x) as f64;
            worst = worst.max((got - want).abs() / want);
        }
        // 2 ulp of f32 is 2^-22 relative, at most.
        assert!(worst < 2.4e-7, "relative error {worst:e}");
        assert_eq!(super::exp(-10000.0), 0.0);
        assert_eq!(super::exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(super::exp(0.0), 1.0);
    }

    #[test]
    fn fused_attention_matches_candles_for_every_and_the_first_query() {
        let dev = Device::Cpu;
        let (b, n, heads, hd) = (3, 7, 4, 16);
        let values = fixed_values(b * n * 3 * heads * hd, 0x9e37_79b9, -2.0, 2.0);
        let qkv = Tensor::from_vec(values, (b, n, 3 * heads * hd), &dev).unwrap();
        // Sample 1 has two padding tokens, the others none.
        let mut mask = vec![0f32; b * n];
        mask[n + 5] = -10000.0;
        mask[n + 6] = -10000.0;
        let mask = Tensor::from_vec(mask, (b, 1, 1, n), &dev).unwrap();
        let scale = (hd as f64).powf(-0.5);
        // The gemm crate's f32, the kernels' f32 and their bf16 (where the CPU has them; bf16
        // rounds q, k, v and the probabilities: outputs of about 1 move by up to ~1e-2).
        let variants = [
            (None, 1e-5),
            (Some(Precision::F32), 1e-5),
            (Some(Precision::Bf16), 3e-2),
        ];
        for (kernels, tolerance) in variants {
            if kernels.is_some_and(|p: Precision| !p.available()) {
                eprintln!("skipped {kernels:?}: not on this CPU");
                continue;
            }
            for queries in [n, 1] {
                let fused =
                    self_attention(&qkv, Some(&mask), heads, scale as f32, queries, kernels)
                        .unwrap();
                let want = composed(&qkv, &mask, heads, scale, queries);
                assert_eq!(fused.dims(), want.dims());
                let d = max_diff(&fused, &want);
                assert!(d < tolerance, "{kernels:?}, {queries} queries: {d}");
            }
        }
        assert!(self_attention(&qkv, None, heads, scale as f32, n + 1, None).is_err());
    }
}
