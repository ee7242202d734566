//! The gallery encoding pipeline: decoder threads read and preprocess images ahead of the
//! encoder, which only ever sees full batches, and each encoded batch is added to the index.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded};

use super::{GalleryItem, IngestError};
use crate::image::{self, DecodeLimits, ImageError, Pixels};
use crate::index::{ImageRecord, IndexError};
use crate::model::Encoder;

/// How the pipeline runs.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Images per encoder pass.
    pub batch_size: usize,
    /// Decoder threads.
    pub threads: usize,
    /// Log and skip unreadable images instead of stopping.
    pub skip_bad: bool,
    /// Decoder allocation bounds.
    pub limits: DecodeLimits,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            batch_size: 16,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            skip_bad: false,
            limits: DecodeLimits::default(),
        }
    }
}

/// What a pipeline run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PipelineStats {
    /// Images encoded and added.
    pub encoded: usize,
    /// Images skipped (`--skip-bad`) with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
    /// Seconds spent inside the encoder; `encoded / encoder_seconds` is the bare encoder speed.
    pub encoder_seconds: f64,
}

/// Fails on an image id that occurs twice, naming both entries, or a record over the index's
/// size limits, naming the entry, before anything is encoded.
pub fn check_items(items: &[GalleryItem]) -> Result<(), IngestError> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Err(e) = item.record.check_sizes() {
            return Err(IndexError::RecordTooLarge(format!("entry {}: {e}", i + 1)).into());
        }
        if let Some(first) = seen.insert(item.record.image_id.as_str(), i) {
            return Err(IndexError::InvalidRecord(format!(
                "image id `{}` occurs twice (entries {} and {}); give an image_id column",
                item.record.image_id,
                first + 1,
                i + 1
            ))
            .into());
        }
    }
    Ok(())
}

type Decoded = (ImageRecord, PathBuf, Result<Pixels, ImageError>);

/// Where encoded batches go: an index being built, or any
/// [`GalleryBackend`](crate::index::GalleryBackend).
pub type Sink<'a> = dyn FnMut(Vec<(ImageRecord, Vec<f32>)>) -> Result<(), IndexError> + 'a;

/// Encodes `items` into `index` (e.g. `&mut |b| index.add(b)`), calling `progress` with the
/// number of images done (encoded or skipped) after every batch.
pub fn encode_into(
    index: &mut Sink<'_>,
    encoder: &Encoder,
    items: Vec<GalleryItem>,
    opts: &PipelineOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<PipelineStats, IngestError> {
    check_items(&items)?;
    let start = Instant::now();
    let (job_tx, job_rx) = unbounded::<GalleryItem>();
    for item in items {
        job_tx.send(item).expect("receiver alive");
    }
    drop(job_tx);
    // Two batches of look-ahead: the next batch decodes while the current one encodes.
    let (out_tx, out_rx) = bounded::<Decoded>(2 * opts.batch_size.max(1));
    let spec = encoder.config().image_spec();
    let mut stats = std::thread::scope(|scope| {
        for _ in 0..opts.threads.max(1) {
            let (rx, tx, spec) = (job_rx.clone(), out_tx.clone(), &spec);
            scope.spawn(move || {
                for item in rx {
                    let pixels = image::load(&item.file, spec, opts.limits);
                    // A send fails only when the consumer stopped on an error: stop too.
                    if tx.send((item.record, item.file, pixels)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(out_tx);
        consume(index, encoder, out_rx, opts, progress)
    })?;
    stats.seconds = start.elapsed().as_secs_f64();
    Ok(stats)
}

/// Collects decoded images into full batches, encodes and adds them.
fn consume(
    index: &mut Sink<'_>,
    encoder: &Encoder,
    decoded: crossbeam_channel::Receiver<Decoded>,
    opts: &PipelineOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<PipelineStats, IngestError> {
    let mut stats = PipelineStats::default();
    let mut encoder_time = Duration::ZERO;
    let mut batch: Vec<(ImageRecord, Pixels)> = Vec::with_capacity(opts.batch_size);
    for (record, path, pixels) in decoded {
        match pixels {
            Ok(p) => batch.push((record, p)),
            Err(e) if opts.skip_bad => {
                tracing::warn!(path = %path.display(), error = %e, "skipping unreadable image");
                stats.skipped.push((path, e.to_string()));
                progress(1);
            }
            Err(source) => return Err(IngestError::Image { path, source }),
        }
        if batch.len() >= opts.batch_size {
            encoder_time += flush(index, encoder, &mut batch, &mut stats, progress)?;
        }
    }
    encoder_time += flush(index, encoder, &mut batch, &mut stats, progress)?;
    stats.encoder_seconds = encoder_time.as_secs_f64();
    Ok(stats)
}

/// Encodes and adds one batch; returns the time spent in the encoder.
fn flush(
    index: &mut Sink<'_>,
    encoder: &Encoder,
    batch: &mut Vec<(ImageRecord, Pixels)>,
    stats: &mut PipelineStats,
    progress: &mut dyn FnMut(usize),
) -> Result<Duration, IngestError> {
    if batch.is_empty() {
        return Ok(Duration::ZERO);
    }
    let t = Instant::now();
    let refs: Vec<&Pixels> = batch.iter().map(|(_, p)| p).collect();
    let embeddings = encoder.embed_pixels(&refs)?;
    let spent = t.elapsed();
    let n = batch.len();
    let items = batch.drain(..).map(|(r, _)| r).zip(embeddings).collect();
    index(items)?;
    stats.encoded += n;
    progress(n);
    Ok(spent)
}
