//! Classical image operators as free functions on grey images (`ArrayView2<f32>`,
//! `[h, w]`), in the style of `imageproc`: gradients, Gaussian smoothing, Canny,
//! non-maximum suppression, thinning and local binary patterns.

mod canny;
mod filter;
mod gradient;
mod lbp;
mod nms;
pub(crate) mod thin;

pub use canny::{
    canny, canny_nms, canny_soft, gaussian_blur_normalized, hysteresis, nonmax_suppression,
};
pub use filter::{correlate1d, gaussian_blur, gaussian_kernel, Border};
pub use gradient::{
    prewitt, prewitt_gradients, roberts, roberts_gradients, sobel, sobel_gradients, Gradients,
};
pub use lbp::{
    clbp_riu2, lbp_mean_magnitude, lbp_multiscale_histogram, lbp_riu2, lbp_riu2_histogram,
    riu2_code, ClbpCodes, LbpConfig,
};
pub use nms::{edge_nms, edge_orientation, suppress_border};
pub use thin::{thin, thin_naive};

/// Converts an RGB image `[3, h, w]` (any range) to grey with ITU-R BT.601 luma weights
/// `0.2989 R + 0.5870 G + 0.1140 B` (MATLAB's `rgb2gray`, the conversion used by the
/// BSDS baselines).
///
/// # Errors
/// [`VisionError::ShapeMismatch`](crate::VisionError::ShapeMismatch) unless the first axis has length 3.
pub fn rgb_to_gray(rgb: ndarray::ArrayView3<f32>) -> crate::Result<ndarray::Array2<f32>> {
    let (c, h, w) = rgb.dim();
    if c != 3 {
        return Err(crate::VisionError::shape(
            "rgb_to_gray",
            &[3, h, w],
            &[c, h, w],
        ));
    }
    Ok(ndarray::Array2::from_shape_fn((h, w), |(y, x)| {
        0.2989 * rgb[[0, y, x]] + 0.5870 * rgb[[1, y, x]] + 0.1140 * rgb[[2, y, x]]
    }))
}
