//! A linear layer: candle-nn's, with autocast for training and, for inference on the CPU fast
//! path, its weight packed once ([`super::cpu::Packed`]).

use std::sync::Arc;

use candle_core::{DType, Module, Result, Tensor};

use super::cpu::{self, Packed, Packing};
use super::Pass;

/// A linear layer `x W^T + b`.
#[derive(Debug, Clone)]
pub struct Linear {
    /// None once packed: inference needs only the packed copy (half the memory).
    inner: Option<candle_nn::Linear>,
    packed: Option<Arc<Packed>>,
}

impl Linear {
    /// Wraps candle-nn's layer.
    pub fn new(inner: candle_nn::Linear) -> Self {
        Self {
            inner: Some(inner),
            packed: None,
        }
    }

    /// Packs the weight as `packing` says and drops the unpacked copy: from then on the layer
    /// serves fast-path passes only ([`cpu::fast_path`]).
    pub fn pack(&mut self, packing: Packing) -> Result<()> {
        if let Some(inner) = self.inner.take() {
            let packed = Packed::new(inner.weight(), inner.bias(), packing)?;
            self.packed = Some(Arc::new(packed));
        }
        Ok(())
    }

    /// The precision of the AVX-512 kernels this layer was packed for, if it was.
    pub fn kernel_precision(&self) -> Option<cpu::kernels::Precision> {
        match self.packed.as_deref()? {
            Packed::Kernels(k) => Some(k.precision()),
            #[cfg(feature = "mkl")]
            Packed::Mkl(_) => None,
        }
    }

    /// The packed weight, if this pass over `x` is on the fast path.
    fn packed_for(&self, x: &Tensor, pass: Pass) -> Option<&Packed> {
        self.packed.as_deref().filter(|_| cpu::fast_path(x, pass))
    }

    /// `gelu(x W^T + b)`, fused into the product where the weight is packed.
    pub fn forward_gelu(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        match self.packed_for(x, pass) {
            Some(p) => p.forward_gelu(x),
            None => cpu::gelu_erf(&self.unpacked(x, pass)?, pass),
        }
    }

    /// `residual + x W^T + b` (`residual` shaped as the output), fused into the product where
    /// the weight is packed.
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor, pass: Pass) -> Result<Tensor> {
        match self.packed_for(x, pass) {
            Some(p) => p.forward_add(x, residual),
            None => residual + self.unpacked(x, pass)?,
        }
    }

    /// `x W^T + b`.
    pub fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        match self.packed_for(x, pass) {
            Some(p) => p.forward(x),
            None => self.unpacked(x, pass),
        }
    }

    /// candle's product; with the pass's autocast, it runs in that dtype (inputs cast, output
    /// cast back to `x`'s dtype) and the bias is added in full precision, as PyTorch's autocast
    /// does.
    fn unpacked(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let Some(layer) = &self.inner else {
            candle_core::bail!(
                "this layer was packed for CPU inference: it takes f32 CPU inputs without gradients"
            );
        };
        let Some(dt) = pass.autocast().filter(|&dt| dt != x.dtype()) else {
            return layer.forward(x);
        };
        autocast_forward(layer, x, dt)
    }
}

/// `x W^T + b` with the product in `dt`.
fn autocast_forward(layer: &candle_nn::Linear, x: &Tensor, dt: DType) -> Result<Tensor> {
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
