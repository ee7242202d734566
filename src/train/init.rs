//! Initialisation as the authors do (`load_param_hybrid`): an ImageNet ViT (timm names) gives the
//! shared transformer, the image embeddings and the image MLPs; a BERT checkpoint gives the text
//! embeddings and, from each layer's feed-forward part, the text MLPs. BERT's attention and
//! per-layer LayerNorms are not used. `pos_embed` is resized bilinearly to the target patch grid.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::TrainError;
use crate::model::weights::{canonical_name, expected_shapes, random_tensors, read_checkpoint};
use crate::model::{IvtConfig, ModelError};

/// IVT tensors built from a ViT and a BERT checkpoint for `cfg`, plus fresh ones for what
/// neither provides (`type_embed`: normal, std 0.02).
pub fn init_from_pretrained(
    vit: &Path,
    bert: &Path,
    cfg: &IvtConfig,
) -> Result<HashMap<String, Tensor>, TrainError> {
    let vit = by_name(read_checkpoint(vit)?, &["module."]);
    let bert = by_name(read_checkpoint(bert)?, &["module.", "bert."]);
    let mut out = random_tensors(cfg, DType::F32, &Device::Cpu, 0)?;
    for (name, shape) in expected_shapes(cfg)? {
        let tensor = match source(&name) {
            Source::Vit(key) => take(&vit, &key, "ViT")?,
            Source::Bert(key) => take(&bert, &key, "BERT")?,
            Source::PosEmbed => {
                resize_pos_embed(&take(&vit, "pos_embed", "ViT")?, cfg.patch_grid())?
            }
            Source::Fresh => continue,
        };
        if tensor.dims() != shape.as_slice() {
            return Err(ModelError::Shape {
                name,
                checkpoint: tensor.dims().to_vec(),
                expected: shape,
                hint: "the pretrained checkpoints do not fit this config (hidden_size, depth, \
                       mlp_ratio, vocab_size or max_position_embeddings)"
                    .into(),
            }
            .into());
        }
        out.insert(name, tensor.to_dtype(DType::F32)?);
    }
    Ok(out)
}

/// Where an IVT tensor comes from.
enum Source {
    Vit(String),
    Bert(String),
    PosEmbed,
    Fresh,
}

fn source(name: &str) -> Source {
    if name == "pos_embed" {
        return Source::PosEmbed;
    }
    if name == "type_embed" {
        return Source::Fresh;
    }
    if let Some(rest) = name.strip_prefix("embeddings.") {
        return Source::Bert(format!("embeddings.{rest}"));
    }
    if let Some((block, rest)) = split_block(name) {
        if let Some(fc) = rest.strip_prefix("mlp_txt.") {
            let layer = match fc.split_once('.') {
                Some(("fc1", p)) => format!("intermediate.dense.{p}"),
                Some((_, p)) => format!("output.dense.{p}"),
                None => fc.to_string(),
            };
            return Source::Bert(format!("encoder.layer.{block}.{layer}"));
        }
        if let Some(fc) = rest.strip_prefix("mlp_vis.") {
            return Source::Vit(format!("blocks.{block}.mlp.{fc}"));
        }
    }
    Source::Vit(name.to_string())
}

/// `blocks.3.mlp_txt.fc1.weight` → `("3", "mlp_txt.fc1.weight")`.
fn split_block(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix("blocks.")?.split_once('.')
}

fn by_name(tensors: Vec<(String, Tensor)>, prefixes: &[&str]) -> HashMap<String, Tensor> {
    tensors
        .into_iter()
        .map(|(n, t)| {
            let mut name = canonical_name(&n);
            for p in prefixes {
                name = name.strip_prefix(p).unwrap_or(name);
            }
            (name.to_string(), t)
        })
        .collect()
}

fn take(tensors: &HashMap<String, Tensor>, key: &str, what: &str) -> Result<Tensor, TrainError> {
    tensors.get(key).cloned().ok_or_else(|| {
        ModelError::MissingTensor(format!("{key} (in the {what} checkpoint)")).into()
    })
}

/// `[1, 1 + g*g, D]` → `[1, 1 + rows*cols, D]`: the class position kept, the square grid resized
/// with bilinear interpolation (`F.interpolate(..., mode='bilinear', align_corners=False)`).
pub fn resize_pos_embed(pos: &Tensor, (rows, cols): (usize, usize)) -> Result<Tensor, TrainError> {
    let (_, n, d) = pos.dims3()?;
    let side = ((n - 1) as f64).sqrt().round() as usize;
    if side * side + 1 != n {
        return Err(TrainError::Settings(format!(
            "ViT pos_embed has {n} positions: expected a class token plus a square grid"
        )));
    }
    let pos = pos.to_dtype(DType::F32)?.squeeze(0)?;
    let class = pos.narrow(0, 0, 1)?;
    let grid = pos.narrow(0, 1, n - 1)?.to_vec2::<f32>()?;
    let ys = linear_taps(side, rows);
    let xs = linear_taps(side, cols);
    let mut out = Vec::with_capacity(rows * cols * d);
    for &(y0, y1, ly) in &ys {
        for &(x0, x1, lx) in &xs {
            let corners = [
                y0 * side + x0,
                y0 * side + x1,
                y1 * side + x0,
                y1 * side + x1,
            ]
            .map(|i| &grid[i]);
            for c in 0..d {
                let [a, b, e, f] = corners.map(|row| f64::from(row[c]));
                let top = (1.0 - lx) * a + lx * b;
                let bottom = (1.0 - lx) * e + lx * f;
                out.push(((1.0 - ly) * top + ly * bottom) as f32);
            }
        }
    }
    let resized = Tensor::from_vec(out, (rows * cols, d), &Device::Cpu)?;
    Ok(Tensor::cat(&[&class, &resized], 0)?.unsqueeze(0)?)
}

/// For each output index: the two source indices and the weight of the second, as PyTorch's
/// `area_pixel_compute_source_index` with `align_corners=False`.
fn linear_taps(input: usize, output: usize) -> Vec<(usize, usize, f64)> {
    let scale = input as f64 / output as f64;
    (0..output)
        .map(|o| {
            let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(input - 1);
            let i1 = (i0 + 1).min(input - 1);
            (i0, i1, src - i0 as f64)
        })
        .collect()
}
