//! `ivt eval` end to end on the golden tiny model: a dataset file over the golden images and
//! captions, evaluated by the real binary, must give the metrics of the golden embeddings.

mod common;

use std::path::Path;
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use ivt::eval::{rank_exact, Embeddings};

const MODEL: &str = "tests/fixtures/model-tiny-s12";

fn captions() -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(MODEL).join("text.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["captions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

/// Test split: image i with caption i, persons 1, 2, 1, 3; plus a train entry whose image does not
/// exist, which must not be read.
fn write_dataset(dir: &Path) -> std::path::PathBuf {
    let caps = captions();
    let mut entries: Vec<serde_json::Value> = [1, 2, 1, 3]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            serde_json::json!({"split": "test", "captions": [caps[i]],
                               "file_path": format!("image{i}.png"), "id": id})
        })
        .collect();
    entries.push(serde_json::json!({"split": "train", "captions": ["x"],
                                    "file_path": "missing.png", "id": 9}));
    let path = dir.join("reid_raw.json");
    std::fs::write(&path, serde_json::to_string(&entries).unwrap()).unwrap();
    path
}

fn golden_metrics() -> ivt::eval::RankingMetrics {
    let out =
        candle_core::safetensors::load(Path::new(MODEL).join("outputs.safetensors"), &Device::Cpu)
            .unwrap();
    let rows = |t: &Tensor| t.to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap();
    let images = rows(&out["image_embeddings_normalized"]);
    let texts = rows(&out["text_embeddings_normalized"]);
    let pids = [0usize, 1, 0, 2];
    rank_exact(
        Embeddings {
            rows: &texts,
            pids: &pids,
        },
        Embeddings {
            rows: &images,
            pids: &pids,
        },
        10,
    )
    .unwrap()
}

#[test]
fn eval_command_reports_the_metrics_of_the_golden_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = write_dataset(dir.path());
    let out_file = dir.path().join("metrics.json");
    let output = Command::new(env!("CARGO_BIN_EXE_ivt"))
        .args([
            "eval",
            "--model",
            MODEL,
            "--images",
            MODEL,
            "--split",
            "test",
            "--batch-size",
            "3",
        ])
        .arg("--dataset")
        .arg(&dataset)
        .arg("--out")
        .arg(&out_file)
        .output()
        .unwrap();
    common::assert_success(&output);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    assert_eq!(report, written);

    let want = golden_metrics();
    assert_eq!(report["images"], 4);
    assert_eq!(report["persons"], 3);
    assert_eq!(report["queries"], 4);
    assert_eq!(report["split"], "test");
    assert_eq!(report["search"], "exact");
    for (key, value) in [
        ("r1", want.r1),
        ("r5", want.r5),
        ("r10", want.r10),
        ("map", want.map),
        ("minp", want.minp),
        ("map_authors", want.map_authors),
    ] {
        let got = report[key].as_f64().unwrap();
        assert!((got - value).abs() < 1e-9, "{key}: {got} vs {value}");
    }
}

#[test]
fn eval_command_rejects_an_empty_split_and_a_missing_image() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = write_dataset(dir.path());
    let run = |split: &str| {
        Command::new(env!("CARGO_BIN_EXE_ivt"))
            .args([
                "eval", "--model", MODEL, "--images", MODEL, "--split", split,
            ])
            .arg("--dataset")
            .arg(&dataset)
            .output()
            .unwrap()
    };
    let val = run("val");
    assert!(!val.status.success());
    assert!(String::from_utf8_lossy(&val.stderr).contains("no val images"));
    let train = run("train");
    assert!(!train.status.success());
    assert!(String::from_utf8_lossy(&train.stderr).contains("missing.png"));
}

fn ivt_json(args: &[&str]) -> serde_json::Value {
    // `ivt index build` prints one summary line; `ivt eval` one pretty JSON document.
    serde_json::from_str(&common::run_ok(common::ivt().args(args))).unwrap()
}

#[test]
fn eval_through_the_index_matches_exact_search_on_a_small_gallery() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = write_dataset(dir.path());
    let index = dir.path().join("index");
    let (dataset, index) = (dataset.to_str().unwrap(), index.to_str().unwrap());
    ivt_json(&[
        "index",
        "build",
        "--model",
        MODEL,
        "--gallery",
        dataset,
        "--split",
        "test",
        "--images-root",
        MODEL,
        "--out",
        index,
    ]);
    let report = ivt_json(&[
        "eval",
        "--model",
        MODEL,
        "--dataset",
        dataset,
        "--index",
        index,
        "--split",
        "test",
    ]);
    // Four images: a search of depth 100 finds every positive, so nothing is truncated and the
    // HNSW ranking equals the exact one.
    let want = golden_metrics();
    assert_eq!(report["images"], 4);
    assert_eq!(report["persons"], 3);
    assert!(report["search"].as_str().unwrap().starts_with("hnsw"));
    for (key, value) in [("r1", want.r1), ("map", want.map), ("minp", want.minp)] {
        let got = report[key].as_f64().unwrap();
        assert!((got - value).abs() < 1e-6, "{key}: {got} vs {value}");
    }
}
