//! The IVT network (`UVT_Bert_IMG_TXT_MASK` in the authors' code): one ViT-shaped transformer
//! for both modalities. LayerNorms and attention are shared; each block has one feed-forward
//! layer per modality (`mlp_vis`, `mlp_txt`). Struct nesting mirrors the checkpoint names, so
//! loading needs no renaming beyond the `module.`/`encoder_vl.` prefixes.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Conv2d, Conv2dConfig, Embedding, LayerNorm, VarBuilder};

use super::config::IvtConfig;
use super::ops::{Linear, Noise};

/// Which tower's inputs and feed-forward layers a forward pass uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    /// Person images: patch embedding, `mlp_vis`.
    Image,
    /// Descriptions: BERT embeddings, `mlp_txt`.
    Text,
}

/// Regularisation and precision used only in training (the authors' drop-path and embedding
/// dropout; autocast as PyTorch's AMP).
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Maximum stochastic-depth rate, reached linearly at the last block.
    pub drop_path: f32,
    /// Dropout after the image and text embeddings.
    pub embed_dropout: f32,
    /// Autocast: matrix products take their inputs in this dtype (bf16 or f16) and return f32,
    /// while weights, norms, softmax and the residual stream stay f32.
    pub autocast: Option<DType>,
    /// Source of the dropout and stochastic-depth draws, seeded per step so runs reproduce.
    pub noise: Noise,
}

/// Overlapping patch embedding: a conv with kernel `patch_size` and stride `stride`.
#[derive(Debug, Clone)]
struct PatchEmbed {
    proj: Conv2d,
}

impl PatchEmbed {
    fn new(cfg: &IvtConfig, vb: VarBuilder) -> Result<Self> {
        let conv_cfg = Conv2dConfig {
            stride: cfg.stride,
            ..Default::default()
        };
        let proj = candle_nn::conv2d(3, cfg.hidden_size, cfg.patch_size, conv_cfg, vb.pp("proj"))?;
        Ok(Self { proj })
    }

    /// `[B, 3, H, W]` → `[B, rows*cols, D]`, row-major over the patch grid.
    fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        self.proj.forward(pixels)?.flatten_from(2)?.transpose(1, 2)
    }

    /// The same as [`PatchEmbed::forward`], computed as a gather of the patches and one matrix
    /// product. Its backward pass is that product's: conv2d's needs conv_transpose2d and
    /// strided convolutions, which candle's CUDA kernels do not all accept.
    fn forward_unfolded(&self, pixels: &Tensor) -> Result<Tensor> {
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
struct BertEmbeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    token_type_embeddings: Embedding,
    layer_norm: LayerNorm,
}

impl BertEmbeddings {
    fn new(cfg: &IvtConfig, vb: VarBuilder) -> Result<Self> {
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

    fn forward(&self, input_ids: &Tensor) -> Result<Tensor> {
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
        layer_norm(&self.layer_norm, &x, true)
    }
}

/// Multi-head self-attention with an additive key mask, shared by both modalities.
#[derive(Debug, Clone)]
struct Attention {
    qkv: Linear,
    proj: Linear,
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
    /// With `residual` (inference), returns `residual + attention(x)`.
    fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        train: bool,
        autocast: Option<DType>,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        if super::attention::applies(x, train, autocast) {
            let qkv = self.qkv.forward(x, autocast)?;
            let out =
                super::attention::self_attention(&qkv, mask, self.num_heads, self.scale as f32)?;
            return match residual {
                Some(res) => self.proj.forward_add(&out, res),
                None => self.proj.forward(&out, autocast),
            };
        }
        let (b, n, c) = x.dims3()?;
        let hd = c / self.num_heads;
        let qkv = self
            .qkv
            .forward(x, autocast)?
            .reshape((b, n, 3, self.num_heads, hd))?
            .permute((2, 0, 3, 1, 4))?;
        let cast = |t: Tensor| match autocast {
            Some(dt) => t.to_dtype(dt),
            None => Ok(t),
        };
        let q = cast(qkv.get(0)?.contiguous()?)?;
        let k = cast(qkv.get(1)?.contiguous()?)?;
        let v = cast(qkv.get(2)?.contiguous()?)?;
        let mut attn = (q.matmul(&k.t()?)?.to_dtype(x.dtype())? * self.scale)?;
        if let Some(mask) = mask {
            attn = attn.broadcast_add(mask)?;
        }
        // candle-nn's fused softmax has no backward pass; training uses the composed one.
        let attn = if train {
            candle_nn::ops::softmax(&attn, D::Minus1)?
        } else {
            candle_nn::ops::softmax_last_dim(&attn)?
        };
        let out = cast(attn)?
            .matmul(&v)?
            .to_dtype(x.dtype())?
            .transpose(1, 2)?
            .reshape((b, n, c))?;
        match residual {
            Some(res) => self.proj.forward_add(&out, res),
            None => self.proj.forward(&out, autocast),
        }
    }
}

/// Feed-forward layer: fc1 → exact (erf) GELU → fc2.
#[derive(Debug, Clone)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn new(cfg: &IvtConfig, vb: VarBuilder) -> Result<Self> {
        let (d, m) = (cfg.hidden_size, cfg.mlp_hidden());
        Ok(Self {
            fc1: Linear::new(candle_nn::linear(d, m, vb.pp("fc1"))?),
            fc2: Linear::new(candle_nn::linear(m, d, vb.pp("fc2"))?),
        })
    }

    /// With `residual` (inference), returns `residual + mlp(x)`.
    fn forward(
        &self,
        x: &Tensor,
        autocast: Option<DType>,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        let h = self.fc1.forward_gelu(x, autocast)?;
        match residual {
            Some(res) => self.fc2.forward_add(&h, res),
            None => self.fc2.forward(&h, autocast),
        }
    }
}

/// Pre-norm block with shared norms/attention and modality-specific MLPs.
#[derive(Debug, Clone)]
struct Block {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    mlp_vis: Mlp,
    mlp_txt: Mlp,
}

impl Block {
    fn new(cfg: &IvtConfig, vb: VarBuilder) -> Result<Self> {
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

    fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        modality: Modality,
        train: Option<(&TrainOptions, f32)>,
    ) -> Result<Tensor> {
        let autocast = train.and_then(|(t, _)| t.autocast);
        let mlp = match modality {
            Modality::Image => &self.mlp_vis,
            Modality::Text => &self.mlp_txt,
        };
        if train.is_none() {
            // Inference: the residual adds go into the output projections (fused with packed
            // weights).
            let x = self
                .attn
                .forward(&self.norm1.forward(x)?, mask, false, None, Some(x))?;
            return mlp.forward(&self.norm2.forward(&x)?, None, Some(&x));
        }
        let h = self.attn.forward(
            &layer_norm(&self.norm1, x, true)?,
            mask,
            true,
            autocast,
            None,
        )?;
        let x = (x + apply_drop_path(&h, train)?)?;
        let h = mlp.forward(&layer_norm(&self.norm2, &x, true)?, autocast, None)?;
        x + apply_drop_path(&h, train)?
    }
}

/// LayerNorm; with `differentiable`, built from primitive ops because candle-nn's fused kernel
/// has no backward pass (it would cut the graph in training).
fn layer_norm(ln: &LayerNorm, x: &Tensor, differentiable: bool) -> Result<Tensor> {
    let Some(bias) = ln.bias().filter(|_| differentiable) else {
        return ln.forward(x);
    };
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred
        .broadcast_div(&(var + ln.eps())?.sqrt()?)?
        .broadcast_mul(ln.weight())?
        .broadcast_add(bias)
}

/// Stochastic depth: zeroes the residual branch of whole samples, rescaling the kept ones.
fn apply_drop_path(x: &Tensor, train: Option<(&TrainOptions, f32)>) -> Result<Tensor> {
    match train {
        Some((opts, p)) if p > 0.0 => {
            let mask = keep_mask((x.dim(0)?, 1, 1), p, &opts.noise, x)?;
            x.broadcast_mul(&mask)
        }
        _ => Ok(x.clone()),
    }
}

/// Inverted dropout with the pass's seeded noise.
fn dropout(x: &Tensor, p: f32, noise: &Noise) -> Result<Tensor> {
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

/// The IVT network. Build it with [`IvtModel::new`]; encode with [`IvtModel::forward_image`] and
/// [`IvtModel::forward_text`], or step by step ([`IvtModel::embed_image`], [`IvtModel::encode`])
/// when training needs to drop tokens in between.
#[derive(Debug, Clone)]
pub struct IvtModel {
    patch_embed: PatchEmbed,
    cls_token: Tensor,
    pos_embed: Tensor,
    type_embed: Tensor,
    embeddings: BertEmbeddings,
    blocks: Vec<Block>,
    norm: LayerNorm,
    config: IvtConfig,
}

impl IvtModel {
    /// Builds the network from `vb`, which holds the tensors under the authors' names without the
    /// `module.encoder_vl.` prefix (`patch_embed.proj.weight`, `blocks.0.attn.qkv.weight`, ...).
    pub fn new(cfg: &IvtConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let n = cfg.num_image_tokens();
        let blocks = (0..cfg.depth)
            .map(|i| Block::new(cfg, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            patch_embed: PatchEmbed::new(cfg, vb.pp("patch_embed"))?,
            cls_token: vb.get((1, 1, d), "cls_token")?,
            pos_embed: vb.get((1, n, d), "pos_embed")?,
            type_embed: vb.get((1, n, d), "type_embed")?,
            embeddings: BertEmbeddings::new(cfg, vb.pp("embeddings"))?,
            blocks,
            norm: candle_nn::layer_norm(d, cfg.layer_norm_eps, vb.pp("norm"))?,
            config: cfg.clone(),
        })
    }

    /// Prepares the network for inference on its device with matrix products in `compute`: on
    /// the CPU every linear weight is packed once (f32, or bf16 for the opt-in reduced-precision
    /// mode) and the unpacked copy dropped, so the network then serves f32 CPU passes without
    /// gradients only (what [`crate::model::Encoder`] runs). MKL builds pack for MKL's GEMM
    /// (`mkl.rs`); other builds for the AVX-512 kernels (`kernels.rs`) where the CPU has them,
    /// keeping candle's products (f32) where it does not. Elsewhere nothing changes.
    pub fn prepare_for_inference(&mut self, compute: DType) -> Result<()> {
        #[cfg(feature = "mkl")]
        if self.device().is_cpu() && self.dtype() == DType::F32 {
            for lin in self.linears_mut() {
                lin.pack(compute)?;
            }
            return Ok(());
        }
        #[cfg(not(feature = "mkl"))]
        if self.device().is_cpu() && self.dtype() == DType::F32 {
            use super::kernels::Precision;
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
            let mut packed = false;
            for lin in self.linears_mut() {
                packed = lin.pack_for_kernels(precision)?;
            }
            if !packed {
                tracing::debug!("no AVX-512 on this CPU: candle's f32 products");
            }
            return Ok(());
        }
        if compute != self.dtype() {
            candle_core::bail!(
                "products in {compute:?} over {:?} weights need f32 weights on CPU",
                self.dtype()
            );
        }
        Ok(())
    }

    /// Every linear layer of the blocks.
    fn linears_mut(&mut self) -> impl Iterator<Item = &mut Linear> {
        self.blocks.iter_mut().flat_map(|block| {
            [
                &mut block.attn.qkv,
                &mut block.attn.proj,
                &mut block.mlp_vis.fc1,
                &mut block.mlp_vis.fc2,
                &mut block.mlp_txt.fc1,
                &mut block.mlp_txt.fc2,
            ]
        })
    }

    /// The architecture this network was built with.
    pub fn config(&self) -> &IvtConfig {
        &self.config
    }

    /// Device of the weights.
    pub fn device(&self) -> &Device {
        self.cls_token.device()
    }

    /// Dtype of the weights.
    pub fn dtype(&self) -> DType {
        self.cls_token.dtype()
    }

    /// Image input tokens `[B, N, D]`: class token + patches, plus `pos_embed` and `type_embed`.
    pub fn embed_image(&self, pixels: &Tensor) -> Result<Tensor> {
        let patches = self.patch_embed.forward(pixels)?;
        self.image_tokens(patches)
    }

    /// [`IvtModel::embed_image`] for training: the same tokens with a patch embedding whose
    /// gradient is a plain matrix product on every device.
    pub fn embed_image_for_training(&self, pixels: &Tensor) -> Result<Tensor> {
        let patches = self.patch_embed.forward_unfolded(pixels)?;
        self.image_tokens(patches)
    }

    fn image_tokens(&self, patches: Tensor) -> Result<Tensor> {
        let b = patches.dim(0)?;
        let cls = self
            .cls_token
            .broadcast_as((b, 1, self.config.hidden_size))?;
        Tensor::cat(&[&cls, &patches], 1)?
            .broadcast_add(&self.pos_embed)?
            .broadcast_add(&self.type_embed)
    }

    /// Text input tokens `[B, T, D]` from WordPiece ids `[B, T]` (u32 or i64).
    pub fn embed_text(&self, input_ids: &Tensor) -> Result<Tensor> {
        self.embeddings.forward(input_ids)
    }

    /// Runs the blocks and the final norm over embedded tokens. `attention_mask` is `[B, N]` with
    /// 1 for real tokens and 0 for padding (any dtype); padding keys get an additive -10000.
    pub fn encode(
        &self,
        tokens: &Tensor,
        attention_mask: Option<&Tensor>,
        modality: Modality,
        train: Option<&TrainOptions>,
    ) -> Result<Tensor> {
        let mask = attention_mask
            .map(|m| extended_attention_mask(m, tokens.dtype()))
            .transpose()?;
        let mut x = match train {
            Some(t) if t.embed_dropout > 0.0 => dropout(tokens, t.embed_dropout, &t.noise)?,
            _ => tokens.clone(),
        };
        let depth = self.blocks.len();
        for (i, block) in self.blocks.iter().enumerate() {
            // The authors' linspace(0, drop_path, depth) decay rule.
            let rate = train.map(|t| {
                let rate = if depth > 1 {
                    t.drop_path * i as f32 / (depth - 1) as f32
                } else {
                    0.0
                };
                (t, rate)
            });
            x = block.forward(&x, mask.as_ref(), modality, rate)?;
        }
        layer_norm(&self.norm, &x, train.is_some())
    }

    /// Every output token of images `[B, 3, H, W]` (normalised pixels): `[B, N, D]`.
    pub fn forward_image(&self, pixels: &Tensor) -> Result<Tensor> {
        let tokens = self.embed_image(pixels)?;
        self.encode(&tokens, None, Modality::Image, None)
    }

    /// Every output token of texts: ids `[B, T]`, mask `[B, T]` → `[B, T, D]`.
    pub fn forward_text(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let tokens = self.embed_text(input_ids)?;
        self.encode(&tokens, Some(attention_mask), Modality::Text, None)
    }
}

/// `[B, N]` 0/1 mask → additive `[B, 1, 1, N]` mask: `(1 - mask) * -10000`, as BERT.
pub fn extended_attention_mask(mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let (b, n) = mask.dims2()?;
    let m = mask.to_dtype(dtype)?;
    ((1.0 - m)? * -10000.0)?.reshape((b, 1, 1, n))
}

/// Token 0 (CLS) of `[B, N, D]` outputs: `[B, D]`.
pub fn cls(tokens: &Tensor) -> Result<Tensor> {
    tokens.narrow(1, 0, 1)?.squeeze(1)
}

/// Row-wise L2 normalisation, as retrieval uses (`F.normalize`, eps 1e-12).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    x.broadcast_div(&norm)
}
