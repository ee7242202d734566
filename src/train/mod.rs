//! Training: MLA, BMM and the CMPM loss; initialisation from ViT/BERT checkpoints.

mod cmpm;

pub use cmpm::cmpm_loss;
