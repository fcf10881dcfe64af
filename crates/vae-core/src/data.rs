//! Where training images come from: anything that can fill a `[n, c, h, w]` batch.
//!
//! The trainer and the evaluation helpers only need [`ImageSource`], so images can live in
//! an `f32` array, in compact `u8` pixels (a quarter of the memory: full MNIST is 47 MB
//! instead of 188 MB), or in a `vae-data` data set.

use crate::error::{CoreError, Result};
use ndarray::{Array4, ArrayView4, Axis};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Images per forward pass in evaluation helpers (test ELBO, imputation, encodings): the
/// training batch of the reference setup, so evaluation never needs more activation
/// memory than training at batch 128.
pub const EVAL_BATCH: usize = 128;

/// A set of equally shaped images with values in `[0, 1]`.
pub trait ImageSource: Sync {
    /// Number of images.
    fn len(&self) -> usize;
    /// True when there are no images.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The shape `[c, h, w]` of every image.
    fn image_shape(&self) -> [usize; 3];
    /// The images at `indices` (each `< len()`), as a `[indices.len(), c, h, w]` batch.
    fn batch(&self, indices: &[usize]) -> Array4<f32>;
}

fn shape3(d: (usize, usize, usize, usize)) -> [usize; 3] {
    [d.1, d.2, d.3]
}

impl ImageSource for Array4<f32> {
    fn len(&self) -> usize {
        self.dim().0
    }
    fn image_shape(&self) -> [usize; 3] {
        shape3(self.dim())
    }
    fn batch(&self, indices: &[usize]) -> Array4<f32> {
        self.select(Axis(0), indices)
    }
}

impl ImageSource for ArrayView4<'_, f32> {
    fn len(&self) -> usize {
        self.dim().0
    }
    fn image_shape(&self) -> [usize; 3] {
        shape3(self.dim())
    }
    fn batch(&self, indices: &[usize]) -> Array4<f32> {
        self.select(Axis(0), indices)
    }
}

/// A loaded MNIST / Fashion-MNIST split from `vae-data`.
impl ImageSource for vae_data::mnist::Mnist {
    fn len(&self) -> usize {
        self.images.dim().0
    }
    fn image_shape(&self) -> [usize; 3] {
        shape3(self.images.dim())
    }
    fn batch(&self, indices: &[usize]) -> Array4<f32> {
        self.images.select(Axis(0), indices)
    }
}

/// Grey levels `0..=255` are mapped to `v / 255`.
impl ImageSource for Array4<u8> {
    fn len(&self) -> usize {
        self.dim().0
    }
    fn image_shape(&self) -> [usize; 3] {
        shape3(self.dim())
    }
    fn batch(&self, indices: &[usize]) -> Array4<f32> {
        self.select(Axis(0), indices).mapv(|v| v as f32 / 255.0)
    }
}

/// How pixel values in `[0, 1]` are turned into training targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Binarization {
    /// Use the grey levels as they are (the pytorch-examples protocol).
    #[default]
    None,
    /// Draw every pixel as Bernoulli(value) afresh each time it is used (dynamically
    /// binarized MNIST, as in the IWAE paper).
    Dynamic,
}

impl Binarization {
    /// Parses `"none"` or `"dynamic"`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "none" => Ok(Binarization::None),
            "dynamic" => Ok(Binarization::Dynamic),
            other => Err(CoreError::config(
                "binarization",
                format!("unknown binarization {other:?} (expected none or dynamic)"),
            )),
        }
    }

    /// Applies the binarization to a batch in place, drawing from `rng`
    /// (`vae_data::transform::binarize_dynamic_mut`). Dynamic binarization of a value
    /// outside `[0, 1]` (or NaN) is a [`CoreError::Data`] error.
    pub fn apply(self, x: &mut Array4<f32>, rng: &mut impl Rng) -> Result<()> {
        if self == Binarization::Dynamic {
            vae_data::transform::binarize_dynamic_mut(x, rng)?;
        }
        Ok(())
    }
}

/// All images of `src` in order, in chunks of at most `chunk`, as `(first index, batch)`.
pub fn chunks<'a>(
    src: &'a dyn ImageSource,
    chunk: usize,
) -> impl Iterator<Item = (usize, Array4<f32>)> + 'a {
    let chunk = chunk.max(1);
    (0..src.len()).step_by(chunk).map(move |s| {
        let idx: Vec<usize> = (s..(s + chunk).min(src.len())).collect();
        (s, src.batch(&idx))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn u8_and_f32_sources_agree() {
        let u = Array4::from_shape_fn((3, 1, 2, 2), |(n, _, i, j)| (n * 60 + i * 20 + j * 5) as u8);
        let f = u.mapv(|v| v as f32 / 255.0);
        assert_eq!(u.batch(&[2, 0]), f.batch(&[2, 0]));
        assert_eq!(u.image_shape(), [1, 2, 2]);
        let all: Vec<usize> = chunks(&u, 2).map(|(s, b)| s * 10 + b.dim().0).collect();
        assert_eq!(all, vec![2, 21]);
    }

    #[test]
    fn dynamic_binarization_is_binary_seeded_and_unbiased() {
        let mut x = Array4::from_elem((10, 1, 10, 10), 0.3f32);
        let mut y = x.clone();
        Binarization::Dynamic
            .apply(&mut x, &mut StdRng::seed_from_u64(1))
            .unwrap();
        Binarization::Dynamic
            .apply(&mut y, &mut StdRng::seed_from_u64(1))
            .unwrap();
        assert_eq!(x, y);
        assert!(x.iter().all(|&v| v == 0.0 || v == 1.0));
        let mean = x.mean().unwrap();
        assert!((mean - 0.3).abs() < 0.05, "{mean}");
        let mut z = Array4::from_elem((1, 1, 2, 2), 0.3f32);
        Binarization::None
            .apply(&mut z, &mut StdRng::seed_from_u64(1))
            .unwrap();
        let mut bad = Array4::from_elem((1, 1, 1, 1), 1.5f32);
        let e = Binarization::Dynamic
            .apply(&mut bad, &mut StdRng::seed_from_u64(1))
            .unwrap_err();
        assert!(matches!(e, CoreError::Data(_)));
        assert!(z.iter().all(|&v| v == 0.3));
    }
}
