//! # vae-core
//!
//! Variational autoencoders built from [`vae_tensor`] layers, with hand-written backward
//! passes: build a model, train it, and use it to reconstruct, generate, interpolate,
//! estimate log-likelihoods and fill in missing pixels.
//!
//! Images are `f32` tensors in NCHW layout, `[n, c, h, w]`, with values in `[0, 1]` for the
//! Bernoulli likelihood. Anything that can hand out such batches is an [`ImageSource`]
//! (`Array4<f32>`, `Array4<u8>`, a `vae_data` MNIST split).
//!
//! ```
//! use ndarray::Array4;
//! use rand::{rngs::StdRng, SeedableRng};
//! use vae_core::{sample, Preset, TrainConfig, Trainer, Vae, VaeConfig};
//!
//! // 64 tiny 1×8×8 "images"; use your own data set here.
//! let images = Array4::from_shape_fn((64, 1, 8, 8), |(n, _, i, j)| ((n + i * j) % 3) as f32 / 2.0);
//! let cfg = VaeConfig { input_shape: [1, 8, 8], latent: 2, preset: Preset::Mlp { hidden: vec![32] },
//!                       ..VaeConfig::default() };
//! let vae = Vae::new(cfg, &mut StdRng::seed_from_u64(0))?;
//! let mut trainer = Trainer::new(vae, TrainConfig { epochs: 2, batch_size: 16, ..TrainConfig::default() })?;
//! let history = trainer.fit(&images, Some(&images), |epoch| println!("{epoch}"))?;
//! assert_eq!(history.len(), 2);
//! let vae = trainer.vae();
//! let recon = vae.reconstruct(&images)?;                       // [64, 1, 8, 8]
//! let new = sample::sample_prior(vae, 4, &mut StdRng::seed_from_u64(1))?;
//! assert_eq!((recon.dim().0, new.dim().0), (64, 4));
//! # Ok::<(), vae_core::CoreError>(())
//! ```
//!
//! | module | holds |
//! |---|---|
//! | [`config`] | [`VaeConfig`], [`Preset`], [`Likelihood`]; `validate()` |
//! | [`presets`] | encoder and decoder of each preset (`seed`, `mlp`, `conv`) |
//! | [`model`] | [`Vae`]: `forward_train` / `backward`, encode, decode, reconstruct |
//! | [`reparam`] | z = μ + exp(logvar/2)·ε with ε kept for backward |
//! | [`elbo`] | [`ElboTerms`] and the per-image terms in nats |
//! | [`train`] | [`Trainer`]: Adam/AdamW, progress bar, NaN guard, checkpoints, exact resume |
//! | [`checkpoint`] | safetensors checkpoints, atomic writes, typed load errors |
//! | [`sample`] | prior samples, interpolation, traversals, the 2-D manifold |
//! | [`iwae`] | importance-weighted log p(x), parallel and seeded per image |
//! | [`impute`](mod@impute) | missing-pixel imputation with a mean-fill baseline |
//! | [`data`] | [`ImageSource`], [`Binarization`] |
//! | [`png`], [`gallery`] | image grids, scatter plots, loss curves; all pictures in one call |
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
