//! BSDS500 (Berkeley Segmentation Data Set): each image with every annotator's segmentation
//! label map and boundary map.
//!
//! A split folder (such as `bsds500/train` or `bsds500/val`) holds, for each image `<id>`:
//! `<id>.jpg` (RGB), and for each annotator `k = 1..=K`: `<id>_seg<k>.png` (8- or 16-bit
//! grayscale, pixel = segment label) and `<id>_bnd<k>.png` (non-zero = boundary pixel). An
//! optional `index.csv` (`id,width,height,annotators,max_label`) lists the images; when it is
//! present it is the list of ids and every image is checked against it, else the folder is
//! scanned for `*.jpg`.
//!
//! [`load_bsds_image`] loads one image from nothing but the folder and the id, so callers can
//! load a split in parallel (for example with rayon's `par_iter` over [`bsds_ids`]).

use std::fs;
use std::path::{Path, PathBuf};

use image::DynamicImage;
use ndarray::{Array2, Array3};

use crate::error::{BadFileKind, DataError, Result};
use crate::image_io::{open_image, to_rgb_chw};
use crate::limits::Limits;

/// One BSDS500 image with all its human annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct BsdsImage {
    /// The image id, e.g. `"100075"`.
    pub id: String,
    /// The image, `[3, h, w]` RGB in `[0, 1]`.
    pub image: Array3<f32>,
    /// One label map per annotator, `[h, w]`, pixel = segment label (1..=N in BSDS500).
    pub segmentations: Vec<Array2<u16>>,
    /// One boundary map per annotator, `[h, w]`, `true` = boundary pixel.
    pub boundaries: Vec<Array2<bool>>,
}

impl BsdsImage {
    /// Image height in pixels.
    pub fn height(&self) -> usize {
        self.image.shape()[1]
    }

    /// Image width in pixels.
    pub fn width(&self) -> usize {
        self.image.shape()[2]
    }

    /// Number of annotators (segmentation/boundary map pairs).
    pub fn num_annotators(&self) -> usize {
        self.segmentations.len()
    }
}

/// One row of a split's `index.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BsdsEntry {
    /// Image id.
    pub id: String,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Number of annotators.
    pub annotators: usize,
    /// Largest segment label over all annotators.
    pub max_label: u16,
}

/// Reads `dir/index.csv` if it exists (`Ok(None)` if it does not).
///
/// # Errors
/// [`BadFileKind::BadIndex`] for a wrong header, a wrong number of fields or a field that
/// is not a number; [`DataError::Io`] if the file cannot be read.
pub fn read_bsds_index(dir: &Path) -> Result<Option<Vec<BsdsEntry>>> {
    let path = dir.join("index.csv");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DataError::io(path, e)),
    };
    let bad = |line: usize, reason: String| {
        DataError::bad_file(&path, None, BadFileKind::BadIndex { line, reason })
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim() == "id,width,height,annotators,max_label" => {}
        Some((_, h)) => {
            return Err(bad(
                1,
                format!("header is {h:?}, expected \"id,width,height,annotators,max_label\""),
            ))
        }
        None => return Err(bad(1, "empty file".into())),
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != 5 {
            return Err(bad(i + 1, format!("{} fields, expected 5", f.len())));
        }
        if f[0].is_empty() || f[0].contains(['/', '\\']) {
            return Err(bad(i + 1, format!("bad id {:?}", f[0])));
        }
        let num = |s: &str, what: &str| {
            s.parse::<usize>()
                .map_err(|_| bad(i + 1, format!("{what} {s:?} is not a number")))
        };
        let max_label = num(f[4], "max_label")?;
        out.push(BsdsEntry {
            id: f[0].to_string(),
            width: num(f[1], "width")?,
            height: num(f[2], "height")?,
            annotators: num(f[3], "annotators")?,
            max_label: u16::try_from(max_label)
                .map_err(|_| bad(i + 1, format!("max_label {max_label} exceeds 65535")))?,
        });
    }
    Ok(Some(out))
}

/// The image ids of a split folder: from `index.csv` if present (in its order), else the
/// stems of every `*.jpg`, sorted.
///
/// # Errors
/// [`DataError::NotFound`] if the folder has neither an index nor any `.jpg`;
/// [`DataError::Io`] if it cannot be listed.
pub fn bsds_ids(dir: &Path) -> Result<Vec<String>> {
    if let Some(index) = read_bsds_index(dir)? {
        return Ok(index.into_iter().map(|e| e.id).collect());
    }
    let rd = fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut ids = Vec::new();
    for entry in rd {
        let p = entry.map_err(|e| DataError::io(dir, e))?.path();
        if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("jpg")) {
            if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                ids.push(stem.to_string());
            }
        }
    }
    if ids.is_empty() {
        return Err(DataError::NotFound {
            looked_in: vec![dir.to_path_buf()],
            expected: vec!["index.csv or <id>.jpg with <id>_seg<k>.png, <id>_bnd<k>.png".into()],
        });
    }
    ids.sort();
    Ok(ids)
}

/// Loads image `id` of the split folder `dir` with every annotator's maps, under the
/// default [`Limits`].
///
/// Annotators are found by probing `<id>_seg1.png`, `<id>_seg2.png`, ... until one is
/// missing; each must have its `<id>_bnd<k>.png`.
///
/// ```
/// use vae_data::bsds::load_bsds_image;
/// # fn main() -> vae_data::Result<()> {
/// # let tmp = tempfile::tempdir().map_err(|e| vae_data::DataError::Io { path: "tmp".into(), source: e })?;
/// # let dir = tmp.path();
/// # let save = |img: image::DynamicImage, name: &str| img.save(dir.join(name)).map_err(|source| vae_data::DataError::Decode { path: name.into(), source });
/// # save(image::DynamicImage::ImageRgb8(image::RgbImage::new(4, 3)), "12.jpg")?;
/// # let seg = image::GrayImage::from_fn(4, 3, |x, y| image::Luma([if y == 2 { 3 } else if x >= 2 { 2 } else { 1 }]));
/// # save(image::DynamicImage::ImageLuma8(seg), "12_seg1.png")?;
/// # let bnd = image::GrayImage::from_fn(4, 3, |x, y| image::Luma([if y == 2 || x == 1 { 255 } else { 0 }]));
/// # save(image::DynamicImage::ImageLuma8(bnd), "12_bnd1.png")?;
/// // dir holds 12.jpg, 12_seg1.png, 12_bnd1.png (a 4×3 image, one annotator)
/// let img = load_bsds_image(dir, "12")?;
/// assert_eq!(img.image.shape(), &[3, 3, 4]);
/// assert_eq!(img.num_annotators(), 1);
/// assert_eq!(img.segmentations[0][[2, 0]], 3);
/// assert!(img.boundaries[0][[0, 1]] && !img.boundaries[0][[0, 0]]);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`DataError::NotFound`] if `<id>.jpg` or `<id>_seg1.png` is missing, or a `_seg<k>`
/// has no `_bnd<k>`; [`DataError::ShapeMismatch`] if a map's size differs from the image's;
/// [`DataError::Decode`] for an undecodable file; [`BadFileKind::Unexpected`] for a
/// segmentation that is not grayscale.
pub fn load_bsds_image(dir: &Path, id: &str) -> Result<BsdsImage> {
    load_bsds_image_with(dir, id, &Limits::default())
}

/// [`load_bsds_image`] under explicit [`Limits`].
pub fn load_bsds_image_with(dir: &Path, id: &str, limits: &Limits) -> Result<BsdsImage> {
    if id.is_empty() || id.contains(['/', '\\']) {
        return Err(DataError::arg(
            "id",
            format!("{id:?} is not a BSDS image id"),
        ));
    }
    let jpg = dir.join(format!("{id}.jpg"));
    if !jpg.is_file() {
        return Err(DataError::NotFound {
            looked_in: vec![dir.to_path_buf()],
            expected: vec![format!("{id}.jpg")],
        });
    }
    let img = open_image(&jpg, limits)?;
    limits.check(&jpg, 3 * 4 * img.width() as u64 * img.height() as u64)?;
    let image = to_rgb_chw(&img);
    let (h, w) = (image.shape()[1], image.shape()[2]);
    let mut segmentations = Vec::new();
    let mut boundaries = Vec::new();
    for k in 1.. {
        let seg_path = dir.join(format!("{id}_seg{k}.png"));
        if !seg_path.is_file() {
            break;
        }
        let bnd_path = dir.join(format!("{id}_bnd{k}.png"));
        if !bnd_path.is_file() {
            return Err(DataError::NotFound {
                looked_in: vec![dir.to_path_buf()],
                expected: vec![format!("{id}_bnd{k}.png (to go with {id}_seg{k}.png)")],
            });
        }
        let seg = open_image(&seg_path, limits)?;
        let seg = seg_to_labels(&seg_path, &seg)?;
        check_shape(&seg_path, seg.dim(), (h, w))?;
        let bnd = open_image(&bnd_path, limits)?;
        let bnd = bnd_to_mask(&bnd);
        check_shape(&bnd_path, bnd.dim(), (h, w))?;
        segmentations.push(seg);
        boundaries.push(bnd);
    }
    if segmentations.is_empty() {
        return Err(DataError::NotFound {
            looked_in: vec![dir.to_path_buf()],
            expected: vec![format!("{id}_seg1.png and {id}_bnd1.png")],
        });
    }
    Ok(BsdsImage {
        id: id.to_string(),
        image,
        segmentations,
        boundaries,
    })
}

/// Loads every image of a split folder (`bsds500/train`, `bsds500/val`, or any folder laid
/// out the same way), in the order of [`bsds_ids`].
///
/// When `index.csv` is present each image's width, height, annotator count and largest
/// label are checked against it.
///
/// # Errors
/// As [`bsds_ids`] and [`load_bsds_image`]; [`DataError::ShapeMismatch`] when an image
/// disagrees with `index.csv` (shape `[height, width, annotators, max_label]`).
pub fn load_bsds_split(dir: &Path) -> Result<Vec<BsdsImage>> {
    let limits = Limits::default();
    match read_bsds_index(dir)? {
        Some(index) => index
            .iter()
            .map(|e| {
                let img = load_bsds_image_with(dir, &e.id, &limits)?;
                let max_label = img
                    .segmentations
                    .iter()
                    .flat_map(|s| s.iter().copied())
                    .max()
                    .unwrap_or(0);
                let found = [
                    img.height(),
                    img.width(),
                    img.num_annotators(),
                    max_label as usize,
                ];
                let expected = [e.height, e.width, e.annotators, e.max_label as usize];
                if found != expected {
                    return Err(DataError::ShapeMismatch {
                        path: dir.join(format!("{}.jpg", e.id)),
                        expected: expected.to_vec(),
                        found: found.to_vec(),
                    });
                }
                Ok(img)
            })
            .collect(),
        None => bsds_ids(dir)?
            .iter()
            .map(|id| load_bsds_image_with(dir, id, &limits))
            .collect(),
    }
}

fn check_shape(path: &Path, found: (usize, usize), expected: (usize, usize)) -> Result<()> {
    if found != expected {
        return Err(DataError::ShapeMismatch {
            path: PathBuf::from(path),
            expected: vec![expected.0, expected.1],
            found: vec![found.0, found.1],
        });
    }
    Ok(())
}

/// Segment labels, kept exact: 8-bit and 16-bit grayscale values are taken as they are
/// (never rescaled).
fn seg_to_labels(path: &Path, img: &DynamicImage) -> Result<Array2<u16>> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let v: Vec<u16> = match img {
        DynamicImage::ImageLuma8(b) => b.as_raw().iter().map(|&p| p as u16).collect(),
        DynamicImage::ImageLuma16(b) => b.as_raw().clone(),
        other => {
            return Err(DataError::bad_file(
                path,
                None,
                BadFileKind::Unexpected {
                    expected: "an 8- or 16-bit grayscale label map".into(),
                    found: format!("{:?}", other.color()),
                },
            ))
        }
    };
    Ok(Array2::from_shape_vec((h, w), v).expect("label buffer is h*w"))
}

/// Boundary mask: any non-zero luma is a boundary pixel.
fn bnd_to_mask(img: &DynamicImage) -> Array2<bool> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let v: Vec<bool> = match img {
        DynamicImage::ImageLuma16(b) => b.as_raw().iter().map(|&p| p != 0).collect(),
        _ => img.to_luma8().as_raw().iter().map(|&p| p != 0).collect(),
    };
    Array2::from_shape_vec((h, w), v).expect("mask buffer is h*w")
}
