//! Region-level texton segmentation: group the points of one image without labels, then
//! classify each group as a whole.
//!
//! [`TextonSegmenter::segment_regions`] takes the window texton histograms of the point
//! grid (as the window method does), clusters the points into [`RegionConfig::regions`]
//! segments with seeded k-means on the square roots of the histograms (the Hellinger
//! distance is the Euclidean distance between square-root histograms, so Lloyd's algorithm
//! is exact for it), optionally with the point's position as extra coordinates, and makes
//! the segments spatially coherent with a few passes of a 3×3 majority filter. Each segment
//! is then classified as a whole ([`SegmentScoring`]): by its texton histogram pooled over
//! its points against the training images' whole-image histograms or the reference
//! windows, or by summing the window method's per-point class scores over it. With
//! [`RegionConfig::distinct`] the segments get pairwise different classes by an optimal
//! assignment of the point-weighted segment × class score matrix (a mosaic of the benchmark
//! holds five different textures).
//!
//! Multi-scale riu2 LBP histograms (a classical feature) can be fused in
//! ([`RegionConfig::lbp`], [`RegionConfig::lbp_weight`], [`RegionConfig::lbp_refine`]): in
//! the segment classifier, the clustering features and the boundary refinement; the
//! defaults use all three, [`RegionConfig::textons_only`] none.

use ndarray::{Array2, Array3, ArrayView2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{knn_class_scores, knn_scores, Integrals, TextonSegmenter};
use crate::error::{Result, VisionError};
use crate::texton::TextonMap;

/// The square-root texton window histograms of an image's grid points (row-major) and,
/// when a setting clusters on them, the square-root LBP ones.
type PointRoots = (Vec<f32>, Option<Vec<f32>>);

/// How [`TextonSegmenter::segment_regions`] scores a segment against the classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentScoring {
    /// The segment's pooled texton histogram against the whole-image histograms of the
    /// training images (and their mirror images with `mirror_refs`): minus the mean
    /// chi-square distance of the class's [`RegionConfig::neighbours`] nearest images.
    Images,
    /// The pooled histogram against the labelled reference windows, scored the same way.
    References,
    /// The mean over the segment's points of the window method's per-point class scores
    /// ([`TextonSegmenter::class_scores`]).
    Points,
    /// The log-probabilities of a softmax regression on square-root histograms, trained in
    /// [`TextonSegmenter::fit`] on the reference windows and the training images, applied
    /// to the pooled histogram.
    Learned,
    /// The votes of the one-vs-one RBF-kernel SVM
    /// ([`KernelSvm`](crate::classify::KernelSvm)) trained in [`TextonSegmenter::fit`] on the
    /// square-root texton and LBP histograms of the same examples as the learned scoring
    /// (needs [`RegionConfig::lbp`] and a segmenter fitted with
    /// [`TextonSegConfig::svm`](super::TextonSegConfig::svm)).
    Svm,
}

impl SegmentScoring {
    /// The name used on the command line: `images`, `references`, `points`, `learned` or
    /// `svm`.
    pub fn name(self) -> &'static str {
        match self {
            SegmentScoring::Images => "images",
            SegmentScoring::References => "references",
            SegmentScoring::Points => "points",
            SegmentScoring::Learned => "learned",
            SegmentScoring::Svm => "svm",
        }
    }

    /// Parses [`SegmentScoring::name`]'s names.
    ///
    /// # Errors
    /// [`VisionError::InvalidParameter`] for any other name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "images" => Ok(SegmentScoring::Images),
            "references" => Ok(SegmentScoring::References),
            "points" => Ok(SegmentScoring::Points),
            "learned" => Ok(SegmentScoring::Learned),
            "svm" => Ok(SegmentScoring::Svm),
            other => Err(VisionError::param(
                "SegmentScoring::parse",
                "scoring",
                other,
                "expected images, references, points, learned or svm",
            )),
        }
    }
}

/// Settings of [`TextonSegmenter::segment_regions`].
#[derive(Debug, Clone, PartialEq)]
pub struct RegionConfig {
    /// Number of k-means segments per image (the benchmark's mosaics have five regions).
    pub regions: usize,
    /// k-means restarts (k-means++ seeding each); the lowest-cost clustering is kept.
    pub restarts: usize,
    /// Most Lloyd iterations per restart.
    pub iters: usize,
    /// Weight of the point's position (row and column scaled to `[0, 1]`) next to the
    /// square-root histogram (whose squared distances lie in `[0, 2]`); 0: none.
    pub spatial_weight: f32,
    /// Passes of the 3×3 majority filter over the segment labels of the grid.
    pub smooth_iters: usize,
    /// Pool a segment's histogram (and point scores) only over its points whose
    /// neighbours within this Chebyshev radius (grid points) share the segment, away from
    /// the mixed windows at boundaries (all its points when none qualifies).
    pub interior: usize,
    /// How a segment is scored against the classes.
    pub scoring: SegmentScoring,
    /// Nearest models per class averaged by [`SegmentScoring::Images`] and
    /// [`SegmentScoring::References`].
    pub neighbours: usize,
    /// Give the segments pairwise different classes (optimal assignment).
    pub distinct: bool,
    /// Scale tolerance of [`SegmentScoring::Images`] and [`SegmentScoring::References`]:
    /// the distance to a model is the smallest over pyramid-level shifts `−s..=s` (level
    /// `l` of the segment against level `l + shift` of the model, over the levels both
    /// have, rescaled to all levels), so a texture seen at half or double the scale of a
    /// model still matches it. 0: levels are compared as they are.
    pub scale_shifts: usize,
    /// Boundary refinement: side in pixels of the smaller window (0: no refinement) whose
    /// histogram re-assigns every grid point within [`RegionConfig::refine_radius`] of
    /// another segment to the nearest (Hellinger) of the segments around it, each segment
    /// represented by the mean small-window square-root histogram of its interior points.
    pub refine_window: usize,
    /// Boundary refinement: Chebyshev radius (grid points) of the band around segment
    /// boundaries that is re-assigned, and of the neighbourhood whose segments compete.
    pub refine_radius: usize,
    /// Boundary refinement below the grid (with `refine_window > 0`): after the grid-level
    /// pass, every cell of this side in pixels (e.g. 2) within one grid step of a
    /// boundary is re-assigned the same way, by the small window centred on the cell,
    /// among the segments of its 3×3 grid neighbourhood, so that boundaries are no longer
    /// quantised to the grid. 0: off (labels follow the grid).
    pub fine_step: usize,
    /// The refinement's distance to a segment prototype: 0 is the squared Euclidean
    /// distance of the square-root histograms; a value `e > 0` divides each feature's
    /// squared difference by its pooled within-segment variance (over the segments'
    /// interior points in this image) plus `e` times the mean of those variances, a
    /// diagonal Mahalanobis distance that discounts the bins a small window counts noisily.
    pub refine_whiten: f32,
    /// Passes of the 3×3 majority filter over the cells of the refinement below the grid
    /// ([`RegionConfig::fine_step`]; 0: none): removes single-cell flips along boundaries.
    pub fine_majority: usize,
    /// Shift the windows of points near the image border inside the image (the window
    /// method clips them instead, which leaves few cells in them).
    pub inside_windows: bool,
    /// Weight of the point window's class probabilities under the learned classifier
    /// ([`SegmentScoring::Learned`]'s softmax regression) as extra clustering coordinates
    /// (0: none): a discriminative view of the histogram in which textures of different
    /// classes lie further apart.
    pub posterior_weight: f32,
    /// [`SegmentScoring::Learned`] with the fused classifier of
    /// [`TextonSegConfig::lbp`](super::TextonSegConfig::lbp): a segment's pooled square-root texton histogram
    /// concatenated with its square-root multi-scale riu2 LBP histogram, pooled over the
    /// pixels of the same points (the LBP code maps are computed once per image).
    pub lbp: bool,
    /// Weight of the point window's square-root multi-scale riu2 LBP histogram (same
    /// window as the texton histogram; like it, of unit Euclidean norm) as extra clustering
    /// coordinates (0: none).
    pub lbp_weight: f32,
    /// Weight of the small window's square-root LBP histogram next to its texton histogram
    /// in the boundary refinement (0: textons only).
    pub lbp_refine: f32,
    /// Seed of the k-means seeding.
    pub seed: u64,
}

impl Default for RegionConfig {
    /// The setting chosen on the hold-out mosaics (`docs/results.md`): five segments, 8
    /// restarts of at most 50 iterations, spatial weight 1, 2 majority passes, interior
    /// radius 1, learned scoring (1 nearest model for the nearest-neighbour scorings),
    /// classes not forced distinct, no level shifts, boundary refinement with 32-pixel
    /// windows in a radius of 1 point, border windows clipped; with LBP fusion (the second
    /// tuning round): the fused texton + LBP classifier (`lbp`, which needs a segmenter
    /// fitted with [`TextonSegConfig::lbp`](super::TextonSegConfig::lbp)), its window
    /// posteriors as clustering coordinates with weight 0.5, LBP window histograms in the
    /// clustering with weight 4 and in the refinement with weight 2; and (the third round)
    /// refinement windows of 16 pixels, followed by the refinement below the grid in
    /// 2-pixel cells; and (the fourth round, TRS) segments scored by the RBF-kernel SVM
    /// ([`SegmentScoring::Svm`]) instead of the fused softmax regression, the refinement's
    /// distance whitened (`refine_whiten` 0.1) and 3 majority passes over the cells below
    /// the grid; seed 0.
    fn default() -> Self {
        RegionConfig {
            regions: 5,
            restarts: 8,
            iters: 50,
            spatial_weight: 1.0,
            smooth_iters: 2,
            interior: 1,
            scoring: SegmentScoring::Svm,
            neighbours: 1,
            distinct: false,
            scale_shifts: 0,
            refine_window: 16,
            refine_radius: 1,
            fine_step: 2,
            refine_whiten: 0.1,
            fine_majority: 3,
            inside_windows: false,
            posterior_weight: 0.5,
            lbp: true,
            lbp_weight: 4.0,
            lbp_refine: 2.0,
            seed: 0,
        }
    }
}

impl RegionConfig {
    /// The default setting without any LBP feature (`lbp` off, LBP weights 0, the learned
    /// scoring on texton histograms instead of the SVM), without
    /// posterior coordinates and with the first round's refinement (32-pixel windows, grid
    /// only, plain distance): the first tuning round's choice, VAE textons alone.
    pub fn textons_only() -> Self {
        RegionConfig {
            refine_window: 32,
            fine_step: 0,
            refine_whiten: 0.0,
            fine_majority: 0,
            posterior_weight: 0.0,
            scoring: SegmentScoring::Learned,
            lbp: false,
            lbp_weight: 0.0,
            lbp_refine: 0.0,
            ..RegionConfig::default()
        }
    }

    /// Checks the settings for a segmenter of `num_classes` classes.
    ///
    /// # Errors
    /// [`VisionError::InvalidParameter`] for zero counts, a negative or non-finite spatial
    /// weight, `distinct` with more segments than classes, `lbp` with another scoring than
    /// [`SegmentScoring::Learned`] or [`SegmentScoring::Svm`], or the SVM scoring without
    /// `lbp`.
    pub fn validate(&self, num_classes: usize) -> Result<()> {
        const OP: &str = "RegionConfig";
        for (name, v) in [
            ("regions", self.regions),
            ("restarts", self.restarts),
            ("iters", self.iters),
            ("neighbours", self.neighbours),
        ] {
            if v == 0 {
                return Err(VisionError::param(OP, name, v, "must be at least 1"));
            }
        }
        for (name, v) in [
            ("spatial_weight", self.spatial_weight),
            ("posterior_weight", self.posterior_weight),
            ("lbp_weight", self.lbp_weight),
            ("lbp_refine", self.lbp_refine),
            ("refine_whiten", self.refine_whiten),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(VisionError::param(
                    OP,
                    name,
                    v,
                    "must be finite and non-negative",
                ));
            }
        }
        if self.lbp && !matches!(self.scoring, SegmentScoring::Learned | SegmentScoring::Svm) {
            return Err(VisionError::param(
                OP,
                "lbp",
                self.scoring.name(),
                "LBP features are used by the learned and SVM scorings only",
            ));
        }
        if self.scoring == SegmentScoring::Svm && !self.lbp {
            return Err(VisionError::param(
                OP,
                "scoring",
                "svm",
                "the SVM scores texton and LBP histograms: it needs lbp",
            ));
        }
        if self.distinct && num_classes > 20 {
            return Err(VisionError::param(
                OP,
                "distinct",
                num_classes,
                "the exact assignment handles at most 20 classes",
            ));
        }
        if self.distinct && self.regions > num_classes {
            return Err(VisionError::param(
                OP,
                "regions",
                self.regions,
                format!(
                    "distinct classes need at most as many segments as classes ({num_classes})"
                ),
            ));
        }
        Ok(())
    }
}

/// What [`TextonSegmenter::segment_regions`] found in one image.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionSegmentation {
    /// The class of every pixel.
    pub labels: Array2<u8>,
    /// The segment (0..regions) of every grid point (point `(i, j)` sits at pixel
    /// `((i + ½)·step, (j + ½)·step)`), after the majority filter.
    pub segments: Array2<usize>,
    /// Grid points per segment.
    pub sizes: Vec<usize>,
    /// `[regions, classes]` scores (higher is better) of every segment.
    pub scores: Array2<f32>,
    /// The class given to each segment (`None` for a segment left empty).
    pub classes: Vec<Option<usize>>,
}

impl TextonSegmenter {
    /// Segments a grey image by region (see the module docs).
    ///
    /// # Errors
    /// Bad settings ([`RegionConfig::validate`]), [`SegmentScoring::Images`] on a
    /// segmenter fitted without region settings (no image models), an image smaller than
    /// one grid step or with fewer grid points than segments.
    pub fn segment_regions(
        &mut self,
        image: ArrayView2<f32>,
        rc: &RegionConfig,
    ) -> Result<RegionSegmentation> {
        let mut out = self.segment_regions_multi(image, std::slice::from_ref(rc))?;
        Ok(out.pop().expect("one result per setting"))
    }

    /// [`TextonSegmenter::segment_regions`] under several settings, sharing the texton
    /// maps, window histograms and point scores of the image (for tuning).
    ///
    /// # Errors
    /// As [`TextonSegmenter::segment_regions`].
    pub fn segment_regions_multi(
        &mut self,
        image: ArrayView2<f32>,
        settings: &[RegionConfig],
    ) -> Result<Vec<RegionSegmentation>> {
        const OP: &str = "TextonSegmenter::segment_regions";
        for rc in settings {
            rc.validate(self.num_classes)?;
            if (matches!(
                rc.scoring,
                SegmentScoring::Images | SegmentScoring::Learned | SegmentScoring::Svm
            ) || rc.posterior_weight > 0.0)
                && self.image_labels.is_empty()
            {
                return Err(VisionError::Empty {
                    op: OP,
                    what: "image models (fit with region settings in TextonSegConfig::regions)"
                        .into(),
                });
            }
            self.check_lbp(rc, OP)?;
        }
        let (h, w) = image.dim();
        let s = self.cfg.step;
        let (gh, gw) = grid_of((h, w), s, OP)?;
        if let Some(rc) = settings.iter().find(|rc| rc.regions > gh * gw) {
            return Err(VisionError::param(
                OP,
                "regions",
                rc.regions,
                format!("more segments than the {} grid points", gh * gw),
            ));
        }
        let maps = self.model.texton_maps(image)?;
        let lbp_maps = settings
            .iter()
            .any(|rc| rc.lbp || rc.lbp_weight > 0.0 || rc.lbp_refine > 0.0)
            .then(|| self.lbp_features.maps(image))
            .transpose()?;
        let (k, nl) = (self.cfg.texton.textons, self.cfg.texton.levels);
        let ig = Integrals::new(&maps, k, nl);
        let point_scores = if settings
            .iter()
            .any(|rc| rc.scoring == SegmentScoring::Points)
        {
            Some(self.point_scores(&ig, gh, gw))
        } else {
            None
        };
        let side = self.cfg.window as f32;
        let d = nl * k;
        // Square-root window histograms of the points, windows clipped at the border
        // (`false`) or shifted inside the image (`true`, [`RegionConfig::inside_windows`]).
        let roots_for = |ig: &Integrals, d: usize, shift: bool| {
            let inside = |c: f32, n: usize| {
                if !shift {
                    c
                } else if side >= n as f32 {
                    n as f32 / 2.0
                } else {
                    c.clamp(side / 2.0, n as f32 - side / 2.0)
                }
            };
            let mut roots = vec![0f32; gh * gw * d];
            for (p, row) in roots.chunks_mut(d).enumerate() {
                let (i, j) = (p / gw, p % gw);
                let hist = ig.window(
                    inside((i as f32 + 0.5) * s as f32, h),
                    inside((j as f32 + 0.5) * s as f32, w),
                    side,
                );
                for (o, v) in row.iter_mut().zip(hist) {
                    *o = v.sqrt();
                }
            }
            roots
        };
        // The same for the LBP code maps when a setting clusters on them.
        let lbp_ig = match &lbp_maps {
            Some(lm)
                if settings
                    .iter()
                    .any(|rc| rc.lbp_weight > 0.0 || (rc.lbp && rc.posterior_weight > 0.0)) =>
            {
                let (lk, ln) = (self.lbp_features.bins(), self.lbp_features.levels());
                Some((Integrals::new(lm, lk, ln), lk * ln))
            }
            _ => None,
        };
        let roots: Vec<Option<PointRoots>> = [false, true]
            .into_iter()
            .map(|shift| {
                settings
                    .iter()
                    .any(|rc| rc.inside_windows == shift)
                    .then(|| {
                        let l = lbp_ig.as_ref().map(|(lig, dl)| roots_for(lig, *dl, shift));
                        (roots_for(&ig, d, shift), l)
                    })
            })
            .collect();
        settings
            .iter()
            .map(|rc| {
                let (r, l) = roots[usize::from(rc.inside_windows)]
                    .as_ref()
                    .expect("computed for every flag in use");
                let maps = (maps.as_slice(), lbp_maps.as_deref());
                let r = (r.as_slice(), l.as_deref());
                self.regions_of(r, maps, &ig, point_scores.as_ref(), (h, w), rc)
            })
            .collect()
    }

    /// Classifies *given* segments of a grey image as
    /// [`TextonSegmenter::segment_regions`] classifies its k-means segments (scoring,
    /// distinct classes, refinement as `rc` says; `rc.regions`, the clustering and the
    /// majority filter are not used): `segments` holds the segment (`0..nseg`) of every
    /// grid point. With the true regions this measures the classification alone.
    ///
    /// # Errors
    /// As [`TextonSegmenter::segment_regions`]; a segment grid of the wrong shape or with
    /// a segment `≥ nseg`; `distinct` with more non-empty segments than classes.
    pub fn segment_given_regions(
        &mut self,
        image: ArrayView2<f32>,
        segments: Array2<usize>,
        nseg: usize,
        rc: &RegionConfig,
    ) -> Result<RegionSegmentation> {
        const OP: &str = "TextonSegmenter::segment_given_regions";
        let rc_check = RegionConfig {
            regions: 1,
            ..rc.clone()
        };
        rc_check.validate(self.num_classes)?;
        let (h, w) = image.dim();
        let st = self.cfg.step;
        let (gh, gw) = grid_of((h, w), st, OP)?;
        if segments.dim() != (gh, gw) {
            return Err(VisionError::shape(OP, &[gh, gw], segments.shape()));
        }
        if let Some(&bad) = segments.iter().find(|&&g| g >= nseg) {
            return Err(VisionError::param(OP, "segments", bad, "segment ≥ nseg"));
        }
        let mut used = vec![false; nseg];
        segments.iter().for_each(|&g| used[g] = true);
        let n_used = used.iter().filter(|&&u| u).count();
        if rc.distinct && n_used > self.num_classes {
            return Err(VisionError::param(
                OP,
                "segments",
                n_used,
                "distinct classes need at most as many segments as classes",
            ));
        }
        if matches!(
            rc.scoring,
            SegmentScoring::Images | SegmentScoring::Learned | SegmentScoring::Svm
        ) && self.image_labels.is_empty()
        {
            return Err(VisionError::Empty {
                op: OP,
                what: "image models (fit with region settings in TextonSegConfig::regions)".into(),
            });
        }
        self.check_lbp(rc, OP)?;
        let maps = self.model.texton_maps(image)?;
        let lbp_maps = (rc.lbp || rc.lbp_refine > 0.0)
            .then(|| self.lbp_features.maps(image))
            .transpose()?;
        let (k, nl) = (self.cfg.texton.textons, self.cfg.texton.levels);
        let ig = Integrals::new(&maps, k, nl);
        let ps = (rc.scoring == SegmentScoring::Points).then(|| self.point_scores(&ig, gh, gw));
        let maps = (maps.as_slice(), lbp_maps.as_deref());
        self.label_segments(segments, nseg, maps, &ig, ps.as_ref(), (h, w), rc)
    }

    /// An error naming `op` when `rc` asks for the LBP classifier or the SVM and it was not
    /// fitted.
    fn check_lbp(&self, rc: &RegionConfig, op: &'static str) -> Result<()> {
        if rc.lbp && self.lbp_classifier.is_none() {
            return Err(VisionError::Empty {
                op,
                what: "LBP classifier (fit with TextonSegConfig::lbp and region settings)".into(),
            });
        }
        if rc.scoring == SegmentScoring::Svm && self.svm.is_none() {
            return Err(VisionError::Empty {
                op,
                what: "segment SVM (fit with TextonSegConfig::svm, lbp and region settings)".into(),
            });
        }
        Ok(())
    }

    /// The learned classifier (fitted with region settings only), or with `lbp` the one on
    /// texton and LBP histograms.
    fn locked_classifier(
        &self,
        lbp: bool,
    ) -> Result<std::sync::MutexGuard<'_, crate::classify::NeuralClassifier>> {
        const OP: &str = "TextonSegmenter::segment_regions";
        if lbp {
            &self.lbp_classifier
        } else {
            &self.classifier
        }
        .as_ref()
        .ok_or_else(|| VisionError::Empty {
            op: OP,
            what: "learned classifier (fit with region settings in TextonSegConfig::regions)"
                .into(),
        })?
        .lock()
        .map_err(|_| VisionError::BadValue {
            op: OP,
            what: "the classifier's lock is poisoned".into(),
        })
    }

    /// One setting of [`TextonSegmenter::segment_regions_multi`] on precomputed data
    /// (`maps`: the texton maps and, when a setting uses them, the LBP code maps).
    fn regions_of(
        &self,
        (roots, lbp_roots): (&[f32], Option<&[f32]>),
        maps: (&[TextonMap], Option<&[TextonMap]>),
        ig: &Integrals,
        point_scores: Option<&Array3<f32>>,
        (h, w): (usize, usize),
        rc: &RegionConfig,
    ) -> Result<RegionSegmentation> {
        let s = self.cfg.step;
        let (gh, gw) = (h / s, w / s);
        let (k, nl) = (self.cfg.texton.textons, self.cfg.texton.levels);
        let d = nl * k;
        let n = gh * gw;
        // Class probabilities of every point's window under the learned classifier.
        let post = if rc.posterior_weight > 0.0 {
            let x = ArrayView2::from_shape((n, d), roots).expect("one row per point");
            // With `lbp`, the fused classifier on the texton and LBP window histograms.
            let logits = match lbp_roots.filter(|_| rc.lbp) {
                Some(l) => {
                    let xl =
                        ArrayView2::from_shape((n, l.len() / n), l).expect("one row per point");
                    let x = ndarray::concatenate(ndarray::Axis(1), &[x, xl])
                        .expect("one row per point");
                    self.locked_classifier(true)?.logits(x.view())?
                }
                None => self.locked_classifier(false)?.logits(x)?,
            };
            Some(logits.map_axis(ndarray::Axis(1), |r| {
                let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = r.iter().map(|&v| (v - m).exp()).collect();
                let z: f32 = e.iter().sum();
                e.into_iter().map(|v| v / z).collect::<Vec<f32>>()
            }))
        } else {
            None
        };
        let spatial = if rc.spatial_weight > 0.0 { 2 } else { 0 };
        let nc = self.num_classes;
        // Square-root LBP window histograms, weighted, after the texton ones.
        let lbp_roots = lbp_roots.filter(|_| rc.lbp_weight > 0.0);
        let dl = lbp_roots.map_or(0, |l| l.len() / n);
        let dd = d + dl + spatial + post.as_ref().map_or(0, |_| nc);
        let mut feats = vec![0f32; n * dd];
        for (p, row) in feats.chunks_mut(dd).enumerate() {
            row[..d].copy_from_slice(&roots[p * d..(p + 1) * d]);
            if let Some(l) = lbp_roots {
                for (o, &v) in row[d..d + dl].iter_mut().zip(&l[p * dl..(p + 1) * dl]) {
                    *o = rc.lbp_weight * v;
                }
            }
            let row = &mut row[dl..];
            if spatial > 0 {
                row[d] = rc.spatial_weight * ((p / gw) as f32 + 0.5) / gh as f32;
                row[d + 1] = rc.spatial_weight * ((p % gw) as f32 + 0.5) / gw as f32;
            }
            if let Some(post) = &post {
                for (o, &v) in row[d + spatial..].iter_mut().zip(&post[p]) {
                    *o = rc.posterior_weight * v;
                }
            }
        }
        let dim = feats.len() / (gh * gw);
        let mut rng = StdRng::seed_from_u64(rc.seed);
        let assign = kmeans(&feats, dim, rc.regions, rc.iters, rc.restarts, &mut rng)?;
        let mut segments =
            Array2::from_shape_vec((gh, gw), assign).expect("one segment per grid point");
        majority_filter(&mut segments, rc.regions, rc.smooth_iters);
        self.label_segments(segments, rc.regions, maps, ig, point_scores, (h, w), rc)
    }

    /// Scores and classifies the segments of a grid segmentation (`nseg` segments), refines
    /// their boundaries and labels the pixels.
    #[allow(clippy::too_many_arguments)]
    fn label_segments(
        &self,
        mut segments: Array2<usize>,
        nseg: usize,
        (maps, lbp_maps): (&[TextonMap], Option<&[TextonMap]>),
        ig: &Integrals,
        point_scores: Option<&Array3<f32>>,
        (h, w): (usize, usize),
        rc: &RegionConfig,
    ) -> Result<RegionSegmentation> {
        let s = self.cfg.step;
        let (gh, gw) = (h / s, w / s);
        let (k, nl) = (self.cfg.texton.textons, self.cfg.texton.levels);
        let mask = interior_mask(&segments, rc.interior);
        let mut sizes = vec![0usize; nseg];
        let mut inner = vec![0usize; nseg];
        for (&g, &m) in segments.iter().zip(mask.iter()) {
            sizes[g] += 1;
            inner[g] += usize::from(m);
        }
        // A segment with no interior point pools over all of its points.
        let use_point = Array2::from_shape_fn((gh, gw), |(i, j)| {
            let g = segments[[i, j]];
            mask[[i, j]] || inner[g] == 0
        });
        let nc = self.num_classes;
        let mut scores = Array2::from_elem((nseg, nc), f32::NEG_INFINITY);
        match rc.scoring {
            SegmentScoring::Points => {
                let ps = point_scores.expect("computed when a setting scores points");
                let mut sum = Array2::<f64>::zeros((nseg, nc));
                let mut n = vec![0usize; nseg];
                for ((i, j), &g) in segments.indexed_iter() {
                    if !use_point[[i, j]] {
                        continue;
                    }
                    n[g] += 1;
                    for c in 0..nc {
                        sum[[g, c]] += ps[[c, i, j]] as f64;
                    }
                }
                for g in 0..nseg {
                    if n[g] > 0 {
                        for c in 0..nc {
                            scores[[g, c]] = (sum[[g, c]] / n[g] as f64) as f32;
                        }
                    }
                }
            }
            SegmentScoring::Learned | SegmentScoring::Svm => {
                let pooled = pooled_histograms(maps, &segments, &use_point, s, nseg, k, nl);
                let mut x = Array2::from_shape_fn((nseg, nl * k), |(g, t)| pooled[g][t].sqrt());
                if rc.lbp {
                    let lm = lbp_maps.expect("computed when a setting uses LBP");
                    let (lk, ln) = (self.lbp_features.bins(), self.lbp_features.levels());
                    let pl = pooled_histograms(lm, &segments, &use_point, s, nseg, lk, ln);
                    let xl = Array2::from_shape_fn((nseg, ln * lk), |(g, t)| pl[g][t].sqrt());
                    x = ndarray::concatenate(ndarray::Axis(1), &[x.view(), xl.view()])
                        .expect("one row per segment");
                }
                if rc.scoring == SegmentScoring::Svm {
                    let svm = self.svm.as_ref().expect("checked by check_lbp");
                    let votes = svm.scores(x.view())?;
                    for g in (0..nseg).filter(|&g| sizes[g] > 0) {
                        scores.row_mut(g).assign(&votes.row(g));
                    }
                } else {
                    let logits = self.locked_classifier(rc.lbp)?.logits(x.view())?;
                    for g in (0..nseg).filter(|&g| sizes[g] > 0) {
                        let row = logits.row(g);
                        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let lse = m + row.iter().map(|&v| (v - m).exp()).sum::<f32>().ln();
                        for c in 0..nc {
                            scores[[g, c]] = row[c] - lse;
                        }
                    }
                }
            }
            SegmentScoring::Images | SegmentScoring::References => {
                let (models, labels) = if rc.scoring == SegmentScoring::Images {
                    (&self.image_models, &self.image_labels)
                } else {
                    (&self.refs, &self.ref_labels)
                };
                let pooled = pooled_histograms(maps, &segments, &use_point, s, nseg, k, nl);
                for (g, hist) in pooled.iter().enumerate() {
                    if sizes[g] > 0 {
                        let sc = if rc.scale_shifts == 0 {
                            knn_scores(hist, models, labels, nc, rc.neighbours)
                        } else {
                            shifted_knn_scores(
                                hist,
                                models,
                                labels,
                                (nc, rc.neighbours),
                                (nl, k),
                                rc.scale_shifts,
                            )
                        };
                        for (c, v) in sc.into_iter().enumerate() {
                            scores[[g, c]] = v;
                        }
                    }
                }
            }
        }
        let classes = if rc.distinct {
            assign_distinct(&scores, &sizes)
        } else {
            (0..nseg)
                .map(|g| {
                    (sizes[g] > 0).then(|| {
                        let row = scores.row(g);
                        super::argmax(row.iter().copied(), &vec![true; nc])
                    })
                })
                .collect()
        };
        let mut fine = None;
        if rc.refine_window > 0 {
            // The LBP window histograms join the texton ones with weight `lbp_refine`.
            let lig = match lbp_maps {
                Some(lm) if rc.lbp_refine > 0.0 => {
                    let lf = &self.lbp_features;
                    Some(Integrals::new(lm, lf.bins(), lf.levels()))
                }
                _ => None,
            };
            let igs = (ig, lig.as_ref().map(|l| (l, rc.lbp_refine)));
            let protos = refine_boundaries(igs, &mut segments, &mask, s, (h, w), nseg, rc);
            if rc.fine_step > 0 {
                let mut cells = refine_fine(igs, &segments, &protos, s, (h, w), rc);
                majority_filter(&mut cells, nseg, rc.fine_majority);
                fine = Some(cells);
            }
        }
        // Pixels take the class of their cell: a fine cell when refined below the grid,
        // else a grid point.
        let (cells, c) = match &fine {
            Some(f) => (f, rc.fine_step),
            None => (&segments, s),
        };
        let (ch, cw) = cells.dim();
        let labels = Array2::from_shape_fn((h, w), |(y, x)| {
            let g = cells[[(y / c).min(ch - 1), (x / c).min(cw - 1)]];
            classes[g].unwrap_or(0) as u8
        });
        Ok(RegionSegmentation {
            labels,
            segments,
            sizes,
            scores,
            classes,
        })
    }
}

/// The square-root histogram of the small refinement window centred at pixel position
/// `(cy, cx)` (shifted inside the image), texton part then weighted LBP part.
fn refine_feature(
    (ig, lbp): (&Integrals, Option<(&Integrals, f32)>),
    (cy, cx): (f32, f32),
    (h, w): (usize, usize),
    side: f32,
) -> Vec<f32> {
    let inside = |c: f32, n: usize| {
        if side >= n as f32 {
            n as f32 / 2.0
        } else {
            c.clamp(side / 2.0, n as f32 - side / 2.0)
        }
    };
    let (cy, cx) = (inside(cy, h), inside(cx, w));
    let mut q: Vec<f32> = ig.window(cy, cx, side).into_iter().map(f32::sqrt).collect();
    if let Some((lig, wt)) = lbp {
        q.extend(lig.window(cy, cx, side).into_iter().map(|v| wt * v.sqrt()));
    }
    q
}

/// The segment (among those with `cand` set and a prototype) whose prototype is nearest to
/// `q` in weighted squared Euclidean distance ([`Prototypes::weight`]), or `keep` when none
/// is.
fn nearest_prototype(q: &[f32], protos: &Prototypes, cand: &[bool], keep: usize) -> usize {
    let mut best = (keep, f32::INFINITY);
    for g in (0..protos.count.len()).filter(|&g| cand[g] && protos.count[g] > 0) {
        let dist: f32 = q
            .iter()
            .zip(&protos.mean[g])
            .zip(&protos.weight)
            .map(|((a, b), w)| w * (a - b) * (a - b))
            .sum();
        if dist < best.1 {
            best = (g, dist);
        }
    }
    best.0
}

/// The segments within Chebyshev radius `r` of grid point `(i, j)` (a mask over `0..nseg`),
/// or `None` when there is only one: the point is not near a boundary.
fn competing_segments(
    segments: &Array2<usize>,
    (i, j): (usize, usize),
    r: usize,
    nseg: usize,
) -> Option<Vec<bool>> {
    let (gh, gw) = segments.dim();
    let mut cand = vec![false; nseg];
    for ii in i.saturating_sub(r)..(i + r + 1).min(gh) {
        for jj in j.saturating_sub(r)..(j + r + 1).min(gw) {
            cand[segments[[ii, jj]]] = true;
        }
    }
    (cand.iter().filter(|&&c| c).count() >= 2).then_some(cand)
}

/// Per segment: the mean small-window feature of its points ([`prototypes`]) and how many
/// points it was taken over (0: no prototype).
struct Prototypes {
    mean: Vec<Vec<f32>>,
    count: Vec<usize>,
    /// Per-feature weights of the distance (all 1 without whitening).
    weight: Vec<f32>,
}

/// Per segment, the mean of `feats` (one row per grid point) over its interior points, or
/// over all of its points when it has no interior point; with `whiten > 0` also the
/// distance weights of [`RegionConfig::refine_whiten`].
fn prototypes(
    feats: &[Vec<f32>],
    segments: &Array2<usize>,
    interior: &Array2<bool>,
    nseg: usize,
    whiten: f32,
) -> Prototypes {
    let gw = segments.ncols();
    let d = feats.first().map_or(0, Vec::len);
    let mut sums = [vec![vec![0f32; d]; nseg], vec![vec![0f32; d]; nseg]];
    let mut ns = [vec![0usize; nseg], vec![0usize; nseg]];
    for (p, row) in feats.iter().enumerate() {
        let (i, j) = (p / gw, p % gw);
        let g = segments[[i, j]];
        for (which, used) in [interior[[i, j]], true].into_iter().enumerate() {
            if used {
                sums[which][g]
                    .iter_mut()
                    .zip(row)
                    .for_each(|(a, &b)| *a += b);
                ns[which][g] += 1;
            }
        }
    }
    let mut count = vec![0usize; nseg];
    let mut proto = vec![vec![0f32; d]; nseg];
    for g in 0..nseg {
        let which = if ns[0][g] > 0 { 0 } else { 1 };
        count[g] = ns[which][g];
        if count[g] > 0 {
            for (o, &v) in proto[g].iter_mut().zip(&sums[which][g]) {
                *o = v / count[g] as f32;
            }
        }
    }
    let mut weight = vec![1f32; d];
    if whiten > 0.0 {
        // Pooled within-segment variance of each feature over the interior points.
        let mut var = vec![0f64; d];
        let mut n = 0usize;
        for (p, row) in feats.iter().enumerate() {
            let (i, j) = (p / gw, p % gw);
            let g = segments[[i, j]];
            if interior[[i, j]] {
                n += 1;
                for ((v, &a), &m) in var.iter_mut().zip(row).zip(&proto[g]) {
                    *v += f64::from(a - m).powi(2);
                }
            }
        }
        if n > 0 {
            let mean = var.iter().sum::<f64>() / (n * d.max(1)) as f64;
            let floor = f64::from(whiten) * mean;
            for (w, v) in weight.iter_mut().zip(&var) {
                let v = v / n as f64 + floor;
                if v > 0.0 {
                    *w = (1.0 / v) as f32;
                }
            }
        }
    }
    Prototypes {
        mean: proto,
        count,
        weight,
    }
}

/// The boundary refinement below the grid ([`RegionConfig::fine_step`]): the segment of
/// every `fine_step`-pixel cell, re-assigned by [`nearest_prototype`] where the cell's
/// 3×3 grid neighbourhood holds more than one segment.
fn refine_fine(
    igs: (&Integrals, Option<(&Integrals, f32)>),
    segments: &Array2<usize>,
    protos: &Prototypes,
    step: usize,
    (h, w): (usize, usize),
    rc: &RegionConfig,
) -> Array2<usize> {
    let f = rc.fine_step;
    let (gh, gw) = segments.dim();
    let (fh, fw) = (h.div_ceil(f), w.div_ceil(f));
    let nseg = protos.count.len();
    let side = rc.refine_window as f32;
    let cells: Vec<usize> = (0..fh * fw)
        .map(|p| {
            let (fi, fj) = (p / fw, p % fw);
            let (cy, cx) = ((fi as f32 + 0.5) * f as f32, (fj as f32 + 0.5) * f as f32);
            let (i, j) = (
                ((cy / step as f32) as usize).min(gh - 1),
                ((cx / step as f32) as usize).min(gw - 1),
            );
            let own = segments[[i, j]];
            match competing_segments(segments, (i, j), 1, nseg) {
                Some(cand) => {
                    let q = refine_feature(igs, (cy, cx), (h, w), side);
                    nearest_prototype(&q, protos, &cand, own)
                }
                None => own,
            }
        })
        .collect();
    Array2::from_shape_vec((fh, fw), cells).expect("fh·fw cells")
}

/// The grid-level pass of the boundary refinement (in place); returns the segments'
/// prototypes (taken before the pass) for [`refine_fine`].
fn refine_boundaries(
    igs: (&Integrals, Option<(&Integrals, f32)>),
    segments: &mut Array2<usize>,
    interior: &Array2<bool>,
    step: usize,
    (h, w): (usize, usize),
    nseg: usize,
    rc: &RegionConfig,
) -> Prototypes {
    let (gh, gw) = segments.dim();
    let side = rc.refine_window as f32;
    let small: Vec<Vec<f32>> = (0..gh * gw)
        .map(|p| {
            let (i, j) = (p / gw, p % gw);
            let c = (
                (i as f32 + 0.5) * step as f32,
                (j as f32 + 0.5) * step as f32,
            );
            refine_feature(igs, c, (h, w), side)
        })
        .collect();
    let protos = prototypes(&small, segments, interior, nseg, rc.refine_whiten);
    let r = rc.refine_radius;
    let old = segments.clone();
    for i in 0..gh {
        for j in 0..gw {
            if let Some(cand) = competing_segments(&old, (i, j), r, nseg) {
                segments[[i, j]] =
                    nearest_prototype(&small[i * gw + j], &protos, &cand, old[[i, j]]);
            }
        }
    }
    protos
}

/// The point grid of an `(h, w)` image at step `s`, or an error naming `op` when the
/// image is smaller than one step.
fn grid_of((h, w): (usize, usize), s: usize, op: &'static str) -> Result<(usize, usize)> {
    if h < s || w < s {
        return Err(VisionError::Empty {
            op,
            what: format!("image {:?} is smaller than one grid step {s}", (h, w)),
        });
    }
    Ok((h / s, w / s))
}

/// [`knn_scores`] with the distance to a model taken as the smallest over level shifts
/// `−shifts..=shifts` (see [`RegionConfig::scale_shifts`]).
fn shifted_knn_scores(
    q: &[f32],
    models: &Array2<f32>,
    labels: &[usize],
    (nc, k): (usize, usize),
    (nl, kt): (usize, usize),
    shifts: usize,
) -> Vec<f32> {
    let s = shifts.min(nl.saturating_sub(1)) as isize;
    let distance = |m: &[f32]| {
        let mut d = f32::INFINITY;
        for sh in -s..=s {
            let (mut sum, mut used) = (0f32, 0usize);
            for l in 0..nl as isize {
                let lm = l + sh;
                if lm < 0 || lm >= nl as isize {
                    continue;
                }
                let (a, b) = (l as usize * kt, lm as usize * kt);
                sum += super::chi2(&q[a..a + kt], &m[b..b + kt]);
                used += 1;
            }
            if used > 0 {
                d = d.min(sum * nl as f32 / used as f32);
            }
        }
        d
    };
    knn_class_scores(
        models
            .outer_iter()
            .zip(labels)
            .map(|(r, &c)| (c, distance(r.as_slice().expect("contiguous")))),
        nc,
        k,
    )
}

/// Seeded k-means on the rows of `x` (`dim` columns): k-means++ seeding, at most `iters`
/// Lloyd iterations, `restarts` runs; the assignment of the run with the lowest sum of
/// squared distances. Empty clusters are re-seeded at the point farthest from its centre.
fn kmeans(
    x: &[f32],
    dim: usize,
    k: usize,
    iters: usize,
    restarts: usize,
    rng: &mut StdRng,
) -> Result<Vec<usize>> {
    let n = x.len() / dim.max(1);
    if k == 0 || n < k {
        return Err(VisionError::param(
            "kmeans",
            "k",
            k,
            format!("needs between 1 and the {n} points"),
        ));
    }
    let row = |i: usize| &x[i * dim..(i + 1) * dim];
    let sq =
        |a: &[f32], b: &[f32]| -> f32 { a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum() };
    let mut best: Option<(f64, Vec<usize>)> = None;
    for _ in 0..restarts {
        // k-means++ seeding.
        let mut centres = vec![0f32; k * dim];
        let first = rng.random_range(0..n);
        centres[..dim].copy_from_slice(row(first));
        let mut dmin: Vec<f32> = (0..n).map(|i| sq(row(i), row(first))).collect();
        for c in 1..k {
            let total: f64 = dmin.iter().map(|&v| v as f64).sum();
            let pick = if total > 0.0 {
                let mut u = rng.random_range(0.0..total);
                let mut pick = n - 1;
                for (i, &v) in dmin.iter().enumerate() {
                    if u < v as f64 {
                        pick = i;
                        break;
                    }
                    u -= v as f64;
                }
                pick
            } else {
                rng.random_range(0..n)
            };
            centres[c * dim..(c + 1) * dim].copy_from_slice(row(pick));
            for (i, dm) in dmin.iter_mut().enumerate() {
                *dm = dm.min(sq(row(i), row(pick)));
            }
        }
        let mut assign = vec![usize::MAX; n];
        let mut dist = vec![0f32; n];
        for _ in 0..iters {
            let mut changed = false;
            for i in 0..n {
                let (mut bc, mut bd) = (0, f32::INFINITY);
                for c in 0..k {
                    let dd = sq(row(i), &centres[c * dim..(c + 1) * dim]);
                    if dd < bd {
                        (bc, bd) = (c, dd);
                    }
                }
                changed |= assign[i] != bc;
                assign[i] = bc;
                dist[i] = bd;
            }
            if !changed {
                break;
            }
            let mut sum = vec![0f64; k * dim];
            let mut count = vec![0usize; k];
            for (i, &c) in assign.iter().enumerate() {
                count[c] += 1;
                for (s, &v) in sum[c * dim..(c + 1) * dim].iter_mut().zip(row(i)) {
                    *s += v as f64;
                }
            }
            for c in 0..k {
                if count[c] == 0 {
                    // Re-seed at the point farthest from its centre.
                    let far = (0..n)
                        .max_by(|&a, &b| dist[a].total_cmp(&dist[b]))
                        .expect("n ≥ k ≥ 1");
                    centres[c * dim..(c + 1) * dim].copy_from_slice(row(far));
                    dist[far] = 0.0;
                } else {
                    for (o, &s) in centres[c * dim..(c + 1) * dim]
                        .iter_mut()
                        .zip(&sum[c * dim..(c + 1) * dim])
                    {
                        *o = (s / count[c] as f64) as f32;
                    }
                }
            }
        }
        // Final assignment and cost under the last centres.
        let mut cost = 0f64;
        for (i, a) in assign.iter_mut().enumerate() {
            let (mut bc, mut bd) = (0, f32::INFINITY);
            for c in 0..k {
                let dd = sq(row(i), &centres[c * dim..(c + 1) * dim]);
                if dd < bd {
                    (bc, bd) = (c, dd);
                }
            }
            *a = bc;
            cost += bd as f64;
        }
        if best.as_ref().is_none_or(|b| cost < b.0) {
            best = Some((cost, assign));
        }
    }
    Ok(best.expect("restarts ≥ 1").1)
}

/// `iters` synchronous passes of a 3×3 majority filter over the labels `0..k` of a grid:
/// a point takes the most frequent label of its neighbourhood (itself included), keeping
/// its own on a tie.
fn majority_filter(labels: &mut Array2<usize>, k: usize, iters: usize) {
    let (gh, gw) = labels.dim();
    for _ in 0..iters {
        let prev = labels.clone();
        let mut count = vec![0usize; k];
        for i in 0..gh {
            for j in 0..gw {
                count.iter_mut().for_each(|c| *c = 0);
                for ii in i.saturating_sub(1)..(i + 2).min(gh) {
                    for jj in j.saturating_sub(1)..(j + 2).min(gw) {
                        count[prev[[ii, jj]]] += 1;
                    }
                }
                let own = prev[[i, j]];
                let mut best = own;
                for (c, &n) in count.iter().enumerate() {
                    if n > count[best] {
                        best = c;
                    }
                }
                labels[[i, j]] = best;
            }
        }
        if *labels == prev {
            break;
        }
    }
}

/// Whether every grid point within Chebyshev radius `r` (clipped to the grid) shares the
/// point's label.
fn interior_mask(labels: &Array2<usize>, r: usize) -> Array2<bool> {
    let (gh, gw) = labels.dim();
    Array2::from_shape_fn((gh, gw), |(i, j)| {
        let own = labels[[i, j]];
        (i.saturating_sub(r)..(i + r + 1).min(gh))
            .all(|ii| (j.saturating_sub(r)..(j + r + 1).min(gw)).all(|jj| labels[[ii, jj]] == own))
    })
}

/// The texton histogram of each segment pooled over the cells of every level whose centre
/// falls in one of its used grid points (normalised per level, the levels present sharing
/// a total of 1, as [`TextonModel::describe`](crate::texton::TextonModel::describe)).
fn pooled_histograms(
    maps: &[TextonMap],
    segments: &Array2<usize>,
    use_point: &Array2<bool>,
    step: usize,
    nseg: usize,
    k: usize,
    nl: usize,
) -> Vec<Vec<f32>> {
    let (gh, gw) = segments.dim();
    let mut counts = vec![vec![0f32; nl * k]; nseg];
    for m in maps.iter().filter(|m| m.level < nl) {
        let cell = |a: usize| {
            let c = m.offset + a as f32 * m.step;
            (c / step as f32).floor().max(0.0) as usize
        };
        for ((a, b), &t) in m.ids.indexed_iter() {
            let (i, j) = (cell(a).min(gh - 1), cell(b).min(gw - 1));
            if use_point[[i, j]] {
                counts[segments[[i, j]]][m.level * k + t.min(k - 1)] += 1.0;
            }
        }
    }
    for hist in counts.iter_mut() {
        let totals: Vec<f32> = hist.chunks(k).map(|l| l.iter().sum()).collect();
        let present = totals.iter().filter(|&&t| t > 0.0).count();
        for (l, chunk) in hist.chunks_mut(k).enumerate() {
            if totals[l] > 0.0 {
                let f = 1.0 / (totals[l] * present as f32);
                chunk.iter_mut().for_each(|v| *v *= f);
            }
        }
    }
    counts
}

/// Pairwise different classes for the non-empty segments maximising the sum over segments
/// of `size × score` (exact dynamic programme over the sets of used classes; requires at
/// most as many non-empty segments as classes, and at most 20 classes).
fn assign_distinct(scores: &Array2<f32>, sizes: &[usize]) -> Vec<Option<usize>> {
    let (nseg, nc) = scores.dim();
    let used: Vec<usize> = (0..nseg).filter(|&g| sizes[g] > 0).collect();
    let finite = |v: f32| if v.is_finite() { v as f64 } else { -1e30 };
    // best[m] = best total for the first popcount(m) used segments taking class set m.
    let full = 1usize << nc;
    let mut best = vec![f64::NEG_INFINITY; full];
    let mut from = vec![usize::MAX; full];
    best[0] = 0.0;
    for m in 0..full {
        let t = m.count_ones() as usize;
        if best[m] == f64::NEG_INFINITY || t >= used.len() {
            continue;
        }
        let g = used[t];
        for c in 0..nc {
            if m & (1 << c) != 0 {
                continue;
            }
            let v = best[m] + sizes[g] as f64 * finite(scores[[g, c]]);
            let m2 = m | (1 << c);
            if v > best[m2] {
                best[m2] = v;
                from[m2] = c;
            }
        }
    }
    let mut end = None;
    for m in 0..full {
        if m.count_ones() as usize == used.len()
            && best[m] > f64::NEG_INFINITY
            && end.is_none_or(|e: usize| best[m] > best[e])
        {
            end = Some(m);
        }
    }
    let mut classes = vec![None; nseg];
    let mut m = end.unwrap_or(0);
    for &g in used.iter().rev() {
        if m == 0 {
            break;
        }
        let c = from[m];
        classes[g] = Some(c);
        m &= !(1 << c);
    }
    classes
}

#[cfg(test)]
mod tests {
    use super::super::{lbp_bins, lbp_code_maps, LbpKind, TextonSegConfig, TextureBank};
    use super::*;
    use crate::classical::LbpConfig;
    use crate::texton::TextonConfig;
    use ndarray::Axis;

    /// Three synthetic textures: vertical stripes, horizontal stripes (random phase, a
    /// little noise) and white noise.
    fn texture(h: usize, w: usize, class: usize, rng: &mut StdRng) -> Array2<f32> {
        let phase = rng.random_range(0.0..std::f32::consts::TAU);
        Array2::from_shape_fn((h, w), |(y, x)| {
            let n = rng.random_range(-1.0f32..1.0);
            match class {
                0 => (x as f32 * 1.3 + phase).sin() + 0.1 * n,
                1 => (y as f32 * 1.3 + phase).sin() + 0.1 * n,
                _ => n,
            }
        })
    }

    fn tiny_config(regions: Option<RegionConfig>) -> TextonSegConfig {
        TextonSegConfig {
            texton: TextonConfig {
                patch: 4,
                stride: 2,
                levels: 2,
                textons: 12,
                train_patches: 2000,
                latent: 4,
                hidden: vec![16],
                epochs: 3,
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
            regions,
            classifier_hidden: 0,
            classifier_crops: 2,
            lbp: true,
            lbp_scales: LbpConfig::default(),
            lbp_kind: LbpKind::Sign,
            svm: Some(super::super::SegmentSvmConfig::default()),
            encoder: crate::texton::EncoderKind::Vae,
        }
    }

    fn bank(classes: usize, rng: &mut StdRng) -> TextureBank {
        let images = (0..3 * classes)
            .map(|i| texture(24, 24, i % classes, rng))
            .collect();
        TextureBank {
            images,
            labels: (0..3 * classes).map(|i| i % classes).collect(),
            num_classes: classes,
        }
    }

    /// A 48×48 image: texture 0 on the left half, 1 top right, 2 bottom right; and its
    /// truth.
    fn layout(rng: &mut StdRng) -> (Array2<f32>, Array2<u8>) {
        let truth = Array2::from_shape_fn((48, 48), |(y, x)| match (x >= 24, y >= 24) {
            (false, _) => 0u8,
            (true, false) => 1,
            (true, true) => 2,
        });
        let tex: Vec<_> = (0..3).map(|c| texture(48, 48, c, rng)).collect();
        let img = Array2::from_shape_fn((48, 48), |(y, x)| tex[truth[[y, x]] as usize][[y, x]]);
        (img, truth)
    }

    fn accuracy(pred: &Array2<u8>, truth: &Array2<u8>) -> f32 {
        let ok = pred.iter().zip(truth).filter(|(p, t)| p == t).count();
        ok as f32 / truth.len() as f32
    }

    /// Clustering and whole-segment classification recover a three-texture layout, with
    /// every scoring, with and without distinct classes.
    #[test]
    fn refinement_below_the_grid_moves_boundaries_off_the_grid() {
        let mut rng = StdRng::seed_from_u64(5);
        let bank = bank(3, &mut rng);
        // Boundaries at x = 42 and y = 54: not on the 4-pixel grid.
        let truth = Array2::from_shape_fn((96, 96), |(y, x)| match (x >= 42, y >= 54) {
            (false, _) => 0u8,
            (true, false) => 1,
            (true, true) => 2,
        });
        let tex: Vec<_> = (0..3).map(|c| texture(96, 96, c, &mut rng)).collect();
        let img = Array2::from_shape_fn((96, 96), |(y, x)| tex[truth[[y, x]] as usize][[y, x]]);
        let grid = RegionConfig {
            regions: 3,
            spatial_weight: 0.0,
            scoring: SegmentScoring::Images,
            refine_window: 16,
            ..RegionConfig::textons_only()
        };
        let fine = RegionConfig {
            fine_step: 2,
            ..grid.clone()
        };
        let mut seg = TextonSegmenter::fit(&bank, &tiny_config(Some(grid.clone())), 0).unwrap();
        let out = seg
            .segment_regions_multi(img.view(), &[grid, fine])
            .unwrap();
        let errors = |l: &Array2<u8>| l.iter().zip(&truth).filter(|(p, t)| p != t).count();
        let (eg, ef) = (errors(&out[0].labels), errors(&out[1].labels));
        assert!(ef < eg, "errors below the grid {ef}, on the grid {eg}");
        // The grid pass is the same; only pixels within one grid step of a grid-level
        // boundary change.
        assert_eq!(out[0].segments, out[1].segments);
        let s = out[0].segments.clone();
        for (((y, x), &a), &b) in out[0].labels.indexed_iter().zip(out[1].labels.iter()) {
            if a != b {
                let (i, j) = (y / 4, x / 4);
                let near = (i.saturating_sub(1)..(i + 2).min(24))
                    .flat_map(|ii| (j.saturating_sub(1)..(j + 2).min(24)).map(move |jj| (ii, jj)))
                    .any(|p| s[p] != s[[i, j]]);
                assert!(near, "pixel ({y}, {x}) changed away from any boundary");
            }
        }
    }

    #[test]
    fn regions_recover_a_three_texture_layout() {
        let mut rng = StdRng::seed_from_u64(5);
        let bank = bank(3, &mut rng);
        let base = RegionConfig {
            regions: 3,
            spatial_weight: 0.0,
            scoring: SegmentScoring::Images,
            distinct: true,
            refine_window: 0,
            ..RegionConfig::textons_only()
        };
        let mut seg = TextonSegmenter::fit(&bank, &tiny_config(Some(base.clone())), 0).unwrap();
        assert_eq!(
            seg.image_models.nrows(),
            9 * 4,
            "every image and its 3 mirrors"
        );
        let (img, truth) = layout(&mut rng);
        let settings: Vec<RegionConfig> = [
            SegmentScoring::Images,
            SegmentScoring::References,
            SegmentScoring::Points,
            SegmentScoring::Learned,
        ]
        .into_iter()
        .flat_map(|scoring| {
            [true, false].map(|distinct| RegionConfig {
                scoring,
                distinct,
                ..base.clone()
            })
        })
        .chain([RegionConfig {
            spatial_weight: 0.5,
            refine_window: 8,
            refine_radius: 2,
            inside_windows: true,
            scale_shifts: 1,
            ..base.clone()
        }])
        // The fused texton + LBP classifier, with LBP clustering coordinates, LBP in the
        // refinement and the fused classifier's window posteriors.
        .chain([RegionConfig {
            scoring: SegmentScoring::Learned,
            lbp: true,
            lbp_weight: 1.0,
            lbp_refine: 1.0,
            posterior_weight: 0.5,
            refine_window: 8,
            ..base.clone()
        }])
        // The SVM on the fused features, with and without distinct classes.
        .chain([true, false].map(|distinct| RegionConfig {
            scoring: SegmentScoring::Svm,
            lbp: true,
            distinct,
            ..base.clone()
        }))
        .collect();
        let out = seg.segment_regions_multi(img.view(), &settings).unwrap();
        for (rc, r) in settings.iter().zip(&out) {
            assert_eq!(r.labels.dim(), (48, 48));
            assert_eq!(r.segments.dim(), (12, 12));
            assert_eq!(r.sizes.iter().sum::<usize>(), 144);
            let acc = accuracy(&r.labels, &truth);
            assert!(acc > 0.85, "{rc:?}: accuracy {acc}");
            if rc.distinct {
                let mut got: Vec<usize> = r.classes.iter().flatten().copied().collect();
                got.sort_unstable();
                got.dedup();
                assert_eq!(got.len(), r.classes.iter().flatten().count());
            }
        }
        // `segment` follows the region settings of the config.
        let p = seg.segment(img.view()).unwrap();
        assert_eq!(p, out[0].labels);
        // The true regions, given: every class right.
        let grid = Array2::from_shape_fn((12, 12), |(i, j)| truth[[4 * i + 2, 4 * j + 2]] as usize);
        let given = seg
            .segment_given_regions(img.view(), grid.clone(), 3, &base)
            .unwrap();
        assert_eq!(given.classes, vec![Some(0), Some(1), Some(2)]);
        assert_eq!(given.segments, grid);
        assert!(accuracy(&given.labels, &truth) > 0.97);
        let fused = RegionConfig {
            scoring: SegmentScoring::Learned,
            lbp: true,
            ..base.clone()
        };
        let given = seg
            .segment_given_regions(img.view(), grid.clone(), 3, &fused)
            .unwrap();
        assert_eq!(given.classes, vec![Some(0), Some(1), Some(2)]);
        let svm = RegionConfig {
            scoring: SegmentScoring::Svm,
            ..fused.clone()
        };
        let given = seg
            .segment_given_regions(img.view(), grid.clone(), 3, &svm)
            .unwrap();
        assert_eq!(given.classes, vec![Some(0), Some(1), Some(2)]);
        // Its scores are votes (two pairs per class among three classes) plus a margin
        // term inside (−0.5, 0.5).
        for row in given.scores.outer_iter() {
            let best = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert!((1.5..2.5).contains(&best), "{row:?}");
        }
        // The SVM scoring without LBP features is a bad setting; without a fitted SVM, an
        // error that names it.
        assert!(matches!(
            seg.segment_regions(
                img.view(),
                &RegionConfig {
                    lbp: false,
                    ..svm.clone()
                }
            ),
            Err(VisionError::InvalidParameter { .. })
        ));
        let mut no_svm = TextonSegmenter::fit(
            &bank,
            &TextonSegConfig {
                svm: None,
                ..tiny_config(Some(base.clone()))
            },
            0,
        )
        .unwrap();
        match no_svm.segment_regions(img.view(), &svm) {
            Err(VisionError::Empty { what, .. }) => assert!(what.contains("SVM"), "{what}"),
            other => panic!("expected a missing-SVM error, got {other:?}"),
        }
        // LBP features with another scoring are a bad setting.
        assert!(matches!(
            seg.segment_regions(
                img.view(),
                &RegionConfig {
                    lbp: true,
                    ..base.clone()
                }
            ),
            Err(VisionError::InvalidParameter { .. })
        ));
        // Given-region errors: wrong grid shape, a segment out of range.
        assert!(matches!(
            seg.segment_given_regions(img.view(), Array2::zeros((3, 3)), 3, &base),
            Err(VisionError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            seg.segment_given_regions(img.view(), grid, 2, &base),
            Err(VisionError::InvalidParameter { .. })
        ));
    }

    #[test]
    fn shifted_matching_finds_a_rescaled_model() {
        // Two levels of 2 textons. The query's level 0 equals model A's level 1: with one
        // shift A matches exactly; without, B (closer as is) wins.
        let q = [0.5f32, 0.0, 0.0, 0.5];
        let models = ndarray::arr2(&[[0.0f32, 0.5, 0.5, 0.0], [0.3, 0.2, 0.2, 0.3]]);
        let plain = knn_scores(&q, &models, &[0, 1], 2, 1);
        assert!(plain[1] > plain[0]);
        let shifted = shifted_knn_scores(&q, &models, &[0, 1], (2, 1), (2, 2), 1);
        assert_eq!(shifted[0], 0.0);
        assert!(shifted[0] > shifted[1]);
    }

    #[test]
    fn kmeans_recovers_two_blobs_and_is_seeded() {
        // 20 points near (0, 0) and 20 near (5, 5).
        let mut rng = StdRng::seed_from_u64(1);
        let x: Vec<f32> = (0..40)
            .flat_map(|i| {
                let c = if i < 20 { 0.0 } else { 5.0 };
                [
                    c + rng.random_range(-0.5..0.5),
                    c + rng.random_range(-0.5..0.5),
                ]
            })
            .collect();
        let a = kmeans(&x, 2, 2, 20, 3, &mut StdRng::seed_from_u64(7)).unwrap();
        assert!(a[..20].iter().all(|&v| v == a[0]));
        assert!(a[20..].iter().all(|&v| v == a[20]));
        assert_ne!(a[0], a[20]);
        let b = kmeans(&x, 2, 2, 20, 3, &mut StdRng::seed_from_u64(7)).unwrap();
        assert_eq!(a, b);
        assert!(kmeans(&x, 2, 41, 20, 3, &mut rng).is_err());
        assert!(kmeans(&x, 2, 0, 20, 3, &mut rng).is_err());
    }

    #[test]
    fn whitened_prototypes_discount_noisy_features() {
        // Two segments side by side on a 4×4 grid, all points interior. Feature 0 separates
        // them by 1 with no noise; feature 1 separates them by 2 under noise of ±3.
        let segments = Array2::from_shape_fn((4, 4), |(_, j)| usize::from(j >= 2));
        let interior = Array2::from_elem((4, 4), true);
        let feats: Vec<Vec<f32>> = (0..16)
            .map(|p| {
                let g = usize::from(p % 4 >= 2);
                vec![
                    g as f32,
                    2.0 * g as f32 + if p % 2 == 0 { 3.0 } else { -3.0 },
                ]
            })
            .collect();
        let plain = prototypes(&feats, &segments, &interior, 2, 0.0);
        assert_eq!(plain.weight, vec![1.0, 1.0]);
        assert_eq!(plain.mean, vec![vec![0.0, 0.0], vec![1.0, 2.0]]);
        let white = prototypes(&feats, &segments, &interior, 2, 0.1);
        // Pooled variances 0 and 9, mean 4.5: weights 1 / 0.45 and 1 / 9.45.
        assert!(
            (white.weight[0] - 1.0 / 0.45).abs() < 1e-4,
            "{:?}",
            white.weight
        );
        assert!(
            (white.weight[1] - 1.0 / 9.45).abs() < 1e-4,
            "{:?}",
            white.weight
        );
        // A window that looks like segment 1 in the clean feature but strays in the noisy
        // one: the plain distance picks segment 0, the whitened one segment 1.
        let q = [0.9f32, -0.5];
        let both = [true, true];
        assert_eq!(nearest_prototype(&q, &plain, &both, 0), 0);
        assert_eq!(nearest_prototype(&q, &white, &both, 0), 1);
    }

    #[test]
    fn majority_filter_and_interior() {
        let mut g = Array2::from_shape_fn((5, 6), |(_, j)| usize::from(j >= 3));
        g[[2, 1]] = 1; // a lone point inside segment 0
        majority_filter(&mut g, 2, 3);
        let want = Array2::from_shape_fn((5, 6), |(_, j)| usize::from(j >= 3));
        assert_eq!(g, want);
        let m = interior_mask(&g, 1);
        assert!(m[[2, 0]] && m[[2, 1]] && !m[[2, 2]] && !m[[2, 3]] && m[[2, 4]]);
    }

    #[test]
    fn distinct_assignment_is_optimal() {
        // Greedy (segment 0 takes class 0) totals 5 + 0; the optimum is 4 + 4.
        let s = ndarray::arr2(&[[5.0f32, 4.0, -1.0], [4.0, 0.0, -2.0]]);
        assert_eq!(assign_distinct(&s, &[1, 1]), vec![Some(1), Some(0)]);
        // Sizes weight the segments: a big segment keeps its best class.
        assert_eq!(assign_distinct(&s, &[10, 1]), vec![Some(0), Some(1)]);
        // Empty segments get no class; −∞ scores are avoided.
        let t = ndarray::arr2(&[[f32::NEG_INFINITY, 1.0], [3.0, 2.0], [0.0, 0.0]]);
        assert_eq!(
            assign_distinct(&t, &[1, 1, 0]),
            vec![Some(1), Some(0), None]
        );
    }

    /// Per-segment LBP histograms over the pixels of the used grid points: a flat segment
    /// holds only code `P` at every scale; a noisy one matches a direct count of
    /// [`lbp_riu2`](crate::classical::lbp_riu2)'s codes over its pixels.
    #[test]
    fn pooled_lbp_histograms_count_the_pixels_of_each_segment() {
        let mut rng = StdRng::seed_from_u64(9);
        // 32×32, flat on the left half, noise on the right; grid step 8 (4×4 points).
        let img = Array2::from_shape_fn((32, 32), |(_, x)| {
            if x < 16 {
                0.5
            } else {
                rng.random_range(0.0f32..1.0)
            }
        });
        let cfg = LbpConfig::default();
        let (lk, ln) = (lbp_bins(&cfg), cfg.scales.len());
        assert_eq!((lk, ln), (26, 3));
        let maps = lbp_code_maps(img.view(), &cfg).unwrap();
        let segments = Array2::from_shape_fn((4, 4), |(_, j)| usize::from(j >= 2));
        // Only the outer columns: segment 0's circles (x < 8 + 3) stay in the flat half.
        let used = Array2::from_shape_fn((4, 4), |(_, j)| j == 0 || j == 3);
        let h = pooled_histograms(&maps, &segments, &used, 8, 2, lk, ln);
        for (s, &(p, _)) in cfg.scales.iter().enumerate() {
            for b in 0..lk {
                let want = if b == p { 1.0 / 3.0 } else { 0.0 };
                assert!((h[0][s * lk + b] - want).abs() < 1e-6, "scale {s} bin {b}");
            }
            // Segment 1: the codes of pixels x in 24..32 (all rows), counted directly.
            let (p, r) = cfg.scales[s];
            let codes = crate::classical::lbp_riu2(img.view(), p, r).unwrap();
            let m = r.ceil() as usize;
            let mut want = vec![0f32; lk];
            let mut n = 0f32;
            for ((_, x), &c) in codes.indexed_iter() {
                if x + m >= 24 {
                    want[c as usize] += 1.0;
                    n += 1.0;
                }
            }
            for b in 0..lk {
                let got = h[1][s * lk + b];
                assert!((got - want[b] / n / 3.0).abs() < 1e-6, "scale {s} bin {b}");
            }
        }
        // The same maps through the window integrals: a window over the flat left part.
        let ig = Integrals::new(&maps, lk, ln);
        let win = ig.window(16.0, 5.0, 8.0);
        for (s, &(p, _)) in cfg.scales.iter().enumerate() {
            assert!((win[s * lk + p] - 1.0 / 3.0).abs() < 1e-6);
        }
    }

    #[test]
    fn pooled_histograms_count_the_cells_of_each_segment() {
        // One level, 4×4 cells of step 2 (centres 1, 3, 5, 7) on an 8×8 image, grid step 4:
        // each grid point holds 2×2 cells.
        let ids = Array2::from_shape_fn((4, 4), |(a, b)| usize::from(b >= 2) + 2 * (a % 2));
        let map = TextonMap {
            level: 0,
            ids,
            step: 2.0,
            offset: 1.0,
        };
        let seg = ndarray::arr2(&[[0usize, 1], [0, 1]]);
        let all = Array2::from_elem((2, 2), true);
        let h = pooled_histograms(&[map], &seg, &all, 4, 2, 4, 1);
        assert_eq!(h[0], vec![0.5, 0.0, 0.5, 0.0]);
        assert_eq!(h[1], vec![0.0, 0.5, 0.0, 0.5]);
    }

    #[test]
    fn bad_region_settings_are_errors() {
        let mut rng = StdRng::seed_from_u64(0);
        let bank = bank(2, &mut rng);
        let bad = [
            RegionConfig {
                regions: 0,
                distinct: false,
                ..RegionConfig::default()
            },
            // Distinct classes for more segments than the 2 classes.
            RegionConfig {
                regions: 3,
                distinct: true,
                ..RegionConfig::default()
            },
            RegionConfig {
                regions: 2,
                restarts: 0,
                ..RegionConfig::default()
            },
            RegionConfig {
                regions: 2,
                neighbours: 0,
                ..RegionConfig::default()
            },
            RegionConfig {
                regions: 2,
                spatial_weight: -1.0,
                ..RegionConfig::default()
            },
            RegionConfig {
                regions: 2,
                posterior_weight: f32::NAN,
                ..RegionConfig::default()
            },
            RegionConfig {
                regions: 2,
                lbp_weight: -0.5,
                ..RegionConfig::default()
            },
            RegionConfig {
                regions: 2,
                scoring: SegmentScoring::Points,
                lbp: true,
                ..RegionConfig::default()
            },
        ];
        for rc in &bad {
            assert!(
                matches!(
                    TextonSegmenter::fit(&bank, &tiny_config(Some(rc.clone())), 0),
                    Err(VisionError::InvalidParameter { .. })
                ),
                "{rc:?}"
            );
        }
        let ok = RegionConfig {
            regions: 2,
            ..RegionConfig::textons_only()
        };
        // Fitted without region settings: no image models or classifier for image,
        // learned or posterior-weighted settings.
        let mut plain = TextonSegmenter::fit(&bank, &tiny_config(None), 0).unwrap();
        let img = texture(24, 24, 0, &mut rng);
        for rc in [
            ok.clone(),
            RegionConfig {
                scoring: SegmentScoring::Images,
                ..ok.clone()
            },
            RegionConfig {
                scoring: SegmentScoring::Points,
                posterior_weight: 1.0,
                ..ok.clone()
            },
        ] {
            assert!(matches!(
                plain.segment_regions(img.view(), &rc),
                Err(VisionError::Empty { .. })
            ));
        }
        // The LBP classifier needs TextonSegConfig::lbp.
        let mut no_lbp = TextonSegmenter::fit(
            &bank,
            &TextonSegConfig {
                lbp: false,
                ..tiny_config(Some(ok.clone()))
            },
            0,
        )
        .unwrap();
        let with_lbp = RegionConfig {
            lbp: true,
            ..ok.clone()
        };
        assert!(matches!(
            no_lbp.segment_regions(img.view(), &with_lbp),
            Err(VisionError::Empty { .. })
        ));
        assert!(no_lbp
            .segment_regions(
                img.view(),
                &RegionConfig {
                    lbp_refine: 1.0,
                    ..ok.clone()
                }
            )
            .is_ok());
        // Bad settings at segmentation time, and more segments than grid points.
        assert!(matches!(
            plain.segment_regions(img.view(), &bad[1]),
            Err(VisionError::InvalidParameter { .. })
        ));
        let refs = RegionConfig {
            scoring: SegmentScoring::References,
            regions: 2,
            ..RegionConfig::textons_only()
        };
        let small = texture(4, 4, 0, &mut rng);
        assert!(matches!(
            plain.segment_regions(small.view(), &refs),
            Err(VisionError::InvalidParameter { .. })
        ));
        assert!(plain
            .segment_regions(Array2::<f32>::zeros((2, 2)).view(), &refs)
            .is_err());
        assert!(SegmentScoring::parse("nearest").is_err());
        let strip = ndarray::concatenate(Axis(1), &[img.view(), img.view()]).unwrap();
        assert!(plain.segment_regions(strip.view(), &refs).is_ok());
    }
}
