//! Adam and AdamW.

use super::{OptimState, Optimizer, Slots};
use crate::error::Result;
use crate::layer::Parameterized;
use ndarray::{ArrayD, Zip};

/// Adam / AdamW settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the first moment.
    pub beta1: f32,
    /// Decay of the second moment.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Weight decay: added to the gradient (Adam) or applied to the weights (AdamW).
    pub weight_decay: f32,
    /// `true`: decoupled weight decay (AdamW); `false`: L2 in the gradient (Adam).
    pub decoupled: bool,
}

impl AdamConfig {
    /// Adam with PyTorch's defaults (betas 0.9, 0.999, eps 1e-8, no weight decay).
    pub fn adam(lr: f32) -> Self {
        AdamConfig {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }

    /// AdamW with PyTorch's defaults and the given decoupled weight decay.
    pub fn adamw(lr: f32, weight_decay: f32) -> Self {
        AdamConfig {
            weight_decay,
            decoupled: true,
            ..Self::adam(lr)
        }
    }
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self::adam(1e-3)
    }
}

/// One Adam/AdamW update of `w` in place at step `t` (1-based), as PyTorch:
/// `g ← g + wd·w` (Adam) or `w ← w (1 − lr·wd)` (AdamW); `m ← β₁m + (1−β₁)g`;
/// `v ← β₂v + (1−β₂)g²`; `w ← w − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)`.
pub fn adam_update(
    w: &mut ArrayD<f32>,
    grad: &ArrayD<f32>,
    m: &mut ArrayD<f32>,
    v: &mut ArrayD<f32>,
    t: u64,
    cfg: &AdamConfig,
) {
    let t = t.max(1) as i32;
    let bc1 = 1.0 - (cfg.beta1 as f64).powi(t);
    let bc2 = 1.0 - (cfg.beta2 as f64).powi(t);
    let step = (cfg.lr as f64 / bc1) as f32;
    let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
    let (b1, b2) = (cfg.beta1, cfg.beta2);
    let decay = 1.0 - cfg.lr * cfg.weight_decay;
    Zip::from(w)
        .and(grad)
        .and(m)
        .and(v)
        .for_each(|w, &g, m, v| {
            let g = if cfg.decoupled {
                *w *= decay;
                g
            } else {
                g + cfg.weight_decay * *w
            };
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *w -= step * *m / (v.sqrt() * inv_sqrt_bc2 + cfg.eps);
        });
}

/// The Adam optimizer (AdamW with `decoupled`). PyTorch: `torch.optim.Adam` / `AdamW`.
#[derive(Debug, Clone)]
pub struct Adam {
    cfg: AdamConfig,
    slots: Slots,
}

impl Adam {
    /// An Adam optimizer with no state yet.
    pub fn new(cfg: AdamConfig) -> Self {
        Adam {
            cfg,
            slots: Slots::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &AdamConfig {
        &self.cfg
    }
}

impl Optimizer for Adam {
    fn step(&mut self, model: &mut dyn Parameterized) -> Result<()> {
        let cfg = self.cfg;
        let t = self.slots.step + 1;
        self.slots.for_each(2, model, |p, b| {
            let (m, v) = b.split_at_mut(1);
            adam_update(&mut p.value, &p.grad, &mut m[0], &mut v[0], t, &cfg)
        })
    }

    fn lr(&self) -> f32 {
        self.cfg.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.cfg.lr = lr;
    }

    fn state(&self) -> OptimState {
        self.slots.to_state(&["m", "v"])
    }

    fn load_state(&mut self, state: OptimState) -> Result<()> {
        self.slots = Slots::from_state(state, &["m", "v"])?;
        Ok(())
    }
}
