//! `ivt convert`: any accepted checkpoint → a clean model directory (config.json +
//! model.safetensors, f32 or f16), written atomically.

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::{DType, Device};

use super::common::{parse_dtype, ModelArgs};
use crate::model::weights;

/// Arguments of `ivt convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output directory (created; existing config.json/model.safetensors are replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Stored precision: f32 or f16 (half the size; embeddings change by ~1e-3).
    #[arg(long = "out-dtype", default_value = "f32")]
    pub out_dtype: String,
}

/// Runs `ivt convert`.
pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    let files = args.model.files()?;
    let dtype = parse_dtype(&args.out_dtype)?;
    anyhow::ensure!(dtype != DType::BF16, "--out-dtype must be f32 or f16");
    let raw = weights::read_checkpoint(&files.weights)?;
    let tensors = weights::select_tensors(raw, &files.config, dtype, &Device::Cpu)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let st = args.out.join("model.safetensors");
    let tmp = args.out.join(".model.safetensors.tmp");
    candle_core::safetensors::save(&tensors, &tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    sync_and_rename(&tmp, &st)?;
    let cfg_json = serde_json::to_string_pretty(&files.config)?;
    write_atomic(&args.out.join("config.json"), cfg_json.as_bytes())?;
    let summary = serde_json::json!({
        "out": args.out,
        "tensors": tensors.len(),
        "dtype": args.out_dtype,
        "source": files.weights,
    });
    println!("{summary}");
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see a
/// partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    sync_and_rename(&tmp, path)
}

fn sync_and_rename(tmp: &Path, dst: &Path) -> anyhow::Result<()> {
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", tmp.display()))?;
    std::fs::rename(tmp, dst)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), dst.display()))?;
    Ok(())
}
