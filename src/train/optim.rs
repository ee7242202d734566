//! Optimisers over the trained variables: SGD with momentum (the authors': PyTorch semantics,
//! coupled weight decay, bias learning rate ×2) and AdamW, with state that can be saved and
//! restored so that `--resume` continues exactly.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// Which update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with momentum (the authors' choice).
    Sgd,
    /// AdamW (decoupled weight decay).
    Adamw,
}

/// Optimiser hyper-parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimConfig {
    /// Update rule.
    pub kind: OptimizerKind,
    /// SGD momentum.
    pub momentum: f64,
    /// Weight decay (L2 for SGD, decoupled for AdamW).
    pub weight_decay: f64,
    /// Learning-rate multiplier of biases (the authors use 2).
    pub bias_lr_factor: f64,
    /// AdamW betas.
    pub betas: (f64, f64),
    /// AdamW epsilon.
    pub eps: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::Sgd,
            momentum: 0.9,
            weight_decay: 1e-4,
            bias_lr_factor: 2.0,
            betas: (0.9, 0.999),
            eps: 1e-8,
        }
    }
}

/// One trained variable and its optimiser state.
#[derive(Debug)]
struct Param {
    name: String,
    var: Var,
    lr_factor: f64,
    /// SGD: `[momentum]`; AdamW: `[m, v]`. Empty until the first update.
    state: Vec<Tensor>,
}

/// An optimiser over named variables.
#[derive(Debug)]
pub struct Optimizer {
    params: Vec<Param>,
    config: OptimConfig,
    step: u64,
}

impl Optimizer {
    /// Optimises `vars` (sorted by name so state files are stable).
    pub fn new(mut vars: Vec<(String, Var)>, config: OptimConfig) -> Self {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params = vars
            .into_iter()
            .map(|(name, var)| Param {
                lr_factor: if name.ends_with("bias") {
                    config.bias_lr_factor
                } else {
                    1.0
                },
                name,
                var,
                state: Vec::new(),
            })
            .collect();
        Self {
            params,
            config,
            step: 0,
        }
    }

    /// Updates done so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Applies one update with learning rate `lr`; variables without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step += 1;
        let (cfg, t) = (self.config.clone(), self.step as i32);
        for p in &mut self.params {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            let lr = lr * p.lr_factor;
            let w = p.var.as_tensor();
            let g = g.to_dtype(w.dtype())?;
            match cfg.kind {
                OptimizerKind::Sgd => {
                    let d = (g + (w * cfg.weight_decay)?)?;
                    let buf = match p.state.first() {
                        Some(b) => ((b * cfg.momentum)? + d)?,
                        None => d,
                    };
                    p.var.set(&(w - (&buf * lr)?)?)?;
                    p.state = vec![buf];
                }
                OptimizerKind::Adamw => {
                    let (b1, b2) = cfg.betas;
                    let (m, v) = match p.state.as_slice() {
                        [m, v] => (m.clone(), v.clone()),
                        _ => (g.zeros_like()?, g.zeros_like()?),
                    };
                    let m = ((m * b1)? + (&g * (1.0 - b1))?)?;
                    let v = ((v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
                    let m_hat = (&m / (1.0 - b1.powi(t)))?;
                    let v_hat = (&v / (1.0 - b2.powi(t)))?;
                    let update = (m_hat / (v_hat.sqrt()? + cfg.eps)?)?;
                    let decayed = (w * (1.0 - lr * cfg.weight_decay))?;
                    p.var.set(&(decayed - (update * lr)?)?)?;
                    p.state = vec![m, v];
                }
            }
        }
        Ok(())
    }

    /// The optimiser state as named tensors (`{name}#0`, `{name}#1`), for checkpoints.
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for p in &self.params {
            for (i, t) in p.state.iter().enumerate() {
                out.insert(format!("{}#{i}", p.name), t.clone());
            }
        }
        out
    }

    /// Restores state saved by [`Optimizer::state_tensors`] after `steps` updates.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, steps: u64) -> Result<()> {
        for p in &mut self.params {
            let device = p.var.device().clone();
            p.state = (0..2)
                .map_while(|i| tensors.get(&format!("{}#{i}", p.name)))
                .map(|t| t.to_device(&device))
                .collect::<Result<Vec<_>>>()?;
        }
        self.step = steps;
        Ok(())
    }
}

/// Scales all gradients so that their global L2 norm is at most `max_norm`; returns the norm
/// before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    let mut total = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            total += g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
    let norm = total.sqrt();
    if norm > max_norm && norm > 0.0 {
        let scale = max_norm / norm;
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * scale)?);
            }
        }
    }
    Ok(norm)
}

/// The authors' schedule, per epoch: linear warmup from `warmup_factor × lr` over
/// `warmup_epochs`, then cosine from `lr` down to `final_factor × lr` at the last epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LrSchedule {
    /// Base learning rate.
    pub lr: f64,
    /// Total epochs.
    pub epochs: usize,
    /// Warmup epochs.
    pub warmup_epochs: usize,
    /// Starting factor of the warmup.
    pub warmup_factor: f64,
    /// Final factor of the cosine.
    pub final_factor: f64,
}

impl LrSchedule {
    /// The learning rate of 0-based `epoch`.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        if epoch < self.warmup_epochs {
            let alpha = epoch as f64 / self.warmup_epochs as f64;
            return self.lr * (self.warmup_factor + (1.0 - self.warmup_factor) * alpha);
        }
        let span = self.epochs.saturating_sub(self.warmup_epochs + 1).max(1) as f64;
        let progress = ((epoch - self.warmup_epochs) as f64 / span).min(1.0);
        let min = self.lr * self.final_factor;
        min + (self.lr - min) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
    }
}
