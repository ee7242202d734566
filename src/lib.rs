//! `ivt`: text-based person retrieval with IVT (Shu et al., "See Finer, See More: Implicit Modality
//! Alignment for Text-based Person Retrieval", ECCV Workshops 2022, arXiv 2208.08608).
//!
//! The crate follows the data flow of a query:
//!
//! - [`text`]: BERT-uncased WordPiece tokenisation of descriptions (shipped tokenizer, no hub).
//! - [`image`]: decoding and PIL-exact preprocessing of person crops.
//! - [`model`]: the IVT network in Candle (one transformer, shared attention, per-modality MLPs),
//!   its configuration, checkpoint loading (`.pth` and safetensors) and the [`model::Encoder`]
//!   that turns texts and images into L2-normalised embeddings.
//! - [`data`]: readers for the text-person datasets and the synthetic dataset generator.
//! - [`ingest`]: gallery sources, the encoding pipeline into an index, the demo gallery.
//! - [`index`]: the persisted gallery index (HNSW + exact search, filters, online changes); it
//!   stores vectors and records and knows no model, image or data code.
//! - [`service`]: the gRPC service (`ivt.v1.Retrieval`) with batching, health and metrics.
//! - [`train`]: training (MLA, BMM, CMPM) and initialisation from ViT/BERT checkpoints.
//! - [`eval`]: ranking metrics (R@K, mAP, mINP) and dataset evaluation.
//! - [`cli`]: the `ivt` command line; `src/main.rs` only parses arguments and calls into it.

pub mod cli;
pub mod data;
pub mod eval;
pub mod image;
pub mod index;
pub mod ingest;
pub mod model;
pub mod service;
pub mod text;
pub mod train;

/// Generated protobuf and gRPC code for `proto/ivt/v1/retrieval.proto`.
pub mod proto {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("ivt.v1");

    /// Encoded file-descriptor set, published by the reflection service.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ivt_v1_descriptor");
}
