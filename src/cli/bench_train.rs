//! `ivt bench train`: training speed of one architecture on one device, on a synthetic dataset
//! generated for the run. Two measurements:
//! - the model alone, on one batch held in memory: forward (loss) and forward + backward +
//!   update per step, and image/text pairs per second;
//! - the full pipeline, with worker threads decoding and augmenting: pairs per second and the
//!   share of the time the model waited for data.

use std::time::{Duration, Instant};

use anyhow::Context;
use candle_core::{DType, Device};
use indicatif::ProgressBar;

use crate::data::synth::{SynthDataset, SynthOptions};
use crate::data::{filter_split, read_dataset, Split};
use crate::model::{demo_model_dir, parse_device, weights, IvtConfig};
use crate::text::PosTagger;
use crate::train::{
    training_samples, EpochLoader, LoaderConfig, MlaBatch, Precision, TrainConfig, Trainer,
};

/// Arguments of `ivt bench train`.
#[derive(Debug, clap::Args)]
pub struct TrainBenchArgs {
    /// Architecture: ivt-base, ivt-base-s16, or demo (the shipped demo model's).
    #[arg(long, default_value = "ivt-base", conflicts_with = "config")]
    pub preset: String,
    /// Architecture from a config JSON (or a model directory holding one).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Matrix-product precision: f32, bf16 (CUDA) or f16.
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
    /// Samples per batch; each gives three image/text pairs (authors: 28).
    #[arg(long, default_value_t = 28)]
    pub batch_size: usize,
    /// Timed steps of each measurement (after the warm-up steps).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed steps first (allocations, kernel compilation).
    #[arg(long, default_value_t = 1)]
    pub warmup_steps: usize,
    /// Decoding/augmentation threads of the pipeline measurement.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Identities of the synthetic dataset (4 images each).
    #[arg(long, default_value_t = 64)]
    pub identities: usize,
    /// BMM ratio used in the steps (as training).
    #[arg(long, default_value_t = 0.3)]
    pub mask_ratio: f32,
    /// Seed of the data and the weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl TrainBenchArgs {
    fn architecture(&self) -> anyhow::Result<IvtConfig> {
        if let Some(path) = &self.config {
            let file = if path.is_dir() {
                path.join("config.json")
            } else {
                path.clone()
            };
            return Ok(weights::read_config_file(&file)?);
        }
        if self.preset == "demo" {
            return Ok(weights::read_config_file(
                &demo_model_dir()?.join("config.json"),
            )?);
        }
        super::common::preset(&self.preset)
    }
}

/// Runs `ivt bench train`: one JSON object on stdout, a summary on stderr.
pub fn run(args: TrainBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch_size >= 2, "--batch-size must be at least 2");
    anyhow::ensure!(args.steps >= 1, "--steps must be at least 1");
    let cfg = args.architecture()?;
    let device = parse_device(&args.device)?;
    let dir = tempfile::tempdir().context("temporary dataset directory")?;
    let loader = synthetic_loader(&args, &cfg, dir.path())?;
    let mut trainer = new_trainer(&args, &cfg, &device)?;
    let lr = 1e-4;

    let batch = EpochLoader::start(&loader, 0)
        .next()
        .context("the synthetic dataset gave no batch")??;
    let pairs = batch.labels.len();
    let (forward, step) = time_model(&mut trainer, &batch, &args, &device, lr)?;
    let model_pairs_per_s = pairs as f64 / step.as_secs_f64();
    eprintln!(
        "model: forward {:.1} ms, forward+backward+update {:.1} ms per step of {pairs} pairs \
         -> {model_pairs_per_s:.1} pairs/s",
        ms(forward),
        ms(step)
    );

    let (pipeline_pairs_per_s, wait_share, pipeline_steps) =
        pipeline(&mut trainer, &loader, args.steps + args.warmup_steps, lr)?;
    eprintln!(
        "pipeline ({} workers): {pipeline_pairs_per_s:.1} pairs/s, model waited for data {:.1}% \
         of the time",
        loader.workers,
        100.0 * wait_share
    );
    let report = serde_json::json!({
        "bench": "train",
        "architecture": cfg,
        "preset": args.config.as_ref().map_or(args.preset.clone(), |p| p.display().to_string()),
        "device": args.device,
        "precision": args.precision.to_string(),
        "threads": rayon::current_num_threads(),
        "batch_size": args.batch_size,
        "pairs_per_step": pairs,
        "mask_ratio": args.mask_ratio,
        "forward_ms": ms(forward),
        "step_ms": ms(step),
        "pairs_per_s": model_pairs_per_s,
        "skipped_steps": trainer.skipped_steps(),
        "pipeline": {
            "workers": loader.workers,
            "steps": pipeline_steps,
            "pairs_per_s": pipeline_pairs_per_s,
            "data_wait_share": wait_share,
        },
    });
    println!("{report}");
    Ok(())
}

/// A trainer of `cfg` from random weights, with the flags' batch size, masking, workers, seed
/// and precision.
fn new_trainer(args: &TrainBenchArgs, cfg: &IvtConfig, device: &Device) -> anyhow::Result<Trainer> {
    let config = TrainConfig {
        batch_size: args.batch_size,
        mask_ratio: args.mask_ratio,
        workers: args.workers.max(1),
        seed: args.seed,
        precision: args.precision,
        ..TrainConfig::default()
    };
    let init = weights::random_tensors(cfg, DType::F32, device, args.seed)?;
    Ok(Trainer::new(cfg, init, config, device)?)
}

/// Mean times of a forward pass (loss only) and of a whole step on one fixed `batch`, after
/// `--warmup-steps` untimed steps: the model's speed without the data pipeline.
fn time_model(
    trainer: &mut Trainer,
    batch: &MlaBatch,
    args: &TrainBenchArgs,
    device: &Device,
    lr: f64,
) -> anyhow::Result<(Duration, Duration)> {
    for _ in 0..args.warmup_steps {
        trainer.step(batch, lr)?;
    }
    device.synchronize()?;
    let forward = time_steps(args.steps, device, || {
        let loss = trainer.loss(batch)?;
        loss.to_scalar::<f32>()?;
        Ok(())
    })?;
    let step = time_steps(args.steps, device, || {
        trainer.step(batch, lr)?;
        Ok(())
    })?;
    Ok((forward, step))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Mean wall time of `f` over `steps` calls, the device drained at both ends.
fn time_steps(
    steps: usize,
    device: &Device,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Duration> {
    device.synchronize()?;
    let start = Instant::now();
    for _ in 0..steps {
        f()?;
    }
    device.synchronize()?;
    Ok(start.elapsed() / steps as u32)
}

/// Writes a synthetic training split at the model's image size and returns its loader settings.
fn synthetic_loader(
    args: &TrainBenchArgs,
    cfg: &IvtConfig,
    dir: &std::path::Path,
) -> anyhow::Result<LoaderConfig> {
    let mut options = SynthOptions::new(args.identities.max(2), 4, args.seed);
    options.size = (cfg.image_size[0] as u32, cfg.image_size[1] as u32);
    options.val_identities = 0;
    options.test_identities = 0;
    let dataset = SynthDataset::plan(&options)?;
    dataset.write(dir, &[Split::Train], &ProgressBar::hidden())?;
    let images = filter_split(&read_dataset(&dir.join("reid_raw.json"))?, Split::Train);
    let samples = training_samples(&images, PosTagger::builtin());
    anyhow::ensure!(
        samples.len() >= args.batch_size,
        "{} synthetic samples are fewer than one batch of {}: raise --identities",
        samples.len(),
        args.batch_size
    );
    Ok(LoaderConfig {
        images: std::sync::Arc::new(
            images
                .iter()
                .map(|i| dir.join("imgs").join(&i.path))
                .collect(),
        ),
        samples: std::sync::Arc::new(samples),
        model: cfg.clone(),
        augment: TrainConfig::default().augment(),
        batch_size: args.batch_size,
        workers: args.workers.max(1),
        seed: args.seed,
        mla: true,
    })
}

/// Training steps fed by the worker pipeline: pairs/s and the share of time spent waiting.
fn pipeline(
    trainer: &mut Trainer,
    loader: &LoaderConfig,
    steps: usize,
    lr: f64,
) -> anyhow::Result<(f64, f64, usize)> {
    let (mut waited, mut pairs, mut done) = (Duration::ZERO, 0usize, 0usize);
    let mut start = Instant::now();
    let mut epoch = 1;
    'epochs: loop {
        let mut batches = EpochLoader::start(loader, epoch);
        loop {
            let asked = Instant::now();
            let Some(batch) = batches.next() else { break };
            waited += asked.elapsed();
            let batch: MlaBatch = batch?;
            if done == 0 {
                // Steady state: the workers' start-up before the first batch is not counted.
                start = Instant::now();
                waited = Duration::ZERO;
            }
            trainer.step(&batch, lr)?;
            pairs += batch.labels.len();
            done += 1;
            if done >= steps {
                break 'epochs;
            }
        }
        epoch += 1;
    }
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    Ok((pairs as f64 / seconds, waited.as_secs_f64() / seconds, done))
}
