//! The model configuration: the `config.json` written next to every checkpoint and index.

use serde::{Deserialize, Serialize};

/// Architecture of an IVT network. The keys are exactly those of the authors' test vectors
/// (`image_size`, `patch_size`, `stride`, ...), so a `config.json` is portable between both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IvtConfig {
    /// Input image size `[height, width]`.
    pub image_size: [usize; 2],
    /// Side of the square patches.
    pub patch_size: usize,
    /// Patch stride: 16 takes non-overlapping patches, 12 (the released training) overlapping ones.
    pub stride: usize,
    /// Transformer width.
    pub hidden_size: usize,
    /// Number of transformer blocks.
    pub depth: usize,
    /// Attention heads per block.
    pub num_heads: usize,
    /// MLP hidden width as a multiple of `hidden_size`.
    pub mlp_ratio: f64,
    /// Whether the qkv projection has a bias.
    pub qkv_bias: bool,
    /// WordPiece vocabulary size (30,522 for BERT-base-uncased).
    pub vocab_size: usize,
    /// Length of the text position table: the longest text in tokens, [CLS] and [SEP] included.
    pub max_position_embeddings: usize,
    /// BERT token-type table size.
    pub type_vocab_size: usize,
    /// Epsilon of the blocks' and the final LayerNorm.
    pub layer_norm_eps: f64,
    /// Epsilon of the BERT embeddings' LayerNorm.
    pub text_embedding_layer_norm_eps: f64,
    /// Per-channel mean subtracted after scaling pixels to [0, 1].
    pub pixel_mean: [f32; 3],
    /// Per-channel standard deviation dividing the centred pixels.
    pub pixel_std: [f32; 3],
}

/// Names accepted by `--preset`.
pub const PRESETS: &[&str] = &["ivt-base", "ivt-base-s16"];

impl IvtConfig {
    /// IVT as released: ViT-B/16 shape, 384x128 input, overlapping patches with stride 12
    /// (31x10 = 310 patches), BERT-base-uncased vocabulary (Shu et al. 2022, training scripts).
    pub fn ivt_base() -> Self {
        Self {
            image_size: [384, 128],
            patch_size: 16,
            stride: 12,
            hidden_size: 768,
            depth: 12,
            num_heads: 12,
            mlp_ratio: 4.0,
            qkv_bias: true,
            vocab_size: 30522,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-6,
            text_embedding_layer_norm_eps: 1e-12,
            pixel_mean: [0.5; 3],
            pixel_std: [0.5; 3],
        }
    }

    /// IVT with non-overlapping patches (stride 16, 24x8 = 192 patches), as the authors' yml configs.
    pub fn ivt_base_s16() -> Self {
        Self {
            stride: 16,
            ..Self::ivt_base()
        }
    }

    /// A preset by name (see [`PRESETS`]).
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "ivt-base" => Some(Self::ivt_base()),
            "ivt-base-s16" => Some(Self::ivt_base_s16()),
            _ => None,
        }
    }

    /// Patch grid `(rows, cols)`, as the authors' `PatchEmbed_overlap` computes it.
    pub fn patch_grid(&self) -> (usize, usize) {
        let [h, w] = self.image_size;
        (
            (h - self.patch_size) / self.stride + 1,
            (w - self.patch_size) / self.stride + 1,
        )
    }

    /// The input images this network takes: size and pixel normalisation.
    pub fn image_spec(&self) -> crate::image::ImageSpec {
        crate::image::ImageSpec {
            size: self.image_size,
            mean: self.pixel_mean,
            std: self.pixel_std,
        }
    }

    /// Image tokens including the class token.
    pub fn num_image_tokens(&self) -> usize {
        let (r, c) = self.patch_grid();
        r * c + 1
    }

    /// Hidden width of the feed-forward layers.
    pub fn mlp_hidden(&self) -> usize {
        (self.hidden_size as f64 * self.mlp_ratio) as usize
    }

    /// Checks the values that would otherwise fail deep inside the network.
    pub fn validate(&self) -> Result<(), String> {
        let [h, w] = self.image_size;
        if self.patch_size == 0 || self.stride == 0 {
            return Err("patch_size and stride must be positive".into());
        }
        if h < self.patch_size || w < self.patch_size {
            return Err(format!(
                "image_size {h}x{w} is smaller than patch_size {}",
                self.patch_size
            ));
        }
        if self.num_heads == 0 || !self.hidden_size.is_multiple_of(self.num_heads) {
            return Err(format!(
                "hidden_size {} is not divisible by num_heads {}",
                self.hidden_size, self.num_heads
            ));
        }
        if self.depth == 0 || self.mlp_hidden() == 0 {
            return Err("depth and mlp_ratio must be positive".into());
        }
        if self.max_position_embeddings < 3 || self.vocab_size == 0 || self.type_vocab_size == 0 {
            return Err("text tables (vocab, positions, token types) are too small".into());
        }
        if self.pixel_std.contains(&0.0) {
            return Err("pixel_std must be non-zero".into());
        }
        Ok(())
    }

    /// Approximate forward FLOPs of one image (multiply-add = 2 FLOP), for benchmarks.
    pub fn image_flops(&self) -> f64 {
        let n = self.num_image_tokens() as f64;
        let patch = (self.patch_grid().0 * self.patch_grid().1) as f64
            * (3 * self.patch_size * self.patch_size) as f64
            * self.hidden_size as f64
            * 2.0;
        patch + self.block_flops(n)
    }

    /// Approximate forward FLOPs of one text of `tokens` tokens.
    pub fn text_flops(&self, tokens: usize) -> f64 {
        self.block_flops(tokens as f64)
    }

    fn block_flops(&self, n: f64) -> f64 {
        let d = self.hidden_size as f64;
        let m = self.mlp_hidden() as f64;
        let per_block = 2.0 * n * d * (3.0 * d + d + 2.0 * m) + 4.0 * n * n * d;
        per_block * self.depth as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_released_patch_grids() {
        assert_eq!(IvtConfig::ivt_base().patch_grid(), (31, 10));
        assert_eq!(IvtConfig::ivt_base().num_image_tokens(), 311);
        assert_eq!(IvtConfig::ivt_base_s16().patch_grid(), (24, 8));
        // The scale: ≈56 GFLOP per image, ≈11 GFLOP per 64-token text.
        let g = IvtConfig::ivt_base().image_flops() / 1e9;
        assert!((50.0..60.0).contains(&g), "{g}");
        let t = IvtConfig::ivt_base().text_flops(64) / 1e9;
        assert!((10.0..12.5).contains(&t), "{t}");
    }

    #[test]
    fn validate_rejects_inconsistent_shapes() {
        let mut c = IvtConfig::ivt_base();
        c.num_heads = 7;
        assert!(c.validate().is_err());
        let mut c = IvtConfig::ivt_base();
        c.image_size = [8, 8];
        assert!(c.validate().is_err());
    }
}
