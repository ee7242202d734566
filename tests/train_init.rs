//! `ivt init` against the authors' `load_param_hybrid` (golden `init/`): every tensor taken from
//! the ViT and BERT checkpoints, `pos_embed` resized bilinearly from 14x14 to the 7x3 grid, and
//! the result loadable as a model.

mod common;
use common::max_abs_diff as max_diff;

use std::path::Path;
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use ivt::model::IvtConfig;

const DIR: &str = "tests/fixtures/init";

fn target() -> IvtConfig {
    IvtConfig {
        image_size: [96, 48],
        stride: 12,
        hidden_size: 32,
        depth: 2,
        num_heads: 4,
        ..IvtConfig::ivt_base()
    }
}

fn check_against_golden(got: &std::collections::HashMap<String, Tensor>) {
    let want = candle_core::safetensors::load(
        Path::new(DIR).join("expected_loaded.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(DIR).join("expected.json")).unwrap(),
    )
    .unwrap();
    let names = expected["loaded_from_checkpoints"].as_array().unwrap();
    assert_eq!(names.len(), want.len());
    for name in names {
        let name = name.as_str().unwrap();
        let w = &want[&format!("encoder_vl.{name}")];
        let g = got.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(g.dims(), w.dims(), "{name}");
        assert!(
            max_diff(g, w) < 1e-6,
            "{name} differs by {}",
            max_diff(g, w)
        );
    }
    // Left at initialisation: present with the target shape, not all zero.
    let t = &got["type_embed"];
    assert_eq!(t.dims(), &[1, 22, 32]);
    assert!(
        t.abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            > 0.0
    );
}

#[test]
fn mapping_and_pos_embed_resize_match_the_authors() {
    let cfg = target();
    for vit in ["vit.safetensors", "vit.pth"] {
        let got = ivt::train::init_from_pretrained(
            &Path::new(DIR).join(vit),
            &Path::new(DIR).join("bert.safetensors"),
            &cfg,
        )
        .unwrap();
        check_against_golden(&got);
    }
}

#[test]
fn init_command_writes_a_loadable_model() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, serde_json::to_string(&target()).unwrap()).unwrap();
    let out = dir.path().join("ivt-init");
    let status = Command::new(env!("CARGO_BIN_EXE_ivt"))
        .args([
            "init",
            "--vit",
            &format!("{DIR}/vit.pth"),
            "--bert",
            &format!("{DIR}/bert.safetensors"),
        ])
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    common::assert_success(&status);
    let saved =
        candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    check_against_golden(&saved);
    let files = ivt::model::ModelFiles::resolve(&out, None).unwrap();
    let encoder = ivt::model::Encoder::load(&files, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(encoder.dim(), 32);

    // A ViT that does not fit the target architecture is refused with the tensor's name.
    let mut deeper = target();
    deeper.depth = 3;
    let err = ivt::train::init_from_pretrained(
        &Path::new(DIR).join("vit.safetensors"),
        &Path::new(DIR).join("bert.safetensors"),
        &deeper,
    )
    .unwrap_err();
    assert!(err.to_string().contains("blocks.2"), "{err}");
}
