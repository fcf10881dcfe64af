//! Semantic segmentation with a head on a VAE encoder.
//!
//! * [`scenes`]: data generated from real images and a seed: MNIST digit scenes (11 classes:
//!   background and the ten digits) and KTH-TIPS texture mosaics (Randen and Husøy's
//!   quadrants-and-disc layout and random Voronoi layouts).
//! * [`head`]: [`SegNet`], the source document's head (conv 64 → conv 128 → conv-transpose to
//!   the class count) on a VAE's two convolutions, with dilated context convolutions and
//!   U-Net skips, hand-written backward.
//! * [`train`]: weighted per-pixel softmax cross-entropy training, prediction, scores
//!   (pixel accuracy, per-class IoU, mIoU, boundary F, confusion matrix via
//!   [`crate::metrics`]).
//! * [`task`]: the two benchmark tasks end to end, with the from-scratch ablation.
//! * [`textons`]: a second mosaic method without a trained head: windowed VAE-texton
//!   histograms classified by chi-square nearest neighbour ([`TextonSegmenter`]), and a
//!   region-level variant ([`textons::regions`]): unsupervised k-means grouping of each
//!   image's points, each group classified as a whole.
//! * [`overlay`]: PNG panels of input, ground truth and prediction.

pub mod head;
pub mod overlay;
pub mod scenes;
pub mod task;
pub mod textons;
pub mod train;

pub use head::{SegNet, SegNetConfig};
pub use scenes::{digit_scenes, texture_mosaics, MosaicLayout, SegSet, TextureBank};
pub use task::{
    mosaic_banks, run_digits, run_mosaic, test_mosaics, HeadOutcome, TaskConfig, TaskOutcome,
};
pub use textons::{
    run_mosaic_textons, run_mosaic_textons_sweep, LbpKind, RegionConfig, RegionSegmentation,
    SegmentScoring, SegmentSvmConfig, TextonSegConfig, TextonSegmenter,
};
pub use train::{
    class_weights, predict, score, train_segnet, ClassWeighting, SegReport, SegTrainConfig,
};

#[cfg(test)]
mod tests;
