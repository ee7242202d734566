//! The IVT network (`UVT_Bert_IMG_TXT_MASK` in the authors' code): one ViT-shaped transformer
//! for both modalities. LayerNorms and attention are shared; each block has one feed-forward
//! layer per modality (`mlp_vis`, `mlp_txt`). Struct nesting mirrors the checkpoint names, so
//! loading needs no renaming beyond the `module.`/`encoder_vl.` prefixes.

use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::{LayerNorm, VarBuilder};

use super::block::{dropout, layer_norm, Block};
use super::config::IvtConfig;
use super::cpu::{self, Packing};
use super::embeddings::{BertEmbeddings, PatchEmbed};
use super::linear::Linear;
use super::Pass;

/// Which tower's inputs and feed-forward layers a forward pass uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    /// Person images: patch embedding, `mlp_vis`.
    Image,
    /// Descriptions: BERT embeddings, `mlp_txt`.
    Text,
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
    norm: LayerNorm,
    blocks: Vec<Block>,
    config: IvtConfig,
}

impl IvtModel {
    /// Builds the network from `vb`, which holds the tensors under the authors' names without the
    /// `module.encoder_vl.` prefix (`patch_embed.proj.weight`, `blocks.0.attn.qkv.weight`, ...).
    pub fn new(cfg: &IvtConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let n = cfg.num_image_tokens();
        Ok(Self {
            patch_embed: PatchEmbed::new(cfg, vb.pp("patch_embed"))?,
            cls_token: vb.get((1, 1, d), "cls_token")?,
            pos_embed: vb.get((1, n, d), "pos_embed")?,
            type_embed: vb.get((1, n, d), "type_embed")?,
            embeddings: BertEmbeddings::new(cfg, vb.pp("embeddings"))?,
            norm: candle_nn::layer_norm(d, cfg.layer_norm_eps, vb.pp("norm"))?,
            // Built last: `weights::random_tensors` draws in this order.
            blocks: (0..cfg.depth)
                .map(|i| Block::new(cfg, vb.pp(format!("blocks.{i}"))))
                .collect::<Result<Vec<_>>>()?,
            config: cfg.clone(),
        })
    }

    /// Prepares the network for inference on its device with matrix products in `compute`: where
    /// the weights can serve the CPU fast path ([`cpu::fast_path_weights`]), every linear weight
    /// is packed once (f32, or bf16 for the opt-in reduced-precision mode; see
    /// [`Packing::choose`]) and the unpacked copy dropped, so the network then serves fast-path
    /// passes only (what [`crate::model::Encoder`] runs). Elsewhere nothing changes.
    pub fn prepare_for_inference(&mut self, compute: DType) -> Result<()> {
        if cpu::fast_path_weights(self.device(), self.dtype()) {
            if let Some(packing) = Packing::choose(compute)? {
                for lin in self.linears_mut() {
                    lin.pack(packing)?;
                }
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
        self.blocks.iter_mut().flat_map(Block::linears_mut)
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
        pass: Pass,
    ) -> Result<Tensor> {
        self.run_blocks(tokens, attention_mask, modality, pass, false)
    }

    /// Token 0 (CLS) of [`IvtModel::encode`]'s output, `[B, D]`, computed without the rest: in
    /// the last block only the class token attends (to every token) and goes through the
    /// feed-forward layer, which leaves out about 6 % of the pass. Each row is the same
    /// arithmetic as in `encode`.
    pub fn encode_cls(
        &self,
        tokens: &Tensor,
        attention_mask: Option<&Tensor>,
        modality: Modality,
        pass: Pass,
    ) -> Result<Tensor> {
        cls(&self.run_blocks(tokens, attention_mask, modality, pass, true)?)
    }

    fn run_blocks(
        &self,
        tokens: &Tensor,
        attention_mask: Option<&Tensor>,
        modality: Modality,
        pass: Pass,
        cls_only: bool,
    ) -> Result<Tensor> {
        let mask = attention_mask
            .map(|m| extended_attention_mask(m, tokens.dtype()))
            .transpose()?;
        let mut x = match pass {
            Pass::Train(t) if t.embed_dropout > 0.0 => dropout(tokens, t.embed_dropout, &t.noise)?,
            _ => tokens.clone(),
        };
        let depth = self.blocks.len();
        for (i, block) in self.blocks.iter().enumerate() {
            let last = cls_only && i + 1 == depth;
            x = block.forward(
                &x,
                mask.as_ref(),
                modality,
                pass,
                pass.drop_path(i, depth),
                last,
            )?;
        }
        if cls_only && depth == 0 {
            x = x.narrow(1, 0, 1)?;
        }
        layer_norm(&self.norm, &x, pass)
    }

    /// Every output token of images `[B, 3, H, W]` (normalised pixels): `[B, N, D]`.
    pub fn forward_image(&self, pixels: &Tensor) -> Result<Tensor> {
        self.image_pass(pixels, false)
    }

    /// The class token's output of images `[B, 3, H, W]`: `[B, D]` (see
    /// [`IvtModel::encode_cls`]).
    pub fn forward_image_cls(&self, pixels: &Tensor) -> Result<Tensor> {
        self.image_pass(pixels, true)
    }

    /// An inference pass over images in sub-batches: every token, or the class token's only.
    fn image_pass(&self, pixels: &Tensor, cls_only: bool) -> Result<Tensor> {
        let rows = self.config.num_image_tokens();
        self.in_sub_batches(&[pixels], rows, |t| {
            let tokens = self.embed_image(&t[0])?;
            match cls_only {
                true => self.encode_cls(&tokens, None, Modality::Image, Pass::Infer),
                false => self.encode(&tokens, None, Modality::Image, Pass::Infer),
            }
        })
    }

    /// Every output token of texts: ids `[B, T]`, mask `[B, T]` → `[B, T, D]`.
    pub fn forward_text(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        // Whole: texts are short, and 16 of 64 tokens ran no faster in sub-batches.
        let tokens = self.embed_text(input_ids)?;
        self.encode(&tokens, Some(attention_mask), Modality::Text, Pass::Infer)
    }

    /// The class token's output of texts: ids `[B, T]`, mask `[B, T]` → `[B, D]` (see
    /// [`IvtModel::encode_cls`]).
    pub fn forward_text_cls(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let tokens = self.embed_text(input_ids)?;
        self.encode_cls(&tokens, Some(attention_mask), Modality::Text, Pass::Infer)
    }

    /// `pass` over `inputs` (batched along dim 0, each item `rows_per_item` token rows), in
    /// sub-batches of
    /// [`cpu::items_per_pass`] items where the weights serve the CPU fast path; whole elsewhere.
    /// Every item is computed alone in either case, so the results are the same.
    fn in_sub_batches(
        &self,
        inputs: &[&Tensor],
        rows_per_item: usize,
        pass: impl Fn(&[Tensor]) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let whole = || pass(&inputs.iter().map(|&t| t.clone()).collect::<Vec<_>>());
        let Some(first) = inputs.first() else {
            return whole();
        };
        let batch = first.dim(0)?;
        let items = cpu::items_per_pass(rows_per_item);
        if !cpu::fast_path_weights(self.device(), self.dtype()) || batch <= items {
            return whole();
        }
        let parts = (0..batch)
            .step_by(items)
            .map(|start| {
                let len = items.min(batch - start);
                let part = inputs
                    .iter()
                    .map(|t| t.narrow(0, start, len))
                    .collect::<Result<Vec<_>>>()?;
                pass(&part)
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&parts, 0)
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
