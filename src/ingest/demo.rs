//! The demo gallery served by `ivt serve` with no arguments: the synthetic test split the demo
//! model was evaluated on (its model card's numbers), rendered from the seed recorded beside the
//! model, encoded and indexed on first start, and cached for later starts.

use std::path::{Path, PathBuf};

use indicatif::ProgressBar;

use super::pipeline::{encode_into, PipelineOptions};
use super::{GallerySource, IngestError};
use crate::data::synth::{SynthDataset, SynthError, SynthOptions};
use crate::data::Split;
use crate::index::{GalleryIndex, HnswParams, VectorStorage};
use crate::model::{Encoder, ModelFiles};

/// File beside a model's weights recording the `ivt synth` options of its dataset.
pub const SYNTH_FILE: &str = "synth.json";

/// Reads the synthetic dataset options recorded in a model directory.
pub fn read_synth_options(model_dir: &Path) -> Result<SynthOptions, IngestError> {
    let path = model_dir.join(SYNTH_FILE);
    if !path.is_file() {
        return Err(IngestError::NoSynth(model_dir.to_path_buf()));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| IngestError::BadSynth {
        path: path.clone(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| IngestError::BadSynth {
        path,
        message: e.to_string(),
    })
}

/// Returns the demo index for `files` under `cache`, building it first when it is missing or was
/// built with other weights. `encoder` loads the model, only when the gallery must be encoded.
/// `progress` counts generated, then encoded, images.
pub fn ensure_demo_index(
    files: &ModelFiles,
    encoder: impl FnOnce() -> Result<Encoder, IngestError>,
    cache: &Path,
    progress: &ProgressBar,
) -> Result<PathBuf, IngestError> {
    let model_dir = files
        .weights
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let options = read_synth_options(&model_dir)?;
    let fingerprint = files.fingerprint()?;
    let base = cache.join(format!(
        "demo-{}",
        &fingerprint[..16.min(fingerprint.len())]
    ));
    let index_dir = base.join("index");
    if let Ok(index) = GalleryIndex::open_read_only(&index_dir, &fingerprint) {
        if !index.is_empty() {
            tracing::info!(index = %index_dir.display(), images = index.len(), "demo gallery cached");
            return Ok(index_dir);
        }
    }
    let gallery_dir = base.join("gallery");
    tracing::info!(gallery = %gallery_dir.display(), "generating the demo gallery (first start)");
    let dataset = SynthDataset::plan(&options)?;
    std::fs::create_dir_all(&gallery_dir).map_err(|source| SynthError::Io {
        path: gallery_dir.clone(),
        source,
    })?;
    progress.set_message("rendering");
    dataset.write(&gallery_dir, &[Split::Test], progress)?;
    let items = GallerySource::JsonlManifest(gallery_dir.join("test.jsonl")).read()?;
    let encoder = encoder()?;
    GalleryIndex::discard_pending_builds(&index_dir)?;
    let mut index = GalleryIndex::begin_build(
        &index_dir,
        &fingerprint,
        encoder.dim(),
        HnswParams::default(),
        VectorStorage::F32,
    )?;
    progress.set_message("encoding");
    progress.set_position(0);
    progress.set_length(items.len() as u64);
    encode_into(
        &mut |batch| index.add(batch),
        &encoder,
        items,
        &PipelineOptions::default(),
        &mut |n| progress.inc(n as u64),
    )?;
    index.publish()?;
    tracing::info!(index = %index_dir.display(), images = index.len(), "demo gallery indexed");
    Ok(index_dir)
}
