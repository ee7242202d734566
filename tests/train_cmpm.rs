//! The CMPM loss against the authors' `cmps_loss.Loss` (golden `cmpm.safetensors`): value and the
//! gradients with respect to both embeddings, through candle's autograd.

mod common;
use common::max_abs_diff;

use candle_core::{DType, Device, Tensor, Var};
use ivt::train::cmpm_loss;

#[test]
fn value_and_gradients_match_the_authors_loss() {
    let g = candle_core::safetensors::load("tests/fixtures/cmpm/cmpm.safetensors", &Device::Cpu)
        .unwrap();
    let labels: Vec<usize> = g["labels"]
        .to_dtype(DType::I64)
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|l| l as usize)
        .collect();
    let image = Var::from_tensor(&g["image_embeddings"]).unwrap();
    let text = Var::from_tensor(&g["text_embeddings"]).unwrap();
    let loss = cmpm_loss(image.as_tensor(), text.as_tensor(), &labels).unwrap();
    let value = loss.to_scalar::<f32>().unwrap();
    let want = g["loss"].to_vec1::<f32>().unwrap()[0];
    assert!(
        ((value - want) / want).abs() < 1e-5,
        "loss {value} vs {want}"
    );

    let grads = loss.backward().unwrap();
    let grad_image = grads.get(image.as_tensor()).unwrap();
    let grad_text = grads.get(text.as_tensor()).unwrap();
    assert!(max_abs_diff(grad_image, &g["grad_image"]) < 1e-5);
    assert!(max_abs_diff(grad_text, &g["grad_text"]) < 1e-5);
}

#[test]
fn matching_pairs_lower_the_loss_and_bad_shapes_are_rejected() {
    let device = Device::Cpu;
    let labels = [0usize, 0, 1, 1];
    let image = Tensor::randn(0f32, 1f32, (4, 8), &device).unwrap();
    // Texts equal to their images (scaled up) match better than unrelated texts.
    let aligned = (&image * 5.0).unwrap();
    let random = Tensor::randn(0f32, 1f32, (4, 8), &device).unwrap();
    let low = cmpm_loss(&aligned, &aligned, &labels)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let high = cmpm_loss(&aligned, &random, &labels)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(low < high, "{low} !< {high}");
    assert!(cmpm_loss(&image, &random, &labels[..3]).is_err());
}
