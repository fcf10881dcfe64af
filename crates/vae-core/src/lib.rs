//! # vae-core
//!
//! Variational autoencoders built from [`vae_tensor`] layers, with hand-written backward
//! passes: models ([`Vae`], presets in [`Preset`]), the reparameterization trick
//! ([`reparam`]), the ELBO ([`elbo`]), checkpoints ([`checkpoint`]).
//!
//! Images are `f32` tensors in NCHW layout, `[n, c, h, w]`, with values in `[0, 1]` for the
//! Bernoulli likelihood.
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod elbo;
pub mod error;
pub mod gallery;
pub mod impute;
pub mod iwae;
pub mod model;
pub mod png;
pub mod presets;
pub mod reparam;
pub mod sample;
pub mod train;

pub use checkpoint::Checkpoint;
pub use config::{Likelihood, Preset, VaeConfig, Variance};
pub use data::{Binarization, ImageSource};
pub use elbo::ElboTerms;
pub use error::{CoreError, Result};
pub use impute::{impute, ImputationReport};
pub use iwae::{log_likelihood, IwaeConfig, LikelihoodReport};
pub use model::Vae;
pub use train::{EpochStats, TrainConfig, Trainer};
