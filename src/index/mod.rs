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
//! - `store/` holds what is kept on disk (and what is derived from it when opening: the groups
//!   of identical vectors), `search/` how it is searched (scoring, exact scans, the graph walks,
//!   filters, person grouping, and the per-query `SearchPlan`). The index stores vectors and
//!   records only: encoding images into it is [`crate::ingest`]'s job.

mod backend;
mod error;
mod gallery;
pub mod milvus;
mod search;
mod store;
mod validate;

pub use backend::{EmbeddedGallery, GalleryBackend};
pub use error::IndexError;
pub use gallery::GalleryIndex;
pub use search::filter::SearchFilter;
pub use search::graph::{release_freed_heap, UnitDot};
pub use search::hits::{ImageHit, PersonHit};
pub use search::params::{HnswParams, SearchParams};
pub use store::checksum::FileSum;
pub use store::lock::{WriterLock, LOCK_FILE};
pub use store::manifest::{GraphDump, IndexManifest, VectorStorage, FORMAT_VERSION};
pub use store::record::{
    ImageRecord, MAX_ATTRIBUTES, MAX_ATTRIBUTE_KEY_BYTES, MAX_ATTRIBUTE_VALUE_BYTES, MAX_ID_BYTES,
    MAX_PATH_BYTES,
};
pub use store::verify::{FileCheck, VerifyReport};
