//! The classical detectors as soft edge maps in `[0, 1]`.

use ndarray::{Array2, ArrayView3};

use crate::classical::{canny_soft, prewitt, rgb_to_gray, roberts, sobel};
use crate::error::{Result, VisionError};

/// An edge detector of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Sobel gradient magnitude.
    Sobel,
    /// Prewitt gradient magnitude.
    Prewitt,
    /// Roberts cross gradient magnitude.
    Roberts,
    /// Canny (sigma 2, low threshold 0.4 of the high one), soft over the high threshold.
    Canny,
    /// The learned edge head on a VAE encoder.
    Vae,
}

impl Method {
    /// Every classical method, in table order.
    pub const CLASSICAL: [Method; 4] = [
        Method::Sobel,
        Method::Prewitt,
        Method::Roberts,
        Method::Canny,
    ];

    /// The lower-case name (`"sobel"`, ..., `"vae"`).
    pub fn name(self) -> &'static str {
        match self {
            Method::Sobel => "sobel",
            Method::Prewitt => "prewitt",
            Method::Roberts => "roberts",
            Method::Canny => "canny",
            Method::Vae => "vae",
        }
    }

    /// Parses a name as printed by [`Method::name`].
    ///
    /// # Errors
    /// [`VisionError::InvalidParameter`] for any other name.
    pub fn from_name(name: &str) -> Result<Method> {
        [
            Method::Sobel,
            Method::Prewitt,
            Method::Roberts,
            Method::Canny,
            Method::Vae,
        ]
        .into_iter()
        .find(|m| m.name() == name)
        .ok_or_else(|| {
            VisionError::param(
                "Method::from_name",
                "method",
                name,
                "expected sobel, prewitt, roberts, canny or vae",
            )
        })
    }
}

fn normalise(m: Array2<f32>) -> Array2<f32> {
    let max = m.iter().cloned().fold(0.0f32, f32::max);
    if max > 0.0 {
        m.mapv(|v| (v / max).clamp(0.0, 1.0))
    } else {
        m
    }
}

/// The soft edge map of a classical `method` on an RGB image `[3, h, w]` in `[0, 1]`:
/// Sobel, Prewitt and Roberts give the gradient magnitude of the grey image (BT.601 luma)
/// divided by its maximum over the image; Canny gives
/// [`canny_soft`](crate::classical::canny_soft) with sigma 2, low = 0.4 high and 100
/// steps, so thresholding it at `t` is Canny with high = `t` times the largest suppressed
/// magnitude.
///
/// ```
/// use ndarray::Array3;
/// use vae_vision::edges::{classical_map, Method};
/// // A vertical step edge between columns 7 and 8.
/// let rgb = Array3::from_shape_fn((3, 16, 16), |(_, _, x)| if x < 8 { 0.2f32 } else { 0.8 });
/// let e = classical_map(Method::Sobel, rgb.view())?;
/// assert_eq!(e[[8, 7]], 1.0);
/// assert_eq!(e[[8, 2]], 0.0);
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
///
/// # Errors
/// [`VisionError::ShapeMismatch`] unless the image has 3 channels;
/// [`VisionError::InvalidParameter`] for [`Method::Vae`] (it needs a trained network).
pub fn classical_map(method: Method, rgb: ArrayView3<f32>) -> Result<Array2<f32>> {
    let g = rgb_to_gray(rgb)?;
    Ok(match method {
        Method::Sobel => normalise(sobel(g.view())),
        Method::Prewitt => normalise(prewitt(g.view())),
        Method::Roberts => normalise(roberts(g.view())),
        Method::Canny => canny_soft(g.view(), 2.0, 0.4, 100)?,
        Method::Vae => {
            return Err(VisionError::param(
                "classical_map",
                "method",
                "vae",
                "the learned head is not a classical detector",
            ))
        }
    })
}
