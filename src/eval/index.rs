//! Evaluation through a built gallery index (HNSW search, as the service answers), to measure
//! what the approximation costs against exact ranking.

use std::collections::HashMap;
use std::time::Instant;

use indicatif::ProgressBar;

use super::{embed_captions, EvalError, EvalOptions, EvalReport, RankingAccumulator};
use crate::data::{DatasetImage, Split};
use crate::index::{GalleryBackend, SearchFilter, SearchParams};
use crate::model::Encoder;

/// How deep each query searches the index.
#[derive(Debug, Clone, Copy)]
pub struct IndexSearch {
    /// Images retrieved per query; positives ranked deeper count as not found (see
    /// [`RankingAccumulator::add_truncated`]).
    pub depth: usize,
    /// HNSW candidate list (at least `depth`); `None`: the index default, raised to `depth`.
    pub ef: Option<usize>,
}

/// Evaluates the captions of `images` (one split) as queries against `index` (the embedded
/// index or Milvus), which must hold exactly this split's images with the dataset's person ids.
/// `progress` counts captions.
pub fn evaluate_index(
    encoder: &Encoder,
    index: &dyn GalleryBackend,
    images: &[DatasetImage],
    split: Split,
    options: &EvalOptions,
    search: IndexSearch,
    progress: &ProgressBar,
) -> Result<EvalReport, EvalError> {
    if images.is_empty() {
        return Err(EvalError::EmptySplit(split));
    }
    let started = Instant::now();
    // Positives per person come from the dataset; a gallery holding other images would make
    // them wrong, so the sizes must agree.
    if index.len() != images.len() {
        return Err(EvalError::GalleryMismatch {
            gallery: index.len(),
            split,
            images: images.len(),
        });
    }
    let mut positives: HashMap<String, usize> = HashMap::new();
    for im in images {
        *positives.entry(im.person_id.clone()).or_default() += 1;
    }
    let captions: Vec<(&str, &str)> = images
        .iter()
        .flat_map(|im| {
            im.captions
                .iter()
                .map(move |c| (c.as_str(), im.person_id.as_str()))
        })
        .collect();
    progress.set_length(captions.len() as u64);
    let texts: Vec<&str> = captions.iter().map(|(c, _)| *c).collect();
    let queries = embed_captions(encoder, &texts, options.batch_size, &ProgressBar::hidden())?;
    let depth = search.depth.max(options.max_rank).max(1);
    let ef = search.ef.unwrap_or(index.default_ef()).max(depth);
    let params = SearchParams {
        top_k: depth,
        ef: Some(ef),
        exact: false,
    };
    let mut acc = RankingAccumulator::new(options.max_rank);
    for (query, (_, person)) in queries.iter().zip(&captions) {
        let hits = index.search_images(query, &params, &SearchFilter::default())?;
        let ranks: Vec<usize> = hits
            .iter()
            .enumerate()
            .filter(|(_, h)| h.record.person_id == *person)
            .map(|(r, _)| r)
            .collect();
        acc.add_truncated(&ranks, positives.get(*person).copied().unwrap_or(0));
        progress.inc(1);
    }
    Ok(EvalReport {
        model: encoder.name().to_string(),
        split,
        images: index.len(),
        persons: positives.len(),
        search: match index.kind() {
            "embedded" => format!("hnsw (depth {depth}, ef {ef})"),
            kind => format!("{kind} hnsw (depth {depth}, ef {ef})"),
        },
        seconds: started.elapsed().as_secs_f64(),
        metrics: acc.finish(),
    })
}
