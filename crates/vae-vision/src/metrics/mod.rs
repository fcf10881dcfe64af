//! Evaluation: the BSDS500 boundary benchmark, classification and segmentation metrics.

pub mod bsds;
pub mod classification;
pub mod matching;
pub mod segmentation;

pub use bsds::{
    evaluate_bsds, evaluate_image, summarize, BsdsConfig, BsdsImageResult, BsdsReport, PrPoint,
};
pub use classification::{accuracy, ConfusionMatrix};
pub use matching::{correspond_pixels, Correspondence};
pub use segmentation::{boundary_f_measure, label_boundaries, BoundaryF, SegmentationScores};
