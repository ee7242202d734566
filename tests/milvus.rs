//! The Milvus gallery backend against real servers:
//! - Milvus standalone (PyPI `milvus`, the real server binary) at `IVT_TEST_MILVUS_URI`, started
//!   by `.ci/run` or `scripts/milvus-test-server.sh`;
//! - Milvus Lite (PyPI `milvus-lite`): `IVT_TEST_MILVUS_LITE` names its `milvus-lite`
//!   executable and each test starts (and, for the outage test, kills and restarts) its own.
//!
//! Without either variable the tests say so and pass, so a plain `cargo test` works on a
//! machine without Milvus; `IVT_REQUIRE_MILVUS=1` (set by CI) turns that into a failure.

mod common;
mod service_support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use ivt::index::milvus::{MilvusConfig, MilvusGallery};
use ivt::index::{
    GalleryBackend, GalleryIndex, HnswParams, ImageRecord, IndexError, SearchFilter, SearchParams,
};
use ivt::proto::{GroupBy, SearchRequest};
use service_support::{captured_at, client, config, embed_local, gallery, local_encoder, serve};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const DIM: usize = 32;
const FINGERPRINT: &str = "milvus-test-model";
/// A camera id that would break out of an unescaped string literal.
const EVIL_CAMERA: &str = r#"c" or camera_id != ""#;

/// A Milvus Lite server owned by one test: killed on drop.
struct Lite {
    exe: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Lite {
    fn start(exe: PathBuf) -> Lite {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut lite = Lite {
            exe,
            dir: tempfile::tempdir().unwrap(),
            port,
            child: None,
        };
        lite.restart();
        lite
    }

    fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, on the same port and data) and waits until it accepts.
    fn restart(&mut self) {
        let log_path = self.dir.path().join("lite.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(&self.exe)
            .args(["server", "--host", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.exe.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "Milvus Lite did not start ({exited:?}):\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Lite {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One server to test against; a Lite server lives as long as this.
struct Server {
    name: &'static str,
    uri: String,
    _lite: Option<Lite>,
}

fn lite_exe() -> Option<PathBuf> {
    std::env::var_os("IVT_TEST_MILVUS_LITE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn required() -> bool {
    std::env::var_os("IVT_REQUIRE_MILVUS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Every configured server; an empty list (with a note) when none is.
fn servers() -> Vec<Server> {
    let mut out = Vec::new();
    if let Some(uri) = std::env::var("IVT_TEST_MILVUS_URI")
        .ok()
        .filter(|v| !v.is_empty())
    {
        out.push(Server {
            name: "milvus",
            uri,
            _lite: None,
        });
    }
    if let Some(exe) = lite_exe() {
        let lite = Lite::start(exe);
        out.push(Server {
            name: "milvus-lite",
            uri: lite.uri(),
            _lite: Some(lite),
        });
    }
    if out.is_empty() {
        assert!(
            !required(),
            "IVT_REQUIRE_MILVUS is set but neither IVT_TEST_MILVUS_URI nor IVT_TEST_MILVUS_LITE is"
        );
        eprintln!(
            "no Milvus configured (IVT_TEST_MILVUS_URI / IVT_TEST_MILVUS_LITE): Milvus tests not run"
        );
    }
    out
}

/// A collection name unique to this test and process.
fn collection(test: &str) -> String {
    format!("ivt_{test}_{}", std::process::id())
}

fn milvus_config(uri: &str, test: &str) -> MilvusConfig {
    let mut c = MilvusConfig::new(uri, collection(test));
    c.insert_batch = 16;
    c
}

/// A deterministic unit vector near the person's centre.
fn vector(person: u32, image: u32) -> Vec<f32> {
    let mut state = (person as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let next = |s: &mut u64| {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s % 10_000) as f32 / 5_000.0 - 1.0
    };
    let centre: Vec<f32> = (0..DIM).map(|_| next(&mut state)).collect();
    let mut noise_state = state ^ (image as u64 + 7).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let v: Vec<f32> = centre
        .iter()
        .map(|c| c + 0.6 * next(&mut noise_state))
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

/// 20 persons x 3 images with cameras, times, paths and attributes; one image has an
/// injection-shaped camera id and one has no time.
fn items() -> Vec<(ImageRecord, Vec<f32>)> {
    let mut out = Vec::new();
    for p in 0..20u32 {
        for i in 0..3u32 {
            let n = p * 3 + i;
            let mut r = ImageRecord::new(format!("img-{n:03}"), format!("person-{p:02}"));
            r.camera_id = Some(if n == 7 {
                EVIL_CAMERA.to_string()
            } else if n % 2 == 0 {
                "cam-a".into()
            } else {
                "cam-b".into()
            });
            r.captured_at = (n != 11).then(|| captured_at(n));
            r.path = Some(format!("/gallery/{n}.jpg"));
            r.attributes.insert("shift".into(), format!("{}", n % 3));
            out.push((r, vector(p, i)));
        }
    }
    out
}

fn embedded(dir: &std::path::Path) -> GalleryIndex {
    let mut index = GalleryIndex::create(dir, FINGERPRINT, DIM, HnswParams::default()).unwrap();
    index.add(items()).unwrap();
    index
}

fn filters() -> Vec<SearchFilter> {
    vec![
        SearchFilter::default(),
        SearchFilter {
            camera_ids: vec!["cam-a".into()],
            ..Default::default()
        },
        SearchFilter {
            captured_from: Some(captured_at(10)),
            captured_to: Some(captured_at(40)),
            ..Default::default()
        },
        SearchFilter {
            captured_to: Some(captured_at(30)),
            exclude_person_ids: vec!["person-03".into(), "person-04".into()],
            ..Default::default()
        },
        SearchFilter {
            camera_ids: vec!["cam-b".into(), EVIL_CAMERA.into()],
            captured_from: Some(Utc.timestamp_millis_opt(0).unwrap()),
            exclude_person_ids: vec![r#"x" or person_id != ""#.into()],
            ..Default::default()
        },
        SearchFilter {
            exclude_image_ids: vec!["img-012".into(), r#"y" or image_id != ""#.into()],
            ..Default::default()
        },
    ]
}

#[test]
fn milvus_ranks_images_and_persons_like_the_embedded_index() {
    for server in servers() {
        let tmp = tempfile::tempdir().unwrap();
        let local = embedded(&tmp.path().join("index"));
        let remote =
            MilvusGallery::recreate(milvus_config(&server.uri, "rank"), FINGERPRINT, DIM).unwrap();
        assert_eq!(remote.add(items()).unwrap(), 60, "{}", server.name);
        assert_eq!(remote.len(), 60);
        // A stored image reads back with its record and embedding (the image_id query).
        let local_backend = ivt::index::EmbeddedGallery::new(embedded(&tmp.path().join("copy")));
        for id in ["img-007", "img-011"] {
            let (record, embedding) = remote.image(id).unwrap().unwrap();
            let (want_record, want_embedding) = local_backend.image(id).unwrap().unwrap();
            assert_eq!(record, want_record, "{}", server.name);
            assert_eq!(embedding, want_embedding, "{}", server.name);
        }
        assert!(
            remote.image("img-999").unwrap().is_none(),
            "{}",
            server.name
        );
        let params = SearchParams {
            top_k: 5,
            ..Default::default()
        };
        let mut compared = 0;
        for (q, filter) in (0..8u32).flat_map(|q| filters().into_iter().map(move |f| (q, f))) {
            let query = vector(q * 2, 9);
            let want = local.search_persons(&query, &params, &filter).unwrap();
            let got = remote.search_persons(&query, &params, &filter).unwrap();
            let ids = |h: &[ivt::index::PersonHit]| -> Vec<(String, Vec<String>)> {
                h.iter()
                    .map(|p| {
                        let images = p.images.iter().map(|i| i.record.image_id.clone());
                        (p.person_id.clone(), images.collect())
                    })
                    .collect()
            };
            assert_eq!(ids(&got), ids(&want), "{} persons, {filter:?}", server.name);
            for (g, w) in got.iter().zip(&want) {
                assert!((g.score - w.score).abs() < 1e-4, "{} score", server.name);
                for (gi, wi) in g.images.iter().zip(&w.images) {
                    assert_eq!(gi.record, wi.record, "{} record", server.name);
                }
            }
            let images = SearchParams {
                top_k: 12,
                ..Default::default()
            };
            let want = local.search_images(&query, &images, &filter).unwrap();
            let got = remote.search_images(&query, &images, &filter).unwrap();
            let ids = |h: &[ivt::index::ImageHit]| -> Vec<String> {
                h.iter().map(|i| i.record.image_id.clone()).collect()
            };
            assert_eq!(ids(&got), ids(&want), "{} images, {filter:?}", server.name);
            compared += want.len();
        }
        assert!(compared > 200, "the filters left too little to compare");
        remote.drop_collection().unwrap();
    }
}

#[test]
fn filter_strings_are_literals_not_expressions() {
    for server in servers() {
        let remote =
            MilvusGallery::recreate(milvus_config(&server.uri, "inject"), FINGERPRINT, DIM)
                .unwrap();
        remote.add(items()).unwrap();
        let params = SearchParams {
            top_k: 60,
            ..Default::default()
        };
        let only = |cameras: &[&str]| {
            let filter = SearchFilter {
                camera_ids: cameras.iter().map(|c| c.to_string()).collect(),
                ..Default::default()
            };
            remote
                .search_images(&vector(2, 0), &params, &filter)
                .unwrap()
                .into_iter()
                .map(|h| h.record.image_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(only(&[EVIL_CAMERA]), vec!["img-007"], "{}", server.name);
        assert!(
            only(&[r#"x" or camera_id != ""#]).is_empty(),
            "{}",
            server.name
        );
        assert!(
            only(&["back\\slash", "new\nline"]).is_empty(),
            "{}",
            server.name
        );
        remote.drop_collection().unwrap();
    }
}

#[test]
fn adds_and_removes_are_read_back_at_once_and_all_or_nothing() {
    for server in servers() {
        let remote =
            MilvusGallery::recreate(milvus_config(&server.uri, "change"), FINGERPRINT, DIM)
                .unwrap();
        remote.add(items()).unwrap();
        let params = SearchParams {
            top_k: 3,
            ..Default::default()
        };
        let any = SearchFilter::default();

        let mut new = ImageRecord::new("img-new", "person-new");
        new.camera_id = Some("cam-z".into());
        let v = vector(99, 0);
        assert_eq!(remote.add(vec![(new.clone(), v.clone())]).unwrap(), 61);
        let top = remote.search_images(&v, &params, &any).unwrap();
        assert_eq!(
            top[0].record, new,
            "{}: a search right after an add sees it",
            server.name
        );

        let dup = remote.add(vec![(new.clone(), v.clone())]).unwrap_err();
        assert!(
            matches!(dup, IndexError::DuplicateImageId(ref id) if id == "img-new"),
            "{dup}"
        );
        let twice = vec![
            (ImageRecord::new("img-x", "p"), v.clone()),
            (ImageRecord::new("img-x", "p"), v.clone()),
        ];
        assert!(matches!(
            remote.add(twice),
            Err(IndexError::DuplicateImageId(_))
        ));
        let short = remote.add(vec![(ImageRecord::new("img-y", "p"), vec![0.5; DIM - 1])]);
        assert!(matches!(short, Err(IndexError::Dimension { .. })));
        assert_eq!(remote.len(), 61);

        let absent = remote
            .remove(&["img-000".into(), "img-nope".into()], &[])
            .unwrap_err();
        assert!(
            matches!(absent, IndexError::UnknownIds(ref m) if m.contains("img-nope") && !m.contains("img-000")),
            "{absent}"
        );
        assert_eq!(remote.len(), 61, "nothing removed when an id is absent");

        let (removed, size) = remote
            .remove(&["img-new".into()], &["person-05".into()])
            .unwrap();
        assert_eq!((removed, size), (4, 57), "{}", server.name);
        let wide = SearchParams {
            top_k: 60,
            ..Default::default()
        };
        let left = remote.search_images(&vector(5, 0), &wide, &any).unwrap();
        assert_eq!(left.len(), 57);
        assert!(left
            .iter()
            .all(|h| h.record.person_id != "person-05" && h.record.image_id != "img-new"));

        // A reopened gallery counts what the server holds.
        let reopened =
            MilvusGallery::open(milvus_config(&server.uri, "change"), FINGERPRINT, DIM).unwrap();
        assert_eq!(reopened.len(), 57, "{}", server.name);
        remote.drop_collection().unwrap();
    }
}

#[test]
fn collections_of_another_model_or_dimension_are_refused() {
    for server in servers() {
        let config = milvus_config(&server.uri, "mismatch");
        let remote = MilvusGallery::recreate(config.clone(), FINGERPRINT, DIM).unwrap();
        let other = MilvusGallery::open(config.clone(), "another-model", DIM).err();
        assert!(
            matches!(other, Some(IndexError::ModelMismatch { ref index_fingerprint, .. }) if index_fingerprint == FINGERPRINT),
            "{}: {other:?}",
            server.name
        );
        let wider = MilvusGallery::open_or_create(config.clone(), FINGERPRINT, DIM + 1).err();
        assert!(
            matches!(wider, Some(IndexError::Dimension { expected: DIM, .. })),
            "{wider:?}"
        );
        let mut absent = config.clone();
        absent.collection = collection("absent");
        let e = MilvusGallery::open(absent, FINGERPRINT, DIM).err().unwrap();
        assert!(e.to_string().contains("ivt index build"), "{e}");
        remote.drop_collection().unwrap();
    }
}

#[test]
fn unreachable_milvus_is_unavailable_after_retries() {
    // A port nothing listens on: the same errors as a server that went away.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let mut config = MilvusConfig::new(format!("http://127.0.0.1:{port}"), "ivt_nowhere");
    config.retries = 1;
    config.timeout = Duration::from_secs(2);
    let e = MilvusGallery::open_or_create(config, FINGERPRINT, DIM)
        .err()
        .unwrap();
    assert!(matches!(e, IndexError::Unavailable(_)), "{e}");
    assert!(e.to_string().contains(&port.to_string()), "{e}");
}

async fn retrieval_health(server: &ivt::service::RunningServer) -> ServingStatus {
    let mut health = HealthClient::new(service_support::channel(server).await);
    let r = health
        .check(HealthCheckRequest {
            service: "ivt.v1.Retrieval".into(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(r.status).unwrap()
}

async fn wait_health(server: &ivt::service::RunningServer, want: ServingStatus) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while retrieval_health(server).await != want {
        assert!(Instant::now() < deadline, "health never became {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The service on Milvus Lite: search over gRPC, the server killed (UNAVAILABLE, health
/// NOT_SERVING), restarted (SERVING again, same answers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_on_milvus_survives_an_outage() {
    let Some(exe) = lite_exe() else {
        assert!(
            !required(),
            "IVT_REQUIRE_MILVUS is set but IVT_TEST_MILVUS_LITE is not"
        );
        eprintln!("IVT_TEST_MILVUS_LITE not set: outage test not run");
        return;
    };
    let mut lite = tokio::task::spawn_blocking(move || Lite::start(exe))
        .await
        .unwrap();
    let encoder = local_encoder();
    let images = gallery(4, 2);
    let pngs: Vec<&[u8]> = images.iter().map(|g| g.png.as_slice()).collect();
    let vectors = embed_local(&encoder, &pngs);
    let fingerprint = service_support::model_files().fingerprint().unwrap();
    let mut milvus = milvus_config(&lite.uri(), "outage");
    milvus.retries = 1;
    milvus.timeout = Duration::from_secs(3);
    let items: Vec<_> = images
        .iter()
        .map(|g| g.record.clone())
        .zip(vectors)
        .collect();
    let (m, fp) = (milvus.clone(), fingerprint.clone());
    let dim = encoder.dim();
    tokio::task::spawn_blocking(move || {
        let g = MilvusGallery::recreate(m, &fp, dim).unwrap();
        g.add(items).unwrap();
    })
    .await
    .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(&tmp.path().join("unused"));
    cfg.milvus = Some(milvus);
    cfg.health_interval = Duration::from_millis(200);
    let server = serve(cfg).await;
    let mut c = client(&server).await;
    let request = SearchRequest {
        text: "a woman in a red coat".into(),
        top_k: 3,
        group_by: GroupBy::PersonUnspecified as i32,
        ..Default::default()
    };
    let before = c.search(request.clone()).await.unwrap().into_inner();
    assert_eq!(before.results.len(), 3);
    assert_eq!(before.gallery_size, 8);

    lite.kill();
    let down = c.search(request.clone()).await.unwrap_err();
    assert_eq!(down.code(), tonic::Code::Unavailable, "{down:?}");
    assert!(down.message().contains("Milvus"), "{}", down.message());
    wait_health(&server, ServingStatus::NotServing).await;

    let lite = tokio::task::spawn_blocking(move || {
        lite.restart();
        lite
    })
    .await
    .unwrap();
    wait_health(&server, ServingStatus::Serving).await;
    let after = c.search(request).await.unwrap().into_inner();
    let ids = |r: &ivt::proto::SearchResponse| -> Vec<String> {
        r.results.iter().map(|x| x.person_id.clone()).collect()
    };
    assert_eq!(ids(&after), ids(&before));
    server.shutdown().await.unwrap();
    drop(lite);
}

/// `ivt index build`, `ivt search`, `ivt eval` and `ivt index remove` on a synthetic dataset
/// with the demo model: the Milvus backend answers with the embedded index's JSON.
#[test]
fn the_cli_gives_the_same_answers_on_both_backends() {
    use common::{ivt, run_ok};
    for server in servers() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let index = tmp.path().join("index");
        let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
        run_ok(
            ivt()
                .args(["synth", "--identities", "60", "--images-per-identity", "3"])
                .args(["--seed", "5", "--out", &path(&data)]),
        );
        let manifest = path(&data.join("test.jsonl"));
        let coll = collection("cli");
        let milvus = ["--gallery-backend", "milvus", "--milvus-uri", &server.uri];
        let milvus: Vec<&str> = milvus
            .into_iter()
            .chain(["--milvus-collection", &coll])
            .collect();
        let built: serde_json::Value = serde_json::from_str(&run_ok(
            ivt()
                .args(["index", "build", "--gallery", &manifest])
                .args(&milvus),
        ))
        .unwrap();
        run_ok(ivt().args([
            "index",
            "build",
            "--gallery",
            &manifest,
            "--out",
            &path(&index),
        ]));
        assert_eq!(built["count"], 45, "{}: {built}", server.name);
        assert!(built["milvus_version"].is_string(), "{built}");
        let info: serde_json::Value =
            serde_json::from_str(&run_ok(ivt().args(["index", "info"]).args(&milvus))).unwrap();
        assert_eq!(info["count"], 45, "{info}");
        assert_eq!(info["backend"], "milvus");
        assert_eq!(info["dim"], 64);

        let search = |backend: &[&str]| -> serde_json::Value {
            let out = run_ok(
                ivt()
                    .args([
                        "search",
                        "--text",
                        "a woman in a red coat with a black backpack",
                    ])
                    .args([
                        "--top-k", "5", "--camera", "1", "--camera", "2", "--camera", "3",
                    ])
                    .args(backend),
            );
            let mut v: serde_json::Value = serde_json::from_str(&out).unwrap();
            v.as_object_mut().unwrap().remove("gallery");
            v
        };
        let local = search(&["--index", &path(&index)]);
        let remote = search(&milvus);
        assert_eq!(local["persons"].as_array().map(Vec::len), Some(5));
        // Identical JSON, except scores that agree to float rounding.
        let (mut ls, mut rs) = (Vec::new(), Vec::new());
        assert_eq!(
            split_scores(&remote, &mut rs),
            split_scores(&local, &mut ls),
            "{}",
            server.name
        );
        assert_eq!(ls.len(), rs.len());
        assert!(ls.iter().zip(&rs).all(|(l, r)| (l - r).abs() < 1e-5));

        let eval = |backend: &[&str]| -> serde_json::Value {
            let out = run_ok(
                ivt()
                    .args(["eval", "--dataset", &path(&data.join("reid_raw.json"))])
                    .args(backend),
            );
            serde_json::from_str(&out).unwrap()
        };
        let local = eval(&["--index", &path(&index)]);
        let remote = eval(&milvus);
        for metric in ["r1", "r5", "r10", "map", "minp"] {
            let (l, r) = (
                local[metric].as_f64().unwrap(),
                remote[metric].as_f64().unwrap(),
            );
            assert!((l - r).abs() < 1e-3, "{}: {metric} {l} vs {r}", server.name);
        }
        assert!(remote["search"].as_str().unwrap().starts_with("milvus"));

        let removed: serde_json::Value = serde_json::from_str(&run_ok(
            ivt()
                .args(["index", "remove", "--person-id", "13"])
                .args(&milvus),
        ))
        .unwrap();
        assert_eq!(removed["count"], 42, "{}: {removed}", server.name);
        let refused = ivt()
            .args(["index", "remove", "--person-id", "13"])
            .args(&milvus)
            .output()
            .unwrap();
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("person ids `13` not in the gallery")
        );
        let drop = MilvusGallery::open_any(milvus_config(&server.uri, "cli")).unwrap();
        drop.drop_collection().unwrap();
    }
}

/// `v` without its "score" fields, which are pushed to `scores` in document order.
fn split_scores(v: &serde_json::Value, scores: &mut Vec<f64>) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .filter_map(|(k, x)| {
                    if k == "score" {
                        scores.push(x.as_f64().unwrap_or(f64::NAN));
                        None
                    } else {
                        Some((k.clone(), split_scores(x, scores)))
                    }
                })
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(|x| split_scores(x, scores)).collect())
        }
        other => other.clone(),
    }
}
