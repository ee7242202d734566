//! `ivt serve`: the retrieval server (gRPC, and HTTP/JSON with the search page).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::common::{parse_dtype, BackendArgs, BackendKind, ModelArgs};
use crate::index::HnswParams;
use crate::ingest::demo::ensure_demo_index;
use crate::model::{parse_device, Encoder};
use crate::service::{
    self, BatchConfig, ConnectionLimits, Limits, RunningServer, ServiceConfig, TlsFiles,
    DEFAULT_MAX_RESPONSE_BYTES,
};

/// Arguments of `ivt serve`. Every flag can also be set from the environment variable named in
/// its help, as containers expect.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The model to serve.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Gallery index directory. Created empty (for this model) when it does not exist, so that
    /// AddImages can fill it. Default: the demo gallery (the synthetic test split the model was
    /// evaluated on), generated and indexed under --cache-dir on first start.
    #[arg(long, env = "IVT_INDEX")]
    pub index: Option<PathBuf>,
    /// Serve the gallery without changing it: AddImages and RemoveImages answer
    /// FAILED_PRECONDITION and the index directory's writer lock is not taken, so several
    /// replicas can share one index (which must exist) while one writer (a serving replica
    /// without this flag, or `ivt index ...`) changes it; restart to see its changes.
    #[arg(long, env = "IVT_READ_ONLY")]
    pub read_only: bool,
    /// Gallery backend: the embedded index (--index) or a Milvus collection.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Seconds between health checks of a Milvus backend (NOT_SERVING while it fails).
    #[arg(long, env = "IVT_BACKEND_HEALTH_INTERVAL_S", default_value_t = 5.0)]
    pub backend_health_interval_s: f64,
    /// Where the demo gallery is generated and indexed (default: `$XDG_CACHE_HOME/ivt`, else
    /// `~/.cache/ivt`).
    #[arg(long, env = "IVT_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Address for gRPC.
    #[arg(long, env = "IVT_ADDR", default_value = "0.0.0.0:50051")]
    pub addr: SocketAddr,
    /// Address for the HTTP/JSON API and the search page (open http://localhost:8080).
    #[arg(long, env = "IVT_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Do not serve the HTTP API and search page (gRPC only).
    #[arg(long, env = "IVT_NO_HTTP")]
    pub no_http: bool,
    /// Address for Prometheus metrics (`GET /metrics`).
    #[arg(long, env = "IVT_METRICS_ADDR", default_value = "0.0.0.0:9000")]
    pub metrics_addr: SocketAddr,
    /// Do not serve metrics.
    #[arg(long, env = "IVT_NO_METRICS")]
    pub no_metrics: bool,
    /// Largest batch the model runs. Larger batches raise throughput under load (up to the
    /// device's parallelism) but make each batch take longer.
    #[arg(long, env = "IVT_MAX_BATCH", default_value_t = 32)]
    pub max_batch: usize,
    /// Microseconds the first request of a batch waits for others while the model is idle.
    /// Under load batches fill anyway while the model runs the previous one, so 0 (the default)
    /// gives the lowest latency; a few hundred µs can raise throughput at moderate load.
    #[arg(long, env = "IVT_MAX_WAIT_US", default_value_t = 0)]
    pub max_wait_us: u64,
    /// Most inputs admitted (queued or being encoded) at once; more are refused at once with
    /// RESOURCE_EXHAUSTED rather than queued with growing latency.
    #[arg(long, env = "IVT_MAX_QUEUE", default_value_t = 512)]
    pub max_queue: usize,
    /// Longest accepted text, in UTF-8 bytes (the model reads at most 512 tokens anyway).
    #[arg(long, env = "IVT_MAX_TEXT_BYTES", default_value_t = 4096)]
    pub max_text_bytes: usize,
    /// Largest accepted encoded image, in bytes.
    #[arg(long, env = "IVT_MAX_IMAGE_BYTES", default_value_t = 8 << 20)]
    pub max_image_bytes: usize,
    /// Largest accepted image in pixels (width x height), read from the image header before
    /// anything is decoded. The default, 4096 x 4096, covers person crops and whole 4K frames.
    #[arg(long, env = "IVT_MAX_IMAGE_PIXELS", default_value_t = ivt_default_pixels())]
    pub max_image_pixels: u64,
    /// Most pixels decoded at once over all requests; image calls beyond it are refused with
    /// RESOURCE_EXHAUSTED (decoding costs CPU and memory by the pixel, not by the byte).
    /// Default: four images of --max-image-pixels.
    #[arg(long, env = "IVT_MAX_DECODE_PIXELS")]
    pub max_decode_pixels: Option<u64>,
    /// Largest top_k of a Search.
    #[arg(long, env = "IVT_MAX_TOP_K", default_value_t = 1000)]
    pub max_top_k: u32,
    /// Largest HNSW ef of a Search (search cost grows with it).
    #[arg(long, env = "IVT_MAX_EF", default_value_t = 4096)]
    pub max_ef: u32,
    /// Most images per AddImages call (the call is one durable index write).
    #[arg(long, env = "IVT_MAX_ADD_BATCH", default_value_t = 256)]
    pub max_add_batch: usize,
    /// Largest encoded Search response in bytes: the lowest-ranked results beyond it are left
    /// out and the response sets `results_cut`. The default stays under the 4 MiB that gRPC
    /// clients accept by default.
    #[arg(long, env = "IVT_MAX_RESPONSE_BYTES", default_value_t = DEFAULT_MAX_RESPONSE_BYTES)]
    pub max_response_bytes: usize,
    /// Most client connections open at once on each port (gRPC, HTTP); one more is closed as
    /// soon as it is accepted (logged, and counted in ivt_limit_rejections_total).
    #[arg(long, env = "IVT_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a new connection has to send the start of a request (HTTP/2 preface, HTTP/1
    /// request, TLS hello) before it is closed.
    #[arg(long, env = "IVT_HANDSHAKE_TIMEOUT_S", default_value_t = 10.0)]
    pub handshake_timeout_s: f64,
    /// Seconds a connection may stay silent while the server waits to read from it before it is
    /// closed (healthy gRPC clients answer the keepalive pings; idle HTTP/1 connections close).
    #[arg(long, env = "IVT_IDLE_TIMEOUT_S", default_value_t = 120.0)]
    pub idle_timeout_s: f64,
    /// Seconds between HTTP/2 keepalive pings on a quiet gRPC connection.
    #[arg(long, env = "IVT_KEEPALIVE_INTERVAL_S", default_value_t = 30.0)]
    pub keepalive_interval_s: f64,
    /// Seconds to wait for a keepalive ping's answer before closing the connection.
    #[arg(long, env = "IVT_KEEPALIVE_TIMEOUT_S", default_value_t = 20.0)]
    pub keepalive_timeout_s: f64,
    /// Require `authorization: Bearer <key>` on every RPC except health.
    #[arg(long, env = "IVT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// TLS certificate chain (PEM); with --tls-key, serves TLS instead of plaintext.
    #[arg(long, env = "IVT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "IVT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Seconds between reporting NOT_SERVING and refusing new requests on shutdown, so that load
    /// balancers stop routing here first.
    #[arg(long, env = "IVT_DRAIN_DELAY_S", default_value_t = 0.0)]
    pub drain_delay_s: f64,
    /// Longest wait, in seconds, for in-flight requests to finish on shutdown.
    #[arg(long, env = "IVT_SHUTDOWN_TIMEOUT_S", default_value_t = 30.0)]
    pub shutdown_timeout_s: f64,
}

impl ServeArgs {
    /// The server configuration these flags describe, serving the index in `index_dir`.
    pub fn config(&self, index_dir: PathBuf) -> anyhow::Result<ServiceConfig> {
        let mut config = ServiceConfig::new(self.model.files()?, index_dir);
        config.device = parse_device(&self.model.device)?;
        config.dtype = parse_dtype(&self.model.dtype)?;
        config.batch = BatchConfig {
            max_batch: self.max_batch,
            max_wait: Duration::from_micros(self.max_wait_us),
        };
        config.limits = Limits {
            max_top_k: self.max_top_k,
            default_top_k: 10.min(self.max_top_k),
            max_ef: self.max_ef,
            max_queue: self.max_queue,
            max_text_bytes: self.max_text_bytes,
            max_image_bytes: self.max_image_bytes,
            max_image_pixels: self.max_image_pixels,
            max_decode_pixels: self
                .max_decode_pixels
                .unwrap_or(self.max_image_pixels.saturating_mul(4)),
            max_add_batch: self.max_add_batch,
            max_response_bytes: self.max_response_bytes,
        };
        config.connections = ConnectionLimits {
            max_connections: self.max_connections,
            handshake_timeout: seconds(self.handshake_timeout_s, "--handshake-timeout-s")?,
            idle_timeout: seconds(self.idle_timeout_s, "--idle-timeout-s")?,
            keepalive_interval: seconds(self.keepalive_interval_s, "--keepalive-interval-s")?,
            keepalive_timeout: seconds(self.keepalive_timeout_s, "--keepalive-timeout-s")?,
        };
        config.api_key = self.api_key.clone();
        config.read_only = self.read_only;
        config.tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        config.metrics_addr = (!self.no_metrics).then_some(self.metrics_addr);
        config.drain_delay = seconds(self.drain_delay_s, "--drain-delay-s")?;
        config.milvus = self.backend.milvus(HnswParams::default())?;
        config.health_interval = seconds(
            self.backend_health_interval_s,
            "--backend-health-interval-s",
        )?
        .max(Duration::from_millis(100));
        config.shutdown_timeout = seconds(self.shutdown_timeout_s, "--shutdown-timeout-s")?;
        Ok(config)
    }
}

const fn ivt_default_pixels() -> u64 {
    crate::image::DEFAULT_MAX_PIXELS
}

/// The cache folder for generated galleries.
pub fn cache_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    let xdg = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty());
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty());
    match (xdg, home) {
        (Some(xdg), _) => PathBuf::from(xdg).join("ivt"),
        (None, Some(home)) => PathBuf::from(home).join(".cache/ivt"),
        (None, None) => PathBuf::from(".ivt-cache"),
    }
}

/// Builds (or finds cached) the demo gallery index for the model being served.
fn demo_index(args: &ServeArgs) -> anyhow::Result<PathBuf> {
    let files = args.model.files()?;
    let device = parse_device(&args.model.device)?;
    let dtype = parse_dtype(&args.model.dtype)?;
    let encoder = || Ok(Encoder::load(&files, &device, dtype)?);
    let cache = cache_dir(args.cache_dir.as_deref());
    let progress = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("demo gallery: {msg} {bar:30} {pos}/{len} images")
            .context("progress template")?,
    );
    let dir = ensure_demo_index(&files, encoder, &cache, &progress).with_context(|| {
        format!(
            "preparing the demo gallery for {} in {}",
            files.name,
            cache.display()
        )
    })?;
    progress.finish_and_clear();
    tracing::info!(
        "demo gallery ready; `ivt synth --show-captions 5` prints captions to search for"
    );
    Ok(dir)
}

fn seconds(s: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("{flag} must be a non-negative number"))
}

/// Runs the server until SIGINT/SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let milvus = args.backend.gallery_backend == BackendKind::Milvus;
    let index_dir = match &args.index {
        Some(dir) => dir.clone(),
        // Milvus holds the gallery: no directory (and no demo gallery) is involved.
        None if milvus => PathBuf::new(),
        None => demo_index(&args)?,
    };
    let config = args.config(index_dir)?;
    // `api_key` is redacted by hand: never log the secret.
    tracing::info!(
        model = %config.model.weights.display(), index = %config.index_dir.display(),
        milvus = ?config.milvus.as_ref().map(|m| (&m.uri, &m.collection)),
        addr = %args.addr, http = ?(!args.no_http).then_some(args.http_addr),
        metrics = ?config.metrics_addr, batch = ?config.batch,
        limits = ?config.limits, connections = ?config.connections, auth = config.api_key.is_some(), tls = config.tls.is_some(),
        "starting ivt serve"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ivt-rt")
        .build()?;
    let http = (!args.no_http).then_some(args.http_addr);
    runtime.block_on(serve(config, args.addr, http))
}

async fn serve(
    config: ServiceConfig,
    addr: SocketAddr,
    http: Option<SocketAddr>,
) -> anyhow::Result<()> {
    if let Some(metrics_addr) = config.metrics_addr {
        service::metrics::install(metrics_addr)?;
        tracing::info!(%metrics_addr, "metrics at /metrics");
    }
    let listener = service::bind(addr).await?;
    let server = RunningServer::start(config, listener).await?;
    if let Some(http) = http {
        let started = match service::bind(http).await {
            Ok(listener) => server.serve_http(listener),
            Err(e) => Err(e),
        };
        if let Err(e) = started {
            server.shutdown().await?;
            return Err(e).context("starting the HTTP API (--no-http turns it off)");
        }
    }
    let loaded = tokio::select! {
        r = server.load() => r,
        _ = service::shutdown_signal() => {
            server.shutdown().await?;
            return Ok(());
        }
    };
    if let Err(e) = loaded {
        server.shutdown().await?;
        return Err(e).context("start-up failed");
    }
    service::shutdown_signal().await;
    server.shutdown().await?;
    Ok(())
}
