//! Rotation-invariant uniform local binary patterns, `LBP^{riu2}_{P,R}` (Ojala,
//! Pietikäinen and Mäenpää, TPAMI 2002).
//!
//! For a pixel `c` and `P` samples `g_p` on a circle of radius `R` (`p = 0..P`, at angle
//! `2πp/P` counter-clockwise from east, bilinearly interpolated, offsets rounded to 5
//! decimals as in scikit-image so axis-aligned samples are exact), let
//! `s_p = [g_p >= g_c]`. With `U` the number of 0/1 changes around the closed circle,
//!
//! `LBP^{riu2} = Σ_p s_p` if `U <= 2` (a *uniform* pattern), else `P + 1`.
//!
//! So there are `P + 2` codes: `0..=P` for uniform patterns (by number of ones) and
//! `P + 1` for all others. Codes are computed on the valid region, where the whole circle
//! lies inside the image.

use ndarray::{Array2, ArrayView2};

use crate::error::{Result, VisionError};

/// The riu2 code of one circular pattern of bits (`bits[p] = s_p`).
///
/// ```
/// use vae_vision::classical::riu2_code;
/// // Uniform: one run of three ones -> 3.
/// assert_eq!(riu2_code(&[true, true, true, false, false, false, false, false]), 3);
/// // A run that wraps around is still uniform.
/// assert_eq!(riu2_code(&[true, false, false, false, false, false, true, true]), 3);
/// // Four changes: not uniform -> P + 1 = 9.
/// assert_eq!(riu2_code(&[true, false, true, false, false, false, false, false]), 9);
/// assert_eq!(riu2_code(&[false; 8]), 0);
/// assert_eq!(riu2_code(&[true; 8]), 8);
/// ```
pub fn riu2_code(bits: &[bool]) -> u8 {
    let p = bits.len();
    let changes = (0..p).filter(|&i| bits[i] != bits[(i + 1) % p]).count();
    if changes <= 2 {
        bits.iter().filter(|&&b| b).count() as u8
    } else {
        (p + 1) as u8
    }
}

fn check_pr(op: &'static str, p: usize, r: f32) -> Result<()> {
    if !(1..=64).contains(&p) {
        return Err(VisionError::param(op, "points", p, "must be in 1..=64"));
    }
    if !(r.is_finite() && r > 0.0) {
        return Err(VisionError::param(
            op,
            "radius",
            r,
            "must be finite and > 0",
        ));
    }
    Ok(())
}

/// riu2 codes (`0..=P+1`) of every pixel whose circle of radius `radius` lies inside the
/// image: the output is `[h − 2m, w − 2m]` with `m = ceil(radius)`, and output `(y, x)` is
/// input pixel `(y + m, x + m)`.
///
/// Parameter ranges: `1 <= points <= 64`, `radius > 0`; the classic settings are
/// `(8, 1)`, `(16, 2)` and `(24, 3)`.
///
/// # Errors
/// [`VisionError::InvalidParameter`] for bad `points` or `radius`, and
/// [`VisionError::Empty`] if the image is too small to hold one circle.
///
/// ```
/// use ndarray::array;
/// // Brightness grows to the right: east, north-east, north, south and south-east
/// // samples are >= the centre (ones), the three western samples are not.
/// let img = array![[0.0f32, 0.5, 1.0], [0.0, 0.5, 1.0], [0.0, 0.5, 1.0]];
/// let codes = vae_vision::classical::lbp_riu2(img.view(), 8, 1.0)?;
/// assert_eq!(codes, array![[5u8]]);
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
pub fn lbp_riu2(img: ArrayView2<f32>, points: usize, radius: f32) -> Result<Array2<u8>> {
    check_pr("lbp_riu2", points, radius)?;
    let (h, w) = img.dim();
    let m = radius.ceil() as usize;
    if h <= 2 * m || w <= 2 * m {
        return Err(VisionError::Empty {
            op: "lbp_riu2",
            what: format!("image {h}x{w} too small for radius {radius}"),
        });
    }
    // Sample offsets (dy, dx), rounded to 5 decimals, and their bilinear stencils.
    struct Tap {
        y0: isize,
        x0: isize,
        w: [f32; 4],
    }
    let taps: Vec<Tap> = (0..points)
        .map(|p| {
            let a = 2.0 * std::f64::consts::PI * p as f64 / points as f64;
            let round5 = |v: f64| (v * 1e5).round() / 1e5;
            let dy = round5(-(radius as f64) * a.sin());
            let dx = round5(radius as f64 * a.cos());
            let (fy, fx) = (dy.floor(), dx.floor());
            let (ty, tx) = ((dy - fy) as f32, (dx - fx) as f32);
            Tap {
                y0: fy as isize,
                x0: fx as isize,
                w: [
                    (1.0 - ty) * (1.0 - tx),
                    (1.0 - ty) * tx,
                    ty * (1.0 - tx),
                    ty * tx,
                ],
            }
        })
        .collect();
    let (oh, ow) = (h - 2 * m, w - 2 * m);
    let mut out = Array2::<u8>::zeros((oh, ow));
    let mut bits = vec![false; points];
    let at = |y: isize, x: isize| -> f32 {
        // Taps with zero weight may step one past the image; read them as 0.
        if y < 0 || x < 0 || y as usize >= h || x as usize >= w {
            0.0
        } else {
            img[[y as usize, x as usize]]
        }
    };
    for oy in 0..oh {
        for ox in 0..ow {
            let (cy, cx) = ((oy + m) as isize, (ox + m) as isize);
            let gc = img[[cy as usize, cx as usize]];
            for (b, t) in bits.iter_mut().zip(&taps) {
                let (y, x) = (cy + t.y0, cx + t.x0);
                let mut g = t.w[0] * at(y, x);
                if t.w[1] != 0.0 {
                    g += t.w[1] * at(y, x + 1);
                }
                if t.w[2] != 0.0 {
                    g += t.w[2] * at(y + 1, x);
                }
                if t.w[3] != 0.0 {
                    g += t.w[3] * at(y + 1, x + 1);
                }
                *b = g >= gc;
            }
            out[[oy, ox]] = riu2_code(&bits);
        }
    }
    Ok(out)
}

/// The normalised histogram (sums to 1) of [`lbp_riu2`] codes: `points + 2` bins.
///
/// # Errors
/// As [`lbp_riu2`].
pub fn lbp_riu2_histogram(img: ArrayView2<f32>, points: usize, radius: f32) -> Result<Vec<f32>> {
    let codes = lbp_riu2(img, points, radius)?;
    let mut hist = vec![0.0f32; points + 2];
    for &c in codes.iter() {
        hist[c as usize] += 1.0;
    }
    let n = codes.len() as f32;
    hist.iter_mut().for_each(|v| *v /= n);
    Ok(hist)
}

/// The scales of a multi-scale LBP descriptor: `(points, radius)` pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct LbpConfig {
    /// `(P, R)` per scale; the default is `(8, 1), (16, 2), (24, 3)`.
    pub scales: Vec<(usize, f32)>,
}

impl Default for LbpConfig {
    fn default() -> Self {
        LbpConfig {
            scales: vec![(8, 1.0), (16, 2.0), (24, 3.0)],
        }
    }
}

impl LbpConfig {
    /// Length of the concatenated descriptor: `Σ (P + 2)` (54 for the default).
    pub fn len(&self) -> usize {
        self.scales.iter().map(|(p, _)| p + 2).sum()
    }

    /// Whether there are no scales.
    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }
}

/// Multi-scale riu2 descriptor: the concatenation of [`lbp_riu2_histogram`] for every
/// scale of `cfg`, each histogram normalised to sum 1 (so the whole vector sums to the
/// number of scales).
///
/// # Errors
/// As [`lbp_riu2`], and [`VisionError::Empty`] if `cfg` has no scales.
///
/// ```
/// use ndarray::Array2;
/// use vae_vision::classical::{lbp_multiscale_histogram, LbpConfig};
/// // A flat image: every sample equals the centre, so every pixel has code P (all ones).
/// let img = Array2::<f32>::from_elem((9, 9), 0.5);
/// let d = lbp_multiscale_histogram(img.view(), &LbpConfig::default())?;
/// assert_eq!(d.len(), 54);
/// assert_eq!((d[8], d[10 + 16], d[28 + 24]), (1.0, 1.0, 1.0));
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
pub fn lbp_multiscale_histogram(img: ArrayView2<f32>, cfg: &LbpConfig) -> Result<Vec<f32>> {
    if cfg.scales.is_empty() {
        return Err(VisionError::Empty {
            op: "lbp_multiscale_histogram",
            what: "no scales".into(),
        });
    }
    let mut out = Vec::with_capacity(cfg.len());
    for &(p, r) in &cfg.scales {
        out.extend(lbp_riu2_histogram(img, p, r)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_invariance_on_quarter_turns() {
        let img = Array2::from_shape_fn((11, 11), |(y, x)| ((y * 7 + x * 13) % 11) as f32 / 10.0);
        let rot = Array2::from_shape_fn((11, 11), |(y, x)| img[[x, 10 - y]]);
        for (p, r) in [(8, 1.0), (16, 2.0), (24, 3.0)] {
            let a = lbp_riu2_histogram(img.view(), p, r).unwrap();
            let b = lbp_riu2_histogram(rot.view(), p, r).unwrap();
            assert_eq!(a, b, "P={p} R={r}");
        }
    }

    #[test]
    fn bad_arguments() {
        let img = Array2::<f32>::zeros((3, 3));
        assert!(matches!(
            lbp_riu2(img.view(), 8, 2.0),
            Err(VisionError::Empty { .. })
        ));
        assert!(matches!(
            lbp_riu2(img.view(), 0, 1.0),
            Err(VisionError::InvalidParameter { .. })
        ));
    }
}
