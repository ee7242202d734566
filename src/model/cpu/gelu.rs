//! A multi-threaded exact GELU for CPU inference: candle's element-wise ops run on one thread,
//! and on a 2-core server the MLP's GELU alone is a noticeable share of an image pass. Its erf is
//! the rational approximation Eigen and XLA vectorise (within 5e-7 of libm's `erff`), which the
//! compiler turns into SIMD code; libm's scalar `erff` was 4 % of an image pass. (With packed
//! weights the GELU is fused into the product instead: `kernels.rs`.)

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::model::Pass;

/// Exact (erf) GELU, `0.5 * x * (1 + erf(x / sqrt(2)))`. Multi-threaded on CPU for f32 tensors
/// on the fast path ([`super::fast_path`]); candle's `gelu_erf` everywhere else (GPU, other
/// dtypes, training).
pub fn gelu_erf(x: &Tensor, pass: Pass) -> Result<Tensor> {
    if super::fast_path(x, pass) && x.is_contiguous() {
        x.apply_op1_no_bwd(&ParallelGeluErf)
    } else {
        x.gelu_erf()
    }
}

struct ParallelGeluErf;

/// erf for f32: Eigen's `generic_fast_erf_float` (also XLA's), a 13/8-degree rational function on
/// [-4, 4], where f32's erf reaches ±1. Branch-free, so loops over it vectorise.
#[inline(always)]
#[allow(clippy::excessive_precision)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.72614225801306e-10 + 2.77068142495902e-08;
    p = x2 * p + -2.10102402082508e-06;
    p = x2 * p + -5.69250639462346e-05;
    p = x2 * p + -7.34990630326855e-04;
    p = x2 * p + -2.95459980854025e-03;
    p = x2 * p + -1.60960333262415e-02;
    let mut q = x2 * -1.45660718464996e-05 + -2.13374055278905e-04;
    q = x2 * q + -1.68282697438203e-03;
    q = x2 * q + -7.37332916720468e-03;
    q = x2 * q + -1.42647390514189e-02;
    x * p / q
}

/// Elements per rayon task: large enough to amortise scheduling, small enough to balance.
const CHUNK: usize = 16 * 1024;

impl CustomOp1 for ParallelGeluErf {
    fn name(&self) -> &'static str {
        "parallel-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = super::storage::contiguous_f32(self.name(), storage, layout)?;
        let mut dst = vec![0f32; src.len()];
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| {
                for (d, &v) in d.iter_mut().zip(s) {
                    *d = (erf(v * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5 * v;
                }
            });
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    #[test]
    fn fast_erf_is_within_5e_7_of_libm() {
        let mut worst = 0f32;
        for i in -100_000..=100_000 {
            let x = i as f32 * 1e-4;
            let d = (super::erf(x) - candle_core::cpu::erf::erf_f32(x)).abs();
            worst = worst.max(d);
        }
        assert!(worst < 5e-7, "erf differs from libm by {worst}");
        assert!((super::erf(9.0) - 1.0).abs() < 1e-6);
        assert!((super::erf(-9.0) + 1.0).abs() < 1e-6);
        assert_eq!(super::erf(0.0), 0.0);
    }

    #[test]
    fn parallel_gelu_matches_candles() {
        let x = Tensor::randn(0f32, 3f32, (37, 1000), &Device::Cpu).unwrap();
        let a = super::gelu_erf(&x, crate::model::Pass::Infer)
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
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
            .fold(0f32, f32::max);
        assert!(worst < 2e-6, "GELU differs from candle's by {worst}");
    }
}
