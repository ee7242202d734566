//! `ivt bench gallery`: loads a synthetic gallery of clustered, L2-normalised vectors (the
//! `bench index` mixture) for a model into either backend and reports bulk-load images/s. The
//! gallery can then be served (`ivt serve --index ...` or `--gallery-backend milvus`) and
//! measured with `ivt bench serve`, so that both backends answer the same gallery.

use std::path::PathBuf;
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
    let batches = (0..args.images).step_by(args.batch.max(1)).map(|start| {
        let end = (start + args.batch.max(1)).min(args.images);
        (start..end)
            .map(|i| {
                let (person, v) = mixture.sample_with_cluster(&mut rng);
                let mut r = ImageRecord::new(format!("img-{i:08}"), format!("p{person}"));
                r.camera_id = Some(format!("cam-{:02}", i % 16));
                r.captured_at = Utc.timestamp_opt(1_700_000_000 + i as i64 * 7, 0).single();
                (r, v)
            })
            .collect::<Vec<_>>()
    });
    let started = Instant::now();
    let (location, count, extra) = match args.backend.milvus(HnswParams::default())? {
        Some(config) => {
            let gallery = MilvusGallery::recreate(config, &fingerprint, dim)?;
            for batch in batches {
                let n = batch.len();
                gallery.add(batch)?;
                bar.inc(n as u64);
            }
            gallery.persist()?;
            let version = gallery.server_version().ok();
            (
                gallery.location(),
                gallery.len(),
                serde_json::json!({ "milvus_version": version }),
            )
        }
        None => {
            let out = args
                .out
                .as_deref()
                .context("--out is required with the embedded gallery backend")?;
            GalleryIndex::discard_pending_builds(out)?;
            let mut index = GalleryIndex::begin_build(
                out,
                &fingerprint,
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
            (
                out.display().to_string(),
                index.len(),
                serde_json::json!({ "hnsw": index.manifest().hnsw }),
            )
        }
    };
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
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
