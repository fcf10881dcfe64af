//! Edge detection on BSDS500-style data: the classical detectors as soft edge maps ready
//! for the benchmark, the precision-recall picture, and the learned edge head on a VAE
//! encoder.
//!
//! * [`Method`] and [`classical_map`]: Sobel, Prewitt, Roberts (gradient magnitude of the
//!   BT.601 grey image over its maximum) and Canny ([`canny_soft`](crate::classical::canny_soft))
//!   as maps in `[0, 1]`.
//! * [`pr_plot`]: precision-recall curves of several methods on one picture, with iso-F
//!   contours.
//! * The learned head: [`net_input`] (RGB + Lab), [`edge_targets`] (annotator agreement to
//!   edge / not / ignored), [`EdgeNet`] (side outputs at strides 1, 2, 4 and optionally 8
//!   and a fused output on a VAE's convolutions), [`balanced_bce`] (HED's loss),
//!   [`pretrain_vae`], [`train_edge_net`] (random crops with flips, and optionally
//!   rescaling and transposition), [`predict`] / [`edge_map`] on whole images (and their
//!   multi-scale forms [`predict_multiscale`] / [`edge_map_multiscale`]), and [`EdgeModel`]
//!   (network + VAE in one safetensors file).

mod classical_maps;
mod input;
mod loss;
pub mod net;
mod plot;
mod train;
mod upsample;

pub use classical_maps::{classical_map, Method};
pub use input::{edge_targets, net_input, srgb_to_lab, Target, IGNORE, INPUT_CHANNELS};
pub use loss::{balanced_bce, EdgeLoss};
pub use net::{EdgeNet, EdgeNetConfig, OUTPUTS};
pub use plot::pr_plot;
pub use train::{
    edge_map, edge_map_dihedral, edge_map_multiscale, predict, predict_dihedral,
    predict_multiscale, prepare_samples, pretrain_vae, train_edge_net, EdgeModel, EdgeSample,
    EdgeStep, EdgeTrainConfig, VaePretrainConfig, DIHEDRAL,
};
pub use upsample::Upsample;

#[cfg(test)]
mod tests;
