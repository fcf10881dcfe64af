//! [`Trainer`]: Adam/AdamW over epochs of shuffled batches, with per-epoch train and test
//! ELBO, a progress bar, a NaN guard and checkpoints that resume exactly.
//!
//! # Reproducibility
//! Every random draw of epoch `e` (shuffling, dynamic binarization, ε) comes from one
//! generator seeded by `(seed, e)`, so training for 2 epochs and training for 1, saving,
//! loading and training 1 more give bit-identical weights.

use crate::checkpoint::Checkpoint;
use crate::data::{chunks, Binarization, ImageSource};
use crate::elbo::ElboTerms;
use crate::error::{CoreError, Result};
use crate::model::Vae;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use vae_tensor::optim::{Adam, AdamConfig, OptimState, Optimizer};
use vae_tensor::{grad_norm, zero_grad, Parameterized};

/// Prefix of the optimizer's tensors in a checkpoint (`optim.m.encoder.conv1.weight`).
const OPTIM_PREFIX: &str = "optim.";

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Total number of epochs to reach (a resumed run continues up to this number).
    pub epochs: usize,
    /// Images per optimizer step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// Weight decay; > 0 selects AdamW (decoupled decay), 0 plain Adam.
    pub weight_decay: f32,
    /// Seed of every random draw during training (not of the initial weights).
    pub seed: u64,
    /// How pixels become targets.
    pub binarization: Binarization,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Where to write a checkpoint after every epoch (atomically); `None` for none.
    pub checkpoint: Option<PathBuf>,
}

impl Default for TrainConfig {
    /// 10 epochs, batch 128, Adam lr 1e-3, seed 0, no binarization, no progress bar.
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 128,
            lr: 1e-3,
            weight_decay: 0.0,
            seed: 0,
            binarization: Binarization::None,
            progress: false,
            checkpoint: None,
        }
    }
}

impl TrainConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(CoreError::config("batch_size", "must be > 0"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(CoreError::config(
                "lr",
                format!("must be finite and > 0, got {}", self.lr),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(CoreError::config("weight_decay", "must be finite and >= 0"));
        }
        Ok(())
    }

    fn adam(&self) -> AdamConfig {
        if self.weight_decay > 0.0 {
            AdamConfig::adamw(self.lr, self.weight_decay)
        } else {
            AdamConfig::adam(self.lr)
        }
    }
}

/// What one epoch did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// The epoch number (1-based: the first epoch is 1).
    pub epoch: usize,
    /// Mean training reconstruction term over the epoch (nats per image).
    pub train_recon: f64,
    /// Mean training KL over the epoch (nats per image).
    pub train_kl: f64,
    /// Mean training loss `recon + w·KL` over the epoch.
    pub train_loss: f64,
    /// Test negative ELBO (nats per image), if a test set was given.
    pub test_neg_elbo: Option<f64>,
    /// Wall-clock seconds of the training part of the epoch.
    pub seconds: f64,
    /// Training throughput.
    pub images_per_sec: f64,
}

impl std::fmt::Display for EpochStats {
    /// One line: epoch, train loss with its terms, test −ELBO, time and throughput.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "epoch {:>3}: train loss {:.2} (recon {:.2}, KL {:.2}) | test -ELBO {:.2} | {:.1} s, {:.0} img/s",
            self.epoch,
            self.train_loss,
            self.train_recon,
            self.train_kl,
            self.test_neg_elbo.unwrap_or(f64::NAN),
            self.seconds,
            self.images_per_sec
        )
    }
}

/// Trains a [`Vae`]; see the [module docs](self).
pub struct Trainer {
    vae: Vae,
    optim: Adam,
    cfg: TrainConfig,
    step: u64,
    epoch: usize,
    history: Vec<EpochStats>,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("cfg", &self.cfg)
            .field("step", &self.step)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// The generator of epoch `epoch` (0-based) for `seed`.
pub fn epoch_rng(seed: u64, epoch: usize) -> StdRng {
    StdRng::seed_from_u64(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

impl Trainer {
    /// A trainer for `vae` at step 0, epoch 0.
    pub fn new(vae: Vae, cfg: TrainConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Trainer {
            optim: Adam::new(cfg.adam()),
            vae,
            cfg,
            step: 0,
            epoch: 0,
            history: Vec::new(),
        })
    }

    /// Restores a trainer from a checkpoint written by [`Trainer::save`]; training then
    /// continues exactly where it stopped. `cfg` may change `epochs`, `progress` and
    /// `checkpoint`; the rest should match the original run for an exact continuation.
    pub fn resume(path: &Path, cfg: TrainConfig) -> Result<Self> {
        let ckpt = Checkpoint::load(path)?;
        let mut vae = Vae::new(ckpt.config.clone(), &mut StdRng::seed_from_u64(0))?;
        ckpt.apply_weights(&mut vae, path)?;
        let mut t = Trainer::new(vae, cfg)?;
        let tensors = ckpt
            .optim_tensors
            .into_iter()
            .map(|(n, a)| {
                (
                    n.strip_prefix(OPTIM_PREFIX)
                        .map(str::to_string)
                        .unwrap_or(n),
                    a,
                )
            })
            .collect();
        t.optim.load_state(OptimState {
            step: ckpt.optim_step,
            tensors,
        })?;
        t.step = ckpt.step;
        t.epoch = ckpt.epoch;
        t.history = serde_json::from_value(ckpt.extra["history"].clone()).map_err(|e| {
            CoreError::CorruptCheckpoint {
                path: path.to_path_buf(),
                reason: format!("metadata extra.history: {e}"),
            }
        })?;
        Ok(t)
    }

    /// Writes the model, optimizer state, step, epoch, config and history atomically.
    ///
    /// The weights and the optimizer's moments are moved into the checkpoint for the write
    /// and moved back afterwards (also when the write fails), so saving does not hold a
    /// second copy of them.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        let state = self.optim.take_state();
        let mut weights = Vec::new();
        self.vae.visit_params("", &mut |name, p| {
            let value = std::mem::replace(&mut p.value, ArrayD::zeros(IxDyn(&[0])));
            weights.push((name.to_string(), value));
        });
        let ckpt = Checkpoint {
            config: self.vae.config().clone(),
            step: self.step,
            epoch: self.epoch,
            weights,
            optim_step: state.step,
            optim_tensors: state
                .tensors
                .into_iter()
                .map(|(n, a)| (format!("{OPTIM_PREFIX}{n}"), a))
                .collect(),
            extra: serde_json::json!({ "train": self.cfg, "history": self.history }),
        };
        let written = ckpt.save(path);
        // Put everything back, in the same visiting order.
        let mut values = ckpt.weights.into_iter().map(|(_, v)| v);
        self.vae.visit_params("", &mut |_, p| {
            if let Some(v) = values.next() {
                p.value = v;
            }
        });
        let tensors = ckpt
            .optim_tensors
            .into_iter()
            .map(|(n, a)| match n.strip_prefix(OPTIM_PREFIX) {
                Some(k) => (k.to_string(), a),
                None => (n, a),
            })
            .collect();
        self.optim.load_state(OptimState {
            step: ckpt.optim_step,
            tensors,
        })?;
        written
    }

    /// The model.
    pub fn vae(&mut self) -> &mut Vae {
        &mut self.vae
    }

    /// Consumes the trainer and returns the model.
    pub fn into_vae(self) -> Vae {
        self.vae
    }

    /// Optimizer steps taken.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Epochs completed.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Statistics of every completed epoch.
    pub fn history(&self) -> &[EpochStats] {
        &self.history
    }

    /// Trains one epoch over `train` (shuffled, in batches), then evaluates on `test`.
    /// A non-finite loss or gradient stops with [`CoreError::Diverged`] before the
    /// optimizer touches the weights; the checkpoint of the previous epoch stays intact.
    pub fn train_epoch(
        &mut self,
        train: &dyn ImageSource,
        test: Option<&dyn ImageSource>,
    ) -> Result<EpochStats> {
        let shape = self.vae.config().input_shape;
        if train.image_shape() != shape || train.is_empty() {
            return Err(CoreError::arg(
                "train_epoch",
                format!(
                    "training images {:?} x {}, model expects {shape:?}",
                    train.image_shape(),
                    train.len()
                ),
            ));
        }
        let mut rng = epoch_rng(self.cfg.seed, self.epoch);
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rng);
        let bar = if self.cfg.progress {
            let b = ProgressBar::new(train.len() as u64);
            b.set_style(
                ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            b.set_prefix(format!("{}/{}", self.epoch + 1, self.cfg.epochs));
            b
        } else {
            ProgressBar::hidden()
        };
        let start = Instant::now();
        let (mut sum_recon, mut sum_kl, mut sum_loss, mut seen) = (0.0, 0.0, 0.0, 0usize);
        for idx in order.chunks(self.cfg.batch_size) {
            let mut x = train.batch(idx);
            self.cfg.binarization.apply(&mut x, &mut rng)?;
            let w = self.vae.config().kl_weight(self.step);
            zero_grad(&mut self.vae);
            let terms = self.vae.train_step(&x, w, &mut rng)?;
            let loss = terms.loss();
            if !loss.is_finite() || !grad_norm(&mut self.vae).is_finite() {
                bar.abandon();
                return Err(CoreError::Diverged {
                    step: self.step,
                    epoch: self.epoch,
                    loss,
                });
            }
            self.optim.step(&mut self.vae)?;
            self.step += 1;
            let n = idx.len();
            seen += n;
            sum_recon += terms.recon_nats_per_image * n as f64;
            sum_kl += terms.kl_nats_per_image * n as f64;
            sum_loss += loss * n as f64;
            bar.inc(n as u64);
            let ips = seen as f64 / start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {:.2} | {:.0} img/s",
                sum_loss / seen as f64,
                ips
            ));
        }
        let seconds = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let test_neg_elbo = match test {
            Some(t) => {
                Some(evaluate(&mut self.vae, t, self.cfg.binarization, self.cfg.seed)?.neg_elbo())
            }
            None => None,
        };
        self.epoch += 1;
        let stats = EpochStats {
            epoch: self.epoch,
            train_recon: sum_recon / seen as f64,
            train_kl: sum_kl / seen as f64,
            train_loss: sum_loss / seen as f64,
            test_neg_elbo,
            seconds,
            images_per_sec: seen as f64 / seconds.max(1e-9),
        };
        self.history.push(stats);
        if let Some(path) = self.cfg.checkpoint.clone() {
            self.save(&path)?;
        }
        Ok(stats)
    }

    /// Trains until `epochs` epochs are completed, calling `on_epoch` after each.
    pub fn fit(
        &mut self,
        train: &dyn ImageSource,
        test: Option<&dyn ImageSource>,
        mut on_epoch: impl FnMut(&EpochStats),
    ) -> Result<Vec<EpochStats>> {
        while self.epoch < self.cfg.epochs {
            let s = self.train_epoch(train, test)?;
            on_epoch(&s);
        }
        Ok(self.history.clone())
    }
}

/// The mean ELBO terms over a data set, one posterior sample per image, in batches of
/// [`EVAL_BATCH`](crate::data::EVAL_BATCH).
/// Dynamic binarization and ε are drawn from a generator seeded by `seed`, so the same seed
/// gives the same number.
pub fn evaluate(
    vae: &mut Vae,
    data: &dyn ImageSource,
    binarization: Binarization,
    seed: u64,
) -> Result<ElboTerms> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7E57);
    let (mut recon, mut kl, mut n) = (0.0, 0.0, 0usize);
    for (_, mut x) in chunks(data, crate::data::EVAL_BATCH) {
        binarization.apply(&mut x, &mut rng)?;
        let (r, k) = vae.evaluate(&x, &mut rng)?;
        recon += r.sum();
        kl += k.sum();
        n += x.dim().0;
    }
    if n == 0 {
        return Err(CoreError::arg("evaluate", "empty data set"));
    }
    Ok(ElboTerms {
        recon_nats_per_image: recon / n as f64,
        kl_nats_per_image: kl / n as f64,
        beta: 1.0,
    })
}
