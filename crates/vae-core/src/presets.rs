//! Encoder and decoder architectures for each [`Preset`].
//!
//! An encoder body maps `[n, c, h, w]` to features `[n, f]`; the model adds the mean and
//! log-variance heads (`Dense(f, d)` each). A decoder maps `[n, d]` to decoder outputs
//! `[n, c, h, w]` (logits for Bernoulli, means for Gaussian).

use crate::config::{Preset, VaeConfig};
use crate::error::Result;
use rand::Rng;
use vae_tensor::init::Init;
use vae_tensor::layers::activation::ReLU;
use vae_tensor::layers::dense::Dense;
use vae_tensor::layers::reshape::{Flatten, Reshape};
use vae_tensor::layers::sequential::Sequential;

/// Builds the encoder body for `cfg.preset`: `[n, c, h, w]` → `[n, features]`.
pub fn encoder(cfg: &VaeConfig, rng: &mut impl Rng) -> Result<Sequential> {
    let [c, h, w] = cfg.input_shape;
    let d_in = c * h * w;
    Ok(match &cfg.preset {
        Preset::Mlp { hidden } => {
            let mut enc = Sequential::new().push("flatten", Flatten::new());
            let mut width = d_in;
            for (i, &hdim) in hidden.iter().enumerate() {
                enc.add(
                    &format!("fc{}", i + 1),
                    Box::new(Dense::new(width, hdim, Init::HeNormal, rng)?),
                );
                enc.add(&format!("relu{}", i + 1), Box::new(ReLU::new()));
                width = hdim;
            }
            enc
        }
        Preset::Seed => conv::seed_encoder(c, h, w, rng)?.0,
        Preset::Conv { channels, hidden } => {
            conv::conv_encoder(c, h, w, *channels, *hidden, rng)?.0
        }
    })
}

/// Builds the decoder for `cfg.preset`: `[n, latent]` → `[n, c, h, w]`.
pub fn decoder(cfg: &VaeConfig, rng: &mut impl Rng) -> Result<Sequential> {
    let [c, h, w] = cfg.input_shape;
    let d = cfg.latent;
    Ok(match &cfg.preset {
        Preset::Mlp { hidden } => {
            let mut dec = Sequential::new();
            let mut width = d;
            for (i, &hdim) in hidden.iter().rev().enumerate() {
                dec.add(
                    &format!("fc{}", i + 1),
                    Box::new(Dense::new(width, hdim, Init::HeNormal, rng)?),
                );
                dec.add(&format!("relu{}", i + 1), Box::new(ReLU::new()));
                width = hdim;
            }
            dec.add(
                "out",
                Box::new(Dense::new(width, c * h * w, Init::XavierNormal, rng)?),
            );
            dec.add("reshape", Box::new(Reshape::new(vec![c, h, w])));
            dec
        }
        Preset::Seed => conv::seed_decoder(c, h, w, d, rng)?,
        Preset::Conv { channels, hidden } => {
            conv::conv_decoder(c, h, w, d, *channels, *hidden, rng)?
        }
    })
}

mod conv {
    //! TEMPORARY until Conv2d/ConvTranspose2d are merged into vae-tensor.
    use super::*;
    use crate::error::CoreError;
    fn pending() -> CoreError {
        CoreError::config(
            "preset",
            "conv presets need vae-tensor's Conv2d (not merged yet)",
        )
    }
    pub(super) fn seed_encoder(
        _: usize,
        _: usize,
        _: usize,
        _: &mut impl Rng,
    ) -> Result<(Sequential, usize)> {
        Err(pending())
    }
    pub(super) fn seed_decoder(
        _: usize,
        _: usize,
        _: usize,
        _: usize,
        _: &mut impl Rng,
    ) -> Result<Sequential> {
        Err(pending())
    }
    pub(super) fn conv_encoder(
        _: usize,
        _: usize,
        _: usize,
        _: usize,
        _: usize,
        _: &mut impl Rng,
    ) -> Result<(Sequential, usize)> {
        Err(pending())
    }
    pub(super) fn conv_decoder(
        _: usize,
        _: usize,
        _: usize,
        _: usize,
        _: usize,
        _: usize,
        _: &mut impl Rng,
    ) -> Result<Sequential> {
        Err(pending())
    }
}
