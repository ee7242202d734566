//! `ivt train` end to end through the real binary: a tiny architecture on a generated dataset
//! with a validation split, JSON lines on stdout, `best/` and `last/` checkpoints that `ivt eval`
//! loads, and `--resume` continuing from the last epoch. The patch stride does not tile the image
//! (as the released stride 12 on 384x128), which candle's conv backward alone cannot handle.

mod common;

use std::path::Path;
use std::process::Command;

/// Writes 6 persons × 2 images (train) + 3 persons × 2 images (val) and the annotation file.
fn write_dataset(root: &Path) -> std::path::PathBuf {
    let colours = [
        [220u8, 30, 30],
        [30, 180, 40],
        [30, 50, 220],
        [230, 220, 40],
        [15, 15, 15],
        [240, 240, 240],
    ];
    let names = ["red", "green", "blue", "yellow", "black", "white"];
    let mut entries = Vec::new();
    for p in 0..9usize {
        for view in 0..2u8 {
            let rgb = colours[p % 6];
            let img = image::RgbImage::from_fn(24, 48, |x, _| {
                image::Rgb(rgb.map(|c| c.saturating_sub(((x as u8) + view * 7) % 30)))
            });
            let file = format!("p{p}_{view}.png");
            img.save(root.join(&file)).unwrap();
            let split = if p < 6 { "train" } else { "val" };
            entries.push(serde_json::json!({
                "split": split, "id": p, "file_path": file,
                "captions": [format!("A person in a {} coat.", names[p % 6])]
            }));
        }
    }
    let path = root.join("reid_raw.json");
    std::fs::write(&path, serde_json::to_string(&entries).unwrap()).unwrap();
    let config = serde_json::json!({
        "image_size": [48, 26], "patch_size": 8, "stride": 6, "hidden_size": 32, "depth": 1,
        "num_heads": 2, "mlp_ratio": 2.0, "qkv_bias": true, "vocab_size": 30522,
        "max_position_embeddings": 64, "type_vocab_size": 2, "layer_norm_eps": 1e-6,
        "text_embedding_layer_norm_eps": 1e-12, "pixel_mean": [0.5, 0.5, 0.5],
        "pixel_std": [0.5, 0.5, 0.5]
    });
    std::fs::write(root.join("tiny.json"), config.to_string()).unwrap();
    path
}

fn ivt(root: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ivt"))
        .current_dir(root)
        .args(args)
        .output()
        .unwrap();
    common::assert_success(&out);
    out
}

fn json_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn train_writes_checkpoints_logs_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let common = [
        "train",
        "--dataset",
        "reid_raw.json",
        "--images",
        ".",
        "--out",
        "run",
        "--config",
        "tiny.json",
        "--batch-size",
        "4",
        "--eval-every",
        "1",
        "--workers",
        "2",
        "--warmup-epochs",
        "1",
        "--lr",
        "0.01",
    ];
    let first = ivt(dir.path(), &[&common[..], &["--epochs", "2"]].concat());
    let lines = json_lines(&first);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["epoch"], 2);
    assert!(lines[1]["loss"].as_f64().unwrap().is_finite());
    assert!(lines[1]["val_r1"].as_f64().is_some(), "{}", lines[1]);
    for f in [
        "last/model.safetensors",
        "last/config.json",
        "last/state.json",
        "best/model.safetensors",
    ] {
        assert!(dir.path().join("run").join(f).is_file(), "{f} missing");
    }

    let resumed = ivt(
        dir.path(),
        &[&common[..], &["--epochs", "3", "--resume"]].concat(),
    );
    let lines = json_lines(&resumed);
    assert_eq!(lines.len(), 1, "resume must run only the remaining epoch");
    assert_eq!(lines[0]["epoch"], 3);
    let log = std::fs::read_to_string(dir.path().join("run/train-log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 3);

    let eval = ivt(
        dir.path(),
        &[
            "eval",
            "--model",
            "run/best",
            "--dataset",
            "reid_raw.json",
            "--images",
            ".",
            "--split",
            "val",
        ],
    );
    let report: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(report["images"], 6);
}
