//! A transformer block: pre-norm self-attention (shared by both modalities) and one feed-forward
//! layer per modality, with the training-only regularisers.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{LayerNorm, VarBuilder};

use super::config::IvtConfig;
use super::linear::Linear;
use super::{cpu, Modality, Noise, Pass};

/// Multi-head self-attention with an additive key mask, shared by both modalities.
#[derive(Debug, Clone)]
pub(super) struct Attention {
    pub(super) qkv: Linear,
    pub(super) proj: Linear,
    num_heads: usize,
    scale: f64,
}

impl Attention {
    fn new(cfg: &IvtConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let qkv = if cfg.qkv_bias {
            candle_nn::linear(d, 3 * d, vb.pp("qkv"))?
        } else {
            candle_nn::linear_no_bias(d, 3 * d, vb.pp("qkv"))?
        };
        Ok(Self {
            qkv: Linear::new(qkv),
            proj: Linear::new(candle_nn::linear(d, d, vb.pp("proj"))?),
            num_heads: cfg.num_heads,
            scale: ((d / cfg.num_heads) as f64).powf(-0.5),
        })
    }

    /// `mask`, if given, is additive and broadcastable to `[B, heads, N, N]` (`[B, 1, 1, N]`).
    /// With `residual`, returns `residual + attention(x)`. With `cls_only`, only token 0 attends
    /// (to every token): the output is `[B, 1, C]`.
    fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        pass: Pass,
        residual: Option<&Tensor>,
        cls_only: bool,
    ) -> Result<Tensor> {
        let out = if cpu::fast_path(x, pass) {
            let qkv = self.qkv.forward(x, pass)?;
            let queries = if cls_only { 1 } else { x.dim(1)? };
            // Its products run on the kernels the layers were packed for (bf16 too), if any.
            let kernels = self.qkv.kernel_precision();
            let scale = self.scale as f32;
            cpu::self_attention(&qkv, mask, self.num_heads, scale, queries, kernels)?
        } else {
            self.composed(x, mask, pass, cls_only)?
        };
        match residual {
            Some(res) => self.proj.forward_add(&out, res, pass),
            None => self.proj.forward(&out, pass),
        }
    }

    /// Attention from candle's operations (any device, differentiable), before the projection.
    fn composed(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        pass: Pass,
        cls_only: bool,
    ) -> Result<Tensor> {
        let (b, n, c) = x.dims3()?;
        let hd = c / self.num_heads;
        let qkv = self
            .qkv
            .forward(x, pass)?
            .reshape((b, n, 3, self.num_heads, hd))?
            .permute((2, 0, 3, 1, 4))?;
        let cast = |t: Tensor| match pass.autocast() {
            Some(dt) => t.to_dtype(dt),
            None => Ok(t),
        };
        let (q, nq) = match cls_only {
            true => (qkv.get(0)?.narrow(2, 0, 1)?, 1),
            false => (qkv.get(0)?, n),
        };
        let q = cast(q.contiguous()?)?;
        let k = cast(qkv.get(1)?.contiguous()?)?;
        let v = cast(qkv.get(2)?.contiguous()?)?;
        let mut attn = (q.matmul(&k.t()?)?.to_dtype(x.dtype())? * self.scale)?;
        if let Some(mask) = mask {
            attn = attn.broadcast_add(mask)?;
        }
        // candle-nn's fused softmax has no backward pass; training uses the composed one.
        let attn = match pass {
            Pass::Train(_) => candle_nn::ops::softmax(&attn, D::Minus1)?,
            Pass::Infer => candle_nn::ops::softmax_last_dim(&attn)?,
        };
        cast(attn)?
            .matmul(&v)?
            .to_dtype(x.dtype())?
            .transpose(1, 2)?
            .reshape((b, nq, c))
    }
}

/// Feed-forward layer: fc1 → exact (erf) GELU → fc2.
#[derive(Debug, Clone)]
pub(super) struct Mlp {
    pub(super) fc1: Linear,
    pub(super) fc2: Linear,
}

impl Mlp {
    fn new(cfg: &IvtConfig, vb: VarBuilder) -> Result<Self> {
        let (d, m) = (cfg.hidden_size, cfg.mlp_hidden());
        Ok(Self {
            fc1: Linear::new(candle_nn::linear(d, m, vb.pp("fc1"))?),
            fc2: Linear::new(candle_nn::linear(m, d, vb.pp("fc2"))?),
        })
    }

    /// With `residual`, returns `residual + mlp(x)`.
    fn forward(&self, x: &Tensor, pass: Pass, residual: Option<&Tensor>) -> Result<Tensor> {
        let h = self.fc1.forward_gelu(x, pass)?;
        match residual {
            Some(res) => self.fc2.forward_add(&h, res, pass),
            None => self.fc2.forward(&h, pass),
        }
    }
}

/// Pre-norm block with shared norms/attention and modality-specific MLPs.
#[derive(Debug, Clone)]
pub(super) struct Block {
    norm1: LayerNorm,
    pub(super) attn: Attention,
    norm2: LayerNorm,
    pub(super) mlp_vis: Mlp,
    pub(super) mlp_txt: Mlp,
}

impl Block {
    pub(super) fn new(cfg: &IvtConfig, vb: VarBuilder) -> Result<Self> {
        let ln =
            |name: &str| candle_nn::layer_norm(cfg.hidden_size, cfg.layer_norm_eps, vb.pp(name));
        Ok(Self {
            norm1: ln("norm1")?,
            attn: Attention::new(cfg, vb.pp("attn"))?,
            norm2: ln("norm2")?,
            mlp_vis: Mlp::new(cfg, vb.pp("mlp_vis"))?,
            mlp_txt: Mlp::new(cfg, vb.pp("mlp_txt"))?,
        })
    }

    /// Every linear layer of the block.
    pub(super) fn linears_mut(&mut self) -> [&mut Linear; 6] {
        [
            &mut self.attn.qkv,
            &mut self.attn.proj,
            &mut self.mlp_vis.fc1,
            &mut self.mlp_vis.fc2,
            &mut self.mlp_txt.fc1,
            &mut self.mlp_txt.fc2,
        ]
    }

    /// One block; `drop_path` is its stochastic-depth rate (training). With `cls_only`, only
    /// token 0's output is computed (`[B, 1, C]`; its attention still reads every token): the
    /// last block of a pass whose only result is the class token.
    pub(super) fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        modality: Modality,
        pass: Pass,
        drop_path: f32,
        cls_only: bool,
    ) -> Result<Tensor> {
        let mlp = match modality {
            Modality::Image => &self.mlp_vis,
            Modality::Text => &self.mlp_txt,
        };
        let residual = match cls_only {
            true => x.narrow(1, 0, 1)?.contiguous()?,
            false => x.clone(),
        };
        let Pass::Train(opts) = pass else {
            // Inference: the residual adds go into the output projections (fused with packed
            // weights).
            let x = self.attn.forward(
                &layer_norm(&self.norm1, x, pass)?,
                mask,
                pass,
                Some(&residual),
                cls_only,
            )?;
            return mlp.forward(&layer_norm(&self.norm2, &x, pass)?, pass, Some(&x));
        };
        let h = self.attn.forward(
            &layer_norm(&self.norm1, x, pass)?,
            mask,
            pass,
            None,
            cls_only,
        )?;
        let x = (residual + drop_samples(&h, drop_path, &opts.noise)?)?;
        let h = mlp.forward(&layer_norm(&self.norm2, &x, pass)?, pass, None)?;
        x + drop_samples(&h, drop_path, &opts.noise)?
    }
}

/// LayerNorm: on the CPU fast path one vectorised operation, elsewhere in inference candle-nn's
/// fused kernel; in training built from primitive ops, because the fused kernel has no backward
/// pass (it would cut the graph).
pub(super) fn layer_norm(ln: &LayerNorm, x: &Tensor, pass: Pass) -> Result<Tensor> {
    if cpu::fast_path(x, pass) {
        return cpu::layer_norm(x, ln.weight(), ln.bias(), ln.eps());
    }
    match (pass, ln.bias()) {
        (Pass::Train(_), Some(bias)) => composed_layer_norm(ln, bias, x),
        _ => ln.forward(x),
    }
}

/// LayerNorm from primitive (differentiable) operations.
pub(super) fn composed_layer_norm(ln: &LayerNorm, bias: &Tensor, x: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred
        .broadcast_div(&(var + ln.eps())?.sqrt()?)?
        .broadcast_mul(ln.weight())?
        .broadcast_add(bias)
}

/// Stochastic depth: zeroes the residual branch of whole samples with probability `p`,
/// rescaling the kept ones.
fn drop_samples(x: &Tensor, p: f32, noise: &Noise) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let mask = keep_mask((x.dim(0)?, 1, 1), p, noise, x)?;
    x.broadcast_mul(&mask)
}

/// Inverted dropout with the pass's seeded noise.
pub(super) fn dropout(x: &Tensor, p: f32, noise: &Noise) -> Result<Tensor> {
    x.mul(&keep_mask(x.shape(), p, noise, x)?)
}

/// A `shape` mask on `like`'s device and dtype: 0 with probability `p`, else `1 / (1 - p)`.
fn keep_mask(
    shape: impl Into<candle_core::Shape>,
    p: f32,
    noise: &Noise,
    like: &Tensor,
) -> Result<Tensor> {
    let keep = 1.0 - p as f64;
    let u = noise
        .uniform(shape, like.device())?
        .to_dtype(like.dtype())?;
    (u + keep)?.floor()? / keep
}
