//! `ivt encode`: texts and images → L2-normalised embeddings, one JSON object per line.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use rayon::prelude::*;

use super::common::{read_lines, ModelArgs};
use crate::image::{self, DecodeLimits};

/// Arguments of `ivt encode`.
#[derive(Debug, clap::Args)]
pub struct EncodeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A text to encode (repeatable).
    #[arg(long = "text")]
    pub texts: Vec<String>,
    /// An image file to encode (repeatable).
    #[arg(long = "image")]
    pub images: Vec<PathBuf>,
    /// A file with one text per line.
    #[arg(long)]
    pub text_file: Option<PathBuf>,
    /// A file with one image path per line.
    #[arg(long)]
    pub image_list: Option<PathBuf>,
    /// Inputs per forward pass: larger is faster per input and uses more memory.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_size: u32,
}

/// Runs `ivt encode`. Texts come out first (`--text`, then `--text-file`), then images
/// (`--image`, then `--image-list`), each in the order given.
pub fn run(args: EncodeArgs) -> anyhow::Result<()> {
    let mut texts = args.texts.clone();
    if let Some(p) = &args.text_file {
        texts.extend(read_lines(p)?);
    }
    let mut images = args.images.clone();
    if let Some(p) = &args.image_list {
        images.extend(read_lines(p)?.into_iter().map(PathBuf::from));
    }
    anyhow::ensure!(
        !texts.is_empty() || !images.is_empty(),
        "nothing to encode: give --text, --image, --text-file or --image-list"
    );
    let (encoder, _) = args.model.load()?;
    let bs = args.batch_size as usize;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();

    for chunk in texts.chunks(bs) {
        let tokenized = chunk
            .iter()
            .enumerate()
            .map(|(i, t)| {
                encoder
                    .tokenize(t)
                    .with_context(|| format!("text {:?}", chunk[i]))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for (t, tok) in chunk.iter().zip(&tokenized) {
            if tok.truncated {
                tracing::warn!(
                    text = %t,
                    max_tokens = encoder.tokenizer().max_len(),
                    "text truncated to the model's maximum length"
                );
            }
        }
        let refs: Vec<_> = tokenized.iter().collect();
        let embs = encoder.embed_tokenized(&refs)?;
        for (t, e) in chunk.iter().zip(embs) {
            let line = serde_json::json!({"text": t, "embedding": e});
            writeln!(out, "{line}")?;
        }
    }

    let spec = encoder.config().image_spec();
    for chunk in images.chunks(bs) {
        let pixels = chunk
            .par_iter()
            .map(|p| {
                image::load(p, &spec, DecodeLimits::default())
                    .with_context(|| format!("image {}", p.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let refs: Vec<_> = pixels.iter().collect();
        let embs = encoder.embed_pixels(&refs)?;
        for (p, e) in chunk.iter().zip(embs) {
            let line = serde_json::json!({"image": p, "embedding": e});
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    Ok(())
}
