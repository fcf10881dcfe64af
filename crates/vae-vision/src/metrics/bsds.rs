//! The BSDS500 boundary benchmark: precision/recall over thresholds, ODS, OIS and AP,
//! following the reference `edgesEvalImg` / `edgesEvalDir` of Dollár's structured edge
//! toolbox, which reproduce the Berkeley `boundaryBench` exactly.
//!
//! Per image and threshold `t_k = k / (K + 1)`, `k = 1..=K` (K = 99):
//! 1. `E1 = E >= max(eps, t_k)`; thin `E1` ([`thin`](fn@crate::classical::thin)) to 1-pixel curves.
//! 2. Match `E1` one-to-one to each human boundary map in turn, tolerance
//!    `max_dist = 0.0075` of the image diagonal ([`correspond_pixels`](super::correspond_pixels)).
//! 3. `cntR` = matched ground-truth pixels summed over annotators, `sumR` = ground-truth
//!    pixels summed over annotators; `cntP` = pixels of `E1` matched to *any* annotator,
//!    `sumP` = pixels of `E1`.
//!
//! Then over the data set:
//! * `R = cntR / max(eps, sumR)`, `P = cntP / max(eps, sumP)`, `F = 2PR / max(eps, P + R)`.
//! * **ODS**: counts summed over images per threshold; the best F over the PR curve,
//!   linearly interpolated with 100 steps between neighbouring thresholds
//!   (`findBestRPF`).
//! * **OIS**: per image the threshold with the best (uninterpolated) F; the counts at
//!   those thresholds are summed over images and give R, P and F.
//! * **AP**: precision linearly interpolated as a function of recall (unique recall
//!   values, first occurrence in threshold order) at recall `0, 0.01, …, 1`, points outside
//!   the curve's recall range dropped, summed and divided by 100 (the reference's
//!   formula, including its "/100 for 101 points").
//!
//! Predictions are quantised to 8 bits first (`round(255 E) / 255`) when
//! [`BsdsConfig::quantize_8bit`] is set, because the reference reads edge maps from 8-bit
//! PNGs; that is the default.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::matching::{Matcher, NONE};
use crate::classical::thin::threshold_thin_list;
use crate::error::{Result, VisionError};

/// Benchmark settings; the default is the standard protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct BsdsConfig {
    /// Number of thresholds K; thresholds are `k / (K + 1)`, `k = 1..=K`. Default 99.
    pub thresholds: usize,
    /// Matching tolerance as a fraction of the image diagonal. Default 0.0075.
    pub max_dist: f64,
    /// Thin each thresholded map before matching. Default true.
    pub thin: bool,
    /// Quantise predictions to 8 bits as a PNG round trip would. Default true.
    pub quantize_8bit: bool,
}

impl Default for BsdsConfig {
    fn default() -> Self {
        BsdsConfig {
            thresholds: 99,
            max_dist: 0.0075,
            thin: true,
            quantize_8bit: true,
        }
    }
}

impl BsdsConfig {
    /// The thresholds `k / (K + 1)`, `k = 1..=K`.
    pub fn threshold_values(&self) -> Vec<f64> {
        (1..=self.thresholds)
            .map(|k| k as f64 / (self.thresholds + 1) as f64)
            .collect()
    }
}

/// One point of a precision/recall curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrPoint {
    /// The threshold on the prediction.
    pub threshold: f64,
    /// Recall.
    pub recall: f64,
    /// Precision.
    pub precision: f64,
    /// F-measure `2PR / (P + R)`.
    pub f: f64,
}

/// Per-image counts at every threshold, and the image's best point.
#[derive(Debug, Clone, PartialEq)]
pub struct BsdsImageResult {
    /// Matched ground-truth pixels, summed over annotators, per threshold.
    pub cnt_r: Vec<u64>,
    /// Ground-truth pixels, summed over annotators, per threshold (constant).
    pub sum_r: Vec<u64>,
    /// Detected pixels matched to any annotator, per threshold.
    pub cnt_p: Vec<u64>,
    /// Detected (thinned) pixels, per threshold.
    pub sum_p: Vec<u64>,
    /// The best point of this image's own curve (interpolated as for ODS).
    pub best: PrPoint,
}

/// Everything the benchmark computes.
#[derive(Debug, Clone, PartialEq)]
pub struct BsdsReport {
    /// The data-set precision/recall curve, one point per threshold (ascending).
    pub curve: Vec<PrPoint>,
    /// Optimal data-set scale: the best F of the interpolated data-set curve.
    pub ods: PrPoint,
    /// Optimal image scale: R, P, F from counts at each image's best threshold
    /// (`threshold` is NaN: it varies per image).
    pub ois: PrPoint,
    /// Average precision.
    pub ap: f64,
    /// Per-image results, in input order.
    pub images: Vec<BsdsImageResult>,
}

fn compute_rpf(cnt_r: f64, sum_r: f64, cnt_p: f64, sum_p: f64) -> (f64, f64, f64) {
    let r = cnt_r / sum_r.max(f64::EPSILON);
    let p = cnt_p / sum_p.max(f64::EPSILON);
    (r, p, 2.0 * p * r / (p + r).max(f64::EPSILON))
}

/// `findBestRPF`: the best F along the curve, interpolating 100 steps between neighbours.
fn find_best_rpf(t: &[f64], r: &[f64], p: &[f64]) -> PrPoint {
    if t.len() == 1 {
        return PrPoint {
            threshold: t[0],
            recall: r[0],
            precision: p[0],
            f: 2.0 * p[0] * r[0] / (p[0] + r[0]).max(f64::EPSILON),
        };
    }
    let mut best = PrPoint {
        threshold: f64::NAN,
        recall: 0.0,
        precision: 0.0,
        f: -1.0,
    };
    for j in 1..t.len() {
        for i in 0..100 {
            let a = i as f64 / 99.0;
            let b = 1.0 - a;
            let (rj, pj, tj) = (
                r[j] * a + r[j - 1] * b,
                p[j] * a + p[j - 1] * b,
                t[j] * a + t[j - 1] * b,
            );
            let fj = 2.0 * pj * rj / (pj + rj).max(f64::EPSILON);
            if fj > best.f {
                best = PrPoint {
                    threshold: tj,
                    recall: rj,
                    precision: pj,
                    f: fj,
                };
            }
        }
    }
    best
}

/// Average precision as the reference computes it (see the module doc).
fn average_precision(r: &[f64], p: &[f64]) -> f64 {
    // Unique recall values, ascending, each with the precision of its first occurrence.
    let mut idx: Vec<usize> = (0..r.len()).collect();
    idx.sort_by(|&a, &b| r[a].total_cmp(&r[b]).then(a.cmp(&b)));
    let mut ru: Vec<f64> = Vec::new();
    let mut pu: Vec<f64> = Vec::new();
    for &i in &idx {
        if ru.last() != Some(&r[i]) {
            ru.push(r[i]);
            pu.push(p[i]);
        }
    }
    if ru.len() < 2 {
        return 0.0;
    }
    let mut sum = 0.0;
    for k in 0..=100 {
        let x = k as f64 / 100.0;
        if x < ru[0] || x > ru[ru.len() - 1] {
            continue;
        }
        let j = ru.partition_point(|&v| v < x).max(1).min(ru.len() - 1);
        let (x0, x1) = (ru[j - 1], ru[j]);
        let v = if x == x1 {
            pu[j]
        } else {
            pu[j - 1] + (pu[j] - pu[j - 1]) * (x - x0) / (x1 - x0)
        };
        sum += v;
    }
    sum / 100.0
}

fn check_image(op: &'static str, pred: ArrayView2<f32>, gts: &[Array2<bool>]) -> Result<()> {
    if gts.is_empty() {
        return Err(VisionError::Empty {
            op,
            what: "no ground-truth maps for an image".into(),
        });
    }
    if pred.is_empty() {
        return Err(VisionError::Empty {
            op,
            what: "empty prediction".into(),
        });
    }
    for g in gts {
        if g.dim() != pred.dim() {
            let (a, b) = (pred.dim(), g.dim());
            return Err(VisionError::shape(op, &[a.0, a.1], &[b.0, b.1]));
        }
    }
    if let Some(v) = pred
        .iter()
        .find(|v| !(v.is_finite() && (0.0..=1.0).contains(*v)))
    {
        return Err(VisionError::BadValue {
            op,
            what: format!("prediction value {v} outside [0, 1]"),
        });
    }
    Ok(())
}

/// Evaluates one image: counts at every threshold (steps 1 to 3 of the module doc).
///
/// # Errors
/// [`VisionError::Empty`] with no ground truth or an empty prediction,
/// [`VisionError::ShapeMismatch`] if a ground-truth map differs in shape, and
/// [`VisionError::BadValue`] for a prediction value outside `[0, 1]` or NaN.
pub fn evaluate_image(
    pred: ArrayView2<f32>,
    gts: &[Array2<bool>],
    cfg: &BsdsConfig,
) -> Result<BsdsImageResult> {
    check_image("evaluate_image", pred, gts)?;
    let (h, w) = pred.dim();
    let e: Array2<f64> = if cfg.quantize_8bit {
        pred.mapv(|v| (v as f64 * 255.0).round() / 255.0)
    } else {
        pred.mapv(|v| v as f64)
    };
    let e_flat = e.as_slice().expect("freshly built arrays are contiguous");
    let gt_px: Vec<Vec<u32>> = gts
        .iter()
        .map(|g| {
            g.indexed_iter()
                .filter(|(_, &b)| b)
                .map(|((y, x), _)| (y * w + x) as u32)
                .collect()
        })
        .collect();
    let total_gt: u64 = gt_px.iter().map(|g| g.len() as u64).sum();
    let thresholds = cfg.threshold_values();
    let mut matcher = Matcher::new(h, w, cfg.max_dist);
    let k = thresholds.len();
    let (mut cnt_r, mut cnt_p, mut sum_p) = (vec![0u64; k], vec![0u64; k], vec![0u64; k]);
    let mut det_hit: Vec<bool> = Vec::new();
    for (ki, &t) in thresholds.iter().enumerate() {
        let t = t.max(f64::EPSILON);
        let det_px = threshold_thin_list(e_flat, h, w, t, cfg.thin);
        matcher.set_det(&det_px);
        det_hit.clear();
        det_hit.resize(det_px.len(), false);
        for g in &gt_px {
            let (pairs, m) = matcher.match_gt(g);
            cnt_r[ki] += pairs as u64;
            for &d in &m {
                if d != NONE {
                    det_hit[d as usize] = true;
                }
            }
        }
        matcher.clear_det(&det_px);
        cnt_p[ki] = det_hit.iter().filter(|&&b| b).count() as u64;
        sum_p[ki] = det_px.len() as u64;
    }
    let sum_r = vec![total_gt; k];
    let (r, p): (Vec<f64>, Vec<f64>) = (0..k)
        .map(|i| {
            let (r, p, _) = compute_rpf(
                cnt_r[i] as f64,
                sum_r[i] as f64,
                cnt_p[i] as f64,
                sum_p[i] as f64,
            );
            (r, p)
        })
        .unzip();
    let best = find_best_rpf(&thresholds, &r, &p);
    Ok(BsdsImageResult {
        cnt_r,
        sum_r,
        cnt_p,
        sum_p,
        best,
    })
}

/// Combines per-image results into the data-set curve, ODS, OIS and AP (`edgesEvalDir`'s
/// collection step). `cfg` must be the one the images were evaluated with.
///
/// # Errors
/// [`VisionError::Empty`] with no images, [`VisionError::ShapeMismatch`] if an image has
/// a different number of thresholds.
pub fn summarize(images: Vec<BsdsImageResult>, cfg: &BsdsConfig) -> Result<BsdsReport> {
    if images.is_empty() {
        return Err(VisionError::Empty {
            op: "bsds::summarize",
            what: "no images".into(),
        });
    }
    let t = cfg.threshold_values();
    let k = t.len();
    let (mut cr, mut sr, mut cp, mut sp) = (vec![0.0; k], vec![0.0; k], vec![0.0; k], vec![0.0; k]);
    let (mut ocr, mut osr, mut ocp, mut osp) = (0.0, 0.0, 0.0, 0.0);
    for im in &images {
        if im.cnt_r.len() != k {
            return Err(VisionError::shape(
                "bsds::summarize",
                &[k],
                &[im.cnt_r.len()],
            ));
        }
        let mut best_f = f64::NEG_INFINITY;
        let mut best_i = 0;
        for i in 0..k {
            cr[i] += im.cnt_r[i] as f64;
            sr[i] += im.sum_r[i] as f64;
            cp[i] += im.cnt_p[i] as f64;
            sp[i] += im.sum_p[i] as f64;
            let (_, _, f) = compute_rpf(
                im.cnt_r[i] as f64,
                im.sum_r[i] as f64,
                im.cnt_p[i] as f64,
                im.sum_p[i] as f64,
            );
            if f > best_f {
                best_f = f;
                best_i = i;
            }
        }
        ocr += im.cnt_r[best_i] as f64;
        osr += im.sum_r[best_i] as f64;
        ocp += im.cnt_p[best_i] as f64;
        osp += im.sum_p[best_i] as f64;
    }
    let mut curve = Vec::with_capacity(k);
    for i in 0..k {
        let (r, p, f) = compute_rpf(cr[i], sr[i], cp[i], sp[i]);
        curve.push(PrPoint {
            threshold: t[i],
            recall: r,
            precision: p,
            f,
        });
    }
    let r: Vec<f64> = curve.iter().map(|c| c.recall).collect();
    let p: Vec<f64> = curve.iter().map(|c| c.precision).collect();
    let ods = find_best_rpf(&t, &r, &p);
    let (or, op, of) = compute_rpf(ocr, osr, ocp, osp);
    let ois = PrPoint {
        threshold: f64::NAN,
        recall: or,
        precision: op,
        f: of,
    };
    let ap = average_precision(&r, &p);
    Ok(BsdsReport {
        curve,
        ods,
        ois,
        ap,
        images,
    })
}

/// Runs the whole benchmark: every image in parallel (rayon), then [`summarize`].
/// `preds[i]` is image i's edge map in `[0, 1]`, `gts[i]` its human boundary maps.
///
/// # Errors
/// [`VisionError::ShapeMismatch`] if `preds` and `gts` differ in length, and the errors
/// of [`evaluate_image`] and [`summarize`].
///
/// ```
/// use ndarray::Array2;
/// use vae_vision::metrics::{evaluate_bsds, BsdsConfig};
/// // A perfect prediction of a single vertical boundary.
/// let gt = Array2::from_shape_fn((20, 20), |(_, x)| x == 10);
/// let pred = gt.mapv(|b| if b { 1.0f32 } else { 0.0 });
/// let rep = evaluate_bsds(&[pred], &[vec![gt]], &BsdsConfig::default())?;
/// assert_eq!((rep.ods.f, rep.ois.f), (1.0, 1.0));
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
pub fn evaluate_bsds(
    preds: &[Array2<f32>],
    gts: &[Vec<Array2<bool>>],
    cfg: &BsdsConfig,
) -> Result<BsdsReport> {
    if preds.len() != gts.len() {
        return Err(VisionError::shape(
            "evaluate_bsds",
            &[preds.len()],
            &[gts.len()],
        ));
    }
    let images: Vec<BsdsImageResult> = preds
        .par_iter()
        .zip(gts.par_iter())
        .map(|(p, g)| evaluate_image(p.view(), g, cfg))
        .collect::<Result<_>>()?;
    summarize(images, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BsdsConfig {
        BsdsConfig::default()
    }

    #[test]
    fn perfect_prediction_scores_one() {
        let gt = Array2::from_shape_fn((40, 30), |(y, x)| y == 20 || x == 7);
        let pred = gt.mapv(|b| if b { 0.8f32 } else { 0.0 });
        let rep = evaluate_bsds(&[pred], &[vec![gt.clone(), gt]], &cfg()).unwrap();
        assert_eq!(rep.ods.f, 1.0);
        assert_eq!(rep.ois.f, 1.0);
        // Every threshold up to 0.8 detects everything; above it, nothing (P = 0, R = 0).
        assert_eq!(rep.curve[79].recall, 1.0);
        assert_eq!(rep.curve[80].recall, 0.0);
        // AP: recall values {0, 1}: P interpolates linearly from P(R=0) = 0 to 1.
        assert!((rep.ap - 0.505).abs() < 1e-12, "{}", rep.ap);
    }

    #[test]
    fn shift_within_tolerance_still_matches() {
        // 100x100: diagonal 141.4 px, tolerance 1.06 px: a 1-pixel shift matches.
        let gt = Array2::from_shape_fn((100, 100), |(_, x)| x == 50);
        let pred = Array2::from_shape_fn((100, 100), |(_, x)| if x == 51 { 1.0f32 } else { 0.0 });
        let rep = evaluate_bsds(&[pred], &[vec![gt]], &cfg()).unwrap();
        assert_eq!(rep.ods.f, 1.0);
    }

    #[test]
    fn too_far_is_unmatched() {
        // A 2-pixel shift is beyond 1.06 px.
        let gt = Array2::from_shape_fn((100, 100), |(_, x)| x == 50);
        let pred = Array2::from_shape_fn((100, 100), |(_, x)| if x == 52 { 1.0f32 } else { 0.0 });
        let im = evaluate_image(pred.view(), &[gt], &cfg()).unwrap();
        assert_eq!(im.cnt_r[0], 0);
        assert_eq!(im.cnt_p[0], 0);
        assert_eq!(im.sum_p[0], 100);
    }

    #[test]
    fn one_to_one_counts_once() {
        // Two separate detections each within tolerance of the same single GT pixel.
        let mut gt = Array2::from_elem((100, 100), false);
        gt[[50, 50]] = true;
        let mut pred = Array2::<f32>::zeros((100, 100));
        pred[[50, 49]] = 1.0;
        pred[[50, 51]] = 1.0;
        let im = evaluate_image(pred.view(), &[gt], &cfg()).unwrap();
        assert_eq!(
            (im.cnt_r[0], im.sum_r[0], im.cnt_p[0], im.sum_p[0]),
            (1, 1, 1, 2)
        );
    }

    #[test]
    fn precision_counts_match_to_any_annotator_recall_sums_over_them() {
        // Annotator 1 draws x = 30, annotator 2 draws x = 70; the prediction is x = 30 only.
        let g1 = Array2::from_shape_fn((100, 100), |(_, x)| x == 30);
        let g2 = Array2::from_shape_fn((100, 100), |(_, x)| x == 70);
        let pred = g1.mapv(|b| if b { 1.0f32 } else { 0.0 });
        let im = evaluate_image(pred.view(), &[g1, g2], &cfg()).unwrap();
        assert_eq!(
            (im.cnt_r[0], im.sum_r[0], im.cnt_p[0], im.sum_p[0]),
            (100, 200, 100, 100)
        );
    }

    #[test]
    fn thick_predictions_are_thinned() {
        let gt = Array2::from_shape_fn((60, 60), |(_, x)| x == 30);
        let pred =
            Array2::from_shape_fn(
                (60, 60),
                |(_, x)| if (29..=31).contains(&x) { 1.0f32 } else { 0.0 },
            );
        let im = evaluate_image(pred.view(), std::slice::from_ref(&gt), &cfg()).unwrap();
        assert!(im.sum_p[0] <= 62, "{}", im.sum_p[0]);
        let mut no_thin = cfg();
        no_thin.thin = false;
        let im2 = evaluate_image(pred.view(), &[gt], &no_thin).unwrap();
        assert_eq!(im2.sum_p[0], 180);
    }

    #[test]
    fn bad_inputs() {
        let gt = Array2::from_elem((4, 4), false);
        let bad = Array2::from_elem((4, 4), 1.5f32);
        assert!(matches!(
            evaluate_image(bad.view(), std::slice::from_ref(&gt), &cfg()),
            Err(VisionError::BadValue { .. })
        ));
        let small = Array2::<f32>::zeros((3, 4));
        assert!(matches!(
            evaluate_image(small.view(), &[gt], &cfg()),
            Err(VisionError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            evaluate_image(small.view(), &[], &cfg()),
            Err(VisionError::Empty { .. })
        ));
        assert!(matches!(
            evaluate_bsds(&[], &[], &cfg()),
            Err(VisionError::Empty { .. })
        ));
    }

    #[test]
    fn find_best_interpolates() {
        // Two points (R, P) = (1, 0.5) and (0.5, 1): the best F lies between them.
        let b = find_best_rpf(&[0.25, 0.75], &[1.0, 0.5], &[0.5, 1.0]);
        assert!(b.f > 2.0 / 3.0 && (b.recall - 0.75).abs() < 0.01, "{b:?}");
    }
}
