//! `ivt index`: build, inspect and change gallery indexes.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::common::{BackendArgs, ModelArgs};
use crate::data::Split;
use crate::index::milvus::{MilvusConfig, MilvusGallery};
use crate::index::{
    GalleryBackend, GalleryIndex, HnswParams, ImageRecord, IndexError, VectorStorage,
};
use crate::ingest::pipeline::{encode_into, PipelineOptions, PipelineStats, Sink};
use crate::ingest::sources::{GalleryItem, GallerySource};

/// Index subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum IndexCommand {
    /// Encode a gallery into a new index (atomically replacing any index at --out).
    Build(BuildArgs),
    /// Print an index's manifest (format, model fingerprint, counts, HNSW parameters), or a
    /// Milvus gallery's collection, size, model fingerprint and server version.
    Info(GalleryTarget),
    /// Encode more images into an existing index.
    Add(AddArgs),
    /// Remove images by image id or person id (tombstones until `compact`).
    Remove(RemoveArgs),
    /// Rewrite the index without removed images and rebuild its graph.
    Compact(InfoArgs),
    /// Check every file of an index against the checksums its manifest records (JSON report
    /// on stdout naming each damaged file; exits non-zero when one is damaged).
    Verify(InfoArgs),
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
    /// Not used with the Milvus backend, which builds into --milvus-collection.
    #[arg(long, env = "IVT_INDEX")]
    pub out: Option<PathBuf>,
    /// Gallery backend to build into. Milvus: the collection is dropped and rebuilt (build a
    /// new collection name and switch the service over to keep serving meanwhile).
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Continue an interrupted build instead of starting again.
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

/// Arguments naming a gallery in either backend.
#[derive(Debug, clap::Args)]
pub struct GalleryTarget {
    /// Index directory (embedded backend).
    #[arg(long, env = "IVT_INDEX")]
    pub index: Option<PathBuf>,
    /// Gallery backend.
    #[command(flatten)]
    pub backend: BackendArgs,
}

impl GalleryTarget {
    /// The index directory, required with the embedded backend.
    fn dir(&self) -> anyhow::Result<&Path> {
        self.index
            .as_deref()
            .context("--index is required with the embedded gallery backend")
    }
}

/// Arguments of `ivt index add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub gallery: GalleryArgs,
    #[command(flatten)]
    pub target: GalleryTarget,
    /// Skip images whose id is already in the index instead of failing.
    #[arg(long)]
    pub skip_existing: bool,
}

/// Arguments of `ivt index remove`.
#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub target: GalleryTarget,
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
        IndexCommand::Info(args) => info(&args),
        IndexCommand::Add(args) => add(args),
        IndexCommand::Remove(args) => remove(args),
        IndexCommand::Compact(args) => compact(&args.index),
        IndexCommand::Verify(args) => verify(&args.index),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    let (_, mut items) = args.gallery.items()?;
    let (encoder, files) = args.model.load()?;
    let fingerprint = files.fingerprint()?;
    let params = HnswParams {
        max_nb_connection: args.hnsw_m,
        ef_construction: args.ef_construction,
        ef_search: args.ef_search,
        ..HnswParams::default()
    };
    if let Some(config) = args.backend.milvus(params.clone())? {
        return build_milvus(config, &args, items, &encoder, &fingerprint);
    }
    let out = args
        .out
        .as_deref()
        .context("--out is required with the embedded gallery backend")?;
    let mut index = match args.resume {
        true => GalleryIndex::resume_build(out, &fingerprint)?,
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
            tracing::warn!(out = %out.display(), "no interrupted build to resume; starting");
        }
        let stale = GalleryIndex::discard_pending_builds(out)?;
        if stale > 0 {
            tracing::info!(
                stale,
                "removed interrupted builds (use --resume to continue one)"
            );
        }
        let storage = if args.f16 {
            VectorStorage::F16
        } else {
            VectorStorage::F32
        };
        index = Some(GalleryIndex::begin_build(
            out,
            &fingerprint,
            encoder.dim(),
            params,
            storage,
        )?);
    }
    let mut index = index.context("an index to build into")?;
    let stats = encode_with_progress(&mut |b| index.add(b), &encoder, items, &args.gallery)?;
    tracing::info!("building the HNSW graph and publishing the index");
    index.publish()?;
    report(
        &index.path().display().to_string(),
        index.len(),
        &stats,
        serde_json::json!({
            "manifest": index.manifest()
        }),
    )
}

/// Builds the gallery into a Milvus collection: recreated, or continued with --resume.
fn build_milvus(
    config: MilvusConfig,
    args: &BuildArgs,
    mut items: Vec<GalleryItem>,
    encoder: &crate::model::Encoder,
    fingerprint: &str,
) -> anyhow::Result<()> {
    let batch = config.insert_batch;
    let gallery = if args.resume {
        let gallery = MilvusGallery::open_or_create(config, fingerprint, encoder.dim())?;
        let ids: Vec<String> = items.iter().map(|i| i.record.image_id.clone()).collect();
        let done = gallery.existing_ids(&ids)?;
        items.retain(|i| !done.contains(&i.record.image_id));
        tracing::info!(done = done.len(), left = items.len(), "resuming build");
        gallery
    } else {
        MilvusGallery::recreate(config, fingerprint, encoder.dim())?
    };
    // Encoder batches are small; Milvus prefers large inserts.
    let mut pending: Vec<(ImageRecord, Vec<f32>)> = Vec::new();
    let mut sink = |b: Vec<(ImageRecord, Vec<f32>)>| -> Result<(), IndexError> {
        pending.extend(b);
        if pending.len() >= batch {
            gallery.add(std::mem::take(&mut pending))?;
        }
        Ok(())
    };
    let stats = encode_with_progress(&mut sink, encoder, items, &args.gallery)?;
    gallery.add(pending)?;
    tracing::info!("flushing the collection");
    gallery.persist()?;
    report(
        &gallery.location(),
        gallery.len(),
        &stats,
        serde_json::json!({
            "milvus_version": gallery.server_version().ok(),
        }),
    )
}
fn encode_with_progress(
    index: &mut Sink<'_>,
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

/// Prints a JSON summary of a build or an add: `details` is merged in.
fn report(
    location: &str,
    count: usize,
    stats: &PipelineStats,
    details: serde_json::Value,
) -> anyhow::Result<()> {
    let per_s = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let mut summary = serde_json::json!({
        "index": location,
        "count": count,
        "encoded": stats.encoded,
        "skipped": stats.skipped.iter().map(|(p, e)| serde_json::json!({"path": p, "error": e})).collect::<Vec<_>>(),
        "seconds": stats.seconds,
        "images_per_second": per_s(stats.encoded, stats.seconds),
        "encoder_images_per_second": per_s(stats.encoded, stats.encoder_seconds),
    });
    if let (Some(s), Some(d)) = (summary.as_object_mut(), details.as_object()) {
        s.extend(d.clone());
    }
    println!("{summary}");
    Ok(())
}

fn info(target: &GalleryTarget) -> anyhow::Result<()> {
    if let Some(config) = target.backend.milvus(HnswParams::default())? {
        let gallery = MilvusGallery::open_any(config)?;
        let summary = serde_json::json!({
            "gallery": gallery.location(),
            "backend": gallery.kind(),
            "count": gallery.len(),
            "model_fingerprint": gallery.fingerprint(),
            "dim": gallery.dim(),
            "milvus_version": gallery.server_version()?,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    let dir = target.dir()?;
    GalleryIndex::verify(dir)?.into_result()?;
    let manifest = GalleryIndex::read_manifest(dir)?;
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(())
}

fn add(args: AddArgs) -> anyhow::Result<()> {
    let (_, mut items) = args.gallery.items()?;
    let (encoder, files) = args.model.load()?;
    let fingerprint = files.fingerprint()?;
    if let Some(config) = args.target.backend.milvus(HnswParams::default())? {
        let gallery = MilvusGallery::open(config, &fingerprint, encoder.dim())?;
        let ids: Vec<String> = items.iter().map(|i| i.record.image_id.clone()).collect();
        let present = gallery.existing_ids(&ids)?;
        filter_existing(&mut items, |id| present.contains(id), args.skip_existing)?;
        let stats = encode_with_progress(
            &mut |b| gallery.add(b).map(|_| ()),
            &encoder,
            items,
            &args.gallery,
        )?;
        gallery.persist()?;
        return report(
            &gallery.location(),
            gallery.len(),
            &stats,
            serde_json::json!({}),
        );
    }
    let dir = args.target.dir()?;
    let mut index = GalleryIndex::open_verified(dir, &fingerprint)?;
    filter_existing(&mut items, |id| index.contains(id), args.skip_existing)?;
    let stats = encode_with_progress(&mut |b| index.add(b), &encoder, items, &args.gallery)?;
    // Re-inserting many undumped points at every open would slow loading down: dump the graph.
    if index.graph_pending() * 10 > index.manifest().slots {
        index.save_graph()?;
    }
    report(
        &index.path().display().to_string(),
        index.len(),
        &stats,
        serde_json::json!({
            "manifest": index.manifest()
        }),
    )
}

/// Drops items already in the gallery (--skip-existing) or refuses them.
fn filter_existing(
    items: &mut Vec<GalleryItem>,
    exists: impl Fn(&str) -> bool,
    skip: bool,
) -> anyhow::Result<()> {
    if skip {
        items.retain(|item| !exists(&item.record.image_id));
    } else if let Some(dup) = items.iter().find(|i| exists(&i.record.image_id)) {
        anyhow::bail!(
            "image id `{}` is already in the index (use --skip-existing)",
            dup.record.image_id
        );
    }
    Ok(())
}

fn remove(args: RemoveArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.image_ids.is_empty() || !args.person_ids.is_empty(),
        "nothing to remove: give --image-id or --person-id"
    );
    if let Some(config) = args.target.backend.milvus(HnswParams::default())? {
        // Removal never compares embeddings: open whatever model built the collection.
        let gallery = MilvusGallery::open_any(config)?;
        let (removed, count) = gallery.remove(&args.image_ids, &args.person_ids)?;
        println!(
            "{}",
            serde_json::json!({ "removed": removed, "count": count })
        );
        return Ok(());
    }
    let dir = args.target.dir()?;
    GalleryIndex::verify(dir)?.into_result()?;
    let mut index = GalleryIndex::open_any(dir)?;
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
    // Compaction would copy damaged vectors into a new generation with fresh checksums.
    GalleryIndex::verify(dir)?.into_result()?;
    let index = GalleryIndex::open_any(dir)?;
    let compacted = index.compact()?;
    println!("{}", serde_json::to_string(compacted.manifest())?);
    Ok(())
}

fn verify(dir: &Path) -> anyhow::Result<()> {
    let report = GalleryIndex::verify(dir)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !report.checksummed {
        tracing::warn!(index = %dir.display(),
            "index written before file checksums: nothing to verify until its next change records them");
    }
    let damaged: Vec<&str> = report.damaged().map(|f| f.file.as_str()).collect();
    anyhow::ensure!(
        damaged.is_empty(),
        "index {} is damaged: {}",
        dir.display(),
        damaged.join(", ")
    );
    Ok(())
}
