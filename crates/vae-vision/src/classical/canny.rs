//! The Canny edge detector, step for step as `skimage.feature.canny` (scikit-image 0.26).
//!
//! 1. **Smooth** with a Gaussian of standard deviation `sigma` (truncated at 4σ). Outside
//!    the image counts as missing, not as black: the zero-padded blur is divided by the
//!    blur of an all-ones mask (skimage's `mode='constant'` default with its "bleed-over"
//!    correction), so borders are not darkened.
//! 2. **Gradients**: Sobel along both axes with a reflecting border
//!    ([`sobel_gradients`](super::sobel_gradients)), magnitude `sqrt(gx² + gy²)`.
//! 3. **Non-maximum suppression** ([`canny_nms`]): a pixel survives if its magnitude is
//!    `>= low` and not smaller than the magnitude linearly interpolated between the two
//!    neighbours on each side along the gradient direction. The 1-pixel image border is
//!    always suppressed.
//! 4. **Hysteresis** ([`hysteresis`]): keep the 8-connected components of surviving pixels
//!    that contain at least one pixel with magnitude `>= high`.
//!
//! Thresholds are on the Sobel magnitude of the smoothed image; for an image in `[0, 1]`
//! a unit step gives a magnitude of 4 before smoothing, so useful values are roughly
//! `0.01..2`. skimage's defaults are `low = 0.1`, `high = 0.2`.

use std::collections::VecDeque;

use ndarray::{Array2, ArrayView2, Zip};

use super::filter::{correlate1d, gaussian_kernel, Border};
use super::gradient::{sobel_gradients, Gradients};
use crate::error::{Result, VisionError};

/// Gaussian smoothing with skimage's "bleed-over" normalisation: the zero-padded blur of
/// `img` divided by the zero-padded blur of ones (plus `f32::EPSILON`), so a constant
/// image stays constant up to the border.
///
/// # Errors
/// [`VisionError::InvalidParameter`] if `sigma` is not finite and positive.
pub fn gaussian_blur_normalized(img: ArrayView2<f32>, sigma: f32) -> Result<Array2<f32>> {
    let k = gaussian_kernel(sigma, 4.0)?;
    let zero = Border::Constant(0.0);
    let t = correlate1d(img, &k, 0, zero);
    let mut s = correlate1d(t.view(), &k, 1, zero);
    let ones = Array2::<f32>::ones(img.dim());
    let t = correlate1d(ones.view(), &k, 0, zero);
    let b = correlate1d(t.view(), &k, 1, zero);
    Zip::from(&mut s)
        .and(&b)
        .for_each(|s, &b| *s /= b + f32::EPSILON);
    Ok(s)
}

/// Non-maximum suppression of a gradient magnitude along the gradient direction, with
/// linear interpolation between the two neighbours on each side (skimage's
/// `_nonmaximum_suppression_bilinear`). Returns the magnitude where it survives and 0
/// elsewhere; pixels with magnitude `< low` and the 1-pixel border are 0.
///
/// `g.gy` is the derivative along rows (axis 0), `g.gx` along columns (axis 1).
///
/// # Panics
/// If `g.gx`, `g.gy` and `magnitude` differ in shape.
#[track_caller]
pub fn nonmax_suppression(g: &Gradients, magnitude: ArrayView2<f32>, low: f32) -> Array2<f32> {
    assert_eq!(g.gx.dim(), magnitude.dim(), "nonmax_suppression: gx shape");
    assert_eq!(g.gy.dim(), magnitude.dim(), "nonmax_suppression: gy shape");
    let (h, w) = magnitude.dim();
    let low = if low == 0.0 { 1e-14 } else { low };
    let mut out = Array2::<f32>::zeros((h, w));
    if h < 3 || w < 3 {
        return out;
    }
    let mag = |x: usize, y: usize| magnitude[[x, y]];
    for x in 1..h - 1 {
        for y in 1..w - 1 {
            let m = mag(x, y);
            if m.is_nan() || m < low {
                continue;
            }
            let (isob, jsob) = (g.gy[[x, y]], g.gx[[x, y]]);
            let is_down = isob <= 0.0;
            let is_up = !is_down;
            let is_left = jsob <= 0.0;
            let is_right = !is_left;
            let cond1 = (is_up && is_right) || (is_down && is_left);
            let (ai, aj) = (isob.abs(), jsob.abs());
            let (w8, n11, n12, n21, n22);
            if cond1 {
                if ai > aj {
                    w8 = aj / ai;
                    (n11, n12, n21, n22) = (
                        mag(x + 1, y),
                        mag(x + 1, y + 1),
                        mag(x - 1, y),
                        mag(x - 1, y - 1),
                    );
                } else {
                    w8 = ai / aj;
                    (n11, n12, n21, n22) = (
                        mag(x, y + 1),
                        mag(x + 1, y + 1),
                        mag(x, y - 1),
                        mag(x - 1, y - 1),
                    );
                }
            } else if ai < aj {
                w8 = ai / aj;
                (n11, n12, n21, n22) = (
                    mag(x, y + 1),
                    mag(x - 1, y + 1),
                    mag(x, y - 1),
                    mag(x + 1, y - 1),
                );
            } else {
                w8 = aj / ai;
                (n11, n12, n21, n22) = (
                    mag(x - 1, y),
                    mag(x - 1, y + 1),
                    mag(x + 1, y),
                    mag(x + 1, y - 1),
                );
            }
            let c_plus = n12 * w8 + n11 * (1.0 - w8) <= m;
            if c_plus && n22 * w8 + n21 * (1.0 - w8) <= m {
                out[[x, y]] = m;
            }
        }
    }
    out
}

/// Hysteresis on a suppressed magnitude map: keeps every 8-connected component of
/// pixels with `nms > 0` that contains a pixel with `nms >= high`.
///
/// ```
/// use ndarray::array;
/// let nms = array![[0.0f32, 0.0, 0.0, 0.0, 0.0],
///                  [0.0, 0.3, 0.0, 0.0, 0.2],
///                  [0.0, 0.0, 0.2, 0.0, 0.0],
///                  [0.0, 0.0, 0.0, 0.0, 0.0]];
/// let e = vae_vision::classical::hysteresis(nms.view(), 0.25);
/// // (1,1) is strong and pulls in its diagonal neighbour (2,2); (1,4) is weak and alone.
/// assert!(e[[1, 1]] && e[[2, 2]] && !e[[1, 4]]);
/// ```
pub fn hysteresis(nms: ArrayView2<f32>, high: f32) -> Array2<bool> {
    let (h, w) = nms.dim();
    let mut out = Array2::<bool>::from_elem((h, w), false);
    let mut queue = VecDeque::new();
    for ((x, y), &v) in nms.indexed_iter() {
        if v > 0.0 && v >= high {
            out[[x, y]] = true;
            queue.push_back((x, y));
        }
    }
    while let Some((x, y)) = queue.pop_front() {
        for nx in x.saturating_sub(1)..=(x + 1).min(h - 1) {
            for ny in y.saturating_sub(1)..=(y + 1).min(w - 1) {
                if !out[[nx, ny]] && nms[[nx, ny]] > 0.0 {
                    out[[nx, ny]] = true;
                    queue.push_back((nx, ny));
                }
            }
        }
    }
    out
}

/// Steps 1 to 3 of Canny: smoothed Sobel magnitude after non-maximum suppression, with
/// no threshold applied (every local maximum with magnitude > 0 is kept).
///
/// # Errors
/// [`VisionError::InvalidParameter`] if `sigma` is not finite and positive.
pub fn canny_nms(img: ArrayView2<f32>, sigma: f32) -> Result<Array2<f32>> {
    let smoothed = gaussian_blur_normalized(img, sigma)?;
    let g = sobel_gradients(smoothed.view());
    let mag = g.magnitude();
    Ok(nonmax_suppression(&g, mag.view(), 0.0))
}

/// The Canny edge detector (see the module doc for the steps), equal to
/// `skimage.feature.canny(img, sigma, low, high)` for a float image.
///
/// Parameter ranges: `sigma > 0` (1 to 3 for natural images), `0 <= low <= high`, both on
/// the Sobel magnitude of the smoothed image.
///
/// # Errors
/// [`VisionError::InvalidParameter`] for a bad `sigma`, negative or non-finite thresholds,
/// or `low > high`.
///
/// ```
/// use ndarray::Array2;
/// // A vertical step between columns 2 and 3 of a 5x6 image.
/// let img = Array2::from_shape_fn((5, 6), |(_, x)| if x >= 3 { 1.0f32 } else { 0.0 });
/// let e = vae_vision::classical::canny(img.view(), 1.0, 0.1, 0.2)?;
/// // Both columns beside the step have the same magnitude, so both are maxima (ties are
/// // kept, as in scikit-image, whose output this is); the 1-pixel border is empty.
/// let expect = Array2::from_shape_fn((5, 6), |(y, x)| (1..4).contains(&y) && (x == 2 || x == 3));
/// assert_eq!(e, expect);
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
pub fn canny(img: ArrayView2<f32>, sigma: f32, low: f32, high: f32) -> Result<Array2<bool>> {
    for (name, v) in [("low", low), ("high", high)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(VisionError::param(
                "canny",
                name,
                v,
                "must be finite and >= 0",
            ));
        }
    }
    if low > high {
        return Err(VisionError::param(
            "canny",
            "low",
            low,
            format!("must be <= high ({high})"),
        ));
    }
    let smoothed = gaussian_blur_normalized(img, sigma)?;
    let g = sobel_gradients(smoothed.view());
    let mag = g.magnitude();
    let nms = nonmax_suppression(&g, mag.view(), low);
    Ok(hysteresis(nms.view(), high))
}

/// A soft Canny edge map in `[0, 1]` for threshold-sweeping benchmarks such as BSDS.
///
/// `soft[p] = max { t : p is a Canny edge with high = t · M and low = low_ratio · t · M }`
/// over `t ∈ {1/steps, 2/steps, …, 1}`, where `M` is the largest suppressed magnitude in
/// the image (0 where `p` is never an edge). Because Canny edge sets shrink as both
/// thresholds rise together, thresholding `soft` at `t` gives exactly the binary Canny
/// output at `high = t · M` (up to the `1/steps` grid). So a benchmark's threshold sweep
/// over `soft` is a sweep of Canny's high threshold with `low = low_ratio · high`.
///
/// Parameter ranges: `sigma > 0`, `0 < low_ratio <= 1` (0.4 is the classic choice),
/// `steps >= 1` (100 matches a 99-threshold benchmark closely).
///
/// # Errors
/// [`VisionError::InvalidParameter`] for a bad `sigma`, `low_ratio` or `steps`.
pub fn canny_soft(
    img: ArrayView2<f32>,
    sigma: f32,
    low_ratio: f32,
    steps: usize,
) -> Result<Array2<f32>> {
    if !(low_ratio > 0.0 && low_ratio <= 1.0) {
        return Err(VisionError::param(
            "canny_soft",
            "low_ratio",
            low_ratio,
            "must be in (0, 1]",
        ));
    }
    if steps == 0 {
        return Err(VisionError::param(
            "canny_soft",
            "steps",
            steps,
            "must be >= 1",
        ));
    }
    let nms = canny_nms(img, sigma)?;
    let m = nms.iter().cloned().fold(0.0f32, f32::max);
    let mut soft = Array2::<f32>::zeros(nms.dim());
    if m <= 0.0 {
        return Ok(soft);
    }
    for k in 1..=steps {
        let t = k as f32 / steps as f32;
        let low = low_ratio * t * m;
        let gated = nms.mapv(|v| if v >= low { v } else { 0.0 });
        let e = hysteresis(gated.view(), t * m);
        Zip::from(&mut soft).and(&e).for_each(|s, &on| {
            if on {
                *s = t;
            }
        });
    }
    Ok(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_blur_keeps_constant() {
        let img = Array2::<f32>::from_elem((7, 5), 0.3);
        let s = gaussian_blur_normalized(img.view(), 2.0).unwrap();
        assert!(s.iter().all(|v| (v - 0.3).abs() < 1e-5));
    }

    #[test]
    fn canny_rejects_bad_thresholds() {
        let img = Array2::<f32>::zeros((4, 4));
        assert!(matches!(
            canny(img.view(), 1.0, 0.3, 0.2),
            Err(VisionError::InvalidParameter { name: "low", .. })
        ));
        assert!(matches!(
            canny(img.view(), 1.0, f32::NAN, 0.2),
            Err(VisionError::InvalidParameter { .. })
        ));
        assert!(matches!(
            canny(img.view(), -1.0, 0.1, 0.2),
            Err(VisionError::InvalidParameter { name: "sigma", .. })
        ));
    }

    #[test]
    fn soft_threshold_reproduces_binary_canny() {
        // A square with a gradient ramp, so magnitudes differ along the contour.
        let img = Array2::from_shape_fn((24, 24), |(y, x)| {
            if (6..18).contains(&y) && (6..18).contains(&x) {
                0.3 + 0.03 * x as f32
            } else {
                0.0
            }
        });
        let soft = canny_soft(img.view(), 1.5, 0.4, 50).unwrap();
        let nms = canny_nms(img.view(), 1.5).unwrap();
        let m = nms.iter().cloned().fold(0.0f32, f32::max);
        for k in [5usize, 20, 35] {
            let t = k as f32 / 50.0;
            let bin = canny(img.view(), 1.5, 0.4 * t * m, t * m).unwrap();
            let from_soft = soft.mapv(|s| s >= t);
            assert_eq!(bin, from_soft, "threshold {t}");
        }
        assert!(soft.iter().any(|&s| s > 0.0));
    }
}
