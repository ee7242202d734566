//! What an index keeps on disk: the embeddings, the records and tombstones, the manifest with
//! its checksums, the generation layout, the writer lock, and what is derived from them when an
//! index is opened (the groups of identical vectors).

pub(crate) mod checksum;
pub(crate) mod duplicates;
pub(crate) mod embeddings;
pub(crate) mod fsio;
pub(crate) mod layout;
pub(crate) mod lock;
pub(crate) mod manifest;
pub(crate) mod metadata;
pub(crate) mod record;
pub(crate) mod verify;
