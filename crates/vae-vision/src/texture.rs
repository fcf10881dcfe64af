//! Texture (and digit) recognition on VAE features: encode images or patches with a trained
//! VAE encoder, classify the features, and vote patches into one label per source image.

use crate::error::{Result, VisionError};
use ndarray::{concatenate, Array2, Axis};
use vae_core::{ImageSource, Vae};

/// Which encoder outputs make a feature vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeatureKind {
    /// The posterior mean μ(x) (`latent` features).
    #[default]
    Mean,
    /// μ(x) followed by log σ²(x) (`2 · latent` features).
    MeanLogvar,
    /// The encoder's last hidden layer, which the μ and log σ² heads read
    /// ([`Vae::encode_hidden`]; 256 features for the `conv` preset).
    Hidden,
}

/// Encodes every image of `images` (in batches of `batch`) into a `[n, features]` matrix.
///
/// ```
/// use ndarray::Array4;
/// use rand::{rngs::StdRng, SeedableRng};
/// use vae_core::{Preset, Vae, VaeConfig};
/// use vae_vision::texture::{encode_features, FeatureKind};
/// let cfg = VaeConfig { input_shape: [1, 8, 8], latent: 3, preset: Preset::Mlp { hidden: vec![16] }, ..VaeConfig::default() };
/// let mut vae = Vae::new(cfg, &mut StdRng::seed_from_u64(0))?;
/// let images = Array4::<f32>::zeros((5, 1, 8, 8));
/// let f = encode_features(&mut vae, &images, FeatureKind::MeanLogvar, 2)?;
/// assert_eq!(f.dim(), (5, 6));
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
pub fn encode_features(
    vae: &mut Vae,
    images: &dyn ImageSource,
    kind: FeatureKind,
    batch: usize,
) -> Result<Array2<f32>> {
    if batch == 0 {
        return Err(VisionError::param(
            "encode_features",
            "batch",
            0,
            "must be at least 1",
        ));
    }
    let idx: Vec<usize> = (0..images.len()).collect();
    let mut out = Array2::zeros((0, 0));
    for (chunk_no, chunk) in idx.chunks(batch).enumerate() {
        let x = images.batch(chunk);
        let f = match kind {
            FeatureKind::Hidden => vae.encode_hidden(&x)?,
            FeatureKind::Mean => vae.encode(&x)?.0,
            FeatureKind::MeanLogvar => {
                let (mu, logvar) = vae.encode(&x)?;
                concatenate(Axis(1), &[mu.view(), logvar.view()]).expect("same number of rows")
            }
        };
        if chunk_no == 0 {
            out = Array2::zeros((images.len(), f.ncols()));
        }
        let start = chunk_no * batch;
        out.slice_axis_mut(Axis(0), (start..start + chunk.len()).into())
            .assign(&f);
    }
    Ok(out)
}

/// Majority vote of patch predictions into one label per source image.
///
/// `owners[i]` is the source image of patch `i` (`< num_images`). Ties go to the smallest
/// class index. An image without patches is an error.
///
/// ```
/// use vae_vision::texture::vote;
/// let labels = vote(&[2, 2, 0, 1, 1, 1], &[0, 0, 0, 1, 1, 1], 2, 3)?;
/// assert_eq!(labels, vec![2, 1]);
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
pub fn vote(
    predictions: &[usize],
    owners: &[usize],
    num_images: usize,
    num_classes: usize,
) -> Result<Vec<usize>> {
    const OP: &str = "vote";
    if predictions.len() != owners.len() {
        return Err(VisionError::shape(
            OP,
            &[predictions.len()],
            &[owners.len()],
        ));
    }
    let mut counts = vec![vec![0usize; num_classes]; num_images];
    for (&p, &o) in predictions.iter().zip(owners) {
        if p >= num_classes {
            return Err(VisionError::LabelOutOfRange {
                op: OP,
                label: p,
                num_classes,
            });
        }
        if o >= num_images {
            return Err(VisionError::param(
                OP,
                "owner",
                o,
                format!("must be below {num_images}"),
            ));
        }
        counts[o][p] += 1;
    }
    counts
        .iter()
        .enumerate()
        .map(|(img, c)| {
            let best = *c.iter().max().unwrap_or(&0);
            if best == 0 {
                return Err(VisionError::Empty {
                    op: OP,
                    what: format!("image {img} has no patches"),
                });
            }
            Ok(c.iter().position(|&v| v == best).expect("max exists"))
        })
        .collect()
}

/// Pools patch features into one vector per source image: the mean and the standard
/// deviation of its patches' features (`[num_images, 2 · features]`), a bag-of-latents
/// descriptor in the manner of texture statistics.
pub fn pool_by_owner(
    features: &Array2<f32>,
    owners: &[usize],
    num_images: usize,
) -> Result<Array2<f32>> {
    const OP: &str = "pool_by_owner";
    if owners.len() != features.nrows() {
        return Err(VisionError::shape(OP, &[features.nrows()], &[owners.len()]));
    }
    let d = features.ncols();
    let mut sum = Array2::<f64>::zeros((num_images, d));
    let mut sq = Array2::<f64>::zeros((num_images, d));
    let mut n = vec![0usize; num_images];
    for (row, &o) in features.rows().into_iter().zip(owners) {
        if o >= num_images {
            return Err(VisionError::param(
                OP,
                "owner",
                o,
                format!("must be below {num_images}"),
            ));
        }
        n[o] += 1;
        for (j, &v) in row.iter().enumerate() {
            sum[[o, j]] += v as f64;
            sq[[o, j]] += v as f64 * v as f64;
        }
    }
    let mut out = Array2::zeros((num_images, 2 * d));
    for i in 0..num_images {
        if n[i] == 0 {
            return Err(VisionError::Empty {
                op: OP,
                what: format!("image {i} has no patches"),
            });
        }
        let k = n[i] as f64;
        for j in 0..d {
            let mean = sum[[i, j]] / k;
            out[[i, j]] = mean as f32;
            out[[i, d + j]] = (sq[[i, j]] / k - mean * mean).max(0.0).sqrt() as f32;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn vote_errors() {
        assert!(matches!(
            vote(&[0], &[0, 1], 2, 2),
            Err(VisionError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            vote(&[5], &[0], 1, 2),
            Err(VisionError::LabelOutOfRange { .. })
        ));
        assert!(matches!(
            vote(&[0], &[0], 2, 2),
            Err(VisionError::Empty { .. })
        ));
        assert_eq!(vote(&[1, 0], &[0, 0], 1, 2).unwrap(), vec![0]);
    }

    #[test]
    fn pooling_gives_mean_and_std_per_image() {
        let f = array![[1.0f32, 0.0], [3.0, 0.0], [5.0, 2.0]];
        let p = pool_by_owner(&f, &[0, 0, 1], 2).unwrap();
        assert_eq!(p, array![[2.0f32, 0.0, 1.0, 0.0], [5.0, 2.0, 0.0, 0.0]]);
        assert!(pool_by_owner(&f, &[0, 0, 0], 2).is_err());
    }
}

/// One method's score on a test set.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodScore {
    /// `features+classifier`, e.g. `vae-mean+mlp256` or `lbp+chi2-1nn`.
    pub name: String,
    /// Fraction of test items (images, after any patch vote) classified correctly.
    pub accuracy: f64,
    /// The test confusion matrix.
    pub confusion: crate::metrics::classification::ConfusionMatrix,
}

/// Runs every classifier in `methods` on one feature set and scores it.
///
/// With `owners = Some((train_owners, test_owners, num_test_images, test_image_labels))`
/// the rows are patches: predictions on test patches are voted into one label per test
/// image (see [`vote`]) and scored against the image labels.
#[allow(clippy::too_many_arguments)]
pub fn score_methods(
    features: &str,
    methods: &[crate::classify::Method],
    train_x: ndarray::ArrayView2<f32>,
    train_y: &[usize],
    test_x: ndarray::ArrayView2<f32>,
    test_y: &[usize],
    num_classes: usize,
    patch_vote: Option<(&[usize], usize, &[usize])>,
    rng: &mut impl rand::Rng,
) -> Result<Vec<MethodScore>> {
    use crate::metrics::classification::ConfusionMatrix;
    let mut out = Vec::new();
    for m in methods {
        let pred = m.fit_predict(train_x, train_y, test_x, num_classes, rng)?;
        let (pred, truth) = match patch_vote {
            Some((owners, n_images, image_labels)) => {
                (vote(&pred, owners, n_images, num_classes)?, image_labels)
            }
            None => (pred, test_y),
        };
        let confusion = ConfusionMatrix::from_labels(truth, &pred, num_classes)?;
        out.push(MethodScore {
            name: format!("{features}+{}", m.name()),
            accuracy: confusion.accuracy().unwrap_or(0.0),
            confusion,
        });
    }
    Ok(out)
}

/// Multi-scale riu2 LBP descriptors ([`lbp_multiscale_histogram`]) of grey images, one row
/// per image, computed in parallel.
///
/// [`lbp_multiscale_histogram`]: crate::classical::lbp_multiscale_histogram
pub fn lbp_descriptors(
    images: &[Array2<f32>],
    cfg: &crate::classical::LbpConfig,
) -> Result<Array2<f32>> {
    use rayon::prelude::*;
    let rows: Vec<Vec<f32>> = images
        .par_iter()
        .map(|img| crate::classical::lbp_multiscale_histogram(img.view(), cfg))
        .collect::<Result<_>>()?;
    let mut out = Array2::zeros((rows.len(), cfg.len()));
    for (mut o, r) in out.rows_mut().into_iter().zip(rows) {
        o.assign(&ndarray::ArrayView1::from(&r[..]));
    }
    Ok(out)
}
