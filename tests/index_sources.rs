//! Gallery sources: detection, manifest fields, folder layouts, dataset splits, and errors that
//! name the bad line or file.

use std::fs;
use std::path::Path;

use chrono::{TimeZone, Utc};
use ivt::data::Split;
use ivt::ingest::sources::{parse_market_name, GallerySource};
use ivt::ingest::IngestError;

fn touch(path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, b"not decoded here").unwrap();
}

#[test]
fn csv_manifest_reads_optional_fields_and_attributes() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = tmp.path().join("gallery.csv");
    fs::write(
        &manifest,
        "path,person_id,camera_id,captured_at,image_id,clothing\n\
         a/1.jpg,17,cam-3,2024-05-01T10:00:00+02:00,first,red coat\n\
         a/2.jpg,18,,,,\n",
    )
    .unwrap();
    let source = GallerySource::detect(&manifest, None, None).unwrap();
    assert_eq!(source.kind(), "csv-manifest");
    let items = source.read().unwrap();
    assert_eq!(items.len(), 2);
    let r = &items[0].record;
    assert_eq!((r.image_id.as_str(), r.person_id.as_str()), ("first", "17"));
    assert_eq!(r.camera_id.as_deref(), Some("cam-3"));
    assert_eq!(
        r.captured_at,
        Some(Utc.with_ymd_and_hms(2024, 5, 1, 8, 0, 0).unwrap())
    );
    assert_eq!(r.attributes["clothing"], "red coat");
    assert!(items[0].file.ends_with("a/1.jpg") && items[0].file.is_absolute());
    let r = &items[1].record;
    assert_eq!(r.image_id, "a/2.jpg");
    assert!(r.camera_id.is_none() && r.captured_at.is_none() && r.attributes.is_empty());
}

#[test]
fn malformed_manifest_lines_are_reported_by_number() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("g.csv");
    fs::write(
        &csv,
        "path,person_id,captured_at\na.jpg,1,\nb.jpg,2,yesterday\n",
    )
    .unwrap();
    let err = GallerySource::detect(&csv, None, None)
        .unwrap()
        .read()
        .unwrap_err();
    assert!(
        matches!(&err, IngestError::Entry { location, .. } if location == "line 3"),
        "{err}"
    );
    assert!(err.to_string().contains("RFC 3339"), "{err}");

    let jsonl = tmp.path().join("g.jsonl");
    fs::write(
        &jsonl,
        "{\"path\": \"a.jpg\", \"person_id\": 1, \"camera_id\": \"c1\", \"age\": 30}\n\n{\"path\": \"b.jpg\"}\n",
    )
    .unwrap();
    let source = GallerySource::detect(&jsonl, None, None).unwrap();
    let err = source.read().unwrap_err();
    assert!(
        err.to_string().contains("line 3") && err.to_string().contains("person_id"),
        "{err}"
    );
    fs::write(
        &jsonl,
        "{\"path\": \"a.jpg\", \"person_id\": 1, \"age\": 30}\n",
    )
    .unwrap();
    let items = source.read().unwrap();
    assert_eq!(items[0].record.person_id, "1");
    assert_eq!(items[0].record.attributes["age"], "30");
}

#[test]
fn folders_are_detected_by_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let persons = tmp.path().join("persons");
    touch(&persons.join("ann/x.jpg"));
    touch(&persons.join("ann/notes.txt"));
    touch(&persons.join("ben/y.PNG"));
    let source = GallerySource::detect(&persons, None, None).unwrap();
    assert_eq!(source.kind(), "person-folders");
    let items = source.read().unwrap();
    let got: Vec<_> = items
        .iter()
        .map(|i| (i.record.image_id.as_str(), i.record.person_id.as_str()))
        .collect();
    assert_eq!(got, [("ann/x.jpg", "ann"), ("ben/y.PNG", "ben")]);

    let market = tmp.path().join("market");
    touch(&market.join("0001_c1s1_000151_01.jpg"));
    touch(&market.join("-1_c6s2_000020_03.jpg"));
    let source = GallerySource::detect(&market, None, None).unwrap();
    assert_eq!(source.kind(), "market1501");
    let items = source.read().unwrap();
    let r = &items[1].record;
    assert_eq!(
        (r.person_id.as_str(), r.camera_id.as_deref()),
        ("0001", Some("1"))
    );
    assert_eq!(r.attributes["frame"], "000151");
    touch(&market.join("holiday.jpg"));
    let err = source.read().unwrap_err();
    assert!(err.to_string().contains("holiday.jpg"), "{err}");
    assert_eq!(parse_market_name("0002_c12s3_004567_00").unwrap().1, "12");
    assert!(parse_market_name("0002_x1s3_004567_00").is_none());
}

#[test]
fn dataset_annotations_need_a_split_and_resolve_under_the_images_root() {
    let tmp = tempfile::tempdir().unwrap();
    let annotation = tmp.path().join("data_captions.json");
    fs::create_dir_all(tmp.path().join("imgs")).unwrap();
    fs::write(
        &annotation,
        r#"[{"id": 7, "img_path": "7/a.jpg", "captions": ["a man", "a person"], "split": "test"},
            {"id": 8, "img_path": "8/b.jpg", "captions": ["a woman"], "split": "train"}]"#,
    )
    .unwrap();
    let err = GallerySource::detect(&annotation, None, None).unwrap_err();
    assert!(matches!(err, IngestError::SplitRequired(_)), "{err}");
    let source = GallerySource::detect(&annotation, Some(Split::Test), None).unwrap();
    let items = source.read().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].record.person_id, "7");
    assert!(
        items[0].file.ends_with("imgs/7/a.jpg"),
        "{}",
        items[0].file.display()
    );
}
