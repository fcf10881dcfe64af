//! The layer contract: [`Layer`], [`Param`] and [`Mode`].
//!
//! # The contract
//! - `forward(x, Mode::Train)` keeps in the layer whatever `backward` needs (the input, a
//!   mask, the output). `Mode::Eval` keeps nothing.
//! - `backward(dy)` takes dL/dy (same shape as the last output), returns dL/dx (same shape as
//!   the last input) and **adds** dL/dparam into every [`Param::grad`]. It consumes the cache:
//!   a second `backward` without a new `forward` is [`TensorError::NoForwardCache`].
//! - Gradients accumulate until [`zero_grad`] is called: two backward passes over the same
//!   forward data give twice the gradient.
//! - `visit_params` visits every parameter with a dotted name (`encoder.conv1.weight`);
//!   containers prefix their children's names. Optimizers, checkpoints, gradient norms and
//!   NaN checks all go through this one visitor.

use crate::error::{Result, TensorError};
use crate::par;
use ndarray::ArrayD;

/// Whether a forward pass is followed by a backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Cache what backward needs.
    Train,
    /// Cache nothing; backward is not allowed afterwards.
    Eval,
}

/// A trainable tensor and its accumulated gradient (always the same shape).
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The current value.
    pub value: ArrayD<f32>,
    /// dL/dvalue, accumulated by `backward` until zeroed.
    pub grad: ArrayD<f32>,
}

impl Param {
    /// A parameter with the given value and a zero gradient.
    pub fn new(value: ArrayD<f32>) -> Self {
        let grad = ArrayD::zeros(value.raw_dim());
        Param { value, grad }
    }

    /// Number of scalars in the parameter.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// True when the parameter holds no scalars.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

/// A differentiable layer with hand-written forward and backward passes. See the
/// [module docs](self) for the contract.
pub trait Layer: Parameterized + Send {
    /// Runs the layer. In [`Mode::Train`] the layer caches what `backward` needs.
    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>>;

    /// Takes dL/dy, returns dL/dx and adds the parameter gradients into each [`Param::grad`].
    fn backward(&mut self, dy: ArrayD<f32>) -> Result<ArrayD<f32>>;

    /// The output shape for an input shape (batch dimension included), without data.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>>;

    /// A short human-readable description, used in error messages and summaries.
    fn describe(&self) -> String;
}

/// Anything that owns named parameters: every [`Layer`], and models made of several layers
/// (a VAE's encoder, heads and decoder). Optimizers, checkpoints and the helpers below work
/// on this trait, so they serve a single layer and a whole model alike.
pub trait Parameterized {
    /// Visits every parameter with its dotted name, prefixed by `prefix` (`""` at the top).
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param));
}

/// Implements [`Parameterized`] with no parameters, for layers that have none.
#[macro_export]
macro_rules! no_params {
    ($($t:ty),* $(,)?) => {
        $(impl $crate::layer::Parameterized for $t {
            fn visit_params(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, &mut $crate::layer::Param)) {}
        })*
    };
}

/// Joins a prefix and a name with a dot (`"enc" + "weight"` = `"enc.weight"`).
pub fn join_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Sets every parameter gradient of `layer` to zero (in parallel over fixed chunks).
pub fn zero_grad<P: Parameterized + ?Sized>(layer: &mut P) {
    layer.visit_params("", &mut |_, p| match p.grad.as_slice_mut() {
        Some(g) => par::fill(g, 0.0),
        None => p.grad.fill(0.0),
    });
}

/// Total number of trainable scalars in `layer`.
pub fn num_params<P: Parameterized + ?Sized>(layer: &mut P) -> usize {
    let mut n = 0;
    layer.visit_params("", &mut |_, p| n += p.len());
    n
}

/// The global L2 norm of all parameter gradients (accumulated in f64 over fixed chunks,
/// see [`crate::par`], so the value does not depend on the thread count).
pub fn grad_norm<P: Parameterized + ?Sized>(layer: &mut P) -> f64 {
    let mut s = 0.0f64;
    let sq = |g: f32| (g as f64) * (g as f64);
    layer.visit_params("", &mut |_, p| {
        s += match p.grad.as_slice() {
            Some(g) => par::sum_f64(g, sq),
            None => p.grad.iter().map(|&g| sq(g)).sum::<f64>(),
        }
    });
    s.sqrt()
}

/// Scales all gradients so that their global L2 norm is at most `max_norm`; returns the
/// norm before clipping. A non-finite norm is an error and leaves the gradients unchanged.
pub fn clip_grad_norm<P: Parameterized + ?Sized>(layer: &mut P, max_norm: f64) -> Result<f64> {
    let norm = grad_norm(layer);
    if !norm.is_finite() {
        return Err(TensorError::NonFinite {
            op: "clip_grad_norm".into(),
            what: "gradient norm".into(),
        });
    }
    if norm > max_norm && norm > 0.0 {
        let scale = (max_norm / norm) as f32;
        layer.visit_params("", &mut |_, p| match p.grad.as_slice_mut() {
            Some(g) => par::map_inplace(g, |g| g * scale),
            None => p.grad.mapv_inplace(|g| g * scale),
        });
    }
    Ok(norm)
}

/// `x` itself when it is in standard (row-major, contiguous) layout, else a row-major copy:
/// what the layers call before working on `x` as a slice.
pub fn into_standard(x: ArrayD<f32>) -> ArrayD<f32> {
    if x.is_standard_layout() {
        x
    } else {
        x.as_standard_layout().into_owned()
    }
}

/// Takes the cache out of an `Option`, or reports [`TensorError::NoForwardCache`].
pub fn take_cache<T>(cache: &mut Option<T>, layer: &str) -> Result<T> {
    cache.take().ok_or_else(|| TensorError::NoForwardCache {
        layer: layer.to_string(),
    })
}

/// Checks that `dy` has exactly the shape of the cached output.
pub fn check_dy(layer: &str, expected: &[usize], dy: &ArrayD<f32>) -> Result<()> {
    if dy.shape() != expected {
        return Err(TensorError::shape(
            layer,
            format!("dy of shape {expected:?} (the last output's)"),
            dy.shape(),
        ));
    }
    Ok(())
}
