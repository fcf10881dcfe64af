//! Losses: each returns its value (accumulated in f64) and its gradient together.
//!
//! The reduction is explicit ([`Reduction`]); VAE papers report nats *per image*, which is
//! [`Reduction::BatchMean`]: the sum over every element divided by the batch size.

use crate::error::{Result, TensorError};
use crate::layers::activation::sigmoid;
use ndarray::{Array1, Array2, ArrayD, Axis, Zip};

/// How element losses are combined into one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Sum over every element.
    Sum,
    /// Mean over every element (PyTorch's default `reduction="mean"`).
    Mean,
    /// Sum over every element divided by the batch size (dimension 0): "per image".
    BatchMean,
}

impl Reduction {
    fn scale(self, shape: &[usize]) -> f64 {
        match self {
            Reduction::Sum => 1.0,
            Reduction::Mean => 1.0 / shape.iter().product::<usize>().max(1) as f64,
            Reduction::BatchMean => 1.0 / shape.first().copied().unwrap_or(1).max(1) as f64,
        }
    }
}

/// A loss value and its gradient with respect to the prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct LossOut {
    /// The reduced loss.
    pub value: f64,
    /// dvalue/dprediction, the same shape as the prediction.
    pub grad: ArrayD<f32>,
}

/// The KL divergence of a diagonal Gaussian to N(0, I) and its gradients.
#[derive(Debug, Clone, PartialEq)]
pub struct KlOut {
    /// The reduced KL in nats.
    pub value: f64,
    /// dKL/dmu.
    pub dmu: Array2<f32>,
    /// dKL/dlogvar.
    pub dlogvar: Array2<f32>,
}

fn same_shape(op: &str, a: &[usize], b: &[usize]) -> Result<()> {
    if a != b || a.is_empty() {
        return Err(TensorError::shape(
            op,
            format!("target of the prediction's shape {a:?}"),
            b,
        ));
    }
    Ok(())
}

/// Binary cross-entropy on logits, stable for any logit:
/// `ℓ(x, t) = max(x, 0) − x·t + log(1 + e^−|x|)`, `dℓ/dx = σ(x) − t`.
/// Targets may be any value in [0, 1] (grey levels). PyTorch: `F.binary_cross_entropy_with_logits`.
///
/// ```
/// use ndarray::arr2;
/// use vae_tensor::loss::{bce_with_logits, Reduction};
/// let out = bce_with_logits(&arr2(&[[0.0f32, 0.0]]).into_dyn(), &arr2(&[[1.0f32, 0.0]]).into_dyn(), Reduction::Sum)?;
/// assert!((out.value - 2.0 * 2f64.ln()).abs() < 1e-6);
/// assert_eq!(out.grad.iter().copied().collect::<Vec<_>>(), vec![-0.5, 0.5]);
/// # Ok::<(), vae_tensor::TensorError>(())
/// ```
pub fn bce_with_logits(
    logits: &ArrayD<f32>,
    targets: &ArrayD<f32>,
    reduction: Reduction,
) -> Result<LossOut> {
    same_shape("bce_with_logits", logits.shape(), targets.shape())?;
    let scale = reduction.scale(logits.shape());
    let grad_of = |x: f32, t: f32| ((sigmoid(x) - t) as f64 * scale) as f32;
    let (l, t) = (logits.as_standard_layout(), targets.as_standard_layout());
    let mut grad = vec![0.0f32; l.len()];
    // Fixed chunks, sums in order: the same bits on any thread count.
    let value = crate::par::zip_map_sum_f64(
        &mut grad,
        l.as_slice().expect("standard layout"),
        t.as_slice().expect("standard layout"),
        |x, t| (bce_elem(x, t), grad_of(x, t)),
    );
    Ok(LossOut {
        value: value * scale,
        grad: ArrayD::from_shape_vec(logits.raw_dim(), grad).expect("same element count"),
    })
}

/// The gradient of [`bce_with_logits`] (the same values as its `grad`) written over the
/// logits, without computing the loss value: one pass, no allocation.
pub fn bce_with_logits_grad_inplace(
    logits: &mut ArrayD<f32>,
    targets: &ArrayD<f32>,
    reduction: Reduction,
) -> Result<()> {
    same_shape(
        "bce_with_logits_grad_inplace",
        logits.shape(),
        targets.shape(),
    )?;
    let scale = reduction.scale(logits.shape());
    let grad_of = |x: f32, t: f32| ((sigmoid(x) - t) as f64 * scale) as f32;
    if !logits.is_standard_layout() {
        *logits = logits.as_standard_layout().into_owned();
    }
    let t = targets.as_standard_layout();
    crate::par::zip_map_inplace(
        logits.as_slice_mut().expect("standard layout"),
        t.as_slice().expect("standard layout"),
        grad_of,
    );
    Ok(())
}

#[inline]
fn bce_elem(x: f32, t: f32) -> f64 {
    let (x, t) = (x as f64, t as f64);
    x.max(0.0) - x * t + (-x.abs()).exp().ln_1p()
}

/// Per-sample BCE-with-logits sums (over every non-batch dimension), without gradient: the
/// `−log p(x | z)` of a Bernoulli decoder, for importance sampling.
pub fn bce_with_logits_per_sample(
    logits: &ArrayD<f32>,
    targets: &ArrayD<f32>,
) -> Result<Array1<f64>> {
    same_shape(
        "bce_with_logits_per_sample",
        logits.shape(),
        targets.shape(),
    )?;
    Ok(logits
        .axis_iter(Axis(0))
        .zip(targets.axis_iter(Axis(0)))
        .map(|(l, t)| l.iter().zip(t.iter()).map(|(&x, &t)| bce_elem(x, t)).sum())
        .collect())
}

/// Squared error `ℓ = (p − t)²`, `dℓ/dp = 2 (p − t)`. PyTorch: `F.mse_loss`.
pub fn mse(pred: &ArrayD<f32>, target: &ArrayD<f32>, reduction: Reduction) -> Result<LossOut> {
    same_shape("mse", pred.shape(), target.shape())?;
    let scale = reduction.scale(pred.shape());
    let mut value = 0.0f64;
    let mut grad = ArrayD::zeros(pred.raw_dim());
    Zip::from(&mut grad)
        .and(pred)
        .and(target)
        .for_each(|g, &p, &t| {
            let d = p as f64 - t as f64;
            value += d * d;
            *g = (2.0 * d * scale) as f32;
        });
    Ok(LossOut {
        value: value * scale,
        grad,
    })
}

/// Softmax cross-entropy over classes, for `[N, C]` logits with `[N]` labels or `[N, C, H, W]`
/// logits with `[N, H, W]` labels (one label per pixel).
///
/// With class weights `w` and the set `S` of non-ignored positions, the value is the weighted
/// mean `Σ_{i∈S} w[y_i] · (−log softmax(x_i)[y_i]) / Σ_{i∈S} w[y_i]`, as PyTorch's
/// `F.cross_entropy(weight=w, ignore_index=k)`; the gradient is
/// `w[y_i] (softmax(x_i) − onehot(y_i)) / Σ w`. When every position is ignored the value is 0
/// and the gradient zero. A label ≥ C that is not the ignore index is an error.
pub fn softmax_cross_entropy(
    logits: &ArrayD<f32>,
    labels: &ArrayD<usize>,
    class_weights: Option<&[f32]>,
    ignore_index: Option<usize>,
) -> Result<LossOut> {
    const OP: &str = "softmax_cross_entropy";
    let ls = logits.shape();
    let ok = ls.len() >= 2
        && labels.ndim() + 1 == ls.len()
        && labels.shape()[0] == ls[0]
        && labels.shape()[1..] == ls[2..];
    if !ok {
        return Err(TensorError::shape(
            OP,
            format!("labels of shape [N, spatial...] for logits {ls:?}"),
            labels.shape(),
        ));
    }
    let c = ls[1];
    if let Some(w) = class_weights {
        if w.len() != c {
            return Err(TensorError::shape(
                OP,
                format!("{c} class weights"),
                &[w.len()],
            ));
        }
    }
    // Move classes last: [N, C, S] -> positions x classes.
    let n = ls[0];
    let s: usize = ls[2..].iter().product();
    let x = logits
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order((n, c, s))
        .expect("element count unchanged");
    let y: Vec<usize> = labels.iter().copied().collect();
    let mut grad = ndarray::Array3::<f32>::zeros((n, c, s));
    let mut total = 0.0f64;
    let mut weight_sum = 0.0f64;
    let mut probs = vec![0.0f64; c];
    for b in 0..n {
        for p in 0..s {
            let label = y[b * s + p];
            if Some(label) == ignore_index {
                continue;
            }
            if label >= c {
                return Err(TensorError::config(
                    OP,
                    format!(
                        "label {label} at position {} is not below the class count {c}",
                        b * s + p
                    ),
                ));
            }
            let w = class_weights.map_or(1.0, |w| w[label] as f64);
            let max = (0..c)
                .map(|k| x[[b, k, p]])
                .fold(f32::NEG_INFINITY, f32::max) as f64;
            let mut z = 0.0f64;
            for (k, pk) in probs.iter_mut().enumerate() {
                *pk = (x[[b, k, p]] as f64 - max).exp();
                z += *pk;
            }
            total += w * (z.ln() + max - x[[b, label, p]] as f64);
            weight_sum += w;
            for (k, pk) in probs.iter().enumerate() {
                let onehot = if k == label { 1.0 } else { 0.0 };
                grad[[b, k, p]] = (w * (pk / z - onehot)) as f32;
            }
        }
    }
    if weight_sum > 0.0 {
        let inv = (1.0 / weight_sum) as f32;
        grad.mapv_inplace(|g| g * inv);
        total /= weight_sum;
    }
    let grad = grad
        .into_shape_with_order(ls.to_vec())
        .expect("element count unchanged");
    Ok(LossOut { value: total, grad })
}

fn check_gaussian(op: &str, mu: &Array2<f32>, logvar: &Array2<f32>) -> Result<()> {
    if mu.dim() != logvar.dim() {
        return Err(TensorError::shape(
            op,
            format!("logvar of mu's shape {:?}", mu.shape()),
            logvar.shape(),
        ));
    }
    Ok(())
}

/// KL(N(mu, diag(e^logvar)) ‖ N(0, I)) = −½ Σ (1 + logvar − mu² − e^logvar), with
/// dKL/dmu = mu and dKL/dlogvar = ½ (e^logvar − 1). Inputs are `[N, latent]`.
///
/// ```
/// use ndarray::arr2;
/// use vae_tensor::loss::{gaussian_kl, Reduction};
/// let kl = gaussian_kl(&arr2(&[[0.0f32, 1.0]]), &arr2(&[[0.0f32, 0.0]]), Reduction::Sum)?;
/// assert!((kl.value - 0.5).abs() < 1e-12);
/// assert_eq!(kl.dmu[[0, 1]], 1.0);
/// # Ok::<(), vae_tensor::TensorError>(())
/// ```
pub fn gaussian_kl(mu: &Array2<f32>, logvar: &Array2<f32>, reduction: Reduction) -> Result<KlOut> {
    check_gaussian("gaussian_kl", mu, logvar)?;
    let scale = reduction.scale(mu.shape());
    let mut value = 0.0f64;
    let mut dmu = Array2::zeros(mu.raw_dim());
    let mut dlogvar = Array2::zeros(mu.raw_dim());
    Zip::from(&mut dmu)
        .and(&mut dlogvar)
        .and(mu)
        .and(logvar)
        .for_each(|dm, dl, &m, &lv| {
            let (m, lv) = (m as f64, lv as f64);
            let e = lv.exp();
            value += -0.5 * (1.0 + lv - m * m - e);
            *dm = (m * scale) as f32;
            *dl = (0.5 * (e - 1.0) * scale) as f32;
        });
    Ok(KlOut {
        value: value * scale,
        dmu,
        dlogvar,
    })
}

/// Per-sample KL to N(0, I), summed over the latent dimension, without gradient.
pub fn gaussian_kl_per_sample(mu: &Array2<f32>, logvar: &Array2<f32>) -> Result<Array1<f64>> {
    check_gaussian("gaussian_kl_per_sample", mu, logvar)?;
    Ok(mu
        .rows()
        .into_iter()
        .zip(logvar.rows())
        .map(|(m, l)| {
            m.iter()
                .zip(l.iter())
                .map(|(&m, &lv)| {
                    let (m, lv) = (m as f64, lv as f64);
                    -0.5 * (1.0 + lv - m * m - lv.exp())
                })
                .sum()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check_fn, GradCheckConfig};
    use ndarray::Ix2;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use rand_distr::{Distribution, StandardNormal};

    fn randn(rng: &mut StdRng, shape: &[usize]) -> ArrayD<f32> {
        ArrayD::from_shape_simple_fn(shape, || StandardNormal.sample(rng))
    }

    fn cfg() -> GradCheckConfig {
        GradCheckConfig {
            eps: 1e-3,
            ..GradCheckConfig::default()
        }
    }

    #[test]
    fn bce_matches_the_naive_formula_and_is_stable() {
        let x = ndarray::arr1(&[-200.0f32, -3.0, 0.0, 2.5, 200.0]).into_dyn();
        let t = ndarray::arr1(&[0.0f32, 0.3, 1.0, 0.0, 1.0]).into_dyn();
        let out = bce_with_logits(&x, &t, Reduction::Sum).unwrap();
        let naive: f64 = x
            .iter()
            .zip(t.iter())
            .map(|(&x, &t)| {
                let p = 1.0 / (1.0 + (-(x as f64)).exp());
                let (lp, l1p) = if x.abs() > 50.0 {
                    (-(-(x as f64)).exp().ln_1p(), -((x as f64).exp()).ln_1p())
                } else {
                    (p.ln(), (1.0 - p).ln())
                };
                -(t as f64 * lp + (1.0 - t as f64) * l1p)
            })
            .sum();
        assert!((out.value - naive).abs() < 1e-9, "{} vs {naive}", out.value);
        assert!(out.value.is_finite() && out.grad.iter().all(|g| g.is_finite()));
    }

    #[test]
    fn losses_gradients_match_finite_differences() {
        let mut rng = StdRng::seed_from_u64(31);
        let logits = randn(&mut rng, &[3, 2, 4, 5]);
        let targets = ArrayD::from_shape_simple_fn(vec![3, 2, 4, 5], || rng.random::<f32>());
        for red in [Reduction::Sum, Reduction::Mean, Reduction::BatchMean] {
            let c = check_fn(
                |x| bce_with_logits(x, &targets, red).map(|o| (o.value, o.grad)),
                &logits,
                &cfg(),
                &mut rng,
            )
            .unwrap();
            assert!(c.passed, "bce {red:?}: {c:?}");
            let c = check_fn(
                |x| mse(x, &targets, red).map(|o| (o.value, o.grad)),
                &logits,
                &cfg(),
                &mut rng,
            )
            .unwrap();
            assert!(c.passed, "mse {red:?}: {c:?}");
        }
    }

    #[test]
    fn softmax_ce_gradients_with_weights_and_ignore() {
        let mut rng = StdRng::seed_from_u64(32);
        let logits = randn(&mut rng, &[2, 4, 3, 3]);
        let labels = ArrayD::from_shape_simple_fn(vec![2, 3, 3], || rng.random_range(0..5usize));
        let weights = [0.5f32, 2.0, 1.0, 3.0];
        let c = check_fn(
            |x| {
                softmax_cross_entropy(x, &labels, Some(&weights), Some(4))
                    .map(|o| (o.value, o.grad))
            },
            &logits,
            &cfg(),
            &mut rng,
        )
        .unwrap();
        assert!(c.passed, "{c:?}");
        let flat = randn(&mut rng, &[5, 3]);
        let flat_labels = ndarray::arr1(&[0usize, 2, 1, 1, 0]).into_dyn();
        let c = check_fn(
            |x| softmax_cross_entropy(x, &flat_labels, None, None).map(|o| (o.value, o.grad)),
            &flat,
            &cfg(),
            &mut rng,
        )
        .unwrap();
        assert!(c.passed, "{c:?}");
    }

    #[test]
    fn softmax_ce_exact_values_and_errors() {
        // Uniform logits over 4 classes: loss = ln 4 whatever the label.
        let logits = ArrayD::zeros(vec![2, 4]);
        let labels = ndarray::arr1(&[1usize, 3]).into_dyn();
        let out = softmax_cross_entropy(&logits, &labels, None, None).unwrap();
        assert!((out.value - 4f64.ln()).abs() < 1e-9);
        // Ignored positions contribute nothing, weights give a weighted mean.
        let logits = ndarray::arr2(&[[10.0f32, 0.0], [0.0, 0.0]]).into_dyn();
        let labels = ndarray::arr1(&[1usize, 7]).into_dyn();
        let out = softmax_cross_entropy(&logits, &labels, Some(&[1.0, 3.0]), Some(7)).unwrap();
        assert!((out.value - (1.0 + (-10f64).exp()).ln() - 10.0).abs() < 1e-6);
        assert!(out.grad.index_axis(Axis(0), 1).iter().all(|&g| g == 0.0));
        let err =
            softmax_cross_entropy(&logits, &ndarray::arr1(&[1usize, 2]).into_dyn(), None, None);
        assert!(matches!(err, Err(TensorError::InvalidConfig { .. })));
        let err = softmax_cross_entropy(&logits, &ndarray::arr1(&[1usize]).into_dyn(), None, None);
        assert!(matches!(err, Err(TensorError::ShapeMismatch { .. })));
    }

    #[test]
    fn kl_gradients_and_per_sample_sums() {
        let mut rng = StdRng::seed_from_u64(33);
        let mu = randn(&mut rng, &[4, 3])
            .into_dimensionality::<Ix2>()
            .unwrap();
        let lv = randn(&mut rng, &[4, 3])
            .into_dimensionality::<Ix2>()
            .unwrap();
        let both = ndarray::concatenate(Axis(1), &[mu.view(), lv.view()])
            .unwrap()
            .into_dyn();
        let c = check_fn(
            |x| {
                let x = x.view().into_dimensionality::<Ix2>().unwrap();
                let (m, l) = x.split_at(Axis(1), 3);
                let kl = gaussian_kl(&m.to_owned(), &l.to_owned(), Reduction::BatchMean)?;
                let g = ndarray::concatenate(Axis(1), &[kl.dmu.view(), kl.dlogvar.view()]).unwrap();
                Ok((kl.value, g.into_dyn()))
            },
            &both,
            &cfg(),
            &mut rng,
        )
        .unwrap();
        assert!(c.passed, "{c:?}");
        let total = gaussian_kl(&mu, &lv, Reduction::Sum).unwrap().value;
        let per = gaussian_kl_per_sample(&mu, &lv).unwrap();
        assert!((per.sum() - total).abs() < 1e-9);
        let zero = gaussian_kl(
            &Array2::zeros((2, 2)),
            &Array2::zeros((2, 2)),
            Reduction::Sum,
        )
        .unwrap();
        assert_eq!(zero.value, 0.0);
    }

    #[test]
    fn wrong_gradient_is_caught() {
        // The negative control: a BCE whose gradient forgets the target fails the check.
        let mut rng = StdRng::seed_from_u64(34);
        let logits = randn(&mut rng, &[2, 6]);
        let targets = ArrayD::from_shape_simple_fn(vec![2, 6], || rng.random::<f32>());
        let c = check_fn(
            |x| {
                let out = bce_with_logits(x, &targets, Reduction::Sum)?;
                Ok((out.value, x.mapv(sigmoid)))
            },
            &logits,
            &cfg(),
            &mut rng,
        )
        .unwrap();
        assert!(!c.passed);
    }
}
