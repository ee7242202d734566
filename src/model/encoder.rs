//! The encoder: tokenizer + preprocessing + network, producing L2-normalised CLS embeddings.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::{l2_normalize, weights, IvtConfig, IvtModel, ModelError, ModelFiles};
use crate::image::{to_tensor, Pixels};
use crate::text::{TextTokenizer, Tokenized};

/// A text's embedding and whether the text had to be cut.
#[derive(Debug, Clone, PartialEq)]
pub struct TextEmbedding {
    /// L2-normalised embedding.
    pub embedding: Vec<f32>,
    /// True when the text was longer than the model's position table.
    pub truncated: bool,
}

/// Encodes texts and images into the shared, L2-normalised embedding space. Retrieval ranks by
/// the dot product of these vectors (cosine similarity).
#[derive(Debug, Clone)]
pub struct Encoder {
    model: IvtModel,
    tokenizer: TextTokenizer,
    name: String,
}

impl Encoder {
    /// Loads the weights of `files` onto `device`, computing in `dtype` (F32 unless a reduced
    /// precision is asked for explicitly; on the CPU, bf16 means bf16 matrix products over f32
    /// weights: MKL's or the AVX512-BF16 kernels', f32 on CPUs with neither).
    pub fn load(files: &ModelFiles, device: &Device, dtype: DType) -> Result<Self, ModelError> {
        let mut model = load_network(files, device, weights_dtype(dtype, device))?;
        model.prepare_for_inference(dtype)?;
        let max_len = files.config.max_position_embeddings;
        let tokenizer = match &files.tokenizer {
            Some(p) => TextTokenizer::from_file(p, max_len)?,
            None => TextTokenizer::builtin(max_len)?,
        };
        Ok(Self::new(model, tokenizer, files.name.clone()))
    }

    /// Wraps an already built network (e.g. one being trained).
    pub fn new(model: IvtModel, tokenizer: TextTokenizer, name: String) -> Self {
        Self {
            model,
            tokenizer,
            name,
        }
    }

    /// The network.
    pub fn model(&self) -> &IvtModel {
        &self.model
    }

    /// The model's architecture.
    pub fn config(&self) -> &IvtConfig {
        self.model.config()
    }

    /// Model name (directory or file stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.config().hidden_size
    }

    /// Device the network runs on.
    pub fn device(&self) -> &Device {
        self.model.device()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Tokenises a text (errors on empty text; reports truncation).
    pub fn tokenize(&self, text: &str) -> Result<Tokenized, ModelError> {
        Ok(self.tokenizer.encode(text)?)
    }

    /// Output tokens `[B, T, D]` of tokenised texts, padded to the longest.
    pub fn text_tokens(&self, texts: &[&Tokenized]) -> Result<Tensor, ModelError> {
        let batch = TextTokenizer::batch(texts, self.device())?;
        let _one_pool = self.one_thread_pool();
        Ok(self
            .model
            .forward_text(&batch.input_ids, &batch.attention_mask)?)
    }

    /// Output tokens `[B, N, D]` of preprocessed images.
    pub fn image_tokens(&self, images: &[&Pixels]) -> Result<Tensor, ModelError> {
        let x = self.pixel_batch(images)?;
        let _one_pool = self.one_thread_pool();
        Ok(self.model.forward_image(&x)?)
    }

    /// L2-normalised class-token embeddings of tokenised texts (the last block computes token 0
    /// only; see [`IvtModel::encode_cls`]).
    fn text_embeddings(&self, texts: &[&Tokenized]) -> Result<Tensor, ModelError> {
        let batch = TextTokenizer::batch(texts, self.device())?;
        let _one_pool = self.one_thread_pool();
        let cls = self
            .model
            .forward_text_cls(&batch.input_ids, &batch.attention_mask)?;
        normalized(&cls)
    }

    /// L2-normalised class-token embeddings of preprocessed images.
    fn image_embeddings(&self, images: &[&Pixels]) -> Result<Tensor, ModelError> {
        let x = self.pixel_batch(images)?;
        let _one_pool = self.one_thread_pool();
        normalized(&self.model.forward_image_cls(&x)?)
    }

    /// Preprocessed images as one batch on the network's device, in its dtype.
    fn pixel_batch(&self, images: &[&Pixels]) -> Result<Tensor, ModelError> {
        Ok(to_tensor(images, self.device())?.to_dtype(self.model.dtype())?)
    }

    /// Keeps a pass's parallelism in one thread pool (see [`super::cpu::one_thread_pool`]).
    fn one_thread_pool(&self) -> impl Sized {
        super::cpu::one_thread_pool(self.device())
    }

    /// L2-normalised embeddings of tokenised texts, one batch.
    pub fn embed_tokenized(&self, texts: &[&Tokenized]) -> Result<Vec<Vec<f32>>, ModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.text_embeddings(texts)?.to_vec2::<f32>()?)
    }

    /// L2-normalised embeddings of preprocessed images, one batch.
    pub fn embed_pixels(&self, images: &[&Pixels]) -> Result<Vec<Vec<f32>>, ModelError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.image_embeddings(images)?.to_vec2::<f32>()?)
    }

    /// Tokenises and embeds texts in one batch.
    pub fn encode_texts(&self, texts: &[&str]) -> Result<Vec<TextEmbedding>, ModelError> {
        let tokenized = texts
            .iter()
            .map(|t| self.tokenize(t))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&Tokenized> = tokenized.iter().collect();
        let embeddings = self.embed_tokenized(&refs)?;
        Ok(embeddings
            .into_iter()
            .zip(&tokenized)
            .map(|(embedding, t)| TextEmbedding {
                embedding,
                truncated: t.truncated,
            })
            .collect())
    }
}

/// The network of `files` on `device` with weights in `dtype`, as training and checks use it
/// (not prepared for inference: every pass kind runs).
pub fn load_network(
    files: &ModelFiles,
    device: &Device,
    dtype: DType,
) -> Result<IvtModel, ModelError> {
    let raw = weights::read_checkpoint(&files.weights)?;
    let tensors = weights::select_tensors(raw, &files.config, dtype, device)?;
    let vb = VarBuilder::from_tensors(tensors, dtype, device);
    Ok(IvtModel::new(&files.config, vb)?)
}

/// The dtype inference weights are held in for products in `compute` on `device`: the same,
/// except bf16 on the CPU, which keeps f32 weights (only MKL's packed products run in bf16).
pub fn weights_dtype(compute: DType, device: &Device) -> DType {
    if device.is_cpu() && compute == DType::BF16 {
        DType::F32
    } else {
        compute
    }
}

/// Class-token outputs `[B, D]` as the L2-normalised f32 embeddings retrieval ranks by.
fn normalized(cls: &Tensor) -> Result<Tensor, ModelError> {
    Ok(l2_normalize(&cls.to_dtype(DType::F32)?)?)
}
