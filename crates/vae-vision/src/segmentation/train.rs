//! Training a [`SegNet`] with per-pixel softmax cross-entropy, predicting label maps, and
//! scoring them (pixel accuracy, IoU, mIoU, boundary F through [`crate::metrics`]).

use ndarray::{Array3, Array4, ArrayD, Axis};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use vae_tensor::layer::{zero_grad, Layer, Mode};
use vae_tensor::loss::softmax_cross_entropy;
use vae_tensor::optim::{Adam, AdamConfig, Optimizer};

use super::head::SegNet;
use super::scenes::SegSet;
use crate::error::{Result, VisionError};
use crate::metrics::{boundary_f_measure, ConfusionMatrix, SegmentationScores};

/// How the cross-entropy weighs the classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassWeighting {
    /// Every class weighs 1.
    None,
    /// `w_c ∝ 1/√f_c` (f_c = pixel frequency in the training set), normalised so that the
    /// pixel-weighted mean is 1; classes absent from the training set weigh 0.
    InverseSqrt,
}

/// Class weights for `freqs` (fractions of pixels per class) under `scheme`.
pub fn class_weights(freqs: &[f64], scheme: ClassWeighting) -> Vec<f32> {
    match scheme {
        ClassWeighting::None => vec![1.0; freqs.len()],
        ClassWeighting::InverseSqrt => {
            let raw: Vec<f64> = freqs
                .iter()
                .map(|&f| if f > 0.0 { 1.0 / f.sqrt() } else { 0.0 })
                .collect();
            let mean: f64 = raw.iter().zip(freqs).map(|(w, f)| w * f).sum();
            raw.iter().map(|w| (w / mean.max(1e-12)) as f32).collect()
        }
    }
}

/// Settings of [`train_segnet`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegTrainConfig {
    /// Passes; each pass draws a fresh training set from the generator.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Adam learning rate (halved for the last quarter of the epochs).
    pub lr: f32,
    /// Seed of the batch order.
    pub seed: u64,
}

/// Loss of one training pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegEpoch {
    /// 1-based pass number.
    pub epoch: usize,
    /// Mean weighted cross-entropy over the pass's batches (nats per pixel).
    pub loss: f64,
    /// Images seen in the pass.
    pub images: usize,
}

/// One optimisation step on a batch: forward, weighted softmax cross-entropy, backward,
/// Adam. Returns the loss before the step.
///
/// # Errors
/// [`VisionError::Tensor`] on a shape problem; [`VisionError::BadValue`] for a non-finite loss.
pub fn train_step(
    net: &mut SegNet,
    opt: &mut dyn Optimizer,
    images: Array4<f32>,
    labels: &Array3<u8>,
    weights: Option<&[f32]>,
) -> Result<f64> {
    zero_grad(net);
    let logits = net.forward(images.into_dyn(), Mode::Train)?;
    let y: ArrayD<usize> = labels.mapv(|v| v as usize).into_dyn();
    let out = softmax_cross_entropy(&logits, &y, weights, None)?;
    if !out.value.is_finite() {
        return Err(VisionError::BadValue {
            op: "segmentation::train_step",
            what: format!("loss {}", out.value),
        });
    }
    net.backward(out.grad)?;
    opt.step(net)?;
    Ok(out.value)
}

/// Trains `net` for `cfg.epochs` passes; pass `e` (0-based) trains on `data(e)` in shuffled
/// batches, so a generator can hand out fresh scenes each pass. `on_epoch` sees each pass's
/// loss.
///
/// # Errors
/// Whatever `data` returns; [`VisionError::InvalidParameter`] for zero epochs or batch
/// size; errors of [`train_step`].
pub fn train_segnet(
    net: &mut SegNet,
    mut data: impl FnMut(usize) -> Result<SegSet>,
    weights: Option<&[f32]>,
    cfg: &SegTrainConfig,
    mut on_epoch: impl FnMut(&SegEpoch),
) -> Result<Vec<SegEpoch>> {
    if cfg.epochs == 0 || cfg.batch_size == 0 {
        return Err(VisionError::param(
            "train_segnet",
            "epochs/batch_size",
            format!("{}/{}", cfg.epochs, cfg.batch_size),
            "must be positive",
        ));
    }
    let mut opt = Adam::new(AdamConfig::adam(cfg.lr));
    let mut history = Vec::new();
    for e in 0..cfg.epochs {
        if 4 * e >= 3 * cfg.epochs && cfg.epochs >= 4 {
            opt.set_lr(cfg.lr * 0.5);
        }
        let set = data(e)?;
        let mut rng = StdRng::seed_from_u64(cfg.seed.wrapping_add(e as u64));
        let mut order: Vec<usize> = (0..set.len()).collect();
        order.shuffle(&mut rng);
        let (mut sum, mut steps) = (0.0, 0usize);
        for idx in order.chunks(cfg.batch_size) {
            let x = set.images.select(Axis(0), idx);
            let y = set.labels.select(Axis(0), idx);
            sum += train_step(net, &mut opt, x, &y, weights)?;
            steps += 1;
        }
        let stats = SegEpoch {
            epoch: e + 1,
            loss: sum / steps.max(1) as f64,
            images: set.len(),
        };
        on_epoch(&stats);
        history.push(stats);
    }
    Ok(history)
}

/// The most likely class of every pixel, `[n, H, W]`, in batches of `batch` images.
///
/// # Errors
/// [`VisionError::Tensor`] when the images do not fit the network.
pub fn predict(net: &mut SegNet, images: &Array4<f32>, batch: usize) -> Result<Array3<u8>> {
    let (n, _, h, w) = images.dim();
    let mut out = Array3::<u8>::zeros((n, h, w));
    for start in (0..n).step_by(batch.max(1)) {
        let end = (start + batch.max(1)).min(n);
        let idx: Vec<usize> = (start..end).collect();
        let logits = net.forward(images.select(Axis(0), &idx).into_dyn(), Mode::Eval)?;
        let logits = logits
            .into_dimensionality::<ndarray::Ix4>()
            .map_err(|_| VisionError::shape("predict", &[end - start, 0, h, w], &[]))?;
        for (i, img) in logits.outer_iter().enumerate() {
            for y in 0..h {
                for x in 0..w {
                    let mut best = 0;
                    for c in 1..img.dim().0 {
                        if img[[c, y, x]] > img[[best, y, x]] {
                            best = c;
                        }
                    }
                    out[[start + i, y, x]] = best as u8;
                }
            }
        }
    }
    Ok(out)
}

/// Nearest-neighbour upsampling of label maps by an integer factor.
pub fn upsample_labels(labels: &Array3<u8>, factor: usize) -> Array3<u8> {
    let (n, h, w) = labels.dim();
    let f = factor.max(1);
    Array3::from_shape_fn((n, h * f, w * f), |(i, y, x)| labels[[i, y / f, x / f]])
}

/// Scores of predicted label maps against the truth.
#[derive(Debug, Clone, PartialEq)]
pub struct SegReport {
    /// Fraction of pixels labelled correctly.
    pub pixel_accuracy: f64,
    /// IoU of each class (`None` for a class absent from both maps).
    pub per_class_iou: Vec<Option<f64>>,
    /// Mean IoU over the classes that occur.
    pub mean_iou: f64,
    /// Mean boundary F-measure over the images at [`SegReport::boundary_tolerance`].
    pub boundary_f: f64,
    /// The tolerance (pixels) of the boundary F-measure.
    pub boundary_tolerance: f64,
    /// Per-pixel confusion matrix (rows = true class).
    pub confusion: ConfusionMatrix,
}

/// Scores `pred` against `truth` (both `[n, H, W]`) with `num_classes` classes.
///
/// # Errors
/// [`VisionError::ShapeMismatch`], [`VisionError::LabelOutOfRange`], or
/// [`VisionError::Empty`] for no images.
pub fn score(
    pred: &Array3<u8>,
    truth: &Array3<u8>,
    num_classes: usize,
    boundary_tolerance: f64,
) -> Result<SegReport> {
    if pred.dim() != truth.dim() {
        let (a, b) = (truth.dim(), pred.dim());
        return Err(VisionError::shape(
            "segmentation::score",
            &[a.0, a.1, a.2],
            &[b.0, b.1, b.2],
        ));
    }
    if pred.is_empty() {
        return Err(VisionError::Empty {
            op: "segmentation::score",
            what: "no pixels".into(),
        });
    }
    let mut scores = SegmentationScores::new(num_classes);
    let mut bf = 0.0;
    for (p, t) in pred.outer_iter().zip(truth.outer_iter()) {
        scores.add(p, t)?;
        bf += boundary_f_measure(p, t, boundary_tolerance)?.f;
    }
    Ok(SegReport {
        pixel_accuracy: scores.pixel_accuracy().unwrap_or(0.0),
        per_class_iou: scores.per_class_iou(),
        mean_iou: scores.mean_iou().unwrap_or(0.0),
        boundary_f: bf / pred.dim().0 as f64,
        boundary_tolerance,
        confusion: scores.confusion,
    })
}
