//! Colour-coded label maps blended over grey images, saved as PNG panels.

use std::path::Path;

use image::{Rgb, RgbImage};
use ndarray::{Array3, Array4};

use crate::error::{Result, VisionError};

/// A distinct colour for each class (cycles after 12).
pub fn class_colour(class: usize) -> [u8; 3] {
    const P: [[u8; 3]; 12] = [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 212],
        [0, 128, 128],
        [170, 110, 40],
    ];
    P[class % P.len()]
}

/// Writes a PNG with one row per image (the first `count`): the grey input, the ground
/// truth and the prediction, each label blended at 50% over the grey input. Pixels of the
/// `background` class (if any) stay grey. Returns nothing; the file is at `path`.
///
/// # Errors
/// [`VisionError::ShapeMismatch`] when the arrays disagree; [`VisionError::Image`] when
/// the file cannot be written.
pub fn save_overlay_panel(
    path: &Path,
    images: &Array4<f32>,
    truth: &Array3<u8>,
    pred: &Array3<u8>,
    count: usize,
    background: Option<u8>,
) -> Result<()> {
    let (n, _, h, w) = images.dim();
    if truth.dim() != (n, h, w) || pred.dim() != (n, h, w) {
        return Err(VisionError::shape(
            "save_overlay_panel",
            &[n, h, w],
            &[pred.dim().0, pred.dim().1, pred.dim().2],
        ));
    }
    let rows = count.min(n);
    let gap = 2;
    let mut out = RgbImage::from_pixel(
        (3 * w + 2 * gap) as u32,
        (rows * (h + gap)) as u32,
        Rgb([255, 255, 255]),
    );
    for i in 0..rows {
        for y in 0..h {
            for x in 0..w {
                let g = (images[[i, 0, y, x]].clamp(0.0, 1.0) * 255.0) as u8;
                let blend = |l: u8| {
                    if Some(l) == background {
                        Rgb([g, g, g])
                    } else {
                        let c = class_colour(l as usize);
                        Rgb([0, 1, 2].map(|k| ((g as u16 + c[k] as u16) / 2) as u8))
                    }
                };
                let py = (i * (h + gap) + y) as u32;
                out.put_pixel(x as u32, py, Rgb([g, g, g]));
                out.put_pixel((w + gap + x) as u32, py, blend(truth[[i, y, x]]));
                out.put_pixel((2 * (w + gap) + x) as u32, py, blend(pred[[i, y, x]]));
            }
        }
    }
    out.save(path).map_err(|source| VisionError::Image {
        path: path.to_path_buf(),
        source,
    })
}
