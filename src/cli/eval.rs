//! `ivt eval`: text-to-image retrieval metrics of a model on a dataset split.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::common::{BackendArgs, BackendKind, ModelArgs};
use crate::data::{filter_split, read_dataset, Split};
use crate::eval::{evaluate_dataset, evaluate_index, EvalOptions, IndexSearch};

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
    /// Not needed with --index or the Milvus backend, which hold the gallery's embeddings.
    #[arg(long, env = "IVT_IMAGES")]
    pub images: Option<PathBuf>,
    /// Split to evaluate: train, val or test.
    #[arg(long, default_value = "test")]
    pub split: Split,
    /// Evaluate through a built HNSW gallery index (built from this split with this model, e.g.
    /// `ivt index build --gallery <annotation> --split test`) instead of exact search, to
    /// measure what the approximation costs. Each caption searches --depth images; positives
    /// ranked deeper count as not found.
    /// With `--gallery-backend milvus`, the Milvus collection is evaluated the same way.
    #[arg(long)]
    pub index: Option<PathBuf>,
    /// Gallery backend of --index.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Images retrieved per query with --index or Milvus.
    #[arg(long, default_value_t = 100)]
    pub depth: usize,
    /// HNSW candidate list with --index or Milvus (default: the index's, raised to --depth).
    #[arg(long)]
    pub ef: Option<usize>,
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
    let all = read_dataset(&args.dataset)?;
    let images = filter_split(&all, args.split);
    anyhow::ensure!(
        !images.is_empty(),
        "{} has no {} images",
        args.dataset.display(),
        args.split
    );
    let (encoder, files) = args.model.load()?;
    tracing::info!(images = images.len(), split = %args.split, "evaluating");
    let progress = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images+captions {per_sec} eta {eta}")
            .context("progress template")?,
    );
    let options = EvalOptions {
        batch_size: args.batch_size as usize,
        max_rank: args.max_rank as usize,
    };
    let through_index = args.index.is_some() || args.backend.gallery_backend == BackendKind::Milvus;
    let report = match through_index {
        true => {
            let gallery =
                args.backend
                    .open(args.index.as_deref(), &files.fingerprint()?, encoder.dim())?;
            let search = IndexSearch {
                depth: args.depth,
                ef: args.ef,
            };
            evaluate_index(
                &encoder,
                gallery.as_ref(),
                &images,
                args.split,
                &options,
                search,
                &progress,
            )?
        }
        false => evaluate_dataset(
            &encoder,
            &images,
            args.images
                .as_deref()
                .context("--images is required without --index or the Milvus backend")?,
            args.split,
            &options,
            &progress,
        )?,
    };
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
