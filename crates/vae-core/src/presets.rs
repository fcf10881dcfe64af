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
        Preset::Seed => conv::seed_encoder(c, h, w, rng)?,
        Preset::Conv { channels, hidden } => conv::conv_encoder(c, h, w, *channels, *hidden, rng)?,
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
    //! The convolutional presets.
    use super::*;
    use vae_tensor::layers::conv2d::{Conv2d, Conv2dConfig};
    use vae_tensor::layers::conv_transpose2d::{ConvTranspose2d, ConvTranspose2dConfig};

    pub(super) fn seed_encoder(
        c: usize,
        h: usize,
        w: usize,
        rng: &mut impl Rng,
    ) -> Result<Sequential> {
        let (h2, w2) = (h.saturating_sub(4), w.saturating_sub(4));
        let enc = Sequential::new()
            .push("conv1", Conv2d::new(Conv2dConfig::new(c, 32, 3), rng)?)
            .push("relu1", ReLU::new())
            .push("conv2", Conv2d::new(Conv2dConfig::new(32, 64, 3), rng)?)
            .push("relu2", ReLU::new())
            .push("flatten", Flatten::new())
            .push("fc", Dense::new(64 * h2 * w2, 128, Init::HeNormal, rng)?)
            .push("relu3", ReLU::new());
        Ok(enc)
    }

    pub(super) fn seed_decoder(
        c: usize,
        h: usize,
        w: usize,
        d: usize,
        rng: &mut impl Rng,
    ) -> Result<Sequential> {
        let (h4, w4) = (h / 4, w / 4);
        let up = |c_in, c_out| {
            ConvTranspose2dConfig::new(c_in, c_out, 3)
                .stride(2)
                .padding(1)
                .output_padding(1)
        };
        Ok(Sequential::new()
            .push("fc1", Dense::new(d, 128, Init::HeNormal, rng)?)
            .push("relu1", ReLU::new())
            .push("fc2", Dense::new(128, 64 * h4 * w4, Init::HeNormal, rng)?)
            .push("relu2", ReLU::new())
            .push("reshape", Reshape::new(vec![64, h4, w4]))
            .push("deconv1", ConvTranspose2d::new(up(64, 64), rng)?)
            .push("relu3", ReLU::new())
            .push("deconv2", ConvTranspose2d::new(up(64, 32), rng)?)
            .push("relu4", ReLU::new())
            .push(
                "deconv3",
                ConvTranspose2d::new(ConvTranspose2dConfig::new(32, c, 3).padding(1), rng)?,
            ))
    }

    pub(super) fn conv_encoder(
        c: usize,
        h: usize,
        w: usize,
        ch: usize,
        hidden: usize,
        rng: &mut impl Rng,
    ) -> Result<Sequential> {
        let down = |c_in, c_out| Conv2dConfig::new(c_in, c_out, 4).stride(2).padding(1);
        let enc = Sequential::new()
            .push("conv1", Conv2d::new(down(c, ch), rng)?)
            .push("relu1", ReLU::new())
            .push("conv2", Conv2d::new(down(ch, 2 * ch), rng)?)
            .push("relu2", ReLU::new())
            .push("flatten", Flatten::new())
            .push(
                "fc",
                Dense::new(2 * ch * (h / 4) * (w / 4), hidden, Init::HeNormal, rng)?,
            )
            .push("relu3", ReLU::new());
        Ok(enc)
    }

    pub(super) fn conv_decoder(
        c: usize,
        h: usize,
        w: usize,
        d: usize,
        ch: usize,
        hidden: usize,
        rng: &mut impl Rng,
    ) -> Result<Sequential> {
        let (h4, w4) = (h / 4, w / 4);
        let up = |c_in, c_out| {
            ConvTranspose2dConfig::new(c_in, c_out, 4)
                .stride(2)
                .padding(1)
        };
        Ok(Sequential::new()
            .push("fc1", Dense::new(d, hidden, Init::HeNormal, rng)?)
            .push("relu1", ReLU::new())
            .push(
                "fc2",
                Dense::new(hidden, 2 * ch * h4 * w4, Init::HeNormal, rng)?,
            )
            .push("relu2", ReLU::new())
            .push("reshape", Reshape::new(vec![2 * ch, h4, w4]))
            .push("deconv1", ConvTranspose2d::new(up(2 * ch, ch), rng)?)
            .push("relu3", ReLU::new())
            .push("deconv2", ConvTranspose2d::new(up(ch, c), rng)?))
    }
}
