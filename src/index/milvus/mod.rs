//! Milvus as the gallery backend, for galleries no single machine holds.
//!
//! One collection per gallery:
//!
//! | field | type | |
//! |---|---|---|
//! | `image_id` | VARCHAR(1024) | primary key |
//! | `person_id` | VARCHAR(512) | results are grouped by it; excluded persons filter on it |
//! | `camera_id` | VARCHAR(512) | "" when unknown; camera filters |
//! | `captured_ms` | INT64 | Unix ms, [`NO_TIME`](expr::NO_TIME) when unknown; time windows |
//! | `path` | VARCHAR(4096) | "" when none |
//! | `attributes` | JSON | the free attributes |
//! | `embedding` | FLOAT_VECTOR(dim) | L2-normalised; HNSW, inner product (= cosine) |
//!
//! The collection records the model fingerprint (property `ivt.model_fingerprint`, and in its
//! description); opening it with another model is refused. Writes are upserts by image id, so a
//! retried batch never duplicates rows. Reads use the configured [`Consistency`]: Session by
//! default (a search sees every change this process made; changes made through other replicas
//! show within Milvus' time tick), Strong on request.

mod backend;
mod client;
mod collection;
mod config;
mod expr;
mod proto;
mod requests;
mod rows;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use self::client::Client;
use self::proto::common;
use self::proto::milvus as m;
use super::IndexError;

pub use config::{Consistency, MilvusConfig};

/// Collection property holding the model fingerprint.
const FINGERPRINT_KEY: &str = "ivt.model_fingerprint";
/// Prefix of the collection description (which also carries the fingerprint, for servers that
/// do not keep properties).
const DESCRIPTION_PREFIX: &str = "ivt gallery; model fingerprint ";
const VECTOR_FIELD: &str = "embedding";
const OUTPUT_FIELDS: [&str; 5] = [
    "person_id",
    "camera_id",
    "captured_ms",
    "path",
    "attributes",
];
/// Milvus' largest `topk` (and query `limit`).
const MAX_TOPK: usize = 16_384;
/// How long Session reads stay Strong after a write without a timestamp.
const UNTIMED_WRITE_WINDOW: Duration = Duration::from_secs(5);
/// Ids per `in [...]` query, keeping expressions and responses small.
const IDS_PER_QUERY: usize = 1_000;

/// A gallery kept in a Milvus collection. The methods block: each drives the request on the
/// gallery's own small runtime, so it works from CLI code and from the service's blocking pool.
pub struct MilvusGallery {
    runtime: Option<tokio::runtime::Runtime>,
    client: Client,
    config: MilvusConfig,
    fingerprint: String,
    dim: usize,
    /// Live images, refreshed after every change and health check.
    count: AtomicUsize,
    /// Milvus timestamp of this process's last write: the guarantee of Session reads.
    last_write: AtomicU64,
    /// Until when Session reads are Strong, after a write the server did not timestamp.
    strong_until: Mutex<Option<Instant>>,
    /// Serialises this process's changes, so the duplicate check before an insert holds.
    writes: Mutex<()>,
}

impl Drop for MilvusGallery {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside async code: let it wind down alone.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl MilvusGallery {
    /// Which of `ids` the collection holds.
    pub fn existing_ids(&self, ids: &[String]) -> Result<HashSet<String>, IndexError> {
        self.block_on(self.present_images(ids))
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match &self.runtime {
            Some(rt) => rt.block_on(f),
            // Only `drop` takes the runtime.
            None => unreachable!("Milvus runtime used after drop"),
        }
    }

    /// Consistency level and guarantee timestamp of a read.
    fn read_guarantee(&self) -> (i32, u64) {
        if self.config.consistency != Consistency::Session {
            return (self.config.consistency.proto(), 0);
        }
        let untimed = self
            .strong_until
            .lock()
            .map(|t| t.is_some_and(|t| Instant::now() < t))
            .unwrap_or(true);
        if untimed {
            return (common::ConsistencyLevel::Strong as i32, 0);
        }
        (
            common::ConsistencyLevel::Session as i32,
            self.last_write.load(Ordering::Acquire),
        )
    }

    fn wrote(&self, r: &m::MutationResult) {
        if r.timestamp > 0 {
            self.last_write.fetch_max(r.timestamp, Ordering::AcqRel);
        } else if let Ok(mut t) = self.strong_until.lock() {
            // Some servers (Milvus 2.3 deletes) return no timestamp: read Strong for a while,
            // far longer than the time tick after which every reader sees the change.
            *t = Some(Instant::now() + UNTIMED_WRITE_WINDOW);
        }
    }

    fn db(&self) -> String {
        self.config.database.clone().unwrap_or_default()
    }

    fn name(&self) -> String {
        self.config.collection.clone()
    }

    /// Re-counts the live images (a `count(*)` query).
    fn refresh_count(&self) -> Result<usize, IndexError> {
        let n = self.block_on(self.count_where(""))?;
        self.count.store(n, Ordering::Relaxed);
        Ok(n)
    }
}
