//! `ivt serve` as a child process: ports, readiness, plain HTTP, exit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant};

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A port free now on 127.0.0.1.
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Waits until the Retrieval service reports SERVING (model loaded and warm), over one
/// connection: connecting is retried until the server listens, then health is polled on it.
pub async fn wait_serving(addr: SocketAddr, child: &mut Child) -> tonic::transport::Channel {
    let start = Instant::now();
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap();
    let mut channel = None;
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "ivt serve exited early"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not SERVING after 120 s"
        );
        if channel.is_none() {
            channel = endpoint.connect().await.ok();
        }
        if let Some(ch) = &channel {
            let req = HealthCheckRequest {
                service: "ivt.v1.Retrieval".into(),
            };
            if let Ok(r) = HealthClient::new(ch.clone()).check(req).await {
                if r.into_inner().status == ServingStatus::Serving as i32 {
                    return ch.clone();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A GET over a fresh connection; the whole answer (head and body).
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// The golden tiny model's directory.
pub fn model_files_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model-tiny-s12")
}

/// Waits for the child to exit (killing it after `limit`).
pub fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("ivt serve did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops the server with SIGTERM, requires a clean exit within 30 s and returns its log file.
pub fn terminate(child: &mut Child, log: &std::path::Path) -> String {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = wait_exit(child, Duration::from_secs(30));
    let logs = std::fs::read_to_string(log).unwrap();
    assert!(exit.success(), "exit {exit:?}; logs:\n{logs}");
    logs
}
