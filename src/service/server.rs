//! Server lifecycle: bind and answer health at once, load and warm up the model and index, then
//! report SERVING; on shutdown report NOT_SERVING, drain in-flight requests and stop the model.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::Router;
use tonic::transport::{Identity, ServerTlsConfig};
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tower::layer::util::{Identity as NoLayer, Stack};

use super::auth::Auth;
use super::connections::Acceptor;
use super::gallery::Gallery;
use super::gate::{Gate, MessageLimits};
use super::infer::Infer;
use super::queue::{batching_task, Batch};
use super::retrieval::{Core, ModelInfo, RetrievalService, Shared};
use super::telemetry::TraceContextLayer;
use super::{worker, ServiceConfig, ServiceError};
use crate::image::Pixels;
use crate::index::IndexError;
use crate::model::Encoder;
use crate::proto::retrieval_server::{RetrievalServer, SERVICE_NAME};

type ServeResult = Result<(), tonic::transport::Error>;

/// A running server. Dropping it without [`RunningServer::shutdown`] leaves the tasks running
/// until the runtime ends.
pub struct RunningServer {
    addr: SocketAddr,
    config: ServiceConfig,
    shared: Arc<Shared>,
    health: HealthReporter,
    stop: Option<oneshot::Sender<()>>,
    serve: tokio::task::JoinHandle<ServeResult>,
    model_thread: Mutex<Option<JoinHandle<()>>>,
    /// Polls a remote gallery backend and mirrors its health (stopped at shutdown).
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Verifies the embedded index's files after start-up (stopped at shutdown).
    verifier: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The HTTP API, when served: its stop signal and task.
    http: Mutex<Option<HttpTask>>,
}

struct HttpTask {
    stop: oneshot::Sender<()>,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Starts answering on `listener`: health says "" SERVING and `ivt.v1.Retrieval` NOT_SERVING,
    /// and retrieval RPCs answer UNAVAILABLE until [`RunningServer::load`] succeeds.
    pub async fn start(config: ServiceConfig, listener: TcpListener) -> Result<Self, ServiceError> {
        validate(&config)?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServiceError::Startup(format!("listener address: {e}")))?;
        let shared = Arc::new(Shared {
            core: OnceLock::new(),
            limits: config.limits.clone(),
            // An Encode call must fit in the queue at once, or it could never be admitted.
            max_inputs: config.batch.max_batch.min(config.limits.max_queue),
            max_batch: config.batch.max_batch,
        });
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
            .await;
        let router = router(&config, shared.clone(), health_service)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let incoming = Acceptor::new(listener, config.connections, "gRPC").into_incoming();
        let serve = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        }));
        tracing::info!(%addr, tls = config.tls.is_some(), auth = config.api_key.is_some(), "listening");
        Ok(Self {
            addr,
            config,
            shared,
            health,
            stop: Some(stop),
            serve,
            model_thread: Mutex::new(None),
            watcher: Mutex::new(None),
            verifier: Mutex::new(None),
            http: Mutex::new(None),
        })
    }

    /// Also serves the HTTP/JSON API and the search page on `listener`, over the same handlers,
    /// limits, queue and API key as gRPC. Plaintext only: refused when TLS is configured (put a
    /// TLS-terminating proxy in front, or turn HTTP off). Returns the bound address.
    pub fn serve_http(&self, listener: TcpListener) -> Result<SocketAddr, ServiceError> {
        if self.config.tls.is_some() {
            return Err(ServiceError::Startup(
                "the HTTP API serves plaintext only and TLS is configured: pass --no-http, or \
                 terminate TLS in front of the HTTP port"
                    .into(),
            ));
        }
        let addr = listener
            .local_addr()
            .map_err(|e| ServiceError::Startup(format!("HTTP listener address: {e}")))?;
        let router = super::http::router(
            RetrievalService::new(self.shared.clone()),
            Auth::new(self.config.api_key.as_deref()),
            message_limits(&self.shared),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let listener = Acceptor::new(listener, self.config.connections, "HTTP");
        let serve = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        if let Ok(mut slot) = self.http.lock() {
            *slot = Some(HttpTask { stop, serve });
        }
        tracing::info!(%addr, auth = self.config.api_key.is_some(), "HTTP API and search page listening");
        Ok(addr)
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Loads and warms up the model, opens (or creates) the index, starts the batching tasks and
    /// the model thread, then reports SERVING.
    pub async fn load(&self) -> Result<(), ServiceError> {
        let config = self.config.clone();
        let (encoder, gallery, fingerprint) =
            super::infer::blocking(move || load_blocking(&config)).await??;
        let info = ModelInfo {
            name: encoder.name().to_string(),
            config_json: serde_json::to_string(encoder.config())
                .map_err(|e| ServiceError::Internal(e.to_string()))?,
            dim: encoder.dim(),
        };
        let infer = self.start_pipeline(encoder)?;
        let embedded = gallery.describe().0 == "embedded";
        let verify = embedded.then(|| gallery.clone());
        let watch = (!embedded).then(|| gallery.clone());
        let core = Core {
            infer,
            gallery,
            model: info,
        };
        if self.shared.core.set(core).is_err() {
            return Err(ServiceError::Internal("load called twice".into()));
        }
        self.health
            .set_service_status(SERVICE_NAME, ServingStatus::Serving)
            .await;
        tracing::info!(model_fingerprint = %fingerprint, "model and index ready: SERVING");
        if let Some(gallery) = verify {
            let task = tokio::spawn(verify_in_background(gallery, self.health.clone()));
            if let Ok(mut slot) = self.verifier.lock() {
                *slot = Some(task);
            }
        }
        if let Some(gallery) = watch {
            let task = tokio::spawn(watch_backend(
                gallery,
                self.health.clone(),
                self.config.health_interval,
            ));
            if let Ok(mut slot) = self.watcher.lock() {
                *slot = Some(task);
            }
        }
        Ok(())
    }

    /// Starts the two batching tasks (texts, images) and the model thread they feed.
    fn start_pipeline(&self, encoder: Encoder) -> Result<Infer, ServiceError> {
        let (batch, max_queue) = (self.config.batch, self.config.limits.max_queue);
        // One lane per modality up to the model thread, which takes texts first.
        let (model_text_tx, model_text_rx) = mpsc::channel::<Batch>(1);
        let (model_image_tx, model_image_rx) = mpsc::channel::<Batch>(1);
        let (text_tx, text_rx) = mpsc::channel(max_queue);
        let (image_tx, image_rx) = mpsc::channel::<super::queue::Entry<Pixels>>(max_queue);
        tokio::spawn(batching_task(
            text_rx,
            model_text_tx,
            batch,
            "text",
            Batch::Texts,
        ));
        tokio::spawn(batching_task(
            image_rx,
            model_image_tx,
            batch,
            "image",
            Batch::Images,
        ));
        let infer = Infer::new(
            text_tx,
            image_tx,
            &self.config.limits,
            encoder.tokenizer().clone(),
            encoder.config().clone(),
        );
        let thread = worker::spawn(encoder, model_text_rx, model_image_rx)
            .map_err(|e| ServiceError::Startup(format!("cannot start the model thread: {e}")))?;
        if let Ok(mut slot) = self.model_thread.lock() {
            *slot = Some(thread);
        }
        Ok(infer)
    }

    /// Graceful shutdown: NOT_SERVING, wait `drain_delay`, stop accepting, finish in-flight
    /// requests (at most `shutdown_timeout`), save the HNSW graph if online adds grew it, then
    /// stop the model thread. Gallery changes themselves are durable when each call returns.
    pub async fn shutdown(mut self) -> Result<(), ServiceError> {
        tracing::info!("shutting down: NOT_SERVING");
        for slot in [&self.watcher, &self.verifier] {
            if let Some(task) = slot.lock().ok().and_then(|mut t| t.take()) {
                task.abort();
            }
        }
        self.health
            .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
            .await;
        tokio::time::sleep(self.config.drain_delay).await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let http = self.http.lock().ok().and_then(|mut t| t.take());
        let http_serve = http.map(|HttpTask { stop, serve }| {
            let _ = stop.send(());
            serve
        });
        // Health Watch streams never end by themselves and would hold their connections open.
        self.health.clear_service_status(SERVICE_NAME).await;
        self.health.clear_service_status("").await;
        let timeout = self.config.shutdown_timeout;
        let drained = tokio::time::timeout(timeout, async {
            let grpc = (&mut self.serve).await;
            if let Some(http) = http_serve {
                match http.await {
                    Ok(Err(e)) => tracing::error!(error = %e, "HTTP server"),
                    Err(e) => tracing::error!(error = %e, "HTTP server task"),
                    Ok(Ok(())) => {}
                }
            }
            grpc
        })
        .await;
        let result = match drained {
            Ok(Ok(r)) => r.map_err(|e| ServiceError::Internal(format!("server: {e}"))),
            Ok(Err(e)) => Err(ServiceError::Internal(format!("server task: {e}"))),
            Err(_) => {
                tracing::warn!(timeout = ?self.config.shutdown_timeout, "requests still running; closing anyway");
                self.serve.abort();
                return Ok(());
            }
        };
        if let Some(core) = self.shared.core.get() {
            if let Err(e) = core.gallery.persist().await {
                tracing::error!(error = %e, "could not save the graph; the next start re-inserts");
            }
        }
        let thread = self.model_thread.lock().ok().and_then(|mut t| t.take());
        // The last handle to the queues goes with `self`: the batching tasks end, then the model thread.
        drop(self);
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        tracing::info!("stopped");
        result
    }
}

/// All services on one router: health open to all, the rest behind the API key (if any); every
/// request continues its caller's trace.
fn router(
    config: &ServiceConfig,
    shared: Arc<Shared>,
    health: HealthServer<impl Health>,
) -> Result<Router<Stack<TraceContextLayer, NoLayer>>, ServiceError> {
    let auth = Auth::new(config.api_key.as_deref());
    let startup = |e: &dyn std::fmt::Display| ServiceError::Startup(e.to_string());
    let reflection_v1 = reflection().build_v1().map_err(|e| startup(&e))?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(|e| startup(&e))?;
    let limits = message_limits(&shared);
    let retrieval = RetrievalServer::new(RetrievalService::new(shared))
        .max_decoding_message_size(limits.largest())
        .max_encoding_message_size(usize::MAX);
    let retrieval = Gate::new(retrieval, limits);
    Ok(builder(config)?
        .layer(TraceContextLayer)
        .add_service(health)
        .add_service(InterceptedService::new(reflection_v1, auth.clone()))
        .add_service(InterceptedService::new(reflection_v1alpha, auth.clone()))
        .add_service(InterceptedService::new(retrieval, auth)))
}

/// Each method's message size limit, from the request limits.
fn message_limits(shared: &Shared) -> MessageLimits {
    MessageLimits::new(&shared.limits, shared.max_inputs)
}

/// Reflection over our API and health, so `grpcurl` needs no .proto files.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

fn validate(config: &ServiceConfig) -> Result<(), ServiceError> {
    if config.batch.max_batch == 0 || config.limits.max_queue == 0 {
        return Err(ServiceError::Startup(
            "max batch and max queue must be positive".into(),
        ));
    }
    // An empty key would silently turn authentication off (an unset secret, a templating
    // mistake): refuse it rather than serve open while claiming auth.
    if config
        .api_key
        .as_deref()
        .is_some_and(|k| k.trim().is_empty())
    {
        return Err(ServiceError::Startup(
            "the API key (--api-key / IVT_API_KEY) is empty: set a key, or unset it to serve \
             without authentication"
                .into(),
        ));
    }
    if config.connections.max_connections == 0 {
        return Err(ServiceError::Startup(
            "--max-connections must be positive".into(),
        ));
    }
    if config.limits.max_image_pixels == 0 {
        return Err(ServiceError::Startup(
            "--max-image-pixels must be positive".into(),
        ));
    }
    Ok(())
}

fn builder(config: &ServiceConfig) -> Result<tonic::transport::Server, ServiceError> {
    let c = &config.connections;
    // Pings find dead peers and half-open sockets on connections that went quiet.
    let builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(c.keepalive_interval))
        .http2_keepalive_timeout(Some(c.keepalive_timeout));
    let Some(tls) = &config.tls else {
        return Ok(builder);
    };
    let read = |p: &std::path::Path| {
        std::fs::read(p)
            .map_err(|e| ServiceError::Startup(format!("cannot read {}: {e}", p.display())))
    };
    let identity = Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
    builder
        .tls_config(ServerTlsConfig::new().identity(identity))
        .map_err(|e| ServiceError::Startup(format!("TLS configuration: {e}")))
}

/// Loads the model, warms it up (first passes allocate and are slow) and opens the index.
fn load_blocking(config: &ServiceConfig) -> Result<(Encoder, Gallery, String), ServiceError> {
    let files = &config.model;
    tracing::info!(model = %files.weights.display(), "loading model");
    let encoder = Encoder::load(files, &config.device, config.dtype)?;
    let fingerprint = files.fingerprint()?;
    encoder.encode_texts(&["a man in a black jacket and blue jeans"])?;
    let [h, w] = encoder.config().image_size;
    let grey = Pixels {
        data: vec![0.0; 3 * h * w],
        height: h,
        width: w,
    };
    encoder.embed_pixels(&[&grey])?;
    let gallery = match &config.milvus {
        None => {
            tracing::info!(index = %config.index_dir.display(), "model warm; opening index");
            Gallery::open_embedded(
                &config.index_dir,
                &fingerprint,
                encoder.dim(),
                config.read_only,
            )?
        }
        Some(milvus) => {
            let gallery = open_milvus(milvus, &fingerprint, encoder.dim())?;
            if config.read_only {
                gallery.read_only()
            } else {
                gallery
            }
        }
    };
    let (backend, location) = gallery.describe();
    tracing::info!(backend, %location, gallery_size = gallery.size(), read_only = config.read_only, "gallery open");
    Ok((encoder, gallery, fingerprint))
}

/// Opens the Milvus gallery, waiting (with backoff) while Milvus is unreachable: in a cluster
/// the service may start before its database. Health stays NOT_SERVING meanwhile.
fn open_milvus(
    config: &crate::index::milvus::MilvusConfig,
    fingerprint: &str,
    dim: usize,
) -> Result<Gallery, ServiceError> {
    let mut delay = std::time::Duration::from_secs(1);
    loop {
        match Gallery::open_milvus(config.clone(), fingerprint, dim) {
            Err(ServiceError::Index(IndexError::Unavailable(e))) => {
                tracing::warn!(error = %e, retry_in = ?delay, "Milvus not reachable yet");
                std::thread::sleep(delay);
                delay = (delay * 2).min(std::time::Duration::from_secs(30));
            }
            other => return other,
        }
    }
}

/// Verifies the embedded index's files against their checksums once, after SERVING: reading
/// every file takes seconds for a million images (README "Index checksums"), too long to
/// hold start-up for. A damaged file turns the retrieval service NOT_SERVING for good (the
/// index must be rebuilt or restored) and is named in an error log.
async fn verify_in_background(gallery: Gallery, health: HealthReporter) {
    let Err(e) = gallery.verify().await else {
        return;
    };
    let file = match &e {
        ServiceError::Index(IndexError::Corrupt { path, .. }) => path.display().to_string(),
        _ => String::new(),
    };
    tracing::error!(%file, error = %e, "index damaged: NOT_SERVING (rebuild the index or restore it from a backup)");
    health
        .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
        .await;
}

/// Reports the retrieval service NOT_SERVING while the gallery backend fails its health check,
/// and SERVING again once it recovers. Requests meanwhile fail with UNAVAILABLE on their own.
async fn watch_backend(gallery: Gallery, health: HealthReporter, every: std::time::Duration) {
    let mut healthy = true;
    loop {
        tokio::time::sleep(every).await;
        match gallery.check_health().await {
            Ok(()) if !healthy => {
                healthy = true;
                tracing::info!("gallery backend recovered: SERVING");
                health
                    .set_service_status(SERVICE_NAME, ServingStatus::Serving)
                    .await;
            }
            Err(e) if healthy => {
                healthy = false;
                tracing::error!(error = %e, "gallery backend unavailable: NOT_SERVING");
                health
                    .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
                    .await;
            }
            _ => {}
        }
    }
}

/// Binds a TCP listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServiceError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| ServiceError::Startup(format!("cannot listen on {addr}: {e}")))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (Kubernetes, docker stop).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}
