//! Non-maximum suppression of soft edge maps (learned or classical), before evaluation.
//!
//! Follows the structured-edge toolbox's `edgesNms` (Dollár and Zitnick): the edge normal
//! is estimated from second derivatives of the smoothed map, and a pixel is zeroed when a
//! sample at distance `1..=radius` along the normal on either side, bilinearly
//! interpolated, is larger than `multiplier ×` its own value.

use ndarray::{Array2, ArrayView2};

use super::filter::{gaussian_blur, Border};
use crate::error::{Result, VisionError};

/// Central differences along both axes (`numpy.gradient`: one-sided at the ends).
/// Returns `(d/dx, d/dy)` with x along columns.
fn gradient2(a: ArrayView2<f32>) -> (Array2<f32>, Array2<f32>) {
    let (h, w) = a.dim();
    let mut dx = Array2::<f32>::zeros((h, w));
    let mut dy = Array2::<f32>::zeros((h, w));
    for y in 0..h {
        for x in 0..w {
            dx[[y, x]] = if w < 2 {
                0.0
            } else if x == 0 {
                a[[y, 1]] - a[[y, 0]]
            } else if x == w - 1 {
                a[[y, w - 1]] - a[[y, w - 2]]
            } else {
                0.5 * (a[[y, x + 1]] - a[[y, x - 1]])
            };
            dy[[y, x]] = if h < 2 {
                0.0
            } else if y == 0 {
                a[[1, x]] - a[[0, x]]
            } else if y == h - 1 {
                a[[h - 1, x]] - a[[h - 2, x]]
            } else {
                0.5 * (a[[y + 1, x]] - a[[y - 1, x]])
            };
        }
    }
    (dx, dy)
}

/// Edge-normal orientation in `[0, π)` of a soft edge map, from second derivatives of
/// the map smoothed with a Gaussian of `sigma` pixels:
/// `O = atan(Oyy · sign(−Oxy) / (Oxx + 1e−5)) mod π` (`edgesNms`' formula, with a
/// Gaussian in place of its triangle filter and `sign(0) = 1`). `O = 0` means the normal points along +x.
///
/// # Errors
/// [`VisionError::InvalidParameter`] if `sigma` is not finite and positive.
pub fn edge_orientation(edges: ArrayView2<f32>, sigma: f32) -> Result<Array2<f32>> {
    let s = gaussian_blur(edges, sigma, Border::Reflect)?;
    let (ox, oy) = gradient2(s.view());
    let (oxx, _) = gradient2(ox.view());
    let (oxy, oyy) = gradient2(oy.view());
    let pi = std::f32::consts::PI;
    let mut o = Array2::<f32>::zeros(edges.dim());
    ndarray::Zip::from(&mut o)
        .and(&oxx)
        .and(&oxy)
        .and(&oyy)
        .for_each(|o, &xx, &xy, &yy| {
            // sign(0) is taken as +1 so exactly axis-aligned ridges get a normal too.
            let sign = if -xy < 0.0 { -1.0 } else { 1.0 };
            *o = (yy * sign / (xx + 1e-5)).atan().rem_euclid(pi);
        });
    Ok(o)
}

fn bilinear(a: &ArrayView2<f32>, x: f32, y: f32) -> f32 {
    let (h, w) = a.dim();
    let x = x.clamp(0.0, w as f32 - 1.001).max(0.0);
    let y = y.clamp(0.0, h as f32 - 1.001).max(0.0);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    (1.0 - fy) * ((1.0 - fx) * a[[y0, x0]] + fx * a[[y0, x1]])
        + fy * ((1.0 - fx) * a[[y1, x0]] + fx * a[[y1, x1]])
}

/// Non-maximum suppression of a soft edge map along its own estimated normals
/// ([`edge_orientation`]): pixel `p` is kept when `multiplier · E(p) >= E(p ± d·n)` for
/// every `d = 1..=radius` (bilinear samples), else set to 0.
///
/// Parameter ranges: `sigma > 0` (orientation smoothing, about 2), `radius >= 1` (1 in
/// `edgesNms`), `multiplier >= 1` (1.01 in `edgesNms`: slightly conservative, so flat
/// ridges are not erased).
///
/// # Errors
/// [`VisionError::InvalidParameter`] for a bad `sigma`, `radius` or `multiplier`.
///
/// ```
/// use ndarray::Array2;
/// // A blurred vertical ridge three pixels wide keeps only its centre column.
/// let e = Array2::from_shape_fn((7, 7), |(_, x)| match x { 2 | 4 => 0.5f32, 3 => 1.0, _ => 0.0 });
/// let n = vae_vision::classical::edge_nms(e.view(), 1.0, 1, 1.01)?;
/// for y in 0..7 {
///     assert_eq!(n[[y, 3]], 1.0);
///     assert_eq!(n[[y, 2]], 0.0);
///     assert_eq!(n[[y, 4]], 0.0);
/// }
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
pub fn edge_nms(
    edges: ArrayView2<f32>,
    sigma: f32,
    radius: usize,
    multiplier: f32,
) -> Result<Array2<f32>> {
    if radius == 0 {
        return Err(VisionError::param(
            "edge_nms",
            "radius",
            radius,
            "must be >= 1",
        ));
    }
    if !(multiplier.is_finite() && multiplier >= 1.0) {
        return Err(VisionError::param(
            "edge_nms",
            "multiplier",
            multiplier,
            "must be finite and >= 1",
        ));
    }
    let o = edge_orientation(edges, sigma)?;
    let mut out = edges.to_owned();
    for ((y, x), v) in out.indexed_iter_mut() {
        let e = edges[[y, x]];
        if e == 0.0 {
            continue;
        }
        let em = e * multiplier;
        let (s, c) = o[[y, x]].sin_cos();
        for d in 1..=radius {
            for sgn in [-1.0f32, 1.0] {
                let dd = sgn * d as f32;
                if em < bilinear(&edges, x as f32 + dd * c, y as f32 + dd * s) {
                    *v = 0.0;
                }
            }
        }
    }
    Ok(out)
}

/// Fades a thinned edge map towards the image border, as the structured-edge toolbox's
/// `edgesNms` does after suppression (its `s` argument, 5 in the toolbox and in the HED /
/// RCF evaluation scripts): the pixels at distance `d < s` from the nearest of the four
/// borders (row or column index `d` counted from that border) are multiplied by `d / s`, so
/// the outermost ring becomes 0. Responses there are mostly padding artefacts, and the
/// human boundary maps rarely mark the frame. `s` is clamped to half of each side;
/// `s = 0` leaves the map unchanged.
///
/// ```
/// use ndarray::Array2;
/// let mut e = Array2::<f32>::ones((12, 20));
/// vae_vision::classical::suppress_border(&mut e, 5);
/// assert_eq!(e[[0, 10]], 0.0); // the frame itself
/// assert_eq!(e[[2, 10]], 0.4); // two pixels in: 2 / 5
/// assert_eq!(e[[6, 1]], 0.2);
/// assert_eq!(e[[6, 10]], 1.0); // the interior is untouched
/// let mut small = Array2::<f32>::ones((4, 4));
/// vae_vision::classical::suppress_border(&mut small, 5); // s clamps to 2
/// assert_eq!(small[[1, 1]], 0.25);
/// ```
pub fn suppress_border(map: &mut Array2<f32>, s: usize) {
    let (h, w) = map.dim();
    let (sy, sx) = (s.min(h / 2), s.min(w / 2));
    for d in 0..sy {
        let f = d as f32 / sy as f32;
        map.row_mut(d).mapv_inplace(|v| v * f);
        map.row_mut(h - 1 - d).mapv_inplace(|v| v * f);
    }
    for d in 0..sx {
        let f = d as f32 / sx as f32;
        map.column_mut(d).mapv_inplace(|v| v * f);
        map.column_mut(w - 1 - d).mapv_inplace(|v| v * f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orientation_of_vertical_and_horizontal_ridges() {
        let v = Array2::from_shape_fn((15, 15), |(_, x)| (-((x as f32 - 7.0).powi(2)) / 4.0).exp());
        let o = edge_orientation(v.view(), 1.0).unwrap();
        let a = o[[7, 7]];
        assert!(!(0.05..=std::f32::consts::PI - 0.05).contains(&a), "{a}");
        let hz = v.t().to_owned();
        let o = edge_orientation(hz.view(), 1.0).unwrap();
        assert!(
            (o[[7, 7]] - std::f32::consts::FRAC_PI_2).abs() < 0.05,
            "{}",
            o[[7, 7]]
        );
        let n = edge_nms(hz.view(), 1.0, 1, 1.01).unwrap();
        assert!(n[[7, 7]] > 0.9 && n[[6, 7]] == 0.0 && n[[8, 7]] == 0.0);
    }
}
