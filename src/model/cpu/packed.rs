//! Linear layers for CPU inference with weights packed once for the AVX-512 kernels of
//! `kernels.rs` (f32, or bf16 with f32 accumulation), the bias, an optional residual input and an
//! optional GELU fused into the product.
//!
//! candle's CPU products go through the `gemm` crate, which re-packs the transposed weight on
//! every call and returns a fresh output that the bias, GELU and residual add then each read and
//! write again on one thread. Here a product is one pass over tasks of the thread pool, each a
//! block of rows by a group of 64-column panels (rows split when there are enough of them,
//! columns otherwise, so a text at batch 1 reads each weight once on one core).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::kernels::{self, Precision, MR, NR};
use super::storage::SharedOut;

/// Most rows of one task (its block of `x`, up to [`KC`] steps of it, stays in L2 across the
/// task's panels).
const MC: usize = 120;
/// Packed steps per k block: a whole 768-input layer in one block (its output is written once,
/// not re-read and added to per block), a 192 KiB slab of a panel read from L2 while the block's
/// rows pass. Measured on a 2-core Zen 4: 3-5 % faster products than 256-step blocks (fewer
/// partial sums, fewer micro-tile calls) at 16 to 1024 rows.
const KC: usize = 768;
/// Panels per column block inside a task (with [`KC`] steps, one panel's slab is what L2 holds
/// beside the rows; more measured no faster).
const NC_PANELS: usize = 1;

/// A linear layer's weight `[out, in]` packed for `x W^T + b`.
#[derive(Debug)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub struct PackedLinear {
    precision: Precision,
    words: Vec<u32>,
    steps: usize,
    out_features: usize,
    in_features: usize,
    /// Padded to whole panels with zeros.
    bias: Vec<f32>,
}

impl PackedLinear {
    /// Packs `weight` (`[out, in]`, f32, CPU) and `bias` for products in `precision`, or returns
    /// None where the CPU lacks that precision's instructions.
    pub fn new(
        weight: &Tensor,
        bias: Option<&Tensor>,
        precision: Precision,
    ) -> Result<Option<Self>> {
        if !precision.available() {
            return Ok(None);
        }
        let (n, k) = weight.dims2()?;
        if k == 0 {
            // Every output element is written by a k block: there must be one.
            candle_core::bail!("packed-linear: a weight with no input features");
        }
        let w = weight
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut bias = match bias {
            Some(b) => b.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?,
            None => vec![0.0; n],
        };
        if bias.len() != n {
            candle_core::bail!("bias has {} entries for {n} outputs", bias.len());
        }
        bias.resize(n.div_ceil(NR) * NR, 0.0);
        let (words, steps) = kernels::pack_weight(&w, n, k, precision);
        Ok(Some(Self {
            precision,
            words,
            steps,
            out_features: n,
            in_features: k,
            bias,
        }))
    }

    /// The precision of the products.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// `x W^T + b` (then GELU with `gelu`) for f32 `x` `[..., in]` on the CPU.
    pub fn forward(&self, x: &Tensor, gelu: bool) -> Result<Tensor> {
        x.contiguous()?.apply_op1_no_bwd(&Op { lin: self, gelu })
    }

    /// `residual + x W^T + b`, with `residual` shaped as the output.
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op2_no_bwd(
            &residual.contiguous()?,
            &Op {
                lin: self,
                gelu: false,
            },
        )
    }

    fn out_shape(&self, layout: &Layout) -> Result<(usize, Shape)> {
        let dims = layout.dims();
        if dims.last() != Some(&self.in_features) {
            candle_core::bail!(
                "packed-linear: input {dims:?} does not end in {} features",
                self.in_features
            );
        }
        let m = layout.shape().elem_count() / self.in_features.max(1);
        let mut out = dims.to_vec();
        if let Some(last) = out.last_mut() {
            *last = self.out_features;
        }
        Ok((m, Shape::from(out)))
    }

    /// `y[m, n] = x[m, k] W^T + b (+ residual)`, GELU with `gelu`.
    fn run(&self, x: &[f32], m: usize, residual: Option<&[f32]>, gelu: bool) -> Vec<f32> {
        let (n, k) = (self.out_features, self.in_features);
        if m == 0 || n == 0 {
            return vec![0f32; m * n];
        }
        // Not zeroed: the tasks write every element (their first k block stores, not adds).
        let mut y: Vec<f32> = Vec::with_capacity(m * n);
        let packed_rows;
        let (a, lda): (&[u32], usize) = match self.precision {
            Precision::F32 => (bytemuck::cast_slice(x), k),
            Precision::Bf16 => {
                let steps = self.steps;
                let mut rows = vec![0u32; m * steps];
                rows.par_chunks_mut(steps * 64)
                    .zip(x.par_chunks(k * 64))
                    .for_each(|(d, s)| kernels::pack_rows_bf16(s, k, d));
                packed_rows = rows;
                (&packed_rows, steps)
            }
        };
        // Tasks: row blocks, a multiple of the threads when there are enough rows; otherwise
        // one row block and the panels split in groups (each thread reads its share of W).
        let threads = rayon::current_num_threads().max(1);
        let panels = n.div_ceil(NR);
        let mut row_blocks = m.div_ceil(MC);
        let col_groups = if row_blocks >= threads {
            row_blocks = row_blocks.next_multiple_of(threads);
            1
        } else {
            (2 * threads).div_ceil(row_blocks).min(panels)
        };
        // Row blocks of whole micro-tiles, as equal as they can be: blocks rounded up to whole
        // tiles left a short last block, and one thread up to a block's worth of idle time
        // (5 % of a 1024-row product).
        let tiles = m.div_ceil(MR);
        let block_rows = |rb: usize| (rb * tiles / row_blocks * MR).min(m);
        let panels_per = panels.div_ceil(col_groups);
        let out = SharedOut(y.as_mut_ptr());
        (0..row_blocks * col_groups)
            .into_par_iter()
            .for_each(|task| {
                let (rb, cg) = (task / col_groups, task % col_groups);
                let rows = block_rows(rb)..block_rows(rb + 1);
                let pans = cg * panels_per..((cg + 1) * panels_per).min(panels);
                if rows.is_empty() || pans.is_empty() {
                    return;
                }
                // SAFETY: the task writes rows `rows` x columns of panels `pans` of `y`, which no
                // other task writes; `a`, `residual` and the packed words cover what is read.
                unsafe { self.task(a, lda, residual, out, rows, pans, gelu) };
            });
        // SAFETY: the tasks above covered every row and every panel's valid columns, so all
        // m * n elements are initialised.
        unsafe { y.set_len(m * n) };
        y
    }

    #[allow(clippy::too_many_arguments)]
    unsafe fn task(
        &self,
        a: &[u32],
        lda: usize,
        residual: Option<&[f32]>,
        out: SharedOut,
        rows: std::ops::Range<usize>,
        pans: std::ops::Range<usize>,
        gelu: bool,
    ) {
        let n = self.out_features;
        let steps = self.steps;
        // Column blocks outermost: a block's partial sums stay in L2 between its k blocks.
        for p0 in pans.clone().step_by(NC_PANELS) {
            let p1 = (p0 + NC_PANELS).min(pans.end);
            for k0 in (0..steps).step_by(KC) {
                let kc = KC.min(steps - k0);
                let (first, last) = (k0 == 0, k0 + kc == steps);
                for r in rows.clone().step_by(MR) {
                    let mr = MR.min(rows.end - r);
                    for p in p0..p1 {
                        let col = p * NR;
                        let epi = kernels::Epilogue {
                            bias: self.bias.as_ptr().add(col),
                            residual: residual
                                .map_or(std::ptr::null(), |res| res.as_ptr().add(r * n + col)),
                            gelu,
                        };
                        #[cfg(target_arch = "x86_64")]
                        kernels::micro_tile(
                            self.precision,
                            mr,
                            kc,
                            a.as_ptr().add(r * lda + k0),
                            lda,
                            self.words.as_ptr().add((p * steps + k0) * NR),
                            out.at(r * n + col),
                            n,
                            (n - col).min(NR),
                            first,
                            last,
                            epi,
                        );
                        #[cfg(not(target_arch = "x86_64"))]
                        let _ = (mr, epi, first, last, col, a, lda, out);
                    }
                }
            }
        }
    }
}

struct Op<'a> {
    lin: &'a PackedLinear,
    gelu: bool,
}

impl CustomOp1 for Op<'_> {
    fn name(&self) -> &'static str {
        "packed-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = super::storage::contiguous_f32(CustomOp1::name(self), storage, layout)?;
        let (m, shape) = self.lin.out_shape(layout)?;
        let y = self.lin.run(x, m, None, self.gelu);
        Ok((CpuStorage::F32(y), shape))
    }
}

impl CustomOp2 for Op<'_> {
    fn name(&self) -> &'static str {
        "packed-linear-residual"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = super::storage::contiguous_f32(CustomOp2::name(self), s1, l1)?;
        let res = super::storage::contiguous_f32(CustomOp2::name(self), s2, l2)?;
        let (m, shape) = self.lin.out_shape(l1)?;
        if l2.shape() != &shape {
            candle_core::bail!(
                "packed-linear: residual {:?} does not match the output {shape:?}",
                l2.dims()
            );
        }
        let y = self.lin.run(x, m, Some(res), self.gelu);
        Ok((CpuStorage::F32(y), shape))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Module, Tensor};

    use super::{PackedLinear, Precision};
    use crate::model::cpu::testing::{fixed_values, max_diff};

    /// Every shape class the driver distinguishes: rows below, at and above a task's block
    /// (remainder micro-tiles), columns not a multiple of a panel, k odd (bf16 pairs padded)
    /// and over a k block, not a multiple of it (partial sums: three blocks in f32, two in
    /// bf16).
    const SHAPES: [(usize, usize, usize); 6] = [
        (1, 7, 5),
        (5, 64, 96),
        (64, 100, 300),
        (131, 130, 513),
        (700, 200, 77),
        (70, 100, 1601),
    ];

    /// A layer, input and residual of fixed values (the same verdict every run), of standard
    /// deviations 0.05 (weight), 0.1 (bias) and 1 (input, residual).
    fn case(m: usize, n: usize, k: usize) -> (candle_nn::Linear, Tensor, Tensor) {
        let dev = Device::Cpu;
        let seed = (m * 7919 + n * 104_729 + k) as u32;
        let uniform = |len: usize, sd: f32, seed: u32, shape: &[usize]| {
            let a = sd * 3f32.sqrt();
            Tensor::from_vec(fixed_values(len, seed, -a, a), shape, &dev).unwrap()
        };
        let w = uniform(n * k, 0.05, seed, &[n, k]);
        let b = uniform(n, 0.1, seed ^ 1, &[n]);
        let x = uniform(m * k, 1.0, seed ^ 2, &[1, m, k]);
        let res = uniform(m * n, 1.0, seed ^ 3, &[1, m, n]);
        (candle_nn::Linear::new(w, Some(b)), x, res)
    }

    #[test]
    fn f32_products_match_candles_with_bias_gelu_and_residual() {
        if !Precision::F32.available() {
            eprintln!("skipped: this CPU has no AVX-512");
            return;
        }
        for (m, n, k) in SHAPES {
            let (lin, x, res) = case(m, n, k);
            // Two orders of f32 sums: differences grow with the square root of k.
            let tolerance = 1e-5 * (k as f32 / 512.0).sqrt().max(1.0);
            let packed = PackedLinear::new(lin.weight(), lin.bias(), Precision::F32)
                .unwrap()
                .unwrap();
            let want = lin.forward(&x).unwrap();
            let d = max_diff(&packed.forward(&x, false).unwrap(), &want);
            assert!(d < tolerance, "{m}x{n}x{k}: {d}");
            let d = max_diff(
                &packed.forward(&x, true).unwrap(),
                &want.gelu_erf().unwrap(),
            );
            assert!(d < tolerance, "{m}x{n}x{k} gelu: {d}");
            let d = max_diff(
                &packed.forward_residual(&x, &res).unwrap(),
                &(&want + &res).unwrap(),
            );
            assert!(d < tolerance, "{m}x{n}x{k} residual: {d}");
        }
    }

    #[test]
    fn bf16_products_match_rounded_inputs() {
        if !Precision::Bf16.available() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        let round = |t: &Tensor| {
            t.to_dtype(candle_core::DType::BF16)
                .unwrap()
                .to_dtype(candle_core::DType::F32)
                .unwrap()
        };
        for (m, n, k) in SHAPES {
            let (lin, x, res) = case(m, n, k);
            let packed = PackedLinear::new(lin.weight(), lin.bias(), Precision::Bf16)
                .unwrap()
                .unwrap();
            // The same products over bf16-rounded operands, in f32: only the order of the
            // f32 additions differs.
            let rounded = candle_nn::Linear::new(round(lin.weight()), lin.bias().cloned());
            let want = rounded.forward(&round(&x)).unwrap();
            let d = max_diff(&packed.forward(&x, false).unwrap(), &want);
            assert!(d < 1e-4, "{m}x{n}x{k}: {d}");
            let d = max_diff(
                &packed.forward(&x, true).unwrap(),
                &want.gelu_erf().unwrap(),
            );
            assert!(d < 1e-4, "{m}x{n}x{k} gelu: {d}");
            let d = max_diff(
                &packed.forward_residual(&x, &res).unwrap(),
                &(&want + &res).unwrap(),
            );
            assert!(d < 1e-4, "{m}x{n}x{k} residual: {d}");
            // And within bf16's rounding of the f32 product.
            let d = max_diff(
                &packed.forward(&x, false).unwrap(),
                &lin.forward(&x).unwrap(),
            );
            assert!(d < 0.0015 * (k as f32).sqrt(), "{m}x{n}x{k} vs f32: {d}");
        }
    }
}
