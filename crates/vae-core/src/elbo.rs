//! The evidence lower bound, term by term, in nats per image.
//!
//! For an image x with encoder q(z|x) = N(μ, diag σ²) and prior p(z) = N(0, I):
//!
//! `−ELBO(x) = E_q[−log p(x|z)] + KL(q(z|x) ‖ p(z))`, estimated with one z per image.
//!
//! The training loss is the batch mean of `recon + w · KL`, where w is the (warmed-up) β.
//! Training takes the Bernoulli gradient from `vae_tensor::loss::bce_with_logits_grad_inplace`
//! (written over the logits) and the KL gradient from `vae_tensor::loss::gaussian_kl`; this
//! module holds the per-image values in f64 that training reports and evaluation and
//! importance sampling need, and the Gaussian likelihood with its gradient.
//! Images are handled flattened: `[n, C·H·W]`.
//!
//! | term | value per image | gradient |
//! |---|---|---|
//! | Bernoulli NLL on logits l | Σ softplus(l) − x·l | σ(l) − x (in vae-tensor) |
//! | Gaussian NLL, mean m, log σ² = s | Σ ½(log 2π + s + (x−m)² e^{−s}) | (m − x) e^{−s}; ∂/∂s = Σ ½(1 − (x−m)² e^{−s}) |
//! | KL(N(μ, e^{lv}) ‖ N(0, 1)) | −½ Σ (1 + lv − μ² − e^{lv}) | dμ = μ, dlv = ½(e^{lv} − 1) (in vae-tensor) |

use crate::config::{Likelihood, Variance};
use ndarray::{Array1, Array2, ArrayView2, Axis, Zip};

const LOG_2PI: f64 = 1.837_877_066_409_345_5;

/// The two terms of the negative ELBO, averaged over a batch, in nats per image.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ElboTerms {
    /// E_q[−log p(x|z)], the reconstruction term.
    pub recon_nats_per_image: f64,
    /// KL(q(z|x) ‖ p(z)).
    pub kl_nats_per_image: f64,
    /// The KL weight used for the loss (β after warm-up).
    pub beta: f32,
}

impl ElboTerms {
    /// The optimized loss `recon + β·KL`, nats per image.
    pub fn loss(&self) -> f64 {
        self.recon_nats_per_image + self.beta as f64 * self.kl_nats_per_image
    }

    /// The negative ELBO `recon + KL` (β ignored), an upper bound on −log p(x), nats per image.
    pub fn neg_elbo(&self) -> f64 {
        self.recon_nats_per_image + self.kl_nats_per_image
    }
}

impl std::fmt::Display for ElboTerms {
    /// `-ELBO x nats (recon r, KL k)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "-ELBO {:.2} nats (recon {:.2}, KL {:.2})",
            self.neg_elbo(),
            self.recon_nats_per_image,
            self.kl_nats_per_image
        )
    }
}

/// Numerically stable `log(1 + e^l)`.
#[inline]
pub fn softplus(l: f64) -> f64 {
    l.max(0.0) + (-l.abs()).exp().ln_1p()
}

/// Per-image Bernoulli negative log-likelihood `Σ softplus(l) − x·l` (nats), `[n, D]` → `[n]`.
/// Rows run in parallel; each row is summed in order, so the result does not depend on the
/// thread count.
pub fn bernoulli_nll(logits: ArrayView2<f32>, x: ArrayView2<f32>) -> Array1<f64> {
    Zip::from(logits.rows())
        .and(x.rows())
        .par_map_collect(|l, x| {
            l.iter()
                .zip(x.iter())
                .map(|(&l, &x)| softplus(l as f64) - x as f64 * l as f64)
                .sum()
        })
}

/// Per-image Gaussian negative log-likelihood with log-variance `logvar` shared by all pixels.
/// Rows run in parallel, each summed in order (the same bits on any thread count).
pub fn gaussian_nll(mean: ArrayView2<f32>, x: ArrayView2<f32>, logvar: f32) -> Array1<f64> {
    let lv = logvar as f64;
    let inv = (-lv).exp();
    Zip::from(mean.rows())
        .and(x.rows())
        .par_map_collect(|m, x| {
            let sq: f64 = m
                .iter()
                .zip(x.iter())
                .map(|(&m, &x)| (x as f64 - m as f64).powi(2))
                .sum();
            0.5 * (m.len() as f64 * (LOG_2PI + lv) + sq * inv)
        })
}

/// Gradients of `scale · Σ gaussian_nll`: `(d/dmean, d/dlogvar)`.
pub fn gaussian_nll_grad(
    mean: ArrayView2<f32>,
    x: ArrayView2<f32>,
    logvar: f32,
    scale: f32,
) -> (Array2<f32>, f64) {
    let inv = (-logvar as f64).exp();
    let dmean = Zip::from(mean)
        .and(x)
        .map_collect(|&m, &x| (scale as f64 * (m as f64 - x as f64) * inv) as f32);
    let sq: f64 = mean
        .iter()
        .zip(x.iter())
        .map(|(&m, &x)| (x as f64 - m as f64).powi(2))
        .sum();
    let dlogvar = scale as f64 * 0.5 * (mean.len() as f64 - sq * inv);
    (dmean, dlogvar)
}

/// Per-image KL(N(μ, diag e^{logvar}) ‖ N(0, I)) in nats, `[n, d]` → `[n]`.
pub fn gaussian_kl(mu: ArrayView2<f32>, logvar: ArrayView2<f32>) -> Array1<f64> {
    Zip::from(mu.rows())
        .and(logvar.rows())
        .map_collect(|m, lv| {
            -0.5 * m
                .iter()
                .zip(lv.iter())
                .map(|(&m, &lv)| {
                    let (m, lv) = (m as f64, lv as f64);
                    1.0 + lv - m * m - lv.exp()
                })
                .sum::<f64>()
        })
}

/// Per-row log N(z; μ, diag e^{logvar}) in nats (use μ = 0, logvar = 0 for the prior).
pub fn log_normal(z: ArrayView2<f32>, mu: ArrayView2<f32>, logvar: ArrayView2<f32>) -> Array1<f64> {
    let mut out = Array1::zeros(z.nrows());
    for (i, o) in out.iter_mut().enumerate() {
        *o = z
            .row(i)
            .iter()
            .zip(mu.row(i))
            .zip(logvar.row(i))
            .map(|((&z, &m), &lv)| {
                let (z, m, lv) = (z as f64, m as f64, lv as f64);
                -0.5 * (LOG_2PI + lv + (z - m).powi(2) * (-lv).exp())
            })
            .sum();
    }
    out
}

/// Per-row log N(z; 0, I) in nats.
pub fn log_standard_normal(z: ArrayView2<f32>) -> Array1<f64> {
    z.map_axis(Axis(1), |r| {
        r.iter()
            .map(|&z| -0.5 * (LOG_2PI + (z as f64).powi(2)))
            .sum()
    })
}

/// Per-image −log p(x|z) for a likelihood, given the decoder output `out` (logits or mean)
/// and the current likelihood log-variance (ignored for Bernoulli).
pub fn recon_nll(
    likelihood: &Likelihood,
    out: ArrayView2<f32>,
    x: ArrayView2<f32>,
    logvar: f32,
) -> Array1<f64> {
    match likelihood {
        Likelihood::Bernoulli => bernoulli_nll(out, x),
        Likelihood::Gaussian(_) => gaussian_nll(out, x, logvar),
    }
}

/// The likelihood's log-variance for a config without a learned one.
pub fn fixed_logvar(likelihood: &Likelihood) -> f32 {
    match likelihood {
        Likelihood::Gaussian(Variance::Fixed(s2)) => s2.ln(),
        Likelihood::Gaussian(Variance::Learned { init_logvar }) => *init_logvar,
        Likelihood::Bernoulli => 0.0,
    }
}

/// Numerically stable `log(mean(exp(v)))` over a slice (−∞ for an empty slice).
pub fn log_mean_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    let s: f64 = v.iter().map(|&a| (a - m).exp()).sum();
    m + (s / v.len() as f64).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use vae_tensor::gradcheck::{check_fn, GradCheckConfig};

    #[test]
    fn bernoulli_matches_hand_values() {
        // l = 0 -> log 2 for any x; l = 2, x = 1 -> softplus(-2).
        let l = array![[0.0f32, 2.0]];
        let x = array![[0.3f32, 1.0]];
        let v = bernoulli_nll(l.view(), x.view());
        let want = 2f64.ln() + (1.0 + (-2f64).exp()).ln();
        assert!((v[0] - want).abs() < 1e-9);
        // Extreme logits stay finite.
        let v = bernoulli_nll(array![[1e4f32, -1e4]].view(), array![[0.0f32, 1.0]].view());
        assert!((v[0] - 2e4).abs() < 1e-6);
    }

    #[test]
    fn kl_is_zero_at_the_prior_and_matches_closed_form() {
        let kl = gaussian_kl(array![[0.0f32, 0.0]].view(), array![[0.0f32, 0.0]].view());
        assert_eq!(kl[0], 0.0);
        let kl = gaussian_kl(array![[1.0f32]].view(), array![[0.0f32]].view());
        assert!((kl[0] - 0.5).abs() < 1e-12);
    }

    #[test]
    fn log_mean_exp_is_stable() {
        assert!((log_mean_exp(&[-1000.0, -1000.0]) + 1000.0).abs() < 1e-12);
        assert!((log_mean_exp(&[0.0, 2f64.ln()]) - 1.5f64.ln()).abs() < 1e-12);
        assert_eq!(log_mean_exp(&[]), f64::NEG_INFINITY);
    }

    #[test]
    fn log_normal_matches_standard() {
        let z = array![[0.3f32, -1.2]];
        let a = log_normal(
            z.view(),
            Array2::zeros((1, 2)).view(),
            Array2::zeros((1, 2)).view(),
        );
        let b = log_standard_normal(z.view());
        assert!((a[0] - b[0]).abs() < 1e-12);
    }

    fn gc<F>(f: F, x: &ndarray::ArrayD<f32>)
    where
        F: FnMut(&ndarray::ArrayD<f32>) -> vae_tensor::Result<(f64, ndarray::ArrayD<f32>)>,
    {
        let cfg = GradCheckConfig {
            eps: 1e-3,
            ..GradCheckConfig::default()
        };
        let c = check_fn(f, x, &cfg, &mut StdRng::seed_from_u64(3)).unwrap();
        assert!(c.passed, "{c:?}");
    }

    #[test]
    fn gaussian_gradients_match_finite_differences() {
        let mut rng = StdRng::seed_from_u64(2);
        let x = crate::reparam::sample_eps(3, 6, &mut rng).mapv(|v| 1.0 / (1.0 + (-v).exp()));
        let a = crate::reparam::sample_eps(3, 6, &mut rng).into_dyn();
        let scale = 1.0 / 3.0;
        gc(
            |m| {
                let m = m.view().into_dimensionality().unwrap();
                let v = gaussian_nll(m, x.view(), -0.7).sum() * scale as f64;
                Ok((v, gaussian_nll_grad(m, x.view(), -0.7, scale).0.into_dyn()))
            },
            &a,
        );
        let lv0 = ndarray::ArrayD::from_elem(vec![1], -0.4f32);
        let mean = a
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap()
            .to_owned();
        gc(
            |lv| {
                let v = gaussian_nll(mean.view(), x.view(), lv[[0]]).sum();
                let g = gaussian_nll_grad(mean.view(), x.view(), lv[[0]], 1.0).1;
                Ok((v, ndarray::ArrayD::from_elem(vec![1], g as f32)))
            },
            &lv0,
        );
    }
}
