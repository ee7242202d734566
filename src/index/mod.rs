//! The persisted gallery index: stored embeddings, metadata, manifest and an HNSW graph.
//!
//! - [`GalleryIndex`]: create/open, search by image or person (exact or HNSW, with filters
//!   applied inside the graph traversal), add and remove images, compact.
//! - [`GalleryBackend`]: the gallery as the service and CLI see it, kept in the embedded index
//!   ([`EmbeddedGallery`]) or in a Milvus collection ([`milvus::MilvusGallery`]).
//! - On disk, `<index>/CURRENT` names a generation directory holding `manifest.json`,
//!   `records.jsonl`, `embeddings.f32` (or `.f16`), `tombstones.u32`, the hnsw_rs dump and
//!   its neighbour lists in compact form (`<graph>.flat`), which is what searches walk.
//!   The manifest records the size and CRC-32 of every other file and of itself; `verify`
//!   checks them all.
//!   Appends are committed by rewriting the manifest atomically; builds and compactions write a
//!   new generation and switch `CURRENT`, so a crash never leaves a half-written index live.

mod backend;
mod checksum;
mod duplicates;
mod embeddings;
mod error;
mod exact;
mod filter;
mod flat;
mod fsio;
mod gallery;
mod graph;
mod hits;
mod layout;
mod lock;
mod manifest;
mod metadata;
pub mod milvus;
mod params;
mod record;
mod validate;
mod verify;

pub use backend::{EmbeddedGallery, GalleryBackend};
pub use checksum::FileSum;
pub use error::IndexError;
pub use filter::SearchFilter;
pub use gallery::GalleryIndex;
pub use graph::{release_freed_heap, UnitDot};
pub use hits::{ImageHit, PersonHit};
pub use lock::{WriterLock, LOCK_FILE};
pub use manifest::{GraphDump, IndexManifest, VectorStorage, FORMAT_VERSION};
pub use params::{HnswParams, SearchParams};
pub use record::{
    ImageRecord, MAX_ATTRIBUTES, MAX_ATTRIBUTE_KEY_BYTES, MAX_ATTRIBUTE_VALUE_BYTES, MAX_ID_BYTES,
    MAX_PATH_BYTES,
};
pub use verify::{FileCheck, VerifyReport};
