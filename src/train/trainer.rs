//! One training step of IVT: MLA batch → BMM-dropped image and text passes through the shared
//! network → CMPM on the class tokens → backward → (clipping) → optimiser update.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::augment::AugmentOptions;
use super::bmm::drop_tokens;
use super::cmpm::cmpm_loss;
use super::loader::MlaBatch;
use super::optim::{clip_grad_norm, OptimConfig, Optimizer};
use super::TrainError;
use crate::image::to_tensor;
use crate::model::{cls, Encoder, IvtConfig, IvtModel, Modality, Noise, Pass, TrainOptions};
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
    /// Precision of the matrix products (autocast); weights and optimiser stay f32.
    #[serde(default)]
    pub precision: Precision,
}

/// Training precision: full f32, or autocast of the matrix products to bf16 or f16 over f32
/// master weights (PyTorch's AMP). f16 uses dynamic loss scaling; bf16 needs none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// Matrix products in bf16 (CUDA).
    Bf16,
    /// Matrix products in f16, with dynamic loss scaling.
    F16,
}

impl Precision {
    /// The dtype matrix products are cast to, if any.
    pub fn autocast(self) -> Option<DType> {
        match self {
            Self::F32 => None,
            Self::Bf16 => Some(DType::BF16),
            Self::F16 => Some(DType::F16),
        }
    }

    /// Refuses precisions the device cannot compute.
    pub fn check_device(self, device: &Device) -> Result<(), TrainError> {
        if self == Self::Bf16 && device.is_cpu() {
            return Err(TrainError::Settings(
                "bf16 autocast needs a CUDA device: candle has no bf16 matrix product on the \
                 CPU (use --precision f16 or f32 there)"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            "f16" | "fp16" => Ok(Self::F16),
            other => Err(format!("unknown precision `{other}`: use f32, bf16 or f16")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        })
    }
}

/// Dynamic loss scaling for f16 autocast: the loss is multiplied before backward so small
/// gradients survive f16; steps whose gradients overflow are skipped and the scale halved, and
/// it doubles again after a run of good steps (PyTorch's GradScaler defaults).
#[derive(Debug, Clone)]
struct LossScaler {
    scale: f64,
    good_steps: u32,
}

impl LossScaler {
    const INIT: f64 = 65536.0;
    const GROWTH_INTERVAL: u32 = 2000;

    fn new() -> Self {
        Self {
            scale: Self::INIT,
            good_steps: 0,
        }
    }

    /// Divides the gradients by the scale; false (and the scale halved) when any is not finite.
    fn unscale(&mut self, grads: &mut GradStore, vars: &[Var]) -> candle_core::Result<bool> {
        let mut sums = Vec::with_capacity(vars.len());
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                let g = (g / self.scale)?;
                sums.push(g.sum_all()?.to_dtype(DType::F32)?);
                grads.insert(v.as_tensor(), g);
            }
        }
        // One device-to-host copy: any inf or NaN makes the total non-finite.
        let finite = sums.is_empty()
            || Tensor::stack(&sums, 0)?
                .sum_all()?
                .to_scalar::<f32>()?
                .is_finite();
        if finite {
            self.good_steps += 1;
            if self.good_steps >= Self::GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale = (self.scale / 2.0).max(1.0);
            self.good_steps = 0;
        }
        Ok(finite)
    }
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
            precision: Precision::F32,
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
    scaler: Option<LossScaler>,
    skipped_steps: u64,
}

impl Trainer {
    /// Builds the network from `weights` (fresh or loaded), all of them trainable, in f32.
    pub fn new(
        model_config: &IvtConfig,
        weights: HashMap<String, Tensor>,
        config: TrainConfig,
        device: &Device,
    ) -> Result<Self, TrainError> {
        config.precision.check_device(device)?;
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
            scaler: (config.precision == Precision::F16).then(LossScaler::new),
            config,
            skipped_steps: 0,
        })
    }

    /// Steps skipped because f16 gradients overflowed (always 0 in f32 and bf16).
    pub fn skipped_steps(&self) -> u64 {
        self.skipped_steps
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
        let device = self.model.device();
        let opts = TrainOptions {
            drop_path: self.config.drop_path,
            embed_dropout: self.config.embed_dropout,
            autocast: self.config.precision.autocast(),
            noise: Noise::new(rng.next_u64(), device)?,
        };
        let ratio = self.config.mask_ratio;
        let refs: Vec<_> = batch.pixels.iter().collect();
        let pixels = to_tensor(&refs, device)?;
        let tokens = self.model.embed_image_for_training(&pixels)?;
        let (tokens, _) = drop_tokens(&tokens, None, ratio, &mut rng)?;
        let image = cls(&self
            .model
            .encode(&tokens, None, Modality::Image, Pass::Train(&opts))?)?;

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
            let text =
                self.model
                    .encode(&tokens, mask.as_ref(), Modality::Text, Pass::Train(&opts))?;
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
        let mut grads = match &self.scaler {
            Some(scaler) => (&loss * scaler.scale)?.backward()?,
            None => loss.backward()?,
        };
        if let Some(scaler) = &mut self.scaler {
            let vars = self.varmap.all_vars();
            if !scaler.unscale(&mut grads, &vars)? {
                self.skipped_steps += 1;
                tracing::debug!(
                    scale = scaler.scale,
                    "f16 gradients overflowed; step skipped"
                );
                return Ok(value);
            }
        }
        if let Some(max_norm) = self.config.clip_grad {
            let vars = self.varmap.all_vars();
            clip_grad_norm(&mut grads, &vars, max_norm)?;
        }
        self.optimizer.step(&grads, lr)?;
        Ok(value)
    }
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
