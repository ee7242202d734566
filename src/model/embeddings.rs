//! The two towers' input embeddings: overlapping image patches and BERT's text embeddings.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Embedding, LayerNorm, VarBuilder};

use super::block::composed_layer_norm;
use super::config::IvtConfig;

/// Overlapping patch embedding: a conv with kernel `patch_size` and stride `stride`.
#[derive(Debug, Clone)]
pub(super) struct PatchEmbed {
    proj: Conv2d,
}

impl PatchEmbed {
    pub(super) fn new(cfg: &IvtConfig, vb: VarBuilder) -> Result<Self> {
        let conv_cfg = Conv2dConfig {
            stride: cfg.stride,
            ..Default::default()
        };
        let proj = candle_nn::conv2d(3, cfg.hidden_size, cfg.patch_size, conv_cfg, vb.pp("proj"))?;
        Ok(Self { proj })
    }

    /// `[B, 3, H, W]` → `[B, rows*cols, D]`, row-major over the patch grid.
    pub(super) fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        self.proj.forward(pixels)?.flatten_from(2)?.transpose(1, 2)
    }

    /// The same as [`PatchEmbed::forward`], computed as a gather of the patches and one matrix
    /// product. Its backward pass is that product's: conv2d's needs conv_transpose2d and
    /// strided convolutions, which candle's CUDA kernels do not all accept.
    pub(super) fn forward_unfolded(&self, pixels: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = pixels.dims4()?;
        let weight = self.proj.weight();
        let (d, _, k, _) = weight.dims4()?;
        let s = self.proj.config().stride;
        if h < k || w < k {
            candle_core::bail!("image {h}x{w} is smaller than one {k}x{k} patch");
        }
        let (rows, cols) = ((h - k) / s + 1, (w - k) / s + 1);
        let mut index = Vec::with_capacity(rows * cols * c * k * k);
        for r in 0..rows {
            for col in 0..cols {
                for ch in 0..c {
                    for ky in 0..k {
                        let start = ch * h * w + (r * s + ky) * w + col * s;
                        index.extend((start..start + k).map(|i| i as u32));
                    }
                }
            }
        }
        let index = Tensor::from_vec(index, rows * cols * c * k * k, pixels.device())?;
        let patches = pixels
            .contiguous()?
            .reshape((b, c * h * w))?
            .index_select(&index, 1)?
            .reshape((b * rows * cols, c * k * k))?;
        let y = patches.matmul(&weight.reshape((d, c * k * k))?.t()?)?;
        let y = match self.proj.bias() {
            Some(bias) => y.broadcast_add(bias)?,
            None => y,
        };
        y.reshape((b, rows * cols, d))
    }
}

/// BERT embeddings: word + position + token type (always 0), then LayerNorm (eps 1e-12).
#[derive(Debug, Clone)]
pub(super) struct BertEmbeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    token_type_embeddings: Embedding,
    layer_norm: LayerNorm,
}

impl BertEmbeddings {
    pub(super) fn new(cfg: &IvtConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        Ok(Self {
            word_embeddings: candle_nn::embedding(cfg.vocab_size, d, vb.pp("word_embeddings"))?,
            position_embeddings: candle_nn::embedding(
                cfg.max_position_embeddings,
                d,
                vb.pp("position_embeddings"),
            )?,
            token_type_embeddings: candle_nn::embedding(
                cfg.type_vocab_size,
                d,
                vb.pp("token_type_embeddings"),
            )?,
            layer_norm: candle_nn::layer_norm(
                d,
                cfg.text_embedding_layer_norm_eps,
                vb.pp("LayerNorm"),
            )?,
        })
    }

    pub(super) fn forward(&self, input_ids: &Tensor) -> Result<Tensor> {
        let (_b, t) = input_ids.dims2()?;
        let words = self.word_embeddings.forward(input_ids)?;
        let positions = self
            .position_embeddings
            .embeddings()
            .narrow(0, 0, t)?
            .unsqueeze(0)?;
        let token_type = self.token_type_embeddings.embeddings().get(0)?;
        let x = words
            .broadcast_add(&token_type)?
            .broadcast_add(&positions)?;
        // Always differentiable: training reaches the word embeddings through this norm, and
        // at T x D its cost is negligible.
        match self.layer_norm.bias() {
            Some(bias) => composed_layer_norm(&self.layer_norm, bias, &x),
            None => self.layer_norm.forward(&x),
        }
    }
}
