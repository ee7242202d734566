//! BERT-base-uncased WordPiece through the `tokenizers` crate, with the tokenizer shipped in
//! `models/tokenizer.json` (built into the binary, so nothing is downloaded).

use std::path::Path;

use candle_core::{Device, Tensor};

/// The shipped BERT-base-uncased tokenizer (30,522 WordPiece entries, lowercasing normaliser).
const BUILTIN_TOKENIZER: &[u8] = include_bytes!("../../models/tokenizer.json");

const CLS_ID: u32 = 101;
const SEP_ID: u32 = 102;
const PAD_ID: u32 = 0;

/// Errors a caller can cause with a text.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// The text is empty or only whitespace.
    #[error("text is empty")]
    Empty,
    /// The tokenizer file could not be read or parsed.
    #[error("cannot load tokenizer {path}: {message}")]
    Load { path: String, message: String },
    /// The tokenizer failed on this text.
    #[error("cannot tokenize text: {0}")]
    Tokenize(String),
}

/// One tokenised text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    /// WordPiece ids, `[CLS] … [SEP]`.
    pub ids: Vec<u32>,
    /// Whether the text was cut to fit the model's position table.
    pub truncated: bool,
}

/// Texts padded to the longest one, ready for the model.
#[derive(Debug, Clone)]
pub struct TokenBatch {
    /// `[B, T]` u32 ids, padded with 0.
    pub input_ids: Tensor,
    /// `[B, T]` u32, 1 for tokens and 0 for padding.
    pub attention_mask: Tensor,
}

/// WordPiece tokenizer that adds `[CLS]`/`[SEP]` and truncates to a maximum length.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    max_len: usize,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl TextTokenizer {
    /// The built-in BERT-base-uncased tokenizer; texts are cut to `max_len` tokens.
    pub fn builtin(max_len: usize) -> Result<Self, TextError> {
        let inner =
            tokenizers::Tokenizer::from_bytes(BUILTIN_TOKENIZER).map_err(|e| TextError::Load {
                path: "<built-in>".into(),
                message: e.to_string(),
            })?;
        Self::with_tokenizer(inner, max_len)
    }

    /// A `tokenizer.json` from disk (for models with another vocabulary).
    pub fn from_file(path: &Path, max_len: usize) -> Result<Self, TextError> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| TextError::Load {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::with_tokenizer(inner, max_len)
    }

    fn with_tokenizer(mut inner: tokenizers::Tokenizer, max_len: usize) -> Result<Self, TextError> {
        // Truncation is ours (so the caller learns about it) and padding is per batch.
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| TextError::Tokenize(e.to_string()))?;
        Ok(Self {
            inner,
            max_len: max_len.max(2),
        })
    }

    /// Longest tokenised text, `[CLS]` and `[SEP]` included.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Tokenises one text (lowercased by the tokenizer's normaliser, as the authors do).
    pub fn encode(&self, text: &str) -> Result<Tokenized, TextError> {
        if text.trim().is_empty() {
            return Err(TextError::Empty);
        }
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| TextError::Tokenize(e.to_string()))?;
        let mut ids = enc.get_ids().to_vec();
        if ids.len() <= 2 {
            // Only [CLS] [SEP]: the text had no tokens the vocabulary knows (e.g. control chars).
            return Err(TextError::Empty);
        }
        let truncated = ids.len() > self.max_len;
        if truncated {
            ids.truncate(self.max_len - 1);
            ids.push(SEP_ID);
        }
        debug_assert_eq!(ids.first(), Some(&CLS_ID));
        Ok(Tokenized { ids, truncated })
    }

    /// Pads tokenised texts to the longest, as the authors' test-time collate does.
    pub fn batch(texts: &[&Tokenized], device: &Device) -> candle_core::Result<TokenBatch> {
        let t = texts.iter().map(|x| x.ids.len()).max().unwrap_or(0);
        let b = texts.len();
        let mut ids = vec![PAD_ID; b * t];
        let mut mask = vec![0u32; b * t];
        for (i, x) in texts.iter().enumerate() {
            ids[i * t..i * t + x.ids.len()].copy_from_slice(&x.ids);
            mask[i * t..i * t + x.ids.len()].fill(1);
        }
        Ok(TokenBatch {
            input_ids: Tensor::from_vec(ids, (b, t), device)?,
            attention_mask: Tensor::from_vec(mask, (b, t), device)?,
        })
    }
}
