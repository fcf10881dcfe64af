//! The LBP baseline end to end on a tiny synthetic texture set: stripes, checkerboards
//! and noise at random scales, orientations and phases, each with a little pixel noise.

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vae_vision::classical::{lbp_multiscale_histogram, LbpConfig};
use vae_vision::knn::ChiSquareKnn;
use vae_vision::metrics::{accuracy, ConfusionMatrix};

const SIZE: usize = 40;

/// Class 0: sinusoidal stripes; 1: checkerboard; 2: uniform noise.
fn texture(class: usize, rng: &mut impl Rng) -> Array2<f32> {
    let period: f32 = rng.random_range(5.0..9.0);
    let angle: f32 = rng.random_range(0.0..std::f32::consts::PI);
    let phase: f32 = rng.random_range(0.0..std::f32::consts::TAU);
    let (s, c) = angle.sin_cos();
    Array2::from_shape_fn((SIZE, SIZE), |(y, x)| {
        let (u, v) = (c * x as f32 + s * y as f32, -s * x as f32 + c * y as f32);
        let k = std::f32::consts::TAU / period;
        let base = match class {
            0 => 0.5 + 0.4 * (k * u + phase).sin(),
            1 => {
                let a = (k * u + phase).sin() >= 0.0;
                let b = (k * v).sin() >= 0.0;
                if a == b {
                    0.8
                } else {
                    0.2
                }
            }
            _ => rng.random_range(0.0..1.0),
        };
        base + rng.random_range(-0.03..0.03)
    })
}

fn features(imgs: &[Array2<f32>], cfg: &LbpConfig) -> Array2<f32> {
    let mut f = Array2::<f32>::zeros((imgs.len(), cfg.len()));
    for (row, img) in f.rows_mut().into_iter().zip(imgs) {
        let h = lbp_multiscale_histogram(img.view(), cfg).unwrap();
        row.into_iter().zip(h).for_each(|(d, v)| *d = v);
    }
    f
}

#[test]
fn lbp_chi_square_nn_separates_stripes_checkerboards_and_noise() {
    let mut rng = StdRng::seed_from_u64(7);
    let cfg = LbpConfig::default();
    let (mut train, mut train_y, mut test, mut test_y) = (vec![], vec![], vec![], vec![]);
    for class in 0..3 {
        for _ in 0..8 {
            train.push(texture(class, &mut rng));
            train_y.push(class);
        }
        for _ in 0..10 {
            test.push(texture(class, &mut rng));
            test_y.push(class);
        }
    }
    let knn = ChiSquareKnn::fit(features(&train, &cfg).view(), &train_y, 3, 1).unwrap();
    let pred = knn.predict(features(&test, &cfg).view()).unwrap();
    let cm = ConfusionMatrix::from_labels(&test_y, &pred, 3).unwrap();
    eprintln!("{}", cm.to_text(Some(&["stripes", "checker", "noise"])));
    assert_eq!(accuracy(&pred, &test_y).unwrap(), 1.0);
}
