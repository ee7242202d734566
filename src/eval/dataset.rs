//! Evaluation of a model on a dataset split: embed every image and every caption, rank, score.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::Serialize;

use super::{rank_exact, Embeddings, EvalError, RankingMetrics};
use crate::data::{contiguous_labels, DatasetImage, Split};
use crate::image::{self, DecodeLimits};
use crate::model::Encoder;

/// How to run an evaluation.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Images or captions per forward pass.
    pub batch_size: usize,
    /// Length of the reported CMC curve.
    pub max_rank: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            max_rank: 10,
        }
    }
}

/// The result of `ivt eval`: what was evaluated and the metrics.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Model name.
    pub model: String,
    /// The split evaluated.
    pub split: Split,
    /// Gallery size (images of the split).
    pub images: usize,
    /// Number of distinct persons in the split.
    pub persons: usize,
    /// How the gallery was searched: `exact` or `hnsw`.
    pub search: String,
    /// Seconds spent embedding and ranking.
    pub seconds: f64,
    /// The metrics (`queries` = number of captions).
    #[serde(flatten)]
    pub metrics: RankingMetrics,
}

/// Evaluates `encoder` on `images` (one split, paths relative to `root`): every caption is a
/// query over every image. `progress` counts images then captions.
pub fn evaluate_dataset(
    encoder: &Encoder,
    images: &[DatasetImage],
    root: &Path,
    split: Split,
    options: &EvalOptions,
    progress: &ProgressBar,
) -> Result<EvalReport, EvalError> {
    if images.is_empty() {
        return Err(EvalError::EmptySplit(split));
    }
    let started = Instant::now();
    let labels = contiguous_labels(images);
    let persons = labels.iter().copied().max().map_or(0, |m| m + 1);
    let captions: Vec<(&str, usize)> = images
        .iter()
        .zip(&labels)
        .flat_map(|(image, &label)| image.captions.iter().map(move |c| (c.as_str(), label)))
        .collect();
    progress.set_length((images.len() + captions.len()) as u64);
    let gallery = embed_images(encoder, images, root, options.batch_size, progress)?;
    let texts: Vec<&str> = captions.iter().map(|(c, _)| *c).collect();
    let queries = embed_captions(encoder, &texts, options.batch_size, progress)?;
    let query_pids: Vec<usize> = captions.iter().map(|(_, l)| *l).collect();
    let metrics = rank_exact(
        Embeddings {
            rows: &queries,
            pids: &query_pids,
        },
        Embeddings {
            rows: &gallery,
            pids: &labels,
        },
        options.max_rank,
    )?;
    Ok(EvalReport {
        model: encoder.name().to_string(),
        split,
        images: images.len(),
        persons,
        search: "exact".into(),
        seconds: started.elapsed().as_secs_f64(),
        metrics,
    })
}

/// Embeds the images in batches; decoding runs in parallel on rayon's threads.
pub fn embed_images(
    encoder: &Encoder,
    images: &[DatasetImage],
    root: &Path,
    batch_size: usize,
    progress: &ProgressBar,
) -> Result<Vec<Vec<f32>>, EvalError> {
    let spec = encoder.config().image_spec();
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch_size.max(1)) {
        let pixels = chunk
            .par_iter()
            .map(|image| {
                let path: PathBuf = root.join(&image.path);
                image::load(&path, &spec, DecodeLimits::default())
                    .map_err(|source| EvalError::Image { path, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<_> = pixels.iter().collect();
        out.extend(encoder.embed_pixels(&refs)?);
        progress.inc(chunk.len() as u64);
    }
    Ok(out)
}

/// Embeds captions in batches (padded to the longest of each batch, as the authors).
pub fn embed_captions(
    encoder: &Encoder,
    captions: &[&str],
    batch_size: usize,
    progress: &ProgressBar,
) -> Result<Vec<Vec<f32>>, EvalError> {
    let mut out = Vec::with_capacity(captions.len());
    for chunk in captions.chunks(batch_size.max(1)) {
        let tokenized = chunk
            .iter()
            .map(|c| encoder.tokenize(c))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<_> = tokenized.iter().collect();
        out.extend(encoder.embed_tokenized(&refs)?);
        progress.inc(chunk.len() as u64);
    }
    Ok(out)
}
