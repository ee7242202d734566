//! Span export over OTLP/gRPC to a real OTLP receiver on loopback (the official trace service
//! proto, served by tonic): the spans of one Search arrive, in the caller's trace, under the
//! caller's span (W3C `traceparent` in the request metadata).

mod service_support;

use std::sync::mpsc;

use ivt::proto::SearchRequest;
use ivt::service::telemetry::Telemetry;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use service_support::*;
use tracing_subscriber::layer::SubscriberExt;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// Hands every export request it receives to the test.
struct Receiver(mpsc::Sender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let _ = self.0.send(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_spans_of_a_search_reach_the_collector_under_the_callers_span() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let collector = listener.local_addr().unwrap();
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Receiver(tx)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let telemetry = Telemetry::otlp(&format!("http://{collector}"), "ivt-under-test").unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(telemetry.layer());
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let index_dir = build_index(tmp.path(), &gallery(2, 2), &local_encoder());
    rt.block_on(async {
        let server = serve(config(&index_dir)).await;
        let mut c = client(&server).await;
        let mut request = tonic::Request::new(SearchRequest {
            text: "a man in a red jacket".into(),
            ..Default::default()
        });
        let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
        request
            .metadata_mut()
            .insert("traceparent", traceparent.parse().unwrap());
        c.search(request).await.unwrap();
        server.shutdown().await.unwrap();
    });
    // Sends what is still batched; the receiver has it when this returns.
    telemetry.shutdown();

    let exports: Vec<ExportTraceServiceRequest> = rx.try_iter().collect();
    let service_names: Vec<String> = exports
        .iter()
        .flat_map(|e| &e.resource_spans)
        .flat_map(|r| &r.resource.as_ref().unwrap().attributes)
        .filter(|kv| kv.key == "service.name")
        .map(|kv| format!("{:?}", kv.value))
        .collect();
    assert!(
        !service_names.is_empty() && service_names.iter().all(|n| n.contains("ivt-under-test")),
        "{service_names:?}"
    );
    let spans: Vec<&Span> = exports
        .iter()
        .flat_map(|e| &e.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .filter(|s| hex(&s.trace_id) == TRACE_ID)
        .collect();
    let named = |name: &str| -> &Span {
        let found: Vec<&&Span> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(
            found.len(),
            1,
            "one `{name}` span in the caller's trace: {spans:#?}"
        );
        found[0]
    };
    let request = named("/ivt.v1.Retrieval/Search");
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN);
    let rpc = named("rpc");
    assert_eq!(rpc.parent_span_id, request.span_id);
    for child in ["tokenize", "queue", "encode", "search"] {
        assert_eq!(named(child).parent_span_id, rpc.span_id, "{child}");
    }
}
