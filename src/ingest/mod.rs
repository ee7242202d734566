//! Ingest: from gallery sources (manifests, folders, dataset annotations) to an index.
//!
//! - [`sources`]: reads a gallery source into [`GalleryItem`]s (file + record).
//! - [`pipeline`]: decodes the images on worker threads ahead of the encoder and hands each
//!   encoded batch to a sink (an index being built, or any gallery backend).
//! - [`demo`]: the demo gallery `ivt serve` builds for a model trained on `ivt synth` data.
//!
//! This is the stage that knows the model, the image decoder and the data readers; the index
//! below it only stores and searches vectors with their records.

pub mod demo;
mod error;
pub mod pipeline;
pub mod sources;

pub use error::IngestError;
pub use sources::{GalleryItem, GallerySource};
