//! Texture segmentation with VAE textons: a second method for the mosaic task, beside the
//! trained heads.
//!
//! [`TextonSegmenter::fit`] fits a [`TextonModel`] (patch VAE + k-means codebook) on the
//! training source images only, then cuts `refs_per_class` random `window × window`
//! windows from the training images of every class and keeps their texton histograms
//! (per pyramid level, as [`TextonModel::describe`]) as labelled references.
//! [`TextonSegmenter::segment`] computes the texton id of every patch of a mosaic at every
//! level ([`TextonModel::texton_maps`]), builds integral histograms, and at every point of
//! a `step` grid takes the histogram of the window centred there; each class scores minus
//! the mean chi-square distance of its `neighbours` nearest references. The score maps are box-smoothed, optionally
//! restricted to the `keep_classes` classes that win most grid points (a mosaic is known to
//! hold five textures), bilinearly upsampled to every pixel and arg-maxed.
//!
//! [`regions`] holds the region-level method ([`TextonSegmenter::segment_regions`]): the
//! points of one image are grouped without labels by k-means on their window histograms,
//! and each group is classified as a whole.

use std::path::Path;
use std::time::Instant;

use ndarray::{Array2, Array3, ArrayView2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::scenes::{SegSet, TextureBank};
use super::task::{mosaic_banks, test_mosaics, HeadOutcome, TaskOutcome};
use super::train::score;
use crate::classical::LbpConfig;
use crate::error::{Result, VisionError};
use crate::texton::{EncoderKind, TextonConfig, TextonMap, TextonModel};

pub mod regions;

pub use regions::{RegionConfig, RegionSegmentation, SegmentScoring};

/// Settings of [`TextonSegmenter`].
#[derive(Debug, Clone, PartialEq)]
pub struct TextonSegConfig {
    /// The texton model (patch VAE and codebook).
    pub texton: TextonConfig,
    /// Side in pixels of the square window whose histogram describes a point.
    pub window: usize,
    /// Step in pixels of the grid of points that are classified.
    pub step: usize,
    /// Reference windows cut from the training images of each class.
    pub refs_per_class: usize,
    /// Radius (in grid points) of the box filter over the score maps (0: none).
    pub smooth: usize,
    /// Keep only the classes that win most grid points (`Some(5)` uses the mosaics' known
    /// five textures); `None` keeps all.
    pub keep_classes: Option<usize>,
    /// Also cut references from the mirrored training images (left–right, up–down and
    /// both): the mosaic generator fills regions larger than a source image by reflecting
    /// it, so mosaics hold mirrored texture.
    pub mirror_refs: bool,
    /// A class scores minus the mean distance to its this many nearest references.
    pub neighbours: usize,
    /// Region-level segmentation ([`TextonSegmenter::segment_regions`]) instead of the
    /// window method in [`TextonSegmenter::segment`]; `Some` also makes
    /// [`TextonSegmenter::fit`] keep the whole-image histogram of every training image (and
    /// of its mirror images with `mirror_refs`) as class models.
    pub regions: Option<RegionConfig>,
    /// Hidden units of the learned segment classifier fitted with region settings (one
    /// ReLU layer, `NeuralConfig::mlp`); 0: softmax regression.
    pub classifier_hidden: usize,
    /// Extra training examples of the learned segment classifier: this many random
    /// windows of twice the window side per training image slot (image or mirror image),
    /// closer in size to a mosaic region than the reference windows; 0: none.
    pub classifier_crops: usize,
    /// With region settings, also fit a second learned segment classifier
    /// ([`RegionConfig::lbp`]) on the square-root texton histograms concatenated with the
    /// square-root multi-scale riu2 LBP histograms (scales [`TextonSegConfig::lbp_scales`])
    /// of the same training windows and images: a classical feature fused with the VAE
    /// textons.
    pub lbp: bool,
    /// The `(P, R)` scales of the LBP histograms (default `(8, 1)`, `(16, 2)`, `(24, 3)`).
    pub lbp_scales: LbpConfig,
    /// Which LBP codes the LBP histograms count (default: riu2 LBP, [`LbpKind::Sign`]).
    pub lbp_kind: LbpKind,
    /// With region settings and [`TextonSegConfig::lbp`], also fit an RBF-kernel SVM on the
    /// fused classifier's examples and features ([`SegmentScoring::Svm`]); `None`: none.
    pub svm: Option<SegmentSvmConfig>,
    /// What describes a patch before k-means: the patch VAE's posterior mean (the method)
    /// or the normalised pixels themselves (the ablation without a VAE).
    pub encoder: EncoderKind,
}

/// Settings of the segment SVM ([`SegmentScoring::Svm`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentSvmConfig {
    /// The kernel machine's settings.
    pub svm: crate::classify::SvmConfig,
    /// Weight of the standardised square-root LBP histogram bins against the texton bins
    /// (weight 1) in the kernel's distance.
    pub lbp_weight: f32,
}

impl Default for SegmentSvmConfig {
    /// The setting chosen on the hold-out mosaics (`docs/results.md`, round TRS): `C = 3`,
    /// `gamma_scale = 1`, LBP weight 4.
    fn default() -> Self {
        SegmentSvmConfig {
            svm: crate::classify::SvmConfig {
                c: 3.0,
                ..crate::classify::SvmConfig::default()
            },
            lbp_weight: 4.0,
        }
    }
}

/// Which local-binary-pattern codes the region method's LBP histograms count, per scale.
/// The completed LBP (CLBP, [`clbp_riu2`](crate::classical::clbp_riu2)) adds the riu2
/// code of the local difference *magnitudes*, thresholded at their mean over the training
/// images (fixed at fit time, so that mosaics and training images share one threshold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LbpKind {
    /// riu2 LBP (CLBP_S): `P + 2` bins per scale.
    #[default]
    Sign,
    /// CLBP_S and CLBP_M as two histograms per scale (`P + 2` bins each).
    SignMagnitude,
    /// The joint CLBP_S/M code per scale: `(P + 2)²` bins.
    Joint,
}

impl LbpKind {
    /// The kind's name on the command line: `sign`, `sign-magnitude` or `joint`.
    pub fn name(self) -> &'static str {
        match self {
            LbpKind::Sign => "sign",
            LbpKind::SignMagnitude => "sign-magnitude",
            LbpKind::Joint => "joint",
        }
    }

    /// Parses [`LbpKind::name`].
    ///
    /// # Errors
    /// [`VisionError::InvalidParameter`] for any other name.
    pub fn parse(name: &str) -> Result<Self> {
        [LbpKind::Sign, LbpKind::SignMagnitude, LbpKind::Joint]
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                VisionError::param(
                    "LbpKind",
                    "name",
                    name,
                    "expected sign, sign-magnitude or joint",
                )
            })
    }
}

/// The LBP features of a fitted segmenter: scales, kind and, for the CLBP kinds, the
/// magnitude threshold of every scale (the mean over the training images).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LbpFeatures {
    scales: LbpConfig,
    kind: LbpKind,
    thresholds: Vec<f32>,
}

impl LbpFeatures {
    /// Fixes the magnitude thresholds on `images` (the mean of their per-image means;
    /// none are needed for [`LbpKind::Sign`]).
    pub(crate) fn fit(scales: &LbpConfig, kind: LbpKind, images: &[Array2<f32>]) -> Result<Self> {
        let thresholds =
            if kind == LbpKind::Sign || images.is_empty() {
                Vec::new()
            } else {
                scales
                    .scales
                    .iter()
                    .map(|&(p, r)| {
                        let means = images
                            .par_iter()
                            .map(|img| crate::classical::lbp_mean_magnitude(img.view(), p, r))
                            .collect::<Result<Vec<f32>>>()?;
                        Ok(means.iter().map(|&m| f64::from(m)).sum::<f64>() as f32
                            / means.len() as f32)
                    })
                    .collect::<Result<Vec<f32>>>()?
            };
        Ok(LbpFeatures {
            scales: scales.clone(),
            kind,
            thresholds,
        })
    }

    /// Bins per histogram level (the largest over the scales).
    pub(crate) fn bins(&self) -> usize {
        let b = lbp_bins(&self.scales);
        if self.kind == LbpKind::Joint {
            b * b
        } else {
            b
        }
    }

    /// Histogram levels: one per scale, two per scale for [`LbpKind::SignMagnitude`].
    pub(crate) fn levels(&self) -> usize {
        let n = self.scales.scales.len();
        if self.kind == LbpKind::SignMagnitude {
            2 * n
        } else {
            n
        }
    }

    /// The code maps of a grey image in the shape of texton maps (see
    /// [`lbp_code_maps`]): per scale its sign codes, then (sign-magnitude) its magnitude
    /// codes as the level `scales + i`, or (joint) `sign · b + magnitude`, `b` the bins of
    /// [`LbpFeatures::bins`]'s per-code range.
    pub(crate) fn maps(&self, img: ArrayView2<f32>) -> Result<Vec<TextonMap>> {
        if self.kind == LbpKind::Sign {
            return lbp_code_maps(img, &self.scales);
        }
        let b = lbp_bins(&self.scales);
        let n = self.scales.scales.len();
        let mut signs = Vec::with_capacity(n);
        let mut mags = Vec::with_capacity(n);
        for (level, (&(p, r), &t)) in self.scales.scales.iter().zip(&self.thresholds).enumerate() {
            let c = crate::classical::clbp_riu2(img, p, r, Some(t), Some(0.0))?;
            match self.kind {
                LbpKind::Joint => {
                    let ids = ndarray::Zip::from(&c.sign)
                        .and(&c.magnitude)
                        .map_collect(|&s, &m| usize::from(s) * b + usize::from(m));
                    signs.push(code_map(level, ids, r));
                }
                _ => {
                    signs.push(code_map(level, c.sign, r));
                    mags.push(code_map(n + level, c.magnitude, r));
                }
            }
        }
        signs.extend(mags);
        Ok(signs)
    }
}

impl Default for TextonSegConfig {
    /// The default texton model, 64-pixel windows every 8 pixels, 150 references per
    /// class, smoothing radius 2, all classes kept, the window method (softmax regression
    /// for the region method's learned scoring, and the texton + LBP one beside it).
    fn default() -> Self {
        TextonSegConfig {
            texton: TextonConfig::default(),
            window: 64,
            step: 8,
            refs_per_class: 150,
            smooth: 2,
            keep_classes: None,
            mirror_refs: false,
            neighbours: 1,
            regions: None,
            classifier_hidden: 0,
            classifier_crops: 0,
            lbp: true,
            lbp_scales: LbpConfig::default(),
            lbp_kind: LbpKind::Sign,
            svm: Some(SegmentSvmConfig::default()),
            encoder: EncoderKind::Vae,
        }
    }
}

impl TextonSegConfig {
    fn validate(&self, num_classes: usize) -> Result<()> {
        const OP: &str = "TextonSegConfig";
        if let Some(rc) = &self.regions {
            rc.validate(num_classes)?;
        }
        for (name, v) in [
            ("window", self.window),
            ("step", self.step),
            ("refs_per_class", self.refs_per_class),
            ("neighbours", self.neighbours),
        ] {
            if v == 0 {
                return Err(VisionError::param(OP, name, v, "must be at least 1"));
            }
        }
        if self.lbp && self.lbp_scales.is_empty() {
            return Err(VisionError::param(
                OP,
                "lbp_scales",
                "[]",
                "LBP features need at least one scale",
            ));
        }
        if self.keep_classes == Some(0) {
            return Err(VisionError::param(
                OP,
                "keep_classes",
                0,
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Integral histogram of one level's texton ids: `data[(i·(gw+1) + j)·k + t]` counts the
/// cells above and left of `(i, j)` holding texton `t`.
struct Integral {
    gh: usize,
    gw: usize,
    k: usize,
    step: f32,
    offset: f32,
    data: Vec<u32>,
}

impl Integral {
    fn new(map: &TextonMap, k: usize) -> Self {
        let (gh, gw) = map.ids.dim();
        let mut data = vec![0u32; (gh + 1) * (gw + 1) * k];
        for i in 0..gh {
            let mut row = vec![0u32; k];
            for j in 0..gw {
                row[map.ids[[i, j]].min(k - 1)] += 1;
                let (up, here) = ((i * (gw + 1) + j + 1) * k, ((i + 1) * (gw + 1) + j + 1) * k);
                for t in 0..k {
                    data[here + t] = data[up + t] + row[t];
                }
            }
        }
        Integral {
            gh,
            gw,
            k,
            step: map.step,
            offset: map.offset,
            data,
        }
    }

    /// Grid indices whose centres lie in `[lo, hi)`, clamped to `0..n`.
    fn range(&self, lo: f32, hi: f32, n: usize) -> (usize, usize) {
        let f = |v: f32| ((v - self.offset) / self.step).ceil().clamp(0.0, n as f32) as usize;
        (f(lo), f(hi))
    }

    /// Adds the normalised histogram of the cells centred in the window, times `weight`,
    /// to `out`; returns whether the window held any cell.
    fn add_window(&self, y: (f32, f32), x: (f32, f32), weight: f32, out: &mut [f32]) -> bool {
        let (i0, i1) = self.range(y.0, y.1, self.gh);
        let (j0, j1) = self.range(x.0, x.1, self.gw);
        if i0 >= i1 || j0 >= j1 {
            return false;
        }
        let w = weight / ((i1 - i0) * (j1 - j0)) as f32;
        let at = |i: usize, j: usize| (i * (self.gw + 1) + j) * self.k;
        let (a, b, c, d) = (at(i1, j1), at(i0, j1), at(i1, j0), at(i0, j0));
        for (t, o) in out.iter_mut().enumerate() {
            let n = self.data[a + t] + self.data[d + t] - self.data[b + t] - self.data[c + t];
            *o += n as f32 * w;
        }
        true
    }
}

/// The integral histograms of every level of one image.
struct Integrals {
    levels: Vec<(usize, Integral)>,
    k: usize,
    n_levels: usize,
}

impl Integrals {
    fn new(maps: &[TextonMap], k: usize, n_levels: usize) -> Self {
        Integrals {
            levels: maps
                .iter()
                .map(|m| (m.level, Integral::new(m, k)))
                .collect(),
            k,
            n_levels,
        }
    }

    /// The window histogram centred at `(cy, cx)` with side `side`: per level normalised,
    /// the levels present sharing a total of 1 (as [`TextonModel::describe`]).
    fn window(&self, cy: f32, cx: f32, side: f32) -> Vec<f32> {
        let mut out = vec![0f32; self.n_levels * self.k];
        let (y, x) = (
            (cy - side / 2.0, cy + side / 2.0),
            (cx - side / 2.0, cx + side / 2.0),
        );
        let present: Vec<usize> = self
            .levels
            .iter()
            .filter(|(l, _)| *l < self.n_levels)
            .filter_map(|(l, ig)| {
                let slice = &mut out[l * self.k..(l + 1) * self.k];
                ig.add_window(y, x, 1.0, slice).then_some(*l)
            })
            .collect();
        if !present.is_empty() {
            let share = 1.0 / present.len() as f32;
            out.iter_mut().for_each(|v| *v *= share);
        }
        out
    }
}

/// The riu2 LBP code maps of a grey image, one per scale of `cfg` (its `level` is the
/// scale's index), on the pixel grid: the code of pixel `(y, x)` sits in a cell centred at
/// `(y + ½, x + ½)`, only where the scale's circle lies inside the image. They have the
/// shape of texton maps so that [`Integrals`] (with [`lbp_bins`] bins per scale, the unused
/// bins of the smaller scales staying empty) and the region method's pooling histogram
/// them as they do textons.
///
/// # Errors
/// As [`lbp_riu2`](crate::classical::lbp_riu2) (an image too small for the largest circle).
pub(crate) fn lbp_code_maps(img: ArrayView2<f32>, cfg: &LbpConfig) -> Result<Vec<TextonMap>> {
    cfg.scales
        .iter()
        .enumerate()
        .map(|(level, &(p, r))| Ok(code_map(level, crate::classical::lbp_riu2(img, p, r)?, r)))
        .collect()
}

/// A map of per-pixel codes of a circle of radius `r` (valid region only, as
/// [`lbp_riu2`](crate::classical::lbp_riu2) returns it) in the shape of a texton map.
fn code_map<T: Copy + Into<usize>>(level: usize, codes: Array2<T>, r: f32) -> TextonMap {
    TextonMap {
        level,
        ids: codes.mapv(Into::into),
        step: 1.0,
        offset: r.ceil() + 0.5,
    }
}

/// Bins per scale of the LBP histograms of [`lbp_code_maps`]: the largest `P + 2`.
pub(crate) fn lbp_bins(cfg: &LbpConfig) -> usize {
    cfg.scales.iter().map(|&(p, _)| p + 2).max().unwrap_or(1)
}

/// Per-class scores of histogram `q` against labelled models: minus the mean chi-square
/// distance of the class's `k` nearest models (−∞ for a class with fewer than `k`).
fn knn_scores(q: &[f32], models: &Array2<f32>, labels: &[usize], nc: usize, k: usize) -> Vec<f32> {
    knn_class_scores(
        models
            .outer_iter()
            .zip(labels)
            .map(|(r, &c)| (c, chi2(q, r.as_slice().expect("contiguous")))),
        nc,
        k,
    )
}

/// Minus the mean of the `k` smallest distances of each of `nc` classes, from
/// `(class, distance)` pairs (a score: higher is nearer).
fn knn_class_scores(pairs: impl Iterator<Item = (usize, f32)>, nc: usize, k: usize) -> Vec<f32> {
    // The `k` smallest distances of each class, ascending.
    let mut best = vec![vec![f32::INFINITY; k]; nc];
    for (c, d) in pairs {
        let b = &mut best[c];
        if d < b[k - 1] {
            let at = b.partition_point(|&v| v <= d);
            b.insert(at, d);
            b.pop();
        }
    }
    best.into_iter()
        .map(|b| -b.iter().sum::<f32>() / k as f32)
        .collect()
}

fn chi2(a: &[f32], b: &[f32]) -> f32 {
    let mut d = 0.0f32;
    for (&x, &y) in a.iter().zip(b) {
        let s = x + y;
        if s > 0.0 {
            d += (x - y) * (x - y) / s;
        }
    }
    d
}

/// A fitted texton segmenter: the texton model and the labelled reference histograms.
#[derive(Debug)]
pub struct TextonSegmenter {
    cfg: TextonSegConfig,
    model: TextonModel,
    refs: Array2<f32>,
    ref_labels: Vec<usize>,
    image_models: Array2<f32>,
    image_labels: Vec<usize>,
    /// Softmax regression on square-root histograms (region method only), behind a lock
    /// because its forward pass needs `&mut`.
    classifier: Option<std::sync::Mutex<crate::classify::NeuralClassifier>>,
    /// The same on texton and LBP histograms ([`TextonSegConfig::lbp`]).
    lbp_classifier: Option<std::sync::Mutex<crate::classify::NeuralClassifier>>,
    /// The RBF-kernel SVM on the same features ([`TextonSegConfig::svm`]).
    svm: Option<crate::classify::KernelSvm>,
    /// The LBP code maps' settings and fitted thresholds.
    lbp_features: LbpFeatures,
    num_classes: usize,
}

impl TextonSegmenter {
    /// Fits the texton model on the images of `bank` (no labels) and cuts the labelled
    /// reference windows from them; with region settings also keeps every image's
    /// whole-image histogram (and its mirror images' with `mirror_refs`) and trains a
    /// softmax regression on the square roots of the references' and images' histograms
    /// ([`SegmentScoring::Learned`]), and with [`TextonSegConfig::lbp`] a second one on
    /// the same examples' texton and LBP histograms ([`RegionConfig::lbp`]). `seed` seeds
    /// everything random.
    ///
    /// # Errors
    /// Bad settings, a class with no image at least `window` pixels on each side, texton
    /// model failures.
    pub fn fit(bank: &TextureBank, cfg: &TextonSegConfig, seed: u64) -> Result<Self> {
        const OP: &str = "TextonSegmenter::fit";
        cfg.validate(bank.num_classes)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut model = TextonModel::fit(&bank.images, &cfg.texton, cfg.encoder, seed, &mut rng)?;
        let (k, nl) = (cfg.texton.textons, cfg.texton.levels);
        let w = cfg.window;
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); bank.num_classes];
        for (i, (img, &c)) in bank.images.iter().zip(&bank.labels).enumerate() {
            let (h, iw) = img.dim();
            if h >= w && iw >= w && c < bank.num_classes {
                by_class[c].push(i);
            }
        }
        let flips = if cfg.mirror_refs { 4 } else { 1 };
        // Draw every reference window first (image, mirroring, centre), then compute each
        // needed texton map once, one image at a time, so only one integral histogram is
        // held in memory.
        let mut draws: Vec<(usize, usize, f32, f32)> = Vec::new();
        let mut ref_labels = Vec::new();
        for (c, imgs) in by_class.iter().enumerate() {
            if imgs.is_empty() {
                if bank.labels.contains(&c) {
                    return Err(VisionError::Empty {
                        op: OP,
                        what: format!("class {c} has no image of at least {w}×{w}"),
                    });
                }
                continue;
            }
            for _ in 0..cfg.refs_per_class {
                let i = imgs[rng.random_range(0..imgs.len())];
                let f = rng.random_range(0..flips);
                let (h, iw) = bank.images[i].dim();
                let cy = rng.random_range(0..=h - w) as f32 + w as f32 / 2.0;
                let cx = rng.random_range(0..=iw - w) as f32 + w as f32 / 2.0;
                draws.push((i * flips + f, ref_labels.len(), cy, cx));
                ref_labels.push(c);
            }
        }
        draws.sort_by_key(|d| (d.0, d.1));
        let d = nl * k;
        let mut refs = vec![0f32; ref_labels.len() * d];
        // Image models (region method only): every (image, mirroring) slot of a labelled
        // image, in slot order.
        let with_images = cfg.regions.is_some();
        let model_slots: Vec<usize> = if with_images {
            (0..bank.images.len() * flips)
                .filter(|&slot| bank.labels[slot / flips] < bank.num_classes)
                .collect()
        } else {
            Vec::new()
        };
        let mut image_models = Vec::with_capacity(model_slots.len() * d);
        let mut image_labels = Vec::with_capacity(model_slots.len());
        let (mut next_draw, mut next_model) = (0, 0);
        // Classifier crops draw from their own generator (the reference draws above stay
        // those of the window method).
        let mut crop_rng = StdRng::seed_from_u64(seed ^ 0x0c60_95e5);
        let (mut crops, mut crop_labels) = (Vec::new(), Vec::new());
        // LBP histograms of the same references, images and crops (fused classifier only).
        let with_lbp = with_images && cfg.lbp;
        let lbp_features = LbpFeatures::fit(&cfg.lbp_scales, cfg.lbp_kind, &bank.images)?;
        let (lk, ln) = (lbp_features.bins(), lbp_features.levels());
        let dl = lk * ln;
        let mut lbp_refs = vec![0f32; if with_lbp { ref_labels.len() * dl } else { 0 }];
        let (mut lbp_models, mut lbp_crops) = (Vec::new(), Vec::new());
        // Visit every needed slot once, in increasing order, computing its texton maps
        // once (only one integral histogram is held at a time).
        loop {
            let slot = match (draws.get(next_draw), model_slots.get(next_model)) {
                (None, None) => break,
                (Some(a), None) => a.0,
                (None, Some(&b)) => b,
                (Some(a), Some(&b)) => a.0.min(b),
            };
            let (i, f) = (slot / flips, slot % flips);
            let mut img = bank.images[i].view();
            if f & 1 == 1 {
                img.invert_axis(Axis(1));
            }
            if f & 2 == 2 {
                img.invert_axis(Axis(0));
            }
            let maps = model.texton_maps(img)?;
            let ig = Integrals::new(&maps, k, nl);
            let lig = if with_lbp {
                Some(Integrals::new(&lbp_features.maps(img)?, lk, ln))
            } else {
                None
            };
            while let Some(&(s, r, cy, cx)) = draws.get(next_draw) {
                if s != slot {
                    break;
                }
                refs[r * d..(r + 1) * d].copy_from_slice(&ig.window(cy, cx, w as f32));
                if let Some(lig) = &lig {
                    lbp_refs[r * dl..(r + 1) * dl].copy_from_slice(&lig.window(cy, cx, w as f32));
                }
                next_draw += 1;
            }
            if model_slots.get(next_model) == Some(&slot) {
                let (h, iw) = img.dim();
                let side = 2.0 * h.max(iw) as f32;
                let (my, mx) = (h as f32 / 2.0, iw as f32 / 2.0);
                image_models.extend(ig.window(my, mx, side));
                if let Some(lig) = &lig {
                    lbp_models.extend(lig.window(my, mx, side));
                }
                image_labels.push(bank.labels[i]);
                next_model += 1;
                let cs = 2 * w;
                if h >= cs && iw >= cs {
                    for _ in 0..cfg.classifier_crops {
                        let cy = crop_rng.random_range(0..=h - cs) as f32 + w as f32;
                        let cx = crop_rng.random_range(0..=iw - cs) as f32 + w as f32;
                        crops.extend(ig.window(cy, cx, cs as f32));
                        if let Some(lig) = &lig {
                            lbp_crops.extend(lig.window(cy, cx, cs as f32));
                        }
                        crop_labels.push(bank.labels[i]);
                    }
                }
            }
        }
        let refs = Array2::from_shape_vec((ref_labels.len(), nl * k), refs)
            .expect("one histogram per reference");
        let image_models = Array2::from_shape_vec((image_labels.len(), d), image_models)
            .expect("one histogram per image model");
        // The learned segment classifier: softmax regression on the square roots of the
        // reference windows' and the images' histograms (own seed, so the draws above are
        // those of the window method).
        let (classifier, lbp_classifier, svm) = if with_images {
            let crops = Array2::from_shape_vec((crop_labels.len(), d), crops)
                .expect("one histogram per crop");
            let x =
                ndarray::concatenate(Axis(0), &[refs.view(), image_models.view(), crops.view()])
                    .expect("same width")
                    .mapv(f32::sqrt);
            let labels: Vec<usize> = ref_labels
                .iter()
                .chain(&image_labels)
                .chain(&crop_labels)
                .copied()
                .collect();
            let ncfg = if cfg.classifier_hidden == 0 {
                crate::classify::NeuralConfig::softmax_regression()
            } else {
                crate::classify::NeuralConfig::mlp(cfg.classifier_hidden)
            };
            // Each classifier draws from its own generator (seed mixed with a salt).
            let fit = |x: ndarray::ArrayView2<f32>, salt: u64| {
                let mut rng = StdRng::seed_from_u64(seed ^ salt);
                crate::classify::NeuralClassifier::fit(
                    x,
                    &labels,
                    bank.num_classes,
                    &ncfg,
                    &mut rng,
                )
            };
            let clf = fit(x.view(), 0xc1a5_5e5d)?;
            let (lbp_clf, svm) = if with_lbp {
                let n = labels.len();
                let l = Array2::from_shape_vec(
                    (n, dl),
                    lbp_refs
                        .into_iter()
                        .chain(lbp_models)
                        .chain(lbp_crops)
                        .collect(),
                )
                .expect("one LBP histogram per example")
                .mapv(f32::sqrt);
                let xl = ndarray::concatenate(Axis(1), &[x.view(), l.view()])
                    .expect("one row per example");
                let svm = match &cfg.svm {
                    Some(sc) => {
                        let weights: Vec<f32> = (0..d + dl)
                            .map(|j| if j < d { 1.0 } else { sc.lbp_weight })
                            .collect();
                        Some(crate::classify::KernelSvm::fit(
                            xl.view(),
                            &labels,
                            bank.num_classes,
                            Some(&weights),
                            &sc.svm,
                        )?)
                    }
                    None => None,
                };
                (
                    Some(std::sync::Mutex::new(fit(xl.view(), 0x1b9f_ea70)?)),
                    svm,
                )
            } else {
                (None, None)
            };
            (Some(std::sync::Mutex::new(clf)), lbp_clf, svm)
        } else {
            (None, None, None)
        };
        Ok(TextonSegmenter {
            cfg: cfg.clone(),
            model,
            refs,
            ref_labels,
            image_models,
            image_labels,
            classifier,
            lbp_classifier,
            svm,
            lbp_features,
            num_classes: bank.num_classes,
        })
    }

    /// The settings.
    pub fn config(&self) -> &TextonSegConfig {
        &self.cfg
    }

    /// The fitted texton model.
    pub fn model(&self) -> &TextonModel {
        &self.model
    }

    /// Per-class scores on the point grid of a grey image: `[classes, rows, cols]`, minus
    /// the mean chi-square distance of the point's window histogram to the class's
    /// `neighbours` nearest references (−∞ for classes with too few), before smoothing. Point `(i, j)`
    /// sits at pixel `((i + ½)·step, (j + ½)·step)`.
    ///
    /// # Errors
    /// An image smaller than one patch or than one grid step.
    pub fn class_scores(&mut self, image: ArrayView2<f32>) -> Result<Array3<f32>> {
        let (h, w) = image.dim();
        let s = self.cfg.step;
        if h < s || w < s {
            return Err(VisionError::Empty {
                op: "TextonSegmenter::class_scores",
                what: format!("image {:?} is smaller than one grid step {s}", (h, w)),
            });
        }
        let maps = self.model.texton_maps(image)?;
        let ig = Integrals::new(&maps, self.cfg.texton.textons, self.cfg.texton.levels);
        Ok(self.point_scores(&ig, h / s, w / s))
    }

    /// [`TextonSegmenter::class_scores`] on the integral histograms of an image.
    fn point_scores(&self, ig: &Integrals, gh: usize, gw: usize) -> Array3<f32> {
        let s = self.cfg.step;
        let side = self.cfg.window as f32;
        let nc = self.num_classes;
        let k = self.cfg.neighbours;
        let (refs, labels) = (&self.refs, &self.ref_labels);
        let rows: Vec<Vec<f32>> = (0..gh * gw)
            .into_par_iter()
            .map(|p| {
                let (i, j) = (p / gw, p % gw);
                let q = ig.window(
                    (i as f32 + 0.5) * s as f32,
                    (j as f32 + 0.5) * s as f32,
                    side,
                );
                knn_scores(&q, refs, labels, nc, k)
            })
            .collect();
        Array3::from_shape_fn((nc, gh, gw), |(c, i, j)| rows[i * gw + j][c])
    }

    /// Segments a grey image: a class per pixel (see the module docs); by region
    /// ([`TextonSegmenter::segment_regions`]) when the settings hold region settings.
    ///
    /// # Errors
    /// As [`TextonSegmenter::class_scores`] or [`TextonSegmenter::segment_regions`].
    pub fn segment(&mut self, image: ArrayView2<f32>) -> Result<Array2<u8>> {
        if let Some(rc) = self.cfg.regions.clone() {
            return Ok(self.segment_regions(image, &rc)?.labels);
        }
        let scores = self.class_scores(image)?;
        let scores = box_smooth(&scores, self.cfg.smooth);
        let (nc, gh, gw) = scores.dim();
        let mut allowed = vec![true; nc];
        if let Some(keep) = self.cfg.keep_classes {
            let mut wins = vec![0usize; nc];
            for i in 0..gh {
                for j in 0..gw {
                    wins[argmax((0..nc).map(|c| scores[[c, i, j]]), &allowed)] += 1;
                }
            }
            let mut order: Vec<usize> = (0..nc).collect();
            order.sort_by_key(|&c| std::cmp::Reverse(wins[c]));
            allowed = vec![false; nc];
            for &c in order.iter().take(keep) {
                allowed[c] = true;
            }
        }
        let (h, w) = image.dim();
        let s = self.cfg.step as f32;
        let coord = |p: usize, n: usize| {
            let g = ((p as f32 + 0.5) / s - 0.5).clamp(0.0, (n - 1) as f32);
            let g0 = (g.floor() as usize).min(n - 1);
            let g1 = (g0 + 1).min(n - 1);
            (g0, g1, g - g0 as f32)
        };
        Ok(Array2::from_shape_fn((h, w), |(y, x)| {
            let (y0, y1, fy) = coord(y, gh);
            let (x0, x1, fx) = coord(x, gw);
            let v = (0..nc).map(|c| {
                let a = scores[[c, y0, x0]] * (1.0 - fx) + scores[[c, y0, x1]] * fx;
                let b = scores[[c, y1, x0]] * (1.0 - fx) + scores[[c, y1, x1]] * fx;
                a * (1.0 - fy) + b * fy
            });
            argmax(v, &allowed) as u8
        }))
    }
}

/// Index of the largest allowed value (the first on ties; non-finite values lose).
fn argmax(v: impl Iterator<Item = f32>, allowed: &[bool]) -> usize {
    let mut best = (0usize, f32::NEG_INFINITY);
    let mut first = None;
    for (c, x) in v.enumerate() {
        if !allowed[c] {
            continue;
        }
        first.get_or_insert(c);
        if x > best.1 {
            best = (c, x);
        }
    }
    if best.1 == f32::NEG_INFINITY {
        first.unwrap_or(0)
    } else {
        best.0
    }
}

/// Box average of each class's score map with radius `r` (clipped at the borders;
/// non-finite scores stay non-finite).
fn box_smooth(s: &Array3<f32>, r: usize) -> Array3<f32> {
    if r == 0 {
        return s.clone();
    }
    let (nc, gh, gw) = s.dim();
    Array3::from_shape_fn((nc, gh, gw), |(c, i, j)| {
        let (i0, i1) = (i.saturating_sub(r), (i + r + 1).min(gh));
        let (j0, j1) = (j.saturating_sub(r), (j + r + 1).min(gw));
        let mut sum = 0.0;
        for ii in i0..i1 {
            for jj in j0..j1 {
                sum += s[[c, ii, jj]];
            }
        }
        sum / ((i1 - i0) * (j1 - j0)) as f32
    })
}

/// The mosaic task with the texton segmenter, on exactly the split and test mosaics of
/// [`run_mosaic`](super::task::run_mosaic) for the same `seed`, `size`, `train_per_class`
/// and `test_images`. The segmenter is fitted on the training source images only; it
/// segments by window ([`TextonSegmenter::segment`]) or, when `cfg.regions` is set, by
/// region ([`TextonSegmenter::segment_regions`]).
///
/// With `holdout_per_class = Some(v)` the method is instead *tuned*: `v` of the training
/// images of each class are held out (seeded), the segmenter is fitted on the others and
/// scored on mosaics cut from the held-out ones, so no test image is looked at.
///
/// The outcome has one "head", named `textons` (window method) or `textons-regions`;
/// `vae_seconds` is the fitting time.
///
/// # Errors
/// Missing texture files, bad sizes or settings, model failures.
#[allow(clippy::too_many_arguments)]
pub fn run_mosaic_textons(
    dir: &Path,
    size: usize,
    train_per_class: usize,
    test_images: usize,
    seed: u64,
    cfg: &TextonSegConfig,
    holdout_per_class: Option<usize>,
    log: &mut dyn FnMut(&str),
) -> Result<TaskOutcome> {
    run_mosaic_textons_sweep(
        dir,
        size,
        train_per_class,
        test_images,
        seed,
        cfg,
        &[],
        false,
        holdout_per_class,
        log,
    )
}

/// [`run_mosaic_textons`] with region settings `cfg.regions`, plus further region
/// settings `sweep` scored on the same fitted segmenter and mosaics (heads
/// `textons-regions`, then `sweep-1`, `sweep-2`, …): for tuning several settings at the
/// cost of one fit. With `oracle`, a last head `oracle-regions` classifies the *true*
/// regions of each mosaic with `cfg.regions`' scoring
/// ([`TextonSegmenter::segment_given_regions`]): the accuracy of the segment classifier
/// alone, an upper bound for perfect grouping. An empty `sweep` without `oracle` is
/// exactly [`run_mosaic_textons`].
///
/// # Errors
/// As [`run_mosaic_textons`]; a non-empty `sweep` or `oracle` without `cfg.regions` is
/// [`VisionError::InvalidParameter`].
#[allow(clippy::too_many_arguments)]
pub fn run_mosaic_textons_sweep(
    dir: &Path,
    size: usize,
    train_per_class: usize,
    test_images: usize,
    seed: u64,
    cfg: &TextonSegConfig,
    sweep: &[RegionConfig],
    oracle: bool,
    holdout_per_class: Option<usize>,
    log: &mut dyn FnMut(&str),
) -> Result<TaskOutcome> {
    const OP: &str = "run_mosaic_textons";
    if (!sweep.is_empty() || oracle) && cfg.regions.is_none() {
        return Err(VisionError::param(
            OP,
            "sweep",
            sweep.len(),
            "region settings to sweep need region settings in the config",
        ));
    }
    let (train_bank, test_bank) = mosaic_banks(dir, train_per_class, seed, log)?;
    let (fit_bank, eval_bank) = match holdout_per_class {
        None => (train_bank, test_bank),
        Some(v) => {
            let keep = train_per_class
                .checked_sub(v)
                .filter(|&k| k > 0)
                .ok_or_else(|| {
                    VisionError::param(OP, "holdout_per_class", v, "must be below train_per_class")
                })?;
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(17));
            let (a, b) = train_bank.split(keep, &mut rng)?;
            log(&format!(
                "tuning: fitting on {} training images, scoring on mosaics of {} held-out training images",
                a.images.len(),
                b.images.len()
            ));
            (a, b)
        }
    };
    let test: SegSet = test_mosaics(&eval_bank, test_images, size, seed)?;
    let start = Instant::now();
    let mut seg = TextonSegmenter::fit(&fit_bank, cfg, seed)?;
    let fit_seconds = start.elapsed().as_secs_f64();
    let vae_loss = seg.model().vae_epochs.last().map(|e| e.train_loss);
    let svm = seg.svm.as_ref().map_or(String::new(), |m| {
        format!(
            ", segment SVM with {} support vectors, gamma {:.2e}",
            m.num_support(),
            m.gamma()
        )
    });
    log(&format!(
        "texton segmenter fitted in {fit_seconds:.0} s ({} references, {} image models{svm})",
        seg.refs.nrows(),
        seg.image_models.nrows()
    ));
    let settings: Vec<RegionConfig> = cfg.regions.iter().chain(sweep).cloned().collect();
    let names: Vec<String> = if cfg.regions.is_some() {
        std::iter::once("textons-regions".to_string())
            .chain((1..=sweep.len()).map(|i| format!("sweep-{i}")))
            .chain(oracle.then(|| "oracle-regions".to_string()))
            .collect()
    } else {
        vec!["textons".to_string()]
    };
    let start = Instant::now();
    let (n, h, w) = test.labels.dim();
    let mut preds = vec![Array3::<u8>::zeros((n, h, w)); names.len()];
    for (i, img) in test.images.outer_iter().enumerate() {
        let img = img.index_axis(Axis(0), 0);
        if settings.is_empty() {
            preds[0]
                .index_axis_mut(Axis(0), i)
                .assign(&seg.segment(img)?);
        } else {
            for (p, r) in preds
                .iter_mut()
                .zip(seg.segment_regions_multi(img, &settings)?)
            {
                p.index_axis_mut(Axis(0), i).assign(&r.labels);
            }
            if oracle {
                let st = cfg.step;
                let truth = test.labels.index_axis(Axis(0), i);
                let grid = Array2::from_shape_fn((h / st, w / st), |(y, x)| {
                    truth[[y * st + st / 2, x * st + st / 2]] as usize
                });
                let rc = settings[0].clone();
                let r = seg.segment_given_regions(img, grid, test.num_classes, &rc)?;
                let last = preds.len() - 1;
                preds[last].index_axis_mut(Axis(0), i).assign(&r.labels);
            }
        }
    }
    let seg_seconds = start.elapsed().as_secs_f64();
    let mut heads = Vec::with_capacity(names.len());
    for (name, pred) in names.into_iter().zip(preds) {
        let report = score(&pred, &test.labels, test.num_classes, 2.0)?;
        log(&format!(
            "{name}: pixel accuracy {:.4}, mIoU {:.4}, boundary F {:.4} ({seg_seconds:.0} s for {n} mosaics, all settings)",
            report.pixel_accuracy, report.mean_iou, report.boundary_f
        ));
        heads.push(HeadOutcome {
            name,
            report,
            pred,
            history: Vec::new(),
            train_seconds: seg_seconds,
        });
    }
    Ok(TaskOutcome {
        test,
        weights: Vec::new(),
        vae_seconds: fit_seconds,
        vae_loss,
        heads,
        scale: 1,
        boundary_tolerance: 2.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripes(h: usize, w: usize, vertical: bool, rng: &mut StdRng) -> Array2<f32> {
        let phase = rng.random_range(0.0..std::f32::consts::TAU);
        Array2::from_shape_fn((h, w), |(y, x)| {
            let t = if vertical { x } else { y } as f32;
            (t * 1.3 + phase).sin() + 0.1 * rng.random_range(-1.0f32..1.0)
        })
    }

    #[test]
    fn clbp_features_share_codes_between_kinds() {
        let mut rng = StdRng::seed_from_u64(3);
        let imgs: Vec<Array2<f32>> = (0..3)
            .map(|i| stripes(20, 22, i % 2 == 0, &mut rng))
            .collect();
        let scales = LbpConfig {
            scales: vec![(8, 1.0), (16, 2.0)],
        };
        let sign = LbpFeatures::fit(&scales, LbpKind::Sign, &imgs).unwrap();
        let sm = LbpFeatures::fit(&scales, LbpKind::SignMagnitude, &imgs).unwrap();
        let joint = LbpFeatures::fit(&scales, LbpKind::Joint, &imgs).unwrap();
        assert_eq!((sign.bins(), sign.levels()), (18, 2));
        assert_eq!((sm.bins(), sm.levels()), (18, 4));
        assert_eq!((joint.bins(), joint.levels()), (18 * 18, 2));
        // The threshold of each scale is the mean of the images' mean magnitudes.
        for (t, &(p, r)) in sm.thresholds.iter().zip(&scales.scales) {
            let m: f32 = imgs
                .iter()
                .map(|i| crate::classical::lbp_mean_magnitude(i.view(), p, r).unwrap())
                .sum::<f32>()
                / 3.0;
            assert!((t - m).abs() < 1e-5, "{t} vs {m}");
        }
        let img = imgs[1].view();
        let (s, m, j) = (
            sign.maps(img).unwrap(),
            sm.maps(img).unwrap(),
            joint.maps(img).unwrap(),
        );
        assert_eq!((s.len(), m.len(), j.len()), (2, 4, 2));
        for l in 0..2 {
            // Sign codes are the riu2 LBP in every kind; the joint code packs both.
            assert_eq!(m[l].ids, s[l].ids);
            assert_eq!(m[2 + l].level, 2 + l);
            let packed = ndarray::Zip::from(&m[l].ids)
                .and(&m[2 + l].ids)
                .map_collect(|&a, &b| a * 18 + b);
            assert_eq!(j[l].ids, packed);
            // Magnitude codes use both sides of the threshold somewhere.
            assert!(m[2 + l].ids.iter().any(|&c| c != m[2 + l].ids[[0, 0]]));
        }
        assert!(LbpKind::parse("joint").is_ok() && LbpKind::parse("clbp").is_err());
    }

    fn tiny_config() -> TextonSegConfig {
        TextonSegConfig {
            texton: TextonConfig {
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
            },
            window: 12,
            step: 4,
            refs_per_class: 10,
            smooth: 1,
            keep_classes: None,
            mirror_refs: true,
            neighbours: 2,
            regions: None,
            classifier_hidden: 0,
            classifier_crops: 0,
            lbp: false,
            lbp_scales: LbpConfig::default(),
            lbp_kind: LbpKind::Sign,
            svm: None,
            encoder: EncoderKind::Vae,
        }
    }

    #[test]
    fn window_histogram_matches_a_direct_count() {
        let ids = Array2::from_shape_fn((5, 6), |(i, j)| (i * 7 + j * 3) % 4);
        let map = TextonMap {
            level: 0,
            ids: ids.clone(),
            step: 2.0,
            offset: 1.0,
        };
        let ig = Integral::new(&map, 4);
        // Cells centred in [2, 8) × [3, 9): rows 1..4, cols 1..4 (centres 3, 5, 7).
        let mut h = vec![0f32; 4];
        assert!(ig.add_window((2.0, 8.0), (3.0, 9.0), 1.0, &mut h));
        let mut want = vec![0f32; 4];
        for i in 1..4 {
            for j in 1..4 {
                want[ids[[i, j]]] += 1.0 / 9.0;
            }
        }
        for (a, b) in h.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{h:?} vs {want:?}");
        }
        // A window outside the grid holds nothing.
        assert!(!ig.add_window((100.0, 120.0), (0.0, 5.0), 1.0, &mut h));
    }

    /// Two synthetic textures (vertical and horizontal stripes): a half-and-half image is
    /// segmented along its boundary.
    #[test]
    fn segments_two_stripe_textures() {
        let mut rng = StdRng::seed_from_u64(3);
        let images: Vec<_> = (0..6)
            .map(|i| stripes(24, 24, i % 2 == 1, &mut rng))
            .collect();
        let bank = TextureBank {
            images,
            labels: (0..6).map(|i| i % 2).collect(),
            num_classes: 2,
        };
        let cfg = tiny_config();
        let mut seg = TextonSegmenter::fit(&bank, &cfg, 0).unwrap();
        let (a, b) = (
            stripes(32, 16, false, &mut rng),
            stripes(32, 16, true, &mut rng),
        );
        let img = ndarray::concatenate(Axis(1), &[a.view(), b.view()]).unwrap();
        let pred = seg.segment(img.view()).unwrap();
        assert_eq!(pred.dim(), (32, 32));
        let correct = pred
            .indexed_iter()
            .filter(|&((_, x), &p)| p as usize == usize::from(x >= 16))
            .count();
        assert!(
            correct as f32 / 1024.0 > 0.8,
            "accuracy {}",
            correct as f32 / 1024.0
        );
        // Keeping one class paints the whole image with it.
        let one = TextonSegConfig {
            keep_classes: Some(1),
            ..cfg.clone()
        };
        let mut seg1 = TextonSegmenter::fit(&bank, &one, 0).unwrap();
        let p1 = seg1.segment(img.view()).unwrap();
        assert!(p1.iter().all(|&p| p == p1[[0, 0]]));
    }

    #[test]
    fn bad_settings_and_inputs_are_errors() {
        let mut rng = StdRng::seed_from_u64(0);
        let bank = TextureBank {
            images: vec![stripes(24, 24, true, &mut rng)],
            labels: vec![0],
            num_classes: 1,
        };
        for cfg in [
            TextonSegConfig {
                window: 0,
                ..tiny_config()
            },
            TextonSegConfig {
                neighbours: 0,
                ..tiny_config()
            },
            TextonSegConfig {
                keep_classes: Some(0),
                ..tiny_config()
            },
        ] {
            assert!(matches!(
                TextonSegmenter::fit(&bank, &cfg, 0),
                Err(VisionError::InvalidParameter { .. })
            ));
        }
        // Every image of a class smaller than the window.
        let big = TextonSegConfig {
            window: 30,
            ..tiny_config()
        };
        assert!(TextonSegmenter::fit(&bank, &big, 0).is_err());
        let mut seg = TextonSegmenter::fit(&bank, &tiny_config(), 0).unwrap();
        assert!(seg.segment(Array2::<f32>::zeros((2, 2)).view()).is_err());
    }
}
