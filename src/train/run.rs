//! The training loop: epochs of worker-fed MLA batches, the learning-rate schedule, periodic
//! validation, checkpoints (`last/` with training state, `best/` by `(R1 + mAP) / 2`) and a
//! JSON-lines log of every epoch.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use super::checkpoint::{save_checkpoint, ResumePoint, TrainState};
use super::loader::{EpochLoader, LoaderConfig};
use super::mla::TrainSample;
use super::optim::LrSchedule;
use super::trainer::{TrainConfig, Trainer};
use super::TrainError;
use crate::data::{DatasetImage, Split};
use crate::eval::{evaluate_dataset, EvalOptions};
use crate::model::IvtConfig;

/// Name of the per-epoch log in the output directory.
pub const LOG_FILE: &str = "train-log.jsonl";

/// Validation data: images of the validation split and their root.
#[derive(Debug, Clone)]
pub struct Validation {
    /// Images (with captions) of the split.
    pub images: Vec<DatasetImage>,
    /// Root their paths are relative to.
    pub root: PathBuf,
}

/// Everything a run needs besides the network.
pub struct TrainRun {
    /// Image files of the training split, indexed by [`TrainSample::image`].
    pub images: Vec<PathBuf>,
    /// Training samples.
    pub samples: Vec<TrainSample>,
    /// Validation data, if any.
    pub validation: Option<Validation>,
    /// Output directory (`last/`, `best/`, the log).
    pub out: PathBuf,
}

/// Metrics of one epoch, one JSON line in the log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean loss over the epoch's batches.
    pub loss: f64,
    /// Optimiser updates so far.
    pub step: u64,
    /// Image/text pairs per second of the epoch.
    pub pairs_per_s: f64,
    /// Share of the epoch the model waited for data.
    pub data_wait_share: f64,
    /// Seconds of the epoch (training only).
    pub seconds: f64,
    /// Validation R@1, if evaluated.
    pub val_r1: Option<f64>,
    /// Validation mAP, if evaluated.
    pub val_map: Option<f64>,
    /// Validation mINP, if evaluated.
    pub val_minp: Option<f64>,
    /// `(R1 + mAP) / 2` on validation, if evaluated.
    pub val_score: Option<f64>,
}

/// Trains `trainer` from `start` (epochs done, steps, seed) to `config.epochs`. `on_epoch` sees
/// every epoch's log and returns false to stop early (the checkpoint is written first).
pub fn train(
    trainer: &mut Trainer,
    model_config: &IvtConfig,
    config: &TrainConfig,
    run: TrainRun,
    mut state: TrainState,
    progress: &ProgressBar,
    on_epoch: &mut dyn FnMut(&EpochLog) -> bool,
) -> Result<TrainState, TrainError> {
    if run.samples.is_empty() {
        return Err(TrainError::Settings("no training samples".into()));
    }
    std::fs::create_dir_all(&run.out).map_err(|source| TrainError::Io {
        path: run.out.clone(),
        source,
    })?;
    let loader_cfg = LoaderConfig {
        images: Arc::new(run.images),
        samples: Arc::new(run.samples),
        model: model_config.clone(),
        augment: config.augment(),
        batch_size: config.batch_size,
        workers: config.workers,
        seed: state.seed,
        mla: config.mla,
    };
    let schedule = LrSchedule {
        lr: config.lr,
        epochs: config.epochs,
        warmup_epochs: config.warmup_epochs,
        warmup_factor: 0.01,
        final_factor: 0.002,
    };
    while state.epoch < config.epochs {
        let mut log = train_epoch(
            trainer,
            &loader_cfg,
            schedule.lr_at(state.epoch),
            state.epoch,
            progress,
        )?;
        state.epoch += 1;
        state.step = trainer.optimizer().steps();
        log.step = state.step;
        let evaluate = config.eval_every > 0
            && (state.epoch.is_multiple_of(config.eval_every) || state.epoch == config.epochs);
        if let (true, Some(val)) = (evaluate, &run.validation) {
            validate(trainer, val, &mut log)?;
        }
        save_epoch(trainer, model_config, &run.out, &mut state, &log)?;
        append_log(&run.out.join(LOG_FILE), &log)?;
        if !on_epoch(&log) {
            break;
        }
    }
    Ok(state)
}

/// One pass over the training set.
fn train_epoch(
    trainer: &mut Trainer,
    loader_cfg: &LoaderConfig,
    lr: f64,
    epoch: usize,
    progress: &ProgressBar,
) -> Result<EpochLog, TrainError> {
    let started = Instant::now();
    let mut loader = EpochLoader::start(loader_cfg, epoch as u64);
    progress.set_length(loader.len() as u64);
    progress.set_position(0);
    progress.set_prefix(format!("epoch {}", epoch + 1));
    let (mut waited, mut loss_sum, mut batches, mut pairs) = (Duration::ZERO, 0f64, 0usize, 0usize);
    loop {
        let wait_start = Instant::now();
        let Some(batch) = loader.next() else { break };
        waited += wait_start.elapsed();
        let batch = batch?;
        let loss = trainer.step(&batch, lr)?;
        loss_sum += f64::from(loss);
        batches += 1;
        pairs += batch.labels.len();
        let rate = pairs as f64 / started.elapsed().as_secs_f64().max(1e-9);
        progress.set_message(format!("loss {loss:.4} lr {lr:.2e} {rate:.1} pairs/s"));
        progress.inc(1);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(EpochLog {
        epoch: epoch + 1,
        lr,
        loss: loss_sum / batches.max(1) as f64,
        step: 0,
        pairs_per_s: pairs as f64 / seconds.max(1e-9),
        data_wait_share: waited.as_secs_f64() / seconds.max(1e-9),
        seconds,
        val_r1: None,
        val_map: None,
        val_minp: None,
        val_score: None,
    })
}

fn validate(trainer: &Trainer, val: &Validation, log: &mut EpochLog) -> Result<(), TrainError> {
    let encoder = trainer.encoder("training");
    let report = evaluate_dataset(
        &encoder,
        &val.images,
        &val.root,
        Split::Val,
        &EvalOptions::default(),
        &ProgressBar::hidden(),
    )?;
    let m = report.metrics;
    log.val_r1 = Some(m.r1);
    log.val_map = Some(m.map);
    log.val_minp = Some(m.minp);
    log.val_score = Some((m.r1 + m.map) / 2.0);
    Ok(())
}

/// Writes `last/` (with training state) and, when validation improved, `best/`.
fn save_epoch(
    trainer: &Trainer,
    model_config: &IvtConfig,
    out: &Path,
    state: &mut TrainState,
    log: &EpochLog,
) -> Result<(), TrainError> {
    let weights = trainer.weights();
    if let Some(score) = log.val_score {
        if state.best_score.is_none_or(|best| score > best) {
            state.best_score = Some(score);
            save_checkpoint(&out.join("best"), model_config, &weights, None)?;
        }
    }
    let optimizer = trainer.optimizer().state_tensors();
    save_checkpoint(
        &out.join("last"),
        model_config,
        &weights,
        Some((&optimizer, state)),
    )
}

fn append_log(path: &Path, log: &EpochLog) -> Result<(), TrainError> {
    let io = |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    };
    let line = serde_json::to_string(log).map_err(|e| TrainError::State {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    writeln!(f, "{line}").map_err(io)
}

/// Restores a trainer's optimiser from a resume point; returns the state to continue from.
pub fn restore(trainer: &mut Trainer, point: &ResumePoint) -> Result<TrainState, TrainError> {
    trainer
        .optimizer_mut()
        .load_state(&point.optimizer, point.state.step)?;
    Ok(point.state.clone())
}
