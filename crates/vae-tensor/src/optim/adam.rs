//! Adam and AdamW.

use super::{OptimState, Optimizer, Slots};
use crate::error::Result;
use crate::layer::Parameterized;
use crate::par::CHUNK;
use ndarray::{ArrayD, Zip};
use rayon::prelude::*;

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
    let k = Coef {
        step: (cfg.lr as f64 / bc1) as f32,
        inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
        b1: cfg.beta1,
        b2: cfg.beta2,
        eps: cfg.eps,
        weight_decay: cfg.weight_decay,
        decay: 1.0 - cfg.lr * cfg.weight_decay,
        decoupled: cfg.decoupled,
    };
    let update = |w: &mut f32, g: f32, m: &mut f32, v: &mut f32| k.apply(w, g, m, v);
    let same = w.shape() == grad.shape() && w.shape() == m.shape() && w.shape() == v.shape();
    match (
        w.as_slice_mut(),
        grad.as_slice(),
        m.as_slice_mut(),
        v.as_slice_mut(),
    ) {
        // Element-wise, so splitting into fixed chunks over the pool changes no bit.
        (Some(w), Some(g), Some(m), Some(v)) if same => {
            type Chunks<'a> = (((&'a mut [f32], &'a [f32]), &'a mut [f32]), &'a mut [f32]);
            let body = |(((w, g), m), v): Chunks<'_>| k.apply_slices(w, g, m, v);
            if w.len() <= CHUNK {
                body((((w, g), m), v));
            } else {
                w.par_chunks_mut(CHUNK)
                    .zip(g.par_chunks(CHUNK))
                    .zip(m.par_chunks_mut(CHUNK))
                    .zip(v.par_chunks_mut(CHUNK))
                    .for_each(body);
            }
        }
        _ => Zip::from(w)
            .and(grad)
            .and(m)
            .and(v)
            .for_each(|w, &g, m, v| update(w, g, m, v)),
    }
}

/// The per-step constants of [`adam_update`].
#[derive(Clone, Copy)]
struct Coef {
    step: f32,
    inv_sqrt_bc2: f32,
    b1: f32,
    b2: f32,
    eps: f32,
    weight_decay: f32,
    decay: f32,
    decoupled: bool,
}

impl Coef {
    /// The update of equal-length slices: indexed loops over re-sliced inputs (no bounds
    /// checks) with the AdamW branch hoisted, which the compiler vectorizes.
    fn apply_slices(&self, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let n = w.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        let (b1, b2, c1, c2) = (self.b1, self.b2, 1.0 - self.b1, 1.0 - self.b2);
        let (step, inv, eps) = (self.step, self.inv_sqrt_bc2, self.eps);
        if self.decoupled {
            for i in 0..n {
                let wi = w[i] * self.decay;
                let gi = g[i];
                let mi = b1 * m[i] + c1 * gi;
                let vi = b2 * v[i] + c2 * gi * gi;
                m[i] = mi;
                v[i] = vi;
                w[i] = wi - step * mi / (vi.sqrt() * inv + eps);
            }
        } else {
            for i in 0..n {
                let wi = w[i];
                let gi = g[i] + self.weight_decay * wi;
                let mi = b1 * m[i] + c1 * gi;
                let vi = b2 * v[i] + c2 * gi * gi;
                m[i] = mi;
                v[i] = vi;
                w[i] = wi - step * mi / (vi.sqrt() * inv + eps);
            }
        }
    }

    /// One element's update (the same arithmetic as [`Coef::apply_slices`]).
    #[inline(always)]
    fn apply(&self, w: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
        let g = if self.decoupled {
            *w *= self.decay;
            g
        } else {
            g + self.weight_decay * *w
        };
        *m = self.b1 * *m + (1.0 - self.b1) * g;
        *v = self.b2 * *v + (1.0 - self.b2) * g * g;
        *w -= self.step * *m / (v.sqrt() * self.inv_sqrt_bc2 + self.eps);
    }
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

    fn take_state(&mut self) -> OptimState {
        self.slots.take_state(&["m", "v"])
    }

    fn load_state(&mut self, state: OptimState) -> Result<()> {
        self.slots = Slots::from_state(state, &["m", "v"])?;
        Ok(())
    }
}
