//! The training data pipeline: worker threads decode and augment MLA batches ahead of the model.
//! Each batch's randomness comes from (seed, epoch, batch index) alone, so batches are identical
//! whatever the number of workers, and a resumed run sees exactly the batches it would have.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, unbounded, Receiver};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::augment::{augment, AugmentOptions};
use super::mla::TrainSample;
use crate::image::{decode, DecodeLimits, ImageError, Pixels};
use crate::model::IvtConfig;

/// One MLA batch: for B samples, 3B images and texts, in level order (all sentence-level pairs,
/// then all phrase-level, then all word-level), labels repeated.
#[derive(Debug, Clone)]
pub struct MlaBatch {
    /// Augmented views, `3B`.
    pub pixels: Vec<Pixels>,
    /// Texts, `3B`.
    pub texts: Vec<String>,
    /// Person labels, `3B`.
    pub labels: Vec<usize>,
    /// The batch's seed, for the model-side randomness (BMM).
    pub seed: u64,
}

/// What the loader needs, shared with its workers.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Image files, indexed by [`TrainSample::image`].
    pub images: Arc<Vec<PathBuf>>,
    /// The training samples.
    pub samples: Arc<Vec<TrainSample>>,
    /// Model architecture (input size and normalisation).
    pub model: IvtConfig,
    /// Augmentation settings.
    pub augment: AugmentOptions,
    /// Samples per batch (each gives three pairs).
    pub batch_size: usize,
    /// Decoding threads.
    pub workers: usize,
    /// Run seed.
    pub seed: u64,
    /// Multi-level texts; off, every view is paired with the sentence.
    pub mla: bool,
}

/// Mixes the run seed with an epoch and a batch index (splitmix64), for independent streams.
pub fn stream_seed(seed: u64, epoch: u64, batch: u64) -> u64 {
    let mut z = seed
        ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ batch.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The sample order of an epoch, cut into batches (a last batch of one sample is dropped: CMPM
/// needs at least two).
pub fn epoch_batches(samples: usize, batch_size: usize, seed: u64, epoch: u64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..samples).collect();
    order.shuffle(&mut StdRng::seed_from_u64(stream_seed(
        seed,
        epoch,
        u64::MAX,
    )));
    order
        .chunks(batch_size.max(1))
        .filter(|c| c.len() > 1)
        .map(<[usize]>::to_vec)
        .collect()
}

/// Builds one batch: decode each image once, augment it three times.
fn build_batch(cfg: &LoaderConfig, indices: &[usize], seed: u64) -> Result<MlaBatch, ImageError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut levels: [Vec<(Pixels, String)>; 3] = Default::default();
    let mut labels = Vec::with_capacity(indices.len());
    for &i in indices {
        let sample = &cfg.samples[i];
        let path = &cfg.images[sample.image];
        let bytes = std::fs::read(path).map_err(|source| ImageError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let img = decode(&bytes, DecodeLimits::default())?;
        let mut texts = sample.mla_texts(&mut rng);
        if !cfg.mla {
            texts = [0, 1, 2].map(|_| sample.sentence.clone());
        }
        for (level, text) in texts.into_iter().enumerate() {
            let view = augment(&img, &cfg.model, &cfg.augment, &mut rng)?;
            levels[level].push((view, text));
        }
        labels.push(sample.label);
    }
    let (pixels, texts) = levels.into_iter().flatten().unzip();
    Ok(MlaBatch {
        pixels,
        texts,
        labels: labels.repeat(3),
        seed: rng_seed_after(&mut rng),
    })
}

fn rng_seed_after(rng: &mut StdRng) -> u64 {
    rand::Rng::random(rng)
}

/// Batches of one epoch, in order, produced by worker threads. Dropping it stops the workers.
pub struct EpochLoader {
    results: Receiver<(usize, Result<MlaBatch, ImageError>)>,
    pending: BTreeMap<usize, Result<MlaBatch, ImageError>>,
    next: usize,
    total: usize,
    workers: Vec<JoinHandle<()>>,
}

impl EpochLoader {
    /// Starts the workers for `epoch`.
    pub fn start(cfg: &LoaderConfig, epoch: u64) -> Self {
        let batches = epoch_batches(cfg.samples.len(), cfg.batch_size, cfg.seed, epoch);
        let total = batches.len();
        let (job_tx, job_rx) = unbounded();
        for (i, b) in batches.into_iter().enumerate() {
            // The receiver is alive: sending into an unbounded channel cannot fail here.
            let _ = job_tx.send((i, b));
        }
        drop(job_tx);
        let workers_n = cfg.workers.max(1);
        let (tx, results) = bounded(2 * workers_n);
        let workers = (0..workers_n)
            .map(|_| {
                let (jobs, tx, cfg) = (job_rx.clone(), tx.clone(), cfg.clone());
                std::thread::spawn(move || {
                    for (i, indices) in jobs.iter() {
                        let seed = stream_seed(cfg.seed, epoch, i as u64);
                        if tx.send((i, build_batch(&cfg, &indices, seed))).is_err() {
                            return; // the trainer went away
                        }
                    }
                })
            })
            .collect();
        Self {
            results,
            pending: BTreeMap::new(),
            next: 0,
            total,
            workers,
        }
    }

    /// Number of batches in the epoch.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether the epoch has no batches.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

impl Iterator for EpochLoader {
    type Item = Result<MlaBatch, ImageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.total {
            return None;
        }
        while !self.pending.contains_key(&self.next) {
            let (i, batch) = self.results.recv().ok()?;
            self.pending.insert(i, batch);
        }
        let batch = self.pending.remove(&self.next);
        self.next += 1;
        batch
    }
}

impl Drop for EpochLoader {
    fn drop(&mut self) {
        // Unblock workers waiting to send, then wait for them.
        let (_, closed) = bounded(0);
        drop(std::mem::replace(&mut self.results, closed));
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
