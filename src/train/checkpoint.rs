//! Checkpoints: a model directory (`model.safetensors` + `config.json`, loadable by `ivt encode`
//! and `ivt serve`) plus, for `--resume`, the training state (`state.safetensors` with the
//! optimiser moments, `state.json` with epoch, step, seed and best score). Directories are
//! written under a temporary name, synced and renamed into place, so a crash never leaves a
//! half-written checkpoint.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::TrainError;
use crate::model::IvtConfig;

/// Progress of a run, saved with every checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser updates done.
    pub step: u64,
    /// Run seed (data order, augmentation, BMM).
    pub seed: u64,
    /// Best validation score so far, `(R1 + mAP) / 2`.
    pub best_score: Option<f64>,
}

/// The files of a checkpoint directory.
pub const MODEL_FILE: &str = "model.safetensors";
/// Model architecture file.
pub const CONFIG_FILE: &str = "config.json";
/// Optimiser tensors.
pub const OPTIMIZER_FILE: &str = "state.safetensors";
/// Training progress.
pub const STATE_FILE: &str = "state.json";

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a checkpoint directory at `dir` atomically (replacing an existing one).
pub fn save_checkpoint(
    dir: &Path,
    config: &IvtConfig,
    weights: &HashMap<String, Tensor>,
    optimizer: Option<(&HashMap<String, Tensor>, &TrainState)>,
) -> Result<(), TrainError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    let name = dir
        .file_name()
        .map_or("checkpoint".into(), |n| n.to_string_lossy().into_owned());
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    candle_core::safetensors::save(weights, tmp.join(MODEL_FILE))?;
    write_json(&tmp.join(CONFIG_FILE), config)?;
    if let Some((tensors, state)) = optimizer {
        candle_core::safetensors::save(tensors, tmp.join(OPTIMIZER_FILE))?;
        write_json(&tmp.join(STATE_FILE), state)?;
    }
    for entry in std::fs::read_dir(&tmp).map_err(io_err(&tmp))? {
        let path = entry.map_err(io_err(&tmp))?.path();
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(io_err(&path))?;
    }
    replace_dir(&tmp, dir)?;
    sync_dir(parent)
}

/// Moves `tmp` to `dir`, removing a previous `dir` only once the new one is in place.
fn replace_dir(tmp: &Path, dir: &Path) -> Result<(), TrainError> {
    let old: Option<PathBuf> = dir.exists().then(|| dir.with_extension("old"));
    if let Some(old) = &old {
        if old.exists() {
            std::fs::remove_dir_all(old).map_err(io_err(old))?;
        }
        std::fs::rename(dir, old).map_err(io_err(dir))?;
    }
    std::fs::rename(tmp, dir).map_err(io_err(dir))?;
    if let Some(old) = &old {
        std::fs::remove_dir_all(old).map_err(io_err(old))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), TrainError> {
    // Directory fsync makes the renames durable; not every platform supports it.
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
    Ok(())
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| TrainError::State {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    std::fs::write(path, text + "\n").map_err(io_err(path))
}

/// A checkpoint read back for `--resume`.
#[derive(Debug)]
pub struct ResumePoint {
    /// Model architecture.
    pub config: IvtConfig,
    /// Model weights.
    pub weights: HashMap<String, Tensor>,
    /// Optimiser tensors.
    pub optimizer: HashMap<String, Tensor>,
    /// Progress.
    pub state: TrainState,
}

/// Reads a checkpoint directory written with training state.
pub fn load_resume_point(dir: &Path, device: &Device) -> Result<ResumePoint, TrainError> {
    let read_json = |name: &str| -> Result<String, TrainError> {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(io_err(&path))
    };
    let bad = |name: &str, e: serde_json::Error| TrainError::State {
        path: dir.join(name),
        message: e.to_string(),
    };
    let config = serde_json::from_str(&read_json(CONFIG_FILE)?).map_err(|e| bad(CONFIG_FILE, e))?;
    let state = serde_json::from_str(&read_json(STATE_FILE)?).map_err(|e| bad(STATE_FILE, e))?;
    Ok(ResumePoint {
        config,
        weights: candle_core::safetensors::load(dir.join(MODEL_FILE), device)?,
        optimizer: candle_core::safetensors::load(dir.join(OPTIMIZER_FILE), device)?,
        state,
    })
}
