//! Segmentation metrics on label maps: pixel accuracy, per-class IoU, mIoU (through a
//! per-pixel [`ConfusionMatrix`]) and the boundary F-measure with a pixel tolerance.

use ndarray::{Array2, ArrayView2};

use super::classification::ConfusionMatrix;
use crate::error::{Result, VisionError};

/// Pixel accuracy, per-class IoU and mIoU of one or more label maps.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentationScores {
    /// The per-pixel confusion matrix (rows = true class).
    pub confusion: ConfusionMatrix,
}

impl SegmentationScores {
    /// An empty accumulator for `num_classes` classes.
    pub fn new(num_classes: usize) -> Self {
        SegmentationScores {
            confusion: ConfusionMatrix::new(num_classes),
        }
    }

    /// Adds one predicted label map and its ground truth (same shape). Labels can be any
    /// unsigned integer type (`u8`, `u16`, `usize`).
    ///
    /// ```
    /// use ndarray::array;
    /// use vae_vision::metrics::SegmentationScores;
    /// let truth = array![[0u8, 0, 1], [0, 1, 1]];
    /// let pred = array![[0u8, 1, 1], [0, 1, 1]];
    /// let mut s = SegmentationScores::new(2);
    /// s.add(pred.view(), truth.view())?;
    /// assert_eq!(s.pixel_accuracy(), Some(5.0 / 6.0));
    /// // class 0: TP 2, FN 1 -> 2/3; class 1: TP 3, FP 1 -> 3/4.
    /// assert_eq!(s.per_class_iou(), vec![Some(2.0 / 3.0), Some(0.75)]);
    /// assert_eq!(s.mean_iou(), Some((2.0 / 3.0 + 0.75) / 2.0));
    /// # Ok::<(), vae_vision::VisionError>(())
    /// ```
    ///
    /// # Errors
    /// [`VisionError::ShapeMismatch`] for different shapes, [`VisionError::LabelOutOfRange`]
    /// for a label `>= num_classes` (nothing is added then).
    pub fn add<T: Copy + Into<usize>>(
        &mut self,
        pred: ArrayView2<T>,
        truth: ArrayView2<T>,
    ) -> Result<()> {
        if pred.dim() != truth.dim() {
            let (a, b) = (truth.dim(), pred.dim());
            return Err(VisionError::shape(
                "SegmentationScores::add",
                &[a.0, a.1],
                &[b.0, b.1],
            ));
        }
        self.confusion.add_iter(
            truth
                .iter()
                .zip(pred.iter())
                .map(|(&t, &p)| (t.into(), p.into())),
        )
    }

    /// Fraction of correctly labelled pixels; `None` before any pixel was added.
    pub fn pixel_accuracy(&self) -> Option<f64> {
        self.confusion.accuracy()
    }

    /// IoU per class (`None` for a class absent from truth and prediction).
    pub fn per_class_iou(&self) -> Vec<Option<f64>> {
        self.confusion.per_class_iou()
    }

    /// Mean IoU over the classes where it is defined.
    pub fn mean_iou(&self) -> Option<f64> {
        self.confusion.mean_iou()
    }
}

/// Boundary pixels of a label map: `(y, x)` is a boundary pixel when its label differs
/// from the pixel to its right or the pixel below (so each label change is marked once,
/// on its top/left side).
///
/// ```
/// use ndarray::array;
/// let l = array![[1u8, 1, 2], [1, 1, 2], [3, 3, 3]];
/// let b = vae_vision::metrics::label_boundaries(l.view());
/// assert_eq!(b, array![[false, true, false], [true, true, true], [false, false, false]]);
/// ```
pub fn label_boundaries<T: Copy + PartialEq>(labels: ArrayView2<T>) -> Array2<bool> {
    let (h, w) = labels.dim();
    Array2::from_shape_fn((h, w), |(y, x)| {
        let v = labels[[y, x]];
        (x + 1 < w && labels[[y, x + 1]] != v) || (y + 1 < h && labels[[y + 1, x]] != v)
    })
}

/// Boundary precision, recall and F-measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundaryF {
    /// Fraction of predicted boundary pixels within the tolerance of a true boundary pixel.
    pub precision: f64,
    /// Fraction of true boundary pixels within the tolerance of a predicted boundary pixel.
    pub recall: f64,
    /// `2PR / (P + R)` (0 when both are 0).
    pub f: f64,
}

/// Fraction of `a`'s on-pixels that have an on-pixel of `b` within Euclidean distance `tol`.
fn fraction_within(a: &Array2<bool>, b: &Array2<bool>, tol: f64) -> Option<f64> {
    let (h, w) = a.dim();
    let r = tol.floor() as isize;
    let mut offsets: Vec<(isize, isize)> = Vec::new();
    for dy in -r..=r {
        for dx in -r..=r {
            if ((dy * dy + dx * dx) as f64) <= tol * tol {
                offsets.push((dy, dx));
            }
        }
    }
    offsets.sort_by_key(|&(dy, dx)| dy * dy + dx * dx);
    let (mut n, mut hit) = (0u64, 0u64);
    for ((y, x), &on) in a.indexed_iter() {
        if !on {
            continue;
        }
        n += 1;
        let found = offsets.iter().any(|&(dy, dx)| {
            let (yy, xx) = (y as isize + dy, x as isize + dx);
            yy >= 0
                && xx >= 0
                && (yy as usize) < h
                && (xx as usize) < w
                && b[[yy as usize, xx as usize]]
        });
        hit += found as u64;
    }
    (n > 0).then(|| hit as f64 / n as f64)
}

/// Boundary F-measure of a predicted label map against the ground truth (Csurka et al.
/// 2013's BF score): boundaries from [`label_boundaries`], a predicted boundary pixel is
/// correct when a true boundary pixel lies within `tolerance` pixels (Euclidean), and
/// vice versa for recall. Not one-to-one, unlike the BSDS edge benchmark.
///
/// Conventions: with no boundary in either map, P = R = F = 1; with boundaries in only
/// one of them, the missing side's ratio is 0.
///
/// ```
/// use ndarray::Array2;
/// // Truth splits the image at column 5; the prediction at column 6 (one pixel off).
/// let truth = Array2::from_shape_fn((8, 12), |(_, x)| (x >= 5) as u8);
/// let pred = Array2::from_shape_fn((8, 12), |(_, x)| (x >= 6) as u8);
/// let exact = vae_vision::metrics::boundary_f_measure(pred.view(), truth.view(), 0.0)?;
/// assert_eq!(exact.f, 0.0);
/// let tol = vae_vision::metrics::boundary_f_measure(pred.view(), truth.view(), 1.0)?;
/// assert_eq!(tol.f, 1.0);
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
///
/// # Errors
/// [`VisionError::ShapeMismatch`] for different shapes, [`VisionError::InvalidParameter`]
/// for a negative or non-finite tolerance.
pub fn boundary_f_measure<T: Copy + PartialEq>(
    pred: ArrayView2<T>,
    truth: ArrayView2<T>,
    tolerance: f64,
) -> Result<BoundaryF> {
    if pred.dim() != truth.dim() {
        let (a, b) = (truth.dim(), pred.dim());
        return Err(VisionError::shape(
            "boundary_f_measure",
            &[a.0, a.1],
            &[b.0, b.1],
        ));
    }
    if !(tolerance.is_finite() && tolerance >= 0.0) {
        return Err(VisionError::param(
            "boundary_f_measure",
            "tolerance",
            tolerance,
            "must be finite and >= 0",
        ));
    }
    let bp = label_boundaries(pred);
    let bt = label_boundaries(truth);
    let p = fraction_within(&bp, &bt, tolerance);
    let r = fraction_within(&bt, &bp, tolerance);
    let (precision, recall) = match (p, r) {
        (None, None) => (1.0, 1.0),
        (p, r) => (p.unwrap_or(0.0), r.unwrap_or(0.0)),
    };
    let f = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    Ok(BoundaryF {
        precision,
        recall,
        f,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn boundary_f_partial() {
        // Truth: boundary at columns 1 (between 1|2) for 4 rows. Prediction: no boundary.
        let truth = array![[0u8, 0, 1], [0, 0, 1]];
        let pred = array![[0u8, 0, 0], [0, 0, 0]];
        let b = boundary_f_measure(pred.view(), truth.view(), 1.0).unwrap();
        assert_eq!((b.precision, b.recall, b.f), (0.0, 0.0, 0.0));
        let b = boundary_f_measure(pred.view(), pred.view(), 1.0).unwrap();
        assert_eq!(b.f, 1.0);
        // Half the true boundary found: truth has boundary pixels (0,1),(1,1); the
        // prediction splits only the first row -> pred boundary (0,1) plus the vertical
        // change (0,0),(0,1),(0,2) vs row 1.
        let pred2 = array![[0u8, 0, 1], [0, 0, 0]];
        let b = boundary_f_measure(pred2.view(), truth.view(), 0.0).unwrap();
        // pred boundaries: (0,1) [right differs], (0,2) [below differs]; truth: (0,1),(1,1).
        assert_eq!(b.precision, 0.5);
        assert_eq!(b.recall, 0.5);
    }

    #[test]
    fn errors() {
        let a = array![[0u8, 1]];
        let b = array![[0u8], [1]];
        let mut s = SegmentationScores::new(2);
        assert!(matches!(
            s.add(a.view(), b.view()),
            Err(VisionError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            s.add(array![[0u8, 2]].view(), a.view()),
            Err(VisionError::LabelOutOfRange { label: 2, .. })
        ));
        assert!(matches!(
            boundary_f_measure(a.view(), a.view(), -1.0),
            Err(VisionError::InvalidParameter { .. })
        ));
        assert_eq!(s.pixel_accuracy(), None);
    }
}
