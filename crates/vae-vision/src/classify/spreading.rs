//! Label spreading on a sparse k-nearest-neighbour graph (Zhou, Bousquet, Lal, Weston and
//! Schölkopf 2004, "Learning with local and global consistency"): a transductive classifier
//! that lets a few labels flow along the data manifold to the unlabelled points.
//!
//! 1. Features are standardised (zero mean, unit variance over every point, labelled or not);
//!    features whose standard deviation is below [`SpreadingConfig::min_std`] are dropped
//!    first (e.g. the inactive units of a VAE, whose posterior mean barely moves).
//! 2. Each point is joined to its `k` Euclidean nearest neighbours (exact search); an edge
//!    weighs `w_ij = exp(-d_ij² / (σ_i σ_j))` with the local scale `σ_i` = distance to the
//!    point's `min(k, 7)`-th neighbour (Zelnik-Manor and Perona 2004). The graph is made
//!    symmetric with `W = max(W, Wᵀ)`.
//! 3. `S = D^{-1/2} W D^{-1/2}` with the degrees `D = diag(W 1)`.
//! 4. `F ← α S F + (1 − α) Y` from `F = Y` until the largest change is below
//!    `tol · max|F|` or `max_iter` passes, where `Y` holds one-hot rows for labelled points
//!    (each class's rows scaled by 1 / its number of labels) and zeros elsewhere.
//! 5. A point's class is the argmax of its row of `F`.
//!
//! Everything is deterministic (ties break by index) and parallel over points with rayon;
//! nothing is random, so no seed is needed.

use super::{check_training_set, Standardizer};
use crate::error::{Result, VisionError};
use ndarray::{concatenate, Array2, ArrayView2, Axis, Slice};
use rayon::prelude::*;

/// Settings of label spreading.
#[derive(Debug, Clone, PartialEq)]
pub struct SpreadingConfig {
    /// Neighbours per point in the graph (before symmetrisation).
    pub k: usize,
    /// How far labels spread, in `(0, 1)`: the weight of the neighbours against the point's
    /// own label.
    pub alpha: f32,
    /// The most passes of `F ← α S F + (1 − α) Y`.
    pub max_iter: usize,
    /// Stop when the largest change of `F` in a pass is below `tol · max|F|`.
    pub tol: f32,
    /// Standardise the features before measuring distances.
    pub standardize: bool,
    /// Drop features whose standard deviation over all points is below this (before
    /// standardising); at least one feature must remain.
    pub min_std: f32,
}

impl Default for SpreadingConfig {
    /// `k = 10`, `α = 0.99`, at most 1000 passes, `tol = 1e-5`, standardised features, features
    /// with a standard deviation below 0.05 dropped.
    fn default() -> Self {
        SpreadingConfig {
            k: 10,
            alpha: 0.99,
            max_iter: 1000,
            tol: 1e-5,
            standardize: true,
            min_std: 0.05,
        }
    }
}

impl SpreadingConfig {
    fn validate(&self, op: &'static str) -> Result<()> {
        if self.k == 0 {
            return Err(VisionError::param(op, "k", self.k, "must be at least 1"));
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(VisionError::param(
                op,
                "alpha",
                self.alpha,
                "must lie in (0, 1)",
            ));
        }
        if self.max_iter == 0 {
            return Err(VisionError::param(op, "max_iter", 0, "must be at least 1"));
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return Err(VisionError::param(
                op,
                "tol",
                self.tol,
                "must be finite and ≥ 0",
            ));
        }
        if !(self.min_std.is_finite() && self.min_std >= 0.0) {
            return Err(VisionError::param(
                op,
                "min_std",
                self.min_std,
                "must be finite and ≥ 0",
            ));
        }
        Ok(())
    }
}

/// The normalised affinity `S = D^{-1/2} W D^{-1/2}` of a symmetric k-NN graph, stored as
/// compressed sparse rows. Build it once per feature set and spread several label sets on
/// it.
///
/// ```
/// use ndarray::array;
/// use vae_vision::classify::{KnnGraph, SpreadingConfig};
/// // Two chains far apart; one label at the end of each.
/// let x = array![[0.0f32], [1.0], [2.0], [3.0], [20.0], [21.0], [22.0], [23.0]];
/// let cfg = SpreadingConfig { k: 1, standardize: false, min_std: 0.0, ..SpreadingConfig::default() };
/// let graph = KnnGraph::build(x.view(), &cfg)?;
/// let pred = graph.predict(&[(0, 0), (7, 1)], 2, &cfg)?;
/// assert_eq!(pred, vec![0, 0, 0, 0, 1, 1, 1, 1]);
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct KnnGraph {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
    k: usize,
}

impl KnnGraph {
    /// Builds the graph over the rows of `x` (`[n, d]`, n ≥ 2, finite) with `cfg.k`
    /// neighbours per point (at most `n − 1`), after the feature selection and
    /// standardisation of `cfg`.
    pub fn build(x: ArrayView2<f32>, cfg: &SpreadingConfig) -> Result<Self> {
        const OP: &str = "KnnGraph::build";
        cfg.validate(OP)?;
        let n = x.nrows();
        if n < 2 || x.ncols() == 0 {
            return Err(VisionError::Empty {
                op: OP,
                what: format!("need at least 2 points with features, got {:?}", x.shape()),
            });
        }
        if n > u32::MAX as usize {
            return Err(VisionError::param(OP, "points", n, "must fit in u32"));
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(VisionError::BadValue {
                op: OP,
                what: "features contain NaN or infinity".into(),
            });
        }
        let feats = prepare_features(x, cfg, OP)?;
        let k = cfg.k.min(n - 1);
        let neighbours = nearest_neighbours(feats.view(), k);
        // Local scale: distance to the min(k, 7)-th neighbour (never exactly zero).
        let scale_rank = k.min(7) - 1;
        let sigma: Vec<f32> = neighbours
            .iter()
            .map(|nb| nb[scale_rank].1.sqrt().max(1e-12))
            .collect();
        // Symmetric W = max(W, Wᵀ): every directed edge in both directions, then per row
        // sorted by column with duplicates merged by max.
        let mut rows: Vec<Vec<(u32, f32)>> = vec![Vec::with_capacity(2 * k); n];
        for (i, nb) in neighbours.iter().enumerate() {
            for &(j, d2) in nb {
                let w = (-(d2 as f64) / (sigma[i] as f64 * sigma[j as usize] as f64)).exp() as f32;
                rows[i].push((j, w));
                rows[j as usize].push((i as u32, w));
            }
        }
        rows.par_iter_mut().for_each(|r| {
            r.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
            r.dedup_by_key(|e| e.0);
        });
        let degree: Vec<f64> = rows
            .iter()
            .map(|r| r.iter().map(|&(_, w)| w as f64).sum::<f64>())
            .collect();
        let mut indptr = Vec::with_capacity(n + 1);
        let mut indices = Vec::new();
        let mut values = Vec::new();
        indptr.push(0);
        for (i, r) in rows.iter().enumerate() {
            for &(j, w) in r {
                let dd = degree[i] * degree[j as usize];
                indices.push(j);
                values.push(if dd > 0.0 {
                    (w as f64 / dd.sqrt()) as f32
                } else {
                    0.0
                });
            }
            indptr.push(indices.len());
        }
        Ok(KnnGraph {
            indptr,
            indices,
            values,
            k,
        })
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Whether the graph has no points (never true for a built graph).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Neighbours per point the graph was built with (after capping at `n − 1`).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Stored edges (both directions of each undirected edge count).
    pub fn num_edges(&self) -> usize {
        self.indices.len()
    }

    /// The edge weight `S_ij` (0 when `i` and `j` are not joined).
    pub fn weight(&self, i: usize, j: usize) -> f32 {
        if i >= self.len() {
            return 0.0;
        }
        let cols = &self.indices[self.indptr[i]..self.indptr[i + 1]];
        match cols.binary_search(&(j as u32)) {
            Ok(p) => self.values[self.indptr[i] + p],
            Err(_) => 0.0,
        }
    }

    /// Spreads the `seeds` (`(point, label)` pairs, labels below `num_classes`) and returns
    /// the converged scores `F` (`[n, num_classes]`). Uses `cfg.alpha`, `cfg.max_iter` and
    /// `cfg.tol`.
    pub fn spread(
        &self,
        seeds: &[(usize, usize)],
        num_classes: usize,
        cfg: &SpreadingConfig,
    ) -> Result<Array2<f32>> {
        const OP: &str = "KnnGraph::spread";
        cfg.validate(OP)?;
        let n = self.len();
        if seeds.is_empty() {
            return Err(VisionError::Empty {
                op: OP,
                what: "no labelled points".into(),
            });
        }
        let mut per_class = vec![0usize; num_classes];
        for &(p, l) in seeds {
            if l >= num_classes {
                return Err(VisionError::LabelOutOfRange {
                    op: OP,
                    label: l,
                    num_classes,
                });
            }
            if p >= n {
                return Err(VisionError::param(
                    OP,
                    "seed point",
                    p,
                    format!("must be below {n}"),
                ));
            }
            per_class[l] += 1;
        }
        let c = num_classes;
        let mut y = vec![0.0f32; n * c];
        for &(p, l) in seeds {
            y[p * c + l] += 1.0 / per_class[l] as f32;
        }
        let mut f = y.clone();
        let mut next = vec![0.0f32; n * c];
        let (alpha, beta) = (cfg.alpha, 1.0 - cfg.alpha);
        for _ in 0..cfg.max_iter {
            let (change, top) = next
                .par_chunks_mut(c)
                .enumerate()
                .map(|(i, out)| {
                    let mut acc = vec![0.0f32; c];
                    for e in self.indptr[i]..self.indptr[i + 1] {
                        let j = self.indices[e] as usize;
                        let s = self.values[e];
                        for (a, &fj) in acc.iter_mut().zip(&f[j * c..(j + 1) * c]) {
                            *a += s * fj;
                        }
                    }
                    let mut change = 0.0f32;
                    let mut top = 0.0f32;
                    for (q, o) in out.iter_mut().enumerate() {
                        let v = alpha * acc[q] + beta * y[i * c + q];
                        change = change.max((v - f[i * c + q]).abs());
                        top = top.max(v.abs());
                        *o = v;
                    }
                    (change, top)
                })
                .reduce(|| (0.0, 0.0), |a, b| (a.0.max(b.0), a.1.max(b.1)));
            std::mem::swap(&mut f, &mut next);
            if change <= cfg.tol * top {
                break;
            }
        }
        Ok(Array2::from_shape_vec((n, c), f).expect("n × c scores"))
    }

    /// Spreads the `seeds` and returns every point's class: the argmax of its scores. A
    /// point no label reached (a graph component without seeds) gets the most frequent seed
    /// label (the smallest such class on ties).
    pub fn predict(
        &self,
        seeds: &[(usize, usize)],
        num_classes: usize,
        cfg: &SpreadingConfig,
    ) -> Result<Vec<usize>> {
        let f = self.spread(seeds, num_classes, cfg)?;
        let mut counts = vec![0usize; num_classes];
        for &(_, l) in seeds {
            counts[l] += 1;
        }
        let prior = (0..num_classes)
            .max_by(|&a, &b| counts[a].cmp(&counts[b]).then(b.cmp(&a)))
            .expect("at least one class");
        Ok(f.rows()
            .into_iter()
            .map(|r| {
                let (best, v) =
                    r.iter()
                        .enumerate()
                        .fold((0, 0.0f32), |b, (q, &v)| if v > b.1 { (q, v) } else { b });
                if v > 0.0 {
                    best
                } else {
                    prior
                }
            })
            .collect())
    }
}

/// Keeps the features with enough spread and standardises them, as `cfg` asks.
fn prepare_features(
    x: ArrayView2<f32>,
    cfg: &SpreadingConfig,
    op: &'static str,
) -> Result<Array2<f32>> {
    let std = x.std_axis(Axis(0), 0.0);
    let keep: Vec<usize> = (0..x.ncols()).filter(|&j| std[j] >= cfg.min_std).collect();
    if keep.is_empty() {
        return Err(VisionError::BadValue {
            op,
            what: format!(
                "no feature has a standard deviation of at least min_std = {}",
                cfg.min_std
            ),
        });
    }
    let kept = x.select(Axis(1), &keep);
    Ok(if cfg.standardize {
        Standardizer::fit(kept.view()).transform(kept.view())
    } else {
        kept
    })
}

/// The `k` nearest other points of every row (index, squared distance), nearest first; ties
/// by index. Exact, one matrix product per block of queries, blocks in parallel.
fn nearest_neighbours(x: ArrayView2<f32>, k: usize) -> Vec<Vec<(u32, f32)>> {
    const BLOCK: usize = 128;
    let n = x.nrows();
    let norms: Vec<f32> = x.rows().into_iter().map(|r| r.dot(&r)).collect();
    let xt = x.t();
    let starts: Vec<usize> = (0..n).step_by(BLOCK).collect();
    starts
        .par_iter()
        .flat_map_iter(|&s0| {
            let end = (s0 + BLOCK).min(n);
            let q = x.slice_axis(Axis(0), Slice::from(s0..end));
            let dots = q.dot(&xt); // [b, n]
            let norms = &norms;
            (s0..end)
                .zip(dots.axis_iter(Axis(0)))
                .map(move |(i, d)| {
                    // Keep the k best in a sorted buffer: most candidates fail the first
                    // comparison against the current k-th distance.
                    let before = |a: (u32, f32), b: (u32, f32)| {
                        a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)).is_lt()
                    };
                    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
                    for (j, (&dot, &nj)) in d.iter().zip(norms).enumerate() {
                        if j == i {
                            continue;
                        }
                        let cand = (j as u32, (norms[i] + nj - 2.0 * dot).max(0.0));
                        if best.len() == k && !before(cand, best[k - 1]) {
                            continue;
                        }
                        let pos = best.partition_point(|&b| before(b, cand));
                        best.insert(pos, cand);
                        best.truncate(k);
                    }
                    best
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Transductive label spreading for the [`Method`](super::Method) interface: the graph joins
/// the labelled rows `train_x`, the `unlabelled` rows and the `test_x` rows; the test rows'
/// classes are returned.
pub fn spread_labels(
    train_x: ArrayView2<f32>,
    train_y: &[usize],
    unlabelled: Option<ArrayView2<f32>>,
    test_x: ArrayView2<f32>,
    num_classes: usize,
    cfg: &SpreadingConfig,
) -> Result<Vec<usize>> {
    const OP: &str = "spread_labels";
    check_training_set(OP, train_x, train_y, num_classes)?;
    let d = train_x.ncols();
    for part in unlabelled.iter().chain(std::iter::once(&test_x)) {
        if part.ncols() != d {
            return Err(VisionError::shape(OP, &[part.nrows(), d], part.shape()));
        }
    }
    let mut parts = vec![train_x];
    parts.extend(unlabelled);
    parts.push(test_x);
    let all = concatenate(Axis(0), &parts).expect("same number of columns");
    let graph = KnnGraph::build(all.view(), cfg)?;
    let seeds: Vec<(usize, usize)> = train_y.iter().copied().enumerate().collect();
    let pred = graph.predict(&seeds, num_classes, cfg)?;
    Ok(pred[all.nrows() - test_x.nrows()..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::EuclideanKnn;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use rand_distr::{Distribution, Normal};

    /// Two interleaved half circles with Gaussian noise; label = moon.
    fn two_moons(n_per: usize, noise: f32, rng: &mut StdRng) -> (Array2<f32>, Vec<usize>) {
        let nd = Normal::new(0.0f32, noise).unwrap();
        let mut x = Array2::zeros((2 * n_per, 2));
        let mut y = Vec::new();
        for i in 0..2 * n_per {
            let moon = i % 2;
            let t = std::f32::consts::PI * rng.random::<f32>();
            let (a, b) = if moon == 0 {
                (t.cos(), t.sin())
            } else {
                (1.0 - t.cos(), 0.5 - t.sin())
            };
            x[[i, 0]] = a + nd.sample(rng);
            x[[i, 1]] = b + nd.sample(rng);
            y.push(moon);
        }
        (x, y)
    }

    fn accuracy(p: &[usize], y: &[usize]) -> f64 {
        p.iter().zip(y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64
    }

    #[test]
    fn beats_knn_on_two_moons_with_two_labels_per_class() {
        let mut rng = StdRng::seed_from_u64(3);
        let (x, y) = two_moons(300, 0.08, &mut rng);
        let cfg = SpreadingConfig::default();
        let graph = KnnGraph::build(x.view(), &cfg).unwrap();
        let (mut ls_total, mut knn_total) = (0.0, 0.0);
        for trial in 0..5u64 {
            // Two random labelled points per moon.
            let mut r = StdRng::seed_from_u64(100 + trial);
            let mut seeds = Vec::new();
            for class in 0..2 {
                let members: Vec<usize> = (0..y.len()).filter(|&i| y[i] == class).collect();
                for _ in 0..2 {
                    let p = members[r.random_range(0..members.len())];
                    seeds.push((p, class));
                }
            }
            let ls = graph.predict(&seeds, 2, &cfg).unwrap();
            let lx = x.select(Axis(0), &seeds.iter().map(|s| s.0).collect::<Vec<_>>());
            let ly: Vec<usize> = seeds.iter().map(|s| s.1).collect();
            let knn = EuclideanKnn::fit(lx.view(), &ly, 2, 1)
                .unwrap()
                .predict(x.view())
                .unwrap();
            ls_total += accuracy(&ls, &y);
            knn_total += accuracy(&knn, &y);
        }
        let (ls, knn) = (ls_total / 5.0, knn_total / 5.0);
        // Measured: label spreading 0.969, 1-NN on the 4 labelled points 0.841.
        assert!(ls > 0.95, "label spreading {ls}");
        assert!(ls > knn + 0.1, "label spreading {ls} vs 1-NN {knn}");
    }

    #[test]
    fn beats_knn_on_elongated_clusters_through_the_method_interface() {
        // Three long thin clusters side by side: a point's nearest labelled point is often in
        // the neighbouring cluster, but its chain of neighbours stays inside its own.
        let mut rng = StdRng::seed_from_u64(4);
        let nd = Normal::new(0.0f32, 0.15).unwrap();
        let n = 900;
        let mut x = Array2::zeros((n, 3));
        let mut y = Vec::new();
        for i in 0..n {
            let c = i % 3;
            x[[i, 0]] = 1.5 * c as f32 + nd.sample(&mut rng);
            x[[i, 1]] = rng.random_range(-10.0..10.0);
            x[[i, 2]] = nd.sample(&mut rng);
            y.push(c);
        }
        // One labelled point per class, at different heights.
        let labelled = [0usize, 4, 8];
        let heights = [-8.0f32, 0.0, 8.0];
        let mut lx = x.select(Axis(0), &labelled);
        for (r, &h) in heights.iter().enumerate() {
            lx[[r, 1]] = h;
        }
        let ly: Vec<usize> = labelled.iter().map(|&i| y[i]).collect();
        let cfg = SpreadingConfig::default();
        let ls = crate::classify::Method::LabelSpreading(cfg)
            .fit_predict_transductive(lx.view(), &ly, None, x.view(), 3, &mut rng)
            .unwrap();
        let knn = EuclideanKnn::fit(lx.view(), &ly, 3, 1)
            .unwrap()
            .predict(x.view())
            .unwrap();
        let (a_ls, a_knn) = (accuracy(&ls, &y), accuracy(&knn, &y));
        assert!(a_ls > 0.95, "label spreading {a_ls}");
        assert!(a_ls > a_knn + 0.2, "label spreading {a_ls} vs 1-NN {a_knn}");
    }

    #[test]
    fn graph_is_symmetric_normalised_and_deterministic() {
        let mut rng = StdRng::seed_from_u64(5);
        let (x, _) = two_moons(60, 0.1, &mut rng);
        let cfg = SpreadingConfig {
            k: 6,
            ..SpreadingConfig::default()
        };
        let g = KnnGraph::build(x.view(), &cfg).unwrap();
        assert_eq!(g, KnnGraph::build(x.view(), &cfg).unwrap());
        assert_eq!(g.len(), 120);
        assert!(g.num_edges() >= 120 * 6);
        for i in 0..g.len() {
            assert_eq!(g.weight(i, i), 0.0);
            for e in g.indptr[i]..g.indptr[i + 1] {
                let j = g.indices[e] as usize;
                assert!(g.values[e] > 0.0);
                assert_eq!(g.values[e], g.weight(j, i), "S[{i},{j}] vs S[{j},{i}]");
            }
        }
        let seeds = [(0, 0), (1, 1)];
        let a = g.spread(&seeds, 2, &cfg).unwrap();
        let b = g.spread(&seeds, 2, &cfg).unwrap();
        assert_eq!(a, b);
        assert!(a.iter().all(|v| v.is_finite() && *v >= 0.0));
    }

    #[test]
    fn unreached_points_take_the_most_frequent_seed_label() {
        // Two far clusters, k = 1: the right cluster has no seeds.
        let x = ndarray::array![[0.0f32], [0.1], [0.2], [50.0], [50.1]];
        let cfg = SpreadingConfig {
            k: 1,
            standardize: false,
            min_std: 0.0,
            ..SpreadingConfig::default()
        };
        let g = KnnGraph::build(x.view(), &cfg).unwrap();
        let pred = g.predict(&[(0, 2), (1, 2), (2, 1)], 3, &cfg).unwrap();
        assert_eq!(&pred[3..], &[2, 2]);
    }

    #[test]
    fn inactive_features_are_dropped_before_standardising() {
        // Features 1..9 are near-constant noise (like a VAE's inactive units); standardised,
        // they would dominate the distances.
        let mut rng = StdRng::seed_from_u64(6);
        let mut x = Array2::zeros((200, 9));
        let mut y = Vec::new();
        for i in 0..200 {
            let c = i % 2;
            x[[i, 0]] = c as f32 * 4.0 + rng.random_range(-1.0..1.0);
            for j in 1..9 {
                x[[i, j]] = rng.random_range(-1e-3..1e-3);
            }
            y.push(c);
        }
        let seeds = [(0, 0), (1, 1)];
        let cfg = SpreadingConfig::default();
        let pred = KnnGraph::build(x.view(), &cfg)
            .unwrap()
            .predict(&seeds, 2, &cfg)
            .unwrap();
        assert_eq!(accuracy(&pred, &y), 1.0);
        let keep_all = SpreadingConfig {
            min_std: 0.0,
            ..cfg.clone()
        };
        let noisy = KnnGraph::build(x.view(), &keep_all)
            .unwrap()
            .predict(&seeds, 2, &keep_all)
            .unwrap();
        assert!(accuracy(&noisy, &y) < 0.9, "{}", accuracy(&noisy, &y));
    }

    #[test]
    fn bad_input_is_an_error() {
        let x = ndarray::array![[0.0f32, 1.0], [1.0, 0.0], [2.0, 2.0]];
        let cfg = SpreadingConfig::default();
        for bad in [
            SpreadingConfig {
                k: 0,
                ..cfg.clone()
            },
            SpreadingConfig {
                alpha: 1.0,
                ..cfg.clone()
            },
            SpreadingConfig {
                max_iter: 0,
                ..cfg.clone()
            },
        ] {
            assert!(matches!(
                KnnGraph::build(x.view(), &bad),
                Err(VisionError::InvalidParameter { .. })
            ));
        }
        assert!(matches!(
            KnnGraph::build(x.slice_axis(Axis(0), Slice::from(0..1)), &cfg),
            Err(VisionError::Empty { .. })
        ));
        let mut nan = x.clone();
        nan[[0, 0]] = f32::NAN;
        assert!(matches!(
            KnnGraph::build(nan.view(), &cfg),
            Err(VisionError::BadValue { .. })
        ));
        let flat = Array2::<f32>::ones((3, 2));
        assert!(matches!(
            KnnGraph::build(flat.view(), &cfg),
            Err(VisionError::BadValue { .. })
        ));
        let g = KnnGraph::build(x.view(), &cfg).unwrap();
        assert_eq!(g.k(), 2);
        assert!(matches!(
            g.spread(&[(0, 5)], 2, &cfg),
            Err(VisionError::LabelOutOfRange { .. })
        ));
        assert!(matches!(
            g.spread(&[(9, 0)], 2, &cfg),
            Err(VisionError::InvalidParameter { .. })
        ));
        assert!(matches!(
            g.spread(&[], 2, &cfg),
            Err(VisionError::Empty { .. })
        ));
        assert!(matches!(
            spread_labels(
                x.view(),
                &[0, 1, 0],
                None,
                Array2::zeros((2, 3)).view(),
                2,
                &cfg
            ),
            Err(VisionError::ShapeMismatch { .. })
        ));
    }
}
