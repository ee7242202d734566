//! What kind of forward pass the network runs: inference, or a training step with its options.

use candle_core::DType;

use super::Noise;

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

/// A forward pass, handed down from the model to every layer.
#[derive(Debug, Clone, Copy)]
pub enum Pass<'a> {
    /// Inference: no regularisation; fused operations (the CPU fast path) where they apply.
    Infer,
    /// A training step: differentiable operations, with these options.
    Train(&'a TrainOptions),
}

impl Pass<'_> {
    /// The dtype matrix products take their inputs in, if not the weights'.
    pub fn autocast(self) -> Option<DType> {
        match self {
            Pass::Infer => None,
            Pass::Train(t) => t.autocast,
        }
    }

    /// Stochastic-depth rate of block `index` of `depth`: the authors' linspace(0, drop_path,
    /// depth) rule; 0 in inference.
    pub fn drop_path(self, index: usize, depth: usize) -> f32 {
        match self {
            Pass::Train(t) if depth > 1 => t.drop_path * index as f32 / (depth - 1) as f32,
            _ => 0.0,
        }
    }
}
