//! The CPU fast path of inference: fused self-attention, a multi-threaded GELU, and linear layers
//! whose weights are packed once (MKL's packed GEMM in `mkl` builds, the AVX-512 kernels of
//! `kernels.rs` elsewhere, where the CPU has them).
//!
//! One decision says when it applies: [`fast_path`], an inference pass over f32 CPU tensors
//! without gradients. Everything else (training, autocast, GPUs, other dtypes) runs candle's
//! composed operations.

mod attention;
mod gelu;
pub mod kernels;
mod lanes;
#[cfg(feature = "mkl")]
mod mkl;
mod norm;
pub mod packed;
mod storage;
#[cfg(test)]
mod testing;

use candle_core::{DType, Device, Result, Tensor};

use super::Pass;

pub use attention::self_attention;
pub use gelu::gelu_erf;
pub use norm::layer_norm;

/// Whether the network's weights on `device` in `dtype` can serve fast-path passes (f32 on the
/// CPU): the one condition on the weights behind [`fast_path`].
pub fn fast_path_weights(device: &Device, dtype: DType) -> bool {
    device.is_cpu() && dtype == DType::F32
}

/// Whether this operation on `x` takes the CPU fast path: an inference pass over f32 CPU
/// tensors that track no gradient.
pub fn fast_path(x: &Tensor, pass: Pass) -> bool {
    matches!(pass, Pass::Infer) && fast_path_weights(x.device(), x.dtype()) && !x.track_op()
}

/// Token rows a fast-path pass takes at once: larger batches run in sub-batches of about this
/// many rows. Measured on a 2-core AMD EPYC (Zen 4): 2 images a pass (622 rows) encode as fast
/// per image as one, 4 slower, 16 about 13 % slower, as the activations (rows x 3072 floats
/// after `fc1`) outgrow the caches. (Texts run whole: 16 of 64 tokens ran no faster split.)
const ROWS_PER_PASS: usize = 640;

/// Items per fast-path pass for items of `rows` token rows (at least one).
pub fn items_per_pass(rows: usize) -> usize {
    (ROWS_PER_PASS / rows.max(1)).max(1)
}

/// A linear layer's weight packed once for fast-path products.
#[derive(Debug)]
pub enum Packed {
    /// For the AVX-512 kernels (bias, GELU and residual fused into the product).
    Kernels(packed::PackedLinear),
    /// For MKL's packed GEMM (bias fused).
    #[cfg(feature = "mkl")]
    Mkl(mkl::PackedLinear),
}

/// How this build packs weights for products in `compute` on this CPU: MKL's packed GEMM in
/// `mkl` builds; otherwise the AVX-512 kernels where the CPU has them (bf16 falls back to f32,
/// with a warning, where it lacks AVX512-BF16); None where it has no AVX-512 (candle's products).
#[derive(Debug, Clone, Copy)]
pub enum Packing {
    /// The AVX-512 kernels in this precision.
    Kernels(kernels::Precision),
    /// MKL's packed GEMM with products in this dtype (f32 or bf16).
    #[cfg(feature = "mkl")]
    Mkl(DType),
}

impl Packing {
    /// The packing for products in `compute` (f32 or bf16), if any.
    pub fn choose(compute: DType) -> Result<Option<Self>> {
        #[cfg(feature = "mkl")]
        {
            Ok(Some(Self::Mkl(compute)))
        }
        #[cfg(not(feature = "mkl"))]
        {
            use kernels::Precision;
            let precision = match compute {
                DType::F32 => Precision::F32,
                DType::BF16 if Precision::Bf16.available() => Precision::Bf16,
                DType::BF16 => {
                    tracing::warn!(
                        "--dtype bf16 on the CPU needs AVX512-BF16, which this CPU lacks: \
                         computing in f32"
                    );
                    Precision::F32
                }
                other => candle_core::bail!("CPU products run in f32 or bf16, not {other:?}"),
            };
            if !precision.available() {
                tracing::debug!("no AVX-512 on this CPU: candle's f32 products");
                return Ok(None);
            }
            Ok(Some(Self::Kernels(precision)))
        }
    }
}

impl Packed {
    /// Packs `weight` `[out, in]` and `bias` as `packing` says.
    pub fn new(weight: &Tensor, bias: Option<&Tensor>, packing: Packing) -> Result<Self> {
        match packing {
            Packing::Kernels(precision) => {
                match packed::PackedLinear::new(weight, bias, precision)? {
                    Some(p) => Ok(Self::Kernels(p)),
                    None => candle_core::bail!("this CPU lacks the {precision:?} kernels"),
                }
            }
            #[cfg(feature = "mkl")]
            Packing::Mkl(compute) => Ok(Self::Mkl(mkl::PackedLinear::new(weight, bias, compute)?)),
        }
    }

    /// `x W^T + b`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Kernels(k) => k.forward(x, false),
            #[cfg(feature = "mkl")]
            Self::Mkl(m) => m.forward(x),
        }
    }

    /// `gelu(x W^T + b)`.
    pub fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Kernels(k) => k.forward(x, true),
            #[cfg(feature = "mkl")]
            Self::Mkl(m) => gelu_erf(&m.forward(x)?, Pass::Infer),
        }
    }

    /// `residual + x W^T + b`, `residual` shaped as the output.
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        match self {
            Self::Kernels(k) => k.forward_residual(x, residual),
            #[cfg(feature = "mkl")]
            Self::Mkl(m) => residual + m.forward(x)?,
        }
    }
}

/// Keeps the pass's parallelism in one thread pool while alive: in MKL builds, MKL runs
/// single-threaded on this thread (see `mkl::Sequential`); elsewhere it does nothing.
pub fn one_thread_pool(device: &Device) -> impl Sized {
    #[cfg(feature = "mkl")]
    {
        device.is_cpu().then(mkl::Sequential::new)
    }
    #[cfg(not(feature = "mkl"))]
    {
        let _ = device;
    }
}
