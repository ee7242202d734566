//! The persisted gallery index: HNSW graph, stored embeddings, metadata and manifest.
