//! `ivt eval`: text-to-image retrieval metrics of a model on a dataset split.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::common::ModelArgs;
use crate::data::{filter_split, read_dataset, Split};
use crate::eval::{evaluate_dataset, EvalOptions};

/// Arguments of `ivt eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Annotation file: CUHK-PEDES `reid_raw.json`, ICFG-PEDES `ICFG-PEDES.json` or RSTPReid
    /// `data_captions.json` (the format is detected).
    #[arg(long, env = "IVT_DATASET")]
    pub dataset: PathBuf,
    /// Root the annotation's image paths are relative to (CUHK-PEDES: its `imgs/` folder).
    #[arg(long, env = "IVT_IMAGES")]
    pub images: PathBuf,
    /// Split to evaluate: train, val or test.
    #[arg(long, default_value = "test")]
    pub split: Split,
    /// Evaluate through a built HNSW gallery index instead of exact search, to measure what the
    /// approximation costs.
    #[arg(long)]
    pub index: Option<PathBuf>,
    /// Also write the JSON result to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Images or captions per forward pass: larger is faster and uses more memory.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_size: u32,
    /// Length of the CMC curve reported (R@1 … R@max-rank).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(10..=1000))]
    pub max_rank: u32,
}

/// Runs `ivt eval`: one JSON object on stdout (and in `--out`), progress on stderr.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    if args.index.is_some() {
        // Not yet: mAP and mINP need the rank of every positive, which a top-k HNSW search does
        // not give; the evaluation through `GalleryIndex::search_images` must define how
        // positives beyond the searched depth count before it can be reported honestly.
        anyhow::bail!(
            "--index is not implemented yet: run without it for exact search (the reference)"
        );
    }
    let all = read_dataset(&args.dataset)?;
    let images = filter_split(&all, args.split);
    anyhow::ensure!(
        !images.is_empty(),
        "{} has no {} images",
        args.dataset.display(),
        args.split
    );
    let (encoder, _) = args.model.load()?;
    tracing::info!(images = images.len(), split = %args.split, "evaluating");
    let progress = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images+captions {per_sec} eta {eta}")
            .context("progress template")?,
    );
    let options = EvalOptions {
        batch_size: args.batch_size as usize,
        max_rank: args.max_rank as usize,
    };
    let report = evaluate_dataset(
        &encoder,
        &images,
        &args.images,
        args.split,
        &options,
        &progress,
    )?;
    progress.finish_and_clear();
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.out {
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{json}")?;
    Ok(())
}
