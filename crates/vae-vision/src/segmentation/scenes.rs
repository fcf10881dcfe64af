//! Segmentation data generated from real images and a seed: digit scenes (MNIST digits on
//! a canvas) and texture mosaics in the manner of Randen and Husøy (1999).

use ndarray::{Array2, Array3, Array4, ArrayView2, Axis};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;

use crate::error::{Result, VisionError};

/// A set of grey images with one label per pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct SegSet {
    /// `[n, 1, h, w]`, grey levels in `[0, 1]`.
    pub images: Array4<f32>,
    /// `[n, h, w]`, one class per pixel, each `< num_classes`.
    pub labels: Array3<u8>,
    /// Number of classes.
    pub num_classes: usize,
}

impl SegSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.dim().0
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fraction of pixels of each class (sums to 1 over a non-empty set).
    pub fn class_frequencies(&self) -> Vec<f64> {
        let mut counts = vec![0u64; self.num_classes];
        for &l in self.labels.iter() {
            counts[l as usize] += 1;
        }
        let total = self.labels.len().max(1) as f64;
        counts.iter().map(|&c| c as f64 / total).collect()
    }

    /// The images (and labels) `2×2` box-averaged (labels: the top-left pixel of each box),
    /// for a network that works at half resolution. Odd trailing rows/columns are dropped.
    pub fn downsample2(&self) -> SegSet {
        let (n, c, h, w) = self.images.dim();
        let (h2, w2) = (h / 2, w / 2);
        let images = Array4::from_shape_fn((n, c, h2, w2), |(i, ch, y, x)| {
            let im = &self.images;
            0.25 * (im[[i, ch, 2 * y, 2 * x]]
                + im[[i, ch, 2 * y + 1, 2 * x]]
                + im[[i, ch, 2 * y, 2 * x + 1]]
                + im[[i, ch, 2 * y + 1, 2 * x + 1]])
        });
        let labels = Array3::from_shape_fn((n, h2, w2), |(i, y, x)| self.labels[[i, 2 * y, 2 * x]]);
        SegSet {
            images,
            labels,
            num_classes: self.num_classes,
        }
    }
}

/// Ink above this level in a digit gets the digit's class.
pub const INK_THRESHOLD: f32 = 0.5;

/// Tight bounding box `(y0, x0, y1, x1)` (exclusive ends) of the pixels above
/// [`INK_THRESHOLD`], or `None` for an empty digit.
fn ink_box(d: ArrayView2<f32>) -> Option<(usize, usize, usize, usize)> {
    let (mut y0, mut x0, mut y1, mut x1) = (usize::MAX, usize::MAX, 0, 0);
    for ((y, x), &v) in d.indexed_iter() {
        if v > INK_THRESHOLD {
            y0 = y0.min(y);
            x0 = x0.min(x);
            y1 = y1.max(y + 1);
            x1 = x1.max(x + 1);
        }
    }
    (y1 > 0).then_some((y0, x0, y1, x1))
}

/// Generates `n` digit scenes of `size × size` pixels, each with one to `max_digits` digits
/// drawn from `digits` (`[m, 1, dh, dw]`, values in `[0, 1]`) with their `labels` (`0..=9`).
///
/// Digits are placed at random so that the tight boxes around their ink (pixels above
/// [`INK_THRESHOLD`]) do not overlap (up to 50 tries per digit; a digit that finds no room
/// is left out, so every scene has at least one digit). The canvas is the pixel-wise maximum
/// of the placed digits. The label of a pixel is `digit + 1` where that digit's ink is
/// above the threshold and 0 (background) elsewhere, so labels always agree with the ink.
///
/// # Errors
/// [`VisionError::InvalidParameter`] when `size` is smaller than a digit, `max_digits` is
/// 0, or `digits` is empty or has more than one channel; [`VisionError::ShapeMismatch`]
/// when `labels` and `digits` differ in length; [`VisionError::LabelOutOfRange`] for a
/// label above 9.
pub fn digit_scenes(
    digits: &Array4<f32>,
    labels: &[u8],
    n: usize,
    size: usize,
    max_digits: usize,
    rng: &mut impl Rng,
) -> Result<SegSet> {
    const OP: &str = "digit_scenes";
    let (m, c, dh, dw) = digits.dim();
    if m == 0 || c != 1 {
        return Err(VisionError::param(
            OP,
            "digits",
            format!("{:?}", digits.dim()),
            "need at least one 1-channel digit",
        ));
    }
    if labels.len() != m {
        return Err(VisionError::shape(OP, &[m], &[labels.len()]));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l > 9) {
        return Err(VisionError::LabelOutOfRange {
            op: OP,
            label: bad as usize,
            num_classes: 10,
        });
    }
    if size < dh.max(dw) {
        return Err(VisionError::param(
            OP,
            "size",
            size,
            format!("must be at least the digit size {dh}x{dw}"),
        ));
    }
    if max_digits == 0 {
        return Err(VisionError::param(
            OP,
            "max_digits",
            0,
            "must be at least 1",
        ));
    }
    let mut images = Array4::<f32>::zeros((n, 1, size, size));
    let mut out = Array3::<u8>::zeros((n, size, size));
    for i in 0..n {
        let want = rng.random_range(1..=max_digits);
        let mut boxes: Vec<(usize, usize, usize, usize)> = Vec::new();
        let mut tries = 0;
        while boxes.len() < want && tries < 50 * want {
            tries += 1;
            let k = rng.random_range(0..m);
            let d = digits.index_axis(Axis(0), k);
            let d = d.index_axis(Axis(0), 0);
            let Some((by0, bx0, by1, bx1)) = ink_box(d) else {
                continue;
            };
            // Place the ink box anywhere inside the canvas.
            let (bh, bw) = (by1 - by0, bx1 - bx0);
            let oy = rng.random_range(0..=size - bh);
            let ox = rng.random_range(0..=size - bw);
            let placed = (oy, ox, oy + bh, ox + bw);
            let overlaps = boxes
                .iter()
                .any(|b| placed.0 < b.2 && b.0 < placed.2 && placed.1 < b.3 && b.1 < placed.3);
            if overlaps && !boxes.is_empty() {
                continue;
            }
            boxes.push(placed);
            let class = labels[k] + 1;
            for y in 0..dh {
                for x in 0..dw {
                    // Canvas position of digit pixel (y, x); pixels outside the canvas are cut.
                    let (cy, cx) = (
                        (oy + y) as isize - by0 as isize,
                        (ox + x) as isize - bx0 as isize,
                    );
                    if cy < 0 || cx < 0 || cy as usize >= size || cx as usize >= size {
                        continue;
                    }
                    let (cy, cx) = (cy as usize, cx as usize);
                    let v = d[[y, x]];
                    let px = &mut images[[i, 0, cy, cx]];
                    *px = px.max(v);
                    if v > INK_THRESHOLD {
                        out[[i, cy, cx]] = class;
                    }
                }
            }
        }
    }
    Ok(SegSet {
        images,
        labels: out,
        num_classes: 11,
    })
}

/// Grey texture images with their class, the material a mosaic is cut from.
#[derive(Debug, Clone)]
pub struct TextureBank {
    /// `[h, w]` grey images in `[0, 1]` (sizes may differ).
    pub images: Vec<Array2<f32>>,
    /// The class of each image.
    pub labels: Vec<usize>,
    /// Number of classes.
    pub num_classes: usize,
}

impl TextureBank {
    /// Splits the bank by source image: `n_train` random images of each class go to the
    /// first bank, the rest to the second (`vae_data::folder::split_images_per_class`), so
    /// mosaics cut from the second bank use only images the first never saw.
    ///
    /// # Errors
    /// [`VisionError::Data`] when a class has fewer than `n_train` images.
    pub fn split(&self, n_train: usize, rng: &mut impl Rng) -> Result<(TextureBank, TextureBank)> {
        let (train, test) = vae_data::folder::split_images_per_class(&self.labels, n_train, rng)?;
        let pick = |idx: &[usize]| TextureBank {
            images: idx.iter().map(|&i| self.images[i].clone()).collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            num_classes: self.num_classes,
        };
        Ok((pick(&train), pick(&test)))
    }
}

/// How the regions of a mosaic are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MosaicLayout {
    /// Randen and Husøy's five-texture layout: four quadrants and a disc in the middle.
    QuadrantsDisc,
    /// Five random Voronoi cells (nearest of five uniformly drawn seed points).
    Voronoi,
}

/// The region (0..5) of every pixel of a `size × size` mosaic.
fn layout_regions(layout: MosaicLayout, size: usize, rng: &mut impl Rng) -> Array2<u8> {
    match layout {
        MosaicLayout::QuadrantsDisc => {
            let half = size as f64 / 2.0;
            let r2 = (size as f64 / 4.0).powi(2);
            Array2::from_shape_fn((size, size), |(y, x)| {
                let (fy, fx) = (y as f64 + 0.5 - half, x as f64 + 0.5 - half);
                if fy * fy + fx * fx <= r2 {
                    4
                } else {
                    (2 * (fy >= 0.0) as u8) + (fx >= 0.0) as u8
                }
            })
        }
        MosaicLayout::Voronoi => {
            let seeds: Vec<(f64, f64)> = (0..5)
                .map(|_| {
                    (
                        rng.random_range(0.0..size as f64),
                        rng.random_range(0.0..size as f64),
                    )
                })
                .collect();
            Array2::from_shape_fn((size, size), |(y, x)| {
                let d = |s: &(f64, f64)| (s.0 - y as f64).powi(2) + (s.1 - x as f64).powi(2);
                let mut best = 0;
                for r in 1..5 {
                    if d(&seeds[r]) < d(&seeds[best]) {
                        best = r;
                    }
                }
                best as u8
            })
        }
    }
}

/// Reflects an index into `0..len` (…, 1, 0, 0, 1, …, len−1, len−1, len−2, …).
fn reflect(i: isize, len: usize) -> usize {
    let period = 2 * len as isize;
    let m = i.rem_euclid(period);
    if m < len as isize {
        m as usize
    } else {
        (period - 1 - m) as usize
    }
}

/// Generates `n` texture mosaics of `size × size` pixels from `bank`, each with five regions
/// holding five different classes (drawn at random), each region filled from one random
/// image of its class at a random offset (indices reflected at the image border when the
/// region is larger than the image); see [`standardize_textures`] to take exposure out of
/// the bank first. The label of a pixel is the class of its region. Layouts alternate per image
/// between [`MosaicLayout::QuadrantsDisc`] and [`MosaicLayout::Voronoi`] when `layout` is
/// `None`.
///
/// # Errors
/// [`VisionError::InvalidParameter`] when the bank has fewer than five classes with images,
/// or `size < 8`.
pub fn texture_mosaics(
    bank: &TextureBank,
    n: usize,
    size: usize,
    layout: Option<MosaicLayout>,
    rng: &mut impl Rng,
) -> Result<SegSet> {
    const OP: &str = "texture_mosaics";
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); bank.num_classes];
    for (i, &l) in bank.labels.iter().enumerate() {
        if l >= bank.num_classes {
            return Err(VisionError::LabelOutOfRange {
                op: OP,
                label: l,
                num_classes: bank.num_classes,
            });
        }
        by_class[l].push(i);
    }
    let present: Vec<usize> = (0..bank.num_classes)
        .filter(|&c| !by_class[c].is_empty())
        .collect();
    if present.len() < 5 {
        return Err(VisionError::param(
            OP,
            "bank",
            present.len(),
            "needs images of at least 5 classes",
        ));
    }
    if size < 8 {
        return Err(VisionError::param(OP, "size", size, "must be at least 8"));
    }
    let mut images = Array4::<f32>::zeros((n, 1, size, size));
    let mut labels = Array3::<u8>::zeros((n, size, size));
    for i in 0..n {
        let lay = layout.unwrap_or(if i % 2 == 0 {
            MosaicLayout::QuadrantsDisc
        } else {
            MosaicLayout::Voronoi
        });
        let regions = layout_regions(lay, size, rng);
        let classes: Vec<usize> = present.choose_multiple(rng, 5).copied().collect();
        let mut src = Vec::with_capacity(5);
        for &c in &classes {
            let img = &bank.images[*by_class[c].choose(rng).expect("non-empty class")];
            let (h, w) = img.dim();
            src.push((
                img,
                rng.random_range(0..h) as isize,
                rng.random_range(0..w) as isize,
            ));
        }
        for ((y, x), &r) in regions.indexed_iter() {
            let (img, oy, ox) = src[r as usize];
            let (h, w) = img.dim();
            images[[i, 0, y, x]] = img[[reflect(oy + y as isize, h), reflect(ox + x as isize, w)]];
            labels[[i, y, x]] = classes[r as usize] as u8;
        }
    }
    Ok(SegSet {
        images,
        labels,
        num_classes: bank.num_classes,
    })
}

/// Standardises every image of `images` to mean 0.5 and standard deviation `0.18` (grey
/// level), clipped to `[0, 1]`: texture mosaics must be told apart by texture, not by
/// exposure.
pub fn standardize_textures(images: &mut [Array2<f32>]) {
    for img in images.iter_mut() {
        let n = img.len().max(1) as f64;
        let mean = img.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = img.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let sd = var.sqrt().max(1e-6);
        img.mapv_inplace(|v| ((0.5 + 0.18 * (v as f64 - mean) / sd) as f32).clamp(0.0, 1.0));
    }
}

/// Shuffled indices `0..n` (a seeded permutation), e.g. to subsample a digit set.
pub fn permutation(n: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    v.shuffle(rng);
    v
}
