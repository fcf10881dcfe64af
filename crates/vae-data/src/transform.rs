//! Pixel transforms: dynamic binarization (a fresh Bernoulli draw each time, the standard
//! for VAE likelihoods on MNIST) and threshold binarization.

use ndarray::{Array, ArrayView, Dimension};
use rand::Rng;

use crate::error::{DataError, Result};

fn check_unit(x: &ArrayView<'_, f32, impl Dimension>) -> Result<()> {
    if let Some(v) = x.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(DataError::arg(
            "x",
            format!("pixel {v} is not a probability in [0, 1]"),
        ));
    }
    Ok(())
}

/// Each pixel becomes 1 with probability equal to its value, else 0, drawn from `rng`.
/// Call it on each batch of each epoch so that every epoch sees a fresh binarization.
///
/// ```
/// use ndarray::array;
/// use rand::{rngs::StdRng, SeedableRng};
/// use vae_data::transform::binarize_dynamic;
/// let x = array![[0.0f32, 1.0, 0.5]];
/// let b = binarize_dynamic(x.view(), &mut StdRng::seed_from_u64(0))?;
/// assert_eq!((b[[0, 0]], b[[0, 1]]), (0.0, 1.0)); // 0 and 1 are certain
/// assert!(b[[0, 2]] == 0.0 || b[[0, 2]] == 1.0);
/// # Ok::<(), vae_data::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::InvalidArgument`] if a value is outside `[0, 1]` or NaN.
pub fn binarize_dynamic<D: Dimension>(
    x: ArrayView<'_, f32, D>,
    rng: &mut impl Rng,
) -> Result<Array<f32, D>> {
    check_unit(&x)?;
    Ok(x.map(|&p| if rng.random::<f32>() < p { 1.0 } else { 0.0 }))
}

/// [`binarize_dynamic`] in place.
///
/// # Errors
/// As [`binarize_dynamic`]; `x` is unchanged on error.
pub fn binarize_dynamic_mut<D: Dimension>(x: &mut Array<f32, D>, rng: &mut impl Rng) -> Result<()> {
    check_unit(&x.view())?;
    x.map_inplace(|p| *p = if rng.random::<f32>() < *p { 1.0 } else { 0.0 });
    Ok(())
}

/// Each pixel becomes 1 if it is above `threshold`, else 0 (deterministic).
///
/// ```
/// use ndarray::array;
/// use vae_data::transform::binarize_threshold;
/// let b = binarize_threshold(array![0.2f32, 0.5, 0.9].view(), 0.5)?;
/// assert_eq!(b, array![0.0, 0.0, 1.0]);
/// # Ok::<(), vae_data::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::InvalidArgument`] if `threshold` is NaN.
pub fn binarize_threshold<D: Dimension>(
    x: ArrayView<'_, f32, D>,
    threshold: f32,
) -> Result<Array<f32, D>> {
    if threshold.is_nan() {
        return Err(DataError::arg("threshold", "is NaN"));
    }
    Ok(x.map(|&p| if p > threshold { 1.0 } else { 0.0 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn dynamic_binarization_has_the_right_mean_and_is_fresh_per_call() {
        let x = Array2::from_shape_fn((200, 100), |(_, j)| j as f32 / 99.0);
        let mut rng = StdRng::seed_from_u64(11);
        let a = binarize_dynamic(x.view(), &mut rng).unwrap();
        let b = binarize_dynamic(x.view(), &mut rng).unwrap();
        assert_ne!(a, b, "a second epoch must draw fresh bits");
        assert!(a.iter().all(|&v| v == 0.0 || v == 1.0));
        // Column j is Bernoulli(j/99) over 200 rows: its mean is within 4.5 sigma.
        for j in [10, 50, 90] {
            let p = j as f64 / 99.0;
            let m = a.column(j).iter().map(|&v| v as f64).sum::<f64>() / 200.0;
            let sigma = (p * (1.0 - p) / 200.0).sqrt();
            assert!((m - p).abs() < 4.5 * sigma, "col {j}: {m} vs {p}");
        }
        // Same seed, same bits; in place equals by value.
        let mut c = x.clone();
        binarize_dynamic_mut(&mut c, &mut StdRng::seed_from_u64(11)).unwrap();
        assert_eq!(c, a);
    }

    #[test]
    fn out_of_range_pixels_are_errors() {
        let x = ndarray::array![0.5f32, 1.5];
        let mut rng = StdRng::seed_from_u64(0);
        assert!(binarize_dynamic(x.view(), &mut rng).is_err());
        let mut y = ndarray::array![f32::NAN];
        assert!(binarize_dynamic_mut(&mut y, &mut rng).is_err());
        assert!(binarize_threshold(x.view(), f32::NAN).is_err());
    }
}
