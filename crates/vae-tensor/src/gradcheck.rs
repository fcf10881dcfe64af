//! Finite-difference gradient checks, reused by every crate that writes a backward pass.
//!
//! The checked loss is a *random projection* `L = Σ r ⊙ y` with a fixed random `r`: a plain
//! `sum()` would send all-ones upstream and hide transposed indices. Numerical derivatives
//! are central differences `(L(θ + ε) − L(θ − ε)) / 2ε` with the loss accumulated in f64.
//! A coordinate passes when `|analytic − numeric| ≤ atol + rtol · max(|analytic|, |numeric|)`.

use crate::error::Result;
use crate::layer::{zero_grad, Layer, Mode};
use ndarray::ArrayD;
use rand::seq::index::sample;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// Settings of a gradient check.
#[derive(Debug, Clone, Copy)]
pub struct GradCheckConfig {
    /// Finite-difference step.
    pub eps: f32,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// At most this many coordinates are checked per tensor (a seeded random subset).
    pub max_coords: usize,
}

impl Default for GradCheckConfig {
    fn default() -> Self {
        GradCheckConfig {
            eps: 1e-2,
            rtol: 1e-2,
            atol: 1e-3,
            max_coords: 64,
        }
    }
}

/// The worst disagreement found for one tensor (the input or a parameter).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorCheck {
    /// `"input"` or the parameter's dotted name.
    pub name: String,
    /// Number of coordinates compared.
    pub checked: usize,
    /// Largest `|analytic − numeric| − rtol · max(|a|, |n|)`, i.e. the margin used against `atol`.
    pub worst_excess: f64,
    /// The analytic and numeric values at the worst coordinate.
    pub worst_pair: (f64, f64),
    /// True when every coordinate passed.
    pub passed: bool,
}

/// The result of [`check_layer`]: one [`TensorCheck`] per tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct GradCheckReport {
    /// Input first, then every parameter in visiting order.
    pub tensors: Vec<TensorCheck>,
}

impl GradCheckReport {
    /// True when every tensor passed.
    pub fn passed(&self) -> bool {
        self.tensors.iter().all(|t| t.passed)
    }

    /// Panics with a readable table when any tensor failed (for tests).
    #[track_caller]
    pub fn assert_passed(&self) {
        if !self.passed() {
            panic!("gradient check failed:\n{self}");
        }
    }
}

impl std::fmt::Display for GradCheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for t in &self.tensors {
            writeln!(
                f,
                "  {:<24} {:>4} coords  worst analytic {:+.6e} numeric {:+.6e}  {}",
                t.name,
                t.checked,
                t.worst_pair.0,
                t.worst_pair.1,
                if t.passed { "ok" } else { "FAILED" }
            )?;
        }
        Ok(())
    }
}

fn projected_loss(layer: &mut dyn Layer, x: &ArrayD<f32>, r: &ArrayD<f32>) -> Result<f64> {
    let y = layer.forward(x.clone(), Mode::Eval)?;
    Ok(y.iter()
        .zip(r.iter())
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum())
}

fn compare(
    name: &str,
    analytic: &ArrayD<f32>,
    coords: &[usize],
    mut numeric_at: impl FnMut(usize) -> Result<f64>,
    cfg: &GradCheckConfig,
) -> Result<TensorCheck> {
    let mut worst = TensorCheck {
        name: name.to_string(),
        checked: coords.len(),
        worst_excess: f64::NEG_INFINITY,
        worst_pair: (0.0, 0.0),
        passed: true,
    };
    let flat: Vec<f32> = analytic.iter().copied().collect();
    for &i in coords {
        let a = flat[i] as f64;
        let n = numeric_at(i)?;
        let excess = (a - n).abs() - cfg.rtol * a.abs().max(n.abs());
        if excess > worst.worst_excess || !excess.is_finite() {
            worst.worst_excess = excess;
            worst.worst_pair = (a, n);
        }
        if excess.is_nan() || excess > cfg.atol {
            worst.passed = false;
        }
    }
    Ok(worst)
}

fn pick(len: usize, max: usize, rng: &mut impl Rng) -> Vec<usize> {
    if len <= max {
        (0..len).collect()
    } else {
        sample(rng, len, max).into_vec()
    }
}

/// Checks dL/dx and every parameter gradient of `layer` at input `x` by central differences.
///
/// The layer's parameter gradients are zeroed first and hold the analytic gradient of the
/// projected loss afterwards.
pub fn check_layer(
    layer: &mut dyn Layer,
    x: &ArrayD<f32>,
    cfg: &GradCheckConfig,
    rng: &mut impl Rng,
) -> Result<GradCheckReport> {
    let y = layer.forward(x.clone(), Mode::Eval)?;
    let r: ArrayD<f32> = ArrayD::from_shape_simple_fn(y.raw_dim(), || StandardNormal.sample(rng));

    zero_grad(layer);
    layer.forward(x.clone(), Mode::Train)?;
    let dx = layer.backward(r.clone())?;

    let mut tensors = Vec::new();
    let eps = cfg.eps;
    let coords = pick(x.len(), cfg.max_coords, rng);
    let mut xp = x.clone();
    tensors.push(compare(
        "input",
        &dx,
        &coords,
        |i| {
            let orig = *xp.iter().nth(i).expect("coordinate in range");
            *xp.iter_mut().nth(i).expect("coordinate in range") = orig + eps;
            let lp = projected_loss(layer, &xp, &r)?;
            *xp.iter_mut().nth(i).expect("coordinate in range") = orig - eps;
            let lm = projected_loss(layer, &xp, &r)?;
            *xp.iter_mut().nth(i).expect("coordinate in range") = orig;
            Ok((lp - lm) / (2.0 * eps as f64))
        },
        cfg,
    )?);

    // Snapshot the analytic parameter gradients, then perturb each parameter by name.
    let mut grads: Vec<(String, ArrayD<f32>)> = Vec::new();
    layer.visit_params("", &mut |name, p| {
        grads.push((name.to_string(), p.grad.clone()))
    });
    for (name, g) in grads {
        let coords = pick(g.len(), cfg.max_coords, rng);
        let check = compare(
            &name,
            &g,
            &coords,
            |i| {
                let set = |layer: &mut dyn Layer, delta: f32| {
                    layer.visit_params("", &mut |n, p| {
                        if n == name {
                            *p.value.iter_mut().nth(i).expect("coordinate in range") += delta;
                        }
                    })
                };
                set(layer, eps);
                let lp = projected_loss(layer, x, &r)?;
                set(layer, -2.0 * eps);
                let lm = projected_loss(layer, x, &r)?;
                set(layer, eps);
                Ok((lp - lm) / (2.0 * eps as f64))
            },
            cfg,
        )?;
        tensors.push(check);
    }
    Ok(GradCheckReport { tensors })
}

/// Checks the gradient of a scalar function `f(x) -> (value, dvalue/dx)` by central
/// differences, for losses and other functions that are not layers.
pub fn check_fn(
    mut f: impl FnMut(&ArrayD<f32>) -> Result<(f64, ArrayD<f32>)>,
    x: &ArrayD<f32>,
    cfg: &GradCheckConfig,
    rng: &mut impl Rng,
) -> Result<TensorCheck> {
    let (_, grad) = f(x)?;
    let coords = pick(x.len(), cfg.max_coords, rng);
    let mut xp = x.to_owned();
    compare(
        "input",
        &grad,
        &coords,
        |i| {
            let orig = *xp.iter().nth(i).expect("coordinate in range");
            *xp.iter_mut().nth(i).expect("coordinate in range") = orig + cfg.eps;
            let lp = f(&xp)?.0;
            *xp.iter_mut().nth(i).expect("coordinate in range") = orig - cfg.eps;
            let lm = f(&xp)?.0;
            *xp.iter_mut().nth(i).expect("coordinate in range") = orig;
            Ok((lp - lm) / (2.0 * cfg.eps as f64))
        },
        cfg,
    )
}
