//! Every RPC of `ivt.v1.Retrieval` over a real loopback connection, checked against the same
//! model run locally and a real index built from PNG files.

mod service_support;

use std::collections::HashMap;

use ivt::proto::{
    self, AddImageRequest, EncodeImageRequest, EncodeTextRequest, Filter, GroupBy, InfoRequest,
    RemoveImagesRequest, SearchRequest,
};
use service_support::*;
use tonic::Code;

fn search(text: &str, top_k: u32, group_by: GroupBy) -> SearchRequest {
    SearchRequest {
        text: text.into(),
        top_k,
        group_by: group_by as i32,
        exact: true,
        ..Default::default()
    }
}

/// Local image scores for `text`, by image id.
fn local_scores(
    encoder: &ivt::model::Encoder,
    text: &str,
    ids: &[String],
    embs: &[Vec<f32>],
) -> HashMap<String, f32> {
    let q = encoder.encode_texts(&[text]).unwrap().remove(0).embedding;
    ids.iter()
        .cloned()
        .zip(embs.iter().map(|e| dot(&q, e)))
        .collect()
}

/// Checks that results are best first and every score equals the local one.
fn assert_ranked_like_local(results: &[proto::SearchResult], expected: &HashMap<String, f32>) {
    for pair in results.windows(2) {
        assert!(pair[0].score >= pair[1].score, "results not best first");
    }
    for r in results {
        let want = expected[&r.image_id];
        assert!(
            (r.score - want).abs() < 1e-4,
            "{}: {} vs {want}",
            r.image_id,
            r.score
        );
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    encoder: ivt::model::Encoder,
    ids: Vec<String>,
    embs: Vec<Vec<f32>>,
    server: ivt::service::RunningServer,
}

async fn fixture(persons: u32, per_person: u32) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let encoder = local_encoder();
    let images = gallery(persons, per_person);
    let index_dir = build_index(tmp.path(), &images, &encoder);
    let pngs: Vec<&[u8]> = images.iter().map(|i| i.png.as_slice()).collect();
    let embs = embed_local(&encoder, &pngs);
    let ids = images.iter().map(|i| i.record.image_id.clone()).collect();
    let server = serve(config(&index_dir)).await;
    Fixture {
        _tmp: tmp,
        encoder,
        ids,
        embs,
        server,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_and_encoders_match_the_local_model() {
    let f = fixture(4, 2).await;
    let mut c = client(&f.server).await;

    let info = c.info(InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.dim, 64);
    assert_eq!(info.gallery_size, 8);
    assert_eq!(info.index_fingerprint, model_files().fingerprint().unwrap());
    assert_eq!(info.model_name, "model-tiny-s12");
    let cfg: serde_json::Value = serde_json::from_str(&info.model_config_json).unwrap();
    assert_eq!(cfg["hidden_size"], 64);
    assert_eq!(info.limits.unwrap().max_top_k, 1000);

    let texts: Vec<String> = QUERIES[..3].iter().map(|s| s.to_string()).collect();
    let r = c
        .encode_text(EncodeTextRequest {
            texts: texts.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let local = f.encoder.encode_texts(&refs).unwrap();
    assert_eq!((r.dim, r.embeddings.len()), (64, 3));
    for (got, want) in r.embeddings.iter().zip(&local) {
        assert!(max_diff(&got.values, &want.embedding) < 1e-5);
        assert!(!got.truncated);
    }

    let pngs = [png(1, 48, 96), png(2, 30, 70)];
    let r = c
        .encode_image(EncodeImageRequest {
            images: pngs.to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    let local = embed_local(&f.encoder, &[&pngs[0], &pngs[1]]);
    assert_eq!(r.embeddings.len(), 2);
    for (got, want) in r.embeddings.iter().zip(&local) {
        assert!(max_diff(&got.values, want) < 1e-5);
        assert!((dot(&got.values, &got.values) - 1.0).abs() < 1e-4);
    }
    f.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_ranks_groups_and_filters_like_the_local_model() {
    let f = fixture(6, 3).await;
    let mut c = client(&f.server).await;
    let text = QUERIES[0];
    let expected = local_scores(&f.encoder, text, &f.ids, &f.embs);

    let r = c
        .search(search(text, 18, GroupBy::Image))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results.len(), 18);
    assert_eq!(r.gallery_size, 18);
    assert!(!r.truncated);
    assert!(r.timing.unwrap().encode_us > 0);
    assert_ranked_like_local(&r.results, &expected);

    let r = c
        .search(search(text, 3, GroupBy::PersonUnspecified))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results.len(), 3);
    for p in &r.results {
        let best = p.images.first().unwrap();
        assert_eq!(
            (p.image_id.as_str(), p.score),
            (best.image_id.as_str(), best.score)
        );
        assert!(p.images.iter().all(|m| m.image_id.starts_with("img-")));
        let own = f
            .ids
            .iter()
            .filter(|id| id_person(id) == p.person_id)
            .map(|id| expected[id])
            .fold(f32::MIN, f32::max);
        assert!(
            (p.score - own).abs() < 1e-4,
            "person scored by its best image"
        );
    }
    assert_ranked_like_local(&r.results, &expected);

    let filtered = SearchRequest {
        filter: Some(Filter {
            camera_ids: vec!["cam-a".into()],
            captured_from: Some(ivt_ts(captured_at(2))),
            captured_to: Some(ivt_ts(captured_at(13))),
            exclude_person_ids: vec!["person-01".into()],
        }),
        ..search(text, 18, GroupBy::Image)
    };
    let r = c.search(filtered).await.unwrap().into_inner();
    // Even images 2..=12 are cam-a; person-01 owns images 3, 4, 5.
    let got: Vec<&str> = r.results.iter().map(|x| x.image_id.as_str()).collect();
    let mut want = vec!["img-002", "img-006", "img-008", "img-010", "img-012"];
    want.sort_by(|a, b| expected[*b].total_cmp(&expected[*a]));
    assert_eq!(got, want);
    assert_ranked_like_local(&r.results, &expected);
    f.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_image_and_by_gallery_image() {
    let f = fixture(6, 3).await;
    let mut c = client(&f.server).await;
    let images = gallery(6, 3);
    let by_image = |top_k, group_by: GroupBy| SearchRequest {
        image: images[4].png.clone(),
        top_k,
        group_by: group_by as i32,
        exact: true,
        ..Default::default()
    };
    let query = &f.embs[4];
    let expected: HashMap<String, f32> = f
        .ids
        .iter()
        .cloned()
        .zip(f.embs.iter().map(|e| dot(query, e)))
        .collect();

    // An uploaded image: encoded like EncodeImage; the same gallery image comes first.
    let r = c
        .search(by_image(18, GroupBy::Image))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results.len(), 18);
    assert_eq!(r.results[0].image_id, "img-004");
    assert!((r.results[0].score - 1.0).abs() < 1e-4);
    assert!(r.timing.unwrap().decode_us > 0);
    assert_ranked_like_local(&r.results, &expected);

    // A gallery image by id: its stored embedding, and the image itself left out.
    let by_id = |top_k, group_by: GroupBy, filter: Option<Filter>| SearchRequest {
        image_id: "img-004".into(),
        top_k,
        group_by: group_by as i32,
        filter,
        ..Default::default()
    };
    for exact in [true, false] {
        let req = SearchRequest {
            exact,
            ..by_id(18, GroupBy::Image, None)
        };
        let r = c.search(req).await.unwrap().into_inner();
        let got: Vec<&str> = r.results.iter().map(|x| x.image_id.as_str()).collect();
        assert_eq!(got.len(), 17, "exact {exact}: {got:?}");
        assert!(!got.contains(&"img-004"), "exact {exact}: {got:?}");
        assert_ranked_like_local(&r.results, &expected);
    }
    let r = c
        .search(by_id(6, GroupBy::PersonUnspecified, None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results.len(), 6);
    let own = r
        .results
        .iter()
        .find(|p| p.person_id == "person-01")
        .unwrap();
    let own_ids: Vec<&str> = own.images.iter().map(|m| m.image_id.as_str()).collect();
    assert_eq!(own_ids.len(), 2, "{own_ids:?}");
    assert!(!own_ids.contains(&"img-004"));
    assert_ranked_like_local(&r.results, &expected);

    // Filters, top_k and ef apply to image queries as to text.
    let cam_a = Filter {
        camera_ids: vec!["cam-a".into()],
        exclude_person_ids: vec!["person-02".into()],
        ..Default::default()
    };
    let req = SearchRequest {
        ef: 32,
        ..by_id(4, GroupBy::Image, Some(cam_a))
    };
    let r = c.search(req).await.unwrap().into_inner();
    assert_eq!(r.results.len(), 4);
    for m in &r.results {
        assert_eq!(m.camera_id, "cam-a");
        assert_ne!(m.person_id, "person-02");
        assert_ne!(m.image_id, "img-004");
    }

    let e = c
        .search(SearchRequest {
            image_id: "img-404".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().contains("img-404"), "{}", e.message());
    let both = SearchRequest {
        text: "a man".into(),
        ..by_image(5, GroupBy::Image)
    };
    expect_invalid(
        "text and image",
        c.search(both).await,
        "text and image were set",
    )
    .await;
    let all = SearchRequest {
        text: "a man".into(),
        image_id: "img-001".into(),
        ..by_image(5, GroupBy::Image)
    };
    expect_invalid(
        "three queries",
        c.search(all).await,
        "text and image and image_id were set",
    )
    .await;
    let corrupt = SearchRequest {
        image: b"not an image".to_vec(),
        ..Default::default()
    };
    expect_invalid("corrupt image", c.search(corrupt).await, "invalid image").await;
    f.server.shutdown().await.unwrap();
}

fn id_person(image_id: &str) -> String {
    let i: u32 = image_id[4..].parse().unwrap();
    format!("person-{:02}", i / 3)
}

fn ivt_ts(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_and_remove_images_change_the_gallery() {
    let f = fixture(3, 2).await;
    let mut c = client(&f.server).await;
    let new: Vec<AddImageRequest> = (0..3)
        .map(|k| AddImageRequest {
            image: png(500 + k, 50, 110),
            image_id: format!("new-{k}"),
            person_id: if k < 2 { "visitor" } else { "guest" }.into(),
            camera_id: "cam-z".into(),
            ..Default::default()
        })
        .collect();
    let pngs: Vec<&[u8]> = new.iter().map(|r| r.image.as_slice()).collect();
    let local = embed_local(&f.encoder, &pngs);
    let r = c
        .add_images(tokio_stream::iter(new.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.added, r.gallery_size), (3, 9));

    let mut only_new = search(QUERIES[1], 10, GroupBy::Image);
    only_new.filter = Some(Filter {
        camera_ids: vec!["cam-z".into()],
        ..Default::default()
    });
    let r = c.search(only_new.clone()).await.unwrap().into_inner();
    let ids: Vec<String> = new.iter().map(|r| r.image_id.clone()).collect();
    let expected = local_scores(&f.encoder, QUERIES[1], &ids, &local);
    assert_eq!(r.results.len(), 3);
    assert_ranked_like_local(&r.results, &expected);

    let dup = c.add_images(tokio_stream::iter(new[..1].to_vec())).await;
    assert_eq!(dup.unwrap_err().code(), Code::AlreadyExists);

    let r = c
        .remove_images(RemoveImagesRequest {
            image_ids: vec!["new-2".into()],
            person_ids: vec!["visitor".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.removed, r.gallery_size), (3, 6));
    let r = c.search(only_new).await.unwrap().into_inner();
    assert!(r.results.is_empty());
    f.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_ids_are_not_found_and_nothing_is_removed() {
    let f = fixture(2, 2).await;
    let mut c = client(&f.server).await;
    for req in [
        RemoveImagesRequest {
            image_ids: vec!["img-000".into(), "no-such-image".into()],
            person_ids: vec![],
        },
        RemoveImagesRequest {
            image_ids: vec![],
            person_ids: vec!["nobody".into()],
        },
    ] {
        let e = c.remove_images(req).await.unwrap_err();
        assert_eq!(e.code(), Code::NotFound, "{e:?}");
        assert!(e.message().contains("no-such-image") || e.message().contains("nobody"));
    }
    let info = c.info(InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.gallery_size, 4, "a failed removal removes nothing");
    f.server.shutdown().await.unwrap();
}

async fn expect_invalid<T: std::fmt::Debug>(
    what: &str,
    r: Result<tonic::Response<T>, tonic::Status>,
    needle: &str,
) {
    let e = r.expect_err(what);
    assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}");
    assert!(
        e.message().contains(needle),
        "{what}: message `{}`",
        e.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_invalid_argument_and_harm_no_one() {
    let f = fixture(2, 2).await;
    let mut c = client(&f.server).await;
    let s = |text: &str| search(text, 5, GroupBy::Image);
    expect_invalid("empty text", c.search(s("")).await, "none was set").await;
    expect_invalid("blank text", c.search(s("  \n ")).await, "text is empty").await;
    let long = "red coat ".repeat(1000);
    expect_invalid("long text", c.search(s(&long)).await, "limit is 4096").await;
    let top_k = SearchRequest {
        top_k: 5000,
        ..s("a man")
    };
    expect_invalid("top_k", c.search(top_k).await, "top_k is 5000").await;
    let ef = SearchRequest {
        ef: 1 << 20,
        ..s("a man")
    };
    expect_invalid("ef", c.search(ef).await, "ef is").await;
    let group = SearchRequest {
        group_by: 9,
        ..s("a man")
    };
    expect_invalid("group_by", c.search(group).await, "group_by 9").await;
    let window = Filter {
        captured_from: Some(ivt_ts(captured_at(5))),
        captured_to: Some(ivt_ts(captured_at(1))),
        ..Default::default()
    };
    let bad = SearchRequest {
        filter: Some(window),
        ..s("a man")
    };
    expect_invalid("from > to", c.search(bad).await, "is after").await;
    let nanos = Filter {
        captured_from: Some(prost_types::Timestamp {
            seconds: 0,
            nanos: -5,
        }),
        ..Default::default()
    };
    let bad = SearchRequest {
        filter: Some(nanos),
        ..s("a man")
    };
    expect_invalid(
        "bad timestamp",
        c.search(bad).await,
        "not a valid timestamp",
    )
    .await;
    let empty_cam = Filter {
        camera_ids: vec!["".into()],
        ..Default::default()
    };
    let bad = SearchRequest {
        filter: Some(empty_cam),
        ..s("a man")
    };
    expect_invalid("empty camera", c.search(bad).await, "camera_ids").await;

    let texts = |t: Vec<&str>| EncodeTextRequest {
        texts: t.into_iter().map(Into::into).collect(),
    };
    expect_invalid(
        "no texts",
        c.encode_text(texts(vec![])).await,
        "texts has 0",
    )
    .await;
    expect_invalid(
        "empty 2nd",
        c.encode_text(texts(vec!["a", ""])).await,
        "texts[1]",
    )
    .await;
    expect_invalid(
        "too many",
        c.encode_text(texts(vec!["a"; 33])).await,
        "between 1 and 32",
    )
    .await;

    let imgs = |i: Vec<Vec<u8>>| EncodeImageRequest { images: i };
    let junk = b"definitely not an image".to_vec();
    expect_invalid(
        "junk",
        c.encode_image(imgs(vec![png(1, 8, 8), junk])).await,
        "#1",
    )
    .await;
    let mut cut = png(3, 40, 80);
    cut.truncate(cut.len() / 2);
    expect_invalid(
        "truncated png",
        c.encode_image(imgs(vec![cut])).await,
        "decode",
    )
    .await;
    expect_invalid(
        "empty image",
        c.encode_image(imgs(vec![vec![]])).await,
        "empty",
    )
    .await;
    let huge = vec![0u8; 8 * 1024 * 1024 + 1];
    expect_invalid(
        "huge image",
        c.encode_image(imgs(vec![huge])).await,
        "limit",
    )
    .await;

    let add = |id: &str, person: &str| AddImageRequest {
        image: png(9, 20, 40),
        image_id: id.into(),
        person_id: person.into(),
        ..Default::default()
    };
    let r = c.add_images(tokio_stream::iter(vec![add("", "p")])).await;
    expect_invalid("no image id", r, "image_id is required").await;
    let r = c.add_images(tokio_stream::iter(vec![add("x", "")])).await;
    expect_invalid("no person id", r, "person_id is required").await;
    let r = c.remove_images(RemoveImagesRequest::default()).await;
    expect_invalid("remove nothing", r, "give image_ids or person_ids").await;

    // Within the byte limit but beyond the model's 512 positions: answered, flagged truncated.
    let long = "red coat ".repeat(450);
    let r = c.search(s(&long)).await.unwrap().into_inner();
    assert!(r.truncated);

    // None of that disturbed the server or the gallery.
    let r = c.search(s(QUERIES[2])).await.unwrap().into_inner();
    assert_eq!((r.results.len(), r.gallery_size), (4, 4));
    f.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_clients_all_get_correct_answers() {
    let f = fixture(5, 2).await;
    let texts: Vec<String> = (0..64)
        .map(|i| format!("{} number {i}", QUERIES[i % QUERIES.len()]))
        .collect();
    let mut tasks = Vec::new();
    for text in texts.clone() {
        let mut c = client(&f.server).await;
        tasks.push(tokio::spawn(async move {
            let s = c
                .search(search(&text, 10, GroupBy::Image))
                .await?
                .into_inner();
            let e = c
                .encode_text(EncodeTextRequest { texts: vec![text] })
                .await?
                .into_inner();
            Ok::<_, tonic::Status>((s, e))
        }));
    }
    for (task, text) in tasks.into_iter().zip(&texts) {
        let (s, e) = task.await.unwrap().unwrap();
        let local = f.encoder.encode_texts(&[text.as_str()]).unwrap().remove(0);
        assert!(max_diff(&e.embeddings[0].values, &local.embedding) < 1e-5);
        let expected = local_scores(&f.encoder, text, &f.ids, &f.embs);
        assert_eq!(s.results.len(), 10);
        assert_ranked_like_local(&s.results, &expected);
    }
    f.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_retrieval_service() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let f = fixture(1, 1).await;
    let mut c = ServerReflectionClient::new(channel(&f.server).await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = c
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("unexpected reflection answer {msg:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"ivt.v1.Retrieval"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    drop(stream);
    f.server.shutdown().await.unwrap();
}

/// Every record size limit holds over gRPC: a call with one oversized record among good ones
/// is INVALID_ARGUMENT naming the field and the limit, and adds nothing; records at the limits
/// are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_records_are_refused_whole() {
    use ivt::index::{
        MAX_ATTRIBUTES, MAX_ATTRIBUTE_KEY_BYTES, MAX_ATTRIBUTE_VALUE_BYTES, MAX_ID_BYTES,
        MAX_PATH_BYTES,
    };
    let f = fixture(2, 1).await;
    let mut c = client(&f.server).await;
    let add = |k: u32| AddImageRequest {
        image: png(700 + k, 20, 40),
        image_id: format!("cap-{k}"),
        person_id: "cap".into(),
        ..Default::default()
    };
    let long = |n: usize| "x".repeat(n + 1);
    let attrs = |n: usize, key: usize, value: usize| -> HashMap<String, String> {
        (0..n)
            .map(|i| (format!("{i:0>key$}"), "v".repeat(value)))
            .collect()
    };
    let cases: Vec<(AddImageRequest, String)> = vec![
        (
            AddImageRequest {
                image_id: long(MAX_ID_BYTES),
                ..add(1)
            },
            format!(
                "image_id is {} bytes, the limit is {MAX_ID_BYTES} bytes",
                MAX_ID_BYTES + 1
            ),
        ),
        (
            AddImageRequest {
                person_id: long(MAX_ID_BYTES),
                ..add(1)
            },
            format!(
                "person_id is {} bytes, the limit is {MAX_ID_BYTES}",
                MAX_ID_BYTES + 1
            ),
        ),
        (
            AddImageRequest {
                camera_id: long(MAX_ID_BYTES),
                ..add(1)
            },
            format!(
                "camera_id is {} bytes, the limit is {MAX_ID_BYTES}",
                MAX_ID_BYTES + 1
            ),
        ),
        (
            AddImageRequest {
                path: long(3 << 20),
                ..add(1)
            },
            format!(
                "path is {} bytes, the limit is {MAX_PATH_BYTES} bytes",
                (3 << 20) + 1
            ),
        ),
        (
            AddImageRequest {
                attributes: attrs(MAX_ATTRIBUTES + 1, 2, 1),
                ..add(1)
            },
            format!(
                "{} attributes, the limit is {MAX_ATTRIBUTES}",
                MAX_ATTRIBUTES + 1
            ),
        ),
        (
            AddImageRequest {
                attributes: attrs(1, MAX_ATTRIBUTE_KEY_BYTES + 1, 1),
                ..add(1)
            },
            format!("bytes, the limit is {MAX_ATTRIBUTE_KEY_BYTES} bytes"),
        ),
        (
            AddImageRequest {
                attributes: attrs(1, 2, MAX_ATTRIBUTE_VALUE_BYTES + 1),
                ..add(1)
            },
            format!(
                "attribute `00` is {} bytes, the limit is {MAX_ATTRIBUTE_VALUE_BYTES}",
                MAX_ATTRIBUTE_VALUE_BYTES + 1
            ),
        ),
    ];
    for (bad, needle) in cases {
        let r = c.add_images(tokio_stream::iter(vec![add(0), bad])).await;
        expect_invalid(&needle, r, &needle).await;
        let info = c.info(InfoRequest {}).await.unwrap().into_inner();
        assert_eq!(info.gallery_size, 2, "{needle}: part of the call was added");
    }
    let at_limits = AddImageRequest {
        image_id: "i".repeat(MAX_ID_BYTES),
        person_id: "p".repeat(MAX_ID_BYTES),
        camera_id: "c".repeat(MAX_ID_BYTES),
        path: "/".repeat(MAX_PATH_BYTES),
        attributes: attrs(
            MAX_ATTRIBUTES,
            MAX_ATTRIBUTE_KEY_BYTES,
            MAX_ATTRIBUTE_VALUE_BYTES,
        ),
        ..add(2)
    };
    let r = c
        .add_images(tokio_stream::iter(vec![add(0), at_limits]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.added, r.gallery_size), (2, 4));
}
