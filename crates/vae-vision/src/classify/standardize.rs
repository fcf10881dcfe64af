//! Per-feature standardisation (zero mean, unit variance), fitted on training data only.

use ndarray::{Array1, Array2, ArrayView2, Axis};

/// Subtracts the training mean and divides by the training standard deviation of each
/// feature (features with zero variance are only centred).
///
/// ```
/// use ndarray::array;
/// use vae_vision::classify::Standardizer;
/// let train = array![[1.0f32, 10.0], [3.0, 10.0]];
/// let s = Standardizer::fit(train.view());
/// assert_eq!(s.transform(train.view()), array![[-1.0f32, 0.0], [1.0, 0.0]]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    mean: Array1<f32>,
    inv_std: Array1<f32>,
}

impl Standardizer {
    /// Fits the mean and standard deviation of each column of `x` (`[n, d]`, n ≥ 1).
    pub fn fit(x: ArrayView2<f32>) -> Self {
        let n = x.nrows().max(1) as f64;
        let d = x.ncols();
        let mut mean = vec![0.0f64; d];
        let mut sq = vec![0.0f64; d];
        for row in x.rows() {
            for (j, &v) in row.iter().enumerate() {
                mean[j] += v as f64;
                sq[j] += v as f64 * v as f64;
            }
        }
        let mean: Vec<f64> = mean.iter().map(|m| m / n).collect();
        let inv_std = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let var = (s / n - m * m).max(0.0);
                if var > 1e-12 {
                    (1.0 / var.sqrt()) as f32
                } else {
                    1.0
                }
            })
            .collect();
        Standardizer {
            mean: mean.iter().map(|&m| m as f32).collect(),
            inv_std,
        }
    }

    /// Applies the fitted transform to `x` (`[n, d]` with the fitted `d`).
    ///
    /// # Panics
    /// If `x` has a different number of columns than the data it was fitted on.
    #[track_caller]
    pub fn transform(&self, x: ArrayView2<f32>) -> Array2<f32> {
        assert_eq!(
            x.ncols(),
            self.mean.len(),
            "Standardizer: feature count differs"
        );
        let mut out = &x - &self.mean.view().insert_axis(Axis(0));
        out *= &self.inv_std.view().insert_axis(Axis(0));
        out
    }
}
