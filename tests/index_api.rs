//! The gallery index library: persistence, search, grouping, filters, online changes and the
//! refusals that protect an index (model mismatch, corrupt files).

use std::path::Path;

use chrono::{TimeZone, Utc};
use ivt::index::{
    GalleryIndex, HnswParams, ImageRecord, IndexError, SearchFilter, SearchParams, VectorStorage,
};

const FP: &str = "model-a";
const DIM: usize = 8;

fn unit(seed: u64) -> Vec<f32> {
    // Deterministic pseudo-random unit vector (xorshift) so tests need no RNG crate state.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..DIM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2001) as f32 / 1000.0 - 1.0
        })
        .collect();
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    v.into_iter().map(|a| a / n).collect()
}

fn record(i: u64, person: &str, camera: &str, hour: u32) -> ImageRecord {
    let mut r = ImageRecord::new(format!("img{i}"), person);
    r.camera_id = Some(camera.to_string());
    r.captured_at = Some(Utc.with_ymd_and_hms(2024, 5, 1, hour, 0, 0).unwrap());
    r
}

/// 12 images of 4 persons over 3 cameras, one per hour.
fn gallery(dir: &Path) -> GalleryIndex {
    let mut index = GalleryIndex::create(dir, FP, DIM, HnswParams::default()).unwrap();
    let items = (0..12u64)
        .map(|i| {
            let person = format!("p{}", i % 4);
            let camera = format!("c{}", i % 3);
            (record(i, &person, &camera, i as u32), unit(i))
        })
        .collect();
    index.add(items).unwrap();
    index
}

fn exact(k: usize) -> SearchParams {
    SearchParams {
        top_k: k,
        ef: None,
        exact: true,
    }
}

#[test]
fn index_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<GalleryIndex>();
}

#[test]
fn exact_copy_ranks_first_and_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    drop(gallery(&dir));
    let index = GalleryIndex::open(&dir, FP).unwrap();
    assert_eq!(index.len(), 12);
    assert_eq!(index.dim(), DIM);
    assert_eq!(index.manifest().model_fingerprint, FP);
    for i in 0..12u64 {
        let hits = index
            .search_images(&unit(i), &exact(3), &SearchFilter::default())
            .unwrap();
        assert_eq!(hits[0].record.image_id, format!("img{i}"));
        assert!((hits[0].score - 1.0).abs() < 1e-5, "{}", hits[0].score);
        assert!(hits[0].score >= hits[1].score && hits[1].score >= hits[2].score);
    }
}

#[test]
fn excluded_images_are_left_out_of_graph_and_exact_searches() {
    let tmp = tempfile::tempdir().unwrap();
    let index = gallery(&tmp.path().join("idx"));
    let filter = SearchFilter {
        exclude_image_ids: vec!["img5".into(), "no-such-image".into()],
        ..Default::default()
    };
    for exact_search in [true, false] {
        let params = SearchParams {
            exact: exact_search,
            ..exact(12)
        };
        let hits = index.search_images(&unit(5), &params, &filter).unwrap();
        let ids: Vec<&str> = hits.iter().map(|h| h.record.image_id.as_str()).collect();
        assert_eq!(ids.len(), 11, "exact {exact_search}: {ids:?}");
        assert!(!ids.contains(&"img5"), "exact {exact_search}: {ids:?}");
        // Its person is still found, through its other images.
        let persons = index.search_persons(&unit(5), &params, &filter).unwrap();
        let p1 = persons.iter().find(|p| p.person_id == "p1").unwrap();
        let p1_ids: Vec<&str> = p1
            .images
            .iter()
            .map(|h| h.record.image_id.as_str())
            .collect();
        assert_eq!(p1_ids.len(), 2, "{p1_ids:?}");
        assert!(!p1_ids.contains(&"img5"));
    }
}

#[test]
fn stored_images_are_read_back_by_id() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = ivt::index::EmbeddedGallery::new(gallery(&tmp.path().join("idx")));
    use ivt::index::GalleryBackend;
    let (record, embedding) = backend.image("img7").unwrap().unwrap();
    assert_eq!(record, self::record(7, "p3", "c1", 7));
    assert_eq!(embedding, unit(7));
    assert!(backend.image("img99").unwrap().is_none());
    backend.remove(&["img7".into()], &[]).unwrap();
    assert!(
        backend.image("img7").unwrap().is_none(),
        "removed images are gone"
    );
}

#[test]
fn persons_are_grouped_and_scored_by_their_best_image() {
    let tmp = tempfile::tempdir().unwrap();
    let index = gallery(&tmp.path().join("idx"));
    let persons = index
        .search_persons(&unit(5), &exact(4), &SearchFilter::default())
        .unwrap();
    assert_eq!(persons.len(), 4);
    assert_eq!(persons[0].person_id, "p1");
    assert_eq!(persons[0].images[0].record.image_id, "img5");
    let mut ids: Vec<&str> = persons.iter().map(|p| p.person_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["p0", "p1", "p2", "p3"]);
    for p in &persons {
        assert_eq!(p.images.len(), 3, "every image of {} listed", p.person_id);
        assert_eq!(p.score, p.images[0].score);
        assert!(p.images.windows(2).all(|w| w[0].score >= w[1].score));
        assert!(p.images.iter().all(|h| h.record.person_id == p.person_id));
    }
    assert!(persons.windows(2).all(|w| w[0].score >= w[1].score));
}

#[test]
fn filters_restrict_camera_time_and_persons() {
    let tmp = tempfile::tempdir().unwrap();
    let index = gallery(&tmp.path().join("idx"));
    let filter = SearchFilter {
        camera_ids: vec!["c1".into()],
        captured_from: Some(Utc.with_ymd_and_hms(2024, 5, 1, 2, 0, 0).unwrap()),
        captured_to: Some(Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()),
        exclude_person_ids: vec!["p3".into()],
        ..Default::default()
    };
    // c1 holds images 1, 4, 7, 10; hours 2..=10 keep 4, 7, 10; p3 excludes 7.
    let hits = index.search_images(&unit(7), &exact(10), &filter).unwrap();
    let mut ids: Vec<&str> = hits.iter().map(|h| h.record.image_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["img10", "img4"]);
    let bad = SearchFilter {
        captured_from: filter.captured_to,
        captured_to: filter.captured_from,
        ..Default::default()
    };
    let err = index.search_images(&unit(0), &exact(1), &bad).unwrap_err();
    assert!(matches!(err, IndexError::InvalidFilter(_)), "{err}");
}

#[test]
fn add_and_remove_are_durable_and_honoured_by_search() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let mut index = gallery(&dir);
    let err = index
        .add(vec![(record(3, "p9", "c0", 0), unit(99))])
        .unwrap_err();
    assert!(matches!(err, IndexError::DuplicateImageId(ref id) if id == "img3"));
    index
        .add(vec![(record(100, "p9", "c0", 0), unit(100))])
        .unwrap();
    assert_eq!(
        index
            .remove_images(&["img5".into(), "nope".into()])
            .unwrap(),
        1
    );
    assert_eq!(index.remove_persons(&["p2".into()]).unwrap(), 3);
    drop(index);

    let index = GalleryIndex::open(&dir, FP).unwrap();
    assert_eq!(index.len(), 12 + 1 - 1 - 3);
    let all = index
        .search_images(&unit(5), &exact(50), &SearchFilter::default())
        .unwrap();
    assert_eq!(all.len(), 9);
    assert!(all.iter().all(|h| h.record.image_id != "img5"));
    assert!(all.iter().all(|h| h.record.person_id != "p2"));
    let top = index
        .search_images(&unit(100), &exact(1), &SearchFilter::default())
        .unwrap();
    assert_eq!(top[0].record.image_id, "img100");
}

#[test]
fn another_models_index_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    drop(gallery(&dir));
    let err = GalleryIndex::open(&dir, "model-b").err().unwrap();
    assert!(matches!(err, IndexError::ModelMismatch { .. }), "{err}");
    assert!(err.to_string().contains("model-a"), "{err}");
}

#[test]
fn wrong_dimension_and_missing_index_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let index = gallery(&tmp.path().join("idx"));
    let err = index
        .search_images(&[1.0; 3], &exact(1), &SearchFilter::default())
        .unwrap_err();
    assert!(matches!(
        err,
        IndexError::Dimension {
            expected: 8,
            got: 3
        }
    ));
    let err = GalleryIndex::open(&tmp.path().join("none"), FP)
        .err()
        .unwrap();
    assert!(matches!(err, IndexError::NoIndex(_)), "{err}");
}

#[test]
fn f16_storage_scores_close_to_f32() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let mut index =
        GalleryIndex::create_with_storage(&dir, FP, DIM, HnswParams::default(), VectorStorage::F16)
            .unwrap();
    index
        .add((0..5).map(|i| (record(i, "p", "c", 0), unit(i))).collect())
        .unwrap();
    let index = GalleryIndex::open_read_only(&dir, FP).unwrap();
    let hits = index
        .search_images(&unit(2), &exact(1), &SearchFilter::default())
        .unwrap();
    assert_eq!(hits[0].record.image_id, "img2");
    assert!((hits[0].score - 1.0).abs() < 2e-3);
}
