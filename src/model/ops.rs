//! CPU fast paths for inference. candle's element-wise ops run on one thread; on a 2-core server
//! the MLP's GELU alone is a noticeable share of an image pass, so it is spread over rayon's
//! threads here. Results are bit-identical: the same erf is evaluated per element.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Exact (erf) GELU, `0.5 * x * (1 + erf(x / sqrt(2)))`. Multi-threaded on CPU for f32 tensors
/// that need no gradient; candle's `gelu_erf` everywhere else (GPU, other dtypes, training).
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && x.is_contiguous() && !x.track_op() {
        x.apply_op1_no_bwd(&ParallelGeluErf)
    } else {
        x.gelu_erf()
    }
}

struct ParallelGeluErf;

/// Elements per rayon task: large enough to amortise scheduling, small enough to balance.
const CHUNK: usize = 16 * 1024;

impl CustomOp1 for ParallelGeluErf {
    fn name(&self) -> &'static str {
        "parallel-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("parallel-gelu-erf: expected f32");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("parallel-gelu-erf: expected a contiguous tensor");
        };
        let src = &data[start..end];
        let mut dst = vec![0f32; src.len()];
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| {
                for (d, &v) in d.iter_mut().zip(s) {
                    *d = (candle_core::cpu::erf::erf_f32(v * std::f32::consts::FRAC_1_SQRT_2)
                        + 1.0)
                        * 0.5
                        * v;
                }
            });
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    #[test]
    fn parallel_gelu_is_bit_identical_to_candles() {
        let x = Tensor::randn(0f32, 3f32, (37, 1000), &Device::Cpu).unwrap();
        let a = super::gelu_erf(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = x
            .gelu_erf()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(a, b);
    }
}
