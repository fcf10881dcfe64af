//! Network inputs: RGB plus CIE Lab at full resolution, and the training targets.

use ndarray::{Array2, Array3, ArrayView3, Axis};

use crate::error::{Result, VisionError};

/// Channels of [`net_input`]: R, G, B, L, a, b.
pub const INPUT_CHANNELS: usize = 6;

fn srgb_to_linear(c: f32) -> f32 {
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

fn lab_f(t: f32) -> f32 {
    const D: f32 = 6.0 / 29.0;
    if t > D * D * D {
        t.cbrt()
    } else {
        t / (3.0 * D * D) + 4.0 / 29.0
    }
}

/// CIE L\*a\*b\* (D65 white) of one sRGB pixel with components in `[0, 1]`:
/// `L` in `[0, 100]`, `a` and `b` roughly in `[-110, 110]`.
///
/// ```
/// let [l, a, b] = vae_vision::edges::srgb_to_lab([1.0, 1.0, 1.0]);
/// assert!((l - 100.0).abs() < 0.01 && a.abs() < 0.01 && b.abs() < 0.01);
/// ```
pub fn srgb_to_lab(rgb: [f32; 3]) -> [f32; 3] {
    let [r, g, b] = rgb.map(|c| srgb_to_linear(c.clamp(0.0, 1.0)));
    let x = 0.412_456_4 * r + 0.357_576_1 * g + 0.180_437_5 * b;
    let y = 0.212_672_9 * r + 0.715_152_2 * g + 0.072_175 * b;
    let z = 0.019_333_9 * r + 0.119_192 * g + 0.950_304_1 * b;
    let (fx, fy, fz) = (lab_f(x / 0.950_47), lab_f(y), lab_f(z / 1.088_83));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// The edge network's input for an RGB image `[3, h, w]` in `[0, 1]`: six channels
/// `[R, G, B, L/100, a/100, b/100]`, `[6, h, w]`. The RGB channels are what the VAE
/// encoder was trained on; Lab adds a perceptual colour distance at full resolution.
///
/// # Errors
/// [`VisionError::ShapeMismatch`] unless the image has 3 channels;
/// [`VisionError::BadValue`] for a non-finite value.
pub fn net_input(rgb: ArrayView3<f32>) -> Result<Array3<f32>> {
    let (c, h, w) = rgb.dim();
    if c != 3 {
        return Err(VisionError::shape("net_input", &[3, h, w], &[c, h, w]));
    }
    if rgb.iter().any(|v| !v.is_finite()) {
        return Err(VisionError::BadValue {
            op: "net_input",
            what: "non-finite pixel".into(),
        });
    }
    let mut out = Array3::<f32>::zeros((INPUT_CHANNELS, h, w));
    out.slice_axis_mut(Axis(0), ndarray::Slice::from(0..3))
        .assign(&rgb);
    for y in 0..h {
        for x in 0..w {
            let lab = srgb_to_lab([rgb[[0, y, x]], rgb[[1, y, x]], rgb[[2, y, x]]]);
            for (k, v) in lab.iter().enumerate() {
                out[[3 + k, y, x]] = v / 100.0;
            }
        }
    }
    Ok(out)
}

/// Per-pixel training target: 1 = edge, 0 = not an edge, [`IGNORE`] = left out of the loss.
pub type Target = Array2<i8>;

/// The target value of pixels left out of the loss.
pub const IGNORE: i8 = -1;

/// Training targets from every annotator's boundary map, as in HED and RCF: with `a` the
/// fraction of annotators that marked a pixel, the pixel is an edge when `a >= eta`, not an
/// edge when `a == 0`, and ignored in between (boundaries only some annotators drew, which
/// are neither clearly edges nor clearly not).
///
/// ```
/// use ndarray::array;
/// use vae_vision::edges::{edge_targets, IGNORE};
/// let a1 = array![[true, true, false]];
/// let a2 = array![[true, false, false]];
/// assert_eq!(edge_targets(&[a1, a2], 0.6)?, array![[1, IGNORE, 0]]);
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
///
/// # Errors
/// [`VisionError::Empty`] with no maps, [`VisionError::ShapeMismatch`] when they differ in
/// shape, [`VisionError::InvalidParameter`] unless `0 < eta <= 1`.
pub fn edge_targets(boundaries: &[Array2<bool>], eta: f32) -> Result<Target> {
    if !(eta > 0.0 && eta <= 1.0) {
        return Err(VisionError::param(
            "edge_targets",
            "eta",
            eta,
            "must be in (0, 1]",
        ));
    }
    let Some(first) = boundaries.first() else {
        return Err(VisionError::Empty {
            op: "edge_targets",
            what: "no boundary maps".into(),
        });
    };
    let mut count = Array2::<u32>::zeros(first.dim());
    for b in boundaries {
        if b.dim() != first.dim() {
            let (e, g) = (first.dim(), b.dim());
            return Err(VisionError::shape("edge_targets", &[e.0, e.1], &[g.0, g.1]));
        }
        ndarray::Zip::from(&mut count)
            .and(b)
            .for_each(|c, &m| *c += m as u32);
    }
    let k = boundaries.len() as f32;
    Ok(count.mapv(|c| {
        if c == 0 {
            0
        } else if c as f32 / k >= eta - 1e-6 {
            1
        } else {
            IGNORE
        }
    }))
}

/// Flips a `[c, h, w]` array and its `[h, w]` target left-right and/or up-down (training
/// augmentation).
pub(crate) fn flip(x: &mut Array3<f32>, t: &mut Target, lr: bool, ud: bool) {
    if lr {
        x.invert_axis(Axis(2));
        t.invert_axis(Axis(1));
    }
    if ud {
        x.invert_axis(Axis(1));
        t.invert_axis(Axis(0));
    }
}
