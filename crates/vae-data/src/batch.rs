//! Mini-batches: a seeded shuffle per epoch, and batches that keep or drop the last short one.
//!
//! ```
//! use ndarray::Array4;
//! use rand::{rngs::StdRng, SeedableRng};
//! use vae_data::batch::{shuffled_batches, LastBatch};
//!
//! let images = Array4::<f32>::zeros((10, 1, 2, 2));
//! let labels: Vec<u8> = (0..10).collect();
//! let mut rng = StdRng::seed_from_u64(0);
//! for _epoch in 0..2 {
//!     // A fresh permutation each epoch, drawn from the one seeded rng.
//!     let sizes: Vec<usize> = shuffled_batches(images.view(), &labels, 4, LastBatch::Keep, &mut rng)?
//!         .map(|b| b.labels.len())
//!         .collect();
//!     assert_eq!(sizes, [4, 4, 2]);
//! }
//! let n = shuffled_batches(images.view(), &labels, 4, LastBatch::Drop, &mut rng)?.count();
//! assert_eq!(n, 2);
//! # Ok::<(), vae_data::DataError>(())
//! ```

use ndarray::{Array4, ArrayView4, Axis};
use rand::seq::SliceRandom;
use rand::Rng;

use crate::error::{DataError, Result};

/// What to do with a last batch smaller than the batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastBatch {
    /// Yield it (every item is seen once per epoch).
    Keep,
    /// Skip it (every batch has exactly the batch size).
    Drop,
}

/// One mini-batch, copied out of the data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch<L = u8> {
    /// `[b, c, h, w]`.
    pub images: Array4<f32>,
    /// `b` labels, or empty when the data set has none.
    pub labels: Vec<L>,
    /// Index in the data set of each item.
    pub indices: Vec<usize>,
}

/// Iterator over the batches of one epoch; see [`batches`] and [`shuffled_batches`].
#[derive(Debug, Clone)]
pub struct Batches<'a, L = u8> {
    images: ArrayView4<'a, f32>,
    labels: &'a [L],
    order: Vec<usize>,
    batch_size: usize,
    pos: usize,
    end: usize,
}

/// A uniformly random permutation of `0..n` drawn from `rng` (Fisher–Yates).
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use vae_data::batch::epoch_order;
/// let a = epoch_order(5, &mut StdRng::seed_from_u64(1));
/// let b = epoch_order(5, &mut StdRng::seed_from_u64(1));
/// assert_eq!(a, b); // same seed, same order
/// let mut sorted = a.clone();
/// sorted.sort();
/// assert_eq!(sorted, [0, 1, 2, 3, 4]);
/// ```
pub fn epoch_order(n: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    order
}

/// Batches in data-set order.
///
/// `labels` (any `Copy` type: `u8` for MNIST, `usize` for image folders) must have one
/// label per image, or be empty for unlabelled data.
///
/// # Errors
/// [`DataError::InvalidArgument`] if `batch_size` is 0 or `labels` has the wrong length.
pub fn batches<'a, L: Copy>(
    images: ArrayView4<'a, f32>,
    labels: &'a [L],
    batch_size: usize,
    last: LastBatch,
) -> Result<Batches<'a, L>> {
    let order = (0..images.shape()[0]).collect();
    Batches::new(images, labels, order, batch_size, last)
}

/// Batches in a fresh random order drawn from `rng` (call once per epoch).
///
/// # Errors
/// As [`batches`].
pub fn shuffled_batches<'a, L: Copy>(
    images: ArrayView4<'a, f32>,
    labels: &'a [L],
    batch_size: usize,
    last: LastBatch,
    rng: &mut impl Rng,
) -> Result<Batches<'a, L>> {
    let order = epoch_order(images.shape()[0], rng);
    Batches::new(images, labels, order, batch_size, last)
}

impl<'a, L: Copy> Batches<'a, L> {
    /// Batches visiting the items of `order` (indices into `images`) in that order.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] if `batch_size` is 0, `labels` is neither empty nor
    /// one per image, or an index in `order` is out of range.
    pub fn new(
        images: ArrayView4<'a, f32>,
        labels: &'a [L],
        order: Vec<usize>,
        batch_size: usize,
        last: LastBatch,
    ) -> Result<Self> {
        let n = images.shape()[0];
        if batch_size == 0 {
            return Err(DataError::arg("batch_size", "must be at least 1"));
        }
        if !labels.is_empty() && labels.len() != n {
            return Err(DataError::arg(
                "labels",
                format!("{} labels for {n} images", labels.len()),
            ));
        }
        if let Some(&i) = order.iter().find(|&&i| i >= n) {
            return Err(DataError::arg(
                "order",
                format!("index {i} out of range for {n} images"),
            ));
        }
        let end = match last {
            LastBatch::Keep => order.len(),
            LastBatch::Drop => order.len() / batch_size * batch_size,
        };
        Ok(Batches {
            images,
            labels,
            order,
            batch_size,
            pos: 0,
            end,
        })
    }

    /// Number of batches left.
    pub fn remaining(&self) -> usize {
        (self.end - self.pos).div_ceil(self.batch_size)
    }
}

impl<L: Copy> Iterator for Batches<'_, L> {
    type Item = Batch<L>;

    fn next(&mut self) -> Option<Batch<L>> {
        if self.pos >= self.end {
            return None;
        }
        let stop = (self.pos + self.batch_size).min(self.end);
        let indices = self.order[self.pos..stop].to_vec();
        self.pos = stop;
        let images = self.images.select(Axis(0), &indices);
        let labels = if self.labels.is_empty() {
            Vec::new()
        } else {
            indices.iter().map(|&i| self.labels[i]).collect()
        };
        Some(Batch {
            images,
            labels,
            indices,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let r = self.remaining();
        (r, Some(r))
    }
}

impl<L: Copy> ExactSizeIterator for Batches<'_, L> {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn data(n: usize) -> (Array4<f32>, Vec<u8>) {
        let images = Array4::from_shape_fn((n, 1, 1, 2), |(i, _, _, j)| (i * 2 + j) as f32);
        (images, (0..n as u8).collect())
    }

    #[test]
    fn keep_and_drop_cover_the_right_items() {
        let (x, y) = data(10);
        let all: Vec<Batch> = batches(x.view(), &y, 3, LastBatch::Keep).unwrap().collect();
        assert_eq!(all.len(), 4);
        assert_eq!(all[3].indices, vec![9]);
        assert_eq!(all[1].images[[2, 0, 0, 1]], 11.0); // item 5, pixel 1
        let mut dropped = batches(x.view(), &y, 3, LastBatch::Drop).unwrap();
        assert_eq!(dropped.len(), 3);
        assert!(dropped.all(|b| b.labels.len() == 3));
        // Exact multiple: nothing to drop.
        assert_eq!(batches(x.view(), &y, 5, LastBatch::Drop).unwrap().len(), 2);
    }

    #[test]
    fn shuffles_are_seeded_permutations_that_change_per_epoch() {
        let (x, y) = data(50);
        let mut rng = StdRng::seed_from_u64(3);
        let e1: Vec<usize> = shuffled_batches(x.view(), &y, 7, LastBatch::Keep, &mut rng)
            .unwrap()
            .flat_map(|b| {
                // Labels and images travel together.
                for (k, &i) in b.indices.iter().enumerate() {
                    assert_eq!(b.labels[k] as usize, i);
                    assert_eq!(b.images[[k, 0, 0, 0]], (2 * i) as f32);
                }
                b.indices
            })
            .collect();
        let e2: Vec<usize> = shuffled_batches(x.view(), &y, 7, LastBatch::Keep, &mut rng)
            .unwrap()
            .flat_map(|b| b.indices)
            .collect();
        assert_ne!(e1, e2);
        let mut s = e1.clone();
        s.sort();
        assert_eq!(s, (0..50).collect::<Vec<_>>());
        let again: Vec<usize> = shuffled_batches(
            x.view(),
            &y,
            7,
            LastBatch::Keep,
            &mut StdRng::seed_from_u64(3),
        )
        .unwrap()
        .flat_map(|b| b.indices)
        .collect();
        assert_eq!(e1, again);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let (x, y) = data(4);
        assert!(matches!(
            batches(x.view(), &y, 0, LastBatch::Keep),
            Err(DataError::InvalidArgument {
                name: "batch_size",
                ..
            })
        ));
        assert!(batches(x.view(), &y[..3], 2, LastBatch::Keep).is_err());
        assert!(Batches::new(x.view(), &y, vec![0, 4], 2, LastBatch::Keep).is_err());
        // Unlabelled data.
        let b = batches(x.view(), &[] as &[u8], 4, LastBatch::Keep)
            .unwrap()
            .next()
            .unwrap();
        assert!(b.labels.is_empty());
    }
}
