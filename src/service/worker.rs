//! The model thread: the encoder runs on its own OS thread so that its long, CPU-bound passes
//! never block the async runtime. It takes one batch at a time and answers each entry.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::mpsc;

use super::queue::{retain_live, Batch, Encoded, Entry};
use super::{metrics, ServiceError};
use crate::model::{Encoder, ModelError};

/// Starts the model thread; it ends when every sender of `rx` is dropped.
pub fn spawn(encoder: Encoder, rx: mpsc::Receiver<Batch>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ivt-model".into())
        .spawn(move || run(encoder, rx))
}

fn run(encoder: Encoder, mut rx: mpsc::Receiver<Batch>) {
    while let Some(batch) = rx.blocking_recv() {
        match batch {
            Batch::Texts(entries) => process(entries, |x| encoder.embed_tokenized(x)),
            Batch::Images(entries) => process(entries, |x| encoder.embed_pixels(x)),
        }
    }
    tracing::debug!("model thread stopped");
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
