//! The model thread: the encoder runs on its own OS thread so that its long, CPU-bound passes
//! never block the async runtime. It takes one batch at a time and answers each entry.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::mpsc;

use super::queue::{retain_live, Batch, Encoded, Entry};
use super::{metrics, ServiceError};
use crate::model::{Encoder, ModelError};

/// Starts the model thread; it ends when every sender of both lanes is dropped.
pub fn spawn(
    encoder: Encoder,
    texts: mpsc::Receiver<Batch>,
    images: mpsc::Receiver<Batch>,
) -> std::io::Result<JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    std::thread::Builder::new()
        .name("ivt-model".into())
        .spawn(move || {
            let mut lanes = (texts, images);
            while let Some(batch) = runtime.block_on(next_batch(&mut lanes.0, &mut lanes.1)) {
                match batch {
                    Batch::Texts(entries) => process(entries, |x| encoder.embed_tokenized(x)),
                    Batch::Images(entries) => process(entries, |x| encoder.embed_pixels(x)),
                }
            }
            tracing::debug!("model thread stopped");
        })
}

/// The next batch to encode: a waiting text batch always goes before a waiting image batch, so
/// queries wait for at most the one image batch already running, however many images queue.
/// `None` once both lanes are closed.
pub async fn next_batch(
    texts: &mut mpsc::Receiver<Batch>,
    images: &mut mpsc::Receiver<Batch>,
) -> Option<Batch> {
    tokio::select! {
        biased;
        Some(b) = texts.recv() => Some(b),
        Some(b) = images.recv() => Some(b),
        else => None,
    }
}

/// Encodes the live entries of a batch and answers each. Inputs were validated before queueing;
/// a failure here (or a panic in the tensor code) fails this batch only, never the thread.
fn process<T>(
    mut entries: Vec<Entry<T>>,
    embed: impl Fn(&[&T]) -> Result<Vec<Vec<f32>>, ModelError>,
) {
    let start = Instant::now();
    retain_live(&mut entries, start);
    if entries.is_empty() {
        return;
    }
    let n = entries.len();
    // One `encode` span per input, under its own request: the pass serves them all.
    let spans: Vec<tracing::Span> = entries.iter_mut().map(|e| e.spans.encoding(n)).collect();
    let inputs: Vec<&T> = entries.iter().map(|e| &e.input).collect();
    let result = catch_unwind(AssertUnwindSafe(|| embed(&inputs)));
    drop(spans);
    let encode = start.elapsed();
    metrics::stage("encode", encode);
    let rows = match result {
        Ok(Ok(rows)) if rows.len() == entries.len() => rows,
        Ok(Ok(rows)) => {
            let msg = format!("model returned {} rows for {}", rows.len(), entries.len());
            return fail_all(entries, &msg);
        }
        Ok(Err(e)) => return fail_all(entries, &format!("model failed: {e}")),
        Err(_) => return fail_all(entries, "model panicked"),
    };
    for (entry, embedding) in entries.into_iter().zip(rows) {
        let queue = start.saturating_duration_since(entry.enqueued);
        metrics::stage("queue", queue);
        entry.answer(Ok(Encoded {
            embedding,
            queue,
            encode,
        }));
    }
}

fn fail_all<T>(entries: Vec<Entry<T>>, message: &str) {
    tracing::error!(batch = entries.len(), "{message}");
    for entry in entries {
        entry.answer(Err(ServiceError::Internal(message.to_string())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text lane's batch goes first even when the image lane's was queued earlier, and the
    /// image batch still follows (it is delayed, never dropped).
    #[tokio::test]
    async fn a_waiting_text_batch_goes_before_a_waiting_image_batch() {
        let (text_tx, mut texts) = mpsc::channel(1);
        let (image_tx, mut images) = mpsc::channel(1);
        image_tx.send(Batch::Images(Vec::new())).await.unwrap();
        text_tx.send(Batch::Texts(Vec::new())).await.unwrap();
        assert!(matches!(
            next_batch(&mut texts, &mut images).await,
            Some(Batch::Texts(_))
        ));
        assert!(matches!(
            next_batch(&mut texts, &mut images).await,
            Some(Batch::Images(_))
        ));
        drop((text_tx, image_tx));
        assert!(next_batch(&mut texts, &mut images).await.is_none());
    }
}
