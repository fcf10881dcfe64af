//! [`Vae`]: encoder, mean/log-variance heads, reparameterization, decoder.
//!
//! `forward_train` and `backward` are written to be read side by side: backward is the
//! forward column in reverse (decoder, reparameterization plus the KL gradient, heads,
//! encoder).

use crate::config::{Likelihood, VaeConfig, Variance};
use crate::data::EVAL_BATCH;
use crate::elbo::{self, ElboTerms};
use crate::error::{CoreError, Result};
use crate::presets;
use crate::reparam::Reparam;
use ndarray::{Array2, Array4, ArrayD, ArrayView4, Axis, Ix2, Ix4};
use rand::Rng;
use vae_tensor::init::Init;
use vae_tensor::layer::join_name;
use vae_tensor::layers::dense::Dense;
use vae_tensor::layers::sequential::Sequential;
use vae_tensor::loss::{bce_with_logits_grad_inplace, gaussian_kl, Reduction};
use vae_tensor::{Layer, Mode, Param, Parameterized};

/// What `forward_train` keeps for `backward`.
#[derive(Debug)]
struct StepCache {
    /// The batch, `[n, c, h, w]`.
    x: ArrayD<f32>,
    /// Decoder output (logits or means), `[n, c, h, w]`.
    out: ArrayD<f32>,
    mu: Array2<f32>,
    logvar: Array2<f32>,
    /// KL weight of this step.
    kl_weight: f32,
}

/// A variational autoencoder with hand-written gradients.
///
/// Parameter names (the checkpoint keys): `encoder.<layer>.{weight,bias}`,
/// `mu_head.{weight,bias}`, `logvar_head.{weight,bias}`, `decoder.<layer>.{weight,bias}`
/// and, for a learned Gaussian variance, `likelihood.logvar`.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use vae_core::{Preset, Vae, VaeConfig};
/// let cfg = VaeConfig { input_shape: [1, 4, 4], latent: 2, preset: Preset::Mlp { hidden: vec![8] },
///                       ..VaeConfig::default() };
/// let mut rng = StdRng::seed_from_u64(0);
/// let mut vae = Vae::new(cfg, &mut rng)?;
/// let x = ndarray::Array4::from_elem((3, 1, 4, 4), 0.5f32);
/// let terms = vae.train_step(&x, 1.0, &mut rng)?;   // forward + backward, grads accumulated
/// assert!(terms.loss().is_finite());
/// assert_eq!(vae.decode(&ndarray::Array2::zeros((2, 2)))?.dim(), (2, 1, 4, 4));
/// # Ok::<(), vae_core::CoreError>(())
/// ```
pub struct Vae {
    config: VaeConfig,
    encoder: Sequential,
    mu_head: Dense,
    logvar_head: Dense,
    decoder: Sequential,
    reparam: Reparam,
    lik_logvar: Option<Param>,
    cache: Option<StepCache>,
}

impl std::fmt::Debug for Vae {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vae")
            .field("config", &self.config)
            .field("encoder", &self.encoder)
            .field("decoder", &self.decoder)
            .finish_non_exhaustive()
    }
}

impl Parameterized for Vae {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        self.encoder.visit_params(&join_name(prefix, "encoder"), f);
        self.mu_head.visit_params(&join_name(prefix, "mu_head"), f);
        self.logvar_head
            .visit_params(&join_name(prefix, "logvar_head"), f);
        self.decoder.visit_params(&join_name(prefix, "decoder"), f);
        if let Some(p) = &mut self.lik_logvar {
            f(&join_name(prefix, "likelihood.logvar"), p);
        }
    }
}

impl Vae {
    /// Builds the model for `config` with weights drawn from `rng`.
    ///
    /// Runs shape inference through encoder and decoder and fails with
    /// [`CoreError::ArchitectureMismatch`] if the decoder does not give back the input shape.
    pub fn new(config: VaeConfig, rng: &mut impl Rng) -> Result<Self> {
        config.validate()?;
        let encoder = presets::encoder(&config, rng)?;
        let decoder = presets::decoder(&config, rng)?;
        Self::from_parts(config, encoder, decoder, rng)
    }

    /// Builds a model from a custom encoder body (`[n, c, h, w]` → `[n, f]`) and decoder
    /// (`[n, d]` → `[n, c, h, w]`); the heads `Dense(f, d)` are added here. `config.preset`
    /// is only recorded. Fails with [`CoreError::ArchitectureMismatch`] when the encoder does
    /// not give `[n, f]` features or the decoder does not give back the input shape.
    pub fn from_parts(
        config: VaeConfig,
        encoder: Sequential,
        decoder: Sequential,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        config.validate()?;
        let [c, h, w] = config.input_shape;
        let feat = encoder.output_shape(&[1, c, h, w])?;
        let features = match feat.as_slice() {
            [1, f] => *f,
            _ => {
                return Err(CoreError::arg(
                    "Vae::from_parts",
                    format!(
                        "encoder output per image {:?}, expected a flat feature vector",
                        &feat[1..]
                    ),
                ))
            }
        };
        let mu_head = Dense::new(features, config.latent, Init::XavierNormal, rng)?;
        let logvar_head = Dense::new(features, config.latent, Init::Zeros, rng)?;
        let out = decoder.output_shape(&[1, config.latent])?;
        if out[1..] != config.input_shape {
            return Err(CoreError::ArchitectureMismatch {
                input: config.input_shape.to_vec(),
                decoder_output: out[1..].to_vec(),
            });
        }
        let lik_logvar = match config.likelihood {
            Likelihood::Gaussian(Variance::Learned { init_logvar }) => {
                Some(Param::new(ArrayD::from_elem(vec![1], init_logvar)))
            }
            _ => None,
        };
        Ok(Vae {
            config,
            encoder,
            mu_head,
            logvar_head,
            decoder,
            reparam: Reparam::new(),
            lik_logvar,
            cache: None,
        })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// The latent dimension d.
    pub fn latent(&self) -> usize {
        self.config.latent
    }

    /// A one-line-per-part summary of the architecture.
    pub fn describe(&self) -> String {
        format!(
            "encoder: {}\nheads: mu {} / logvar {}\ndecoder: {}",
            self.encoder.describe(),
            self.mu_head.describe(),
            self.logvar_head.describe(),
            self.decoder.describe()
        )
    }

    /// The current log-variance of the Gaussian likelihood (0 for Bernoulli).
    pub fn likelihood_logvar(&self) -> f32 {
        match &self.lik_logvar {
            Some(p) => p.value[[0]],
            None => elbo::fixed_logvar(&self.config.likelihood),
        }
    }

    fn check_batch(&self, op: &str, x: &ArrayView4<f32>) -> Result<()> {
        let (n, c, h, w) = x.dim();
        if [c, h, w] != self.config.input_shape || n == 0 {
            return Err(CoreError::arg(
                op,
                format!(
                    "batch of shape {:?}, expected [n > 0, {}, {}, {}]",
                    x.shape(),
                    self.config.input_shape[0],
                    self.config.input_shape[1],
                    self.config.input_shape[2]
                ),
            ));
        }
        Ok(())
    }

    fn check_latent(&self, op: &str, z: &Array2<f32>) -> Result<()> {
        if z.ncols() != self.config.latent || z.nrows() == 0 {
            return Err(CoreError::arg(
                op,
                format!(
                    "latent batch of shape {:?}, expected [n > 0, {}]",
                    z.shape(),
                    self.config.latent
                ),
            ));
        }
        Ok(())
    }

    /// Encoder + heads in `mode`: `[n, c, h, w]` → (μ, logvar), each `[n, d]`.
    fn encode_mode(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<(Array2<f32>, Array2<f32>)> {
        let h = self.encoder.forward(x, mode)?;
        let mu = self.mu_head.forward(h.clone(), mode)?;
        let logvar = self.logvar_head.forward(h, mode)?;
        Ok((to2(mu)?, to2(logvar)?))
    }

    /// Forward pass of one training step with fresh noise from `rng`; returns the batch's
    /// ELBO terms and keeps what [`Vae::backward`] needs. `kl_weight` is β after warm-up.
    pub fn forward_train(
        &mut self,
        x: &Array4<f32>,
        kl_weight: f32,
        rng: &mut impl Rng,
    ) -> Result<ElboTerms> {
        let eps = crate::reparam::sample_eps(x.dim().0, self.config.latent, rng);
        self.forward_train_with_eps(x, kl_weight, eps)
    }

    /// [`Vae::forward_train`] with a given noise `eps` `[n, d]`: a deterministic function of
    /// the weights and `x` (used by the end-to-end gradient check).
    pub fn forward_train_with_eps(
        &mut self,
        x: &Array4<f32>,
        kl_weight: f32,
        eps: Array2<f32>,
    ) -> Result<ElboTerms> {
        self.check_batch("forward_train", &x.view())?;
        let n = x.dim().0;
        let x = x.clone().into_dyn();
        let (mu, logvar) = self.encode_mode(x.clone(), Mode::Train)?; //  encoder, heads
        let z = self.reparam.forward_with_eps(&mu, &logvar, eps)?; //       reparameterize
        let out = self.decoder.forward(z.into_dyn(), Mode::Train)?; //      decoder
        let flat_out = flat(&out, n)?;
        let flat_x = flat(&x, n)?;
        let recon = elbo::recon_nll(
            &self.config.likelihood,
            flat_out,
            flat_x,
            self.likelihood_logvar(),
        );
        let kl = elbo::gaussian_kl(mu.view(), logvar.view());
        let terms = ElboTerms {
            recon_nats_per_image: recon.mean().unwrap_or(0.0),
            kl_nats_per_image: kl.mean().unwrap_or(0.0),
            beta: kl_weight,
        };
        self.cache = Some(StepCache {
            x,
            out,
            mu,
            logvar,
            kl_weight,
        });
        Ok(terms)
    }

    /// Backward pass of the loss `mean(recon + kl_weight · KL)` of the last `forward_train`:
    /// adds every parameter's gradient into its `Param::grad`.
    pub fn backward(&mut self) -> Result<()> {
        let StepCache {
            x,
            out,
            mu,
            logvar,
            kl_weight,
        } = self.cache.take().ok_or_else(|| {
            CoreError::from(vae_tensor::TensorError::NoForwardCache {
                layer: "Vae".into(),
            })
        })?;
        let n = x.shape()[0];
        // d(recon)/d(decoder output), batch mean.
        let dout = match self.config.likelihood {
            Likelihood::Bernoulli => {
                // The logits are not needed after this: the gradient goes in their place.
                let mut out = out;
                bce_with_logits_grad_inplace(&mut out, &x, Reduction::BatchMean)?;
                out
            }
            Likelihood::Gaussian(_) => {
                let (dmean, dlv) = elbo::gaussian_nll_grad(
                    flat(&out, n)?,
                    flat(&x, n)?,
                    self.likelihood_logvar(),
                    1.0 / n as f32,
                );
                if let Some(p) = &mut self.lik_logvar {
                    p.grad[[0]] += dlv as f32;
                }
                dmean
                    .into_shape_with_order(out.raw_dim())
                    .map_err(shape_err)?
            }
        };
        let dz = self.decoder.backward(dout)?; //                                   decoder
        let (mut dmu, mut dlogvar) = self.reparam.backward(&to2(dz)?)?; //         reparameterize
        let kl = gaussian_kl(&mu, &logvar, Reduction::BatchMean)?; //              + KL gradient
        dmu.scaled_add(kl_weight, &kl.dmu);
        dlogvar.scaled_add(kl_weight, &kl.dlogvar);
        let mut dh = self.mu_head.backward(dmu.into_dyn())?; //                     heads
        dh += &self.logvar_head.backward(dlogvar.into_dyn())?;
        self.encoder.backward(dh)?; //                                             encoder
        Ok(())
    }

    /// `forward_train` then `backward`: one step's gradients accumulated into the params.
    pub fn train_step(
        &mut self,
        x: &Array4<f32>,
        kl_weight: f32,
        rng: &mut impl Rng,
    ) -> Result<ElboTerms> {
        let terms = self.forward_train(x, kl_weight, rng)?;
        self.backward()?;
        Ok(terms)
    }

    /// Posterior parameters (μ, logvar), each `[n, d]`, in evaluation mode.
    /// Runs in chunks of [`EVAL_BATCH`] images, so memory does
    /// not grow with `n`.
    pub fn encode(&mut self, x: &Array4<f32>) -> Result<(Array2<f32>, Array2<f32>)> {
        self.check_batch("encode", &x.view())?;
        let (mut mus, mut lvs) = (Vec::new(), Vec::new());
        for part in x.axis_chunks_iter(Axis(0), EVAL_BATCH) {
            let (mu, lv) = self.encode_mode(part.to_owned().into_dyn(), Mode::Eval)?;
            mus.push(mu);
            lvs.push(lv);
        }
        Ok((cat(mus)?, cat(lvs)?))
    }

    /// The encoder body's output, `[n, f]`: the hidden features the μ and log σ² heads
    /// read (for the presets, the last hidden layer after its ReLU), in evaluation mode.
    /// μ and log σ² are affine maps of these features, so they hold at least as much
    /// information about `x` as the posterior parameters. Runs in chunks of
    /// [`EVAL_BATCH`] images.
    ///
    /// ```
    /// use ndarray::Array4;
    /// use rand::{rngs::StdRng, SeedableRng};
    /// use vae_core::{Preset, Vae, VaeConfig};
    /// let cfg = VaeConfig { input_shape: [1, 8, 8], latent: 3, preset: Preset::Mlp { hidden: vec![16] }, ..VaeConfig::default() };
    /// let mut vae = Vae::new(cfg, &mut StdRng::seed_from_u64(0))?;
    /// let h = vae.encode_hidden(&Array4::zeros((5, 1, 8, 8)))?;
    /// assert_eq!(h.dim(), (5, 16));
    /// # Ok::<(), vae_core::CoreError>(())
    /// ```
    pub fn encode_hidden(&mut self, x: &Array4<f32>) -> Result<Array2<f32>> {
        self.check_batch("encode_hidden", &x.view())?;
        let mut parts = Vec::new();
        for part in x.axis_chunks_iter(Axis(0), EVAL_BATCH) {
            let h = self
                .encoder
                .forward(part.to_owned().into_dyn(), Mode::Eval)?;
            parts.push(to2(h)?);
        }
        cat(parts)
    }

    /// Raw decoder output (logits for Bernoulli, means for Gaussian), `[n, c, h, w]`.
    /// Runs in chunks of [`EVAL_BATCH`] latent vectors.
    pub fn decode_raw(&mut self, z: &Array2<f32>) -> Result<Array4<f32>> {
        self.check_latent("decode", z)?;
        let mut outs = Vec::new();
        for part in z.axis_chunks_iter(Axis(0), EVAL_BATCH) {
            let out = self
                .decoder
                .forward(part.to_owned().into_dyn(), Mode::Eval)?;
            outs.push(out.into_dimensionality::<Ix4>().map_err(shape_err)?);
        }
        cat(outs)
    }

    /// The mean image E[x | z] (sigmoid of the logits for Bernoulli), `[n, c, h, w]`.
    pub fn decode(&mut self, z: &Array2<f32>) -> Result<Array4<f32>> {
        let mut out = self.decode_raw(z)?;
        if self.config.likelihood == Likelihood::Bernoulli {
            match out.as_slice_mut() {
                Some(v) => vae_tensor::par::map_inplace(v, vae_tensor::layers::activation::sigmoid),
                None => out.mapv_inplace(vae_tensor::layers::activation::sigmoid),
            }
        }
        Ok(out)
    }

    /// Decode of the posterior mean: the reconstruction of each image.
    pub fn reconstruct(&mut self, x: &Array4<f32>) -> Result<Array4<f32>> {
        let (mu, _) = self.encode(x)?;
        self.decode(&mu)
    }

    /// The per-image ELBO terms of a batch with one posterior sample per image, in
    /// evaluation mode (no cache, no gradient).
    pub fn evaluate(
        &mut self,
        x: &Array4<f32>,
        rng: &mut impl Rng,
    ) -> Result<(ndarray::Array1<f64>, ndarray::Array1<f64>)> {
        let n = x.dim().0;
        let (mu, logvar) = self.encode(x)?;
        let eps = crate::reparam::sample_eps(n, self.config.latent, rng);
        let z = &mu + &(logvar.mapv(|lv| (0.5 * lv).exp()) * eps);
        let out = self.decode_raw(&z)?;
        let recon = elbo::recon_nll(
            &self.config.likelihood,
            out.view()
                .into_shape_with_order((n, self.config.image_len()))
                .map_err(shape_err)?,
            x.view()
                .into_shape_with_order((n, self.config.image_len()))
                .map_err(shape_err)?,
            self.likelihood_logvar(),
        );
        Ok((recon, elbo::gaussian_kl(mu.view(), logvar.view())))
    }

    /// A fresh model with the same configuration and a copy of every parameter value (for
    /// one model per thread). Models from [`Vae::from_parts`] whose layers differ from their
    /// preset cannot be rebuilt from the config: that is a [`CoreError::CheckpointShape`] or
    /// [`CoreError::CheckpointTensor`] error naming the first tensor that differs.
    pub fn try_clone(&mut self) -> Result<Vae> {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let mut copy = Vae::new(self.config.clone(), &mut rng)?;
        let weights = crate::checkpoint::collect_weights(self);
        crate::checkpoint::load_weights(
            &mut copy,
            &weights,
            std::path::Path::new("<in-memory copy>"),
        )?;
        Ok(copy)
    }
}

fn shape_err(e: ndarray::ShapeError) -> CoreError {
    CoreError::arg("vae", format!("internal reshape failed: {e}"))
}

/// Concatenates chunks along the batch axis (no copy for a single chunk).
fn cat<D: ndarray::RemoveAxis>(
    mut parts: Vec<ndarray::Array<f32, D>>,
) -> Result<ndarray::Array<f32, D>> {
    if parts.len() == 1 {
        return Ok(parts.pop().expect("one part"));
    }
    let views: Vec<_> = parts.iter().map(|a| a.view()).collect();
    ndarray::concatenate(Axis(0), &views).map_err(shape_err)
}

fn to2(a: ArrayD<f32>) -> Result<Array2<f32>> {
    a.into_dimensionality::<Ix2>().map_err(shape_err)
}

/// A `[n, ...]` tensor as a `[n, rest]` view (an error if it is not in standard layout).
fn flat(a: &ArrayD<f32>, n: usize) -> Result<ndarray::ArrayView2<'_, f32>> {
    let rest = a.len() / n.max(1);
    a.view().into_shape_with_order((n, rest)).map_err(shape_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn hidden_features_are_what_the_heads_read() {
        let cfg = VaeConfig {
            input_shape: [1, 12, 12],
            latent: 3,
            preset: Preset::Conv {
                channels: 4,
                hidden: 10,
            },
            ..VaeConfig::default()
        };
        let mut vae = Vae::new(cfg, &mut StdRng::seed_from_u64(1)).unwrap();
        let x = Array4::from_shape_fn((3, 1, 12, 12), |(n, _, y, x)| {
            ((n * 7 + y * 3 + x) % 11) as f32 / 10.0
        });
        let h = vae.encode_hidden(&x).unwrap();
        assert_eq!(h.dim(), (3, 10));
        assert!(h.iter().all(|v| *v >= 0.0), "after the ReLU");
        let (mu, logvar) = vae.encode(&x).unwrap();
        let mu_h = to2(vae
            .mu_head
            .forward(h.clone().into_dyn(), Mode::Eval)
            .unwrap())
        .unwrap();
        let lv_h = to2(vae.logvar_head.forward(h.into_dyn(), Mode::Eval).unwrap()).unwrap();
        assert_eq!(mu_h, mu);
        assert_eq!(lv_h, logvar);
        let bad = Array4::<f32>::zeros((2, 1, 11, 12));
        assert!(vae.encode_hidden(&bad).is_err());
    }
}
