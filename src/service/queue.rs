//! The request queue and the batching task: entries wait here until the model thread can take a
//! batch. Entries whose caller went away (cancelled, deadline passed) are dropped unencoded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::{metrics, BatchConfig, ServiceError};
use crate::image::Pixels;
use crate::text::Tokenized;

/// The model's answer for one input.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// L2-normalised embedding.
    pub embedding: Vec<f32>,
    /// Time between entering the queue and the start of the model's pass.
    pub queue: Duration,
    /// Duration of the model pass (shared by the batch).
    pub encode: Duration,
}

/// One input waiting to be encoded.
pub struct Entry<T> {
    /// Tokenised text or preprocessed image.
    pub input: T,
    /// Where the answer goes; closed when the caller went away.
    pub reply: oneshot::Sender<Result<Encoded, ServiceError>>,
    /// When the entry was queued.
    pub enqueued: Instant,
    /// The caller's tracing spans.
    pub spans: EntrySpans,
    /// The caller's deadline, if any.
    pub deadline: Option<Instant>,
    /// The admission permit travels with the entry, so the queue limit counts exactly the
    /// entries not yet answered or dropped, even when callers give up.
    pub slot: QueueSlot,
}

/// The tracing of one queued input: the request's span, and a `queue` span under it that
/// ends when the model takes the input.
pub struct EntrySpans {
    request: tracing::Span,
    queue: tracing::Span,
}

impl EntrySpans {
    /// Spans for an input queued now, under the current span.
    pub fn enqueued() -> Self {
        let request = tracing::Span::current();
        let queue = tracing::info_span!(parent: &request, "queue");
        EntrySpans { request, queue }
    }

    /// Ends the `queue` span and starts an `encode` span for a model pass over `batch` inputs.
    pub fn encoding(&mut self, batch: usize) -> tracing::Span {
        self.queue = tracing::Span::none();
        tracing::info_span!(parent: &self.request, "encode", batch)
    }
}

/// The admission places of the two lanes, `capacity` each: texts and images are admitted
/// separately, so a busy image client can fill its own lane but never take a Search's place.
pub struct Lanes {
    /// Places of texts (Search, EncodeText).
    pub text: Arc<Semaphore>,
    /// Places of images (EncodeImage, AddImages).
    pub image: Arc<Semaphore>,
    /// Places per lane.
    pub capacity: usize,
}

impl Lanes {
    /// Two lanes of `capacity` places each.
    pub fn new(capacity: usize) -> Self {
        Lanes {
            text: Arc::new(Semaphore::new(capacity)),
            image: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// Inputs admitted and not yet answered, both lanes together.
    pub fn depth(&self) -> usize {
        depth(&self.text, self.capacity) + depth(&self.image, self.capacity)
    }
}

/// One admitted input's place in its lane. Releasing it (when its entry is answered or
/// dropped) also updates the queue-depth gauge, which would otherwise keep the value read
/// while the entry was still held.
pub struct QueueSlot {
    permit: Option<OwnedSemaphorePermit>,
    lanes: Arc<Lanes>,
}

impl QueueSlot {
    /// Wraps one permit of one of `lanes`.
    pub fn new(permit: OwnedSemaphorePermit, lanes: Arc<Lanes>) -> Self {
        QueueSlot {
            permit: Some(permit),
            lanes,
        }
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        drop(self.permit.take());
        metrics::queue_depth(self.lanes.depth());
    }
}

/// Places of a queue of `capacity` that are taken (admitted and not yet answered).
pub fn depth(semaphore: &Semaphore, capacity: usize) -> usize {
    capacity.saturating_sub(semaphore.available_permits())
}

impl<T> Entry<T> {
    /// Answers the caller, releasing the queue place first: once the caller has the answer,
    /// the queue depth no longer counts it.
    pub fn answer(self, result: Result<Encoded, ServiceError>) {
        let Entry { reply, slot, .. } = self;
        drop(slot);
        let _ = reply.send(result);
    }
}

/// Keeps the entries worth encoding. Those whose caller went away are dropped; those past their
/// deadline are answered with `DeadlineExceeded` through [`Entry::answer`], so their queue place
/// is released before the caller hears, as for every other answer.
pub fn retain_live<T>(entries: &mut Vec<Entry<T>>, now: Instant) {
    for entry in std::mem::take(entries) {
        if entry.reply.is_closed() {
            continue;
        }
        match entry.deadline {
            Some(d) if d <= now => entry.answer(Err(ServiceError::DeadlineExceeded("queued"))),
            _ => entries.push(entry),
        }
    }
}

/// A batch for the model thread: one modality per forward pass.
pub enum Batch {
    /// Tokenised texts.
    Texts(Vec<Entry<Tokenized>>),
    /// Preprocessed images.
    Images(Vec<Entry<Pixels>>),
}

/// Forms batches from `rx` and hands them to the model thread through `model`, whose capacity of
/// one lets the next batch fill while the current one runs. Ends when every sender is dropped.
pub async fn batching_task<T>(
    mut rx: mpsc::Receiver<Entry<T>>,
    model: mpsc::Sender<Batch>,
    cfg: BatchConfig,
    modality: &'static str,
    wrap: fn(Vec<Entry<T>>) -> Batch,
) {
    while let Some(first) = rx.recv().await {
        let wait_until = tokio::time::Instant::from_std(first.enqueued + cfg.max_wait);
        let mut batch = vec![first];
        while batch.len() < cfg.max_batch {
            match tokio::time::timeout_at(wait_until, rx.recv()).await {
                Ok(Some(entry)) => batch.push(entry),
                Ok(None) | Err(_) => break,
            }
        }
        // Wait for the model to have room; whatever queues meanwhile joins this batch for free.
        let Ok(slot) = model.reserve().await else {
            return;
        };
        while batch.len() < cfg.max_batch {
            match rx.try_recv() {
                Ok(entry) => batch.push(entry),
                Err(_) => break,
            }
        }
        retain_live(&mut batch, Instant::now());
        if !batch.is_empty() {
            metrics::batch(modality, batch.len());
            slot.send(wrap(batch));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        lanes: &Arc<Lanes>,
        deadline: Option<Instant>,
    ) -> (Entry<u32>, oneshot::Receiver<Result<Encoded, ServiceError>>) {
        let (reply, rx) = oneshot::channel();
        let permit = lanes
            .text
            .clone()
            .try_acquire_owned()
            .expect("a free place");
        let entry = Entry {
            input: 0,
            reply,
            enqueued: Instant::now(),
            spans: EntrySpans::enqueued(),
            deadline,
            slot: QueueSlot::new(permit, lanes.clone()),
        };
        (entry, rx)
    }

    #[test]
    fn retain_live_keeps_live_entries_answers_expired_ones_and_frees_places() {
        let lanes = Arc::new(Lanes::new(3));
        let now = Instant::now();
        let (live, _live_rx) = entry(&lanes, Some(now + Duration::from_secs(60)));
        let (expired, mut expired_rx) = entry(&lanes, Some(now));
        let (gone, gone_rx) = entry(&lanes, None);
        drop(gone_rx);
        let mut entries = vec![live, expired, gone];
        assert_eq!(lanes.depth(), 3);

        retain_live(&mut entries, now);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].deadline, Some(now + Duration::from_secs(60)));
        // The expired caller was told; its place and the gone caller's are free.
        match expired_rx.try_recv() {
            Ok(Err(ServiceError::DeadlineExceeded(stage))) => assert_eq!(stage, "queued"),
            other => panic!("expected DeadlineExceeded, got {other:?}"),
        }
        assert_eq!(lanes.depth(), 1);
    }
}
