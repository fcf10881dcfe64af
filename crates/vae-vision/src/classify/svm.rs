//! A multi-class support vector machine with a Gaussian (RBF) kernel: one binary C-SVM per
//! pair of classes (one-vs-one, as libsvm), each solved by SMO with second-order working
//! set selection (Fan, Chen and Lin, JMLR 2005), and a vote.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use rayon::prelude::*;

use super::{check_training_set, Standardizer};
use crate::error::{Result, VisionError};

/// Settings of [`KernelSvm`].
#[derive(Debug, Clone, PartialEq)]
pub struct SvmConfig {
    /// The box constraint `C` (larger: fewer training errors, less margin).
    pub c: f32,
    /// The kernel width relative to the data: `γ = gamma_scale / (d · var)`, with `d` the
    /// number of features and `var` the variance of all entries of the standardised,
    /// weighted training matrix (`gamma_scale = 1` is scikit-learn's `gamma="scale"`).
    pub gamma_scale: f32,
    /// Stopping tolerance on the maximal violation of the optimality conditions.
    pub tolerance: f32,
    /// Most SMO iterations per pair of classes.
    pub max_iter: usize,
}

impl Default for SvmConfig {
    /// scikit-learn's `SVC` defaults: `C = 1`, `gamma_scale = 1` (`gamma="scale"`),
    /// tolerance `10⁻³`; at most 100,000 iterations per pair.
    fn default() -> Self {
        SvmConfig {
            c: 1.0,
            gamma_scale: 1.0,
            tolerance: 1e-3,
            max_iter: 100_000,
        }
    }
}

/// The binary machine of one pair of classes: `f(x) = Σ coef_t K(x_t, x) − rho`, `f > 0`
/// votes for `pos`.
#[derive(Debug, Clone, PartialEq)]
struct PairMachine {
    pos: usize,
    neg: usize,
    /// Rows of [`KernelSvm::support`] with their coefficients `α_t y_t` (nonzero only).
    support: Vec<(usize, f32)>,
    rho: f32,
}

/// A one-vs-one RBF-kernel SVM over standardised (and optionally re-weighted) features.
///
/// Each feature is standardised with the training mean and standard deviation, then
/// multiplied by its weight (to balance blocks of features from different sources).
/// Training is deterministic: no random draws.
///
/// ```
/// use ndarray::array;
/// use vae_vision::classify::{KernelSvm, SvmConfig};
/// // XOR: no linear classifier separates it.
/// let x = array![[0.0f32, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0],
///                [0.1, 0.0], [0.9, 1.0], [0.0, 0.9], [1.0, 0.1]];
/// let y = [0, 0, 1, 1, 0, 0, 1, 1];
/// let cfg = SvmConfig { c: 100.0, gamma_scale: 2.0, ..SvmConfig::default() };
/// let svm = KernelSvm::fit(x.view(), &y, 2, None, &cfg)?;
/// assert_eq!(svm.predict(x.view())?, y.to_vec());
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct KernelSvm {
    scaler: Standardizer,
    weights: Array1<f32>,
    gamma: f32,
    /// The transformed training rows that are a support vector of some pair.
    support: Array2<f32>,
    /// Their squared norms (for `‖q − s‖² = ‖q‖² + ‖s‖² − 2 q·s`).
    support_norms: Vec<f32>,
    machines: Vec<PairMachine>,
    num_classes: usize,
}

impl KernelSvm {
    /// Trains on `x` (`[n, d]`) with labels below `num_classes`; `weights` (length `d`)
    /// multiply the standardised features (`None`: all 1).
    ///
    /// # Errors
    /// An empty or non-finite training set, labels out of range, weights of the wrong
    /// length or not finite and positive, `c`, `gamma_scale` or `tolerance` not finite and
    /// positive.
    pub fn fit(
        x: ArrayView2<f32>,
        labels: &[usize],
        num_classes: usize,
        weights: Option<&[f32]>,
        cfg: &SvmConfig,
    ) -> Result<Self> {
        const OP: &str = "KernelSvm::fit";
        check_training_set(OP, x, labels, num_classes)?;
        for (name, v) in [
            ("c", cfg.c),
            ("gamma_scale", cfg.gamma_scale),
            ("tolerance", cfg.tolerance),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(VisionError::param(OP, name, v, "must be finite and > 0"));
            }
        }
        let d = x.ncols();
        let weights = match weights {
            None => Array1::ones(d),
            Some(w) if w.len() != d => return Err(VisionError::shape(OP, &[d], &[w.len()])),
            Some(w) if w.iter().any(|v| !(v.is_finite() && *v > 0.0)) => {
                return Err(VisionError::param(
                    OP,
                    "weights",
                    format!("{w:?}"),
                    "must be finite and > 0",
                ))
            }
            Some(w) => Array1::from(w.to_vec()),
        };
        let scaler = Standardizer::fit(x);
        let xs = scaler.transform(x) * weights.view().insert_axis(Axis(0));
        let var = {
            let n = xs.len() as f64;
            let mean = xs.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            xs.iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n
        };
        let gamma = if var > 0.0 {
            (f64::from(cfg.gamma_scale) / (d as f64 * var)) as f32
        } else {
            cfg.gamma_scale
        };
        let norms: Vec<f32> = xs.rows().into_iter().map(|r| r.dot(&r)).collect();
        let mut by_class = vec![Vec::new(); num_classes];
        for (i, &l) in labels.iter().enumerate() {
            by_class[l].push(i);
        }
        let pairs: Vec<(usize, usize)> = (0..num_classes)
            .flat_map(|a| (a + 1..num_classes).map(move |b| (a, b)))
            .filter(|&(a, b)| !by_class[a].is_empty() && !by_class[b].is_empty())
            .collect();
        // Each pair's support rows are numbered as rows of `x` first.
        let mut machines: Vec<PairMachine> = pairs
            .par_iter()
            .map(|&(a, b)| {
                let rows: Vec<usize> = by_class[a].iter().chain(&by_class[b]).copied().collect();
                let y: Vec<f32> = (0..rows.len())
                    .map(|t| if t < by_class[a].len() { 1.0 } else { -1.0 })
                    .collect();
                let k = gram(&xs, &norms, &rows, gamma);
                let (alpha, rho) = smo(&k, &y, cfg);
                let support = rows
                    .iter()
                    .zip(alpha.iter().zip(&y))
                    .filter(|(_, (&al, _))| al > 0.0)
                    .map(|(&r, (&al, &yt))| (r, al * yt))
                    .collect();
                PairMachine {
                    pos: a,
                    neg: b,
                    support,
                    rho,
                }
            })
            .collect();
        // Keep only the rows that some pair uses, renumbered.
        let mut index = vec![usize::MAX; x.nrows()];
        let mut kept = Vec::new();
        for m in &mut machines {
            for (r, _) in &mut m.support {
                if index[*r] == usize::MAX {
                    index[*r] = kept.len();
                    kept.push(*r);
                }
                *r = index[*r];
            }
        }
        let support = xs.select(Axis(0), &kept);
        let support_norms = kept.iter().map(|&r| norms[r]).collect();
        Ok(KernelSvm {
            scaler,
            weights,
            gamma,
            support,
            support_norms,
            machines,
            num_classes,
        })
    }

    /// Number of distinct support vectors over all pairs.
    pub fn num_support(&self) -> usize {
        self.support.nrows()
    }

    /// The kernel width `γ` chosen from the training data.
    pub fn gamma(&self) -> f32 {
        self.gamma
    }

    /// Class scores of every row of `x` (`[n, classes]`): the number of pairwise votes
    /// for the class, plus its summed decision values scaled into `(−0.5, 0.5)` so that a
    /// tie in votes goes to the class with the larger margins.
    ///
    /// # Errors
    /// `x` with a different number of features than the training data, or non-finite.
    pub fn scores(&self, x: ArrayView2<f32>) -> Result<Array2<f32>> {
        const OP: &str = "KernelSvm::scores";
        let d = self.weights.len();
        if x.ncols() != d {
            return Err(VisionError::shape(OP, &[x.nrows(), d], x.shape()));
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(VisionError::BadValue {
                op: OP,
                what: "features contain NaN or infinity".into(),
            });
        }
        let xs = self.scaler.transform(x) * self.weights.view().insert_axis(Axis(0));
        let nc = self.num_classes;
        let rows: Vec<Vec<f32>> = xs
            .outer_iter()
            .into_par_iter()
            .map(|q| {
                let k = kernel_row(q, &self.support, &self.support_norms, self.gamma);
                let mut votes = vec![0f32; nc];
                let mut margin = vec![0f32; nc];
                for m in &self.machines {
                    let f = m.support.iter().map(|&(r, c)| c * k[r]).sum::<f32>() - m.rho;
                    if f > 0.0 {
                        votes[m.pos] += 1.0;
                    } else {
                        votes[m.neg] += 1.0;
                    }
                    margin[m.pos] += f;
                    margin[m.neg] -= f;
                }
                votes
                    .iter()
                    .zip(&margin)
                    .map(|(&v, &g)| v + g.atan() / std::f32::consts::PI / nc as f32)
                    .collect()
            })
            .collect();
        Ok(Array2::from_shape_fn((x.nrows(), nc), |(i, c)| rows[i][c]))
    }

    /// The class with the highest [`KernelSvm::scores`] for every row of `x`.
    ///
    /// # Errors
    /// As [`KernelSvm::scores`].
    pub fn predict(&self, x: ArrayView2<f32>) -> Result<Vec<usize>> {
        Ok(super::row_argmax(self.scores(x)?.view()))
    }
}

/// `exp(−γ‖q − s‖²)` for every row `s` of `support` (`sn`: their squared norms).
fn kernel_row(q: ArrayView1<f32>, support: &Array2<f32>, sn: &[f32], gamma: f32) -> Vec<f32> {
    let qn = q.dot(&q);
    let dots = support.dot(&q);
    dots.iter()
        .zip(sn)
        .map(|(&dt, &s)| (-gamma * (qn + s - 2.0 * dt).max(0.0)).exp())
        .collect()
}

/// The Gram matrix `K[i][j] = exp(−γ‖x_i − x_j‖²)` of the rows `rows` of `xs`.
fn gram(xs: &Array2<f32>, norms: &[f32], rows: &[usize], gamma: f32) -> Array2<f32> {
    let sub = xs.select(Axis(0), rows);
    let mut k = sub.dot(&sub.t());
    for ((i, j), v) in k.indexed_iter_mut() {
        let d2 = (norms[rows[i]] + norms[rows[j]] - 2.0 * *v).max(0.0);
        *v = if i == j { 1.0 } else { (-gamma * d2).exp() };
    }
    k
}

/// Solves the C-SVM dual `min ½ αᵀQα − Σα, 0 ≤ α ≤ C, yᵀα = 0` (`Q = yyᵀ ∘ K`) by SMO with
/// the second-order working set selection of Fan, Chen and Lin (libsvm's solver, without
/// shrinking or caching: `K` is given whole). Returns `α` and the offset `rho`.
fn smo(k: &Array2<f32>, y: &[f32], cfg: &SvmConfig) -> (Vec<f32>, f32) {
    const TAU: f32 = 1e-12;
    let n = y.len();
    let c = cfg.c;
    let mut alpha = vec![0f32; n];
    // Gradient of the objective: Qα − 1.
    let mut grad = vec![-1f32; n];
    let up = |a: f32, yt: f32| (yt > 0.0 && a < c) || (yt < 0.0 && a > 0.0);
    let low = |a: f32, yt: f32| (yt > 0.0 && a > 0.0) || (yt < 0.0 && a < c);
    for _ in 0..cfg.max_iter {
        // i: the most violating index of the "up" set.
        let (mut i, mut gmax) = (usize::MAX, f32::NEG_INFINITY);
        for t in 0..n {
            if up(alpha[t], y[t]) && -y[t] * grad[t] >= gmax {
                gmax = -y[t] * grad[t];
                i = t;
            }
        }
        if i == usize::MAX {
            break;
        }
        let ki = k.row(i);
        // j: the "low" index with the largest second-order decrease of the objective.
        let (mut j, mut best, mut gmin) = (usize::MAX, f32::INFINITY, f32::INFINITY);
        for t in 0..n {
            if !low(alpha[t], y[t]) {
                continue;
            }
            let v = -y[t] * grad[t];
            gmin = gmin.min(v);
            let b = gmax - v;
            if b > 0.0 {
                let a = (k[[i, i]] + k[[t, t]] - 2.0 * ki[t]).max(TAU);
                let obj = -b * b / a;
                if obj <= best {
                    best = obj;
                    j = t;
                }
            }
        }
        if gmax - gmin < cfg.tolerance || j == usize::MAX {
            break;
        }
        let kj = k.row(j);
        let (ai, aj) = (alpha[i], alpha[j]);
        let quad = (k[[i, i]] + k[[j, j]] - 2.0 * ki[j]).max(TAU);
        if y[i] != y[j] {
            let delta = (-grad[i] - grad[j]) / quad;
            let diff = alpha[i] - alpha[j];
            alpha[i] += delta;
            alpha[j] += delta;
            if diff > 0.0 {
                if alpha[j] < 0.0 {
                    alpha[j] = 0.0;
                    alpha[i] = diff;
                }
            } else if alpha[i] < 0.0 {
                alpha[i] = 0.0;
                alpha[j] = -diff;
            }
            if diff > 0.0 {
                if alpha[i] > c {
                    alpha[i] = c;
                    alpha[j] = c - diff;
                }
            } else if alpha[j] > c {
                alpha[j] = c;
                alpha[i] = c + diff;
            }
        } else {
            let delta = (grad[i] - grad[j]) / quad;
            let sum = alpha[i] + alpha[j];
            let (mut a, mut b) = (alpha[i] - delta, alpha[j] + delta);
            // Back into the box along the line a + b = sum, first for a, then for b.
            clip_on_sum(&mut a, &mut b, sum, c);
            clip_on_sum(&mut b, &mut a, sum, c);
            (alpha[i], alpha[j]) = (a, b);
        }
        // Q_ti = y_t y_i K_ti.
        let (di, dj) = ((alpha[i] - ai) * y[i], (alpha[j] - aj) * y[j]);
        for t in 0..n {
            grad[t] += y[t] * (ki[t] * di + kj[t] * dj);
        }
    }
    let rho = rho(&alpha, &grad, y, c);
    (alpha, rho)
}

/// One step of libsvm's clipping of a same-label pair on the line `a + b = sum`: `a` above
/// `C` moves to `C` (when `sum > C`), else `b` below 0 moves to 0.
fn clip_on_sum(a: &mut f32, b: &mut f32, sum: f32, c: f32) {
    if sum > c {
        if *a > c {
            *a = c;
            *b = sum - c;
        }
    } else if *b < 0.0 {
        *b = 0.0;
        *a = sum;
    }
}

/// The offset: the mean of `y_t G_t` over free `α_t`, else the middle of its feasible
/// interval (libsvm's rule).
fn rho(alpha: &[f32], grad: &[f32], y: &[f32], c: f32) -> f32 {
    let (mut ub, mut lb) = (f32::INFINITY, f32::NEG_INFINITY);
    let (mut free, mut sum) = (0usize, 0f64);
    for ((&a, &g), &yt) in alpha.iter().zip(grad).zip(y) {
        let yg = yt * g;
        let at_upper = a >= c;
        let at_lower = a <= 0.0;
        if (at_upper && yt < 0.0) || (at_lower && yt > 0.0) {
            ub = ub.min(yg);
        } else if at_upper || at_lower {
            lb = lb.max(yg);
        } else {
            free += 1;
            sum += f64::from(yg);
        }
    }
    if free > 0 {
        (sum / free as f64) as f32
    } else {
        (ub + lb) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Three classes on concentric rings (radius 1, 2, 3, with noise): no linear classifier
    /// separates them.
    fn rings(n: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut x = Array2::zeros((3 * n, 2));
        let mut y = Vec::new();
        for c in 0..3 {
            for i in 0..n {
                let a: f32 = rng.random_range(0.0..std::f32::consts::TAU);
                let r = (c + 1) as f32 + rng.random_range(-0.2..0.2);
                x[[c * n + i, 0]] = r * a.cos();
                x[[c * n + i, 1]] = r * a.sin();
                y.push(c);
            }
        }
        (x, y)
    }

    #[test]
    fn separates_rings_that_no_line_can() -> Result<()> {
        let (x, y) = rings(60, 0);
        let cfg = SvmConfig {
            gamma_scale: 4.0,
            ..SvmConfig::default()
        };
        let svm = KernelSvm::fit(x.view(), &y, 3, None, &cfg)?;
        let (xt, yt) = rings(50, 1);
        let pred = svm.predict(xt.view())?;
        let correct = pred.iter().zip(&yt).filter(|(p, t)| p == t).count();
        assert!(correct >= 145, "{correct} of 150 test points right");
        assert!(
            svm.num_support() < x.nrows(),
            "every point a support vector"
        );
        // A linear classifier is no better than chance on rings.
        let lin = crate::classify::NeuralClassifier::fit(
            x.view(),
            &y,
            3,
            &crate::classify::NeuralConfig::softmax_regression(),
            &mut StdRng::seed_from_u64(0),
        )?
        .predict(xt.view())?;
        let lin_ok = lin.iter().zip(&yt).filter(|(p, t)| p == t).count();
        assert!(lin_ok < 100, "softmax regression got {lin_ok} of 150");
        Ok(())
    }

    #[test]
    fn smo_meets_the_optimality_conditions() {
        // Two overlapping 1-D classes: some multipliers end at C, some free.
        let xs: Vec<f32> = (0..40).map(|i| i as f32 / 10.0).collect();
        let y: Vec<f32> = (0..40)
            .map(|i| if (i < 22) ^ (i % 7 == 0) { 1.0 } else { -1.0 })
            .collect();
        let k = Array2::from_shape_fn((40, 40), |(i, j)| (-(xs[i] - xs[j]).powi(2)).exp());
        let cfg = SvmConfig {
            c: 1.0,
            tolerance: 1e-4,
            ..SvmConfig::default()
        };
        let (alpha, rho) = smo(&k, &y, &cfg);
        let balance: f32 = alpha.iter().zip(&y).map(|(a, yt)| a * yt).sum();
        assert!(balance.abs() < 1e-4, "yᵀα = {balance}");
        assert!(alpha.iter().all(|&a| (0.0..=cfg.c).contains(&a)));
        // KKT: y_t f(x_t) ≥ 1 at α = 0, = 1 when free, ≤ 1 at C (within the tolerance).
        let mut free = 0;
        for t in 0..40 {
            let f: f32 = (0..40).map(|s| alpha[s] * y[s] * k[[s, t]]).sum::<f32>() - rho;
            let m = y[t] * f;
            if alpha[t] <= 0.0 {
                assert!(m >= 1.0 - 1e-3, "t {t}: margin {m} at α = 0");
            } else if alpha[t] >= cfg.c {
                assert!(m <= 1.0 + 1e-3, "t {t}: margin {m} at α = C");
            } else {
                free += 1;
                assert!((m - 1.0).abs() < 1e-3, "t {t}: margin {m} with free α");
            }
        }
        assert!(free > 0 && alpha.iter().any(|&a| a >= cfg.c));
    }

    #[test]
    fn weights_and_scores_and_errors() -> Result<()> {
        // Feature 0 carries the class, feature 1 is noise ten times larger.
        let mut rng = StdRng::seed_from_u64(3);
        let x = Array2::from_shape_fn((80, 2), |(i, j)| {
            if j == 0 {
                (i % 2) as f32 + rng.random_range(-0.3..0.3)
            } else {
                rng.random_range(-10.0..10.0)
            }
        });
        let y: Vec<usize> = (0..80).map(|i| i % 2).collect();
        let cfg = SvmConfig::default();
        let svm = KernelSvm::fit(x.view(), &y, 2, Some(&[4.0, 0.25]), &cfg)?;
        assert_eq!(svm.predict(x.view())?, y);
        let s = svm.scores(x.view())?;
        for (row, &t) in s.outer_iter().zip(&y) {
            // One pair: the winner has the vote, the loser none, margins within ±0.5.
            assert!(row[t] > 0.5 && row[1 - t] < 0.5);
        }
        // Same data, same machine.
        assert_eq!(
            KernelSvm::fit(x.view(), &y, 2, Some(&[4.0, 0.25]), &cfg)?,
            svm
        );
        assert!(matches!(
            svm.scores(Array2::zeros((1, 3)).view()),
            Err(VisionError::ShapeMismatch { .. })
        ));
        assert!(KernelSvm::fit(x.view(), &y, 2, Some(&[1.0]), &cfg).is_err());
        assert!(KernelSvm::fit(x.view(), &y, 2, Some(&[1.0, 0.0]), &cfg).is_err());
        let bad = SvmConfig { c: 0.0, ..cfg };
        assert!(KernelSvm::fit(x.view(), &y, 2, None, &bad).is_err());
        assert!(KernelSvm::fit(x.view(), &y[..79], 2, None, &SvmConfig::default()).is_err());
        Ok(())
    }
}
