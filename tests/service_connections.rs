//! Connection limits and what a refusal leaves behind (issue #22), against `ivt serve` as a
//! process: the connection cap, the handshake timeout on a socket that never speaks, and the
//! metrics and log lines of every limit that bit (connections, idle, message size), with
//! malformed and oversized requests counted in `ivt_requests_total`.

mod service_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ivt::proto::retrieval_client::RetrievalClient;
use ivt::proto::{InfoRequest, SearchRequest};
use service_support::process::*;
use service_support::raw_call;
use tokio::io::AsyncReadExt;
use tonic::Code;

const HANDSHAKE: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_handshake_timeout_and_refusals_are_logged_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let (addr, metrics, http) = (free_port(), free_port(), free_port());
    let log = tmp.path().join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ivt"))
        .args(["serve", "--max-connections", "2", "--handshake-timeout-s"])
        .arg(HANDSHAKE.as_secs_f64().to_string())
        .env("IVT_MODEL", model_files_dir())
        .env("IVT_INDEX", tmp.path().join("gallery"))
        .env("IVT_ADDR", addr.to_string())
        .env("IVT_METRICS_ADDR", metrics.to_string())
        .env("IVT_HTTP_ADDR", http.to_string())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // One connection, then a second: both answer.
    let first = wait_serving(addr, &mut child).await;
    let second = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let info = |ch: &tonic::transport::Channel| {
        let mut c = RetrievalClient::new(ch.clone());
        async move { c.info(InfoRequest {}).await }
    };
    info(&first).await.unwrap();
    info(&second).await.unwrap();
    // A third is closed as soon as it is accepted; the first two go on.
    let third = async {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        info(&ch).await.map_err(|e| e.to_string())
    };
    assert!(third.await.is_err(), "a third connection was served");
    info(&first).await.unwrap();
    info(&second).await.unwrap();

    // A socket that never sends the HTTP preface is closed after the handshake timeout.
    let mut idle = tokio::net::TcpStream::connect(http).await.unwrap();
    let opened = Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(60), idle.read(&mut byte))
        .await
        .expect("an idle socket was still open after 60 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(opened.elapsed() >= HANDSHAKE, "closed before the timeout");

    // Malformed and oversized requests are answered and counted like handled ones.
    let e = raw_call(first.clone(), "/ivt.v1.Retrieval/Search", vec![0xff; 8])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let huge = SearchRequest {
        text: "a".repeat(64 << 20),
        ..Default::default()
    };
    let e = RetrievalClient::new(first.clone())
        .search(huge)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");

    // A refused client may retry on its own, so the connections count is at least one.
    let wanted: [(&str, u64); 5] = [
        (r#"ivt_limit_rejections_total{limit="connections"}"#, 1),
        (r#"ivt_limit_rejections_total{limit="idle"}"#, 1),
        (r#"ivt_limit_rejections_total{limit="message_size"}"#, 1),
        (
            r#"ivt_requests_total{method="Search",code="INVALID_ARGUMENT"}"#,
            1,
        ),
        (
            r#"ivt_requests_total{method="Search",code="RESOURCE_EXHAUSTED"}"#,
            1,
        ),
    ];
    let counted = |page: &str| {
        wanted.map(|(key, _)| {
            page.lines()
                .find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
        })
    };
    let done = |page: &str| counted(page).iter().all(Option::is_some);
    // The poll covers only the exporter's own delay (none seen so far).
    let mut page = http_get(metrics, "/metrics");
    let polled = Instant::now();
    while !done(&page) && polled.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(40)).await;
        page = http_get(metrics, "/metrics");
    }
    for ((key, want), got) in wanted.iter().zip(counted(&page)) {
        let ok = match *key {
            k if k.contains("connections") => got >= Some(*want),
            _ => got == Some(*want),
        };
        assert!(ok, "`{key}` is {got:?}, want {want}:\n{page}");
    }

    let logs = terminate(&mut child, &log);
    for needle in [
        "2 connections open on the gRPC port (--max-connections)",
        "sent no request for 500ms (--handshake-timeout-s)",
        "Search request message is",
    ] {
        assert!(
            logs.lines()
                .any(|l| l.contains("limit reached") && l.contains(needle)),
            "no log line for `{needle}`:\n{logs}"
        );
    }
}
