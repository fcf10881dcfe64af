//! The precision-recall picture.

use image::{Rgb, RgbImage};
use vae_core::png::PALETTE;

use crate::error::{Result, VisionError};
use crate::metrics::PrPoint;

/// Draws precision-recall curves on a `size × size` white canvas: recall on x, precision
/// on y, both over `[0, 1]`, a grey frame, light-grey iso-F contours at F = 0.1, ..., 0.9,
/// curve `i` in `PALETTE[i % 10]` (the tab10 colours) and its ODS point as a filled square.
/// The picture has no text: the caller says which colour is which method.
///
/// ```
/// use vae_vision::edges::pr_plot;
/// use vae_vision::metrics::PrPoint;
/// let p = |r: f64, pr: f64| PrPoint { threshold: 0.5, recall: r, precision: pr, f: 2.0 * r * pr / (r + pr) };
/// let curve = vec![p(0.9, 0.3), p(0.6, 0.6), p(0.2, 0.9)];
/// let img = pr_plot(&[(curve.clone(), curve[1])], 200)?;
/// assert_eq!(img.dimensions(), (200, 200));
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
///
/// # Errors
/// [`VisionError::InvalidParameter`] when `size < 64` or no curve is given.
pub fn pr_plot(curves: &[(Vec<PrPoint>, PrPoint)], size: u32) -> Result<RgbImage> {
    if size < 64 {
        return Err(VisionError::param("pr_plot", "size", size, "must be >= 64"));
    }
    if curves.is_empty() {
        return Err(VisionError::param(
            "pr_plot",
            "curves",
            0,
            "need at least one curve",
        ));
    }
    let mut img = RgbImage::from_pixel(size, size, Rgb([255, 255, 255]));
    let m = (size / 16).max(4) as f64;
    let s = size as f64 - 2.0 * m;
    let to_px = |r: f64, p: f64| (m + r.clamp(0.0, 1.0) * s, m + (1.0 - p.clamp(0.0, 1.0)) * s);
    let put = |img: &mut RgbImage, x: f64, y: f64, c: [u8; 3]| {
        let (x, y) = (x.round(), y.round());
        if x >= 0.0 && y >= 0.0 && (x as u32) < size && (y as u32) < size {
            img.put_pixel(x as u32, y as u32, Rgb(c));
        }
    };
    // Iso-F contours: P = F R / (2R - F) for R in (F/2, 1].
    for k in 1..10 {
        let f = k as f64 / 10.0;
        let steps = 4 * size as usize;
        for i in 0..=steps {
            let r = f / 2.0 + (1.0 - f / 2.0) * i as f64 / steps as f64;
            let den = 2.0 * r - f;
            if den <= 0.0 {
                continue;
            }
            let p = f * r / den;
            if p <= 1.0 {
                let (x, y) = to_px(r, p);
                put(&mut img, x, y, [215, 215, 215]);
            }
        }
    }
    // Frame.
    for i in 0..=(s as u32) {
        let t = m + i as f64;
        for (x, y) in [(t, m), (t, m + s), (m, t), (m + s, t)] {
            put(&mut img, x, y, [120, 120, 120]);
        }
    }
    for (k, (curve, ods)) in curves.iter().enumerate() {
        let col = PALETTE[k % 10];
        let pts: Vec<(f64, f64)> = curve
            .iter()
            .filter(|p| p.recall.is_finite() && p.precision.is_finite() && p.recall > 0.0)
            .map(|p| to_px(p.recall, p.precision))
            .collect();
        for w in pts.windows(2) {
            let steps = ((w[1].0 - w[0].0).abs().max((w[1].1 - w[0].1).abs()) as usize).max(1);
            for t in 0..=steps {
                let a = t as f64 / steps as f64;
                let (x, y) = (
                    w[0].0 + a * (w[1].0 - w[0].0),
                    w[0].1 + a * (w[1].1 - w[0].1),
                );
                put(&mut img, x, y, col);
                put(&mut img, x + 1.0, y, col);
            }
        }
        if ods.recall.is_finite() && ods.precision.is_finite() {
            let (x, y) = to_px(ods.recall, ods.precision);
            for dy in -3..=3 {
                for dx in -3..=3 {
                    put(&mut img, x + dx as f64, y + dy as f64, col);
                }
            }
        }
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_colour_lands_where_expected() {
        let p = |r: f64, pr: f64| PrPoint {
            threshold: 0.5,
            recall: r,
            precision: pr,
            f: 2.0 * r * pr / (r + pr),
        };
        let img = pr_plot(&[(vec![p(0.5, 0.5), p(0.5, 0.5)], p(0.5, 0.5))], 100).unwrap();
        // m = 6, s = 88: (0.5, 0.5) -> pixel (50, 50), the ODS square in palette colour 0.
        assert_eq!(img.get_pixel(50, 50).0, PALETTE[0]);
        assert_eq!(img.get_pixel(6, 50).0, [120, 120, 120], "frame");
        assert_eq!(img.get_pixel(2, 2).0, [255, 255, 255], "margin");
        assert!(pr_plot(&[], 100).is_err());
        assert!(pr_plot(&[(vec![], p(0.5, 0.5))], 10).is_err());
    }
}
