//! Limits that hold against hostile or careless clients (issue #22), over loopback with a real
//! gRPC client: pixel limits read from the header, truncated JPEGs, bounded error messages,
//! empty API keys.

mod service_support;

use ivt::proto::{EncodeImageRequest, RemoveImagesRequest, SearchRequest};
use ivt::service::RunningServer;
use service_support::*;
use tonic::Code;

/// A PNG declaring `side` x `side` pixels: tiny on the wire (one colour compresses to almost
/// nothing), huge once decoded.
fn big_png(side: u32) -> Vec<u8> {
    let img = image::GrayImage::new(side, side);
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn jpeg(seed: u32) -> Vec<u8> {
    let png = png(seed, 64, 128);
    let img = image::load_from_memory(&png).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_over_the_pixel_limit_and_truncated_jpegs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(&tmp.path().join("g"));
    cfg.limits.max_image_pixels = 1000 * 1000;
    cfg.limits.max_decode_pixels = 4_000_000;
    let server = serve(cfg).await;
    let mut c = client(&server).await;
    let encode = |images: Vec<Vec<u8>>| EncodeImageRequest { images };

    // 2000 x 2000 declared: refused from the header, naming the limit.
    let e = c
        .encode_image(encode(vec![big_png(2000)]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().contains("2000x2000") && e.message().contains("1000000"),
        "{e:?}"
    );
    // Within the per-image limit but more than the server decodes at once in one call.
    let e = c
        .encode_image(encode(vec![big_png(1000); 5]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("at most 4000000"), "{e:?}");

    // A whole JPEG encodes; the same cut at 50 to 99 % is refused.
    let whole = jpeg(3);
    c.encode_image(encode(vec![whole.clone()])).await.unwrap();
    for percent in [50, 75, 90, 99] {
        let cut = whole[..whole.len() * percent / 100].to_vec();
        let e = c.encode_image(encode(vec![cut])).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{percent} %: {e:?}");
        assert!(e.message().contains("truncated"), "{percent} %: {e:?}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_lists_a_bounded_number_of_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(config(&tmp.path().join("g"))).await;
    let mut c = client(&server).await;
    let ids: Vec<String> = (0..100_000).map(|i| format!("gone-{i}\nforged")).collect();
    let e = c
        .remove_images(RemoveImagesRequest {
            image_ids: ids,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().len() < 1000, "{} bytes", e.message().len());
    assert!(e.message().contains("and 99990 more"), "{e:?}");
    assert!(!e.message().contains('\n'), "{e:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_api_key_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    for key in ["", "  "] {
        let mut cfg = config(&tmp.path().join("g"));
        cfg.api_key = Some(key.into());
        let listener = ivt::service::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let err = RunningServer::start(cfg, listener)
            .await
            .err()
            .expect("an empty key must be refused")
            .to_string();
        assert!(err.contains("API key") && err.contains("empty"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_image_lane_leaves_text_search_admitted_and_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(&tmp.path().join("g"));
    cfg.limits.max_queue = 4;
    cfg.batch.max_batch = 4;
    let server = serve(cfg).await;
    let c = client(&server).await;
    // Four images of 4096x4096 pixels fill the image lane for as long as they decode (one after
    // another on the decode pool): far longer than the probes and the Search below take.
    let slow_call = || {
        let mut c = c.clone();
        let images = vec![big_png(4096); 4];
        tokio::spawn(async move { c.encode_image(EncodeImageRequest { images }).await })
    };
    let probe = || {
        let mut c = c.clone();
        async move {
            c.encode_image(EncodeImageRequest {
                images: vec![jpeg(1)],
            })
            .await
        }
    };
    // Wait until the slow call holds the lane: one more image is refused at once. A probe still
    // holding its one slot when the slow call arrives makes the slow call itself the refused
    // one (it needs all four): it is then sent again.
    let lane_full = |r: &Result<_, tonic::Status>| matches!(r, Err(e) if e.code() == Code::ResourceExhausted && e.message().contains("queued"));
    let mut slow = slow_call();
    loop {
        let r = probe().await;
        if lane_full(&r) {
            break;
        }
        if slow.is_finished() {
            let ended = (&mut slow).await.unwrap();
            assert!(
                lane_full(&ended),
                "the slow call ended before the lane was seen full: {ended:?}"
            );
            slow = slow_call();
        }
        tokio::task::yield_now().await;
    }
    let search = SearchRequest {
        text: "a woman in a red coat".into(),
        ..Default::default()
    };
    let answer = c.clone().search(search).await.unwrap().into_inner();
    assert_eq!(answer.gallery_size, 0);
    // The lane was full all along: still refusing images after the Search was answered.
    let r = probe().await;
    assert!(lane_full(&r), "image lane no longer full: {r:?}");
    slow.abort();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_responses_are_cut_to_the_response_limit() {
    use ivt::index::MAX_PATH_BYTES;
    use ivt::proto::{AddImageRequest, GroupBy};
    use prost::Message;
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(&tmp.path().join("g"));
    // Room for about three of the ten results below, each carrying a path at the record limit.
    let max = 3 * MAX_PATH_BYTES + 2_000;
    cfg.limits.max_response_bytes = max;
    let server = serve(cfg).await;
    let mut c = client(&server).await;
    let adds: Vec<AddImageRequest> = (0..10)
        .map(|i| AddImageRequest {
            image: png(900 + i, 32, 64),
            image_id: format!("img-{i}"),
            person_id: format!("p-{i}"),
            path: format!("/{}", "p".repeat(MAX_PATH_BYTES - 1)),
            ..Default::default()
        })
        .collect();
    c.add_images(tokio_stream::iter(adds)).await.unwrap();
    let search = |top_k: u32| SearchRequest {
        text: "a woman in a red coat".into(),
        top_k,
        group_by: GroupBy::Image as i32,
        ..Default::default()
    };
    let cut = c.search(search(10)).await.unwrap().into_inner();
    assert!(cut.results_cut, "not cut: {} results", cut.results.len());
    assert!(cut.encoded_len() <= max, "{} > {max}", cut.encoded_len());
    let kept = cut.results.len();
    assert!((1..10).contains(&kept), "{kept} results kept");
    // What was kept is the best of the ranking: asking for that many answers the same, uncut.
    let fits = c.search(search(kept as u32)).await.unwrap().into_inner();
    assert!(!fits.results_cut);
    let ids = |r: &ivt::proto::SearchResponse| -> Vec<String> {
        r.results.iter().map(|x| x.image_id.clone()).collect()
    };
    assert_eq!(ids(&cut), ids(&fits));
    // The limit is published.
    let info = c
        .info(ivt::proto::InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.limits.unwrap().max_response_bytes, max as u64);
    server.shutdown().await.unwrap();
}
