//! [`VaeConfig`]: what a VAE looks like and what it is trained to do.

use crate::error::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// The architecture family of encoder and decoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Preset {
    /// The project's reference model. Encoder Conv(32, 3×3, valid, ReLU) → Conv(64, 3×3,
    /// valid, ReLU) → Flatten → Dense(128, ReLU) → mean and log-variance heads. Decoder
    /// Dense(128, ReLU) → Dense(64·H/4·W/4, ReLU) → reshape → ConvT(64, 3×3, s2, p1, op1, ReLU)
    /// → ConvT(32, 3×3, s2, p1, op1, ReLU) → ConvT(C, 3×3, s1, p1) logits. Needs H and W
    /// divisible by 4.
    Seed,
    /// Dense encoder and decoder: Flatten → Dense(h₁, ReLU) → … → heads; decoder mirrors the
    /// hidden sizes and ends in Dense(C·H·W) → reshape.
    Mlp {
        /// Hidden layer sizes of the encoder (the decoder uses them in reverse).
        hidden: Vec<usize>,
    },
    /// A stronger and cheaper convolutional model, chosen for likelihood. Encoder
    /// Conv(c, 4×4, s2, p1, ReLU) → Conv(2c, 4×4, s2, p1, ReLU) → Flatten → Dense(h, ReLU)
    /// → heads. Decoder Dense(h, ReLU) → Dense(2c·H/4·W/4, ReLU) → reshape →
    /// ConvT(c, 4×4, s2, p1, ReLU) → ConvT(C, 4×4, s2, p1) logits. Needs H, W divisible by 4.
    Conv {
        /// Channels of the first convolution (`c`); the second has `2c`.
        channels: usize,
        /// Width of the dense hidden layer (`h`).
        hidden: usize,
    },
}

impl Preset {
    /// The `conv` preset with its default sizes (32 channels, hidden 256).
    pub fn conv() -> Self {
        Preset::Conv {
            channels: 32,
            hidden: 256,
        }
    }

    /// The `mlp` preset with two hidden layers of 512 units.
    pub fn mlp() -> Self {
        Preset::Mlp {
            hidden: vec![512, 512],
        }
    }

    /// Parses `"seed"`, `"mlp"` or `"conv"` (default sizes).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "seed" => Ok(Preset::Seed),
            "mlp" => Ok(Preset::mlp()),
            "conv" => Ok(Preset::conv()),
            other => Err(CoreError::config(
                "preset",
                format!("unknown preset {other:?} (expected seed, mlp or conv)"),
            )),
        }
    }
}

/// The variance of a Gaussian likelihood p(x | z) = N(x; decoder(z), σ²).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Variance {
    /// A fixed σ² for every pixel.
    Fixed(f32),
    /// One learned log σ² shared by all pixels (parameter `likelihood.logvar`), starting at
    /// the given log-variance.
    Learned {
        /// The initial log σ².
        init_logvar: f32,
    },
}

/// The observation model p(x | z).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Likelihood {
    /// Independent Bernoulli pixels with the decoder output as logits; data in [0, 1]
    /// (binary, or grey levels as in the pytorch-examples protocol).
    Bernoulli,
    /// Independent Gaussian pixels with the decoder output as the mean.
    Gaussian(Variance),
}

/// Everything needed to build a [`Vae`](crate::Vae) and compute its loss.
///
/// ```
/// use vae_core::{Likelihood, Preset, VaeConfig};
/// let cfg = VaeConfig { latent: 16, preset: Preset::conv(), ..VaeConfig::default() };
/// cfg.validate()?;
/// assert_eq!(cfg.likelihood, Likelihood::Bernoulli);
/// # Ok::<(), vae_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaeConfig {
    /// Image shape `[channels, height, width]`.
    pub input_shape: [usize; 3],
    /// Latent dimension d.
    pub latent: usize,
    /// Encoder/decoder architecture.
    pub preset: Preset,
    /// Observation model.
    pub likelihood: Likelihood,
    /// Weight of the KL term (β-VAE; 1 is the ELBO).
    pub beta: f32,
    /// Linear KL warm-up: the KL weight grows from 0 to `beta` over this many optimizer
    /// steps (0 = no warm-up).
    pub kl_warmup_steps: u64,
}

impl Default for VaeConfig {
    /// The `seed` preset on 1×28×28 images, latent 2, Bernoulli, β = 1, no warm-up.
    fn default() -> Self {
        VaeConfig {
            input_shape: [1, 28, 28],
            latent: 2,
            preset: Preset::Seed,
            likelihood: Likelihood::Bernoulli,
            beta: 1.0,
            kl_warmup_steps: 0,
        }
    }
}

impl VaeConfig {
    /// Checks every field; the first problem found is returned as
    /// [`CoreError::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<()> {
        let [c, h, w] = self.input_shape;
        if c == 0 || h == 0 || w == 0 {
            return Err(CoreError::config(
                "input_shape",
                format!("every dimension must be > 0, got {:?}", self.input_shape),
            ));
        }
        if self.latent == 0 {
            return Err(CoreError::config("latent", "must be > 0"));
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(CoreError::config(
                "beta",
                format!("must be finite and >= 0, got {}", self.beta),
            ));
        }
        match &self.preset {
            Preset::Seed | Preset::Conv { .. } if h % 4 != 0 || w % 4 != 0 => {
                return Err(CoreError::config(
                    "preset",
                    format!("conv presets need height and width divisible by 4, got {h}x{w}"),
                ));
            }
            Preset::Seed if h < 8 || w < 8 => {
                return Err(CoreError::config(
                    "preset",
                    format!("seed needs images of at least 8x8, got {h}x{w}"),
                ));
            }
            Preset::Mlp { hidden } if hidden.contains(&0) => {
                return Err(CoreError::config("preset", "mlp hidden sizes must be > 0"));
            }
            Preset::Conv { channels, hidden } if *channels == 0 || *hidden == 0 => {
                return Err(CoreError::config(
                    "preset",
                    "conv channels and hidden must be > 0",
                ));
            }
            _ => {}
        }
        if let Likelihood::Gaussian(v) = self.likelihood {
            match v {
                Variance::Fixed(s2) if !(s2.is_finite() && s2 > 0.0) => {
                    return Err(CoreError::config(
                        "likelihood",
                        format!("fixed variance must be finite and > 0, got {s2}"),
                    ));
                }
                Variance::Learned { init_logvar } if !init_logvar.is_finite() => {
                    return Err(CoreError::config(
                        "likelihood",
                        "initial log-variance must be finite",
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Number of scalars per image, C·H·W.
    pub fn image_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// The KL weight at optimizer step `step` (0-based): `beta · min(1, (step + 1) / warmup)`.
    pub fn kl_weight(&self, step: u64) -> f32 {
        if self.kl_warmup_steps == 0 {
            self.beta
        } else {
            let frac = ((step + 1) as f64 / self.kl_warmup_steps as f64).min(1.0);
            (self.beta as f64 * frac) as f32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: CoreError) -> String {
        match e {
            CoreError::InvalidConfig { field, .. } => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn default_is_valid() {
        VaeConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_fields_are_named() {
        let base = VaeConfig::default();
        let e = VaeConfig {
            latent: 0,
            ..base.clone()
        }
        .validate()
        .unwrap_err();
        assert_eq!(field(e), "latent");
        let e = VaeConfig {
            beta: f32::NAN,
            ..base.clone()
        }
        .validate()
        .unwrap_err();
        assert_eq!(field(e), "beta");
        let e = VaeConfig {
            input_shape: [1, 0, 28],
            ..base.clone()
        }
        .validate()
        .unwrap_err();
        assert_eq!(field(e), "input_shape");
        let e = VaeConfig {
            input_shape: [1, 30, 30],
            ..base.clone()
        }
        .validate()
        .unwrap_err();
        assert_eq!(field(e), "preset");
        let e = VaeConfig {
            likelihood: Likelihood::Gaussian(Variance::Fixed(0.0)),
            ..base.clone()
        }
        .validate()
        .unwrap_err();
        assert_eq!(field(e), "likelihood");
        let e = VaeConfig {
            preset: Preset::Mlp { hidden: vec![4, 0] },
            ..base
        }
        .validate()
        .unwrap_err();
        assert_eq!(field(e), "preset");
        assert!(matches!(
            Preset::from_name("big"),
            Err(CoreError::InvalidConfig { .. })
        ));
    }

    #[test]
    fn warmup_ramps_linearly_to_beta() {
        let cfg = VaeConfig {
            beta: 2.0,
            kl_warmup_steps: 4,
            ..VaeConfig::default()
        };
        let w: Vec<f32> = (0..6).map(|s| cfg.kl_weight(s)).collect();
        assert_eq!(w, vec![0.5, 1.0, 1.5, 2.0, 2.0, 2.0]);
        assert_eq!(VaeConfig::default().kl_weight(0), 1.0);
    }

    #[test]
    fn json_round_trip() {
        let cfg = VaeConfig {
            preset: Preset::mlp(),
            likelihood: Likelihood::Gaussian(Variance::Learned { init_logvar: -2.0 }),
            ..VaeConfig::default()
        };
        let s = serde_json::to_string(&cfg).unwrap();
        let back: VaeConfig = serde_json::from_str(&s).unwrap();
        assert_eq!(cfg, back);
    }
}
