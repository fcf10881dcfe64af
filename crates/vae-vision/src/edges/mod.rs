//! Edge detection on BSDS500-style data: the classical detectors as soft edge maps ready
//! for the benchmark, the precision-recall picture, and the learned edge head on a VAE
//! encoder.
//!
//! * [`Method`] and [`classical_map`]: Sobel, Prewitt, Roberts (gradient magnitude of the
//!   BT.601 grey image over its maximum) and Canny ([`canny_soft`](crate::classical::canny_soft))
//!   as maps in `[0, 1]`.
//! * [`pr_plot`]: precision-recall curves of several methods on one picture, with iso-F
//!   contours.

mod classical_maps;
mod plot;

pub use classical_maps::{classical_map, Method};
pub use plot::pr_plot;
