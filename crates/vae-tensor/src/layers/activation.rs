//! Element-wise activations: ReLU, LeakyReLU, Sigmoid, Tanh.
//!
//! Every derivative here is a function of the output. The ReLUs need only its sign (which
//! equals the input's sign when the slope is non-negative), so they cache one byte per
//! element ([`Mask`]); Sigmoid and Tanh cache the output. Forward and backward run over
//! the rayon pool in fixed chunks ([`crate::par`]), element by element, so the result does
//! not depend on the thread count.

use crate::error::Result;
use crate::layer::{check_dy, into_standard, take_cache, Layer, Mode};
use crate::par::{self, Mask};
use ndarray::ArrayD;

/// What a sign-only activation keeps for backward: the output shape and one byte per
/// element (`y > 0`).
#[derive(Debug, Clone)]
struct MaskCache {
    shape: Vec<usize>,
    mask: Mask,
}

/// Layers whose derivative is a function of the sign of the output (ReLU, LeakyReLU with a
/// non-negative slope): they cache a [`Mask`] of `y > 0`, a quarter of the output's memory.
macro_rules! sign_layer {
    ($(#[$doc:meta])* $name:ident, $label:expr, fwd: |$x:ident, $s:ident| $f:expr, bwd: |$pos:ident, $dy:ident, $s2:ident| $g:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default)]
        pub struct $name {
            cache: Option<MaskCache>,
            slope: f32,
        }

        $crate::no_params!($name);

        impl Layer for $name {
            fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
                let $s = self.slope;
                let mut x = into_standard(x);
                let data = x.as_slice_mut().expect("standard layout");
                if mode == Mode::Train {
                    let mask = par::map_inplace_mask(data, |$x| $f, |y| y > 0.0);
                    self.cache = Some(MaskCache { shape: x.shape().to_vec(), mask });
                } else {
                    par::map_inplace(data, |$x| $f);
                    self.cache = None;
                }
                Ok(x)
            }

            fn backward(&mut self, dy: ArrayD<f32>) -> Result<ArrayD<f32>> {
                let cached = take_cache(&mut self.cache, $label)?;
                check_dy($label, &cached.shape, &dy)?;
                let $s2 = self.slope;
                let mut dy = into_standard(dy);
                let data = dy.as_slice_mut().expect("standard layout");
                par::map_with_mask(data, &cached.mask, |$dy, $pos| $g);
                Ok(dy)
            }

            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
                Ok(input.to_vec())
            }

            fn describe(&self) -> String {
                $label.to_string()
            }
        }
    };
}

/// Layers whose derivative is a function of the output value (Sigmoid, Tanh): they cache
/// the output.
macro_rules! elementwise_layer {
    ($(#[$doc:meta])* $name:ident, $label:expr, fwd: |$x:ident| $f:expr, bwd: |$y:ident, $dy:ident| $g:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default)]
        pub struct $name {
            cache: Option<ArrayD<f32>>,
        }

        $crate::no_params!($name);

        impl Layer for $name {
            fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
                let mut x = into_standard(x);
                par::map_inplace(x.as_slice_mut().expect("standard layout"), |$x| $f);
                self.cache = (mode == Mode::Train).then(|| x.clone());
                Ok(x)
            }

            fn backward(&mut self, dy: ArrayD<f32>) -> Result<ArrayD<f32>> {
                let cached = take_cache(&mut self.cache, $label)?;
                check_dy($label, cached.shape(), &dy)?;
                let mut dy = into_standard(dy);
                par::zip_map_inplace(
                    dy.as_slice_mut().expect("standard layout"),
                    cached.as_slice().expect("standard layout"),
                    |$dy, $y| $g,
                );
                Ok(dy)
            }

            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
                Ok(input.to_vec())
            }

            fn describe(&self) -> String {
                $label.to_string()
            }
        }
    };
}

sign_layer!(
    /// `y = max(x, 0)`; `dx = dy · [y > 0]`. PyTorch: `nn.ReLU`.
    ///
    /// ```
    /// use ndarray::arr1;
    /// use vae_tensor::{layers::activation::ReLU, Layer, Mode};
    /// let mut relu = ReLU::new();
    /// let y = relu.forward(arr1(&[-1.0f32, 0.5]).into_dyn(), Mode::Train)?;
    /// assert_eq!(y.as_slice().unwrap(), &[0.0, 0.5]);
    /// let dx = relu.backward(arr1(&[3.0f32, 3.0]).into_dyn())?;
    /// assert_eq!(dx.as_slice().unwrap(), &[0.0, 3.0]);
    /// # Ok::<(), vae_tensor::TensorError>(())
    /// ```
    ReLU, "ReLU",
    fwd: |x, _s| x.max(0.0),
    bwd: |pos, dy, _s| if pos { dy } else { 0.0 }
);

sign_layer!(
    /// `y = x` for `x > 0`, else `slope · x`; `dx = dy` or `slope · dy`. PyTorch:
    /// `nn.LeakyReLU(negative_slope)`.
    LeakyReLU, "LeakyReLU",
    fwd: |x, s| if x > 0.0 { x } else { s * x },
    bwd: |pos, dy, s| if pos { dy } else { s * dy }
);

elementwise_layer!(
    /// `y = 1 / (1 + e^−x)`; `dx = dy · y (1 − y)`. PyTorch: `nn.Sigmoid`.
    Sigmoid, "Sigmoid",
    fwd: |x| sigmoid(x),
    bwd: |y, dy| dy * y * (1.0 - y)
);

elementwise_layer!(
    /// `y = tanh x`; `dx = dy (1 − y²)`. PyTorch: `nn.Tanh`.
    Tanh, "Tanh",
    fwd: |x| x.tanh(),
    bwd: |y, dy| dy * (1.0 - y * y)
);

/// The logistic function, computed without overflow for large |x|.
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl ReLU {
    /// A ReLU layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl LeakyReLU {
    /// A LeakyReLU with the given negative slope (PyTorch's default is 0.01).
    ///
    /// # Panics
    /// If `slope` is negative or not finite (the backward pass reads the sign of the output).
    #[track_caller]
    pub fn new(slope: f32) -> Self {
        assert!(
            slope.is_finite() && slope >= 0.0,
            "LeakyReLU: slope must be finite and >= 0, got {slope}"
        );
        LeakyReLU { cache: None, slope }
    }
}

impl Sigmoid {
    /// A Sigmoid layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Tanh {
    /// A Tanh layer.
    pub fn new() -> Self {
        Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check_layer, GradCheckConfig};
    use crate::TensorError;
    use rand::{rngs::StdRng, SeedableRng};
    use rand_distr::{Distribution, StandardNormal};

    fn input(rng: &mut StdRng, shape: &[usize]) -> ArrayD<f32> {
        // Keep values away from ReLU's kink so central differences are exact.
        ArrayD::from_shape_simple_fn(shape, || {
            let v: f32 = StandardNormal.sample(rng);
            if v.abs() < 0.05 {
                v + 0.1f32.copysign(v)
            } else {
                v
            }
        })
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = StdRng::seed_from_u64(3);
        let cfg = GradCheckConfig {
            eps: 1e-2,
            ..GradCheckConfig::default()
        };
        let layers: Vec<Box<dyn Layer>> = vec![
            Box::new(ReLU::new()),
            Box::new(LeakyReLU::new(0.2)),
            Box::new(Sigmoid::new()),
            Box::new(Tanh::new()),
        ];
        for mut layer in layers {
            for shape in [&[3usize, 5][..], &[2, 3, 4, 5]] {
                let x = input(&mut rng, shape);
                let report = check_layer(layer.as_mut(), &x, &cfg, &mut rng).unwrap();
                assert!(report.passed(), "{}:\n{report}", layer.describe());
            }
        }
    }

    #[test]
    fn backward_needs_a_training_forward() {
        let mut relu = ReLU::new();
        relu.forward(ArrayD::zeros(vec![2, 2]), Mode::Eval).unwrap();
        let err = relu.backward(ArrayD::zeros(vec![2, 2])).unwrap_err();
        assert!(matches!(err, TensorError::NoForwardCache { .. }));
        relu.forward(ArrayD::zeros(vec![2, 2]), Mode::Train)
            .unwrap();
        let err = relu.backward(ArrayD::zeros(vec![2, 3])).unwrap_err();
        assert!(matches!(err, TensorError::ShapeMismatch { .. }));
    }

    #[test]
    fn sigmoid_is_stable_at_extremes() {
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
    }
}
