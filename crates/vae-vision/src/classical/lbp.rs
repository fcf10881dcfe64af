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
    let (oh, ow) = valid_size("lbp_riu2", img, points, radius)?;
    let mut out = Array2::<u8>::zeros((oh, ow));
    let mut bits = vec![false; points];
    for_each_circle(img, points, radius, |(oy, ox), gc, g| {
        for (b, &gp) in bits.iter_mut().zip(g) {
            *b = gp >= gc;
        }
        out[[oy, ox]] = riu2_code(&bits);
    });
    Ok(out)
}

/// The size of the valid region of [`lbp_riu2`] for an image, after checking the
/// parameters.
fn valid_size(
    op: &'static str,
    img: ArrayView2<f32>,
    points: usize,
    radius: f32,
) -> Result<(usize, usize)> {
    check_pr(op, points, radius)?;
    let (h, w) = img.dim();
    let m = radius.ceil() as usize;
    if h <= 2 * m || w <= 2 * m {
        return Err(VisionError::Empty {
            op,
            what: format!("image {h}x{w} too small for radius {radius}"),
        });
    }
    Ok((h - 2 * m, w - 2 * m))
}

/// Calls `f((oy, ox), g_c, [g_0, …, g_{P−1}])` for every pixel of the valid region (see
/// [`lbp_riu2`]; parameters already checked by [`valid_size`]), in row-major order.
fn for_each_circle(
    img: ArrayView2<f32>,
    points: usize,
    radius: f32,
    mut f: impl FnMut((usize, usize), f32, &[f32]),
) {
    let (h, w) = img.dim();
    let m = radius.ceil() as usize;
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
    let at = |y: isize, x: isize| -> f32 {
        // Taps with zero weight may step one past the image; read them as 0.
        if y < 0 || x < 0 || y as usize >= h || x as usize >= w {
            0.0
        } else {
            img[[y as usize, x as usize]]
        }
    };
    let mut g = vec![0.0f32; points];
    for oy in 0..h - 2 * m {
        for ox in 0..w - 2 * m {
            let (cy, cx) = ((oy + m) as isize, (ox + m) as isize);
            for (gp, t) in g.iter_mut().zip(&taps) {
                let (y, x) = (cy + t.y0, cx + t.x0);
                let mut v = t.w[0] * at(y, x);
                if t.w[1] != 0.0 {
                    v += t.w[1] * at(y, x + 1);
                }
                if t.w[2] != 0.0 {
                    v += t.w[2] * at(y + 1, x);
                }
                if t.w[3] != 0.0 {
                    v += t.w[3] * at(y + 1, x + 1);
                }
                *gp = v;
            }
            f((oy, ox), img[[cy as usize, cx as usize]], &g);
        }
    }
}

/// The mean local difference magnitude `|g_p − g_c|` over the valid region and all `P`
/// samples: CLBP's default magnitude threshold ([`clbp_riu2`] with `None`).
///
/// # Errors
/// As [`lbp_riu2`].
///
/// ```
/// use ndarray::array;
/// let img = array![[0.0f32, 0.5, 1.0], [0.0, 0.5, 1.0], [0.0, 0.5, 1.0]];
/// // 4 samples (E, N, W, S) around the centre: differences 0.5, 0, 0.5, 0.
/// let m = vae_vision::classical::lbp_mean_magnitude(img.view(), 4, 1.0)?;
/// assert!((m - 0.25).abs() < 1e-6);
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
pub fn lbp_mean_magnitude(img: ArrayView2<f32>, points: usize, radius: f32) -> Result<f32> {
    valid_size("lbp_mean_magnitude", img, points, radius)?;
    Ok(mean_magnitude(img, points, radius))
}

/// [`lbp_mean_magnitude`] after the checks.
fn mean_magnitude(img: ArrayView2<f32>, points: usize, radius: f32) -> f32 {
    let (mut sum, mut n) = (0.0f64, 0usize);
    for_each_circle(img, points, radius, |_, gc, g| {
        sum += g.iter().map(|&gp| f64::from((gp - gc).abs())).sum::<f64>();
        n += g.len();
    });
    (sum / n as f64) as f32
}

/// The three code maps of the *completed* LBP (CLBP; Guo, Zhang and Zhang, TIP 2010) of
/// one scale, each `[h − 2m, w − 2m]` like [`lbp_riu2`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClbpCodes {
    /// CLBP_S: the sign codes, identical to [`lbp_riu2`] (`0..=P+1`).
    pub sign: Array2<u8>,
    /// CLBP_M: riu2 code of the bits `|g_p − g_c| >= magnitude threshold` (`0..=P+1`).
    pub magnitude: Array2<u8>,
    /// CLBP_C: `g_c >= centre threshold`.
    pub centre: Array2<bool>,
}

/// Completed LBP codes of one scale: the sign codes of [`lbp_riu2`], the riu2 codes of the
/// local difference *magnitudes* thresholded at `magnitude` (the paper's `c`: the mean of
/// `|g_p − g_c|`; `None` takes it over this image), and the centre pixels thresholded at
/// `centre` (`None`: the image's mean over the valid region). Fixed thresholds (for
/// example means over a training set) make codes of different images comparable.
///
/// # Errors
/// As [`lbp_riu2`], and [`VisionError::InvalidParameter`] for a threshold that is not
/// finite.
///
/// ```
/// use ndarray::array;
/// use vae_vision::classical::{clbp_riu2, lbp_riu2};
/// let img = array![[0.0f32, 0.5, 1.0], [0.0, 0.5, 1.0], [0.0, 0.5, 1.0]];
/// let c = clbp_riu2(img.view(), 8, 1.0, Some(0.4), Some(0.5))?;
/// assert_eq!(c.sign, lbp_riu2(img.view(), 8, 1.0)?);
/// // |g_p − g_c| is 0.5 east and west, about 0.35 on the diagonals and 0 north and
/// // south: only the bits E and W are >= 0.4, two separate runs -> not uniform (P + 1).
/// assert_eq!(c.magnitude, array![[9u8]]);
/// assert_eq!(c.centre, array![[true]]);
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
pub fn clbp_riu2(
    img: ArrayView2<f32>,
    points: usize,
    radius: f32,
    magnitude: Option<f32>,
    centre: Option<f32>,
) -> Result<ClbpCodes> {
    let op = "clbp_riu2";
    let (oh, ow) = valid_size(op, img, points, radius)?;
    for (name, t) in [("magnitude", magnitude), ("centre", centre)] {
        if let Some(t) = t.filter(|t| !t.is_finite()) {
            return Err(VisionError::param(op, name, t, "must be finite"));
        }
    }
    let magnitude = magnitude.unwrap_or_else(|| mean_magnitude(img, points, radius));
    let m = radius.ceil() as usize;
    let centre = centre.unwrap_or_else(|| {
        let sum: f64 = (m..m + oh)
            .flat_map(|y| (m..m + ow).map(move |x| (y, x)))
            .map(|(y, x)| f64::from(img[[y, x]]))
            .sum();
        (sum / (oh * ow) as f64) as f32
    });
    let mut out = ClbpCodes {
        sign: Array2::zeros((oh, ow)),
        magnitude: Array2::zeros((oh, ow)),
        centre: Array2::from_elem((oh, ow), false),
    };
    let (mut sb, mut mb) = (vec![false; points], vec![false; points]);
    for_each_circle(img, points, radius, |(oy, ox), gc, g| {
        for ((s, mg), &gp) in sb.iter_mut().zip(mb.iter_mut()).zip(g) {
            *s = gp >= gc;
            *mg = (gp - gc).abs() >= magnitude;
        }
        out.sign[[oy, ox]] = riu2_code(&sb);
        out.magnitude[[oy, ox]] = riu2_code(&mb);
        out.centre[[oy, ox]] = gc >= centre;
    });
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
    fn clbp_sign_is_lbp_and_thresholds_default_to_image_means() {
        // Smooth waves plus a little deterministic texture.
        let img = Array2::from_shape_fn((13, 12), |(y, x)| {
            let (yf, xf) = (y as f32, x as f32);
            0.5 * ((0.7 * yf).sin() + (0.45 * xf).cos()) + 0.05 * ((y * 5 + x * 3) % 7) as f32
        });
        for (p, r) in [(8, 1.0), (16, 2.0)] {
            let c = clbp_riu2(img.view(), p, r, None, None).unwrap();
            assert_eq!(c.sign, lbp_riu2(img.view(), p, r).unwrap());
            // The default magnitude threshold is the mean |g_p − g_c|: some bits on each
            // side of it, so both uniform and non-uniform codes and more than one code.
            let mut seen = std::collections::BTreeSet::new();
            c.magnitude.iter().for_each(|&v| {
                seen.insert(v);
            });
            assert!(seen.len() > 2, "P={p}: {seen:?}");
            assert!(c.magnitude.iter().all(|&v| (v as usize) <= p + 1));
            // The default centre threshold is the valid region's mean: both values occur.
            let ones = c.centre.iter().filter(|&&b| b).count();
            assert!(ones > 0 && ones < c.centre.len());
            // A threshold above every difference gives code 0 everywhere, one at or below
            // zero gives P (all ones) everywhere; likewise for the centre bits.
            let hi = clbp_riu2(img.view(), p, r, Some(10.0), Some(-10.0)).unwrap();
            assert!(hi.magnitude.iter().all(|&v| v == 0));
            assert!(hi.centre.iter().all(|&b| b));
            let lo = clbp_riu2(img.view(), p, r, Some(0.0), Some(10.0)).unwrap();
            assert!(lo.magnitude.iter().all(|&v| v as usize == p));
            assert!(lo.centre.iter().all(|&b| !b));
        }
        assert!(matches!(
            clbp_riu2(img.view(), 8, 1.0, Some(f32::NAN), None),
            Err(VisionError::InvalidParameter { .. })
        ));
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
