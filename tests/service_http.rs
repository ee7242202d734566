//! The HTTP/JSON API through a real HTTP client (reqwest) over loopback: every endpoint against
//! the gRPC answers and the local model, every kind of bad input, and the API key.

mod service_support;

use base64::Engine;
use ivt::proto::{GroupBy, SearchRequest};
use reqwest::StatusCode;
use serde_json::{json, Value};
use service_support::*;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

struct Fixture {
    tmp: tempfile::TempDir,
    encoder: ivt::model::Encoder,
    images: Vec<GalleryImage>,
    embs: Vec<Vec<f32>>,
    server: ivt::service::RunningServer,
    base: String,
    http: reqwest::Client,
}

/// 6 persons x 3 images, written as PNG files the index records with absolute paths (so that
/// thumbnails can be served), behind a server with the HTTP API.
async fn fixture(configure: impl FnOnce(&mut ivt::service::ServiceConfig)) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let encoder = local_encoder();
    let mut images = gallery(6, 3);
    for img in &mut images {
        let path = tmp.path().join(img.record.path.as_deref().unwrap());
        img.record.path = Some(path.to_string_lossy().into_owned());
    }
    let index_dir = build_index(tmp.path(), &images, &encoder);
    let pngs: Vec<&[u8]> = images.iter().map(|i| i.png.as_slice()).collect();
    let embs = embed_local(&encoder, &pngs);
    let mut cfg = config(&index_dir);
    configure(&mut cfg);
    let (server, base) = serve_with_http(cfg).await;
    Fixture {
        tmp,
        encoder,
        images,
        embs,
        server,
        base,
        http: reqwest::Client::new(),
    }
}

impl Fixture {
    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        json_of(r).await
    }

    async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.post(path, body.to_string()).await
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }
}

async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(content_type, "application/json", "status {status}");
    (status, r.json().await.unwrap())
}

/// What was sent, what came back, and the expected status, code and message part.
type Case<'a> = (&'a str, (StatusCode, Value), u16, &'a str, &'a str);

/// Asserts an error answer: HTTP status, gRPC code name and a message containing `needle`.
fn assert_error(what: &str, got: &(StatusCode, Value), status: u16, code: &str, needle: &str) {
    let (s, body) = got;
    assert_eq!(s.as_u16(), status, "{what}: {body}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{what}: message `{message}`");
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_like_grpc_and_the_local_model() {
    let f = fixture(|_| {}).await;

    let r = f.get("/v1/info").await;
    let (status, info) = json_of(r).await;
    assert_eq!(status, 200);
    assert_eq!(info["dim"], 64);
    assert_eq!(info["gallery_size"], 18);
    assert_eq!(info["model_name"], "model-tiny-s12");
    assert_eq!(info["limits"]["max_top_k"], 1000);
    let cfg: Value = serde_json::from_str(info["model_config_json"].as_str().unwrap()).unwrap();
    assert_eq!(cfg["hidden_size"], 64);

    let texts = [QUERIES[0], QUERIES[1]];
    let (status, r) = f
        .post_json("/v1/encode/text", json!({ "texts": texts }))
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["dim"], 64);
    let local = f.encoder.encode_texts(&texts).unwrap();
    for (got, want) in r["embeddings"].as_array().unwrap().iter().zip(&local) {
        assert!(max_diff(&floats(&got["values"]), &want.embedding) < 1e-5);
        assert_eq!(got["truncated"], false);
    }

    let pngs = [png(1, 48, 96), png(2, 30, 70)];
    let (status, r) = f
        .post_json(
            "/v1/encode/image",
            json!({ "images": [b64(&pngs[0]), b64(&pngs[1])] }),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let local = embed_local(&f.encoder, &[&pngs[0], &pngs[1]]);
    let got = r["embeddings"].as_array().unwrap();
    assert_eq!(got.len(), 2);
    for (got, want) in got.iter().zip(&local) {
        assert!(max_diff(&floats(&got["values"]), want) < 1e-5);
    }
    assert!(r["timing"]["decode_us"].as_u64().unwrap() > 0);

    // A text search with every option: the same answer as over gRPC.
    let mut grpc = client(&f.server).await;
    let filter = json!({
        "camera_ids": ["cam-a"],
        "captured_from": "2024-05-01T10:00:00Z",
        "captured_to": "2024-05-01T21:00:00+00:00",
        "exclude_person_ids": ["person-01"],
    });
    let body = json!({ "text": QUERIES[0], "top_k": 4, "group_by": "image", "filter": filter,
                       "ef": 64, "exact": false });
    let (status, r) = f.post_json("/v1/search", body).await;
    assert_eq!(status, 200, "{r}");
    let want = grpc
        .search(SearchRequest {
            text: QUERIES[0].into(),
            top_k: 4,
            group_by: GroupBy::Image as i32,
            ef: 64,
            filter: Some(ivt::proto::Filter {
                camera_ids: vec!["cam-a".into()],
                captured_from: Some(ts(captured_at(2))),
                captured_to: Some(ts(captured_at(13))),
                exclude_person_ids: vec!["person-01".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let got = r["results"].as_array().unwrap();
    assert_eq!(got.len(), want.results.len());
    assert_eq!(got.len(), 4, "{r}");
    for (g, w) in got.iter().zip(&want.results) {
        assert_eq!(g["image_id"], w.image_id);
        assert_eq!(g["person_id"], w.person_id);
        assert_eq!(g["camera_id"], "cam-a");
        assert!((g["score"].as_f64().unwrap() as f32 - w.score).abs() < 1e-6);
        let t = chrono::DateTime::parse_from_rfc3339(g["captured_at"].as_str().unwrap()).unwrap();
        assert_eq!(t.timestamp(), w.captured_at.unwrap().seconds);
        assert_eq!(
            g["images"][0]["path"].as_str(),
            f.images[idx(&w.image_id)].record.path.as_deref()
        );
    }
    assert_eq!(r["gallery_size"], 18);
    assert_eq!(r["truncated"], false);

    // By uploaded image (base64): the same gallery image ranks first.
    let body = json!({ "image": b64(&f.images[4].png), "top_k": 3, "exact": true });
    let (status, r) = f.post_json("/v1/search", body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["results"][0]["person_id"], "person-01");
    assert_eq!(r["results"][0]["image_id"], "img-004");
    assert!((r["results"][0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-4);

    // By gallery image id: the image itself is left out, its person's others are found.
    let body = json!({ "image_id": "img-004", "top_k": 17, "group_by": "GROUP_BY_IMAGE",
                       "exact": true });
    let (status, r) = f.post_json("/v1/search", body).await;
    assert_eq!(status, 200, "{r}");
    let ids: Vec<&str> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["image_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 17);
    assert!(!ids.contains(&"img-004"));
    for m in r["results"].as_array().unwrap() {
        let want = dot(&f.embs[4], &f.embs[idx(m["image_id"].as_str().unwrap())]);
        assert!((m["score"].as_f64().unwrap() as f32 - want).abs() < 1e-4);
    }

    // Thumbnails: the gallery file, re-encoded as JPEG (these crops are under 256 px).
    let r = f.get("/v1/images/img-007").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let jpeg = r.bytes().await.unwrap();
    let thumb = image::load_from_memory(&jpeg).unwrap();
    let original = image::load_from_memory(&f.images[7].png).unwrap();
    assert_eq!(
        (thumb.width(), thumb.height()),
        (original.width(), original.height())
    );

    // The page: HTML built into the binary, loading nothing from elsewhere.
    let r = f.get("/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(html.contains("/v1/search") && html.contains("more like this"));
    for external in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "href=\"//",
        "@import",
    ] {
        assert!(!html.contains(external), "the page references {external}");
    }
    f.server.shutdown().await.unwrap();
}

fn idx(image_id: &str) -> usize {
    image_id[4..].parse().unwrap()
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_http_codes_and_json_errors() {
    let f = fixture(|c| {
        c.limits.max_text_bytes = 64;
        c.limits.max_image_bytes = 1 << 16;
        c.batch.max_batch = 2;
    })
    .await;
    let search = |body: Value| f.post_json("/v1/search", body);
    let cases: Vec<Case> = vec![
        (
            "not JSON",
            f.post("/v1/search", "{text: oops").await,
            400,
            "INVALID_ARGUMENT",
            "invalid JSON body",
        ),
        (
            "unknown field",
            search(json!({ "txt": "a man" })).await,
            400,
            "INVALID_ARGUMENT",
            "unknown field `txt`",
        ),
        (
            "wrong type",
            search(json!({ "text": "a man", "top_k": "five" })).await,
            400,
            "INVALID_ARGUMENT",
            "invalid type",
        ),
        (
            "no query",
            search(json!({ "top_k": 3 })).await,
            400,
            "INVALID_ARGUMENT",
            "none was set",
        ),
        (
            "two queries",
            search(json!({ "text": "a man", "image_id": "img-001" })).await,
            400,
            "INVALID_ARGUMENT",
            "text and image_id were set",
        ),
        (
            "blank text",
            search(json!({ "text": "  " })).await,
            400,
            "INVALID_ARGUMENT",
            "text is empty",
        ),
        (
            "long text",
            search(json!({ "text": "red coat ".repeat(10) })).await,
            400,
            "INVALID_ARGUMENT",
            "limit is 64",
        ),
        (
            "bad base64",
            search(json!({ "image": "not base64!" })).await,
            400,
            "INVALID_ARGUMENT",
            "image is not valid base64",
        ),
        (
            "corrupt image",
            search(json!({ "image": b64(b"GIF89a junk") })).await,
            400,
            "INVALID_ARGUMENT",
            "invalid image",
        ),
        (
            "large image",
            search(json!({ "image": b64(&vec![0u8; (1 << 16) + 1]) })).await,
            400,
            "INVALID_ARGUMENT",
            "the limit is 65536",
        ),
        (
            "top_k",
            search(json!({ "text": "a man", "top_k": 5000 })).await,
            400,
            "INVALID_ARGUMENT",
            "top_k is 5000",
        ),
        (
            "group_by",
            search(json!({ "text": "a man", "group_by": "persons" })).await,
            400,
            "INVALID_ARGUMENT",
            "unknown variant `persons`",
        ),
        (
            "time window",
            search(json!({ "text": "a man", "filter": {
                "captured_from": "2024-05-02T00:00:00Z", "captured_to": "2024-05-01T00:00:00Z" } }))
            .await,
            400,
            "INVALID_ARGUMENT",
            "is after",
        ),
        (
            "not a time",
            search(json!({ "text": "a man", "filter": { "captured_from": "yesterday" } })).await,
            400,
            "INVALID_ARGUMENT",
            "invalid JSON body",
        ),
        (
            "unknown image id",
            search(json!({ "image_id": "img-404" })).await,
            404,
            "NOT_FOUND",
            "img-404",
        ),
        (
            "no texts",
            f.post_json("/v1/encode/text", json!({ "texts": [] })).await,
            400,
            "INVALID_ARGUMENT",
            "texts has 0 entries",
        ),
        (
            "too many texts",
            f.post_json("/v1/encode/text", json!({ "texts": ["a", "b", "c"] }))
                .await,
            400,
            "INVALID_ARGUMENT",
            "send between 1 and 2",
        ),
        (
            "image not a string",
            f.post_json("/v1/encode/image", json!({ "images": [1] }))
                .await,
            400,
            "INVALID_ARGUMENT",
            "invalid type",
        ),
        (
            "image base64",
            f.post_json("/v1/encode/image", json!({ "images": ["%%%"] }))
                .await,
            400,
            "INVALID_ARGUMENT",
            "images[0] is not valid base64",
        ),
        (
            "body too large",
            oversized(&f.base, "/v1/encode/image", 1 << 22).await,
            413,
            "RESOURCE_EXHAUSTED",
            "EncodeImage request body is over its limit of",
        ),
        (
            "unknown thumbnail",
            json_of(f.get("/v1/images/img-404").await).await,
            404,
            "NOT_FOUND",
            "img-404",
        ),
        (
            "unknown route",
            json_of(f.get("/v2/search").await).await,
            404,
            "NOT_FOUND",
            "no such endpoint",
        ),
        (
            "wrong method",
            json_of(f.get("/v1/search").await).await,
            405,
            "UNIMPLEMENTED",
            "method not allowed",
        ),
    ];
    for (what, got, status, code, needle) in &cases {
        assert_error(what, got, *status, code, needle);
    }

    // A path never comes from the request: traversal-shaped ids are just unknown ids.
    for id in [
        "..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        "crops%2Fimg-001.png",
    ] {
        let got = json_of(f.get(&format!("/v1/images/{id}")).await).await;
        assert_error(id, &got, 404, "NOT_FOUND", "not in the gallery");
    }
    // An indexed image whose file went away: NOT_FOUND naming it, and the server carries on.
    std::fs::remove_file(f.tmp.path().join("crops/img-002.png")).unwrap();
    let got = json_of(f.get("/v1/images/img-002").await).await;
    assert_error("missing file", &got, 404, "NOT_FOUND", "img-002");
    let (status, _) = search(json!({ "text": "a man" })).await;
    assert_eq!(status, 200);
    f.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_the_key_and_answers_unavailable_until_loaded() {
    let f = fixture(|c| c.api_key = Some("s3cret".into())).await;
    let info = |key: Option<&str>| {
        let mut r = f.http.get(format!("{}/v1/info", f.base));
        if let Some(k) = key {
            r = r.header("authorization", k);
        }
        r.send()
    };
    let r = info(None).await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_error(
        "no key",
        &json_of(r).await,
        401,
        "UNAUTHENTICATED",
        "missing API key",
    );
    for wrong in [
        "Bearer nope",
        "s3cret",
        "Basic czNjcmV0",
        "Bearer s3cre",
        "bearer s3cret",
    ] {
        let got = json_of(info(Some(wrong)).await.unwrap()).await;
        assert_eq!(got.0, 401, "{wrong}: {}", got.1);
    }
    assert_eq!(info(Some("Bearer s3cret")).await.unwrap().status(), 200);
    // Every API route is behind the key; the page (static, no data) is not.
    let search = f
        .http
        .post(format!("{}/v1/search", f.base))
        .body(json!({ "text": "a man" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(search.status(), 401);
    assert_eq!(f.get("/v1/images/img-001").await.status(), 401);
    let authorised = f
        .http
        .get(format!("{}/v1/images/img-001", f.base))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(authorised.status(), 200);
    assert_eq!(f.get("/").await.status(), 200);
    f.server.shutdown().await.unwrap();

    // Before the model is loaded: 503 UNAVAILABLE, like gRPC.
    let tmp = tempfile::tempdir().unwrap();
    let (server, base) = start_with_http(config(&tmp.path().join("index"))).await;
    let r = f
        .http
        .post(format!("{base}/v1/search"))
        .body(json!({ "text": "a man" }).to_string())
        .send()
        .await
        .unwrap();
    assert_error(
        "loading",
        &json_of(r).await,
        503,
        "UNAVAILABLE",
        "still loading",
    );
    server.shutdown().await.unwrap();
}
