//! Helpers shared by the integration tests (each test binary uses a subset).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};

/// A file under `tests/fixtures/`.
pub fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

/// Largest absolute element-wise difference of two tensors of one shape, compared in f32.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let a = a.to_dtype(DType::F32).expect("a to f32");
    let b = b.to_dtype(DType::F32).expect("b to f32");
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .expect("difference")
}

/// The `ivt` binary under test.
pub fn ivt() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_ivt"))
}

/// Fails the test with the command's stderr when it did not succeed.
pub fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `cmd` and returns its stdout, failing the test with its stderr if it did not succeed.
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().expect("run the command");
    assert_success(&out);
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// The shipped demo model (`models/demo`).
pub fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(ivt::model::DEMO_MODEL)
}

/// Builds the demo index in a fresh cache (as `ivt serve` does on first start).
pub fn demo_index(cache: &Path) -> (ivt::model::ModelFiles, PathBuf) {
    let files = ivt::model::ModelFiles::resolve(&demo_dir(), None).expect("demo model");
    let load = || {
        Ok(ivt::model::Encoder::load(
            &files,
            &candle_core::Device::Cpu,
            DType::F32,
        )?)
    };
    let bar = indicatif::ProgressBar::hidden();
    let dir = ivt::ingest::demo::ensure_demo_index(&files, load, cache, &bar).expect("demo index");
    (files, dir)
}
