//! The two benchmark tasks end to end: pretrain a conv VAE without labels, train the head
//! on its encoder and the same head from scratch (the ablation), score both on test data
//! built from images never used in training.

use std::path::Path;
use std::time::Instant;

use ndarray::{Array2, Array3, Array4, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vae_core::{Preset, TrainConfig, Trainer, Vae, VaeConfig};
use vae_data::folder::{load_image_folder, ColorMode};
use vae_data::mnist::{load_mnist, Split};

use super::head::{SegNet, SegNetConfig};
use super::scenes::{digit_scenes, standardize_textures, texture_mosaics, SegSet, TextureBank};
use super::train::{
    class_weights, predict, score, train_segnet, upsample_labels, ClassWeighting, SegEpoch,
    SegReport, SegTrainConfig,
};
use crate::error::{Result, VisionError};

/// Settings shared by both tasks (sizes, budgets, seed).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskConfig {
    /// Seed of data generation, weights and batch order.
    pub seed: u64,
    /// Training images drawn afresh for each head epoch.
    pub train_images: usize,
    /// Test images.
    pub test_images: usize,
    /// Head epochs.
    pub epochs: usize,
    /// Head batch size.
    pub batch_size: usize,
    /// Head learning rate.
    pub lr: f32,
    /// VAE pretraining epochs (0 skips the VAE head and runs only the ablation).
    pub vae_epochs: usize,
    /// Images (digit crops or texture patches) the VAE is pretrained on.
    pub vae_images: usize,
    /// Channels of the VAE conv preset (`e1`; `e2 = 2·e1`).
    pub channels: usize,
    /// VAE latent size.
    pub latent: usize,
    /// Class weighting of the cross-entropy.
    pub weighting: ClassWeighting,
    /// Also train the from-scratch ablation.
    pub ablation: bool,
}

/// One trained head and its test scores.
#[derive(Debug, Clone)]
pub struct HeadOutcome {
    /// `"vae"` or `"scratch"`.
    pub name: String,
    /// Test scores at the full resolution of the task.
    pub report: SegReport,
    /// Predicted test label maps at full resolution.
    pub pred: Array3<u8>,
    /// Loss per epoch.
    pub history: Vec<SegEpoch>,
    /// Wall-clock seconds of head training.
    pub train_seconds: f64,
}

/// Everything a task run produced.
#[derive(Debug, Clone)]
pub struct TaskOutcome {
    /// Test images and labels at full resolution.
    pub test: SegSet,
    /// Class weights used in the loss.
    pub weights: Vec<f32>,
    /// Seconds spent pretraining the VAE.
    pub vae_seconds: f64,
    /// Last VAE epoch's training loss (negative ELBO, nats per image), if one was trained.
    pub vae_loss: Option<f64>,
    /// The head on the VAE encoder (fine-tuned), then the ablation.
    pub heads: Vec<HeadOutcome>,
    /// Downsampling factor between the task's resolution and the network's.
    pub scale: usize,
    /// Boundary F tolerance in pixels at full resolution.
    pub boundary_tolerance: f64,
}

fn pretrain_vae(
    images: &Array4<f32>,
    cfg: &TaskConfig,
    log: &mut dyn FnMut(&str),
) -> Result<(Vae, f64, Option<f64>)> {
    let (_, c, h, w) = images.dim();
    let vcfg = VaeConfig {
        input_shape: [c, h, w],
        latent: cfg.latent,
        preset: Preset::Conv {
            channels: cfg.channels,
            hidden: 256,
        },
        ..VaeConfig::default()
    };
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x5eed_0fae);
    let vae = Vae::new(vcfg, &mut rng)?;
    let tcfg = TrainConfig {
        epochs: cfg.vae_epochs,
        batch_size: 64,
        seed: cfg.seed,
        ..TrainConfig::default()
    };
    let start = Instant::now();
    let mut trainer = Trainer::new(vae, tcfg)?;
    let hist = trainer.fit(images, None, |s| {
        log(&format!(
            "vae epoch {}: -ELBO {:.2} nats/image ({:.0} img/s)",
            s.epoch, s.train_loss, s.images_per_sec
        ))
    })?;
    Ok((
        trainer.into_vae(),
        start.elapsed().as_secs_f64(),
        hist.last().map(|s| s.train_loss),
    ))
}

/// Trains the VAE head and (if asked) the ablation, with training sets from `data(epoch)`
/// and scores at full resolution (`scale` = full / network resolution).
#[allow(clippy::too_many_arguments)]
fn run_heads(
    cfg: &TaskConfig,
    vae_images: &Array4<f32>,
    mut data: impl FnMut(usize) -> Result<SegSet>,
    test_full: SegSet,
    test_net: &Array4<f32>,
    scale: usize,
    boundary_tolerance: f64,
    log: &mut dyn FnMut(&str),
) -> Result<TaskOutcome> {
    let k = test_full.num_classes;
    let freqs = data(0)?.class_frequencies();
    let weights = class_weights(&freqs, cfg.weighting);
    let net_cfg = SegNetConfig::for_conv_preset(1, cfg.channels, k);
    let tcfg = SegTrainConfig {
        epochs: cfg.epochs,
        batch_size: cfg.batch_size,
        lr: cfg.lr,
        seed: cfg.seed,
    };
    let (mut vae_seconds, mut vae_loss) = (0.0, None);
    let mut heads = Vec::new();
    let mut names: Vec<&'static str> = Vec::new();
    let mut vae = None;
    if cfg.vae_epochs > 0 {
        let (v, s, l) = pretrain_vae(vae_images, cfg, log)?;
        vae = Some(v);
        (vae_seconds, vae_loss) = (s, l);
        names.push("vae");
    }
    if cfg.ablation {
        names.push("scratch");
    }
    for name in names {
        // Both heads draw their random layers from the same seed.
        let mut rng = StdRng::seed_from_u64(cfg.seed.wrapping_add(7));
        let mut net = match (name, vae.as_mut()) {
            ("vae", Some(v)) => SegNet::with_vae_encoder(net_cfg, v, &mut rng)?,
            _ => SegNet::new(net_cfg, &mut rng)?,
        };
        let start = Instant::now();
        let history = train_segnet(&mut net, &mut data, Some(&weights), &tcfg, |e| {
            log(&format!(
                "{name} head epoch {}: loss {:.4} ({} images, {:.0} s)",
                e.epoch,
                e.loss,
                e.images,
                start.elapsed().as_secs_f64()
            ))
        })?;
        let train_seconds = start.elapsed().as_secs_f64();
        let pred = upsample_labels(&predict(&mut net, test_net, 16)?, scale);
        let report = score(&pred, &test_full.labels, k, boundary_tolerance)?;
        log(&format!(
            "{name} head: pixel accuracy {:.4}, mIoU {:.4}, boundary F {:.4}",
            report.pixel_accuracy, report.mean_iou, report.boundary_f
        ));
        heads.push(HeadOutcome {
            name: name.to_string(),
            report,
            pred,
            history,
            train_seconds,
        });
    }
    Ok(TaskOutcome {
        test: test_full,
        weights,
        vae_seconds,
        vae_loss,
        heads,
        scale,
        boundary_tolerance,
    })
}

/// Digit scenes: `size × size` canvases (a multiple of 4) with 1–4 MNIST digits, 11 classes
/// (background, digits 0–9). Training scenes come from MNIST train (fresh ones every
/// epoch), test scenes from MNIST test. The VAE is pretrained on `vae_images` MNIST train
/// digits (28×28, no labels). Boundary F at 1 pixel tolerance.
///
/// # Errors
/// Missing or bad MNIST files ([`VisionError::Data`]), bad sizes, training failures.
pub fn run_digits(
    mnist_dir: &Path,
    size: usize,
    cfg: &TaskConfig,
    log: &mut dyn FnMut(&str),
) -> Result<TaskOutcome> {
    if size % 4 != 0 || size < 28 {
        return Err(VisionError::param(
            "run_digits",
            "size",
            size,
            "must be a multiple of 4 and >= 28",
        ));
    }
    let train = load_mnist(mnist_dir, Split::Train)?;
    let test = load_mnist(mnist_dir, Split::Test)?;
    let n_vae = cfg.vae_images.min(train.len()).max(1);
    let vae_images = train
        .images
        .slice_axis(Axis(0), ndarray::Slice::from(..n_vae))
        .to_owned();
    let mut test_rng = StdRng::seed_from_u64(cfg.seed.wrapping_mul(31).wrapping_add(1));
    let test_set = digit_scenes(
        &test.images,
        &test.labels,
        cfg.test_images,
        size,
        4,
        &mut test_rng,
    )?;
    let test_net = test_set.images.clone();
    let seed = cfg.seed;
    let (n_train, imgs, labels) = (cfg.train_images, &train.images, &train.labels);
    let data = move |e: usize| {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1000).wrapping_add(100 + e as u64));
        digit_scenes(imgs, labels, n_train, size, 4, &mut rng)
    };
    run_heads(cfg, &vae_images, data, test_set, &test_net, 1, 1.0, log)
}

/// Downsamples an image by 2 (box average).
fn half(img: &Array2<f32>) -> Array2<f32> {
    let (h, w) = img.dim();
    Array2::from_shape_fn((h / 2, w / 2), |(y, x)| {
        0.25 * (img[[2 * y, 2 * x]]
            + img[[2 * y + 1, 2 * x]]
            + img[[2 * y, 2 * x + 1]]
            + img[[2 * y + 1, 2 * x + 1]])
    })
}

/// Texture mosaics from KTH-TIPS grey (`dir`, one folder per class): `train_per_class`
/// source images of each class are drawn for training, the rest are only used in test
/// mosaics. Test mosaics are `size × size` (half quadrants-and-disc, half Voronoi) and the
/// network sees them downsampled by 2; training mosaics are `size / 2` (crops of the same
/// texture scale, cheaper). The VAE is pretrained on `vae_images` 32×32 patches of
/// training images at the network's resolution. Boundary F at 2 pixels (full resolution).
///
/// # Errors
/// Missing or bad texture files, bad sizes, training failures.
pub fn run_mosaic(
    dir: &Path,
    size: usize,
    train_per_class: usize,
    cfg: &TaskConfig,
    log: &mut dyn FnMut(&str),
) -> Result<TaskOutcome> {
    if size % 16 != 0 || size < 64 {
        return Err(VisionError::param(
            "run_mosaic",
            "size",
            size,
            "must be a multiple of 16 and >= 64",
        ));
    }
    let (train_bank, test_bank) = mosaic_banks(dir, train_per_class, cfg.seed, log)?;
    // VAE patches: 32×32 at network resolution from the training images only.
    let mut prng = StdRng::seed_from_u64(cfg.seed.wrapping_add(13));
    let halves: Vec<Array2<f32>> = train_bank.images.iter().map(half).collect();
    let p = 32;
    let vae_images = Array4::from_shape_fn((cfg.vae_images.max(1), 1, p, p), |_| 0.0f32);
    let mut vae_images = vae_images;
    for mut patch in vae_images.outer_iter_mut() {
        let img = &halves[prng.random_range(0..halves.len())];
        let (h, w) = img.dim();
        let (oy, ox) = (prng.random_range(0..=h - p), prng.random_range(0..=w - p));
        for y in 0..p {
            for x in 0..p {
                patch[[0, y, x]] = img[[oy + y, ox + x]];
            }
        }
    }
    let test_full = test_mosaics(&test_bank, cfg.test_images, size, cfg.seed)?;
    let test_net = test_full.downsample2().images;
    let (seed, n_train) = (cfg.seed, cfg.train_images);
    let data = move |e: usize| {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1000).wrapping_add(500 + e as u64));
        Ok(texture_mosaics(&train_bank, n_train, size / 2, None, &mut rng)?.downsample2())
    };
    run_heads(cfg, &vae_images, data, test_full, &test_net, 2, 2.0, log)
}

/// Loads KTH-TIPS grey from `dir`, standardises every image ([`standardize_textures`]) and
/// splits it by source image with the mosaic task's seeded split: `train_per_class` images
/// of each class for training, the rest test-only. Shared by every mosaic method so they
/// all see the same split.
///
/// # Errors
/// Missing or bad texture files; a class with fewer than `train_per_class` images.
pub fn mosaic_banks(
    dir: &Path,
    train_per_class: usize,
    seed: u64,
    log: &mut dyn FnMut(&str),
) -> Result<(TextureBank, TextureBank)> {
    let folder = load_image_folder(dir, ColorMode::Gray)?;
    let mut images: Vec<Array2<f32>> = folder
        .images
        .iter()
        .map(|im| im.index_axis(Axis(0), 0).to_owned())
        .collect();
    standardize_textures(&mut images);
    let all = TextureBank {
        images,
        labels: folder.labels.clone(),
        num_classes: folder.classes.len(),
    };
    let mut split_rng = StdRng::seed_from_u64(seed.wrapping_add(11));
    let (train_bank, test_bank) = all.split(train_per_class, &mut split_rng)?;
    log(&format!(
        "textures: {} training images, {} test images, {} classes",
        train_bank.images.len(),
        test_bank.images.len(),
        folder.classes.len()
    ));
    Ok((train_bank, test_bank))
}

/// The mosaic task's `n` test mosaics of `size × size` from `bank` (seeded by `seed`; the
/// same mosaics for every method).
///
/// # Errors
/// As [`texture_mosaics`].
pub fn test_mosaics(bank: &TextureBank, n: usize, size: usize, seed: u64) -> Result<SegSet> {
    let mut test_rng = StdRng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(2));
    texture_mosaics(bank, n, size, None, &mut test_rng)
}
