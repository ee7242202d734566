//! The inference front: admission control, tokenisation and image decoding off the model thread,
//! and queueing for the batching tasks. Handlers call this; it is a cheap clone over `Arc`s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use super::queue::{Encoded, Entry, EntrySpans, Lanes, QueueSlot};
use super::refusals::{refused, Limit};
use super::{metrics, Limits, ServiceError};
use crate::image::{check_dimensions, decode, preprocess, DecodeLimits, Pixels};
use crate::model::IvtConfig;
use crate::text::{TextTokenizer, Tokenized};

/// Embeddings of a request's inputs and where the time went.
#[derive(Debug, Clone, Default)]
pub struct Embedded {
    /// One L2-normalised vector per input, in input order.
    pub embeddings: Vec<Vec<f32>>,
    /// Per input: whether the text was truncated (always false for images).
    pub truncated: Vec<bool>,
    /// Tokenising (texts) time.
    pub tokenize: Duration,
    /// Decoding and preprocessing (images) time.
    pub decode: Duration,
    /// Longest queue wait among the inputs.
    pub queue: Duration,
    /// Longest model pass among the inputs.
    pub encode: Duration,
}

/// Handle to the encoding pipeline.
#[derive(Clone)]
pub struct Infer {
    texts: mpsc::Sender<Entry<Tokenized>>,
    images: mpsc::Sender<Entry<Pixels>>,
    /// One permit per input admitted and not yet answered, per lane: `try_acquire` makes a
    /// full lane answer RESOURCE_EXHAUSTED at once instead of growing latency without bound.
    lanes: Arc<Lanes>,
    tokenizer: TextTokenizer,
    config: Arc<IvtConfig>,
    decode_limits: DecodeLimits,
    /// Pixels being decoded, in units of [`PIXEL_UNIT`]: decoding is admitted by its cost.
    decode_budget: Arc<Semaphore>,
    max_decode_pixels: u64,
}

/// Pixels per permit of the decode budget (keeps permit counts within `u32`).
const PIXEL_UNIT: u64 = 1024;

/// Decoding runs on its own pool of half the cores, so that a flood of images leaves the
/// other half to tokenising, searching and the model thread.
fn decode_pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads((cores / 2).max(1))
            .thread_name(|i| format!("ivt-decode-{i}"))
            .build()
            .unwrap_or_else(|_| {
                rayon::ThreadPoolBuilder::new()
                    .build()
                    .expect("a thread pool")
            })
    })
}

/// Set when the request that asked for some decoding goes away (its future is dropped: the
/// client cancelled or its deadline passed), so that images not yet decoded are skipped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Infer {
    /// A handle over the batching tasks' queues, admitting at most `max_queue` inputs at once.
    pub fn new(
        texts: mpsc::Sender<Entry<Tokenized>>,
        images: mpsc::Sender<Entry<Pixels>>,
        limits: &Limits,
        tokenizer: TextTokenizer,
        config: IvtConfig,
    ) -> Self {
        let units = (limits.max_decode_pixels / PIXEL_UNIT).clamp(1, Semaphore::MAX_PERMITS as u64);
        Self {
            texts,
            images,
            lanes: Arc::new(Lanes::new(limits.max_queue)),
            tokenizer,
            config: Arc::new(config),
            decode_limits: DecodeLimits {
                max_pixels: limits.max_image_pixels,
                ..DecodeLimits::default()
            },
            decode_budget: Arc::new(Semaphore::new(units as usize)),
            max_decode_pixels: limits.max_decode_pixels,
        }
    }

    /// Inputs admitted and not yet answered (both lanes).
    pub fn queue_depth(&self) -> usize {
        self.lanes.depth()
    }

    /// Embeds texts (already checked for size by the caller).
    pub async fn embed_texts(
        &self,
        texts: Vec<String>,
        deadline: Option<Instant>,
    ) -> Result<Embedded, ServiceError> {
        let permit = self.admit(&self.lanes.text, texts.len())?;
        let start = Instant::now();
        let tokenized = self
            .tokenize(texts)
            .instrument(tracing::info_span!("tokenize"))
            .await?;
        let tokenize = start.elapsed();
        metrics::stage("tokenize", tokenize);
        let truncated = tokenized.iter().map(|t| t.truncated).collect();
        let encoded = self
            .enqueue(&self.texts, tokenized, permit, deadline)
            .await?;
        Ok(Embedded {
            truncated,
            tokenize,
            ..summarise(encoded)
        })
    }

    /// Decodes, preprocesses and embeds encoded images (already checked for size by the caller).
    pub async fn embed_images(
        &self,
        images: Vec<Vec<u8>>,
        deadline: Option<Instant>,
    ) -> Result<Embedded, ServiceError> {
        let permit = self.admit(&self.lanes.image, images.len())?;
        let (cfg, limits) = (self.config.clone(), self.decode_limits);
        let start = Instant::now();
        let decoding = self.admit_decoding(&images)?;
        let cancelled = Arc::new(AtomicBool::new(false));
        let _cancel_on_drop = CancelOnDrop(cancelled.clone());
        let pixels = blocking(move || {
            // The budget is held until the decoding really stops, not just until the caller
            // leaves: abandoned work still occupies the CPU while it runs.
            let _decoding = decoding;
            decode_pool().install(|| {
                images
                    .par_iter()
                    .enumerate()
                    .map(|(index, bytes)| {
                        let expired = deadline.is_some_and(|d| Instant::now() >= d);
                        if expired || cancelled.load(Ordering::Relaxed) {
                            return Err(ServiceError::DeadlineExceeded("waiting to decode"));
                        }
                        decode(bytes, limits)
                            .and_then(|img| preprocess(&img, &cfg))
                            .map_err(|source| ServiceError::Image { index, source })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .await??;
        let decode = start.elapsed();
        metrics::stage("decode", decode);
        let n = pixels.len();
        let encoded = self.enqueue(&self.images, pixels, permit, deadline).await?;
        Ok(Embedded {
            truncated: vec![false; n],
            decode,
            ..summarise(encoded)
        })
    }

    /// One text (a Search) tokenises in well under 100 µs, less than handing it to the blocking
    /// pool costs, so it runs inline; several texts go to the blocking pool.
    async fn tokenize(&self, texts: Vec<String>) -> Result<Vec<Tokenized>, ServiceError> {
        let encode_all = |tokenizer: &TextTokenizer, texts: &[String]| {
            texts
                .iter()
                .map(|t| tokenizer.encode(t))
                .collect::<Result<Vec<_>, _>>()
        };
        if texts.len() == 1 {
            return Ok(encode_all(&self.tokenizer, &texts)?);
        }
        let tokenizer = self.tokenizer.clone();
        Ok(blocking(move || encode_all(&tokenizer, &texts)).await??)
    }

    fn admit(&self, lane: &Arc<Semaphore>, n: usize) -> Result<OwnedSemaphorePermit, ServiceError> {
        let overloaded = || {
            let queued = self.lanes.capacity - lane.available_permits().min(self.lanes.capacity);
            let limit = self.lanes.capacity;
            refused(
                Limit::Queue,
                format_args!("queue full ({queued} of {limit} inputs): request refused"),
            );
            ServiceError::Overloaded {
                queued,
                limit: self.lanes.capacity,
            }
        };
        let n = u32::try_from(n).map_err(|_| overloaded())?;
        let permit = lane
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| overloaded())?;
        metrics::queue_depth(self.queue_depth());
        Ok(permit)
    }

    /// Reads every image's size from its header (refusing one over the pixel limit before
    /// anything is decoded) and takes their pixels from the decode budget, or refuses the call
    /// at once when the budget is spent.
    fn admit_decoding(&self, images: &[Vec<u8>]) -> Result<OwnedSemaphorePermit, ServiceError> {
        let mut pixels = 0u64;
        for (index, bytes) in images.iter().enumerate() {
            let (w, h) = check_dimensions(bytes, self.decode_limits)
                .map_err(|source| ServiceError::Image { index, source })?;
            pixels += u64::from(w) * u64::from(h);
        }
        let limit = self.max_decode_pixels;
        if pixels > limit {
            return Err(ServiceError::InvalidArgument(format!(
                "the images of this call have {pixels} pixels; the server decodes at most \
                 {limit} at once: send fewer or smaller images per call"
            )));
        }
        let units = u32::try_from(pixels.div_ceil(PIXEL_UNIT).max(1)).unwrap_or(u32::MAX);
        self.decode_budget
            .clone()
            .try_acquire_many_owned(units)
            .map_err(|_| {
                refused(
                    Limit::DecodePixels,
                    format_args!(
                        "decode budget spent: a call of {pixels} pixels refused (budget {limit})"
                    ),
                );
                ServiceError::DecodeBusy { pixels, limit }
            })
    }

    /// Queues one entry per input, each carrying one of the request's permits, and awaits all.
    async fn enqueue<T>(
        &self,
        queue: &mpsc::Sender<Entry<T>>,
        inputs: Vec<T>,
        mut permit: OwnedSemaphorePermit,
        deadline: Option<Instant>,
    ) -> Result<Vec<Encoded>, ServiceError> {
        let mut replies = Vec::with_capacity(inputs.len());
        for input in inputs {
            let (reply, rx) = oneshot::channel();
            let entry = Entry {
                input,
                reply,
                enqueued: Instant::now(),
                spans: EntrySpans::enqueued(),
                deadline,
                slot: QueueSlot::new(
                    permit.split(1).ok_or_else(|| {
                        ServiceError::Internal("fewer permits than inputs".into())
                    })?,
                    self.lanes.clone(),
                ),
            };
            queue.try_send(entry).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ServiceError::Overloaded {
                    queued: self.queue_depth(),
                    limit: self.lanes.capacity,
                },
                mpsc::error::TrySendError::Closed(_) => ServiceError::ShuttingDown,
            })?;
            replies.push(rx);
        }
        let mut encoded = Vec::with_capacity(replies.len());
        for rx in replies {
            encoded.push(rx.await.map_err(|_| ServiceError::ShuttingDown)??);
        }
        Ok(encoded)
    }
}

fn summarise(encoded: Vec<Encoded>) -> Embedded {
    let queue = encoded.iter().map(|e| e.queue).max().unwrap_or_default();
    let encode = encoded.iter().map(|e| e.encode).max().unwrap_or_default();
    Embedded {
        embeddings: encoded.into_iter().map(|e| e.embedding).collect(),
        queue,
        encode,
        ..Embedded::default()
    }
}

/// Runs CPU work on tokio's blocking pool, keeping async worker threads free.
pub(crate) async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, ServiceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Internal(format!("worker task failed: {e}")))
}
