//! Nearest-neighbour classification of histogram features with the chi-square distance,
//! the classic classifier for LBP texture descriptors.

use ndarray::{Array2, ArrayView1, ArrayView2};
use rayon::prelude::*;

use crate::error::{Result, VisionError};

/// Chi-square distance between two histograms: `Σ_i (a_i − b_i)² / (a_i + b_i)`, skipping
/// bins where `a_i + b_i = 0`.
///
/// ```
/// use ndarray::array;
/// let a = array![0.5f32, 0.5, 0.0];
/// let b = array![0.25f32, 0.25, 0.5];
/// // 0.0625/0.75 + 0.0625/0.75 + 0.25/0.5 = 0.6666...
/// let d = vae_vision::knn::chi_square(a.view(), b.view());
/// assert!((d - 2.0 / 3.0).abs() < 1e-6);
/// ```
///
/// # Panics
/// If the two histograms differ in length.
#[track_caller]
pub fn chi_square(a: ArrayView1<f32>, b: ArrayView1<f32>) -> f32 {
    assert_eq!(a.len(), b.len(), "chi_square: lengths differ");
    let mut d = 0.0f64;
    for (&x, &y) in a.iter().zip(b.iter()) {
        let s = x as f64 + y as f64;
        if s > 0.0 {
            let t = x as f64 - y as f64;
            d += t * t / s;
        }
    }
    d as f32
}

/// A k-nearest-neighbour classifier under the chi-square distance ([`chi_square`]).
/// Ties in the vote go to the class with the nearest member among the tied classes.
#[derive(Debug, Clone)]
pub struct ChiSquareKnn {
    train: Array2<f32>,
    labels: Vec<usize>,
    num_classes: usize,
    k: usize,
}

impl ChiSquareKnn {
    /// Stores the training histograms `[n, d]` and their labels (`< num_classes`).
    ///
    /// # Errors
    /// [`VisionError::Empty`] with no training rows, [`VisionError::ShapeMismatch`] if
    /// `labels.len() != n`, [`VisionError::LabelOutOfRange`], or
    /// [`VisionError::InvalidParameter`] for `k = 0`.
    pub fn fit(
        train: ArrayView2<f32>,
        labels: &[usize],
        num_classes: usize,
        k: usize,
    ) -> Result<Self> {
        let n = train.nrows();
        if n == 0 {
            return Err(VisionError::Empty {
                op: "ChiSquareKnn::fit",
                what: "no training samples".into(),
            });
        }
        if labels.len() != n {
            return Err(VisionError::shape(
                "ChiSquareKnn::fit",
                &[n],
                &[labels.len()],
            ));
        }
        if k == 0 {
            return Err(VisionError::param(
                "ChiSquareKnn::fit",
                "k",
                k,
                "must be >= 1",
            ));
        }
        if let Some(&l) = labels.iter().find(|&&l| l >= num_classes) {
            return Err(VisionError::LabelOutOfRange {
                op: "ChiSquareKnn::fit",
                label: l,
                num_classes,
            });
        }
        Ok(ChiSquareKnn {
            train: train.to_owned(),
            labels: labels.to_vec(),
            num_classes,
            k: k.min(n),
        })
    }

    /// Predicts a label for every row of `x` (`[m, d]`), in parallel over rows.
    ///
    /// # Errors
    /// [`VisionError::ShapeMismatch`] if `d` differs from the training dimension.
    pub fn predict(&self, x: ArrayView2<f32>) -> Result<Vec<usize>> {
        if x.ncols() != self.train.ncols() {
            return Err(VisionError::shape(
                "ChiSquareKnn::predict",
                &[x.nrows(), self.train.ncols()],
                &[x.nrows(), x.ncols()],
            ));
        }
        let rows: Vec<ArrayView1<f32>> = x.rows().into_iter().collect();
        Ok(rows.par_iter().map(|r| self.predict_one(*r)).collect())
    }

    fn predict_one(&self, q: ArrayView1<f32>) -> usize {
        let mut d: Vec<(f32, usize)> = self
            .train
            .rows()
            .into_iter()
            .zip(&self.labels)
            .map(|(t, &l)| (chi_square(q, t), l))
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut votes = vec![0usize; self.num_classes];
        for &(_, l) in &d[..self.k] {
            votes[l] += 1;
        }
        let best = *votes.iter().max().unwrap_or(&0);
        // Nearest neighbour among the classes with the most votes.
        d[..self.k]
            .iter()
            .find(|(_, l)| votes[*l] == best)
            .map(|&(_, l)| l)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn one_nn_picks_nearest() {
        let train = array![[1.0f32, 0.0], [0.0, 1.0], [0.5, 0.5]];
        let knn = ChiSquareKnn::fit(train.view(), &[0, 1, 2], 3, 1).unwrap();
        let q = array![[0.9f32, 0.1], [0.1, 0.9], [0.45, 0.55]];
        assert_eq!(knn.predict(q.view()).unwrap(), vec![0, 1, 2]);
    }

    #[test]
    fn errors() {
        let train = array![[1.0f32, 0.0]];
        assert!(matches!(
            ChiSquareKnn::fit(train.view(), &[3], 2, 1),
            Err(VisionError::LabelOutOfRange { .. })
        ));
        assert!(matches!(
            ChiSquareKnn::fit(train.view(), &[0, 1], 2, 1),
            Err(VisionError::ShapeMismatch { .. })
        ));
        let knn = ChiSquareKnn::fit(train.view(), &[0], 2, 1).unwrap();
        assert!(matches!(
            knn.predict(array![[1.0f32]].view()),
            Err(VisionError::ShapeMismatch { .. })
        ));
    }
}
