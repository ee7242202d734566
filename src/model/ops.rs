//! Operations the network needs beyond candle-nn's:
//! - a multi-threaded GELU for CPU inference: candle's element-wise ops run on one thread, and on
//!   a 2-core server the MLP's GELU alone is a noticeable share of an image pass. Its erf is the
//!   rational approximation Eigen and XLA vectorise (within 5e-7 of libm's `erff`), which the
//!   compiler turns into SIMD code; libm's scalar `erff` was 4 % of an image pass;
//! - a linear layer with autocast (reduced-precision products over f32 master weights);
//! - seeded noise for dropout and stochastic depth, since candle's CPU generator cannot be seeded.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Module, Result, Shape, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

/// A linear layer: candle-nn's, plus its weight packed once for CPU inference (MKL's packed
/// GEMM in MKL builds, the AVX-512 kernels of `kernels.rs` elsewhere where the CPU has them).
#[derive(Debug, Clone)]
pub struct Linear {
    /// None once packed: inference needs only the packed copy (half the memory).
    inner: Option<candle_nn::Linear>,
    #[cfg(feature = "mkl")]
    packed: Option<Arc<super::mkl::PackedLinear>>,
    fast: Option<Arc<super::packed::PackedLinear>>,
}

impl Linear {
    /// Wraps candle-nn's layer.
    pub fn new(inner: candle_nn::Linear) -> Self {
        Self {
            inner: Some(inner),
            #[cfg(feature = "mkl")]
            packed: None,
            fast: None,
        }
    }

    /// Packs the weight for CPU inference with products in `compute` (f32 or bf16) and drops
    /// the unpacked copy: from then on the layer serves f32 CPU passes without gradients only.
    #[cfg(feature = "mkl")]
    pub fn pack(&mut self, compute: DType) -> Result<()> {
        if let Some(inner) = self.inner.take() {
            let packed = super::mkl::PackedLinear::new(inner.weight(), inner.bias(), compute)?;
            self.packed = Some(Arc::new(packed));
        }
        Ok(())
    }

    /// Packs the weight for the AVX-512 kernels in `precision` and drops the unpacked copy, as
    /// [`Linear::pack`]; returns false (and changes nothing) where the CPU lacks the kernels'
    /// instructions.
    pub fn pack_for_kernels(&mut self, precision: super::kernels::Precision) -> Result<bool> {
        let Some(inner) = &self.inner else {
            return Ok(self.fast.is_some());
        };
        match super::packed::PackedLinear::new(inner.weight(), inner.bias(), precision)? {
            Some(packed) => {
                self.fast = Some(Arc::new(packed));
                self.inner = None;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The packed kernels' layer, if `x` is an input they take (f32 on the CPU, no gradient).
    fn kernels_for(&self, x: &Tensor) -> Option<&super::packed::PackedLinear> {
        self.fast
            .as_deref()
            .filter(|_| x.device().is_cpu() && x.dtype() == DType::F32 && !x.track_op())
    }

    /// `gelu(x W^T + b)`, fused into the product where the weight is packed for the kernels.
    pub fn forward_gelu(&self, x: &Tensor, autocast: Option<DType>) -> Result<Tensor> {
        match self.kernels_for(x) {
            Some(k) => k.forward(x, true),
            None => gelu_erf(&self.forward(x, autocast)?),
        }
    }

    /// `residual + x W^T + b` (inference: `residual` shaped as the output), fused into the
    /// product where the weight is packed for the kernels.
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        match self.kernels_for(x) {
            Some(k) => k.forward_residual(x, residual),
            None => residual + self.forward(x, None)?,
        }
    }

    /// `x W^T + b`; with `autocast`, the product runs in that dtype (inputs cast, output cast
    /// back to `x`'s dtype) and the bias is added in full precision, as PyTorch's autocast does.
    pub fn forward(&self, x: &Tensor, autocast: Option<DType>) -> Result<Tensor> {
        if let Some(k) = self.kernels_for(x) {
            return k.forward(x, false);
        }
        #[cfg(feature = "mkl")]
        if let Some(packed) = &self.packed {
            if x.device().is_cpu() && x.dtype() == DType::F32 && !x.track_op() {
                return packed.forward(x);
            }
        }
        let Some(layer) = &self.inner else {
            candle_core::bail!(
                "this layer was packed for CPU inference: it takes f32 CPU inputs without gradients"
            );
        };
        let Some(dt) = autocast.filter(|&dt| dt != x.dtype()) else {
            return layer.forward(x);
        };
        let mut out_dims = x.dims().to_vec();
        let w = layer.weight().to_dtype(dt)?;
        let (out_features, in_features) = w.dims2()?;
        if let Some(last) = out_dims.last_mut() {
            *last = out_features;
        }
        let y = x
            .to_dtype(dt)?
            .reshape(((), in_features))?
            .matmul(&w.t()?)?
            .to_dtype(x.dtype())?
            .reshape(out_dims)?;
        match layer.bias() {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// Uniform noise for the training regularisers, reproducible from a seed on every device: on the
/// CPU it is drawn on the host from a seeded generator; on a GPU the device generator is seeded
/// when the source is created, and draws follow in the pass's fixed order.
#[derive(Debug, Clone)]
pub struct Noise {
    host: Arc<Mutex<StdRng>>,
}

impl Default for Noise {
    fn default() -> Self {
        Self {
            host: Arc::new(Mutex::new(StdRng::seed_from_u64(0))),
        }
    }
}

impl Noise {
    /// A source for one training step on `device`.
    pub fn new(seed: u64, device: &Device) -> Result<Self> {
        if !device.is_cpu() {
            device.set_seed(seed)?;
        }
        Ok(Self {
            host: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
        })
    }

    /// f32 values uniform in `[0, 1)`.
    pub fn uniform(&self, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        if !device.is_cpu() {
            return Tensor::rand(0f32, 1f32, shape, device);
        }
        let mut rng = self
            .host
            .lock()
            .map_err(|_| candle_core::Error::Msg("noise generator poisoned".into()))?;
        let data: Vec<f32> = (0..shape.elem_count()).map(|_| rng.random()).collect();
        Tensor::from_vec(data, shape, device)
    }
}

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

/// The f32 elements a CPU custom op `op` reads: its storage must be f32 and `layout` contiguous.
pub(super) fn contiguous_f32<'a>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: expected f32 input");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: expected a contiguous input");
    };
    Ok(&data[start..end])
}

/// Elements per rayon task: large enough to amortise scheduling, small enough to balance.
const CHUNK: usize = 16 * 1024;

impl CustomOp1 for ParallelGeluErf {
    fn name(&self) -> &'static str {
        "parallel-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(self.name(), storage, layout)?;
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
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
            .fold(0f32, f32::max);
        assert!(worst < 2e-6, "GELU differs from candle's by {worst}");
    }
}
