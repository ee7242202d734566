//! `ivt bench gallery`: loads a synthetic gallery of clustered, L2-normalised vectors (the
//! `bench index` mixture) for a model into either backend and reports bulk-load images/s. The
//! gallery can then be served (`ivt serve --index ...` or `--gallery-backend milvus`) and
//! measured with `ivt bench serve`, so that both backends answer the same gallery.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use chrono::{TimeZone, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::bench_index::Mixture;
use super::common::{BackendArgs, ModelArgs};
use crate::index::milvus::MilvusGallery;
use crate::index::{GalleryBackend, GalleryIndex, HnswParams, ImageRecord, VectorStorage};

/// Arguments of `ivt bench gallery`.
#[derive(Debug, clap::Args)]
pub struct GalleryBenchArgs {
    /// The model whose fingerprint and dimension the gallery gets (only its config is read).
    #[command(flatten)]
    pub model: ModelArgs,
    /// Backend to load into.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Index directory to write (embedded backend; replaced if present).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Gallery images.
    #[arg(long, default_value_t = 200_000)]
    pub images: usize,
    /// Persons (mixture clusters); each image belongs to one.
    #[arg(long, default_value_t = 50_000)]
    pub persons: usize,
    /// Spread of images around their person's centre.
    #[arg(long, default_value_t = 0.3)]
    pub spread: f32,
    /// Images per add call.
    #[arg(long, default_value_t = 4_096)]
    pub batch: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Runs the benchmark; a JSON report goes to stdout.
pub fn run(args: GalleryBenchArgs) -> anyhow::Result<()> {
    let files = args.model.files()?;
    let fingerprint = files.fingerprint()?;
    let dim = files.config.hidden_size;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mixture = Mixture::generate(&mut rng, dim, args.persons.max(1), 32, args.spread);
    let bar = ProgressBar::new(args.images as u64).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} images {per_sec}")
            .context("progress template")?,
    );
    let batches = gallery_batches(&args, &mixture, &mut rng);
    let started = Instant::now();
    let loaded = match args.backend.milvus(HnswParams::default())? {
        Some(config) => {
            let gallery = MilvusGallery::recreate(config, &fingerprint, dim)?;
            load_milvus(gallery, batches, &bar)?
        }
        None => {
            let out = args
                .out
                .as_deref()
                .context("--out is required with the embedded gallery backend")?;
            load_embedded(out, &fingerprint, dim, batches, &bar)?
        }
    };
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let (location, count, extra) = loaded;
    let mut report = serde_json::json!({
        "bench": "gallery",
        "gallery": location,
        "backend": format!("{:?}", args.backend.gallery_backend).to_lowercase(),
        "images": count,
        "persons": args.persons,
        "dim": dim,
        "model_fingerprint": fingerprint,
        "load_seconds": seconds,
        "images_per_second": count as f64 / seconds.max(1e-9),
    });
    if let (Some(r), Some(e)) = (report.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    println!("{report}");
    Ok(())
}

/// One add call's images with their embeddings.
type Batch = Vec<(ImageRecord, Vec<f32>)>;

/// Where the gallery went, its size, and backend facts for the report.
type Loaded = (String, usize, serde_json::Value);

/// The gallery in `--batch`-sized adds, drawn as they are consumed so that a large gallery is
/// never held in memory whole: images spread over 16 cameras, 7 s apart.
fn gallery_batches<'a>(
    args: &'a GalleryBenchArgs,
    mixture: &'a Mixture,
    rng: &'a mut StdRng,
) -> impl Iterator<Item = Batch> + 'a {
    (0..args.images)
        .step_by(args.batch.max(1))
        .map(move |start| {
            let end = (start + args.batch.max(1)).min(args.images);
            (start..end)
                .map(|i| {
                    let (person, v) = mixture.sample_with_cluster(rng);
                    let mut r = ImageRecord::new(format!("img-{i:08}"), format!("p{person}"));
                    r.camera_id = Some(format!("cam-{:02}", i % 16));
                    r.captured_at = Utc.timestamp_opt(1_700_000_000 + i as i64 * 7, 0).single();
                    (r, v)
                })
                .collect::<Vec<_>>()
        })
}

/// Adds `batches` to a fresh Milvus collection and flushes it.
fn load_milvus(
    gallery: MilvusGallery,
    batches: impl Iterator<Item = Batch>,
    bar: &ProgressBar,
) -> anyhow::Result<Loaded> {
    for batch in batches {
        let n = batch.len();
        gallery.add(batch)?;
        bar.inc(n as u64);
    }
    gallery.persist()?;
    let version = gallery.server_version().ok();
    Ok((
        gallery.location(),
        gallery.len(),
        serde_json::json!({ "milvus_version": version }),
    ))
}

/// Builds an embedded index in `out` from `batches` (replacing one there) and publishes it.
fn load_embedded(
    out: &Path,
    fingerprint: &str,
    dim: usize,
    batches: impl Iterator<Item = Batch>,
    bar: &ProgressBar,
) -> anyhow::Result<Loaded> {
    GalleryIndex::discard_pending_builds(out)?;
    let mut index = GalleryIndex::begin_build(
        out,
        fingerprint,
        dim,
        HnswParams::default(),
        VectorStorage::F32,
    )?;
    for batch in batches {
        let n = batch.len();
        index.add(batch)?;
        bar.inc(n as u64);
    }
    bar.set_message("building the graph");
    index.publish()?;
    Ok((
        out.display().to_string(),
        index.len(),
        serde_json::json!({ "hnsw": index.manifest().hnsw }),
    ))
}
