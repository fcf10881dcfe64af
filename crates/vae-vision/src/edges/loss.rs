//! HED's class-balanced binary cross-entropy on logits, with ignored pixels.

use ndarray::{Array3, ArrayD, Axis, Ix2};

use super::input::IGNORE;
use crate::error::{Result, VisionError};

/// The loss and its gradient with respect to the logits.
#[derive(Debug, Clone)]
pub struct EdgeLoss {
    /// Loss value (sum of weighted per-pixel cross-entropies over the number of pixels).
    pub value: f64,
    /// Gradient with respect to the logits, same shape.
    pub grad: ArrayD<f32>,
}

/// Binary cross-entropy of logits `[n, 1, h, w]` against targets `[n, h, w]` (1 edge,
/// 0 not, [`IGNORE`] left out).
///
/// With `balanced`, HED's weighting per image: edges weigh `β = |Y−| / (|Y+| + |Y−|)` and
/// non-edges `1 − β`, so the rare edge pixels are not drowned by the background;
/// without, every counted pixel weighs 1. The sum is divided by `n·h·w`.
///
/// ```
/// use ndarray::{Array3, ArrayD};
/// use vae_vision::edges::balanced_bce;
/// let logits = ArrayD::zeros(vec![1, 1, 1, 4]);
/// let t = Array3::from_shape_vec((1, 1, 4), vec![1i8, 0, 0, 0])?;
/// let l = balanced_bce(&logits, &t, true)?;
/// // beta = 3/4: (0.75 ln 2 + 3 * 0.25 ln 2) / 4
/// assert!((l.value - 1.5 * 2f64.ln() / 4.0).abs() < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`VisionError::ShapeMismatch`] when the shapes disagree; [`VisionError::BadValue`] for
/// a non-finite logit or a target other than 0, 1 or [`IGNORE`].
pub fn balanced_bce(
    logits: &ArrayD<f32>,
    targets: &Array3<i8>,
    balanced: bool,
) -> Result<EdgeLoss> {
    let (n, h, w) = targets.dim();
    if logits.shape() != [n, 1, h, w] {
        return Err(VisionError::shape(
            "balanced_bce",
            &[n, 1, h, w],
            logits.shape(),
        ));
    }
    if let Some(v) = targets
        .iter()
        .find(|&&t| !(t == 0 || t == 1 || t == IGNORE))
    {
        return Err(VisionError::BadValue {
            op: "balanced_bce",
            what: format!("target {v} (expected 0, 1 or {IGNORE})"),
        });
    }
    if logits.iter().any(|v| !v.is_finite()) {
        return Err(VisionError::BadValue {
            op: "balanced_bce",
            what: "non-finite logit".into(),
        });
    }
    let norm = (n * h * w).max(1) as f64;
    let mut grad = ArrayD::<f32>::zeros(logits.raw_dim());
    let mut value = 0.0f64;
    for b in 0..n {
        let t = targets.index_axis(Axis(0), b);
        let (pos, neg) = t.iter().fold((0usize, 0usize), |(p, q), &v| match v {
            1 => (p + 1, q),
            0 => (p, q + 1),
            _ => (p, q),
        });
        let (wp, wn) = if balanced {
            let beta = neg as f64 / (pos + neg).max(1) as f64;
            (beta, 1.0 - beta)
        } else {
            (1.0, 1.0)
        };
        let z = logits.index_axis(Axis(0), b);
        let z = z
            .index_axis(Axis(0), 0)
            .into_dimensionality::<Ix2>()
            .expect("checked 4-D");
        let mut gb = grad.index_axis_mut(Axis(0), b);
        let mut g = gb
            .index_axis_mut(Axis(0), 0)
            .into_dimensionality::<Ix2>()
            .expect("checked 4-D");
        ndarray::Zip::from(&mut g)
            .and(&z)
            .and(&t)
            .for_each(|g, &z, &t| {
                let (wt, y) = match t {
                    1 => (wp, 1.0),
                    0 => (wn, 0.0),
                    _ => return,
                };
                let z = z as f64;
                let l = z.max(0.0) - z * y + (-z.abs()).exp().ln_1p();
                value += wt * l;
                let s = 1.0 / (1.0 + (-z).exp());
                *g = (wt * (s - y) / norm) as f32;
            });
    }
    Ok(EdgeLoss {
        value: value / norm,
        grad,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};
    use vae_tensor::gradcheck::{check_fn, GradCheckConfig};

    #[test]
    fn gradient_matches_finite_differences() {
        let t = Array3::from_shape_fn((2, 3, 4), |(b, y, x)| match (b + y * 3 + x) % 5 {
            0 => 1i8,
            1 => IGNORE,
            _ => 0,
        });
        let z = ArrayD::from_shape_fn(vec![2, 1, 3, 4], |i| {
            ((i[0] * 7 + i[2] * 3 + i[3]) % 9) as f32 * 0.5 - 2.0
        });
        for balanced in [true, false] {
            let c = check_fn(
                |z| {
                    let l = balanced_bce(z, &t, balanced).map_err(|e| {
                        vae_tensor::TensorError::config("balanced_bce", e.to_string())
                    })?;
                    Ok((l.value, l.grad))
                },
                &z,
                &GradCheckConfig {
                    eps: 1e-3,
                    ..GradCheckConfig::default()
                },
                &mut StdRng::seed_from_u64(1),
            )
            .unwrap();
            assert!(c.passed, "{c:?}");
        }
    }

    #[test]
    fn ignored_pixels_get_no_gradient_and_bad_inputs_fail() {
        let t = Array3::from_shape_vec((1, 1, 3), vec![1i8, IGNORE, 0]).unwrap();
        let z = ArrayD::from_elem(vec![1, 1, 1, 3], 0.3f32);
        let l = balanced_bce(&z, &t, true).unwrap();
        assert_eq!(l.grad[[0, 0, 0, 1]], 0.0);
        assert!(l.grad[[0, 0, 0, 0]] < 0.0 && l.grad[[0, 0, 0, 2]] > 0.0);
        let bad = Array3::from_shape_vec((1, 1, 3), vec![2i8, 0, 0]).unwrap();
        assert!(balanced_bce(&z, &bad, true).is_err());
        assert!(balanced_bce(&ArrayD::zeros(vec![1, 1, 1, 2]), &t, true).is_err());
    }
}
