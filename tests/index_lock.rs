//! One writer per index directory: every pair of writers (a serving process, `ivt index
//! build/add/remove/compact`) is refused at once with a message naming the holder's PID, and
//! read-only servers run beside a writer. Issue #22: a compaction under a serving process lost
//! acknowledged adds.

mod service_support;

use std::path::Path;
use std::process::Output;

use ivt::index::GalleryIndex;
use ivt::proto::{AddImageRequest, RemoveImagesRequest, SearchRequest};
use service_support::*;
use tonic::Code;

/// The tests of this file run one at a time: a child process forked by one test inherits every
/// open descriptor of this process until it execs, lock files of another test's index included,
/// which on a loaded machine can hold that lock for a moment after its owner dropped it.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn ivt(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ivt"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/model-tiny-s12")
        .display()
        .to_string()
}

/// Asserts that `out` failed because the index is locked by this test process.
fn assert_refused_by_us(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} ran beside a writer");
    let pid = format!("PID {}", std::process::id());
    assert!(
        stderr.contains("locked by another writer") && stderr.contains(&pid),
        "{what}: {stderr}"
    );
}

/// The CLI writers, each aimed at `index`.
fn cli_writers(index: &Path, gallery: &Path) -> Vec<(&'static str, Output)> {
    let (i, g, m) = (
        index.display().to_string(),
        gallery.display().to_string(),
        model(),
    );
    vec![
        ("compact", ivt(&["index", "compact", "--index", &i])),
        (
            "remove",
            ivt(&["index", "remove", "--index", &i, "--image-id", "img-000"]),
        ),
        (
            "add",
            ivt(&[
                "index",
                "add",
                "--model",
                &m,
                "--gallery",
                &g,
                "--index",
                &i,
            ]),
        ),
        (
            "build",
            ivt(&[
                "index",
                "build",
                "--model",
                &m,
                "--gallery",
                &g,
                "--out",
                &i,
            ]),
        ),
    ]
}

/// A person-folder gallery of two generated crops, for `index add/build`.
fn folder_gallery(root: &Path) -> std::path::PathBuf {
    let dir = root.join("more");
    std::fs::create_dir_all(dir.join("zed")).unwrap();
    std::fs::write(dir.join("zed/new-1.png"), png(901, 48, 96)).unwrap();
    std::fs::write(dir.join("zed/new-2.png"), png(902, 48, 96)).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_writer_refuses_every_other_writer_and_releases_the_lock_on_shutdown() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let index = build_index(tmp.path(), &gallery(2, 2), &local_encoder());
    let more = folder_gallery(tmp.path());
    let server = serve(config(&index)).await;

    // serve + serve: a second server on the same directory fails to load, naming our PID.
    let listener = ivt::service::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let second = ivt::service::RunningServer::start(config(&index), listener)
        .await
        .unwrap();
    let err = second.load().await.unwrap_err().to_string();
    assert!(
        err.contains("locked by another writer")
            && err.contains(&format!("PID {}", std::process::id())),
        "{err}"
    );
    second.shutdown().await.unwrap();

    // serve + each CLI writer: refused at once, and the served index is unchanged.
    for (what, out) in cli_writers(&index, &more) {
        assert_refused_by_us(&out, what);
    }
    let mut c = client(&server).await;
    let added = c
        .add_images(tokio_stream::iter(vec![AddImageRequest {
            image: png(77, 48, 96),
            image_id: "late".into(),
            person_id: "p".into(),
            ..Default::default()
        }]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(added.gallery_size, 5);
    server.shutdown().await.unwrap();

    // Once the server is gone the directory is free again, and nothing acknowledged was lost.
    let out = ivt(&["index", "compact", "--index", &index.display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reopened =
        GalleryIndex::open_read_only(&index, &model_files().fingerprint().unwrap()).unwrap();
    assert_eq!(reopened.len(), 5);
    assert!(reopened.contains("late"));
}

#[test]
fn a_cli_writer_refuses_every_other_cli_writer() {
    let _serial = SERIAL.blocking_lock();
    let tmp = tempfile::tempdir().unwrap();
    let index = build_index(tmp.path(), &gallery(2, 2), &local_encoder());
    let more = folder_gallery(tmp.path());
    // What `ivt index remove/compact` hold while they run.
    let holder = GalleryIndex::open_any(&index).unwrap();
    for (what, out) in cli_writers(&index, &more) {
        assert_refused_by_us(&out, what);
    }
    // In-process too: a second writable open, and a fresh build into the directory.
    let fp = model_files().fingerprint().unwrap();
    assert!(matches!(
        GalleryIndex::open(&index, &fp),
        Err(ivt::index::IndexError::Locked { .. })
    ));
    drop(holder);
    GalleryIndex::open(&index, &fp).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_servers_share_an_index_with_its_writer_and_refuse_changes() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let index = build_index(tmp.path(), &gallery(2, 2), &local_encoder());
    let writer = serve(config(&index)).await;
    let mut read_only = config(&index);
    read_only.read_only = true;
    let (a, b) = (serve(read_only.clone()).await, serve(read_only).await);

    for server in [&a, &b] {
        let mut c = client(server).await;
        let found = c
            .search(SearchRequest {
                text: QUERIES[0].into(),
                exact: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.gallery_size, 4);
        let e = c
            .add_images(tokio_stream::iter(vec![AddImageRequest {
                image: png(5, 48, 96),
                image_id: "x".into(),
                person_id: "p".into(),
                ..Default::default()
            }]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
        assert!(e.message().contains("read-only"), "{e:?}");
        let e = c
            .remove_images(RemoveImagesRequest {
                image_ids: vec!["img-000".into()],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    }
    // The writer still writes beside them.
    let mut w = client(&writer).await;
    let removed = w
        .remove_images(RemoveImagesRequest {
            image_ids: vec!["img-000".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.gallery_size, 3);
    for s in [a, b, writer] {
        s.shutdown().await.unwrap();
    }
}
