//! Per-method message size limits and malformed messages (issue #22), over loopback: gRPC with
//! tonic's client (raw bytes through its generic client where the message must be garbage), the
//! HTTP API through a raw connection.

mod service_support;

use ivt::proto::{AddImageRequest, EncodeTextRequest, SearchRequest};
use service_support::*;
use tonic::{Code, Status};

fn assert_refused(e: &Status, code: Code, needles: &[&str]) {
    assert_eq!(e.code(), code, "{e:?}");
    for needle in needles {
        assert!(e.message().contains(needle), "`{needle}` not in {e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_grpc_method_takes_what_it_can_carry_and_no_more() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(&tmp.path().join("g"));
    cfg.batch.max_batch = 4;
    let max_image = cfg.limits.max_image_bytes;
    let server = serve(cfg).await;
    let mut c = client(&server).await;

    // 64 MB of Search is refused from its length prefix, not decoded and then checked.
    let huge = SearchRequest {
        text: "a".repeat(64 << 20),
        ..Default::default()
    };
    let e = c.search(huge).await.unwrap_err();
    assert_refused(
        &e,
        Code::ResourceExhausted,
        &[
            "Search request message is 6710",
            "over its limit of",
            "--max-image-bytes",
        ],
    );
    // One image of the largest size still reaches the handler, which names the field.
    let image = SearchRequest {
        image: vec![0; max_image + 1],
        ..Default::default()
    };
    let e = c.search(image).await.unwrap_err();
    assert_refused(&e, Code::InvalidArgument, &["image is", "the limit is"]);
    // EncodeText carries texts only: a megabyte is far over its limit.
    let texts = EncodeTextRequest {
        texts: vec!["b".repeat(1 << 20)],
    };
    let e = c.encode_text(texts).await.unwrap_err();
    assert_refused(
        &e,
        Code::ResourceExhausted,
        &["EncodeText request message is"],
    );
    // AddImages: each message of the stream carries one image.
    let add = AddImageRequest {
        image: vec![0; 2 * max_image],
        image_id: "big".into(),
        person_id: "p".into(),
        ..Default::default()
    };
    let e = c
        .add_images(tokio_stream::iter(vec![add]))
        .await
        .unwrap_err();
    assert_refused(
        &e,
        Code::ResourceExhausted,
        &["AddImages request message is"],
    );

    // The same connection goes on serving.
    let ok = SearchRequest {
        text: "a man in a grey jacket".into(),
        ..Default::default()
    };
    c.search(ok).await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_is_invalid_argument() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(config(&tmp.path().join("g"))).await;
    // Field 1 (text) as a length-delimited string claiming more bytes than follow, then garbage.
    for garbage in [vec![0x0a, 0x7f, b'a'], vec![0xff; 16]] {
        let e = raw_call(channel(&server).await, "/ivt.v1.Retrieval/Search", garbage)
            .await
            .unwrap_err();
        assert_refused(&e, Code::InvalidArgument, &["malformed Search request"]);
    }
    // A well-formed message through the same path is answered by the handler.
    let text = SearchRequest {
        text: "a man".into(),
        ..Default::default()
    };
    let answer = raw_call(
        channel(&server).await,
        "/ivt.v1.Retrieval/Search",
        prost::Message::encode_to_vec(&text),
    )
    .await
    .unwrap();
    let answer: ivt::proto::SearchResponse = prost::Message::decode(&answer[..]).unwrap();
    assert_eq!(answer.gallery_size, 0);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_http_route_takes_what_its_method_can_carry() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(&tmp.path().join("g"));
    cfg.batch.max_batch = 4;
    let (server, base) = serve_with_http(cfg).await;

    // Refused from the Content-Length: the 64 MB are never read.
    let (status, body) = oversized(&base, "/v1/search", 64 << 20).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "RESOURCE_EXHAUSTED", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Search request body is over its limit of"),
        "{message}"
    );
    // 12 MB: over a Search's limit (one image in base64), within a batch of images.
    let (status, body) = oversized(&base, "/v1/search", 12 << 20).await;
    assert_eq!(status, 413, "{body}");
    let (status, body) = oversized(&base, "/v1/encode/image", 12 << 20).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "INVALID_ARGUMENT", "{body}");
    server.shutdown().await.unwrap();
}
