//! Missing-pixel imputation with a trained VAE.
//!
//! Start with the missing pixels set to a fill image (e.g. the training mean), then repeat
//! `x ← observed ? x : decode(encode_mean(x))`: the observed pixels stay fixed and the model
//! fills in the rest. Errors are measured on the missing pixels only, against the
//! mean-fill baseline that stops before the first iteration.

use crate::data::{chunks, ImageSource, EVAL_BATCH};
use crate::error::{CoreError, Result};
use crate::model::Vae;
use ndarray::{Array3, Array4, Axis, Zip};
use rand::Rng;

/// Which pixels are missing, as a mask with 1 = observed, 0 = missing (`[n, c, h, w]`).
pub fn mask_top_half(n: usize, shape: [usize; 3]) -> Array4<f32> {
    let [c, h, w] = shape;
    Array4::from_shape_fn(
        (n, c, h, w),
        |(_, _, i, _)| if i < h / 2 { 0.0 } else { 1.0 },
    )
}

/// A mask where each pixel (all channels together) is missing with probability `missing`.
pub fn mask_random(n: usize, shape: [usize; 3], missing: f32, rng: &mut impl Rng) -> Array4<f32> {
    let [c, h, w] = shape;
    let keep = Array3::from_shape_simple_fn((n, h, w), || {
        if rng.random::<f32>() < missing {
            0.0
        } else {
            1.0
        }
    });
    Array4::from_shape_fn((n, c, h, w), |(k, _, i, j)| keep[[k, i, j]])
}

/// The per-pixel mean image `[c, h, w]` of a data set, accumulated in f64 over batches
/// of 1000 (so a `u8` source is never expanded to `f32` all at once).
pub fn mean_image(data: &dyn ImageSource) -> Result<Array3<f32>> {
    if data.is_empty() {
        return Err(CoreError::arg("mean_image", "empty data set"));
    }
    let [c, h, w] = data.image_shape();
    let mut sum = Array3::<f64>::zeros((c, h, w));
    for (_, b) in chunks(data, 1000) {
        for im in b.axis_iter(Axis(0)) {
            Zip::from(&mut sum)
                .and(&im)
                .for_each(|s, &v| *s += v as f64);
        }
    }
    Ok(sum.mapv(|s| (s / data.len() as f64) as f32))
}

/// Errors on the missing pixels after imputation.
#[derive(Debug, Clone, PartialEq)]
pub struct ImputationReport {
    /// Number of missing pixel values (over all images and channels).
    pub missing: usize,
    /// Iterations of encode/decode run.
    pub iterations: usize,
    /// Mean squared error of the VAE imputation on missing pixels.
    pub mse: f64,
    /// Mean squared error of the mean-fill baseline on missing pixels.
    pub mse_mean_fill: f64,
    /// Mean absolute error of the VAE imputation on missing pixels.
    pub mae: f64,
    /// Mean absolute error of the mean-fill baseline on missing pixels.
    pub mae_mean_fill: f64,
    /// The imputed images (observed pixels untouched).
    pub imputed: Array4<f32>,
}

impl ImputationReport {
    /// The four errors as JSON (`mse`, `mse_mean_fill`, `mae`, `mae_mean_fill`, `missing`).
    pub fn metrics_json(&self) -> serde_json::Value {
        serde_json::json!({
            "mse": self.mse, "mse_mean_fill": self.mse_mean_fill,
            "mae": self.mae, "mae_mean_fill": self.mae_mean_fill,
            "missing": self.missing, "iterations": self.iterations,
        })
    }
}

impl std::fmt::Display for ImputationReport {
    /// `MSE a vs mean-fill b (MAE c vs d) on n missing values`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MSE {:.4} vs mean-fill {:.4} (MAE {:.4} vs {:.4}) on {} missing values",
            self.mse, self.mse_mean_fill, self.mae, self.mae_mean_fill, self.missing
        )
    }
}

/// Imputes the pixels of `x` where `observed` is 0, starting from `fill` (`[c, h, w]`),
/// with `iterations` encode/decode rounds, in batches of [`EVAL_BATCH`]. See the [module docs](self).
pub fn impute(
    vae: &mut Vae,
    x: &Array4<f32>,
    observed: &Array4<f32>,
    fill: &Array3<f32>,
    iterations: usize,
) -> Result<ImputationReport> {
    let (n, c, h, w) = x.dim();
    if observed.dim() != x.dim() || fill.dim() != (c, h, w) || n == 0 {
        return Err(CoreError::arg(
            "impute",
            format!(
                "x {:?}, mask {:?} and fill {:?} disagree",
                x.shape(),
                observed.shape(),
                fill.shape()
            ),
        ));
    }
    let mean_fill = Zip::from(x)
        .and(observed)
        .and(
            &fill
                .broadcast((n, c, h, w))
                .expect("[c,h,w] broadcasts to [n,c,h,w]"),
        )
        .map_collect(|&x, &m, &f| if m > 0.5 { x } else { f });
    let mut cur = mean_fill.clone();
    for _ in 0..iterations {
        let mut next = Vec::with_capacity(n);
        for s in (0..n).step_by(EVAL_BATCH) {
            let idx: Vec<usize> = (s..(s + EVAL_BATCH).min(n)).collect();
            next.push(vae.reconstruct(&cur.select(Axis(0), &idx))?);
        }
        let views: Vec<_> = next.iter().map(|a| a.view()).collect();
        let recon = ndarray::concatenate(Axis(0), &views)
            .map_err(|e| CoreError::arg("impute", e.to_string()))?;
        Zip::from(&mut cur)
            .and(observed)
            .and(&recon)
            .for_each(|c, &m, &r| {
                if m <= 0.5 {
                    *c = r
                }
            });
    }
    let (mut se, mut se0, mut ae, mut ae0, mut missing) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0usize);
    Zip::from(x)
        .and(observed)
        .and(&cur)
        .and(&mean_fill)
        .for_each(|&x, &m, &v, &f| {
            if m <= 0.5 {
                let (d, d0) = ((v - x) as f64, (f - x) as f64);
                se += d * d;
                se0 += d0 * d0;
                ae += d.abs();
                ae0 += d0.abs();
                missing += 1;
            }
        });
    let k = missing.max(1) as f64;
    Ok(ImputationReport {
        missing,
        iterations,
        mse: se / k,
        mse_mean_fill: se0 / k,
        mae: ae / k,
        mae_mean_fill: ae0 / k,
        imputed: cur,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Preset, VaeConfig};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn observed_pixels_stay_and_zero_iterations_is_the_baseline() {
        let cfg = VaeConfig {
            input_shape: [1, 4, 4],
            latent: 2,
            preset: Preset::Mlp { hidden: vec![8] },
            ..VaeConfig::default()
        };
        let mut rng = StdRng::seed_from_u64(0);
        let mut vae = Vae::new(cfg, &mut rng).unwrap();
        let x = Array4::from_shape_simple_fn((3, 1, 4, 4), || rng.random::<f32>());
        let mask = mask_top_half(3, [1, 4, 4]);
        let fill = mean_image(&x).unwrap();
        let direct = x.mean_axis(Axis(0)).unwrap();
        assert!(fill.iter().zip(&direct).all(|(a, b)| (a - b).abs() < 1e-6));
        let r0 = impute(&mut vae, &x, &mask, &fill, 0).unwrap();
        assert_eq!(r0.missing, 3 * 8);
        assert_eq!(r0.mse, r0.mse_mean_fill);
        let r = impute(&mut vae, &x, &mask, &fill, 3).unwrap();
        Zip::from(&x)
            .and(&mask)
            .and(&r.imputed)
            .for_each(|&a, &m, &b| {
                if m > 0.5 {
                    assert_eq!(a, b);
                }
            });
        assert_ne!(r.mse, r.mse_mean_fill);
        let m = mask_random(2, [1, 4, 4], 0.5, &mut rng);
        assert!(m.iter().all(|&v| v == 0.0 || v == 1.0));
        assert!(
            impute(&mut vae, &x, &m, &fill, 1).is_err(),
            "mask of the wrong batch size"
        );
    }
}
