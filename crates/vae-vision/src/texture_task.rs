//! The data of a recognition task: the items a VAE and its classifier see (whole digits, or
//! patches cut from texture images) and the images they belong to.

use crate::error::{Result, VisionError};
use ndarray::{Array2, Array4, Axis};
use rand::Rng;
use std::collections::HashSet;
use std::path::Path;
use vae_data::folder::{load_image_folder, split_images_per_class, ColorMode, PatchSampling};
use vae_data::mnist::{load_mnist, Split};

/// Train and test items with labels, and the images they come from.
///
/// For digit sets every item is a whole image (`owner[i] = i`). For textures the items are
/// patches; `*_owner[i]` is the index of patch `i`'s image in `*_images`, and no image gives
/// patches to both train and test.
#[derive(Debug, Clone)]
pub struct RecognitionTask {
    /// Class names, indexed by label.
    pub classes: Vec<String>,
    /// Training items `[n, c, h, w]` in `[0, 1]`.
    pub train: Array4<f32>,
    /// Label of each training item.
    pub train_y: Vec<usize>,
    /// Image of each training item (index into `train_images`).
    pub train_owner: Vec<usize>,
    /// Test items.
    pub test: Array4<f32>,
    /// Label of each test item.
    pub test_y: Vec<usize>,
    /// Image of each test item (index into `test_images`).
    pub test_owner: Vec<usize>,
    /// Whole training images (grey), for image-level descriptors such as LBP.
    pub train_images: Vec<Array2<f32>>,
    /// Label of each training image.
    pub train_image_y: Vec<usize>,
    /// Whole test images (grey).
    pub test_images: Vec<Array2<f32>>,
    /// Label of each test image.
    pub test_image_y: Vec<usize>,
}

/// Maps an image to mean 0.5 and standard deviation 0.2, clipped to [0, 1].
pub fn normalize_contrast(img: &mut ndarray::Array3<f32>) {
    let n = img.len().max(1) as f64;
    let mean = img.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = img.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let scale = 0.2 / var.sqrt().max(1e-6);
    img.mapv_inplace(|v| ((v as f64 - mean) * scale + 0.5).clamp(0.0, 1.0) as f32);
}

fn grey_images(x: &Array4<f32>) -> Vec<Array2<f32>> {
    x.axis_iter(Axis(0))
        .map(|img| img.index_axis(Axis(0), 0).to_owned())
        .collect()
}

impl RecognitionTask {
    /// An MNIST-style folder (MNIST, Fashion-MNIST, the vendored sample): `train-*` files
    /// train, `t10k-*` files test; every item is a whole image.
    pub fn digits(dir: &Path, classes: &[&str]) -> Result<Self> {
        let train = load_mnist(dir, Split::Train)?;
        let test = load_mnist(dir, Split::Test)?;
        let to_usize = |l: &[u8]| l.iter().map(|&v| v as usize).collect::<Vec<_>>();
        let (train_y, test_y) = (to_usize(&train.labels), to_usize(&test.labels));
        Ok(RecognitionTask {
            classes: classes.iter().map(|s| s.to_string()).collect(),
            train_owner: (0..train_y.len()).collect(),
            test_owner: (0..test_y.len()).collect(),
            train_images: grey_images(&train.images),
            test_images: grey_images(&test.images),
            train_image_y: train_y.clone(),
            test_image_y: test_y.clone(),
            train: train.images,
            train_y,
            test: test.images,
            test_y,
        })
    }

    /// An image folder with one subfolder per class (e.g. KTH-TIPS): `train_per_class`
    /// random images of each class train, the rest test; items are `patch × patch` grey
    /// patches on a `stride` grid. Each image is first normalised to mean 0.5 and standard
    /// deviation 0.2 (clipped to [0, 1]), which removes global illumination and contrast
    /// changes (KTH-TIPS varies both).
    pub fn texture_folder(
        dir: &Path,
        train_per_class: usize,
        patch: usize,
        stride: usize,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let mut folder = load_image_folder(dir, ColorMode::Gray)?;
        for img in &mut folder.images {
            normalize_contrast(img);
        }
        let (train_idx, test_idx) = split_images_per_class(&folder.labels, train_per_class, rng)?;
        if test_idx.is_empty() {
            return Err(VisionError::Empty {
                op: "RecognitionTask::texture_folder",
                what: format!("no test images left after {train_per_class} per class"),
            });
        }
        let sampling = PatchSampling::Grid {
            size: patch,
            stride,
        };
        let mut part = |which: &[usize]| -> Result<_> {
            let set = folder.patches(which, &sampling, rng)?;
            let position: std::collections::HashMap<usize, usize> =
                which.iter().enumerate().map(|(p, &i)| (i, p)).collect();
            let owner = set.sources.iter().map(|s| position[s]).collect::<Vec<_>>();
            let images = which
                .iter()
                .map(|&i| folder.images[i].index_axis(Axis(0), 0).to_owned())
                .collect::<Vec<_>>();
            let image_y = which.iter().map(|&i| folder.labels[i]).collect::<Vec<_>>();
            Ok((set.patches, set.labels, owner, images, image_y))
        };
        let (train, train_y, train_owner, train_images, train_image_y) = part(&train_idx)?;
        let (test, test_y, test_owner, test_images, test_image_y) = part(&test_idx)?;
        Ok(RecognitionTask {
            classes: folder.classes.clone(),
            train,
            train_y,
            train_owner,
            test,
            test_y,
            test_owner,
            train_images,
            train_image_y,
            test_images,
            test_image_y,
        })
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// The training items a classifier may use when it sees only `per_class` labelled
    /// images of each class (all items of those images), drawn with `rng`.
    pub fn labelled_items(&self, per_class: usize, rng: &mut impl Rng) -> Result<Vec<usize>> {
        let labels: Vec<u8> = self
            .train_image_y
            .iter()
            .map(|&l| u8::try_from(l).unwrap_or(u8::MAX))
            .collect();
        let images: HashSet<usize> =
            vae_data::split::labelled_subset(&labels, per_class, self.num_classes(), rng)?
                .into_iter()
                .collect();
        Ok((0..self.train_y.len())
            .filter(|&i| images.contains(&self.train_owner[i]))
            .collect())
    }
}
