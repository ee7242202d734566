//! What an index does with damaged files and interrupted builds: clear `Corrupt` errors naming
//! the file, and the previous index staying live until a build is published.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use ivt::index::{GalleryIndex, HnswParams, ImageRecord, IndexError, SearchFilter, SearchParams};

const FP: &str = "fp";
const DIM: usize = 16;

fn vector(i: usize) -> Vec<f32> {
    // Distinct pseudo-random directions (xorshift), reproducible without an RNG.
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let v: Vec<f32> = (0..DIM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 1000) as f32 - 499.5
        })
        .collect();
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-6);
    v.into_iter().map(|a| a / n).collect()
}

fn items(range: std::ops::Range<usize>) -> Vec<(ImageRecord, Vec<f32>)> {
    range
        .map(|i| {
            (
                ImageRecord::new(format!("img{i}"), format!("p{i}")),
                vector(i),
            )
        })
        .collect()
}

/// A published index of 40 images with a dumped graph; returns its generation directory.
fn published(dir: &Path) -> PathBuf {
    let mut index =
        GalleryIndex::begin_build(dir, FP, DIM, HnswParams::default(), Default::default()).unwrap();
    index.add(items(0..40)).unwrap();
    index.publish().unwrap();
    let generation = fs::read_to_string(dir.join("CURRENT")).unwrap();
    dir.join(generation.trim())
}

fn file_with_suffix(dir: &Path, suffix: &str) -> PathBuf {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no *{suffix} in {}", dir.display()))
}

fn truncate(path: &Path, by: u64) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - by).unwrap();
}

fn open_error(dir: &Path) -> IndexError {
    GalleryIndex::open(dir, FP)
        .err()
        .expect("damaged index must not open")
}

fn assert_corrupt(err: IndexError, file_suffix: &str) {
    match &err {
        IndexError::Corrupt { path, .. } => {
            assert!(path.to_string_lossy().contains(file_suffix), "{err}")
        }
        other => panic!("expected Corrupt naming {file_suffix}, got {other}"),
    }
}

#[test]
fn truncated_files_are_reported_by_name() {
    for (suffix, by) in [
        ("embeddings.f32", 4),
        ("records.jsonl", 10),
        (".hnsw.graph", 8),
        (".hnsw.data", 8),
        (".flat", 8),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("idx");
        let generation = published(&dir);
        truncate(&file_with_suffix(&generation, suffix), by);
        assert_corrupt(open_error(&dir), suffix.trim_start_matches('.'));
    }
}

#[test]
fn garbage_in_manifest_records_or_graph_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let generation = published(&dir);
    let graph = file_with_suffix(&generation, ".hnsw.graph");
    let mut bytes = fs::read(&graph).unwrap();
    bytes[..4].copy_from_slice(&[0, 0, 0, 0]); // the dump's magic number
    fs::write(&graph, &bytes).unwrap();
    assert_corrupt(open_error(&dir), "graph");

    // The compact graph searches read: a flipped bit fails its checksum.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let generation = published(&dir);
    let flat = file_with_suffix(&generation, ".flat");
    let mut bytes = fs::read(&flat).unwrap();
    bytes[40] ^= 0x10;
    fs::write(&flat, &bytes).unwrap();
    let err = open_error(&dir);
    assert_corrupt(err, ".flat");
    assert!(open_error(&dir).to_string().contains("checksum"));

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let generation = published(&dir);
    let records = generation.join("records.jsonl");
    let text = fs::read_to_string(&records)
        .unwrap()
        .replacen("{\"image_id\"", "{\"imagE_id\"", 1);
    fs::write(&records, text).unwrap();
    let err = open_error(&dir);
    assert_corrupt(err, "records.jsonl");
    assert!(open_error(&dir).to_string().contains("line 1"));

    fs::write(generation.join("manifest.json"), "{\"format_version\": 1").unwrap();
    assert_corrupt(open_error(&dir), "manifest.json");
}

#[test]
fn an_unpublished_build_leaves_the_previous_index_live_and_can_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    published(&dir);
    // A rebuild "killed" after 25 images: dropped without publish.
    let mut build =
        GalleryIndex::begin_build(&dir, FP, DIM, HnswParams::default(), Default::default())
            .unwrap();
    build.add(items(100..125)).unwrap();
    drop(build);

    let live = GalleryIndex::open_read_only(&dir, FP).unwrap();
    assert_eq!(live.len(), 40);
    assert!(live.contains("img0") && !live.contains("img100"));

    let mut resumed = GalleryIndex::resume_build(&dir, FP)
        .unwrap()
        .expect("pending build");
    assert_eq!(resumed.len(), 25);
    let rest: Vec<_> = items(100..150)
        .into_iter()
        .filter(|(r, _)| !resumed.contains(&r.image_id))
        .collect();
    assert_eq!(rest.len(), 25);
    resumed.add(rest).unwrap();
    resumed.publish().unwrap();
    drop((live, resumed));

    let index = GalleryIndex::open_read_only(&dir, FP).unwrap();
    assert_eq!(index.len(), 50);
    assert!(!index.contains("img0"));
    let params = SearchParams {
        top_k: 1,
        ef: None,
        exact: false,
    };
    let hit = index
        .search_images(&vector(120), &params, &SearchFilter::default())
        .unwrap();
    assert_eq!(hit[0].record.image_id, "img120");
    assert!(GalleryIndex::resume_build(&dir, FP).unwrap().is_none());
    let generations = fs::read_dir(&dir).unwrap().count();
    assert_eq!(generations, 3, "CURRENT, LOCK and one generation remain");
}

#[test]
fn a_torn_append_is_ignored_on_open_and_overwritten_by_the_next_add() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let generation = published(&dir);
    // Simulate a crash after appending but before the manifest commit.
    let mut f = OpenOptions::new()
        .append(true)
        .open(generation.join("records.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"image_id\": \"half").unwrap();
    drop(f);
    let mut index = GalleryIndex::open(&dir, FP).unwrap();
    assert_eq!(index.len(), 40);
    index.add(items(40..42)).unwrap();
    drop(index);
    let index = GalleryIndex::open(&dir, FP).unwrap();
    assert_eq!(index.len(), 42);
    assert_eq!(index.record("img41").unwrap().person_id, "p41");
}

/// A published index with every kind of file: 40 images, a dumped graph and a removal
/// (tombstones). Returns its generation directory.
fn with_every_file(dir: &Path) -> PathBuf {
    let generation = published(dir);
    let mut index = GalleryIndex::open(dir, FP).unwrap();
    index.remove_images(&["img3".to_string()]).unwrap();
    generation
}

/// Flips one byte in the middle of a file (or at `at` when given), keeping its length.
fn flip(path: &Path, at: Option<usize>) {
    let mut bytes = fs::read(path).unwrap();
    let i = at.unwrap_or(bytes.len() / 2);
    bytes[i] ^= 0x20;
    fs::write(path, &bytes).unwrap();
}

fn ivt(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ivt"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// `ivt index verify` on `dir`: (exit success, damaged file names from the JSON report).
fn cli_verify(dir: &Path) -> (bool, Vec<String>) {
    let out = ivt(&["index", "verify", "--index", dir.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify stdout is not JSON ({e})"));
    let damaged = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["ok"] == false)
        .map(|f| f["file"].as_str().unwrap().to_string())
        .collect();
    (out.status.success(), damaged)
}

#[test]
fn a_clean_index_verifies_with_every_file_checksummed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    with_every_file(&dir);
    let report = GalleryIndex::verify(&dir).unwrap();
    assert!(report.ok && report.checksummed, "{report:?}");
    let names: Vec<&str> = report.files.iter().map(|f| f.file.as_str()).collect();
    for suffix in [
        "manifest.json",
        "records.jsonl",
        "embeddings.f32",
        "tombstones.u32",
        ".hnsw.graph",
        ".hnsw.data",
        ".flat",
    ] {
        assert!(
            names.iter().any(|n| n.ends_with(suffix)),
            "{suffix}: {names:?}"
        );
    }
    assert_eq!(cli_verify(&dir), (true, vec![]));

    // Adding (appends) and saving the graph keep the checksums current.
    let mut index = GalleryIndex::open_verified(&dir, FP).unwrap();
    index.add(items(40..45)).unwrap();
    assert!(GalleryIndex::verify(&dir).unwrap().ok);
    index.save_graph().unwrap();
    drop(index);
    let report = GalleryIndex::verify(&dir).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(
        report
            .files
            .iter()
            .filter(|f| f.file.ends_with(".flat"))
            .count(),
        1,
        "the replaced graph's checksums are gone"
    );
}

#[test]
fn a_flipped_byte_in_any_file_is_reported_by_name() {
    for suffix in [
        "embeddings.f32",
        "records.jsonl",
        "tombstones.u32",
        ".hnsw.graph",
        ".hnsw.data",
        ".flat",
        "manifest.json",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("idx");
        let generation = with_every_file(&dir);
        let path = file_with_suffix(&generation, suffix);
        // In the manifest, a digit of the image count: the JSON stays valid.
        let at = (suffix == "manifest.json").then(|| {
            let text = fs::read_to_string(&path).unwrap();
            text.find("\"count\": 39").unwrap() + "\"count\": ".len()
        });
        flip(&path, at);
        let name = path.file_name().unwrap().to_str().unwrap().to_string();

        let report = GalleryIndex::verify(&dir).unwrap();
        let damaged: Vec<&str> = report.damaged().map(|f| f.file.as_str()).collect();
        assert_eq!(damaged, vec![name.as_str()], "{suffix}");
        assert_corrupt(GalleryIndex::open_verified(&dir, FP).err().unwrap(), &name);
        assert_eq!(cli_verify(&dir), (false, vec![name.clone()]), "{suffix}");
        // CLI commands that open the index refuse it, naming the file.
        let info = ivt(&["index", "info", "--index", dir.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&info.stderr);
        assert!(!info.status.success() && stderr.contains(&name), "{stderr}");
    }
}

#[test]
fn an_edited_person_id_is_reported_even_by_a_plain_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let generation = with_every_file(&dir);
    let records = generation.join("records.jsonl");
    let text = fs::read_to_string(&records).unwrap();
    fs::write(&records, text.replacen("\"p7\"", "\"p8\"", 1)).unwrap();
    assert_eq!(cli_verify(&dir), (false, vec!["records.jsonl".to_string()]));
    // Records are read whole at every open, so even an unverified open checks them.
    let err = open_error(&dir);
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    assert_corrupt(err, "records.jsonl");
    let remove = ivt(&[
        "index",
        "remove",
        "--index",
        dir.to_str().unwrap(),
        "--image-id",
        "img1",
    ]);
    let stderr = String::from_utf8_lossy(&remove.stderr);
    assert!(
        !remove.status.success() && stderr.contains("records.jsonl"),
        "{stderr}"
    );
}

#[test]
fn an_index_written_before_checksums_opens_and_is_checksummed_at_its_next_change() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let generation = with_every_file(&dir);
    let manifest = generation.join("manifest.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    let fields = json.as_object_mut().unwrap();
    assert!(fields.remove("files").is_some() && fields.remove("manifest_crc32").is_some());
    fs::write(&manifest, serde_json::to_vec_pretty(&json).unwrap()).unwrap();

    let report = GalleryIndex::verify(&dir).unwrap();
    assert!(report.ok && !report.checksummed, "{report:?}");
    let mut index = GalleryIndex::open(&dir, FP).unwrap();
    assert_eq!(index.len(), 39);
    index.add(items(40..41)).unwrap();
    drop(index);
    let report = GalleryIndex::verify(&dir).unwrap();
    assert!(report.ok && report.checksummed, "{report:?}");
    assert_eq!(report.files.len(), 7, "{report:?}");
}
