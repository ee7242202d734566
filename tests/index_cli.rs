//! `ivt index build` / `ivt search` / `ivt index info|remove|compact` end to end, with the
//! golden tiny model: the stored embeddings must equal the authors' PyTorch outputs, and the
//! ranking printed by `ivt search` must equal the one computed from the golden vectors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::Device;
use ivt::index::{GalleryIndex, SearchFilter, SearchParams};
use ivt::model::ModelFiles;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model-tiny-s12")
}

fn golden(name: &str) -> Vec<Vec<f32>> {
    let tensors =
        candle_core::safetensors::load(fixture().join("outputs.safetensors"), &Device::Cpu)
            .unwrap();
    tensors[name].to_vec2::<f32>().unwrap()
}

fn ivt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ivt"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn ok_json(out: Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "command failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e})"))
}

/// Person folders: the four golden images, one generated PNG and one broken file.
fn write_gallery(root: &Path) {
    let place = [("alice", 0), ("alice", 1), ("bob", 2), ("carol", 3)];
    for (person, i) in place {
        std::fs::create_dir_all(root.join(person)).unwrap();
        let name = format!("image{i}.png");
        std::fs::copy(fixture().join(&name), root.join(person).join(&name)).unwrap();
    }
    let generated = image::RgbImage::from_fn(48, 96, |x, y| {
        image::Rgb([(x * 5) as u8, (y * 2) as u8, ((x + y) * 3) as u8])
    });
    generated.save(root.join("carol/generated.png")).unwrap();
    std::fs::write(root.join("bob/broken.png"), b"\x89PNG but not really").unwrap();
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn build_search_and_maintain_an_index_from_image_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (gallery, index_dir) = (tmp.path().join("gallery"), tmp.path().join("idx"));
    write_gallery(&gallery);
    let model = fixture();
    let (model_s, gallery_s, index_s) = (
        model.to_str().unwrap(),
        gallery.to_str().unwrap(),
        index_dir.to_str().unwrap(),
    );
    let build = [
        "index",
        "build",
        "--model",
        model_s,
        "--gallery",
        gallery_s,
        "--out",
        index_s,
        "--batch-size",
        "2",
        "--threads",
        "2",
    ];

    // A broken image stops the build and names the file; the (absent) index stays absent.
    let failed = ivt(&build);
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("broken.png"));
    assert!(GalleryIndex::read_manifest(&index_dir).is_err());

    let summary = ok_json(ivt(&[&build[..], &["--skip-bad"]].concat()));
    assert_eq!(summary["count"], 5);
    assert_eq!(summary["skipped"].as_array().unwrap().len(), 1);

    // The stored embeddings are the authors' (PyTorch) embeddings of the same files.
    let fingerprint = ModelFiles::resolve(&model, None)
        .unwrap()
        .fingerprint()
        .unwrap();
    let index = GalleryIndex::open(&index_dir, &fingerprint).unwrap();
    let images = golden("image_embeddings_normalized");
    let ids = [
        "alice/image0.png",
        "alice/image1.png",
        "bob/image2.png",
        "carol/image3.png",
    ];
    for (id, want) in ids.iter().zip(&images) {
        let got = index.embedding(id).unwrap();
        let err = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 2e-4, "{id}: max abs error {err}");
    }
    // An exact copy of a gallery image finds it first.
    let params = SearchParams {
        top_k: 2,
        ef: None,
        exact: false,
    };
    let hits = index
        .search_images(&images[2], &params, &SearchFilter::default())
        .unwrap();
    assert_eq!(hits[0].record.image_id, "bob/image2.png");
    assert!((hits[0].score - 1.0).abs() < 2e-4);
    drop(index);

    check_text_search(model_s, index_s, &ids);
    check_image_search(model_s, index_s, &gallery, &ids);
    check_info_remove_compact(model_s, index_s);

    // Another model's index is refused with a message naming both fingerprints.
    let other = fixture().with_file_name("model-tiny-s16");
    let refused = ivt(&[
        "search",
        "--model",
        other.to_str().unwrap(),
        "--index",
        index_s,
        "--text",
        "a man",
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains(&fingerprint));
}

/// `ivt search --text` ranks persons as the golden text and image embeddings do.
fn check_text_search(model: &str, index: &str, ids: &[&str]) {
    let texts = golden("text_embeddings_normalized");
    let images = golden("image_embeddings_normalized");
    let caption = "A woman wearing a red coat, black pants and carrying a backpack.";
    let out = ok_json(ivt(&[
        "search", "--model", model, "--index", index, "--text", caption, "--top-k", "3", "--exact",
    ]));
    let persons = out["persons"].as_array().unwrap();
    let best = |person: &str| {
        ids.iter()
            .zip(&images)
            .filter(|(id, _)| id.starts_with(person))
            .map(|(_, e)| dot(&texts[0], e))
            .fold(f32::MIN, f32::max)
    };
    for p in persons.iter().filter(|p| p["person_id"] != "carol") {
        let id = p["person_id"].as_str().unwrap();
        let score = p["score"].as_f64().unwrap() as f32;
        assert!(
            (score - best(id)).abs() < 2e-4,
            "{id}: {score} vs {}",
            best(id)
        );
        assert!(p["images"][0]["path"].as_str().unwrap().ends_with(".png"));
    }
    let scores: Vec<f64> = persons
        .iter()
        .map(|p| p["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert_eq!(persons.len(), 3);
}

/// `ivt search --image` encodes a file; `--image-id` takes the stored embedding and leaves the
/// image itself out.
fn check_image_search(model: &str, index: &str, gallery: &std::path::Path, ids: &[&str]) {
    let images = golden("image_embeddings_normalized");
    let file = gallery.join("bob/image2.png");
    let search = ["search", "--model", model, "--index", index, "--images"];
    let out = ok_json(ivt(&[
        &search[..],
        &["--image", file.to_str().unwrap(), "--top-k", "2", "--exact"],
    ]
    .concat()));
    assert_eq!(out["query_image"], file.to_str().unwrap());
    assert_eq!(out["images"][0]["image_id"], "bob/image2.png");
    assert!((out["images"][0]["score"].as_f64().unwrap() - 1.0).abs() < 2e-4);

    let out = ok_json(ivt(&[
        &search[..],
        &["--image-id", "bob/image2.png", "--top-k", "10"],
    ]
    .concat()));
    assert_eq!(out["query_image_id"], "bob/image2.png");
    let hits = out["images"].as_array().unwrap();
    assert_eq!(hits.len(), 4, "five images less the query: {hits:?}");
    for h in hits {
        let id = h["image_id"].as_str().unwrap();
        assert_ne!(id, "bob/image2.png");
        if let Some(i) = ids.iter().position(|x| *x == id) {
            let want = dot(&images[2], &images[i]);
            let got = h["score"].as_f64().unwrap() as f32;
            assert!((got - want).abs() < 2e-4, "{id}: {got} vs {want}");
        }
    }
    let missing = ivt(&[&search[..], &["--image-id", "nobody.png"]].concat());
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nobody.png"));
    let both = ivt(&[
        &search[..],
        &["--image-id", "bob/image2.png", "--text", "a man"],
    ]
    .concat());
    assert!(!both.status.success());
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
}

fn check_info_remove_compact(model: &str, index: &str) {
    let info = ok_json(ivt(&["index", "info", "--index", index]));
    assert_eq!(info["format_version"], 1);
    assert_eq!(info["dim"], 64);
    assert_eq!(info["count"], 5);
    assert_eq!(info["model_fingerprint"].as_str().unwrap().len(), 64);

    let removed = ok_json(ivt(&[
        "index",
        "remove",
        "--index",
        index,
        "--person-id",
        "alice",
    ]));
    assert_eq!(removed["removed"], 2);
    let out = ok_json(ivt(&[
        "search",
        "--model",
        model,
        "--index",
        index,
        "--text",
        "young girl",
        "--images",
        "--top-k",
        "10",
    ]));
    let images = out["images"].as_array().unwrap();
    assert_eq!(images.len(), 3);
    assert!(images.iter().all(|i| i["person_id"] != "alice"));

    let compacted = ok_json(ivt(&["index", "compact", "--index", index]));
    assert_eq!(compacted["slots"], 3);
    assert_eq!(compacted["removed"], 0);
}

/// Records over the index's size limits are refused by `ivt index build` and `ivt index add`,
/// naming the field and the limit, before anything is written.
#[test]
fn oversized_records_are_refused_by_build_and_add() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture();
    let model_s = model.to_str().unwrap();
    let images = tmp.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    for i in 0..2 {
        let name = format!("image{i}.png");
        std::fs::copy(model.join(&name), images.join(&name)).unwrap();
    }
    let manifest = |name: &str, ids: [&str; 2], attribute: &str| {
        let path = tmp.path().join(name);
        let rows = format!(
            "path,person_id,image_id,note\nimages/image0.png,p0,{},fine\nimages/image1.png,p1,{},{attribute}\n",
            ids[0], ids[1]
        );
        std::fs::write(&path, rows).unwrap();
        path.to_str().unwrap().to_string()
    };
    let index_dir = tmp.path().join("idx");
    let index_s = index_dir.to_str().unwrap();
    let refused = |args: &[&str], needle: &str| {
        let out = ivt(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    };
    let long_id = "i".repeat(ivt::index::MAX_ID_BYTES + 1);
    let bad = manifest("bad-id.csv", ["ok-0", &long_id], "fine");
    let build = |gallery: &str| {
        [
            "index",
            "build",
            "--model",
            model_s,
            "--gallery",
            gallery,
            "--out",
            index_s,
        ]
        .map(String::from)
    };
    let args = build(&bad);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(&args, "image_id is 257 bytes, the limit is 256 bytes");
    assert!(
        !index_dir.join("CURRENT").exists(),
        "a refused build published an index"
    );

    let good = manifest("good.csv", ["ok-0", "ok-1"], "fine");
    let args = build(&good);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok_json(ivt(&args));
    let long_value = "v".repeat(ivt::index::MAX_ATTRIBUTE_VALUE_BYTES + 1);
    let bad = manifest("bad-attr.csv", ["new-0", "new-1"], &long_value);
    let add = [
        "index",
        "add",
        "--model",
        model_s,
        "--index",
        index_s,
        "--gallery",
        &bad,
    ];
    refused(
        &add,
        "attribute `note` is 257 bytes, the limit is 256 bytes",
    );
    let index = GalleryIndex::open_any(&index_dir).unwrap();
    assert_eq!(index.len(), 2, "nothing of the refused add was written");
    assert!(index.contains("ok-1") && !index.contains("new-0"));
}
