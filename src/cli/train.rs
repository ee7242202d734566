//! `ivt train`: train IVT (MLA + BMM + CMPM) on a text-person dataset.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::{DType, Device};
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::{filter_split, read_dataset, DatasetImage, Split};
use crate::model::{parse_device, weights, IvtConfig, ModelFiles};
use crate::text::PosTagger;
use crate::train::{
    load_resume_point, restore, train, training_samples, OptimConfig, OptimizerKind, Precision,
    TrainConfig, TrainRun, TrainState, Trainer, Validation,
};

/// Arguments of `ivt train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Annotation file (CUHK-PEDES, ICFG-PEDES or RSTPReid; detected). Trains on `train`,
    /// validates on `val` when the file has one.
    #[arg(long, env = "IVT_DATASET")]
    pub dataset: PathBuf,
    /// Root the annotation's image paths are relative to.
    #[arg(long, env = "IVT_IMAGES")]
    pub images: PathBuf,
    /// Output directory: `last/` (with training state), `best/`, `train-log.jsonl`.
    #[arg(long, env = "IVT_TRAIN_OUT")]
    pub out: PathBuf,
    /// Start from this model (an `ivt init` output or an IVT checkpoint) instead of random
    /// initialisation.
    #[arg(long, env = "IVT_INIT")]
    pub init: Option<PathBuf>,
    /// Architecture for random initialisation (config JSON); default: the ivt-base preset.
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Named architecture for random initialisation: ivt-base or ivt-base-s16.
    #[arg(long)]
    pub preset: Option<String>,
    /// Continue from `<out>/last` (weights, optimiser moments, epoch, seed).
    #[arg(long)]
    pub resume: bool,
    /// Total epochs.
    #[arg(long, default_value_t = 120)]
    pub epochs: usize,
    /// Samples per batch; each gives three image/text pairs (authors: 28 = 84 pairs).
    #[arg(long, default_value_t = 28)]
    pub batch_size: usize,
    /// Base learning rate.
    #[arg(long, default_value_t = 0.005)]
    pub lr: f64,
    /// Linear warmup epochs from 0.01 x lr, then cosine down to 0.002 x lr.
    #[arg(long, default_value_t = 5)]
    pub warmup_epochs: usize,
    /// Optimiser: sgd (momentum 0.9, the authors') or adamw.
    #[arg(long, default_value = "sgd")]
    pub optimizer: String,
    /// Weight decay.
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// BMM: largest share of tokens dropped per pass (the paper's best 0.3; 0 disables).
    #[arg(long, default_value_t = 0.3)]
    pub mask_ratio: f32,
    /// Ablation: turn MLA off, pairing all three augmented views with the full sentence.
    #[arg(long)]
    pub no_mla: bool,
    /// Stochastic depth rate at the last block.
    #[arg(long, default_value_t = 0.1)]
    pub drop_path: f32,
    /// Dropout after the embeddings.
    #[arg(long, default_value_t = 0.1)]
    pub embed_dropout: f32,
    /// Clip the global gradient norm to this value.
    #[arg(long)]
    pub clip_grad: Option<f64>,
    /// Validate every this many epochs (0 = never).
    #[arg(long, default_value_t = 5)]
    pub eval_every: usize,
    /// Decoding/augmentation threads feeding the model.
    #[arg(long, env = "IVT_WORKERS", default_value_t = 4)]
    pub workers: usize,
    /// Seed of data order, augmentation and BMM.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, env = "IVT_DEVICE", default_value = "cpu")]
    pub device: String,
    /// Matrix-product precision (autocast over f32 weights): f32, bf16 (CUDA) or f16 (with
    /// dynamic loss scaling).
    #[arg(long, env = "IVT_PRECISION", default_value = "f32")]
    pub precision: Precision,
}

impl TrainArgs {
    fn train_config(&self) -> anyhow::Result<TrainConfig> {
        let kind = match self.optimizer.as_str() {
            "sgd" => OptimizerKind::Sgd,
            "adamw" => OptimizerKind::Adamw,
            other => anyhow::bail!("unknown optimizer `{other}`: use sgd or adamw"),
        };
        anyhow::ensure!(self.batch_size >= 2, "--batch-size must be at least 2");
        anyhow::ensure!(self.epochs >= 1, "--epochs must be at least 1");
        Ok(TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            warmup_epochs: self.warmup_epochs,
            optim: OptimConfig {
                kind,
                weight_decay: self.weight_decay,
                ..OptimConfig::default()
            },
            mask_ratio: self.mask_ratio,
            drop_path: self.drop_path,
            embed_dropout: self.embed_dropout,
            clip_grad: self.clip_grad,
            eval_every: self.eval_every,
            workers: self.workers.max(1),
            seed: self.seed,
            mla: !self.no_mla,
            precision: self.precision,
        })
    }

    fn architecture(&self) -> anyhow::Result<IvtConfig> {
        match (&self.config, &self.preset) {
            (Some(p), _) => Ok(weights::read_config_file(p)?),
            (None, Some(name)) => super::common::preset(name),
            (None, None) => Ok(IvtConfig::ivt_base()),
        }
    }
}

/// Runs `ivt train`: one JSON line per epoch on stdout, progress on stderr.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let config = args.train_config()?;
    let device = parse_device(&args.device)?;
    let all = read_dataset(&args.dataset)?;
    let train_images = filter_split(&all, Split::Train);
    anyhow::ensure!(
        !train_images.is_empty(),
        "{} has no train images",
        args.dataset.display()
    );
    let val_images = filter_split(&all, Split::Val);
    let (mut trainer, model_config, state) = build_trainer(&args, &config, &device)?;
    tracing::info!(?config, images = train_images.len(), "training");
    let run = TrainRun {
        images: train_images
            .iter()
            .map(|i| args.images.join(&i.path))
            .collect(),
        samples: training_samples(&train_images, PosTagger::builtin()),
        validation: validation(val_images, &args.images),
        out: args.out.clone(),
    };
    let progress = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} {msg} eta {eta}")
            .context("progress template")?,
    );
    let mut stdout = std::io::stdout();
    let mut on_epoch = |log: &crate::train::EpochLog| {
        let line = serde_json::to_string(log).unwrap_or_default();
        progress.println(format!("epoch {} loss {:.4}", log.epoch, log.loss));
        writeln!(stdout, "{line}").is_ok()
    };
    train(
        &mut trainer,
        &model_config,
        &config,
        run,
        state,
        &progress,
        &mut on_epoch,
    )?;
    progress.finish_and_clear();
    Ok(())
}

fn validation(images: Vec<DatasetImage>, root: &Path) -> Option<Validation> {
    (!images.is_empty()).then(|| Validation {
        images,
        root: root.to_path_buf(),
    })
}

/// The trainer from `--resume`, `--init` or random initialisation.
fn build_trainer(
    args: &TrainArgs,
    config: &TrainConfig,
    device: &Device,
) -> anyhow::Result<(Trainer, IvtConfig, TrainState)> {
    if args.resume {
        let dir = args.out.join("last");
        let point = load_resume_point(&dir, device)
            .with_context(|| format!("--resume: cannot read {}", dir.display()))?;
        let mut trainer =
            Trainer::new(&point.config, point.weights.clone(), config.clone(), device)?;
        let state = restore(&mut trainer, &point)?;
        tracing::info!(epoch = state.epoch, step = state.step, "resuming");
        return Ok((trainer, point.config, state));
    }
    let (model_config, tensors) = match &args.init {
        Some(path) => {
            let files = ModelFiles::resolve(path, None)?;
            let raw = weights::read_checkpoint(&files.weights)?;
            let tensors = weights::select_tensors(raw, &files.config, DType::F32, device)?;
            (files.config, tensors)
        }
        None => {
            let cfg = args.architecture()?;
            let tensors = weights::random_tensors(&cfg, DType::F32, device, args.seed)?;
            (cfg, tensors)
        }
    };
    let trainer = Trainer::new(&model_config, tensors, config.clone(), device)?;
    let state = TrainState {
        epoch: 0,
        step: 0,
        seed: config.seed,
        best_score: None,
    };
    Ok((trainer, model_config, state))
}
