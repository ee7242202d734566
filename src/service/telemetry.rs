//! OpenTelemetry: the process's tracing spans exported over OTLP/gRPC, and the W3C trace context
//! (`traceparent`) of incoming requests continued, so that a caller's trace runs through ivt.
//!
//! [`TraceContextLayer`] is a tower layer over `http::Request`: the gRPC server uses it, and an
//! HTTP server built on tower (axum) can use the same layer.

use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::instrument::Instrumented;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Longest wait for the last spans to reach the collector at exit.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The OTLP exporter of this process. Spans are batched and sent from a background thread;
/// [`Telemetry::shutdown`] sends what is left.
pub struct Telemetry {
    provider: SdkTracerProvider,
    /// Drives the exporter's gRPC connection, independently of the server's runtime (which is
    /// gone by the time the last spans are flushed).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Telemetry {
    /// An exporter sending spans to the OTLP/gRPC collector at `endpoint`
    /// (e.g. `http://otel-collector:4317`) as service `service_name`. The connection is made
    /// lazily: a collector that is down costs dropped spans, never a failed request.
    pub fn otlp(endpoint: &str, service_name: &str) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ivt-otlp")
            .enable_all()
            .build()?;
        let exporter = {
            let _entered = runtime.enter();
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()?
        };
        let resource = Resource::builder()
            .with_service_name(service_name.to_string())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        Ok(Telemetry {
            provider,
            runtime: Some(runtime),
        })
    }

    /// A `tracing` layer turning spans into OpenTelemetry spans for this exporter.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("ivt"))
    }

    /// Sends the spans not exported yet and stops the exporter.
    pub fn shutdown(mut self) {
        if let Err(e) = self.provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
            tracing::warn!(error = %e, "could not send the last spans to the OTLP collector");
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The trace context (`traceparent`, `tracestate`) carried by request headers; an empty context
/// when there is none or it is malformed.
pub fn extract(headers: &http::HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&Headers(headers))
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Runs each request in a `request` span (named after the request path for OpenTelemetry)
/// whose parent is the caller's span when the request carries a `traceparent`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextLayer;

impl<S> tower::Layer<S> for TraceContextLayer {
    type Service = TraceContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceContext { inner }
    }
}

/// The service [`TraceContextLayer`] wraps around another.
#[derive(Debug, Clone)]
pub struct TraceContext<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for TraceContext<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        let span = tracing::info_span!("request", otel.name = path, otel.kind = "server");
        let parent = extract(req.headers());
        // A request without a valid traceparent starts a new trace.
        if opentelemetry::trace::TraceContextExt::has_active_span(&parent) {
            let _ = span.set_parent(parent);
        }
        let future = span.in_scope(|| self.inner.call(req));
        future.instrument(span)
    }
}
