//! Training: MLA, BMM and the CMPM loss; initialisation from ViT/BERT checkpoints.
//!
//! - [`augment`](augment()): the authors' image augmentation; [`EpochLoader`]: worker threads
//!   that decode, augment and assemble [`MlaBatch`]es (three levels per sample, see
//!   [`TrainSample`]).
//! - [`drop_tokens`]: BMM; [`cmpm_loss`]: the loss; [`Trainer`]: one step of forward, backward
//!   and [`Optimizer`] update.
//! - [`train`]: the epoch loop with schedule ([`LrSchedule`]), validation, checkpoints
//!   ([`save_checkpoint`], [`load_resume_point`]) and the JSON-lines log.
//! - [`init_from_pretrained`]: ViT + BERT → IVT, as `ivt init`.

mod augment;
mod bmm;
mod checkpoint;
mod cmpm;
mod init;
mod loader;
mod mla;
mod optim;
mod run;
mod trainer;

pub use augment::{augment, resize_bicubic, AugmentOptions};
pub use bmm::{drop_tokens, kept_positions};
pub use checkpoint::{load_resume_point, save_checkpoint, ResumePoint, TrainState};
pub use cmpm::cmpm_loss;
pub use init::{init_from_pretrained, resize_pos_embed};
pub use loader::{epoch_batches, stream_seed, EpochLoader, LoaderConfig, MlaBatch};
pub use mla::{training_samples, TrainSample};
pub use optim::{clip_grad_norm, LrSchedule, OptimConfig, Optimizer, OptimizerKind};
pub use run::{restore, train, EpochLog, TrainRun, Validation, LOG_FILE};
pub use trainer::{Precision, TrainConfig, Trainer};

use std::path::PathBuf;

/// Errors of training and initialisation.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The dataset could not be read.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// The model could not be built or loaded.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// A training image could not be loaded.
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    /// Evaluation failed.
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
    /// A text could not be tokenised.
    #[error(transparent)]
    Text(#[from] crate::text::TextError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A training state file is malformed.
    #[error("invalid training state {path}: {message}")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The settings are inconsistent.
    #[error("invalid training settings: {0}")]
    Settings(String),
    /// The loss stopped being a finite number.
    #[error("the loss diverged ({loss}) at step {step}: lower --lr or set --clip-grad")]
    Diverged {
        /// The loss value.
        loss: f32,
        /// The step.
        step: u64,
    },
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}
