//! Stochastic gradient descent with momentum, Nesterov momentum and weight decay.

use super::{OptimState, Optimizer, Slots};
use crate::error::Result;
use crate::layer::Parameterized;
use ndarray::{ArrayD, Zip};

/// SGD settings; the defaults are plain SGD at lr 0.01.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0 = none).
    pub momentum: f32,
    /// Use Nesterov momentum (needs `momentum > 0`).
    pub nesterov: bool,
    /// L2 penalty added to the gradient (`g + wd · w`).
    pub weight_decay: f32,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 0.01,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

/// One SGD update of `w` in place, as PyTorch's `torch.optim.SGD` (dampening 0):
/// `g ← g + wd·w`; `buf ← μ·buf + g`; `g ← g + μ·buf` (Nesterov) or `g ← buf`; `w ← w − lr·g`.
pub fn sgd_update(w: &mut ArrayD<f32>, grad: &ArrayD<f32>, buf: &mut ArrayD<f32>, cfg: &SgdConfig) {
    Zip::from(w).and(grad).and(buf).for_each(|w, &g, b| {
        let mut g = g + cfg.weight_decay * *w;
        if cfg.momentum != 0.0 {
            *b = cfg.momentum * *b + g;
            g = if cfg.nesterov {
                g + cfg.momentum * *b
            } else {
                *b
            };
        }
        *w -= cfg.lr * g;
    });
}

/// The SGD optimizer. PyTorch: `torch.optim.SGD(params, lr, momentum, weight_decay=wd, nesterov)`.
#[derive(Debug, Clone)]
pub struct Sgd {
    cfg: SgdConfig,
    slots: Slots,
}

impl Sgd {
    /// An SGD optimizer with no state yet.
    pub fn new(cfg: SgdConfig) -> Self {
        Sgd {
            cfg,
            slots: Slots::default(),
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, model: &mut dyn Parameterized) -> Result<()> {
        let cfg = self.cfg;
        self.slots.for_each(1, model, |p, b| {
            sgd_update(&mut p.value, &p.grad, &mut b[0], &cfg)
        })
    }

    fn lr(&self) -> f32 {
        self.cfg.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.cfg.lr = lr;
    }

    fn state(&self) -> OptimState {
        self.slots.to_state(&["momentum"])
    }

    fn take_state(&mut self) -> OptimState {
        self.slots.take_state(&["momentum"])
    }

    fn load_state(&mut self, state: OptimState) -> Result<()> {
        self.slots = Slots::from_state(state, &["momentum"])?;
        Ok(())
    }
}
