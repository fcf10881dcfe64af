//! Generating with a trained [`Vae`]: prior samples, interpolations, latent traversals.
//!
//! Every function returns mean images `[n, c, h, w]` (Bernoulli: pixel probabilities).

use crate::error::{CoreError, Result};
use crate::model::Vae;
use crate::reparam::sample_eps;
use ndarray::{Array2, Array4, Axis};
use rand::Rng;

/// `n` images decoded from z ~ N(0, I).
pub fn sample_prior(vae: &mut Vae, n: usize, rng: &mut impl Rng) -> Result<Array4<f32>> {
    if n == 0 {
        return Err(CoreError::arg("sample_prior", "n must be > 0"));
    }
    let z = sample_eps(n, vae.latent(), rng);
    vae.decode(&z)
}

/// `steps` images along the straight line between the posterior means of `a` and `b`
/// (each `[1, c, h, w]`), endpoints included.
pub fn interpolate(
    vae: &mut Vae,
    a: &Array4<f32>,
    b: &Array4<f32>,
    steps: usize,
) -> Result<Array4<f32>> {
    if steps < 2 || a.dim().0 != 1 || b.dim().0 != 1 {
        return Err(CoreError::arg(
            "interpolate",
            format!(
                "need steps >= 2 and single images, got steps {steps}, {:?} and {:?}",
                a.shape(),
                b.shape()
            ),
        ));
    }
    let (za, _) = vae.encode(a)?;
    let (zb, _) = vae.encode(b)?;
    let d = vae.latent();
    let z = Array2::from_shape_fn((steps, d), |(i, j)| {
        let t = i as f32 / (steps - 1) as f32;
        (1.0 - t) * za[[0, j]] + t * zb[[0, j]]
    });
    vae.decode(&z)
}

/// Evenly spaced values in `[-span, span]` (`n` of them).
fn grid_values(n: usize, span: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            if n == 1 {
                0.0
            } else {
                -span + 2.0 * span * i as f32 / (n - 1) as f32
            }
        })
        .collect()
}

/// Latent traversal: for each of the first `dims` latent dimensions (a row), `steps` images
/// that move that dimension over `[-span, span]` from `base` (`[d]`, e.g. a posterior mean
/// or zeros) with the others fixed. Returns `[dims · steps, c, h, w]`, row-major.
pub fn traversal(
    vae: &mut Vae,
    base: &[f32],
    dims: usize,
    steps: usize,
    span: f32,
) -> Result<Array4<f32>> {
    let d = vae.latent();
    if base.len() != d || dims == 0 || dims > d || steps == 0 {
        return Err(CoreError::arg(
            "traversal",
            format!(
                "base of length {} (latent {d}), dims {dims}, steps {steps}",
                base.len()
            ),
        ));
    }
    let vals = grid_values(steps, span);
    let mut z = Array2::zeros((dims * steps, d));
    for (row, mut zr) in z.axis_iter_mut(Axis(0)).enumerate() {
        zr.assign(&ndarray::ArrayView1::from(base));
        zr[row / steps] = vals[row % steps];
    }
    vae.decode(&z)
}

/// The 2-D latent manifold (latent = 2): an `n × n` grid of decodes over `[-span, span]²`,
/// top row at +span of the second coordinate, as in Kingma and Welling's figure.
pub fn manifold_2d(vae: &mut Vae, n: usize, span: f32) -> Result<Array4<f32>> {
    if vae.latent() != 2 || n == 0 {
        return Err(CoreError::arg(
            "manifold_2d",
            format!(
                "needs latent 2 and n > 0, got latent {} and n {n}",
                vae.latent()
            ),
        ));
    }
    let vals = grid_values(n, span);
    let z = Array2::from_shape_fn((n * n, 2), |(k, j)| {
        let (r, c) = (k / n, k % n);
        if j == 0 {
            vals[c]
        } else {
            vals[n - 1 - r]
        }
    });
    vae.decode(&z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Preset, VaeConfig};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn vae(latent: usize) -> Vae {
        let cfg = VaeConfig {
            input_shape: [1, 3, 3],
            latent,
            preset: Preset::Mlp { hidden: vec![5] },
            ..VaeConfig::default()
        };
        Vae::new(cfg, &mut StdRng::seed_from_u64(0)).unwrap()
    }

    #[test]
    fn shapes_and_endpoints() {
        let mut v = vae(2);
        let mut rng = StdRng::seed_from_u64(1);
        let s = sample_prior(&mut v, 4, &mut rng).unwrap();
        assert_eq!(s.dim(), (4, 1, 3, 3));
        assert!(s.iter().all(|&p| (0.0..=1.0).contains(&p)));
        let a = Array4::from_elem((1, 1, 3, 3), 0.2f32);
        let b = Array4::from_elem((1, 1, 3, 3), 0.9f32);
        let path = interpolate(&mut v, &a, &b, 5).unwrap();
        assert_eq!(path.dim().0, 5);
        let ra = v.reconstruct(&a).unwrap();
        let rb = v.reconstruct(&b).unwrap();
        assert_eq!(path.index_axis(Axis(0), 0), ra.index_axis(Axis(0), 0));
        assert_eq!(path.index_axis(Axis(0), 4), rb.index_axis(Axis(0), 0));
        assert_eq!(
            traversal(&mut v, &[0.0, 0.0], 2, 3, 2.0).unwrap().dim().0,
            6
        );
        assert_eq!(manifold_2d(&mut v, 4, 2.0).unwrap().dim().0, 16);
    }

    #[test]
    fn traversal_changes_one_dimension_per_row() {
        let mut v = vae(3);
        // Row 1 (dim 1), column 1 of 3 steps is the base itself: value 0 at span centre.
        let t = traversal(&mut v, &[0.5, 0.0, -0.5], 3, 3, 1.0).unwrap();
        let base = v.decode(&ndarray::array![[0.5f32, 0.0, -0.5]]).unwrap();
        assert_eq!(t.index_axis(Axis(0), 4), base.index_axis(Axis(0), 0));
        assert!(manifold_2d(&mut v, 3, 1.0).is_err());
        assert!(traversal(&mut v, &[0.0], 1, 3, 1.0).is_err());
    }
}
