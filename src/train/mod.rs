//! Training: MLA, BMM and the CMPM loss; initialisation from ViT/BERT checkpoints.

mod cmpm;

pub use cmpm::cmpm_loss;
mod bmm;

pub use bmm::{drop_tokens, kept_positions};
