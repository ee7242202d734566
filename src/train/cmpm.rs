//! The cross-modal projection matching (CMPM) loss (Zhang & Lu, ECCV 2018) exactly as the
//! authors' `cmps_loss.Loss.compute_cmpm_loss`.
//!
//! For image→text, the raw image embedding is projected onto every L2-normalised text embedding;
//! the softmax of these projections is pulled towards the true matching distribution `q`, whose
//! row i is the same-person mask divided by its L2 norm (not its sum: the authors' code), with
//! epsilon 1e-8 inside the log. The text→image term is symmetric; the loss is the sum of the two
//! batch means.

use candle_core::{DType, Device, Result, Tensor, D};

/// Inside the log of the matching distribution, so that non-matching pairs give a finite value.
const EPSILON: f64 = 1e-8;

/// CMPM loss of `image` and `text` embeddings `[B, D]` (pairs row by row) with person `labels`.
/// Computed in f32 whatever the embeddings' dtype; differentiable with candle's autograd.
pub fn cmpm_loss(image: &Tensor, text: &Tensor, labels: &[usize]) -> Result<Tensor> {
    let (b, _) = image.dims2()?;
    if text.dims2()?.0 != b || labels.len() != b {
        candle_core::bail!(
            "cmpm: {} images, {} texts and {} labels must agree",
            b,
            text.dim(0)?,
            labels.len()
        );
    }
    // Contiguous: CUDA matrix products refuse row-strided operands such as a CLS slice.
    let image = image.to_dtype(DType::F32)?.contiguous()?;
    let text = text.to_dtype(DType::F32)?.contiguous()?;
    let log_q = log_matching_distribution(labels, image.device())?;
    let i2t = image.matmul(&unit_rows(&text)?.t()?)?;
    let t2i = text.matmul(&unit_rows(&image)?.t()?)?;
    kl_term(&i2t, &log_q)? + kl_term(&t2i, &log_q)?
}

/// `mean_i sum_j p_ij (log p_ij - log q_ij)` with `p = softmax(projections)` per row.
fn kl_term(projections: &Tensor, log_q: &Tensor) -> Result<Tensor> {
    let log_p = log_softmax_rows(projections)?;
    let p = log_p.exp()?;
    (p * (log_p - log_q)?)?.sum(D::Minus1)?.mean(0)
}

/// Row-wise log-softmax from differentiable primitives (the max shift carries no gradient).
fn log_softmax_rows(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&log_sum)
}

/// Rows divided by their L2 norm, as `x / x.norm(dim=1, keepdim=True)` (no epsilon, as the authors).
fn unit_rows(x: &Tensor) -> Result<Tensor> {
    x.broadcast_div(&x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)
}

/// `log(mask / ||mask row|| + eps)`: a constant, built on the host.
fn log_matching_distribution(labels: &[usize], device: &Device) -> Result<Tensor> {
    let b = labels.len();
    let mut values = Vec::with_capacity(b * b);
    for &li in labels {
        let same = labels.iter().filter(|&&l| l == li).count() as f64;
        for &lj in labels {
            let q = if li == lj { 1.0 / same.sqrt() } else { 0.0 };
            values.push((q + EPSILON).ln() as f32);
        }
    }
    Tensor::from_vec(values, (b, b), device)
}
