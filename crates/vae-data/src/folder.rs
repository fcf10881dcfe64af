//! Image folders with one subfolder per class (PNG, JPEG, BMP, TIFF, GIF), patch extraction
//! (a grid, or seeded random positions), and splits by source image so that no image gives
//! patches to both train and test.
//!
//! ```text
//! root/
//!   aluminium_foil/  a.png b.png ...     -> label 0
//!   brown_bread/     ...                 -> label 1   (classes sorted by name)
//! ```
//! Images may differ in size (KTH-TIPS has some smaller than 200×200); each keeps its own.
//!
//! ```
//! use rand::{rngs::StdRng, SeedableRng};
//! use vae_data::folder::{load_image_folder, split_images_per_class, ColorMode, PatchSampling};
//! # let tmp = tempfile::tempdir().map_err(|e| vae_data::DataError::Io { path: "tmp".into(), source: e })?;
//! # let root = tmp.path();
//! # for (class, n) in [("bark", 3), ("sand", 3)] {
//! #     std::fs::create_dir(root.join(class)).map_err(|e| vae_data::DataError::Io { path: class.into(), source: e })?;
//! #     for i in 0..n {
//! #         let img = image::GrayImage::from_fn(12, 10, |x, y| image::Luma([(x * 20 + y + i) as u8]));
//! #         img.save(root.join(class).join(format!("{i}.png"))).map_err(|source| vae_data::DataError::Decode { path: class.into(), source })?;
//! #     }
//! # }
//! // root holds bark/ and sand/, three 12×10 grayscale PNGs each.
//! let folder = load_image_folder(root, ColorMode::Gray)?;
//! assert_eq!(folder.classes, ["bark", "sand"]);
//! let mut rng = StdRng::seed_from_u64(0);
//! let (train, test) = split_images_per_class(&folder.labels, 2, &mut rng)?;
//! assert_eq!((train.len(), test.len()), (4, 2));
//! let grid = PatchSampling::Grid { size: 4, stride: 4 };
//! let p = folder.patches(&train, &grid, &mut rng)?;
//! assert_eq!(p.patches.shape(), &[4 * 6, 1, 4, 4]); // 2 rows × 3 columns per image
//! assert!(p.sources.iter().all(|s| train.contains(s)));
//! # Ok::<(), vae_data::DataError>(())
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use ndarray::{Array3, Array4, ArrayView3, Axis, Slice};
use rand::seq::SliceRandom;
use rand::Rng;

use crate::error::{DataError, Result};
use crate::image_io::{open_image, to_gray_chw, to_rgb_chw};
use crate::limits::Limits;

/// File extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff", "gif"];

/// How to convert decoded pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMode {
    /// One channel, luma in `[0, 1]` (16-bit images keep their precision).
    Gray,
    /// Three channels, RGB in `[0, 1]`, planar.
    Rgb,
}

impl ColorMode {
    /// Number of channels.
    pub fn channels(self) -> usize {
        match self {
            ColorMode::Gray => 1,
            ColorMode::Rgb => 3,
        }
    }
}

/// The files of an image folder, listed but not decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderListing {
    /// Class names (subfolder names), sorted; a label is an index into this.
    pub classes: Vec<String>,
    /// Every image file, sorted by class, then by file name.
    pub paths: Vec<PathBuf>,
    /// The label of each file.
    pub labels: Vec<usize>,
}

/// An image folder, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFolder {
    /// Class names, sorted.
    pub classes: Vec<String>,
    /// The file of each image.
    pub paths: Vec<PathBuf>,
    /// The label of each image.
    pub labels: Vec<usize>,
    /// Each image as `[c, h, w]` in `[0, 1]`; sizes may differ.
    pub images: Vec<Array3<f32>>,
}

/// Patches cut from images, with where each came from.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchSet {
    /// `[n, c, size, size]`.
    pub patches: Array4<f32>,
    /// The label of each patch (its source image's).
    pub labels: Vec<usize>,
    /// The index of each patch's source image.
    pub sources: Vec<usize>,
}

/// Where patches are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchSampling {
    /// Every `size × size` window whose top-left corner lies on a `stride` grid and that
    /// fits inside the image, row by row.
    Grid {
        /// Patch side.
        size: usize,
        /// Step between windows (`stride < size` overlaps).
        stride: usize,
    },
    /// `count` windows per image at uniformly random positions drawn from the rng.
    Random {
        /// Patch side.
        size: usize,
        /// Patches per image.
        count: usize,
    },
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let p = e.map_err(|e| DataError::io(dir, e))?.path();
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if !hidden {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// Lists `root`: each subfolder holding at least one image file is a class (sorted by
/// name); other files (READMEs, checksums) are ignored.
///
/// # Errors
/// [`DataError::NotFound`] if no subfolder holds an image; [`DataError::Io`].
pub fn list_image_folder(root: &Path) -> Result<FolderListing> {
    let mut listing = FolderListing {
        classes: Vec::new(),
        paths: Vec::new(),
        labels: Vec::new(),
    };
    for dir in sorted_entries(root)?.into_iter().filter(|p| p.is_dir()) {
        let files: Vec<PathBuf> = sorted_entries(&dir)?
            .into_iter()
            .filter(|p| p.is_file() && is_image(p))
            .collect();
        if files.is_empty() {
            continue;
        }
        let label = listing.classes.len();
        listing.classes.push(
            dir.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
        listing
            .labels
            .extend(std::iter::repeat_n(label, files.len()));
        listing.paths.extend(files);
    }
    if listing.paths.is_empty() {
        return Err(DataError::NotFound {
            looked_in: vec![root.to_path_buf()],
            expected: vec![format!(
                "one subfolder per class holding images ({})",
                IMAGE_EXTENSIONS.join(", ")
            )],
        });
    }
    Ok(listing)
}

/// Decodes one image file as `[c, h, w]` in `[0, 1]`.
///
/// # Errors
/// [`DataError::Decode`] or [`DataError::Io`] naming `path`; [`DataError::LimitExceeded`]
/// if the `f32` array would exceed `limits` (the decoder's own buffer is limited too).
pub fn load_image(path: &Path, mode: ColorMode, limits: &Limits) -> Result<Array3<f32>> {
    let img = open_image(path, limits)?;
    let f32_bytes = (mode.channels() as u64) * img.width() as u64 * img.height() as u64 * 4;
    limits.check(path, f32_bytes)?;
    Ok(match mode {
        ColorMode::Gray => to_gray_chw(&img),
        ColorMode::Rgb => to_rgb_chw(&img),
    })
}

/// Lists and decodes every image of `root` (see [`list_image_folder`]).
///
/// # Errors
/// As [`list_image_folder`] and [`load_image`].
pub fn load_image_folder(root: &Path, mode: ColorMode) -> Result<ImageFolder> {
    let listing = list_image_folder(root)?;
    let limits = Limits::default();
    let images = listing
        .paths
        .iter()
        .map(|p| load_image(p, mode, &limits))
        .collect::<Result<Vec<_>>>()?;
    Ok(ImageFolder {
        classes: listing.classes,
        paths: listing.paths,
        labels: listing.labels,
        images,
    })
}

impl ImageFolder {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// `true` if there are no images.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Patches from the images at `which` (see [`extract_patches`]).
    ///
    /// # Errors
    /// As [`extract_patches`].
    pub fn patches(
        &self,
        which: &[usize],
        sampling: &PatchSampling,
        rng: &mut impl Rng,
    ) -> Result<PatchSet> {
        extract_patches(&self.images, &self.labels, which, sampling, rng)
    }
}

/// The top-left corners of the windows `sampling` cuts from an `h × w` image.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use vae_data::folder::{patch_corners, PatchSampling};
/// let grid = PatchSampling::Grid { size: 2, stride: 1 };
/// let c = patch_corners(3, 4, &grid, &mut StdRng::seed_from_u64(0))?;
/// assert_eq!(c, [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]);
/// # Ok::<(), vae_data::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::InvalidArgument`] if the size or stride is 0 or the patch is larger than
/// the image.
pub fn patch_corners(
    h: usize,
    w: usize,
    sampling: &PatchSampling,
    rng: &mut impl Rng,
) -> Result<Vec<(usize, usize)>> {
    let size = match *sampling {
        PatchSampling::Grid { size, .. } | PatchSampling::Random { size, .. } => size,
    };
    if size == 0 {
        return Err(DataError::arg("size", "patch size must be at least 1"));
    }
    if size > h || size > w {
        return Err(DataError::arg(
            "size",
            format!("a {size}×{size} patch does not fit a {h}×{w} image"),
        ));
    }
    Ok(match *sampling {
        PatchSampling::Grid { stride, .. } => {
            if stride == 0 {
                return Err(DataError::arg("stride", "must be at least 1"));
            }
            let ys = (0..=h - size).step_by(stride);
            ys.flat_map(|y| (0..=w - size).step_by(stride).map(move |x| (y, x)))
                .collect()
        }
        PatchSampling::Random { count, .. } => (0..count)
            .map(|_| {
                (
                    rng.random_range(0..=h - size),
                    rng.random_range(0..=w - size),
                )
            })
            .collect(),
    })
}

/// Cuts patches from `images[i]` for each `i` in `which`, recording each patch's label
/// (`labels[i]`) and source image `i`. Patch sets built from disjoint `which` lists (for
/// example from [`split_images_per_class`]) share no source image.
///
/// # Errors
/// [`DataError::InvalidArgument`] for an index out of range, images with different channel
/// counts, or a patch that does not fit an image (naming the image index).
pub fn extract_patches(
    images: &[Array3<f32>],
    labels: &[usize],
    which: &[usize],
    sampling: &PatchSampling,
    rng: &mut impl Rng,
) -> Result<PatchSet> {
    if labels.len() != images.len() {
        return Err(DataError::arg(
            "labels",
            format!("{} labels for {} images", labels.len(), images.len()),
        ));
    }
    let size = match *sampling {
        PatchSampling::Grid { size, .. } | PatchSampling::Random { size, .. } => size,
    };
    let mut corners = Vec::with_capacity(which.len());
    let mut channels = None;
    for &i in which {
        let img = images.get(i).ok_or_else(|| {
            DataError::arg(
                "which",
                format!("index {i} out of range for {} images", images.len()),
            )
        })?;
        let (c, h, w) = img.dim();
        if *channels.get_or_insert(c) != c {
            return Err(DataError::arg(
                "images",
                format!(
                    "image {i} has {c} channels, others {}",
                    channels.unwrap_or(0)
                ),
            ));
        }
        let cs = patch_corners(h, w, sampling, rng).map_err(|e| match e {
            DataError::InvalidArgument { name, reason } => DataError::InvalidArgument {
                name,
                reason: format!("image {i}: {reason}"),
            },
            e => e,
        })?;
        corners.push((i, cs));
    }
    let n: usize = corners.iter().map(|(_, cs)| cs.len()).sum();
    let c = channels.unwrap_or(1);
    let mut patches = Array4::<f32>::zeros((n, c, size, size));
    let mut out_labels = Vec::with_capacity(n);
    let mut sources = Vec::with_capacity(n);
    let mut k = 0;
    for (i, cs) in corners {
        let img: ArrayView3<f32> = images[i].view();
        for (y, x) in cs {
            patches.index_axis_mut(Axis(0), k).assign(
                &img.slice_axis(Axis(1), Slice::from(y..y + size))
                    .slice_axis(Axis(2), Slice::from(x..x + size)),
            );
            out_labels.push(labels[i]);
            sources.push(i);
            k += 1;
        }
    }
    Ok(PatchSet {
        patches,
        labels: out_labels,
        sources,
    })
}

/// Splits image indices into `(train, test)` with `n_train` random images of each class in
/// train and the rest in test (the usual KTH-TIPS protocol). Both lists are sorted.
///
/// # Errors
/// [`DataError::InvalidArgument`] if a class has fewer than `n_train` images.
pub fn split_images_per_class(
    labels: &[usize],
    n_train: usize,
    rng: &mut impl Rng,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let num_classes = labels.iter().max().map_or(0, |&m| m + 1);
    let mut by_class = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l].push(i);
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (c, mut items) in by_class.into_iter().enumerate() {
        if items.len() < n_train {
            return Err(DataError::arg(
                "n_train",
                format!("class {c} has {} images, fewer than {n_train}", items.len()),
            ));
        }
        items.shuffle(rng);
        train.extend_from_slice(&items[..n_train]);
        test.extend_from_slice(&items[n_train..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    Ok((train, test))
}
