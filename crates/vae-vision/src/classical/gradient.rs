//! Gradient operators: Sobel, Prewitt and Roberts cross, their magnitude and direction.
//!
//! All take a grey image `[h, w]` as `ArrayView2<f32>` (any range; BSDS images are in
//! `[0, 1]`) and return arrays of the same shape. Sobel and Prewitt read outside pixels
//! by reflection about the edge (`scipy.ndimage.sobel`'s default `mode='reflect'`);
//! Roberts repeats the last row and column.

use ndarray::{Array2, ArrayView2, Zip};

use super::filter::{correlate1d, Border};

/// Horizontal and vertical derivatives of an image.
#[derive(Debug, Clone)]
pub struct Gradients {
    /// d/dx: derivative along columns (axis 1), positive when brightness grows to the right.
    pub gx: Array2<f32>,
    /// d/dy: derivative along rows (axis 0), positive when brightness grows downwards.
    pub gy: Array2<f32>,
}

impl Gradients {
    /// Euclidean magnitude `sqrt(gx² + gy²)` per pixel.
    pub fn magnitude(&self) -> Array2<f32> {
        Zip::from(&self.gx)
            .and(&self.gy)
            .map_collect(|&x, &y| (x * x + y * y).sqrt())
    }

    /// Direction `atan2(gy, gx)` in radians, in `(−π, π]` (0 = brightness grows to the
    /// right, π/2 = grows downwards).
    pub fn direction(&self) -> Array2<f32> {
        Zip::from(&self.gx)
            .and(&self.gy)
            .map_collect(|&x, &y| y.atan2(x))
    }
}

fn separable_gradients(img: ArrayView2<f32>, smooth: &[f32]) -> Gradients {
    let diff = [-1.0f32, 0.0, 1.0];
    // gx: difference along axis 1, smoothing along axis 0 (scipy sobel(axis=1)).
    let t = correlate1d(img, &diff, 1, Border::Reflect);
    let gx = correlate1d(t.view(), smooth, 0, Border::Reflect);
    let t = correlate1d(img, &diff, 0, Border::Reflect);
    let gy = correlate1d(t.view(), smooth, 1, Border::Reflect);
    Gradients { gx, gy }
}

/// Sobel derivatives: `[-1 0 1]` across, `[1 2 1]` along, unnormalised (so a unit step
/// gives 4), reflecting border: `gx = scipy.ndimage.sobel(img, axis=1)`,
/// `gy = scipy.ndimage.sobel(img, axis=0)`.
///
/// ```
/// use ndarray::array;
/// use vae_vision::classical::sobel_gradients;
/// let img = array![[0.0f32, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]];
/// let g = sobel_gradients(img.view());
/// assert_eq!(g.gx, array![[0.0f32, 4.0, 4.0], [0.0, 4.0, 4.0], [0.0, 4.0, 4.0]]);
/// assert_eq!(g.gy, ndarray::Array2::<f32>::zeros((3, 3)));
/// ```
pub fn sobel_gradients(img: ArrayView2<f32>) -> Gradients {
    separable_gradients(img, &[1.0, 2.0, 1.0])
}

/// Sobel gradient magnitude `sqrt(gx² + gy²)` (see [`sobel_gradients`]).
///
/// Steps: derivative `[-1 0 1]` along one axis, smoothing `[1 2 1]` along the other, for
/// both axes; then the Euclidean norm. No parameters.
///
/// ```
/// use ndarray::array;
/// let img = array![[0.0f32, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]];
/// let m = vae_vision::classical::sobel(img.view());
/// assert_eq!(m[[1, 1]], 4.0);
/// assert_eq!(m[[1, 0]], 0.0);
/// ```
pub fn sobel(img: ArrayView2<f32>) -> Array2<f32> {
    sobel_gradients(img).magnitude()
}

/// Prewitt derivatives: `[-1 0 1]` across, `[1 1 1]` along (a unit step gives 3),
/// reflecting border (`scipy.ndimage.prewitt`).
///
/// ```
/// use ndarray::array;
/// let img = array![[0.0f32, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]];
/// let g = vae_vision::classical::prewitt_gradients(img.view());
/// assert_eq!(g.gx[[1, 1]], 3.0);
/// ```
pub fn prewitt_gradients(img: ArrayView2<f32>) -> Gradients {
    separable_gradients(img, &[1.0, 1.0, 1.0])
}

/// Prewitt gradient magnitude `sqrt(gx² + gy²)` (see [`prewitt_gradients`]).
///
/// ```
/// use ndarray::array;
/// let img = array![[0.0f32, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]];
/// assert_eq!(vae_vision::classical::prewitt(img.view())[[1, 2]], 3.0);
/// ```
pub fn prewitt(img: ArrayView2<f32>) -> Array2<f32> {
    prewitt_gradients(img).magnitude()
}

/// Roberts cross derivatives on 2x2 blocks anchored at the top-left pixel:
/// `d1 = I(y, x) − I(y+1, x+1)`, `d2 = I(y, x+1) − I(y+1, x)`; the last row and column
/// repeat the edge (the block is clamped). Returned as `gx = d1`, `gy = d2` in the
/// diagonal frame.
pub fn roberts_gradients(img: ArrayView2<f32>) -> Gradients {
    let (h, w) = img.dim();
    let mut d1 = Array2::<f32>::zeros((h, w));
    let mut d2 = Array2::<f32>::zeros((h, w));
    for y in 0..h {
        let y1 = (y + 1).min(h.saturating_sub(1));
        for x in 0..w {
            let x1 = (x + 1).min(w.saturating_sub(1));
            d1[[y, x]] = img[[y, x]] - img[[y1, x1]];
            d2[[y, x]] = img[[y, x1]] - img[[y1, x]];
        }
    }
    Gradients { gx: d1, gy: d2 }
}

/// Roberts cross gradient magnitude `sqrt(d1² + d2²)` (see [`roberts_gradients`]).
///
/// Steps: two diagonal differences on each 2x2 block, then the Euclidean norm. No
/// parameters.
///
/// ```
/// use ndarray::array;
/// let img = array![[0.0f32, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]];
/// let m = vae_vision::classical::roberts(img.view());
/// // block at (0,1): d1 = 0 - 1, d2 = 1 - 0, so sqrt(2).
/// assert!((m[[0, 1]] - 2f32.sqrt()).abs() < 1e-6);
/// assert_eq!(m[[0, 0]], 0.0);
/// ```
pub fn roberts(img: ArrayView2<f32>) -> Array2<f32> {
    roberts_gradients(img).magnitude()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn horizontal_step_gives_vertical_gradient() {
        let img = array![[0.0f32, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]];
        let g = sobel_gradients(img.view());
        assert_eq!(g.gy[[1, 1]], 4.0);
        assert_eq!(g.gx[[1, 1]], 0.0);
        let d = g.direction();
        assert!((d[[1, 1]] - std::f32::consts::FRAC_PI_2).abs() < 1e-6);
    }

    #[test]
    fn empty_image_is_fine() {
        let img = Array2::<f32>::zeros((0, 4));
        assert_eq!(sobel(img.view()).dim(), (0, 4));
        assert_eq!(roberts(img.view()).dim(), (0, 4));
    }
}
