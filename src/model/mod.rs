//! The IVT model: configuration, network, checkpoint loading and the [`Encoder`] that turns texts
//! and images into L2-normalised embeddings.

mod block;
mod config;
mod cpu;
mod embeddings;
mod encoder;
mod files;
mod ivt;
mod linear;
mod noise;
mod pass;
pub mod weights;

pub use config::{IvtConfig, PRESETS};
pub use encoder::{load_network, weights_dtype, Encoder, TextEmbedding};
pub use files::{demo_model_dir, parse_device, ModelFiles, DEMO_MODEL};
pub use ivt::{cls, extended_attention_mask, l2_normalize, IvtModel, Modality};
pub use noise::Noise;
pub use pass::{Pass, TrainOptions};

pub(crate) use cpu::{kernels, packed};

use std::path::PathBuf;

/// Errors loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file or directory does not exist.
    #[error("not found: {0}")]
    NotFound(PathBuf),
    /// No model was given and the demo model is not installed.
    #[error("no --model given and no demo model found (looked in {}): pass --model <dir>", .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NoDemo(Vec<PathBuf>),
    /// A model directory holds no weights.
    #[error("no weights in {0}: expected model.safetensors or a .pth checkpoint")]
    NoWeights(PathBuf),
    /// No configuration for a weights file.
    #[error("no config.json beside {0}: pass --config <json> or --preset <name>")]
    NoConfig(PathBuf),
    /// The configuration is malformed or inconsistent.
    #[error("invalid model config {path}: {message}")]
    Config {
        /// Where the config came from.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint could not be parsed.
    #[error("cannot read checkpoint {path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The checkpoint lacks a tensor the network needs.
    #[error("checkpoint is missing tensor `{0}` (is it an IVT checkpoint for this config?)")]
    MissingTensor(String),
    /// A tensor's shape does not fit the config.
    #[error("tensor `{name}` has shape {checkpoint:?} in the checkpoint but the config expects {expected:?}: {hint}")]
    Shape {
        /// Canonical tensor name.
        name: String,
        /// Shape in the checkpoint.
        checkpoint: Vec<usize>,
        /// Shape the config implies.
        expected: Vec<usize>,
        /// Which config value is likely wrong.
        hint: String,
    },
    /// The requested device is unavailable.
    #[error("device {0}")]
    Device(String),
    /// An input was rejected (text or image); the message says why.
    #[error(transparent)]
    Text(#[from] crate::text::TextError),
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// An I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}
