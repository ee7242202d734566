//! Every error a user can cause while loading a model or feeding it inputs is a clear error,
//! never a panic or an unbounded allocation.

mod common;
use common::fixture;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use ivt::image::{decode, DecodeLimits, ImageError};
use ivt::model::{Encoder, IvtConfig, ModelError, ModelFiles};
use ivt::text::{TextError, TextTokenizer};

fn load_err(files: &ModelFiles) -> ModelError {
    Encoder::load(files, &Device::Cpu, DType::F32).expect_err("loading should fail")
}

fn s12_config() -> IvtConfig {
    serde_json::from_str(&std::fs::read_to_string(fixture("model-tiny-s12/config.json")).unwrap())
        .unwrap()
}

#[test]
fn wrong_stride_names_pos_embed_and_both_shapes() {
    let mut cfg = s12_config();
    cfg.stride = 16;
    let files = ModelFiles::resolve(&fixture("model-tiny-s12"), Some(cfg)).unwrap();
    let msg = load_err(&files).to_string();
    assert!(msg.contains("pos_embed"), "{msg}");
    assert!(
        msg.contains("[1, 22, 64]") && msg.contains("[1, 19, 64]"),
        "{msg}"
    );
    assert!(msg.contains("stride"), "{msg}");
}

#[test]
fn wrong_width_is_a_shape_error_not_a_panic() {
    let mut cfg = s12_config();
    cfg.hidden_size = 128;
    cfg.num_heads = 4;
    let files = ModelFiles::resolve(&fixture("model-tiny-s12"), Some(cfg)).unwrap();
    assert!(matches!(load_err(&files), ModelError::Shape { .. }));
}

#[test]
fn missing_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut ts: HashMap<String, Tensor> =
        candle_core::safetensors::load(fixture("model-tiny-s12/model.safetensors"), &Device::Cpu)
            .unwrap();
    assert!(ts.remove("encoder_vl.blocks.1.mlp_txt.fc2.bias").is_some());
    candle_core::safetensors::save(&ts, dir.path().join("model.safetensors")).unwrap();
    std::fs::copy(
        fixture("model-tiny-s12/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let files = ModelFiles::resolve(dir.path(), None).unwrap();
    match load_err(&files) {
        ModelError::MissingTensor(name) => assert_eq!(name, "blocks.1.mlp_txt.fc2.bias"),
        e => panic!("unexpected {e}"),
    }
}

#[test]
fn missing_and_corrupt_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        ModelFiles::resolve(&dir.path().join("nope"), None),
        Err(ModelError::NotFound(_))
    ));
    assert!(matches!(
        ModelFiles::resolve(dir.path(), None),
        Err(ModelError::NoWeights(_))
    ));
    // A bare weights file needs a config.
    let bare = dir.path().join("ckpt.pth");
    std::fs::write(&bare, b"not a zip pickle").unwrap();
    assert!(matches!(
        ModelFiles::resolve(&bare, None),
        Err(ModelError::NoConfig(_))
    ));
    // A corrupt checkpoint.
    let files = ModelFiles::resolve(&bare, Some(s12_config())).unwrap();
    assert!(matches!(load_err(&files), ModelError::Checkpoint { .. }));
    // A truncated safetensors file.
    let bytes = std::fs::read(fixture("model-tiny-s12/model.safetensors")).unwrap();
    let trunc = dir.path().join("trunc.safetensors");
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    let files = ModelFiles::resolve(&trunc, Some(s12_config())).unwrap();
    assert!(matches!(load_err(&files), ModelError::Checkpoint { .. }));
    // A malformed config.
    std::fs::write(dir.path().join("config.json"), b"{\"image_size\": [96]}").unwrap();
    std::fs::copy(
        fixture("model-tiny-s12/model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let msg = ModelFiles::resolve(dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("config"), "{msg}");
}

#[test]
fn model_directory_prefers_safetensors_and_ignores_other_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("model-tiny-s16/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    std::fs::copy(
        fixture("model-tiny-s16/checkpoint.pth"),
        dir.path().join("checkpoint.pth"),
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
    let files = ModelFiles::resolve(dir.path(), None).unwrap();
    assert!(files.weights.ends_with("checkpoint.pth"));
    assert!(Encoder::load(&files, &Device::Cpu, DType::F32).is_ok());
}

#[test]
fn empty_and_overlong_texts() {
    let tok = TextTokenizer::builtin(16).unwrap();
    assert!(matches!(tok.encode(""), Err(TextError::Empty)));
    assert!(matches!(tok.encode("  \n\t "), Err(TextError::Empty)));
    let long = "a woman in a red coat ".repeat(20);
    let t = tok.encode(&long).unwrap();
    assert!(t.truncated);
    assert_eq!(t.ids.len(), 16);
    assert_eq!(t.ids[0], 101);
    assert_eq!(t.ids[15], 102);
    let short = tok.encode("A Woman").unwrap();
    assert!(!short.truncated);
    // Lowercased: "a woman" → [CLS] a woman [SEP].
    assert_eq!(short.ids, vec![101, 1037, 2450, 102]);
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    c.extend_from_slice(&body);
    c.extend_from_slice(&crc32(&body).to_be_bytes());
    c
}

#[test]
fn bad_images_are_rejected_with_clear_errors() {
    let limits = DecodeLimits::default();
    assert!(matches!(decode(b"", limits), Err(ImageError::Empty)));
    assert!(matches!(
        decode(b"hello, not an image", limits),
        Err(ImageError::UnknownFormat)
    ));

    let png = std::fs::read(fixture("model-tiny-s12/image0.png")).unwrap();
    let err = decode(&png[..png.len() / 2], limits).unwrap_err();
    assert!(matches!(err, ImageError::Decode(_)), "{err}");

    // A decompression bomb: a valid header declaring 100000 x 100000 pixels.
    let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = 100_000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    bomb.extend(png_chunk(b"IHDR", &ihdr));
    bomb.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    bomb.extend(png_chunk(b"IEND", &[]));
    let err = decode(&bomb, limits).unwrap_err();
    assert!(matches!(err, ImageError::TooLarge(_)), "{err}");
}
