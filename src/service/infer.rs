//! The inference front: admission control, tokenisation and image decoding off the model thread,
//! and queueing for the batching tasks. Handlers call this; it is a cheap clone over `Arc`s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use super::queue::{depth, Encoded, Entry, EntrySpans, QueueSlot};
use super::{metrics, ServiceError};
use crate::image::{decode, preprocess, DecodeLimits, Pixels};
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
    /// One permit per input admitted and not yet answered: `try_acquire` makes a full queue
    /// answer RESOURCE_EXHAUSTED at once instead of growing latency without bound.
    permits: Arc<Semaphore>,
    max_queue: usize,
    tokenizer: TextTokenizer,
    config: Arc<IvtConfig>,
    decode_limits: DecodeLimits,
}

impl Infer {
    /// A handle over the batching tasks' queues, admitting at most `max_queue` inputs at once.
    pub fn new(
        texts: mpsc::Sender<Entry<Tokenized>>,
        images: mpsc::Sender<Entry<Pixels>>,
        max_queue: usize,
        tokenizer: TextTokenizer,
        config: IvtConfig,
    ) -> Self {
        Self {
            texts,
            images,
            permits: Arc::new(Semaphore::new(max_queue)),
            max_queue,
            tokenizer,
            config: Arc::new(config),
            decode_limits: DecodeLimits::default(),
        }
    }

    /// Inputs admitted and not yet answered.
    pub fn queue_depth(&self) -> usize {
        depth(&self.permits, self.max_queue)
    }

    /// Embeds texts (already checked for size by the caller).
    pub async fn embed_texts(
        &self,
        texts: Vec<String>,
        deadline: Option<Instant>,
    ) -> Result<Embedded, ServiceError> {
        let permit = self.admit(texts.len())?;
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
        let permit = self.admit(images.len())?;
        let (cfg, limits) = (self.config.clone(), self.decode_limits);
        let start = Instant::now();
        let pixels = blocking(move || {
            images
                .par_iter()
                .enumerate()
                .map(|(index, bytes)| {
                    decode(bytes, limits)
                        .and_then(|img| preprocess(&img, &cfg))
                        .map_err(|source| ServiceError::Image { index, source })
                })
                .collect::<Result<Vec<_>, _>>()
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

    fn admit(&self, n: usize) -> Result<OwnedSemaphorePermit, ServiceError> {
        let overloaded = || ServiceError::Overloaded {
            queued: self.queue_depth(),
            limit: self.max_queue,
        };
        let n = u32::try_from(n).map_err(|_| overloaded())?;
        let permit = self
            .permits
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| overloaded())?;
        metrics::queue_depth(self.queue_depth());
        Ok(permit)
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
                    self.permits.clone(),
                    self.max_queue,
                ),
            };
            queue.try_send(entry).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ServiceError::Overloaded {
                    queued: self.queue_depth(),
                    limit: self.max_queue,
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
