//! Reading checkpoints: the authors' torch `.pth` files (zip pickles, read directly with candle's
//! pickle reader, no Python) and safetensors, under the authors' names with or without the
//! `module.` (DistributedDataParallel) and `encoder_vl.` prefixes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use super::config::IvtConfig;
use super::{IvtModel, ModelError};

/// Checkpoint tensors that only training uses; they are skipped silently.
const TRAINING_ONLY: &[&str] = &[
    "temp",
    "classifier_img.",
    "bottleneck_img.",
    "embeddings.position_ids",
];

/// Reads every tensor of a checkpoint file, keyed by its name as stored.
pub fn read_checkpoint(path: &Path) -> std::result::Result<Vec<(String, Tensor)>, ModelError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !path.is_file() {
        return Err(ModelError::NotFound(path.to_path_buf()));
    }
    let format_err = |e: candle_core::Error| ModelError::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if ext == "safetensors" {
        let map = candle_core::safetensors::load(path, &Device::Cpu).map_err(format_err)?;
        return Ok(map.into_iter().collect());
    }
    // The authors' training script saves {'state_dict': ..., 'optimizer': ..., 'epoch': ...};
    // plain state dicts (e.g. from `torch.save(model.state_dict())`) have no such key.
    match candle_core::pickle::read_all_with_key(path, Some("state_dict")) {
        Ok(tensors) if !tensors.is_empty() => Ok(tensors),
        _ => candle_core::pickle::read_all(path).map_err(format_err),
    }
}

/// Strips the `module.` and `encoder_vl.` prefixes of the authors' checkpoints.
pub fn canonical_name(name: &str) -> &str {
    let name = name.strip_prefix("module.").unwrap_or(name);
    name.strip_prefix("encoder_vl.").unwrap_or(name)
}

/// Every tensor the network needs, with its shape for `cfg`, in the order the network takes
/// them: recorded while building it over a [`VarBuilder`] that hands out zero views, so the list
/// cannot drift from the network's own construction.
pub fn expected_shapes(cfg: &IvtConfig) -> std::result::Result<Vec<TensorShape>, ModelError> {
    let recorder = ShapeRecorder::default();
    let vb = VarBuilder::from_backend(Box::new(recorder.clone()), DType::F32, Device::Cpu);
    IvtModel::new(cfg, vb)?;
    let shapes = recorder
        .shapes
        .lock()
        .map_err(|_| candle_core::Error::Msg("shape recorder poisoned".into()))?;
    Ok(shapes.clone())
}

/// A tensor's name and shape.
type TensorShape = (String, Vec<usize>);

/// A [`VarBuilder`] backend that records every requested name and shape and returns zeros
/// (a broadcast scalar: nothing is allocated).
#[derive(Clone, Default)]
struct ShapeRecorder {
    shapes: Arc<Mutex<Vec<TensorShape>>>,
}

impl SimpleBackend for ShapeRecorder {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.shapes
            .lock()
            .map_err(|_| candle_core::Error::Msg("shape recorder poisoned".into()))?
            .push((name.to_string(), s.dims().to_vec()));
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("the network asked for `{name}` without a shape")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// Matches checkpoint tensors against what `cfg` needs: canonical names, training-only tensors
/// dropped, every tensor present with the right shape, converted to `dtype` on `device`.
pub fn select_tensors(
    raw: Vec<(String, Tensor)>,
    cfg: &IvtConfig,
    dtype: DType,
    device: &Device,
) -> std::result::Result<HashMap<String, Tensor>, ModelError> {
    let mut by_name: HashMap<String, Tensor> = HashMap::with_capacity(raw.len());
    for (name, t) in raw {
        let name = canonical_name(&name);
        if TRAINING_ONLY.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        by_name.insert(name.to_string(), t);
    }
    let mut out = HashMap::new();
    for (name, shape) in expected_shapes(cfg)? {
        let t = by_name
            .remove(&name)
            .ok_or_else(|| ModelError::MissingTensor(name.clone()))?;
        if t.dims() != shape.as_slice() {
            return Err(ModelError::Shape {
                hint: shape_hint(&name, t.dims(), cfg),
                name,
                checkpoint: t.dims().to_vec(),
                expected: shape,
            });
        }
        let t = t.to_dtype(dtype)?.to_device(device)?;
        out.insert(name, t);
    }
    if !by_name.is_empty() {
        let mut extra: Vec<_> = by_name.keys().cloned().collect();
        extra.sort();
        tracing::debug!(
            ?extra,
            "ignoring checkpoint tensors the network does not use"
        );
    }
    Ok(out)
}

/// Explains the likeliest cause of a shape mismatch in config terms.
fn shape_hint(name: &str, got: &[usize], cfg: &IvtConfig) -> String {
    let (r, c) = cfg.patch_grid();
    match name {
        "pos_embed" | "type_embed" if got.len() == 3 => format!(
            "the checkpoint has {} image tokens but image_size {}x{} with patch_size {} and \
             stride {} gives {r}x{c}+1 = {}: check image_size and stride in config.json",
            got[1],
            cfg.image_size[0],
            cfg.image_size[1],
            cfg.patch_size,
            cfg.stride,
            r * c + 1
        ),
        "embeddings.position_embeddings.weight" => {
            "max_position_embeddings does not match the checkpoint".into()
        }
        "embeddings.word_embeddings.weight" => "vocab_size does not match the checkpoint".into(),
        _ => "hidden_size, mlp_ratio or patch_size does not match the checkpoint".into(),
    }
}

/// Reads and validates a model `config.json`.
pub fn read_config_file(path: &Path) -> std::result::Result<IvtConfig, ModelError> {
    if !path.is_file() {
        return Err(ModelError::NotFound(path.to_path_buf()));
    }
    let cfg = super::files::read_config(path)?;
    cfg.validate().map_err(|message| ModelError::Config {
        path: path.display().to_string(),
        message,
    })?;
    Ok(cfg)
}

/// Initial gain of the final LayerNorm of a randomly initialised model (see [`random_tensors`]).
pub const FINAL_NORM_GAIN: f64 = 0.1;

/// Linear layers and the patch projection (not embedding tables or tokens).
fn is_projection(name: &str) -> bool {
    name.ends_with(".weight")
        && [".qkv.", ".proj.", ".fc1.", ".fc2."]
            .iter()
            .any(|part| name.contains(part))
}

/// Random weights for `cfg`, for training from scratch, benchmarks and smoke tests: embeddings
/// and tokens normal with std 0.02, linear and patch-projection weights Xavier-uniform, biases
/// zero, LayerNorms at identity except the final one, whose gain starts at
/// [`FINAL_NORM_GAIN`].
///
/// Xavier rather than ViT's std 0.02 for the linear layers: with 0.02, a from-scratch text
/// [CLS] token's residual stream (its embedding LayerNorm output) outweighs what attention adds
/// about fifty to one, every caption embeds to the same vector (cosine 0.9999), and CMPM
/// training stalls at the uniform loss.
///
/// Drawn on the host from `seed` (candle's CPU generator cannot be seeded), so a seed gives the
/// same weights on every device.
pub fn random_tensors(
    cfg: &IvtConfig,
    dtype: DType,
    device: &Device,
    seed: u64,
) -> std::result::Result<HashMap<String, Tensor>, ModelError> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut draw = |shape: &[usize], sample: &mut dyn FnMut(&mut rand::rngs::StdRng) -> f32| {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| sample(&mut rng)).collect();
        Tensor::from_vec(values, shape, device)?.to_dtype(dtype)
    };
    let mut out = HashMap::new();
    for (name, shape) in expected_shapes(cfg)? {
        let is_norm = name.contains("norm") || name.contains("LayerNorm");
        let t = if name == "norm.weight" {
            // CMPM has no temperature: the image embedding's norm (this gain x sqrt(width))
            // sets how peaked its softmax is. Random features with a peaked softmax put mass on
            // wrong pairs, and the quickest way down from there is to embed everything alike
            // (training then sits at the uniform loss for good); a soft start avoids it.
            (Tensor::ones(shape, DType::F32, device)? * FINAL_NORM_GAIN)?.to_dtype(dtype)?
        } else if is_norm && name.ends_with("weight") {
            Tensor::ones(shape, dtype, device)?
        } else if is_norm || name.ends_with("bias") {
            Tensor::zeros(shape, dtype, device)?
        } else if is_projection(&name) && shape.len() >= 2 {
            let fan_out = shape[0];
            let fan_in: usize = shape[1..].iter().product();
            let bound = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
            draw(&shape, &mut |r| r.random_range(-bound..bound))?
        } else {
            // Box-Muller: normal with std 0.02.
            draw(&shape, &mut |r| {
                let u1: f32 = r.random_range(f32::EPSILON..1.0);
                let u2: f32 = r.random();
                0.02 * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
            })?
        };
        out.insert(name, t);
    }
    Ok(out)
}
