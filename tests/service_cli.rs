//! `ivt serve` as a process, configured only through `IVT_*` environment variables: it becomes
//! SERVING, answers gRPC and HTTP, exports Prometheus metrics for both, logs JSON, and exits 0 on
//! SIGTERM.

mod service_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ivt::proto::retrieval_client::RetrievalClient;
use ivt::proto::SearchRequest;
use service_support::process::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_from_env_exports_metrics_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let (addr, metrics, http) = (free_port(), free_port(), free_port());
    let log = tmp.path().join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ivt"))
        .arg("serve")
        .env("IVT_MODEL", model_files_dir())
        .env("IVT_INDEX", tmp.path().join("gallery"))
        .env("IVT_ADDR", addr.to_string())
        .env("IVT_METRICS_ADDR", metrics.to_string())
        .env("IVT_HTTP_ADDR", http.to_string())
        .env("IVT_MAX_BATCH", "4")
        .env("IVT_MAX_QUEUE", "64")
        .env("IVT_JSON_LOGS", "true")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let ch = wait_serving(addr, &mut child).await;
    let mut c = RetrievalClient::new(ch);
    let req = SearchRequest {
        text: "a woman in a red coat".into(),
        ..Default::default()
    };
    let r = c.search(req).await.unwrap().into_inner();
    assert_eq!(r.gallery_size, 0);
    let bad = c.search(SearchRequest::default()).await.unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    // The HTTP API on IVT_HTTP_ADDR: the same handler, counted in the same metrics.
    let r = reqwest::Client::new()
        .post(format!("http://{http}/v1/search"))
        .body(r#"{"text": "a man in a grey jacket"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["gallery_size"], 0);
    assert!(http_get(http, "/").contains("more like this"));

    // Each queue place is released (and the gauge updated) before its reply goes out; the poll
    // only covers the metrics exporter's own delay, and its limit is far beyond any delay seen
    // (none so far) so that a loaded machine cannot fail it.
    let mut page = http_get(metrics, "/metrics");
    let polled = Instant::now();
    while !page.contains("ivt_queue_depth 0") && polled.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(40)).await;
        page = http_get(metrics, "/metrics");
    }
    for needle in [
        r#"ivt_requests_total{method="Search",code="OK"} 2"#,
        r#"ivt_requests_total{method="Search",code="INVALID_ARGUMENT"} 1"#,
        r#"ivt_stage_duration_seconds_bucket{stage="encode""#,
        r#"ivt_stage_duration_seconds_bucket{stage="tokenize""#,
        r#"ivt_stage_duration_seconds_bucket{stage="search""#,
        r#"ivt_batch_size_bucket{modality="text""#,
        "ivt_queue_depth 0",
        "ivt_gallery_size 0",
    ] {
        assert!(page.contains(needle), "metrics lack `{needle}`:\n{page}");
    }

    let logs = terminate(&mut child, &log);
    assert!(logs.contains("SIGTERM received"), "{logs}");
    assert!(logs.contains("creating an empty one"), "{logs}");
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("JSON log lines");
    }
}
