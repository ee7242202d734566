//! LayerNorm for CPU inference as one operation.
//!
//! candle-nn's fused LayerNorm sums `x` and `x²` of a row in one scalar (unvectorised) loop and
//! takes the variance as `E[x²] - mean²`, which loses digits where a row's mean is large beside
//! its spread; it also zeroes its output before writing it. Here each row is two vectorised
//! passes (the mean, then the centred variance, as PyTorch's LayerNorm is exact in f32) and the
//! output is written once; rows run in parallel in blocks.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::lanes;

/// Rows per task: enough work per task to amortise the pool (768 features: ~0.2 MiB).
const ROWS_PER_TASK: usize = 64;

/// `(x - mean) / sqrt(var + eps) * weight + bias` over the last dimension of f32 `x` on the CPU.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    let weight = weight.to_vec1::<f32>()?;
    let bias = match bias {
        Some(b) => b.to_vec1::<f32>()?,
        None => vec![0.0; weight.len()],
    };
    if bias.len() != weight.len() {
        candle_core::bail!(
            "layer-norm: {} weights, {} biases",
            weight.len(),
            bias.len()
        );
    }
    x.contiguous()?.apply_op1_no_bwd(&LayerNorm {
        weight,
        bias,
        eps: eps as f32,
    })
}

struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn row(&self, src: &[f32], dst: &mut [std::mem::MaybeUninit<f32>]) {
        let n = src.len() as f32;
        let mean = lanes::sum(src, |v| v) / n;
        let var = lanes::sum(src, |v| (v - mean) * (v - mean)) / n;
        let inv_std = (var + self.eps).sqrt().recip();
        for (((d, &s), &w), &b) in dst.iter_mut().zip(src).zip(&self.weight).zip(&self.bias) {
            d.write((s - mean) * inv_std * w + b);
        }
    }
}

impl CustomOp1 for LayerNorm {
    fn name(&self) -> &'static str {
        "layer-norm"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = super::storage::contiguous_f32(self.name(), storage, layout)?;
        let d = self.weight.len();
        if layout.dims().last() != Some(&d) || d == 0 {
            candle_core::bail!("layer-norm: input {:?} does not end in {d}", layout.dims());
        }
        let mut dst: Vec<f32> = Vec::with_capacity(src.len());
        dst.spare_capacity_mut()[..src.len()]
            .par_chunks_mut(ROWS_PER_TASK * d)
            .zip(src.par_chunks(ROWS_PER_TASK * d))
            .for_each(|(out, rows)| {
                for (o, r) in out.chunks_exact_mut(d).zip(rows.chunks_exact(d)) {
                    self.row(r, o);
                }
            });
        // SAFETY: every row of `src` (its length a multiple of d, as checked) wrote its d
        // elements above.
        unsafe { dst.set_len(src.len()) };
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Module, Tensor};

    use crate::model::cpu::testing::{fixed_values, max_diff};

    #[test]
    fn matches_candles_layer_norm_and_is_exact_on_offset_rows() {
        let dev = Device::Cpu;
        // Fixed inputs: 130 rows (two tasks and a part), 77 features (lanes and a tail).
        let x = Tensor::from_vec(fixed_values(130 * 77, 7, -2.0, 2.0), (2, 65, 77), &dev).unwrap();
        let w = Tensor::from_vec(fixed_values(77, 11, 0.8, 1.2), 77, &dev).unwrap();
        let b = Tensor::from_vec(fixed_values(77, 13, -0.2, 0.2), 77, &dev).unwrap();
        let ln = candle_nn::LayerNorm::new(w.clone(), b.clone(), 1e-6);
        let got = super::layer_norm(&x, &w, Some(&b), 1e-6).unwrap();
        assert_eq!(got.dims(), x.dims());
        let d = max_diff(&got, &ln.forward(&x).unwrap());
        assert!(d < 1e-5, "{d}");
        // A row offset by 100 normalises as the row itself, up to the offset's rounding of
        // the input (1e-5): the centred variance keeps what E[x²] - mean² in f32 loses.
        let offset = (&x + 100.0).unwrap();
        let d = max_diff(
            &super::layer_norm(&offset, &w, Some(&b), 1e-6).unwrap(),
            &got,
        );
        let candle = max_diff(&ln.forward(&offset).unwrap(), &got);
        assert!(d < 5e-5, "{d} (candle's: {candle})");
    }
}
