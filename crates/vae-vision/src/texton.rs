//! Orderless texture descriptors from a VAE trained without labels on small local patches:
//! a texton histogram over the dense latent codes of an image pyramid.
//!
//! A texture is recognised by the *distribution* of its local appearance, not by any one
//! patch. [`TextonModel::fit`] therefore
//!
//! 1. builds a Gaussian pyramid of every training image (each image first standardised to
//!    mean 0 and standard deviation 1, which removes global illumination and contrast),
//! 2. samples small `patch × patch` windows at every level and normalises each one by its
//!    own mean and standard deviation ([`normalize_patch`]); the patch's log contrast can
//!    be kept as an extra feature (`contrast_weight`, off by default),
//! 3. trains a VAE on the normalised patches (no labels),
//! 4. encodes the sampled patches to their posterior means, appends the weighted log
//!    contrast, standardises, and clusters them with seeded k-means ([`KMeans`]) into a
//!    codebook of textons.
//!
//! [`TextonModel::describe`] then encodes *every* patch of an image on a `stride` grid, at
//! every pyramid level, assigns each to its nearest texton and returns the concatenated,
//! normalised per-level histograms: a descriptor for a chi-square nearest-neighbour
//! classifier ([`ChiSquareKnn`](crate::knn::ChiSquareKnn)). With
//! [`PatchEncoder::Pixels`] the same pipeline clusters the normalised pixels themselves (the
//! classic patch-texton baseline of Varma and Zisserman), so the VAE's contribution can be
//! measured on the same split.

use crate::classify::Standardizer;
use crate::error::{Result, VisionError};
use ndarray::{Array2, Array4, ArrayView2, Axis, Slice};
use rand::Rng;
use vae_core::{Likelihood, Preset, TrainConfig, Trainer, Vae, VaeConfig, Variance};

/// Settings of [`TextonModel`].
#[derive(Debug, Clone, PartialEq)]
pub struct TextonConfig {
    /// Side of the square patches in pixels (at every pyramid level).
    pub patch: usize,
    /// Step between patches of the dense grid used by [`TextonModel::describe`].
    pub stride: usize,
    /// At most this many patches per pyramid level in [`TextonModel::describe`]: on larger
    /// images the grid step grows until the grid fits (keeps large images affordable).
    pub max_patches_per_level: usize,
    /// Pyramid levels (1 = the image only; each further level halves the size). Levels
    /// smaller than a patch are skipped.
    pub levels: usize,
    /// Number of textons (k-means clusters).
    pub textons: usize,
    /// Lloyd iterations of k-means.
    pub kmeans_iters: usize,
    /// Patches sampled from the training images (spread evenly over images and levels) to
    /// train the VAE and fit the codebook.
    pub train_patches: usize,
    /// Weight of the patch's log contrast next to the standardised latent coordinates
    /// (0, the default, makes the textons invariant to local contrast; on KTH-TIPS, whose
    /// images vary in illumination, weights 1 and 2 cost 5 and 7 points of accuracy).
    pub contrast_weight: f32,
    /// Latent dimension of the patch VAE.
    pub latent: usize,
    /// Hidden layer sizes of the patch VAE (MLP preset).
    pub hidden: Vec<usize>,
    /// VAE training epochs over the sampled patches.
    pub epochs: usize,
    /// VAE mini-batch size.
    pub batch: usize,
}

impl Default for TextonConfig {
    /// 8×8 patches on a 2-pixel grid (at most 10,000 per level), 3 levels, 64 textons, 60,000 training patches, no
    /// contrast feature, latent 16, one hidden layer of 256, 10 epochs, batch 128.
    fn default() -> Self {
        TextonConfig {
            patch: 8,
            stride: 2,
            max_patches_per_level: 10_000,
            levels: 3,
            textons: 64,
            kmeans_iters: 25,
            train_patches: 60_000,
            contrast_weight: 0.0,
            latent: 16,
            hidden: vec![256],
            epochs: 10,
            batch: 128,
        }
    }
}

impl TextonConfig {
    fn validate(&self) -> Result<()> {
        const OP: &str = "TextonConfig";
        let positive = [
            ("patch", self.patch),
            ("stride", self.stride),
            ("max_patches_per_level", self.max_patches_per_level),
            ("levels", self.levels),
            ("textons", self.textons),
            ("train_patches", self.train_patches),
            ("latent", self.latent),
            ("batch", self.batch),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(VisionError::param(OP, name, v, "must be at least 1"));
            }
        }
        if !(self.contrast_weight.is_finite() && self.contrast_weight >= 0.0) {
            return Err(VisionError::param(
                OP,
                "contrast_weight",
                self.contrast_weight,
                "must be finite and non-negative",
            ));
        }
        Ok(())
    }
}

/// What turns a normalised patch into the vector that is clustered.
#[derive(Debug)]
pub enum PatchEncoder {
    /// The posterior mean of a VAE trained on patches (`latent` numbers).
    Vae(Box<Vae>),
    /// The normalised pixels themselves (`patch²` numbers): the baseline.
    Pixels,
}

impl PatchEncoder {
    /// Encodes `[n, 1, p, p]` patches into `[n, features]`.
    fn encode(&mut self, patches: &Array4<f32>) -> Result<Array2<f32>> {
        match self {
            PatchEncoder::Vae(vae) => Ok(vae.encode(patches)?.0),
            PatchEncoder::Pixels => {
                let (n, c, h, w) = patches.dim();
                Ok(patches
                    .to_shape((n, c * h * w))
                    .expect("contiguous patches")
                    .to_owned())
            }
        }
    }

    /// A short name for reports (`vae` or `pixels`).
    pub fn name(&self) -> &'static str {
        match self {
            PatchEncoder::Vae(_) => "vae",
            PatchEncoder::Pixels => "pixels",
        }
    }
}

/// Standardises a grey image to mean 0 and standard deviation 1 (a constant image becomes
/// all zeros).
pub fn standardize_image(img: ArrayView2<f32>) -> Array2<f32> {
    let n = img.len().max(1) as f64;
    let mean = img.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = img.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let inv = if var > 1e-12 { 1.0 / var.sqrt() } else { 0.0 };
    img.mapv(|v| ((v as f64 - mean) * inv) as f32)
}

/// A pyramid of `levels` images, each half the size of the previous one (2×2 means, an odd
/// last row or column dropped); stops early when a level would be smaller than `min_side`.
///
/// ```
/// use ndarray::Array2;
/// use vae_vision::texton::pyramid;
/// let p = pyramid(Array2::<f32>::ones((20, 12)).view(), 3, 4);
/// assert_eq!(p.iter().map(|l| l.dim()).collect::<Vec<_>>(), vec![(20, 12), (10, 6)]);
/// ```
pub fn pyramid(img: ArrayView2<f32>, levels: usize, min_side: usize) -> Vec<Array2<f32>> {
    let mut out: Vec<Array2<f32>> = Vec::new();
    if img.nrows() < min_side || img.ncols() < min_side || levels == 0 {
        return out;
    }
    out.push(img.to_owned());
    while out.len() < levels {
        let prev = out.last().expect("non-empty");
        let (h, w) = (prev.nrows() / 2, prev.ncols() / 2);
        if h < min_side || w < min_side {
            break;
        }
        let next = Array2::from_shape_fn((h, w), |(y, x)| {
            0.25 * (prev[[2 * y, 2 * x]]
                + prev[[2 * y + 1, 2 * x]]
                + prev[[2 * y, 2 * x + 1]]
                + prev[[2 * y + 1, 2 * x + 1]])
        });
        out.push(next);
    }
    out
}

/// Variance floor of [`normalize_patch`] (images are standardised first, so this is 1 % of
/// the image's variance): flat patches are not blown up into noise.
pub const PATCH_VAR_FLOOR: f32 = 0.01;

/// Normalises one patch in place by its own mean and standard deviation,
/// `(x − m) / sqrt(var + PATCH_VAR_FLOOR)`, and returns its log contrast
/// `0.5 · ln(var + PATCH_VAR_FLOOR)`.
///
/// ```
/// use vae_vision::texton::normalize_patch;
/// let mut p = [1.0f32, 3.0, 1.0, 3.0];
/// let c = normalize_patch(&mut p);
/// assert!((p[0] + p[1]).abs() < 1e-6 && p[1] > 0.99 && p[1] < 1.0);
/// assert!((c - 0.5 * (1.01f32).ln()).abs() < 1e-6);
/// ```
pub fn normalize_patch(p: &mut [f32]) -> f32 {
    let n = p.len().max(1) as f32;
    let mean = p.iter().sum::<f32>() / n;
    let var = p.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n + PATCH_VAR_FLOOR;
    let inv = 1.0 / var.sqrt();
    for v in p.iter_mut() {
        *v = (*v - mean) * inv;
    }
    0.5 * var.ln()
}

/// Cuts the `patch × patch` windows with top-left corners `corners` out of `level`,
/// normalises each ([`normalize_patch`]) and returns them as `[n, 1, patch, patch]` with
/// their log contrasts.
fn cut_patches(
    level: &Array2<f32>,
    corners: &[(usize, usize)],
    patch: usize,
) -> (Array4<f32>, Vec<f32>) {
    let mut out = Array4::zeros((corners.len(), 1, patch, patch));
    let mut contrast = Vec::with_capacity(corners.len());
    for (i, &(y, x)) in corners.iter().enumerate() {
        let mut buf: Vec<f32> = level
            .slice_axis(Axis(0), Slice::from(y..y + patch))
            .slice_axis(Axis(1), Slice::from(x..x + patch))
            .iter()
            .copied()
            .collect();
        contrast.push(normalize_patch(&mut buf));
        out.index_axis_mut(Axis(0), i)
            .index_axis_mut(Axis(0), 0)
            .assign(&ArrayView2::from_shape((patch, patch), &buf).expect("patch²"));
    }
    (out, contrast)
}

/// Top-left corners of every `patch` window on a `stride` grid of an `h × w` image.
fn grid_corners(h: usize, w: usize, patch: usize, stride: usize) -> Vec<(usize, usize)> {
    if h < patch || w < patch {
        return Vec::new();
    }
    let ys = (0..=h - patch).step_by(stride);
    ys.flat_map(|y| (0..=w - patch).step_by(stride).map(move |x| (y, x)))
        .collect()
}

/// Seeded k-means (k-means++ initialisation, Lloyd iterations) with Euclidean distance.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// Cluster centres `[k, features]`.
    pub centroids: Array2<f32>,
}

impl KMeans {
    /// Clusters the rows of `x` into `k` groups. An empty cluster is re-seeded with the
    /// point farthest from its centre.
    ///
    /// ```
    /// use ndarray::array;
    /// use rand::{rngs::StdRng, SeedableRng};
    /// use vae_vision::texton::KMeans;
    /// let x = array![[0.0f32, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]];
    /// let km = KMeans::fit(x.view(), 2, 10, &mut StdRng::seed_from_u64(0))?;
    /// let a = km.assign(x.view());
    /// assert_eq!(a[0], a[1]);
    /// assert_ne!(a[0], a[2]);
    /// # Ok::<(), vae_vision::VisionError>(())
    /// ```
    pub fn fit(x: ArrayView2<f32>, k: usize, iters: usize, rng: &mut impl Rng) -> Result<Self> {
        const OP: &str = "KMeans::fit";
        let (n, d) = x.dim();
        if k == 0 || k > n {
            return Err(VisionError::param(
                OP,
                "k",
                k,
                format!("must be between 1 and the number of points ({n})"),
            ));
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(VisionError::BadValue {
                op: OP,
                what: "non-finite feature".into(),
            });
        }
        let x = x.as_standard_layout();
        let x = x.view();
        // k-means++ seeding.
        let mut centroids = Array2::<f32>::zeros((k, d));
        let first = rng.random_range(0..n);
        centroids.row_mut(0).assign(&x.row(first));
        let mut dist: Vec<f32> = x
            .rows()
            .into_iter()
            .map(|r| {
                sq_dist(
                    r.as_slice().expect("row"),
                    centroids.row(0).as_slice().unwrap(),
                )
            })
            .collect();
        for c in 1..k {
            let total: f64 = dist.iter().map(|&v| v as f64).sum();
            let pick = if total > 0.0 {
                let mut t = rng.random::<f64>() * total;
                let mut idx = n - 1;
                for (i, &v) in dist.iter().enumerate() {
                    t -= v as f64;
                    if t <= 0.0 {
                        idx = i;
                        break;
                    }
                }
                idx
            } else {
                rng.random_range(0..n)
            };
            centroids.row_mut(c).assign(&x.row(pick));
            let cr = centroids.row(c).to_owned();
            for (i, r) in x.rows().into_iter().enumerate() {
                let v = sq_dist(r.as_slice().expect("row"), cr.as_slice().unwrap());
                if v < dist[i] {
                    dist[i] = v;
                }
            }
        }
        let mut km = KMeans { centroids };
        for _ in 0..iters {
            let (assign, mut dists) = km.assign_with_dist(x.view());
            let mut sum = Array2::<f64>::zeros((k, d));
            let mut count = vec![0usize; k];
            for (i, &a) in assign.iter().enumerate() {
                count[a] += 1;
                for (s, &v) in sum.row_mut(a).iter_mut().zip(x.row(i)) {
                    *s += v as f64;
                }
            }
            let mut changed = false;
            for (c, &n_c) in count.iter().enumerate() {
                if n_c == 0 {
                    let far = dists
                        .iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .map_or(0, |(i, _)| i);
                    km.centroids.row_mut(c).assign(&x.row(far));
                    // The next empty cluster takes another point.
                    dists[far] = 0.0;
                    changed = true;
                    continue;
                }
                for (dst, s) in km.centroids.row_mut(c).iter_mut().zip(sum.row(c)) {
                    let v = (*s / n_c as f64) as f32;
                    changed |= v != *dst;
                    *dst = v;
                }
            }
            if !changed {
                break;
            }
        }
        Ok(km)
    }

    /// Number of clusters.
    pub fn k(&self) -> usize {
        self.centroids.nrows()
    }

    /// The nearest centre of every row of `x`.
    ///
    /// # Panics
    /// If `x` has a different number of columns than the centres.
    pub fn assign(&self, x: ArrayView2<f32>) -> Vec<usize> {
        self.assign_with_dist(x).0
    }

    fn assign_with_dist(&self, x: ArrayView2<f32>) -> (Vec<usize>, Vec<f32>) {
        assert_eq!(x.ncols(), self.centroids.ncols(), "feature count");
        let x = x.as_standard_layout();
        let c = self.centroids.as_standard_layout();
        let mut a = Vec::with_capacity(x.nrows());
        let mut dist = Vec::with_capacity(x.nrows());
        for r in x.rows() {
            let r = r.as_slice().expect("standard layout");
            let mut best = (0, f32::INFINITY);
            for (j, cr) in c.rows().into_iter().enumerate() {
                let v = sq_dist(r, cr.as_slice().expect("standard layout"));
                if v < best.1 {
                    best = (j, v);
                }
            }
            a.push(best.0);
            dist.push(best.1);
        }
        (a, dist)
    }
}

fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The texton ids of one pyramid level on its patch grid ([`TextonModel::texton_maps`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TextonMap {
    /// Pyramid level (0 = the image itself).
    pub level: usize,
    /// `[rows, cols]` of the grid: the nearest texton of each patch.
    pub ids: Array2<usize>,
    /// Distance between neighbouring grid cells in pixels of the original image.
    pub step: f32,
    /// Position (row and column, pixels of the original image) of the centre of grid cell
    /// `(0, 0)`; cell `(i, j)` is centred at `(offset + i·step, offset + j·step)`.
    pub offset: f32,
}

/// A fitted texton model: the patch encoder, the feature standardiser and the codebook.
#[derive(Debug)]
pub struct TextonModel {
    cfg: TextonConfig,
    encoder: PatchEncoder,
    standardizer: Standardizer,
    codebook: KMeans,
    /// The VAE's training history (empty for [`PatchEncoder::Pixels`]).
    pub vae_epochs: Vec<vae_core::EpochStats>,
}

/// Which encoder [`TextonModel::fit`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderKind {
    /// Train a patch VAE (Gaussian likelihood, learned variance) and use its posterior mean.
    Vae,
    /// Use the normalised pixels.
    Pixels,
}

impl TextonModel {
    /// Fits the model on grey `images` (any sizes; no labels are used). `seed` seeds the
    /// VAE's training; `rng` draws the patch positions, the VAE's initial weights and the
    /// k-means seeding.
    pub fn fit(
        images: &[Array2<f32>],
        cfg: &TextonConfig,
        kind: EncoderKind,
        seed: u64,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        const OP: &str = "TextonModel::fit";
        cfg.validate()?;
        let pyramids: Vec<Vec<Array2<f32>>> = images
            .iter()
            .map(|img| pyramid(standardize_image(img.view()).view(), cfg.levels, cfg.patch))
            .collect();
        let n_levels: usize = pyramids.iter().map(Vec::len).sum();
        if n_levels == 0 {
            return Err(VisionError::Empty {
                op: OP,
                what: format!("no training image is at least {0}×{0}", cfg.patch),
            });
        }
        // Sample patches evenly over (image, level) pairs.
        let per_level = cfg.train_patches.div_ceil(n_levels);
        let mut patches = Vec::new();
        let mut contrast = Vec::new();
        for levels in &pyramids {
            for level in levels {
                let (h, w) = level.dim();
                let corners: Vec<(usize, usize)> = (0..per_level)
                    .map(|_| {
                        (
                            rng.random_range(0..=h - cfg.patch),
                            rng.random_range(0..=w - cfg.patch),
                        )
                    })
                    .collect();
                let (p, c) = cut_patches(level, &corners, cfg.patch);
                patches.push(p);
                contrast.extend(c);
            }
        }
        let views: Vec<_> = patches.iter().map(|p| p.view()).collect();
        let patches = ndarray::concatenate(Axis(0), &views).expect("same patch shape");
        drop(views);
        let (encoder, vae_epochs) = match kind {
            EncoderKind::Pixels => (PatchEncoder::Pixels, Vec::new()),
            EncoderKind::Vae => {
                let vcfg = VaeConfig {
                    input_shape: [1, cfg.patch, cfg.patch],
                    latent: cfg.latent,
                    preset: Preset::Mlp {
                        hidden: cfg.hidden.clone(),
                    },
                    likelihood: Likelihood::Gaussian(Variance::Learned { init_logvar: 0.0 }),
                    ..VaeConfig::default()
                };
                let vae = Vae::new(vcfg, rng)?;
                let tcfg = TrainConfig {
                    epochs: cfg.epochs,
                    batch_size: cfg.batch,
                    seed,
                    ..TrainConfig::default()
                };
                let mut trainer = Trainer::new(vae, tcfg)?;
                let history = trainer.fit(&patches, None, |_| {})?;
                (PatchEncoder::Vae(Box::new(trainer.into_vae())), history)
            }
        };
        let mut model = TextonModel {
            cfg: cfg.clone(),
            encoder,
            standardizer: Standardizer::fit(Array2::<f32>::zeros((1, 1)).view()),
            codebook: KMeans {
                centroids: Array2::zeros((1, 1)),
            },
            vae_epochs,
        };
        let raw = model.raw_features(&patches, &contrast)?;
        model.standardizer = Standardizer::fit(raw.view());
        let mut feats = model.standardizer.transform(raw.view());
        model.weight_contrast(&mut feats);
        model.codebook = KMeans::fit(feats.view(), cfg.textons, cfg.kmeans_iters, rng)?;
        Ok(model)
    }

    /// The settings.
    pub fn config(&self) -> &TextonConfig {
        &self.cfg
    }

    /// The patch encoder.
    pub fn encoder(&self) -> &PatchEncoder {
        &self.encoder
    }

    /// Encoder features of patches, with the log contrast as the last column.
    fn raw_features(&mut self, patches: &Array4<f32>, contrast: &[f32]) -> Result<Array2<f32>> {
        let n = patches.dim().0;
        let mut parts = Vec::new();
        for start in (0..n).step_by(4096) {
            let end = (start + 4096).min(n);
            parts.push(
                self.encoder.encode(
                    &patches
                        .slice_axis(Axis(0), Slice::from(start..end))
                        .to_owned(),
                )?,
            );
        }
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        let enc = ndarray::concatenate(Axis(0), &views).expect("same width");
        let c = ArrayView2::from_shape((n, 1), contrast).expect("one contrast per patch");
        Ok(ndarray::concatenate(Axis(1), &[enc.view(), c]).expect("same rows"))
    }

    /// Scales the (standardised) contrast column by `contrast_weight` and the encoder
    /// columns so that they weigh as much in total as a pixel patch would regardless of
    /// their number: each of the `d` encoder columns is scaled by `1/sqrt(d)`.
    fn weight_contrast(&self, feats: &mut Array2<f32>) {
        let d = feats.ncols() - 1;
        let inv = 1.0 / (d as f32).sqrt();
        for mut row in feats.rows_mut() {
            for v in row.iter_mut().take(d) {
                *v *= inv;
            }
            row[d] *= self.cfg.contrast_weight;
        }
    }

    /// The standardised image's pyramid (levels at least one patch wide); an image smaller
    /// than one patch is [`VisionError::Empty`] for `op`.
    fn levels(&self, op: &'static str, image: ArrayView2<f32>) -> Result<Vec<Array2<f32>>> {
        let levels = pyramid(
            standardize_image(image).view(),
            self.cfg.levels,
            self.cfg.patch,
        );
        if levels.is_empty() {
            return Err(VisionError::Empty {
                op,
                what: format!(
                    "image {:?} is smaller than one {}×{} patch",
                    image.dim(),
                    self.cfg.patch,
                    self.cfg.patch
                ),
            });
        }
        Ok(levels)
    }

    /// Length of a descriptor: `levels × textons`.
    pub fn descriptor_len(&self) -> usize {
        self.cfg.levels * self.cfg.textons
    }

    /// The descriptor of one grey image: for each pyramid level, the histogram of the
    /// nearest textons of every patch on the `stride` grid, normalised to sum 1 / (number
    /// of levels present); levels the image is too small for stay zero.
    pub fn describe(&mut self, image: ArrayView2<f32>) -> Result<Vec<f32>> {
        let levels = self.levels("TextonModel::describe", image)?;
        let k = self.cfg.textons;
        let mut hist = vec![0f32; self.descriptor_len()];
        let share = 1.0 / levels.len() as f32;
        for (l, level) in levels.iter().enumerate() {
            let (h, w) = level.dim();
            let mut stride = self.cfg.stride;
            let mut corners = grid_corners(h, w, self.cfg.patch, stride);
            while corners.len() > self.cfg.max_patches_per_level {
                stride += 1;
                corners = grid_corners(h, w, self.cfg.patch, stride);
            }
            let (patches, contrast) = cut_patches(level, &corners, self.cfg.patch);
            let raw = self.raw_features(&patches, &contrast)?;
            let mut feats = self.standardizer.transform(raw.view());
            self.weight_contrast(&mut feats);
            let assign = self.codebook.assign(feats.view());
            let w = share / assign.len() as f32;
            for a in assign {
                hist[l * k + a] += w;
            }
        }
        Ok(hist)
    }

    /// The nearest texton of every patch on the `stride` grid of every pyramid level of a
    /// grey image (no cap on the number of patches), with where each grid cell's patch
    /// centre lies in the image: the raw material of dense, window-wise descriptors
    /// (texture segmentation). Levels the image is too small for are left out.
    ///
    /// # Errors
    /// [`VisionError::Empty`] when the image is smaller than one patch; encoder failures.
    pub fn texton_maps(&mut self, image: ArrayView2<f32>) -> Result<Vec<TextonMap>> {
        let levels = self.levels("TextonModel::texton_maps", image)?;
        let mut out = Vec::with_capacity(levels.len());
        for (l, level) in levels.iter().enumerate() {
            let (h, w) = level.dim();
            let (p, s) = (self.cfg.patch, self.cfg.stride);
            let corners = grid_corners(h, w, p, s);
            let (gh, gw) = ((h - p) / s + 1, (w - p) / s + 1);
            let (patches, contrast) = cut_patches(level, &corners, p);
            let raw = self.raw_features(&patches, &contrast)?;
            let mut feats = self.standardizer.transform(raw.view());
            self.weight_contrast(&mut feats);
            let assign = self.codebook.assign(feats.view());
            let scale = (1usize << l) as f32;
            out.push(TextonMap {
                level: l,
                ids: Array2::from_shape_vec((gh, gw), assign).expect("one id per grid cell"),
                step: s as f32 * scale,
                offset: 0.5 * p as f32 * scale,
            });
        }
        Ok(out)
    }

    /// Descriptors of many images, one row each.
    pub fn describe_all(&mut self, images: &[Array2<f32>]) -> Result<Array2<f32>> {
        let mut out = Array2::zeros((images.len(), self.descriptor_len()));
        for (i, img) in images.iter().enumerate() {
            let d = self.describe(img.view())?;
            out.row_mut(i).assign(&ndarray::ArrayView1::from(&d[..]));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn kmeans_errors_and_reseeding() {
        let x = Array2::<f32>::zeros((3, 2));
        let mut rng = StdRng::seed_from_u64(1);
        assert!(KMeans::fit(x.view(), 4, 5, &mut rng).is_err());
        assert!(KMeans::fit(x.view(), 0, 5, &mut rng).is_err());
        // Identical points: every centre sits on them.
        let km = KMeans::fit(x.view(), 2, 5, &mut rng).unwrap();
        assert!(km.centroids.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn grid_covers_the_image() {
        assert_eq!(grid_corners(10, 9, 4, 3).len(), 3 * 2);
        assert!(grid_corners(3, 9, 4, 3).is_empty());
    }

    #[test]
    fn bad_settings_are_errors() {
        let img = vec![Array2::<f32>::zeros((16, 16))];
        let mut rng = StdRng::seed_from_u64(0);
        for cfg in [
            TextonConfig {
                patch: 0,
                ..TextonConfig::default()
            },
            TextonConfig {
                max_patches_per_level: 0,
                ..TextonConfig::default()
            },
            TextonConfig {
                contrast_weight: f32::NAN,
                ..TextonConfig::default()
            },
        ] {
            assert!(matches!(
                TextonModel::fit(&img, &cfg, EncoderKind::Pixels, 0, &mut rng),
                Err(VisionError::InvalidParameter { .. })
            ));
        }
    }

    /// Two synthetic textures (horizontal vs vertical stripes, random phase and noise):
    /// the pixel-texton descriptors of new images are nearest to their own class.
    #[test]
    fn textons_separate_stripe_orientations() {
        let mut rng = StdRng::seed_from_u64(0);
        let make = |vertical: bool, rng: &mut StdRng| {
            let phase = rng.random_range(0.0..std::f32::consts::TAU);
            let mut img = Array2::from_shape_fn((24, 20), |(y, x)| {
                let t = if vertical { x } else { y } as f32;
                (t * 1.3 + phase).sin()
            });
            img.mapv_inplace(|v| v + 0.1 * rng.random_range(-1.0f32..1.0));
            img
        };
        let train: Vec<_> = (0..6).map(|i| make(i % 2 == 1, &mut rng)).collect();
        let cfg = TextonConfig {
            patch: 4,
            stride: 2,
            levels: 2,
            textons: 6,
            train_patches: 400,
            latent: 2,
            hidden: vec![8],
            epochs: 1,
            batch: 32,
            ..TextonConfig::default()
        };
        for kind in [EncoderKind::Pixels, EncoderKind::Vae] {
            let mut m = TextonModel::fit(&train, &cfg, kind, 0, &mut rng).unwrap();
            let d_train = m.describe_all(&train).unwrap();
            assert_eq!(d_train.ncols(), 12);
            for row in d_train.rows() {
                assert!((row.sum() - 1.0).abs() < 1e-4);
            }
            if kind == EncoderKind::Pixels {
                let y: Vec<usize> = (0..6).map(|i| i % 2).collect();
                let knn = crate::knn::ChiSquareKnn::fit(d_train.view(), &y, 2, 1).unwrap();
                let test: Vec<_> = (0..4).map(|i| make(i % 2 == 1, &mut rng)).collect();
                let pred = knn.predict(m.describe_all(&test).unwrap().view()).unwrap();
                assert_eq!(pred, vec![0, 1, 0, 1]);
            }
        }
        // A capped grid still gives one normalised histogram per image.
        let capped = TextonConfig {
            max_patches_per_level: 5,
            ..cfg.clone()
        };
        let mut m = TextonModel::fit(&train, &capped, EncoderKind::Pixels, 0, &mut rng).unwrap();
        for row in m.describe_all(&train).unwrap().rows() {
            assert!((row.sum() - 1.0).abs() < 1e-4);
        }
        let tiny = Array2::<f32>::zeros((3, 3));
        let mut m = TextonModel::fit(&train, &cfg, EncoderKind::Pixels, 0, &mut rng).unwrap();
        assert!(m.describe(tiny.view()).is_err());
        assert!(TextonModel::fit(&[tiny], &cfg, EncoderKind::Pixels, 0, &mut rng).is_err());
    }
}

/// One method's result on one split of an image folder ([`evaluate_split`]).
#[derive(Debug, Clone)]
pub struct SplitScore {
    /// The method's score and confusion matrix.
    pub score: crate::texture::MethodScore,
    /// Seconds spent fitting and describing (the VAE's training included).
    pub seconds: f64,
}

/// Which methods [`evaluate_split`] runs besides the VAE textons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baselines {
    /// The same texton pipeline on normalised pixels.
    pub pixel_textons: bool,
    /// Multi-scale riu2 LBP ((8,1), (16,2), (24,3)) with a chi-square 1-NN, on the images
    /// as loaded and on contrast-normalised images (mean 0.5, std 0.2, clipped; the
    /// pre-processing of the patch-vote pipeline).
    pub lbp: bool,
}

/// Trains and scores the VAE texton descriptor (chi-square 1-NN) on one train/test split
/// of grey `images`, with the chosen baselines on the same split. The VAE and the codebook
/// see only the training images (without labels).
#[allow(clippy::too_many_arguments)]
pub fn evaluate_split(
    images: &[Array2<f32>],
    labels: &[usize],
    num_classes: usize,
    train: &[usize],
    test: &[usize],
    cfg: &TextonConfig,
    baselines: Baselines,
    seed: u64,
    rng: &mut impl Rng,
) -> Result<Vec<SplitScore>> {
    use crate::knn::ChiSquareKnn;
    use crate::metrics::classification::ConfusionMatrix;
    use crate::texture::MethodScore;
    const OP: &str = "evaluate_split";
    if images.len() != labels.len() {
        return Err(VisionError::shape(OP, &[images.len()], &[labels.len()]));
    }
    if let Some(&bad) = train.iter().chain(test).find(|&&i| i >= images.len()) {
        return Err(VisionError::param(
            OP,
            "index",
            bad,
            format!("must be below {}", images.len()),
        ));
    }
    if train.is_empty() || test.is_empty() {
        return Err(VisionError::Empty {
            op: OP,
            what: "train or test split".into(),
        });
    }
    let pick = |idx: &[usize]| idx.iter().map(|&i| images[i].clone()).collect::<Vec<_>>();
    let (train_img, test_img) = (pick(train), pick(test));
    let train_y: Vec<usize> = train.iter().map(|&i| labels[i]).collect();
    let test_y: Vec<usize> = test.iter().map(|&i| labels[i]).collect();
    let score =
        |name: String, d_train: &Array2<f32>, d_test: &Array2<f32>, t: std::time::Instant| {
            let pred = ChiSquareKnn::fit(d_train.view(), &train_y, num_classes, 1)?
                .predict(d_test.view())?;
            let confusion = ConfusionMatrix::from_labels(&test_y, &pred, num_classes)?;
            Ok::<_, VisionError>(SplitScore {
                score: MethodScore {
                    name,
                    accuracy: confusion.accuracy().unwrap_or(0.0),
                    confusion,
                },
                seconds: t.elapsed().as_secs_f64(),
            })
        };
    let mut out = Vec::new();
    let mut kinds = vec![EncoderKind::Vae];
    if baselines.pixel_textons {
        kinds.push(EncoderKind::Pixels);
    }
    for kind in kinds {
        let t = std::time::Instant::now();
        let mut model = TextonModel::fit(&train_img, cfg, kind, seed, rng)?;
        let d_train = model.describe_all(&train_img)?;
        let d_test = model.describe_all(&test_img)?;
        let name = format!("textons-{}+chi2-1nn", model.encoder().name());
        if let Some(last) = model.vae_epochs.last() {
            eprintln!(
                "patch VAE: {} epochs, last train loss {:.3} (recon {:.3}, KL {:.3}), {:.0} patches/s",
                last.epoch, last.train_loss, last.train_recon, last.train_kl, last.images_per_sec
            );
        }
        out.push(score(name, &d_train, &d_test, t)?);
    }
    if baselines.lbp {
        let lbp = crate::classical::LbpConfig::default();
        let t = std::time::Instant::now();
        let d_train = crate::texture::lbp_descriptors(&train_img, &lbp)?;
        let d_test = crate::texture::lbp_descriptors(&test_img, &lbp)?;
        out.push(score("lbp-riu2+chi2-1nn".into(), &d_train, &d_test, t)?);
        let t = std::time::Instant::now();
        let normalised = |imgs: &[Array2<f32>]| {
            imgs.iter()
                .map(|img| {
                    let mut a = img.clone().insert_axis(Axis(0));
                    crate::texture_task::normalize_contrast(&mut a);
                    a.index_axis_move(Axis(0), 0)
                })
                .collect::<Vec<_>>()
        };
        let d_train = crate::texture::lbp_descriptors(&normalised(&train_img), &lbp)?;
        let d_test = crate::texture::lbp_descriptors(&normalised(&test_img), &lbp)?;
        out.push(score(
            "lbp-riu2-normalised+chi2-1nn".into(),
            &d_train,
            &d_test,
            t,
        )?);
    }
    Ok(out)
}
