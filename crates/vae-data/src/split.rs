//! Seeded index splits: train/validation, and a labelled subset with N labels per class
//! (for semi-supervised use). Both return indices; take the items with
//! [`Mnist::subset`](crate::mnist::Mnist::subset) or `ArrayBase::select`.

use rand::seq::SliceRandom;
use rand::Rng;

use crate::batch::epoch_order;
use crate::error::{DataError, Result};

/// Splits `0..n` at random into `(train, validation)` with `n_val` validation items. Each
/// part is sorted, so the split is a choice of items, not an order.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use vae_data::split::train_val_split;
/// let (train, val) = train_val_split(10, 2, &mut StdRng::seed_from_u64(5))?;
/// assert_eq!((train.len(), val.len()), (8, 2));
/// assert!(val.iter().all(|i| !train.contains(i)));
/// # Ok::<(), vae_data::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::InvalidArgument`] if `n_val > n`.
pub fn train_val_split(
    n: usize,
    n_val: usize,
    rng: &mut impl Rng,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if n_val > n {
        return Err(DataError::arg(
            "n_val",
            format!("{n_val} validation items from {n}"),
        ));
    }
    let order = epoch_order(n, rng);
    let mut val = order[..n_val].to_vec();
    let mut train = order[n_val..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    Ok((train, val))
}

/// Picks `per_class` random items of each class `0..num_classes`, sorted by index.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use vae_data::split::labelled_subset;
/// let labels = [0u8, 1, 0, 1, 0, 1, 2, 2];
/// let idx = labelled_subset(&labels, 2, 3, &mut StdRng::seed_from_u64(0))?;
/// assert_eq!(idx.len(), 6);
/// for c in 0..3 {
///     assert_eq!(idx.iter().filter(|&&i| labels[i] == c).count(), 2);
/// }
/// # Ok::<(), vae_data::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::InvalidArgument`] if a label is ≥ `num_classes` or a class has fewer than
/// `per_class` items.
pub fn labelled_subset(
    labels: &[u8],
    per_class: usize,
    num_classes: usize,
    rng: &mut impl Rng,
) -> Result<Vec<usize>> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class
            .get_mut(l as usize)
            .ok_or_else(|| {
                DataError::arg(
                    "labels",
                    format!("label {l} at index {i} is not below {num_classes}"),
                )
            })?
            .push(i);
    }
    let mut out = Vec::with_capacity(per_class * num_classes);
    for (c, items) in by_class.iter_mut().enumerate() {
        if items.len() < per_class {
            return Err(DataError::arg(
                "per_class",
                format!(
                    "class {c} has {} items, fewer than {per_class}",
                    items.len()
                ),
            ));
        }
        items.shuffle(rng);
        out.extend_from_slice(&items[..per_class]);
    }
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn splits_partition_and_are_seeded() {
        let (t, v) = train_val_split(100, 10, &mut StdRng::seed_from_u64(1)).unwrap();
        let mut all: Vec<usize> = t.iter().chain(&v).copied().collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(
            train_val_split(100, 10, &mut StdRng::seed_from_u64(1))
                .unwrap()
                .1,
            v
        );
        assert_ne!(
            train_val_split(100, 10, &mut StdRng::seed_from_u64(2))
                .unwrap()
                .1,
            v
        );
        assert!(train_val_split(3, 4, &mut StdRng::seed_from_u64(1)).is_err());
        assert_eq!(
            train_val_split(3, 3, &mut StdRng::seed_from_u64(1))
                .unwrap()
                .0,
            vec![]
        );
    }

    #[test]
    fn labelled_subset_errors() {
        let mut rng = StdRng::seed_from_u64(0);
        assert!(labelled_subset(&[0, 1, 1], 2, 2, &mut rng).is_err()); // class 0 has 1
        assert!(labelled_subset(&[0, 5], 1, 2, &mut rng).is_err()); // label 5 ≥ 2
        assert_eq!(labelled_subset(&[1, 0], 0, 2, &mut rng).unwrap(), vec![]);
    }
}
