//! Everything the server needs to start, gathered in one struct so that `ivt serve` and the tests
//! build it the same way and it can be logged at start-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use candle_core::{DType, Device};

use crate::index::milvus::MilvusConfig;
use crate::model::ModelFiles;

/// Limits enforced on requests; published by `Info`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest `top_k` of a Search.
    pub max_top_k: u32,
    /// `top_k` used when a Search sets 0.
    pub default_top_k: u32,
    /// Largest HNSW search breadth a Search may ask for.
    pub max_ef: u32,
    /// Most inputs admitted (queued or being encoded) at once.
    pub max_queue: usize,
    /// Longest text in UTF-8 bytes.
    pub max_text_bytes: usize,
    /// Largest encoded image in bytes.
    pub max_image_bytes: usize,
    /// Largest image in pixels (width x height, read from the header before decoding).
    pub max_image_pixels: u64,
    /// Most pixels being decoded at once, over all requests: image work beyond it is refused
    /// with RESOURCE_EXHAUSTED rather than queued (decoding is the expensive part).
    pub max_decode_pixels: u64,
    /// Most images per AddImages call.
    pub max_add_batch: usize,
    /// Largest encoded Search response: lower-ranked results beyond it are left out and the
    /// response says so (`results_cut`), so a client's receive limit is never hit.
    pub max_response_bytes: usize,
}

/// Default `max_response_bytes`: under the 4 MiB that gRPC clients accept by default.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4_000_000;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_top_k: 1000,
            default_top_k: 10,
            max_ef: 4096,
            max_queue: 512,
            max_text_bytes: 4096,
            max_image_bytes: 8 << 20,
            max_image_pixels: crate::image::DEFAULT_MAX_PIXELS,
            max_decode_pixels: 4 * crate::image::DEFAULT_MAX_PIXELS,
            max_add_batch: 256,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// How the batching task forms batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Largest batch the model runs.
    pub max_batch: usize,
    /// How long the first request of a batch may wait for company while the model is idle.
    pub max_wait: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_batch: 32,
            // Batches fill while the model runs the previous one; waiting only adds latency.
            max_wait: Duration::ZERO,
        }
    }
}

/// Limits on connections, applied to each port (gRPC and HTTP) on its own.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// How long a new connection has to send the start of a request (the HTTP/2 preface, an
    /// HTTP/1 request line, a TLS hello) before it is closed.
    pub handshake_timeout: Duration,
    /// How long a connection may stay silent (nothing read or written) while the server waits
    /// to read from it. Healthy gRPC clients answer the keepalive pings, so this closes dead
    /// peers and idle HTTP/1 keep-alive connections.
    pub idle_timeout: Duration,
    /// How often the server pings an HTTP/2 (gRPC) connection that has been quiet.
    pub keepalive_interval: Duration,
    /// How long the server waits for a ping's answer before closing the connection.
    pub keepalive_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}

/// PEM files of the server's TLS identity.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// Configuration of one server.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The model to load.
    pub model: ModelFiles,
    /// Where the model runs.
    pub device: Device,
    /// Compute precision.
    pub dtype: DType,
    /// Gallery index directory; created empty when it does not exist. Unused with `milvus`.
    pub index_dir: PathBuf,
    /// Serve without changing the gallery: no writer lock on the index directory (so several
    /// replicas can share it), AddImages and RemoveImages answer FAILED_PRECONDITION.
    pub read_only: bool,
    /// Keep the gallery in this Milvus collection instead of the embedded index.
    pub milvus: Option<MilvusConfig>,
    /// How often a remote gallery backend (Milvus) is health-checked.
    pub health_interval: Duration,
    /// Batching policy.
    pub batch: BatchConfig,
    /// Request limits.
    pub limits: Limits,
    /// Connection limits (each port).
    pub connections: ConnectionLimits,
    /// Bearer token required on every RPC except health; `None` disables auth.
    pub api_key: Option<String>,
    /// TLS identity; `None` serves plaintext (e.g. behind a mesh that terminates TLS).
    pub tls: Option<TlsFiles>,
    /// Prometheus endpoint; `None` disables the exporter.
    pub metrics_addr: Option<SocketAddr>,
    /// Time between reporting NOT_SERVING and refusing new requests, so that load balancers
    /// stop routing here first.
    pub drain_delay: Duration,
    /// Longest wait for in-flight requests after shutdown starts.
    pub shutdown_timeout: Duration,
}

impl ServiceConfig {
    /// A configuration with default limits, no auth, TLS or metrics.
    pub fn new(model: ModelFiles, index_dir: PathBuf) -> Self {
        Self {
            model,
            device: Device::Cpu,
            dtype: DType::F32,
            index_dir,
            read_only: false,
            milvus: None,
            health_interval: Duration::from_secs(5),
            batch: BatchConfig::default(),
            limits: Limits::default(),
            connections: ConnectionLimits::default(),
            api_key: None,
            tls: None,
            metrics_addr: None,
            drain_delay: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}
