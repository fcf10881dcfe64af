//! Euclidean k-nearest neighbours, brute force through one matrix product per query block.

use super::check_training_set;
use crate::error::{Result, VisionError};
use ndarray::{Array1, Array2, ArrayView2, Axis, Slice};
use rayon::prelude::*;

/// k-nearest-neighbour classification under the Euclidean distance. Ties in the vote go to
/// the tied class whose member is nearest.
///
/// Distances are computed as `‖a‖² + ‖b‖² − 2 a·b` with one matrix product per block of
/// queries, in parallel over blocks.
///
/// ```
/// use ndarray::array;
/// use vae_vision::classify::EuclideanKnn;
/// let knn = EuclideanKnn::fit(array![[0.0f32, 0.0], [0.1, 0.0], [5.0, 5.0]].view(), &[0, 0, 1], 2, 1)?;
/// assert_eq!(knn.predict(array![[4.0f32, 4.5], [0.2, -0.1]].view())?, vec![1, 0]);
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
#[derive(Debug, Clone)]
pub struct EuclideanKnn {
    train: Array2<f32>,
    norms: Array1<f32>,
    labels: Vec<usize>,
    num_classes: usize,
    k: usize,
}

impl EuclideanKnn {
    /// Stores the training set `[n, d]` with labels below `num_classes`; `k ≥ 1`.
    pub fn fit(x: ArrayView2<f32>, labels: &[usize], num_classes: usize, k: usize) -> Result<Self> {
        const OP: &str = "EuclideanKnn::fit";
        check_training_set(OP, x, labels, num_classes)?;
        if k == 0 {
            return Err(VisionError::param(OP, "k", k, "must be at least 1"));
        }
        let norms = x.rows().into_iter().map(|r| r.dot(&r)).collect();
        Ok(EuclideanKnn {
            train: x.to_owned(),
            norms,
            labels: labels.to_vec(),
            num_classes,
            k,
        })
    }

    /// Predicts a class for each row of `x` (`[m, d]`).
    pub fn predict(&self, x: ArrayView2<f32>) -> Result<Vec<usize>> {
        if x.ncols() != self.train.ncols() {
            return Err(VisionError::shape(
                "EuclideanKnn::predict",
                &[x.nrows(), self.train.ncols()],
                x.shape(),
            ));
        }
        const BLOCK: usize = 256;
        let starts: Vec<usize> = (0..x.nrows()).step_by(BLOCK).collect();
        let out: Vec<Vec<usize>> = starts
            .par_iter()
            .map(|&s0| {
                let q = x.slice_axis(Axis(0), Slice::from(s0..(s0 + BLOCK).min(x.nrows())));
                let dots = q.dot(&self.train.t()); // [b, n]
                q.rows()
                    .into_iter()
                    .zip(dots.axis_iter(Axis(0)))
                    .map(|(row, d)| {
                        let qn = row.dot(&row);
                        let dist: Vec<f32> = d
                            .iter()
                            .zip(self.norms.iter())
                            .map(|(&dot, &tn)| qn + tn - 2.0 * dot)
                            .collect();
                        self.vote(&dist)
                    })
                    .collect()
            })
            .collect();
        Ok(out.into_iter().flatten().collect())
    }

    fn vote(&self, dist: &[f32]) -> usize {
        let k = self.k.min(dist.len());
        let mut idx: Vec<usize> = (0..dist.len()).collect();
        idx.select_nth_unstable_by(k - 1, |&a, &b| dist[a].total_cmp(&dist[b]).then(a.cmp(&b)));
        let mut nearest = idx[..k].to_vec();
        nearest.sort_by(|&a, &b| dist[a].total_cmp(&dist[b]).then(a.cmp(&b)));
        let mut counts = vec![0usize; self.num_classes];
        for &i in &nearest {
            counts[self.labels[i]] += 1;
        }
        let best = *counts.iter().max().expect("at least one class");
        // The nearest neighbour among the tied classes decides.
        nearest
            .iter()
            .map(|&i| self.labels[i])
            .find(|&c| counts[c] == best)
            .expect("some neighbour has the best count")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn majority_vote_and_tie_break() {
        let x = array![[0.0f32], [1.0], [2.0], [10.0], [11.0]];
        let knn = EuclideanKnn::fit(x.view(), &[0, 0, 1, 1, 1], 2, 3).unwrap();
        // Neighbours of 0.4: 0 (0), 1 (0), 2 (1) -> class 0. Of 9: 10, 11, 2 -> class 1.
        assert_eq!(
            knn.predict(array![[0.4f32], [9.0]].view()).unwrap(),
            vec![0, 1]
        );
        let knn2 = EuclideanKnn::fit(x.view(), &[0, 0, 1, 1, 1], 2, 2).unwrap();
        // 1.6: neighbours 2 (class 1, d 0.4) and 1 (class 0, d 0.6): tie, nearest wins.
        assert_eq!(knn2.predict(array![[1.6f32]].view()).unwrap(), vec![1]);
    }

    #[test]
    fn bad_input_is_an_error() {
        let x = array![[0.0f32, 1.0]];
        assert!(matches!(
            EuclideanKnn::fit(x.view(), &[3], 2, 1),
            Err(VisionError::LabelOutOfRange { label: 3, .. })
        ));
        assert!(matches!(
            EuclideanKnn::fit(x.view(), &[0, 1], 2, 1),
            Err(VisionError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            EuclideanKnn::fit(Array2::<f32>::zeros((0, 2)).view(), &[], 2, 1),
            Err(VisionError::Empty { .. })
        ));
        let knn = EuclideanKnn::fit(x.view(), &[0], 2, 1).unwrap();
        assert!(knn.predict(array![[1.0f32]].view()).is_err());
    }
}
