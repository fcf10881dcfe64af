//! Pixel transforms: dynamic binarization (a fresh Bernoulli draw each time, the standard
//! for VAE likelihoods on MNIST), threshold binarization, and translations for augmentation.

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

/// Translates every image of an `[n, c, h, w]` batch by `dy` rows and `dx` columns
/// (positive: down / right), filling the uncovered border with `fill`. A shift of at least
/// the image size leaves only `fill`.
///
/// Small shifts are the classic label-preserving augmentation for digits: a classifier
/// trained on shifted copies learns that a digit one pixel to the left is the same digit.
///
/// ```
/// use ndarray::Array4;
/// use vae_data::transform::shift;
/// let mut x = Array4::<f32>::zeros((1, 1, 3, 3));
/// x[[0, 0, 1, 1]] = 1.0;
/// let s = shift(&x.view(), 1, -1, 0.0);
/// assert_eq!(s[[0, 0, 2, 0]], 1.0);
/// assert_eq!(s.sum(), 1.0);
/// ```
pub fn shift(
    x: &ndarray::ArrayView4<'_, f32>,
    dy: isize,
    dx: isize,
    fill: f32,
) -> ndarray::Array4<f32> {
    let (_, _, h, w) = x.dim();
    let mut out = ndarray::Array4::from_elem(x.dim(), fill);
    let span = |d: isize, len: usize| -> Option<(usize, usize, usize)> {
        // (source start, destination start, length)
        let m = d.unsigned_abs();
        if m >= len {
            return None;
        }
        Some(if d >= 0 {
            (0, m, len - m)
        } else {
            (m, 0, len - m)
        })
    };
    if let (Some((sy, ty, ly)), Some((sx, tx, lx))) = (span(dy, h), span(dx, w)) {
        use ndarray::{Axis, Slice};
        let mut dst = out.view_mut();
        dst.slice_axis_inplace(Axis(2), Slice::from(ty..ty + ly));
        dst.slice_axis_inplace(Axis(3), Slice::from(tx..tx + lx));
        let mut src = x.view();
        src.slice_axis_inplace(Axis(2), Slice::from(sy..sy + ly));
        src.slice_axis_inplace(Axis(3), Slice::from(sx..sx + lx));
        dst.assign(&src);
    }
    out
}

#[cfg(test)]
mod shift_tests {
    use super::shift;
    use ndarray::Array4;

    fn ramp() -> Array4<f32> {
        Array4::from_shape_fn((2, 2, 4, 5), |(n, c, y, x)| {
            (1 + n * 1000 + c * 100 + y * 10 + x) as f32
        })
    }

    #[test]
    fn shift_moves_every_pixel_and_fills_the_rest() {
        let x = ramp();
        for dy in -4..=4isize {
            for dx in -5..=5isize {
                let s = shift(&x.view(), dy, dx, -1.0);
                for ((n, c, y, xx), &v) in s.indexed_iter() {
                    let (sy, sx) = (y as isize - dy, xx as isize - dx);
                    let want = if (0..4).contains(&sy) && (0..5).contains(&sx) {
                        x[[n, c, sy as usize, sx as usize]]
                    } else {
                        -1.0
                    };
                    assert_eq!(v, want, "dy {dy} dx {dx} at {:?}", (n, c, y, xx));
                }
            }
        }
    }

    #[test]
    fn zero_shift_is_identity_and_shifts_compose() {
        let x = ramp();
        assert_eq!(shift(&x.view(), 0, 0, 0.0), x);
        let a = shift(&shift(&x.view(), 1, 2, 0.0).view(), -1, -2, 0.0);
        let b = shift(&shift(&x.view(), -1, -2, 0.0).view(), 1, 2, 0.0);
        // Round trips lose exactly the rows/columns shifted out.
        assert_eq!(a[[1, 1, 1, 1]], x[[1, 1, 1, 1]]);
        assert_eq!(a[[1, 1, 3, 4]], 0.0);
        assert_eq!(b[[1, 1, 0, 0]], 0.0);
        assert_eq!(b[[1, 1, 2, 3]], x[[1, 1, 2, 3]]);
    }
}
