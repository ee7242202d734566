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
    })
}

struct FusedAttention {
    heads: usize,
    queries: usize,
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
    (dst_rs, dst_cs): (usize, usize),
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    let fits = |len: usize, rs: usize, cs: usize, rows: usize, cols: usize| {
        rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
    };
    assert!(fits(dst.len(), dst_rs, dst_cs, m, n));
    assert!(fits(lhs.len(), lhs_rs, lhs_cs, m, k));
    assert!(fits(rhs.len(), rhs_rs, rhs_cs, k, n));
    // SAFETY: the asserts above keep every index the strides reach inside the slices; `dst` is
    // borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
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
        let heads: Vec<Vec<f32>> = (0..b * self.heads)
            .into_par_iter()
            .map(|task| {
                let (bi, h) = (task / self.heads, task % self.heads);
                let sample = &src[bi * n * c3..(bi + 1) * n * c3];
                let q = &sample[h * hd..];
                let k = &sample[c + h * hd..];
                let v = &sample[2 * c + h * hd..];
                // scores = q k^T: k read as its transpose (row stride 1, column stride 3C).
                let mut scores = vec![0f32; nq * n];
                matmul(nq, n, hd, &mut scores, (n, 1), q, (c3, 1), k, (1, c3));
                let mask = self.mask.as_ref().map(|m| &m[bi * n..(bi + 1) * n]);
                for row in scores.chunks_mut(n) {
                    for s in row.iter_mut() {
                        *s *= self.scale;
                    }
                    if let Some(mask) = mask {
                        for (s, m) in row.iter_mut().zip(mask) {
                            *s += m;
                        }
                    }
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0f32;
                    for s in row.iter_mut() {
                        *s = (*s - max).exp();
                        sum += *s;
                    }
                    for s in row.iter_mut() {
                        *s /= sum;
                    }
                }
                let mut out = vec![0f32; nq * hd];
                matmul(nq, hd, n, &mut out, (hd, 1), &scores, (n, 1), v, (c3, 1));
                out
            })
            .collect();
        let mut dst = vec![0f32; b * nq * c];
        for (task, head) in heads.iter().enumerate() {
            let (bi, h) = (task / self.heads, task % self.heads);
            for (i, row) in head.chunks(hd).enumerate() {
                let at = (bi * nq + i) * c + h * hd;
                dst[at..at + hd].copy_from_slice(row);
            }
        }
        Ok((CpuStorage::F32(dst), Shape::from((b, nq, c))))
    }
}
