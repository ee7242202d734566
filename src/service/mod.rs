//! The gRPC retrieval service (`ivt.v1.Retrieval`), structured like text-embeddings-inference:
//!
//! - [`RunningServer`] (`server.rs`): lifecycle — bind, health, reflection, auth, TLS; load and
//!   warm up; graceful shutdown.
//! - `retrieval.rs`: the RPC handlers (validation, one span and one metrics record per request).
//! - `infer.rs`: admission (a semaphore: a full queue answers RESOURCE_EXHAUSTED at once),
//!   tokenisation and image decoding on the blocking pool, queueing.
//! - `queue.rs`: the batching tasks (max batch, max wait; entries whose caller left are skipped).
//! - `worker.rs`: the model on its own OS thread, one batch at a time, answers via oneshots.
//! - `gallery.rs`: the gallery backend (embedded index or Milvus), called on the blocking pool;
//!   the embedded index's read/write lock lives in `index/backend.rs` (Milvus needs none).
//! - `http/`: the HTTP/JSON API and the search page, a thin mapping onto the same handlers.
//! - `connections.rs`: accepting within the connection cap, handshake and idle timeouts, and
//!   backing off when out of descriptors (both ports).
//! - `gate.rs`: per-method message size limits, and the answer (and count) for gRPC requests
//!   refused before their handler (too large, malformed).
//! - `refusals.rs`: when a limit bites, a counter and a rate-limited warning.
//! - `telemetry.rs`: OTLP span export and W3C `traceparent` propagation (a tower layer).
//! - `convert.rs`, `deadline.rs`, `auth.rs`, `metrics.rs`, `error.rs`: the edges.

mod auth;
mod config;
mod connections;
mod convert;
mod deadline;
mod error;
mod gallery;
mod gate;
mod http;
mod infer;
pub mod metrics;
mod queue;
mod refusals;
mod retrieval;
mod server;
pub mod telemetry;
mod worker;

pub use config::{
    BatchConfig, ConnectionLimits, Limits, ServiceConfig, TlsFiles, DEFAULT_MAX_RESPONSE_BYTES,
};
pub use error::ServiceError;
pub use server::{bind, shutdown_signal, RunningServer};

/// Name of the retrieval service in health checks and reflection.
pub const SERVICE_NAME: &str = crate::proto::retrieval_server::SERVICE_NAME;
