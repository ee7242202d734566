//! The ingest stage's error type.

use std::path::PathBuf;

use crate::data::synth::SynthError;
use crate::data::DataError;
use crate::image::ImageError;
use crate::index::IndexError;
use crate::model::ModelError;

/// Errors reading a gallery source, encoding its images into an index, or preparing the demo
/// gallery.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The source is neither a manifest, a dataset annotation nor a recognisable folder.
    #[error("cannot tell what kind of gallery {path} is: {reason}")]
    UnknownSource {
        /// The source given.
        path: PathBuf,
        /// Why detection failed.
        reason: String,
    },
    /// One entry (manifest line, dataset entry or file name) is malformed.
    #[error("{path}: {location}: {message}")]
    Entry {
        /// The manifest or folder.
        path: PathBuf,
        /// `line N`, `entry N` or the file name.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A dataset annotation file could not be read.
    #[error(transparent)]
    Dataset(#[from] DataError),
    /// A dataset annotation was given without `--split`.
    #[error("{0} is a dataset annotation file: choose the images with --split train|val|test")]
    SplitRequired(PathBuf),
    /// The source holds no images.
    #[error("{0} holds no images")]
    Empty(PathBuf),
    /// A gallery image could not be read or decoded (see `--skip-bad`).
    #[error("cannot use image {path}: {source}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: ImageError,
    },
    /// The encoder failed on a batch (or the model could not be fingerprinted).
    #[error("encoder failed: {0}")]
    Encode(#[from] ModelError),
    /// The index refused a batch or could not be built.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The model has no `synth.json`, so there is no demo gallery to go with it.
    #[error("{0} has no {file}: only a model trained on `ivt synth` data has a demo gallery; pass --index", file = super::demo::SYNTH_FILE)]
    NoSynth(PathBuf),
    /// `synth.json` is unreadable.
    #[error("cannot read {path}: {message}")]
    BadSynth {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Generating the demo gallery's images failed.
    #[error(transparent)]
    Synth(#[from] SynthError),
}
