//! # vae-vision
//!
//! Vision on top of vae-rs:
//!
//! * [`classify`]: classifiers on feature vectors (VAE latents, raw pixels): softmax
//!   regression and a small MLP built from `vae-tensor` layers, and Euclidean k-NN.
//! * [`classical`]: edge detectors (Sobel, Prewitt, Roberts, Canny as in scikit-image),
//!   Gaussian smoothing, non-maximum suppression and thinning, rotation-invariant uniform
//!   local binary patterns. Free functions on grey images `ArrayView2<f32>` of shape
//!   `[h, w]` (row-major, y down), in the style of `imageproc`.
//! * [`edges`]: classical detectors as soft edge maps, the precision-recall picture, and
//!   the learned edge head on a VAE encoder (HED-style side outputs, class-balanced loss).
//! * [`metrics`]: the BSDS500 boundary benchmark (ODS, OIS, AP), classification metrics
//!   (accuracy, per-class accuracy, confusion matrix as text and PNG) and segmentation
//!   metrics (pixel accuracy, IoU, mIoU, boundary F-measure).
//! * [`texton`]: orderless texture descriptors from a VAE trained on small patches: texton
//!   histograms (seeded k-means over the posterior means of every patch of an image
//!   pyramid), with the same pipeline on raw patches and LBP as baselines on one split.
//! * [`knn`]: a chi-square nearest-neighbour classifier for histogram features (the LBP
//!   texture baseline).
//!
//! Bad arguments give a [`VisionError`]; functions that can only fail on a programming
//! error (arrays of different shapes passed to an internal step) say so in `# Panics`.
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

pub mod classical;
pub mod classify;
pub mod edges;
pub mod error;
pub mod knn;
pub mod metrics;
pub mod segmentation;
pub mod texton;
pub mod texture;
pub mod texture_task;

pub use error::{Result, VisionError};
