//! Where the Milvus gallery lives and how it is read.

use std::time::Duration;

use super::proto::common;
use crate::index::HnswParams;

/// Milvus read consistency (see Milvus' "Consistency" documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Reads see every write, from any client, that returned before them. Costs a wait for
    /// Milvus' time tick (about 200 ms per read on a default standalone server).
    Strong,
    /// Reads see every write this process made (read-your-writes; ivt passes its last write's
    /// timestamp as the guarantee), and other clients' writes within Milvus' time tick (reads
    /// in the first seconds after opening are Strong, so a gallery built just before is seen
    /// whole). The default.
    Session,
    /// Reads may miss writes of the last few seconds; faster on busy clusters.
    Bounded,
    /// No guarantee; fastest.
    Eventually,
}

impl Consistency {
    pub(super) fn proto(self) -> i32 {
        (match self {
            Self::Strong => common::ConsistencyLevel::Strong,
            Self::Session => common::ConsistencyLevel::Session,
            Self::Bounded => common::ConsistencyLevel::Bounded,
            Self::Eventually => common::ConsistencyLevel::Eventually,
        }) as i32
    }
}

/// Where the Milvus gallery lives and how to talk to it.
#[derive(Debug, Clone)]
pub struct MilvusConfig {
    /// Server address: `http://host:19530`, `https://...`, or `host:port`.
    pub uri: String,
    /// `user:password` or an API key (sent base64-encoded as Milvus expects), if auth is on.
    pub token: Option<String>,
    /// Database (Milvus 2.2.9+); `None` = the server's default.
    pub database: Option<String>,
    /// Collection holding this gallery.
    pub collection: String,
    /// Read consistency of searches and queries.
    pub consistency: Consistency,
    /// HNSW parameters used when the collection is created (`ef_search` also as the default
    /// search breadth).
    pub hnsw: HnswParams,
    /// Rows per insert request while bulk loading.
    pub insert_batch: usize,
    /// Retries of a failed request (with exponential backoff) before giving up.
    pub retries: u32,
    /// Deadline of one request.
    pub timeout: Duration,
}

impl MilvusConfig {
    /// Defaults for everything but the address and collection.
    pub fn new(uri: impl Into<String>, collection: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            token: None,
            database: None,
            collection: collection.into(),
            consistency: Consistency::Session,
            hnsw: HnswParams::default(),
            insert_batch: 1_000,
            retries: 4,
            timeout: Duration::from_secs(60),
        }
    }
}
