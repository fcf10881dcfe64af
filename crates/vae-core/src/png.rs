//! PNG pictures of images and curves: image grids, latent scatter plots, loss curves.
//!
//! Plain pixels, no text: the caller prints what each picture shows.

use crate::error::{CoreError, Result};
use image::{Rgb, RgbImage};
use ndarray::{Array2, Array4, Axis};
use std::path::Path;

/// Ten distinguishable colours (the "tab10" palette), for class labels 0–9.
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Tiles `[n, c, h, w]` images with values in `[0, 1]` (c = 1 grey or 3 RGB) into a grid
/// with `cols` columns, `scale`× nearest-neighbour upscaling and 1-pixel white gaps.
pub fn image_grid(images: &Array4<f32>, cols: usize, scale: u32) -> Result<RgbImage> {
    let (n, c, h, w) = images.dim();
    if n == 0 || cols == 0 || scale == 0 || !(c == 1 || c == 3) {
        return Err(CoreError::arg(
            "image_grid",
            format!(
                "need n > 0, cols > 0, scale > 0 and 1 or 3 channels, got {:?}",
                images.shape()
            ),
        ));
    }
    let cols = cols.min(n);
    let rows = n.div_ceil(cols);
    let (cw, ch) = (w as u32 * scale + 1, h as u32 * scale + 1);
    let mut img = RgbImage::from_pixel(
        cols as u32 * cw + 1,
        rows as u32 * ch + 1,
        Rgb([255, 255, 255]),
    );
    for (k, im) in images.axis_iter(Axis(0)).enumerate() {
        let (ox, oy) = ((k % cols) as u32 * cw + 1, (k / cols) as u32 * ch + 1);
        for y in 0..h {
            for x in 0..w {
                let px = |ch: usize| (im[[ch, y, x]].clamp(0.0, 1.0) * 255.0).round() as u8;
                let rgb = if c == 1 {
                    [px(0); 3]
                } else {
                    [px(0), px(1), px(2)]
                };
                for dy in 0..scale {
                    for dx in 0..scale {
                        img.put_pixel(
                            ox + x as u32 * scale + dx,
                            oy + y as u32 * scale + dy,
                            Rgb(rgb),
                        );
                    }
                }
            }
        }
    }
    Ok(img)
}

/// Writes an RGB image as PNG.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    img.save(path).map_err(|e| CoreError::Image {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// [`image_grid`] then [`save_png`].
pub fn save_grid(images: &Array4<f32>, cols: usize, scale: u32, path: &Path) -> Result<()> {
    save_png(&image_grid(images, cols, scale)?, path)
}

fn range(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
        (l.min(x), h.max(x))
    });
    if hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, lo + 1.0)
    }
}

/// A `size`×`size` scatter plot of the first two columns of `points` (`[n, ≥2]`), each dot
/// coloured by its label (`PALETTE[label % 10]`), on a white background with grey axes at 0.
pub fn scatter(points: &Array2<f32>, labels: &[u8], size: u32) -> Result<RgbImage> {
    if points.ncols() < 2 || points.nrows() != labels.len() || size < 16 {
        return Err(CoreError::arg(
            "scatter",
            format!(
                "points {:?}, {} labels, size {size}",
                points.shape(),
                labels.len()
            ),
        ));
    }
    let (x0, x1) = range(points.column(0).iter().map(|&v| v as f64));
    let (y0, y1) = range(points.column(1).iter().map(|&v| v as f64));
    let m = 8.0;
    let s = size as f64 - 2.0 * m;
    let to_px = |x: f64, y: f64| (m + (x - x0) / (x1 - x0) * s, m + (y1 - y) / (y1 - y0) * s);
    let mut img = RgbImage::from_pixel(size, size, Rgb([255, 255, 255]));
    let (ax, ay) = to_px(0.0, 0.0);
    for t in 0..size {
        if (0.0..size as f64).contains(&ax) {
            img.put_pixel(ax as u32, t, Rgb([200, 200, 200]));
        }
        if (0.0..size as f64).contains(&ay) {
            img.put_pixel(t, ay as u32, Rgb([200, 200, 200]));
        }
    }
    for (p, &l) in points.rows().into_iter().zip(labels) {
        let (px, py) = to_px(p[0] as f64, p[1] as f64);
        let col = Rgb(PALETTE[l as usize % 10]);
        for dy in -1i64..=1 {
            for dx in -1i64..=1 {
                let (x, y) = (px as i64 + dx, py as i64 + dy);
                if x >= 0 && y >= 0 && (x as u32) < size && (y as u32) < size {
                    img.put_pixel(x as u32, y as u32, col);
                }
            }
        }
    }
    Ok(img)
}

/// A line chart of several series (x = index) on shared axes, each in `PALETTE[i]`, with a
/// grey frame. Non-finite values are skipped.
pub fn line_plot(series: &[Vec<f64>], width: u32, height: u32) -> Result<RgbImage> {
    let finite = || series.iter().flatten().copied().filter(|v| v.is_finite());
    if series.is_empty() || finite().count() == 0 || width < 16 || height < 16 {
        return Err(CoreError::arg(
            "line_plot",
            "need at least one finite value and a 16x16 canvas",
        ));
    }
    let (y0, y1) = range(finite());
    let len = series.iter().map(Vec::len).max().unwrap_or(1).max(2);
    let m = 10.0;
    let (sw, sh) = (width as f64 - 2.0 * m, height as f64 - 2.0 * m);
    let mut img = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    for x in m as u32..width - m as u32 {
        img.put_pixel(x, m as u32, Rgb([180, 180, 180]));
        img.put_pixel(x, height - m as u32, Rgb([180, 180, 180]));
    }
    for y in m as u32..=height - m as u32 {
        img.put_pixel(m as u32, y, Rgb([180, 180, 180]));
        img.put_pixel(width - m as u32, y, Rgb([180, 180, 180]));
    }
    let to_px = |i: usize, v: f64| {
        (
            m + i as f64 / (len - 1) as f64 * sw,
            m + (y1 - v) / (y1 - y0) * sh,
        )
    };
    for (k, s) in series.iter().enumerate() {
        let col = Rgb(PALETTE[k % 10]);
        let pts: Vec<(f64, f64)> = s
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, &v)| to_px(i, v))
            .collect();
        for w in pts.windows(2) {
            let steps = ((w[1].0 - w[0].0).abs().max((w[1].1 - w[0].1).abs()) as usize).max(1);
            for t in 0..=steps {
                let a = t as f64 / steps as f64;
                let (x, y) = (
                    w[0].0 + a * (w[1].0 - w[0].0),
                    w[0].1 + a * (w[1].1 - w[0].1),
                );
                for d in 0..2u32 {
                    let (px, py) = (x as u32 + d, y as u32);
                    if px < width && py < height {
                        img.put_pixel(px, py, col);
                    }
                }
            }
        }
        for &(x, y) in &pts {
            if (x as u32) < width && (y as u32) < height {
                img.put_pixel(x as u32, y as u32, col);
            }
        }
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_places_images_and_gaps() {
        let mut x = Array4::zeros((3, 1, 2, 2));
        x[[1, 0, 0, 0]] = 1.0;
        let g = image_grid(&x, 2, 1).unwrap();
        assert_eq!(g.dimensions(), (2 * 3 + 1, 2 * 3 + 1));
        assert_eq!(g.get_pixel(0, 0), &Rgb([255, 255, 255]), "gap");
        assert_eq!(g.get_pixel(1, 1), &Rgb([0, 0, 0]), "image 0");
        assert_eq!(
            g.get_pixel(4, 1),
            &Rgb([255, 255, 255]),
            "image 1, pixel (0, 0)"
        );
        assert!(image_grid(&Array4::zeros((1, 2, 2, 2)), 1, 1).is_err());
    }

    #[test]
    fn scatter_and_lines_draw_something_and_save() {
        let p = ndarray::array![[0.0f32, 0.0], [1.0, 1.0], [-1.0, 0.5]];
        let img = scatter(&p, &[0, 1, 2], 64).unwrap();
        assert!(img.pixels().any(|px| px.0 == PALETTE[1]));
        let l = line_plot(&[vec![3.0, 2.0, 1.5], vec![f64::NAN, 2.5, 2.0]], 64, 48).unwrap();
        assert!(l.pixels().any(|px| px.0 == PALETTE[0]));
        assert!(l.pixels().any(|px| px.0 == PALETTE[1]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.png");
        save_png(&img, &path).unwrap();
        assert_eq!(image::open(&path).unwrap().to_rgb8(), img);
        let bad = save_png(&img, &dir.path().join("no/such/dir/s.png")).unwrap_err();
        assert!(matches!(bad, CoreError::Image { .. }));
    }
}
