//! Seeded noise for dropout and stochastic depth, since candle's CPU generator cannot be seeded.

use std::sync::{Arc, Mutex};

use candle_core::{Device, Result, Shape, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Uniform noise for the training regularisers, reproducible from a seed on every device: on the
/// CPU it is drawn on the host from a seeded generator; on a GPU the device generator is seeded
/// when the source is created, and draws follow in the pass's fixed order.
#[derive(Debug, Clone)]
pub struct Noise {
    host: Arc<Mutex<StdRng>>,
}

impl Default for Noise {
    fn default() -> Self {
        Self {
            host: Arc::new(Mutex::new(StdRng::seed_from_u64(0))),
        }
    }
}

impl Noise {
    /// A source for one training step on `device`.
    pub fn new(seed: u64, device: &Device) -> Result<Self> {
        if !device.is_cpu() {
            device.set_seed(seed)?;
        }
        Ok(Self {
            host: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
        })
    }

    /// f32 values uniform in `[0, 1)`.
    pub fn uniform(&self, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        if !device.is_cpu() {
            return Tensor::rand(0f32, 1f32, shape, device);
        }
        let mut rng = self
            .host
            .lock()
            .map_err(|_| candle_core::Error::Msg("noise generator poisoned".into()))?;
        let data: Vec<f32> = (0..shape.elem_count()).map(|_| rng.random()).collect();
        Tensor::from_vec(data, shape, device)
    }
}
