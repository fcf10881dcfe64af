//! Softmax regression and a small MLP on feature vectors, trained with AdamW on softmax
//! cross-entropy. Both are a `vae-tensor` `Sequential`; softmax regression is the MLP with
//! no hidden layer.

use super::{check_training_set, Standardizer};
use crate::error::{Result, VisionError};
use ndarray::{Array2, ArrayD, ArrayView2, Axis, Ix2};
use rand::seq::SliceRandom;
use rand::Rng;
use vae_tensor::init::Init;
use vae_tensor::layers::{activation::ReLU, dense::Dense, sequential::Sequential};
use vae_tensor::loss::softmax_cross_entropy;
use vae_tensor::optim::{Adam, AdamConfig, Optimizer};
use vae_tensor::{zero_grad, Layer, Mode};

/// Settings of a [`NeuralClassifier`].
#[derive(Debug, Clone, PartialEq)]
pub struct NeuralConfig {
    /// Hidden layer widths (ReLU after each); empty = softmax regression.
    pub hidden: Vec<usize>,
    /// Passes over the training set.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f32,
    /// AdamW decoupled weight decay.
    pub weight_decay: f32,
}

impl NeuralConfig {
    /// Softmax regression (a single dense layer).
    pub fn softmax_regression() -> Self {
        NeuralConfig {
            hidden: Vec::new(),
            epochs: 60,
            batch_size: 128,
            lr: 1e-2,
            weight_decay: 1e-4,
        }
    }

    /// An MLP with one hidden layer of `width` units.
    pub fn mlp(width: usize) -> Self {
        NeuralConfig {
            hidden: vec![width],
            epochs: 60,
            batch_size: 128,
            lr: 2e-3,
            weight_decay: 1e-3,
        }
    }
}

/// A softmax classifier over standardised features, optionally with hidden ReLU layers.
///
/// ```
/// use ndarray::array;
/// use rand::{rngs::StdRng, SeedableRng};
/// use vae_vision::classify::{NeuralClassifier, NeuralConfig};
/// let x = array![[0.0f32, 0.0], [0.2, 0.1], [3.0, 3.0], [3.1, 2.9]];
/// let mut rng = StdRng::seed_from_u64(0);
/// let mut clf = NeuralClassifier::fit(x.view(), &[0, 0, 1, 1], 2, &NeuralConfig::softmax_regression(), &mut rng)?;
/// assert_eq!(clf.predict(x.view())?, vec![0, 0, 1, 1]);
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
pub struct NeuralClassifier {
    scaler: Standardizer,
    net: Sequential,
    num_features: usize,
    num_classes: usize,
}

impl std::fmt::Debug for NeuralClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeuralClassifier")
            .field("net", &self.net.describe())
            .field("num_classes", &self.num_classes)
            .finish()
    }
}

impl NeuralClassifier {
    /// Trains on `x` (`[n, d]`) with labels below `num_classes`. Same seed, same model.
    pub fn fit(
        x: ArrayView2<f32>,
        labels: &[usize],
        num_classes: usize,
        cfg: &NeuralConfig,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        const OP: &str = "NeuralClassifier::fit";
        check_training_set(OP, x, labels, num_classes)?;
        if cfg.batch_size == 0 || cfg.epochs == 0 {
            return Err(VisionError::param(
                OP,
                "batch_size/epochs",
                format!("{}/{}", cfg.batch_size, cfg.epochs),
                "both must be at least 1",
            ));
        }
        let scaler = Standardizer::fit(x);
        let xs = scaler.transform(x);
        let mut net = Sequential::new();
        let mut width = x.ncols();
        for (i, &h) in cfg.hidden.iter().enumerate() {
            net.add(
                &format!("fc{i}"),
                Box::new(Dense::new(width, h, Init::HeNormal, rng)?),
            );
            net.add(&format!("relu{i}"), Box::new(ReLU::new()));
            width = h;
        }
        net.add(
            "out",
            // Zero output weights: the usual start for softmax regression, and harmless after
            // random hidden layers.
            Box::new(Dense::new(width, num_classes, Init::Zeros, rng)?),
        );
        let mut opt = Adam::new(AdamConfig::adamw(cfg.lr, cfg.weight_decay));
        let mut order: Vec<usize> = (0..xs.nrows()).collect();
        let total_steps = cfg.epochs * order.len().div_ceil(cfg.batch_size);
        let mut step = 0usize;
        for _ in 0..cfg.epochs {
            order.shuffle(rng);
            for chunk in order.chunks(cfg.batch_size) {
                // Cosine decay of the learning rate to 0 over the run.
                let progress = step as f32 / total_steps as f32;
                opt.set_lr(cfg.lr * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos()));
                step += 1;
                let xb = xs.select(Axis(0), chunk).into_dyn();
                let yb: ArrayD<usize> =
                    ndarray::Array1::from_iter(chunk.iter().map(|&i| labels[i])).into_dyn();
                zero_grad(&mut net);
                let logits = net.forward(xb, Mode::Train)?;
                let loss = softmax_cross_entropy(&logits, &yb, None, None)?;
                if !loss.value.is_finite() {
                    return Err(VisionError::BadValue {
                        op: OP,
                        what: format!("loss became {} at step {step}", loss.value),
                    });
                }
                net.backward(loss.grad)?;
                opt.step(&mut net)?;
            }
        }
        Ok(NeuralClassifier {
            scaler,
            net,
            num_features: x.ncols(),
            num_classes,
        })
    }

    /// Class scores (logits) `[m, classes]` for each row of `x`.
    pub fn logits(&mut self, x: ArrayView2<f32>) -> Result<Array2<f32>> {
        if x.ncols() != self.num_features {
            return Err(VisionError::shape(
                "NeuralClassifier::predict",
                &[x.nrows(), self.num_features],
                x.shape(),
            ));
        }
        let xs = self.scaler.transform(x).into_dyn();
        let out = self.net.forward(xs, Mode::Eval)?;
        Ok(out
            .into_dimensionality::<Ix2>()
            .expect("dense output is 2-D"))
    }

    /// The most likely class for each row of `x`.
    pub fn predict(&mut self, x: ArrayView2<f32>) -> Result<Vec<usize>> {
        Ok(super::row_argmax(self.logits(x)?.view()))
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};
    use rand_distr::{Distribution, StandardNormal};

    /// Three Gaussian blobs in 5-D plus a ring that softmax regression cannot separate.
    fn blobs(rng: &mut StdRng, n: usize) -> (Array2<f32>, Vec<usize>) {
        let centres = [[3.0f32, 0.0], [-3.0, 0.0], [0.0, 3.0]];
        let mut x = Array2::zeros((n, 5));
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let c = i % 3;
            for j in 0..5 {
                let noise: f32 = StandardNormal.sample(rng);
                x[[i, j]] = noise + if j < 2 { centres[c][j] } else { 0.0 };
            }
            y.push(c);
        }
        (x, y)
    }

    fn accuracy(p: &[usize], y: &[usize]) -> f64 {
        p.iter().zip(y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64
    }

    #[test]
    fn learns_separable_blobs_and_is_reproducible() {
        let mut rng = StdRng::seed_from_u64(5);
        let (x, y) = blobs(&mut rng, 600);
        let (xt, yt) = blobs(&mut rng, 300);
        for cfg in [NeuralConfig::softmax_regression(), NeuralConfig::mlp(32)] {
            let cfg = NeuralConfig { epochs: 20, ..cfg };
            let mut a = NeuralClassifier::fit(x.view(), &y, 3, &cfg, &mut StdRng::seed_from_u64(1))
                .unwrap();
            let acc = accuracy(&a.predict(xt.view()).unwrap(), &yt);
            // Bayes accuracy for these blobs is about 0.95.
            assert!(acc > 0.9, "{cfg:?}: {acc}");
            let mut b = NeuralClassifier::fit(x.view(), &y, 3, &cfg, &mut StdRng::seed_from_u64(1))
                .unwrap();
            assert_eq!(a.logits(xt.view()).unwrap(), b.logits(xt.view()).unwrap());
        }
    }

    #[test]
    fn mlp_solves_xor_where_softmax_regression_cannot() {
        let mut rng = StdRng::seed_from_u64(6);
        let n = 400;
        let mut x = Array2::zeros((n, 2));
        let mut y = Vec::new();
        for i in 0..n {
            let a: f32 = rng.random_range(-1.0..1.0);
            let b: f32 = rng.random_range(-1.0..1.0);
            x[[i, 0]] = a;
            x[[i, 1]] = b;
            y.push(usize::from((a > 0.0) != (b > 0.0)));
        }
        let mut mlp =
            NeuralClassifier::fit(x.view(), &y, 2, &NeuralConfig::mlp(32), &mut rng).unwrap();
        let mut linear = NeuralClassifier::fit(
            x.view(),
            &y,
            2,
            &NeuralConfig::softmax_regression(),
            &mut rng,
        )
        .unwrap();
        assert!(accuracy(&mlp.predict(x.view()).unwrap(), &y) > 0.9);
        assert!(accuracy(&linear.predict(x.view()).unwrap(), &y) < 0.75);
    }

    #[test]
    fn wrong_feature_count_is_an_error() {
        let mut rng = StdRng::seed_from_u64(7);
        let (x, y) = blobs(&mut rng, 30);
        let cfg = NeuralConfig {
            epochs: 1,
            ..NeuralConfig::softmax_regression()
        };
        let mut clf = NeuralClassifier::fit(x.view(), &y, 3, &cfg, &mut rng).unwrap();
        assert!(matches!(
            clf.predict(Array2::zeros((2, 4)).view()),
            Err(VisionError::ShapeMismatch { .. })
        ));
    }
}
