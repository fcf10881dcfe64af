//! Classifiers on feature vectors `[n, d]`: softmax regression, a small MLP (both built from
//! `vae-tensor` layers and trained with Adam on softmax cross-entropy), a one-vs-one
//! RBF-kernel SVM (SMO) and Euclidean k-nearest neighbours; and, transductive, label
//! spreading on a k-NN graph of every point.
//! They serve VAE latents and raw pixels alike, so the two are judged with the same
//! classifier.

mod knn;
mod neural;
mod spreading;
mod standardize;
mod svm;

pub use knn::EuclideanKnn;
pub use neural::{NeuralClassifier, NeuralConfig};
pub use spreading::{spread_labels, KnnGraph, SpreadingConfig};
pub use standardize::Standardizer;
pub use svm::{KernelSvm, SvmConfig};

use crate::error::{Result, VisionError};
use ndarray::ArrayView2;

/// The index of the largest score of every row of `scores` (`[n, classes]`; the first on
/// ties).
pub(crate) fn row_argmax(scores: ndarray::ArrayView2<f32>) -> Vec<usize> {
    scores
        .rows()
        .into_iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                )
                .0
        })
        .collect()
}

/// Checks a training set: non-empty, one label per row, every label below `num_classes`.
pub(crate) fn check_training_set(
    op: &'static str,
    x: ArrayView2<f32>,
    labels: &[usize],
    num_classes: usize,
) -> Result<()> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(VisionError::Empty {
            op,
            what: format!("training features of shape {:?}", x.shape()),
        });
    }
    if labels.len() != x.nrows() {
        return Err(VisionError::shape(op, &[x.nrows()], &[labels.len()]));
    }
    if let Some(&label) = labels.iter().find(|&&l| l >= num_classes) {
        return Err(VisionError::LabelOutOfRange {
            op,
            label,
            num_classes,
        });
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(VisionError::BadValue {
            op,
            what: "training features contain NaN or infinity".into(),
        });
    }
    Ok(())
}

/// A classifier by name, for experiments that run several on the same features.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// Euclidean k-nearest neighbours.
    Knn {
        /// Neighbours that vote.
        k: usize,
    },
    /// A [`NeuralClassifier`] with these settings (softmax regression or MLP).
    Neural(NeuralConfig),
    /// Label spreading on a k-NN graph ([`KnnGraph`]): transductive, it sees the test rows
    /// (and any unlabelled rows) without their labels while it learns.
    LabelSpreading(SpreadingConfig),
}

impl Method {
    /// A short name for tables: `knn5`, `softmax`, `mlp256`, `spread10` (label spreading
    /// on a 10-NN graph).
    pub fn name(&self) -> String {
        match self {
            Method::Knn { k } => format!("knn{k}"),
            Method::LabelSpreading(c) => format!("spread{}", c.k),
            Method::Neural(c) if c.hidden.is_empty() => "softmax".into(),
            Method::Neural(c) => format!(
                "mlp{}",
                c.hidden
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join("-")
            ),
        }
    }

    /// Whether the method learns from the unlabelled and test rows too (label spreading).
    pub fn is_transductive(&self) -> bool {
        matches!(self, Method::LabelSpreading(_))
    }

    /// Trains on `(train_x, train_y)` and predicts a class for every row of `test_x`
    /// (a transductive method also uses `test_x`, without labels, while it learns).
    pub fn fit_predict(
        &self,
        train_x: ArrayView2<f32>,
        train_y: &[usize],
        test_x: ArrayView2<f32>,
        num_classes: usize,
        rng: &mut impl rand::Rng,
    ) -> Result<Vec<usize>> {
        self.fit_predict_transductive(train_x, train_y, None, test_x, num_classes, rng)
    }

    /// As [`fit_predict`](Self::fit_predict), with `unlabelled` rows that a transductive
    /// method learns from as well (the others ignore them).
    pub fn fit_predict_transductive(
        &self,
        train_x: ArrayView2<f32>,
        train_y: &[usize],
        unlabelled: Option<ArrayView2<f32>>,
        test_x: ArrayView2<f32>,
        num_classes: usize,
        rng: &mut impl rand::Rng,
    ) -> Result<Vec<usize>> {
        match self {
            Method::LabelSpreading(cfg) => {
                spread_labels(train_x, train_y, unlabelled, test_x, num_classes, cfg)
            }
            Method::Knn { k } => {
                EuclideanKnn::fit(train_x, train_y, num_classes, *k)?.predict(test_x)
            }
            Method::Neural(cfg) => {
                NeuralClassifier::fit(train_x, train_y, num_classes, cfg, rng)?.predict(test_x)
            }
        }
    }
}
