//! Dataset annotation readers: the three published layouts, split filtering, contiguous labels and
//! the error messages for malformed entries.

use std::path::{Path, PathBuf};

use ivt::data::{contiguous_labels, filter_split, read_dataset, DataError, PersonLabels, Split};

/// Writes `text` as `name` in a fresh temporary directory.
fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Entries shaped like CUHK-PEDES `reid_raw.json` (ids 1-based, `processed_tokens` ignored).
const CUHK: &str = r#"[
 {"split": "train", "captions": ["A woman wearing a white shirt.", "The lady has black hair."],
  "file_path": "CUHK01/0363004.png", "processed_tokens": [["a", "woman"]], "id": 1},
 {"split": "val", "captions": ["A man in a red jacket."], "file_path": "Market/0001_c1.jpg",
  "processed_tokens": [], "id": 2},
 {"split": "test", "captions": ["A man with a backpack.", "  "], "file_path": "test_query/p1.jpg",
  "processed_tokens": [], "id": 12},
 {"split": "train", "captions": ["Same woman, side view."], "file_path": "CUHK01/0363005.png",
  "processed_tokens": [], "id": 1}
]"#;

#[test]
fn reads_cuhk_pedes_layout() {
    let dir = tempfile::tempdir().unwrap();
    let images = read_dataset(&write(&dir, "reid_raw.json", CUHK)).unwrap();
    assert_eq!(images.len(), 4);
    assert_eq!(images[0].path, Path::new("CUHK01/0363004.png"));
    assert_eq!(images[0].person_id, "1");
    assert_eq!(images[0].captions.len(), 2);
    assert_eq!(images[1].split, Split::Val);
    // The blank second caption of entry 2 is dropped.
    assert_eq!(
        images[2].captions,
        vec!["A man with a backpack.".to_string()]
    );
    assert_eq!(images[2].split, Split::Test);
}

#[test]
fn reads_icfg_pedes_layout() {
    let text = r#"[{"split": "test", "captions": ["The man wears a grey coat."],
        "file_path": "test/0000/0000_002_01_0303morning_0008_0.jpg",
        "processed_tokens": [["the", "man"]], "id": 0}]"#;
    let dir = tempfile::tempdir().unwrap();
    let images = read_dataset(&write(&dir, "ICFG-PEDES.json", text)).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].person_id, "0");
    assert_eq!(
        images[0].path,
        Path::new("test/0000/0000_002_01_0303morning_0008_0.jpg")
    );
}

#[test]
fn reads_rstpreid_layout() {
    let text = r#"[{"id": 3903, "img_path": "3903_c14_0007.jpg",
        "captions": ["A woman in a long coat.", "She carries a bag."], "split": "train"},
       {"id": 4000, "img_path": "4000_c3_0001.jpg",
        "captions": ["A boy in shorts.", "He wears sneakers."], "split": "test"}]"#;
    let dir = tempfile::tempdir().unwrap();
    // Detection is by content: the file name does not matter.
    let images = read_dataset(&write(&dir, "renamed.json", text)).unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0].path, Path::new("3903_c14_0007.jpg"));
    assert_eq!(images[1].person_id, "4000");
    assert_eq!(images[1].captions.len(), 2);
}

#[test]
fn filters_splits_and_numbers_persons_contiguously() {
    let dir = tempfile::tempdir().unwrap();
    let images = read_dataset(&write(&dir, "reid_raw.json", CUHK)).unwrap();
    let train = filter_split(&images, Split::Train);
    assert_eq!(train.len(), 2);
    assert!(train.iter().all(|i| i.person_id == "1"));
    assert_eq!(contiguous_labels(&images), vec![0, 1, 2, 0]);
    assert_eq!(contiguous_labels(&train), vec![0, 0]);
    let labels = PersonLabels::new(&images);
    assert_eq!(labels.len(), 3);
    assert_eq!(labels.label("12"), Some(2));
    assert_eq!(labels.label("99"), None);
}

/// Asserts that reading `text` fails on entry `index` with a message containing `needle`.
fn assert_entry_error(text: &str, index: usize, needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let err = read_dataset(&write(&dir, "bad.json", text)).unwrap_err();
    match &err {
        DataError::Entry {
            index: i, message, ..
        } => {
            assert_eq!(*i, index, "{err}");
            assert!(message.contains(needle), "`{message}` lacks `{needle}`");
        }
        other => panic!("expected an entry error, got {other}"),
    }
    assert!(err.to_string().contains(&format!("entry {index}")));
}

#[test]
fn malformed_entries_name_the_entry_and_the_problem() {
    let ok = r#"{"split": "train", "captions": ["a man"], "file_path": "a.jpg", "id": 1}"#;
    let cases = [
        (
            r#"{"split": "train", "captions": ["a man"], "file_path": "b.jpg"}"#,
            "id",
        ),
        (
            r#"{"split": "dev", "captions": ["a man"], "file_path": "b.jpg", "id": 1}"#,
            "dev",
        ),
        (
            r#"{"split": "train", "captions": [], "file_path": "b.jpg", "id": 1}"#,
            "no non-blank caption",
        ),
        (
            r#"{"split": "train", "captions": "a man", "file_path": "b.jpg", "id": 1}"#,
            "captions",
        ),
        (
            r#"{"split": "train", "captions": ["x"], "file_path": "../etc/passwd", "id": 1}"#,
            "relative",
        ),
        (
            r#"{"split": "train", "captions": ["x"], "file_path": "/etc/passwd", "id": 1}"#,
            "relative",
        ),
        (
            r#"{"split": "train", "captions": ["x"], "img_path": "b.jpg", "id": 1}"#,
            "file_path",
        ),
        (
            r#"{"split": "train", "captions": ["x"], "file_path": "b.jpg", "id": 1.5}"#,
            "id",
        ),
    ];
    for (bad, needle) in cases {
        assert_entry_error(&format!("[{ok}, {ok}, {bad}]"), 2, needle);
    }
}

#[test]
fn unreadable_or_foreign_files_are_rejected_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = read_dataset(&dir.path().join("absent.json")).unwrap_err();
    assert!(matches!(missing, DataError::Io { .. }), "{missing}");
    let object = read_dataset(&write(&dir, "obj.json", r#"{"images": []}"#)).unwrap_err();
    assert!(matches!(object, DataError::NotAList { .. }), "{object}");
    let empty = read_dataset(&write(&dir, "empty.json", "[]")).unwrap_err();
    assert!(matches!(empty, DataError::Empty(_)), "{empty}");
    let foreign = read_dataset(&write(&dir, "f.json", r#"[{"image": "a.jpg"}]"#)).unwrap_err();
    assert!(
        matches!(foreign, DataError::UnknownFormat { .. }),
        "{foreign}"
    );
}
