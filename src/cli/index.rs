//! `ivt index`: build, inspect and change gallery indexes.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::common::ModelArgs;
use crate::data::gallery::{GalleryItem, GallerySource};
use crate::data::Split;
use crate::index::pipeline::{encode_into, PipelineOptions, PipelineStats};
use crate::index::{GalleryIndex, HnswParams, VectorStorage};

/// Index subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum IndexCommand {
    /// Encode a gallery into a new index (atomically replacing any index at --out).
    Build(BuildArgs),
    /// Print an index's manifest (format, model fingerprint, counts, HNSW parameters).
    Info(InfoArgs),
    /// Encode more images into an existing index.
    Add(AddArgs),
    /// Remove images by image id or person id (tombstones until `compact`).
    Remove(RemoveArgs),
    /// Rewrite the index without removed images and rebuild its graph.
    Compact(InfoArgs),
}

/// Where the gallery comes from and how to encode it.
#[derive(Debug, Clone, clap::Args)]
pub struct GalleryArgs {
    /// Gallery: a .csv/.jsonl manifest, a folder of person folders, a folder of Market-1501
    /// images, or a CUHK-PEDES/ICFG-PEDES/RSTPReid annotation .json (with --split).
    #[arg(long, env = "IVT_GALLERY")]
    pub gallery: PathBuf,
    /// Dataset split to index when --gallery is a dataset annotation file.
    #[arg(long)]
    pub split: Option<Split>,
    /// Folder a dataset annotation's image paths are relative to (default: imgs/ beside it).
    #[arg(long)]
    pub images_root: Option<PathBuf>,
    /// Images per encoder pass: larger is faster per image and uses more memory.
    #[arg(long, env = "IVT_BATCH_SIZE", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_size: u32,
    /// Threads decoding and preprocessing images ahead of the encoder (default: all cores).
    #[arg(long, env = "IVT_THREADS")]
    pub threads: Option<usize>,
    /// Log and skip unreadable images instead of stopping at the first one.
    #[arg(long)]
    pub skip_bad: bool,
}

impl GalleryArgs {
    fn items(&self) -> anyhow::Result<(GallerySource, Vec<GalleryItem>)> {
        let source = GallerySource::detect(&self.gallery, self.split, self.images_root.as_deref())?;
        let items = source.read()?;
        tracing::info!(source = %source.path().display(), kind = source.kind(),
            images = items.len(), "gallery read");
        Ok((source, items))
    }

    fn pipeline(&self) -> PipelineOptions {
        let defaults = PipelineOptions::default();
        PipelineOptions {
            batch_size: self.batch_size as usize,
            threads: self.threads.unwrap_or(defaults.threads),
            skip_bad: self.skip_bad,
            limits: defaults.limits,
        }
    }
}

/// Arguments of `ivt index build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub gallery: GalleryArgs,
    /// Index directory to write (an index already there keeps serving until the build ends).
    #[arg(long, env = "IVT_INDEX")]
    pub out: PathBuf,
    /// Continue an interrupted build of --out instead of starting again.
    #[arg(long)]
    pub resume: bool,
    /// Store embeddings as f16 (half the disk; cosine error below 1e-3).
    #[arg(long)]
    pub f16: bool,
    /// HNSW neighbours per node (M): more is more accurate, bigger and slower to build.
    #[arg(long, default_value_t = HnswParams::default().max_nb_connection)]
    pub hnsw_m: usize,
    /// HNSW candidate list while building.
    #[arg(long, default_value_t = HnswParams::default().ef_construction)]
    pub ef_construction: usize,
    /// Default HNSW candidate list while searching (queries can override it).
    #[arg(long, default_value_t = HnswParams::default().ef_search)]
    pub ef_search: usize,
}

/// Arguments naming an index only.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Index directory.
    #[arg(long, env = "IVT_INDEX")]
    pub index: PathBuf,
}

/// Arguments of `ivt index add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub gallery: GalleryArgs,
    /// Index directory.
    #[arg(long, env = "IVT_INDEX")]
    pub index: PathBuf,
    /// Skip images whose id is already in the index instead of failing.
    #[arg(long)]
    pub skip_existing: bool,
}

/// Arguments of `ivt index remove`.
#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// Index directory.
    #[arg(long, env = "IVT_INDEX")]
    pub index: PathBuf,
    /// Image id to remove (repeatable).
    #[arg(long = "image-id")]
    pub image_ids: Vec<String>,
    /// Person id whose images to remove (repeatable).
    #[arg(long = "person-id")]
    pub person_ids: Vec<String>,
}

/// Runs an index subcommand.
pub fn run(cmd: IndexCommand) -> anyhow::Result<()> {
    match cmd {
        IndexCommand::Build(args) => build(args),
        IndexCommand::Info(args) => info(&args.index),
        IndexCommand::Add(args) => add(args),
        IndexCommand::Remove(args) => remove(args),
        IndexCommand::Compact(args) => compact(&args.index),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    let (_, mut items) = args.gallery.items()?;
    let (encoder, files) = args.model.load()?;
    let fingerprint = files.fingerprint()?;
    let mut index = match args.resume {
        true => GalleryIndex::resume_build(&args.out, &fingerprint)?,
        false => None,
    };
    if index.is_some() {
        let before = items.len();
        items.retain(|item| {
            index
                .as_ref()
                .is_some_and(|i| !i.contains(&item.record.image_id))
        });
        tracing::info!(
            done = before - items.len(),
            left = items.len(),
            "resuming build"
        );
    } else {
        if args.resume {
            tracing::warn!(out = %args.out.display(), "no interrupted build to resume; starting");
        }
        let stale = GalleryIndex::discard_pending_builds(&args.out)?;
        if stale > 0 {
            tracing::info!(
                stale,
                "removed interrupted builds (use --resume to continue one)"
            );
        }
        let params = HnswParams {
            max_nb_connection: args.hnsw_m,
            ef_construction: args.ef_construction,
            ef_search: args.ef_search,
            ..HnswParams::default()
        };
        let storage = if args.f16 {
            VectorStorage::F16
        } else {
            VectorStorage::F32
        };
        index = Some(GalleryIndex::begin_build(
            &args.out,
            &fingerprint,
            encoder.dim(),
            params,
            storage,
        )?);
    }
    let mut index = index.context("an index to build into")?;
    let stats = encode_with_progress(&mut index, &encoder, items, &args.gallery)?;
    tracing::info!("building the HNSW graph and publishing the index");
    index.publish()?;
    report(&index, &stats)
}

fn encode_with_progress(
    index: &mut GalleryIndex,
    encoder: &crate::model::Encoder,
    items: Vec<GalleryItem>,
    gallery: &GalleryArgs,
) -> anyhow::Result<PipelineStats> {
    let bar = ProgressBar::with_draw_target(Some(items.len() as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} images {per_sec} ETA {eta}",
        )
        .context("progress template")?
        .progress_chars("=> "),
    );
    let stats = encode_into(index, encoder, items, &gallery.pipeline(), &mut |n| {
        bar.inc(n as u64)
    })?;
    bar.finish_and_clear();
    Ok(stats)
}

/// Prints a JSON summary of a build or an add.
fn report(index: &GalleryIndex, stats: &PipelineStats) -> anyhow::Result<()> {
    let per_s = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let summary = serde_json::json!({
        "index": index.path(),
        "count": index.len(),
        "encoded": stats.encoded,
        "skipped": stats.skipped.iter().map(|(p, e)| serde_json::json!({"path": p, "error": e})).collect::<Vec<_>>(),
        "seconds": stats.seconds,
        "images_per_second": per_s(stats.encoded, stats.seconds),
        "encoder_images_per_second": per_s(stats.encoded, stats.encoder_seconds),
        "manifest": index.manifest(),
    });
    println!("{summary}");
    Ok(())
}

fn info(dir: &Path) -> anyhow::Result<()> {
    let manifest = GalleryIndex::read_manifest(dir)?;
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(())
}

fn add(args: AddArgs) -> anyhow::Result<()> {
    let (_, mut items) = args.gallery.items()?;
    let (encoder, files) = args.model.load()?;
    let mut index = GalleryIndex::open(&args.index, &files.fingerprint()?)?;
    if args.skip_existing {
        items.retain(|item| !index.contains(&item.record.image_id));
    } else if let Some(dup) = items.iter().find(|i| index.contains(&i.record.image_id)) {
        anyhow::bail!(
            "image id `{}` is already in the index (use --skip-existing)",
            dup.record.image_id
        );
    }
    let stats = encode_with_progress(&mut index, &encoder, items, &args.gallery)?;
    // Re-inserting many undumped points at every open would slow loading down: dump the graph.
    if index.graph_pending() * 10 > index.manifest().slots {
        index.save_graph()?;
    }
    report(&index, &stats)
}

fn remove(args: RemoveArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.image_ids.is_empty() || !args.person_ids.is_empty(),
        "nothing to remove: give --image-id or --person-id"
    );
    let mut index = GalleryIndex::open_any(&args.index)?;
    let images = index.remove_images(&args.image_ids)?;
    let persons = index.remove_persons(&args.person_ids)?;
    let summary = serde_json::json!({
        "removed": images + persons,
        "count": index.len(),
        "removed_pending_compaction": index.manifest().removed,
    });
    println!("{summary}");
    Ok(())
}

fn compact(dir: &Path) -> anyhow::Result<()> {
    let index = GalleryIndex::open_any(dir)?;
    let compacted = index.compact()?;
    println!("{}", serde_json::to_string(compacted.manifest())?);
    Ok(())
}
