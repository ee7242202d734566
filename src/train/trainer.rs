//! One training step of IVT: MLA batch → BMM-dropped image and text passes through the shared
//! network → CMPM on the class tokens → backward → (clipping) → optimiser update.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::augment::AugmentOptions;
use super::bmm::drop_tokens;
use super::cmpm::cmpm_loss;
use super::loader::MlaBatch;
use super::optim::{clip_grad_norm, OptimConfig, Optimizer};
use super::TrainError;
use crate::image::to_tensor;
use crate::model::{cls, Encoder, IvtConfig, IvtModel, Modality, TrainOptions};
use crate::text::TextTokenizer;

/// Training hyper-parameters; the defaults are the authors' (with the paper's BMM ratio 0.3).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Total epochs.
    pub epochs: usize,
    /// Samples per batch (each gives three image/text pairs).
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Linear warmup epochs (from 0.01 × lr).
    pub warmup_epochs: usize,
    /// Optimiser.
    pub optim: OptimConfig,
    /// BMM: the largest share of non-class tokens dropped per pass (0 = off).
    pub mask_ratio: f32,
    /// Stochastic depth at the last block.
    pub drop_path: f32,
    /// Dropout after the embeddings.
    pub embed_dropout: f32,
    /// Clip the global gradient norm to this value.
    pub clip_grad: Option<f64>,
    /// Evaluate on the validation split every this many epochs (0 = never).
    pub eval_every: usize,
    /// Decoding and augmentation threads.
    pub workers: usize,
    /// Run seed.
    pub seed: u64,
    /// MLA: pair the three views with sentence, phrase and attribute-word texts. Off, all three
    /// views are paired with the sentence (the ablation baseline, same compute).
    #[serde(default = "enabled")]
    pub mla: bool,
}

fn enabled() -> bool {
    true
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 120,
            batch_size: 28,
            lr: 0.005,
            warmup_epochs: 5,
            optim: OptimConfig::default(),
            mask_ratio: 0.3,
            drop_path: 0.1,
            embed_dropout: 0.1,
            clip_grad: None,
            eval_every: 5,
            workers: 4,
            seed: 42,
            mla: true,
        }
    }
}

impl TrainConfig {
    /// The augmentation used with this configuration (the authors').
    pub fn augment(&self) -> AugmentOptions {
        AugmentOptions::default()
    }
}

/// The network being trained, its variables, tokenizer and optimiser.
pub struct Trainer {
    varmap: VarMap,
    model: IvtModel,
    tokenizer: TextTokenizer,
    optimizer: Optimizer,
    config: TrainConfig,
}

impl Trainer {
    /// Builds the network from `weights` (fresh or loaded), all of them trainable, in f32.
    pub fn new(
        model_config: &IvtConfig,
        weights: HashMap<String, Tensor>,
        config: TrainConfig,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().map_err(|_| {
                TrainError::Settings("variable map poisoned by an earlier panic".into())
            })?;
            for (name, t) in weights {
                let t = t.to_dtype(DType::F32)?.to_device(device)?;
                data.insert(name, Var::from_tensor(&t)?);
            }
        }
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let model = IvtModel::new(model_config, vb)?;
        let tokenizer = TextTokenizer::builtin(model_config.max_position_embeddings)?;
        let vars = named_vars(&varmap);
        let optimizer = Optimizer::new(vars, config.optim.clone());
        Ok(Self {
            varmap,
            model,
            tokenizer,
            optimizer,
            config,
        })
    }

    /// The optimiser (for saving and restoring its state).
    pub fn optimizer_mut(&mut self) -> &mut Optimizer {
        &mut self.optimizer
    }

    /// The optimiser.
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    /// The current weights by checkpoint name.
    pub fn weights(&self) -> HashMap<String, Tensor> {
        named_vars(&self.varmap)
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect()
    }

    /// An encoder over the current weights, for evaluation.
    pub fn encoder(&self, name: &str) -> Encoder {
        Encoder::new(self.model.clone(), self.tokenizer.clone(), name.to_string())
    }

    /// The CMPM loss of a batch with BMM and the training regularisation.
    pub fn loss(&self, batch: &MlaBatch) -> Result<Tensor, TrainError> {
        let mut rng = StdRng::seed_from_u64(batch.seed);
        let opts = TrainOptions {
            drop_path: self.config.drop_path,
            embed_dropout: self.config.embed_dropout,
        };
        let ratio = self.config.mask_ratio;
        let device = self.model.device();
        let refs: Vec<_> = batch.pixels.iter().collect();
        let pixels = covered_pixels(&to_tensor(&refs, device)?, self.model.config())?;
        let tokens = self.model.embed_image(&pixels)?;
        let (tokens, _) = drop_tokens(&tokens, None, ratio, &mut rng)?;
        let image = cls(&self
            .model
            .encode(&tokens, None, Modality::Image, Some(&opts))?)?;

        // Each MLA level is its own pass: phrases and attribute words are a fraction of a
        // sentence's length, and padding them all to the longest sentence wastes most of the work.
        let level = batch.texts.len().div_ceil(3).max(1);
        let mut texts = Vec::with_capacity(3);
        for chunk in batch.texts.chunks(level) {
            let tokenized = chunk
                .iter()
                .map(|t| self.tokenizer.encode(t))
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<_> = tokenized.iter().collect();
            let ids = TextTokenizer::batch(&refs, device)?;
            let tokens = self.model.embed_text(&ids.input_ids)?;
            let (tokens, mask) = drop_tokens(&tokens, Some(&ids.attention_mask), ratio, &mut rng)?;
            let text = self
                .model
                .encode(&tokens, mask.as_ref(), Modality::Text, Some(&opts))?;
            texts.push(cls(&text)?);
        }
        let text = Tensor::cat(&texts, 0)?;
        Ok(cmpm_loss(&image, &text, &batch.labels)?)
    }

    /// One optimiser update on `batch` with learning rate `lr`; returns the loss before it.
    pub fn step(&mut self, batch: &MlaBatch, lr: f64) -> Result<f32, TrainError> {
        let loss = self.loss(batch)?;
        let value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(TrainError::Diverged {
                loss: value,
                step: self.optimizer.steps(),
            });
        }
        let mut grads = loss.backward()?;
        if let Some(max_norm) = self.config.clip_grad {
            let vars = self.varmap.all_vars();
            clip_grad_norm(&mut grads, &vars, max_norm)?;
        }
        self.optimizer.step(&grads, lr)?;
        Ok(value)
    }
}

/// Crops pixels `[B, 3, H, W]` to the area the patch grid covers. The patches are unchanged, and
/// candle's conv2d backward (which derives the input-gradient padding from the height alone)
/// then gets consistent sizes: with stride 12 on 384x128 it fails otherwise.
fn covered_pixels(pixels: &Tensor, cfg: &IvtConfig) -> candle_core::Result<Tensor> {
    let (rows, cols) = cfg.patch_grid();
    let height = (rows - 1) * cfg.stride + cfg.patch_size;
    let width = (cols - 1) * cfg.stride + cfg.patch_size;
    pixels.narrow(2, 0, height)?.narrow(3, 0, width)
}

fn named_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    match varmap.data().lock() {
        Ok(data) => data.iter().map(|(n, v)| (n.clone(), v.clone())).collect(),
        Err(poisoned) => poisoned
            .into_inner()
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect(),
    }
}
