//! Prometheus metrics: names, descriptions and recording helpers, so that handlers record a
//! request with one call instead of copying metric blocks around.

use std::net::SocketAddr;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use super::ServiceError;

/// Requests (gRPC and HTTP) by method and gRPC status code.
pub const REQUESTS: &str = "ivt_requests_total";
/// End-to-end handler latency by method.
pub const REQUEST_SECONDS: &str = "ivt_request_duration_seconds";
/// Latency of one pipeline stage (tokenize, decode, queue, encode, search).
pub const STAGE_SECONDS: &str = "ivt_stage_duration_seconds";
/// Inputs per model batch, by modality.
pub const BATCH_SIZE: &str = "ivt_batch_size";
/// Inputs admitted and not yet answered.
pub const QUEUE_DEPTH: &str = "ivt_queue_depth";
/// Live images in the gallery.
pub const GALLERY_SIZE: &str = "ivt_gallery_size";
/// Work refused because a limit bit, by limit (`connections`, `message_size`, `queue`, ...).
pub const LIMIT_REJECTIONS: &str = "ivt_limit_rejections_total";

/// Latency buckets from 100 µs to 30 s: tiny models answer in well under a millisecond, the base
/// model on a CPU in seconds.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Installs the global Prometheus recorder and serves `/metrics` on `addr`. Call once per process.
pub fn install(addr: SocketAddr) -> Result<(), ServiceError> {
    let startup = |e: metrics_exporter_prometheus::BuildError| {
        ServiceError::Startup(format!("metrics exporter on {addr}: {e}"))
    };
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(SECONDS_BUCKETS)
        .map_err(startup)?
        .set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), BATCH_BUCKETS)
        .map_err(startup)?
        .install()
        .map_err(startup)?;
    describe();
    Ok(())
}

fn describe() {
    describe_counter!(
        REQUESTS,
        "requests (gRPC and HTTP) by method and status code"
    );
    describe_histogram!(
        REQUEST_SECONDS,
        metrics::Unit::Seconds,
        "handler latency by method"
    );
    describe_histogram!(
        STAGE_SECONDS,
        metrics::Unit::Seconds,
        "latency of each pipeline stage"
    );
    describe_histogram!(BATCH_SIZE, "inputs per model batch");
    describe_gauge!(QUEUE_DEPTH, "inputs admitted and not yet answered");
    describe_gauge!(GALLERY_SIZE, "live images in the gallery");
    describe_counter!(
        LIMIT_REJECTIONS,
        "connections, requests or inputs refused because a limit bit, by limit"
    );
}

/// Counts a finished request (by its status code) and its latency.
pub fn request(method: &'static str, code: tonic::Code, elapsed: Duration) {
    counter!(REQUESTS, "method" => method, "code" => code_name(code)).increment(1);
    histogram!(REQUEST_SECONDS, "method" => method).record(elapsed.as_secs_f64());
}

/// Counts one refusal by `limit`.
pub fn limit_rejection(limit: &'static str) {
    counter!(LIMIT_REJECTIONS, "limit" => limit).increment(1);
}

/// Records the time one stage took.
pub fn stage(stage: &'static str, elapsed: Duration) {
    histogram!(STAGE_SECONDS, "stage" => stage).record(elapsed.as_secs_f64());
}

/// Records the size of a batch sent to the model.
pub fn batch(modality: &'static str, size: usize) {
    histogram!(BATCH_SIZE, "modality" => modality).record(size as f64);
}

/// Publishes how many inputs are admitted.
pub fn queue_depth(depth: usize) {
    gauge!(QUEUE_DEPTH).set(depth as f64);
}

/// Publishes the gallery size.
pub fn gallery_size(size: usize) {
    gauge!(GALLERY_SIZE).set(size as f64);
}

/// Prometheus-friendly status names (`RESOURCE_EXHAUSTED`, as gRPC spells them).
pub(super) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
