//! The reparameterization trick: `z = μ + exp(logvar / 2) ⊙ ε`, `ε ~ N(0, I)`.
//!
//! # Shapes
//! `mu`, `logvar`, `eps`, `z`: `[n, d]`.
//!
//! # Gradients
//! With σ = exp(logvar / 2): ∂z/∂μ = 1 and ∂z/∂logvar = ½ σ ε, so
//! `dmu = dz` and `dlogvar = ½ · dz ⊙ σ ⊙ ε`. Forward keeps ε and σ for backward.

use crate::error::{CoreError, Result};
use ndarray::{Array2, Zip};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// What [`Reparam::forward`] keeps for [`Reparam::backward`].
#[derive(Debug, Clone)]
struct ReparamCache {
    eps: Array2<f32>,
    sigma: Array2<f32>,
}

/// The reparameterization step with its forward cache.
#[derive(Debug, Clone, Default)]
pub struct Reparam {
    cache: Option<ReparamCache>,
}

/// Draws standard normal noise of shape `[n, d]` from `rng`.
pub fn sample_eps(n: usize, d: usize, rng: &mut impl Rng) -> Array2<f32> {
    Array2::from_shape_simple_fn((n, d), || StandardNormal.sample(rng))
}

impl Reparam {
    /// A reparameterization step with an empty cache.
    pub fn new() -> Self {
        Reparam { cache: None }
    }

    /// `z = μ + exp(logvar/2) ⊙ ε` with fresh `ε` drawn from `rng`.
    pub fn forward(
        &mut self,
        mu: &Array2<f32>,
        logvar: &Array2<f32>,
        rng: &mut impl Rng,
    ) -> Result<Array2<f32>> {
        let eps = sample_eps(mu.nrows(), mu.ncols(), rng);
        self.forward_with_eps(mu, logvar, eps)
    }

    /// `z = μ + exp(logvar/2) ⊙ ε` with a given `ε` (which makes the step deterministic).
    pub fn forward_with_eps(
        &mut self,
        mu: &Array2<f32>,
        logvar: &Array2<f32>,
        eps: Array2<f32>,
    ) -> Result<Array2<f32>> {
        if mu.dim() != logvar.dim() || mu.dim() != eps.dim() {
            return Err(CoreError::arg(
                "reparam",
                format!(
                    "mu {:?}, logvar {:?} and eps {:?} must have one shape",
                    mu.shape(),
                    logvar.shape(),
                    eps.shape()
                ),
            ));
        }
        let sigma = logvar.mapv(|lv| (0.5 * lv).exp());
        let mut z = mu.clone();
        Zip::from(&mut z)
            .and(&sigma)
            .and(&eps)
            .for_each(|z, &s, &e| *z += s * e);
        self.cache = Some(ReparamCache { eps, sigma });
        Ok(z)
    }

    /// Takes dL/dz and returns `(dL/dμ, dL/dlogvar)`; consumes the cache.
    pub fn backward(&mut self, dz: &Array2<f32>) -> Result<(Array2<f32>, Array2<f32>)> {
        let ReparamCache { eps, sigma } = self.cache.take().ok_or_else(|| {
            CoreError::from(vae_tensor::TensorError::NoForwardCache {
                layer: "reparam".into(),
            })
        })?;
        if dz.dim() != eps.dim() {
            return Err(CoreError::arg(
                "reparam backward",
                format!("dz {:?} differs from z {:?}", dz.shape(), eps.shape()),
            ));
        }
        let dmu = dz.clone();
        let mut dlogvar = Array2::zeros(dz.raw_dim());
        Zip::from(&mut dlogvar)
            .and(dz)
            .and(&sigma)
            .and(&eps)
            .for_each(|g, &d, &s, &e| *g = 0.5 * d * s * e);
        Ok((dmu, dlogvar))
    }

    /// The ε of the last forward pass, if it has not been consumed by `backward`.
    pub fn eps(&self) -> Option<&Array2<f32>> {
        self.cache.as_ref().map(|c| &c.eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use vae_tensor::gradcheck::{check_fn, GradCheckConfig};

    #[test]
    fn forward_is_exact_on_small_numbers() {
        let mu = array![[1.0f32, -2.0]];
        let logvar = array![[0.0f32, 2.0f32.ln() * 2.0]]; // sigma = 1, 2
        let eps = array![[0.5f32, -1.0]];
        let z = Reparam::new().forward_with_eps(&mu, &logvar, eps).unwrap();
        for (a, b) in z.iter().zip([1.5f32, -4.0]) {
            assert!((a - b).abs() < 1e-6, "{z:?}");
        }
    }

    #[test]
    fn same_seed_same_z() {
        let mu = Array2::zeros((3, 4));
        let lv = Array2::zeros((3, 4));
        let z1 = Reparam::new()
            .forward(&mu, &lv, &mut StdRng::seed_from_u64(7))
            .unwrap();
        let z2 = Reparam::new()
            .forward(&mu, &lv, &mut StdRng::seed_from_u64(7))
            .unwrap();
        assert_eq!(z1, z2);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = StdRng::seed_from_u64(1);
        let (n, d) = (3, 5);
        let eps = sample_eps(n, d, &mut rng);
        let r = sample_eps(n, d, &mut rng); // random projection of z
        let base = sample_eps(n, 2 * d, &mut rng).into_dyn();
        // x = [mu | logvar] concatenated along columns.
        let f = |x: &ndarray::ArrayD<f32>| {
            let x = x.view().into_dimensionality::<ndarray::Ix2>().unwrap();
            let (mu, lv) = x.split_at(ndarray::Axis(1), d);
            let (mu, lv) = (mu.to_owned(), lv.to_owned());
            let mut rp = Reparam::new();
            let z = rp.forward_with_eps(&mu, &lv, eps.clone()).unwrap();
            let loss: f64 = z
                .iter()
                .zip(r.iter())
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            let (dmu, dlv) = rp.backward(&r).unwrap();
            let g = ndarray::concatenate(ndarray::Axis(1), &[dmu.view(), dlv.view()]).unwrap();
            Ok((loss, g.into_dyn()))
        };
        let cfg = GradCheckConfig {
            eps: 1e-3,
            ..GradCheckConfig::default()
        };
        let check = check_fn(f, &base, &cfg, &mut rng).unwrap();
        assert!(check.passed, "{check:?}");
    }

    #[test]
    fn backward_without_forward_is_an_error() {
        let e = Reparam::new().backward(&Array2::zeros((1, 1))).unwrap_err();
        assert!(matches!(
            e,
            CoreError::Tensor(vae_tensor::TensorError::NoForwardCache { .. })
        ));
    }

    #[test]
    fn mismatched_shapes_are_rejected() {
        let e = Reparam::new()
            .forward_with_eps(
                &Array2::zeros((2, 3)),
                &Array2::zeros((2, 2)),
                Array2::zeros((2, 3)),
            )
            .unwrap_err();
        assert!(matches!(e, CoreError::BadArgument { .. }));
    }
}
