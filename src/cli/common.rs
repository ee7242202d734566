//! Arguments shared by the commands that load a model.

use std::path::PathBuf;

use anyhow::Context;
use candle_core::DType;

use crate::model::{demo_model_dir, parse_device, Encoder, IvtConfig, ModelFiles, PRESETS};

/// Which model to load and where to run it.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Model directory (config.json + model.safetensors or a .pth checkpoint) or a weights file.
    /// Default: the shipped demo model (`models/demo`), trained on `ivt synth` data.
    #[arg(long, env = "IVT_MODEL")]
    pub model: Option<PathBuf>,
    /// Model config JSON, overriding the directory's config.json (needed for a bare weights file).
    #[arg(long, env = "IVT_CONFIG", conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Named architecture instead of a config file: ivt-base (stride 12) or ivt-base-s16.
    #[arg(long, env = "IVT_PRESET")]
    pub preset: Option<String>,
    /// Device: cpu, cuda or cuda:N (cuda needs a build with `--features cuda`).
    #[arg(long, env = "IVT_DEVICE", default_value = "cpu")]
    pub device: String,
    /// Compute precision: f32 (exact, the default), or f16/bf16: opt-in reduced precision for GPUs
    /// (candle's CPU backend has no bf16 matmul and its f16 matmul is slower than f32).
    #[arg(long, env = "IVT_DTYPE", default_value = "f32")]
    pub dtype: String,
}

impl ModelArgs {
    /// Resolves the model files and config.
    pub fn files(&self) -> anyhow::Result<ModelFiles> {
        let config = match (&self.config, &self.preset) {
            (Some(p), _) => Some(crate::model::weights::read_config_file(p)?),
            (None, Some(name)) => Some(IvtConfig::preset(name).with_context(|| {
                format!("unknown preset `{name}`; known: {}", PRESETS.join(", "))
            })?),
            (None, None) => None,
        };
        let path = match &self.model {
            Some(p) => p.clone(),
            None => demo_model_dir()?,
        };
        Ok(ModelFiles::resolve(&path, config)?)
    }

    /// Loads the encoder on the chosen device.
    pub fn load(&self) -> anyhow::Result<(Encoder, ModelFiles)> {
        let files = self.files()?;
        let device = parse_device(&self.device)?;
        let dtype = compute_dtype(&self.dtype, &device)?;
        tracing::info!(model = %files.weights.display(), device = %self.device, "loading model");
        let encoder = Encoder::load(&files, &device, dtype)
            .with_context(|| format!("loading {}", files.weights.display()))?;
        Ok((encoder, files))
    }
}

/// Parses the compute precision for `device`. candle's CPU backend has no bf16 matmul, and its
/// f16 matmul is slower than f32, so reduced precision is for GPUs.
pub fn compute_dtype(s: &str, device: &candle_core::Device) -> anyhow::Result<DType> {
    let dtype = parse_dtype(s)?;
    anyhow::ensure!(
        !(device.is_cpu() && dtype == DType::BF16),
        "--dtype bf16 needs --device cuda: the CPU backend has no bf16 matmul (use f32)"
    );
    Ok(dtype)
}

/// Parses f32/f16/bf16.
pub fn parse_dtype(s: &str) -> anyhow::Result<DType> {
    match s {
        "f32" => Ok(DType::F32),
        "f16" => Ok(DType::F16),
        "bf16" => Ok(DType::BF16),
        other => anyhow::bail!("unknown dtype `{other}`: use f32, f16 or bf16"),
    }
}

/// Reads non-empty lines of a file (for --text-file / --image-list).
pub fn read_lines(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect())
}
