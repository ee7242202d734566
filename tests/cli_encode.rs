//! `ivt encode` and `ivt convert` as a user runs them: the real binary, real files, JSON lines
//! on stdout, messages on stderr.

mod common;
use common::fixture;

use std::process::{Command, Output};

use candle_core::Device;

fn ivt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ivt"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ivt")
}

fn golden(dir: &str, key: &str) -> Vec<Vec<f32>> {
    let out =
        candle_core::safetensors::load(fixture(dir).join("outputs.safetensors"), &Device::Cpu)
            .unwrap();
    out[key].to_vec2::<f32>().unwrap()
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("stdout is JSON lines"))
        .collect()
}

fn embedding(v: &serde_json::Value) -> Vec<f32> {
    v["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(d < tol, "max diff {d}");
}

const CAPTION0: &str = "A woman wearing a red coat, black pants and carrying a backpack.";
const CAPTION2: &str = "young girl";

#[test]
fn encode_prints_golden_embeddings_as_json_lines_in_order() {
    let model = fixture("model-tiny-s16");
    let img = fixture("model-tiny-s16/image1.png");
    let out = ivt(&[
        "encode",
        "--model",
        model.to_str().unwrap(),
        "--text",
        CAPTION0,
        "--text",
        CAPTION2,
        "--image",
        img.to_str().unwrap(),
        "--batch-size",
        "1",
    ]);
    common::assert_success(&out);
    let rows = lines(&out);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["text"], CAPTION0);
    assert_eq!(rows[1]["text"], CAPTION2);
    assert_eq!(rows[2]["image"], img.to_str().unwrap());
    let txt = golden("model-tiny-s16", "text_embeddings_normalized");
    let ims = golden("model-tiny-s16", "image_embeddings_normalized");
    assert_close(&embedding(&rows[0]), &txt[0], 1e-4);
    assert_close(&embedding(&rows[1]), &txt[2], 1e-4);
    assert_close(&embedding(&rows[2]), &ims[1], 1e-4);
}

#[test]
fn encode_reads_input_files_and_warns_on_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let texts = dir.path().join("texts.txt");
    let long = "a man in a long black coat and blue jeans ".repeat(80);
    std::fs::write(&texts, format!("{CAPTION2}\n\n{long}\n")).unwrap();
    let list = dir.path().join("images.txt");
    std::fs::write(
        &list,
        format!("{}\n", fixture("model-tiny-s12/image0.png").display()),
    )
    .unwrap();
    let model = fixture("model-tiny-s12");
    let out = ivt(&[
        "encode",
        "--model",
        model.to_str().unwrap(),
        "--text-file",
        texts.to_str().unwrap(),
        "--image-list",
        list.to_str().unwrap(),
    ]);
    common::assert_success(&out);
    let rows = lines(&out);
    assert_eq!(rows.len(), 3);
    assert_close(
        &embedding(&rows[0]),
        &golden("model-tiny-s12", "text_embeddings_normalized")[2],
        1e-4,
    );
    assert_close(
        &embedding(&rows[2]),
        &golden("model-tiny-s12", "image_embeddings_normalized")[0],
        1e-4,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("truncated"), "{stderr}");
}

#[test]
fn encode_errors_go_to_stderr_with_nonzero_exit() {
    let model = fixture("model-tiny-s12");
    let out = ivt(&[
        "encode",
        "--model",
        model.to_str().unwrap(),
        "--image",
        "/no/such/file.png",
    ]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/no/such/file.png"), "{stderr}");

    let out = ivt(&["encode", "--model", model.to_str().unwrap(), "--text", ""]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("text is empty"));

    let out = ivt(&[
        "encode",
        "--model",
        model.to_str().unwrap(),
        "--preset",
        "ivt-base",
        "--text",
        "x",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("shape"));
}

#[test]
fn convert_pth_to_safetensors_keeps_the_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("model-tiny-s16");
    for (name, dtype) in [("f32", "f32"), ("f16", "f16")] {
        let out_dir = dir.path().join(name);
        let out = ivt(&[
            "convert",
            "--model",
            src.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--out-dtype",
            dtype,
        ]);
        common::assert_success(&out);
        assert!(out_dir.join("config.json").is_file());
        let enc = ivt(&[
            "encode",
            "--model",
            out_dir.to_str().unwrap(),
            "--text",
            CAPTION0,
        ]);
        common::assert_success(&enc);
        let e = embedding(&lines(&enc)[0]);
        let want = &golden("model-tiny-s16", "text_embeddings_normalized")[0];
        if name == "f32" {
            assert_close(&e, want, 1e-5);
        } else {
            let cos: f32 = e.iter().zip(want).map(|(a, b)| a * b).sum();
            assert!(cos > 0.999, "f16 cosine {cos}");
        }
    }
}
