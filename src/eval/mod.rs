//! Ranking metrics and dataset evaluation: every caption of a split is a text query against every
//! image of the split (the field's protocol), scored with R@K, mAP, mINP and the authors' AP;
//! exactly, or through a built HNSW gallery index.

mod dataset;
mod exact;
mod index;
mod metrics;

pub use dataset::{embed_captions, embed_images, evaluate_dataset, EvalOptions, EvalReport};
pub use exact::{rank_exact, Embeddings};
pub use index::{evaluate_index, IndexSearch};
pub use metrics::{RankingAccumulator, RankingMetrics};

use std::path::PathBuf;

/// Errors evaluating a model.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The annotation file could not be read.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// The model failed (or rejected a caption).
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// An image of the split could not be loaded.
    #[error("image {path}: {source}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// What went wrong.
        source: crate::image::ImageError,
    },
    /// The split selected holds no images.
    #[error("the {0} split holds no images")]
    EmptySplit(crate::data::Split),
    /// Queries and gallery do not fit together.
    #[error("invalid evaluation input: {0}")]
    Input(String),
    /// Searching the gallery index failed.
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    /// The gallery searched does not hold exactly the split's images.
    #[error(
        "the gallery holds {gallery} images but the {split} split has {images}: build it from \
         this split (`ivt index build --gallery <annotation> --split {split}`)"
    )]
    GalleryMismatch {
        /// Images in the gallery.
        gallery: usize,
        /// The split evaluated.
        split: crate::data::Split,
        /// Images in the split.
        images: usize,
    },
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}
