//! Training the edge network on random crops, prediction on whole images, the VAE
//! pretraining on image patches, and checkpoints.

use std::path::Path;
use std::time::Instant;

use ndarray::{Array2, Array3, Array4, ArrayD, ArrayView2, ArrayView3, Axis, Slice};

fn window3(mut a: ArrayView3<f32>, y0: usize, x0: usize, h: usize, w: usize) -> ArrayView3<f32> {
    a.slice_axis_inplace(Axis(1), Slice::from(y0..y0 + h));
    a.slice_axis_inplace(Axis(2), Slice::from(x0..x0 + w));
    a
}

fn window2<T>(mut a: ArrayView2<T>, y0: usize, x0: usize, h: usize, w: usize) -> ArrayView2<T> {
    a.slice_axis_inplace(Axis(0), Slice::from(y0..y0 + h));
    a.slice_axis_inplace(Axis(1), Slice::from(x0..x0 + w));
    a
}
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use vae_core::checkpoint::{collect_weights, load_weights};
use vae_core::{Checkpoint, Preset, TrainConfig, Trainer, Vae, VaeConfig};
use vae_data::bsds::BsdsImage;
use vae_tensor::layer::{zero_grad, Layer, Mode};
use vae_tensor::optim::{Adam, AdamConfig, Optimizer};

use super::input::{edge_targets, flip, net_input, Target, IGNORE, INPUT_CHANNELS};
use super::loss::balanced_bce;
use super::net::{fused_logits, EdgeNet, EdgeNetConfig};
use crate::classical::edge_nms;
use crate::error::{Result, VisionError};

/// One training image: the network input `[6, h, w]` and its target `[h, w]`.
#[derive(Debug, Clone)]
pub struct EdgeSample {
    /// [`net_input`] of the image.
    pub input: Array3<f32>,
    /// [`edge_targets`] of its annotations.
    pub target: Target,
}

/// Builds the training samples of a split (in parallel): inputs and targets with edge
/// threshold `eta` (see [`edge_targets`]).
///
/// # Errors
/// As [`net_input`] and [`edge_targets`].
pub fn prepare_samples(images: &[BsdsImage], eta: f32) -> Result<Vec<EdgeSample>> {
    images
        .par_iter()
        .map(|im| {
            Ok(EdgeSample {
                input: net_input(im.image.view())?,
                target: edge_targets(&im.boundaries, eta)?,
            })
        })
        .collect()
}

/// Settings of [`train_edge_net`].
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeTrainConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Crops per step.
    pub batch: usize,
    /// Crop side in pixels (a multiple of 4, at most the smallest image side).
    pub crop: usize,
    /// Peak Adam learning rate (cosine decay to 5% of it over the steps).
    pub lr: f32,
    /// Seed of the crops and flips.
    pub seed: u64,
    /// Supervise every side output as well as the fused one (HED's deep supervision);
    /// else only the fused output.
    pub deep_supervision: bool,
    /// HED's class-balanced weighting; else plain cross-entropy.
    pub balanced: bool,
    /// Random rescaling of each crop by a factor drawn uniformly from `[min, max]` (the
    /// crop is cut from a window of `crop / factor` pixels and resampled, HED/RCF-style
    /// scale augmentation); `(1, 1)` = none.
    pub scale_range: (f32, f32),
    /// Random transposition of each crop (with the flips: all eight 90° rotations and
    /// reflections); else only the two flips.
    pub transpose: bool,
    /// Stop after the step during which this many wall-clock seconds have passed, even
    /// before `steps` (a safety net on a shared machine: the learning-rate schedule is
    /// still the one for `steps`, and a run cut short this way depends on the machine's
    /// load, so it is not reproducible). `None`: always run every step.
    pub time_limit_s: Option<f64>,
    /// Take only the first N steps of the `steps`-step schedule, then stop: replays
    /// exactly a run that `time_limit_s` cut short after N steps (same seed, same crops,
    /// same learning rates). `None`: every step.
    pub stop_after: Option<usize>,
}

impl Default for EdgeTrainConfig {
    /// 1500 steps of 8 crops of 96×96, lr 2e-3, deep supervision and class balance on.
    fn default() -> Self {
        EdgeTrainConfig {
            steps: 1500,
            batch: 8,
            crop: 96,
            lr: 2e-3,
            seed: 0,
            deep_supervision: true,
            balanced: true,
            scale_range: (1.0, 1.0),
            transpose: false,
            time_limit_s: None,
            stop_after: None,
        }
    }
}

/// The input window `[c, crop, crop]` and target `[crop, crop]` of `smp` that start at
/// `(y0, x0)` and cover `src` pixels, resampled to `crop`: the input bilinearly (half-pixel
/// centres), the target by the pixels each output pixel covers (an edge if any is an edge,
/// else ignored if any is ignored, else not an edge).
fn resampled_crop(
    smp: &EdgeSample,
    y0: usize,
    x0: usize,
    src: usize,
    crop: usize,
) -> (Array3<f32>, Target) {
    let s = src as f32 / crop as f32;
    let taps: Vec<(usize, usize, f32)> = (0..crop)
        .map(|o| {
            let p = ((o as f32 + 0.5) * s - 0.5).clamp(0.0, (src - 1) as f32);
            let i0 = (p.floor() as usize).min(src - 1);
            (i0, (i0 + 1).min(src - 1), p - i0 as f32)
        })
        .collect();
    let c = smp.input.dim().0;
    let x = Array3::from_shape_fn((c, crop, crop), |(k, i, j)| {
        let (a0, a1, fy) = taps[i];
        let (b0, b1, fx) = taps[j];
        let v = |y: usize, xx: usize| smp.input[[k, y0 + y, x0 + xx]];
        (1.0 - fy) * ((1.0 - fx) * v(a0, b0) + fx * v(a0, b1))
            + fy * ((1.0 - fx) * v(a1, b0) + fx * v(a1, b1))
    });
    let span = |o: usize| {
        let lo = ((o as f32 * s).floor() as usize).min(src - 1);
        let hi = (((o + 1) as f32 * s).floor() as usize).clamp(lo + 1, src);
        lo..hi
    };
    let t = Array2::from_shape_fn((crop, crop), |(i, j)| {
        let mut out = 0;
        for y in span(i) {
            for xx in span(j) {
                match smp.target[[y0 + y, x0 + xx]] {
                    1 => return 1,
                    IGNORE => out = IGNORE,
                    _ => {}
                }
            }
        }
        out
    });
    (x, t)
}

/// Draws a batch of random crops with random left-right and up-down flips, and, as `cfg`
/// asks, random rescaling and transposition. Without those two the random stream is the
/// same as before they existed (runs stay reproducible).
fn batch(
    data: &[EdgeSample],
    cfg: &EdgeTrainConfig,
    rng: &mut impl Rng,
) -> (Array4<f32>, Array3<i8>) {
    let (n, crop) = (cfg.batch, cfg.crop);
    let mut x = Array4::<f32>::zeros((n, INPUT_CHANNELS, crop, crop));
    let mut t = Array3::<i8>::zeros((n, crop, crop));
    let (lo, hi) = cfg.scale_range;
    for b in 0..n {
        let smp = &data[rng.random_range(0..data.len())];
        let (_, h, w) = smp.input.dim();
        let src = if hi > lo {
            let f = rng.random_range(lo..=hi);
            ((crop as f32 / f).round() as usize).clamp(1, h.min(w))
        } else if lo != 1.0 {
            ((crop as f32 / lo).round() as usize).clamp(1, h.min(w))
        } else {
            crop
        };
        let (y0, x0) = (rng.random_range(0..=h - src), rng.random_range(0..=w - src));
        let (mut xi, mut ti) = if src == crop {
            (
                window3(smp.input.view(), y0, x0, crop, crop).to_owned(),
                window2(smp.target.view(), y0, x0, crop, crop).to_owned(),
            )
        } else {
            resampled_crop(smp, y0, x0, src, crop)
        };
        flip(&mut xi, &mut ti, rng.random(), rng.random());
        if cfg.transpose && rng.random::<bool>() {
            xi = xi.permuted_axes([0, 2, 1]).as_standard_layout().to_owned();
            ti = ti.reversed_axes().as_standard_layout().to_owned();
        }
        x.index_axis_mut(Axis(0), b).assign(&xi);
        t.index_axis_mut(Axis(0), b).assign(&ti);
    }
    (x, t)
}

/// Loss per step, recorded by [`train_edge_net`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdgeStep {
    /// Step index (0-based).
    pub step: usize,
    /// Total loss of the step (fused plus supervised sides).
    pub loss: f64,
    /// Loss of the fused output alone.
    pub fused_loss: f64,
}

/// Trains `net` with Adam on random crops of `data`. Returns one record per step taken
/// (fewer than `cfg.steps` only when `cfg.time_limit_s` ran out or `cfg.stop_after` is set).
///
/// # Errors
/// [`VisionError::Empty`] without samples; [`VisionError::InvalidParameter`] for a zero
/// step count or batch, or a crop that is not a multiple of 4 or is larger than an image;
/// [`VisionError::BadValue`] when the loss stops being finite.
pub fn train_edge_net(
    net: &mut EdgeNet,
    data: &[EdgeSample],
    cfg: &EdgeTrainConfig,
    mut on_step: impl FnMut(&EdgeStep),
) -> Result<Vec<EdgeStep>> {
    if data.is_empty() {
        return Err(VisionError::Empty {
            op: "train_edge_net",
            what: "no training samples".into(),
        });
    }
    if cfg.steps == 0 || cfg.batch == 0 {
        return Err(VisionError::param(
            "train_edge_net",
            "steps/batch",
            format!("{}/{}", cfg.steps, cfg.batch),
            "must be > 0",
        ));
    }
    let min_side = data
        .iter()
        .map(|d| d.target.dim().0.min(d.target.dim().1))
        .min()
        .unwrap_or(0);
    let m = net.multiple();
    if cfg.crop == 0 || cfg.crop % m != 0 || cfg.crop > min_side {
        return Err(VisionError::param(
            "train_edge_net",
            "crop",
            cfg.crop,
            format!("must be a positive multiple of {m} and at most {min_side}"),
        ));
    }
    let (lo, hi) = cfg.scale_range;
    if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && hi >= lo) {
        return Err(VisionError::param(
            "train_edge_net",
            "scale_range",
            format!("{lo}..{hi}"),
            "need finite 0 < min <= max",
        ));
    }
    let outputs = net.outputs();
    let start = Instant::now();
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut opt = Adam::new(AdamConfig::adam(cfg.lr));
    let mut history = Vec::with_capacity(cfg.steps);
    for step in 0..cfg.steps {
        let progress = step as f32 / cfg.steps as f32;
        let lr = cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos()));
        opt.set_lr(lr);
        let (x, t) = batch(data, cfg, &mut rng);
        let out = net.forward(x.into_dyn(), Mode::Train)?;
        let mut grad = ArrayD::<f32>::zeros(out.raw_dim());
        let (mut loss, mut fused_loss) = (0.0, 0.0);
        for k in 0..outputs {
            let fused = k == outputs - 1;
            if !fused && !cfg.deep_supervision {
                continue;
            }
            let logits = out.slice_axis(Axis(1), (k..k + 1).into()).to_owned();
            let l = balanced_bce(&logits, &t, cfg.balanced)?;
            grad.slice_axis_mut(Axis(1), (k..k + 1).into())
                .assign(&l.grad);
            loss += l.value;
            if fused {
                fused_loss = l.value;
            }
        }
        if !loss.is_finite() {
            return Err(VisionError::BadValue {
                op: "train_edge_net",
                what: format!("loss {loss} at step {step}"),
            });
        }
        net.backward(grad)?;
        opt.step(net)?;
        zero_grad(net);
        let rec = EdgeStep {
            step,
            loss,
            fused_loss,
        };
        on_step(&rec);
        history.push(rec);
        if cfg
            .time_limit_s
            .is_some_and(|t| start.elapsed().as_secs_f64() >= t)
            || cfg.stop_after.is_some_and(|n| step + 1 >= n)
        {
            break;
        }
    }
    Ok(history)
}

/// The fused edge probability of `net` on a whole RGB image `[3, h, w]` in `[0, 1]`, any
/// size: the input is padded by edge replication to multiples of [`EdgeNet::multiple`],
/// and the output cropped back. Values in `[0, 1]`, no thinning (see [`edge_map`]).
///
/// # Errors
/// As [`net_input`] and the network's forward pass.
pub fn predict(net: &mut EdgeNet, rgb: ndarray::ArrayView3<f32>) -> Result<Array2<f32>> {
    let x = net_input(rgb)?;
    let (c, h, w) = x.dim();
    let m = net.multiple();
    let (hp, wp) = (h.div_ceil(m) * m, w.div_ceil(m) * m);
    let padded = Array4::from_shape_fn((1, c, hp, wp), |(_, k, y, xx)| {
        x[[k, y.min(h - 1), xx.min(w - 1)]]
    });
    let out = net.forward(padded.into_dyn(), Mode::Eval)?;
    let z = fused_logits(&out);
    Ok(window3(z.view(), 0, 0, h, w)
        .index_axis(Axis(0), 0)
        .mapv(vae_tensor::layers::activation::sigmoid))
}

/// Bilinear resampling of `[c, h, w]` to `[c, h2, w2]` (half-pixel centres, edges
/// clamped).
fn resize3(a: ArrayView3<f32>, h2: usize, w2: usize) -> Array3<f32> {
    let (c, h, w) = a.dim();
    let taps = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        let s = n_in as f32 / n_out as f32;
        (0..n_out)
            .map(|o| {
                let p = ((o as f32 + 0.5) * s - 0.5).clamp(0.0, (n_in - 1) as f32);
                let i0 = (p.floor() as usize).min(n_in - 1);
                (i0, (i0 + 1).min(n_in - 1), p - i0 as f32)
            })
            .collect()
    };
    let (ty, tx) = (taps(h, h2), taps(w, w2));
    Array3::from_shape_fn((c, h2, w2), |(k, i, j)| {
        let (a0, a1, fy) = ty[i];
        let (b0, b1, fx) = tx[j];
        (1.0 - fy) * ((1.0 - fx) * a[[k, a0, b0]] + fx * a[[k, a0, b1]])
            + fy * ((1.0 - fx) * a[[k, a1, b0]] + fx * a[[k, a1, b1]])
    })
}

/// Multi-scale [`predict`] (RCF's multi-scale test): the image is resized bilinearly by
/// each factor in `scales`, the network's probability map at that size is resized back to
/// `[h, w]`, and the maps are averaged. `scales = [1.0]` is [`predict`].
///
/// # Errors
/// [`VisionError::InvalidParameter`] for no scales or a scale that is not finite and
/// positive; as [`predict`].
pub fn predict_multiscale(
    net: &mut EdgeNet,
    rgb: ndarray::ArrayView3<f32>,
    scales: &[f32],
) -> Result<Array2<f32>> {
    if scales.is_empty() || scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(VisionError::param(
            "predict_multiscale",
            "scales",
            format!("{scales:?}"),
            "need at least one finite scale > 0",
        ));
    }
    let (_, h, w) = rgb.dim();
    let mut sum = Array2::<f32>::zeros((h, w));
    for &s in scales {
        let p = if s == 1.0 {
            predict(net, rgb)?
        } else {
            let (h2, w2) = (
                ((h as f32 * s).round() as usize).max(1),
                ((w as f32 * s).round() as usize).max(1),
            );
            let p = predict(net, resize3(rgb, h2, w2).view())?;
            resize3(p.insert_axis(Axis(0)).view(), h, w).index_axis_move(Axis(0), 0)
        };
        sum += &p;
    }
    Ok(sum / scales.len() as f32)
}

/// How many of the eight symmetries of the square [`predict_dihedral`] averages over, in
/// this order: identity, left-right flip, up-down flip, both flips (a 180° turn), then the
/// same four after a transposition (90° turns and the diagonal reflections).
pub const DIHEDRAL: usize = 8;

/// [`predict_multiscale`] averaged over the first `flips` symmetries of the square (test
/// time augmentation; see [`DIHEDRAL`] for the order): each transformed image is predicted
/// at every scale, the map is transformed back, and all `flips × scales.len()` maps are
/// averaged. The head is trained with flips and transpositions (`EdgeTrainConfig::transpose`),
/// so every one of these views is one it has learned. `flips = 1` is
/// [`predict_multiscale`].
///
/// # Errors
/// [`VisionError::InvalidParameter`] unless `1 <= flips <= 8`; as [`predict_multiscale`].
pub fn predict_dihedral(
    net: &mut EdgeNet,
    rgb: ndarray::ArrayView3<f32>,
    scales: &[f32],
    flips: usize,
) -> Result<Array2<f32>> {
    if !(1..=DIHEDRAL).contains(&flips) {
        return Err(VisionError::param(
            "predict_dihedral",
            "flips",
            flips,
            format!("must be between 1 and {DIHEDRAL}"),
        ));
    }
    let (_, h, w) = rgb.dim();
    let mut sum = Array2::<f32>::zeros((h, w));
    for k in 0..flips {
        let (lr, ud, tr) = (k & 1 == 1, k & 2 == 2, k & 4 == 4);
        let mut v = rgb;
        if lr {
            v.invert_axis(Axis(2));
        }
        if ud {
            v.invert_axis(Axis(1));
        }
        let view = if tr { v.permuted_axes([0, 2, 1]) } else { v };
        let image = view.as_standard_layout();
        let p = predict_multiscale(net, image.view(), scales)?;
        // Undo in reverse order: transpose first, then the flips.
        let mut back = if tr { p.reversed_axes() } else { p };
        if ud {
            back.invert_axis(Axis(0));
        }
        if lr {
            back.invert_axis(Axis(1));
        }
        sum += &back;
    }
    Ok(sum / flips as f32)
}

/// [`predict_dihedral`] followed by the same non-maximum suppression as [`edge_map`].
///
/// # Errors
/// As [`predict_dihedral`].
pub fn edge_map_dihedral(
    net: &mut EdgeNet,
    rgb: ndarray::ArrayView3<f32>,
    scales: &[f32],
    flips: usize,
) -> Result<Array2<f32>> {
    let p = predict_dihedral(net, rgb, scales, flips)?;
    edge_nms(p.view(), 2.0, 1, 1.01)
}

/// [`predict`] followed by non-maximum suppression along the map's own normals
/// ([`edge_nms`] with sigma 2, radius 1, multiplier 1.01, as the structured-edge toolbox
/// does before its benchmark): the map the benchmark scores.
///
/// # Errors
/// As [`predict`].
pub fn edge_map(net: &mut EdgeNet, rgb: ndarray::ArrayView3<f32>) -> Result<Array2<f32>> {
    edge_map_multiscale(net, rgb, &[1.0])
}

/// [`predict_multiscale`] followed by the same non-maximum suppression as [`edge_map`].
///
/// # Errors
/// As [`predict_multiscale`].
pub fn edge_map_multiscale(
    net: &mut EdgeNet,
    rgb: ndarray::ArrayView3<f32>,
    scales: &[f32],
) -> Result<Array2<f32>> {
    edge_map_dihedral(net, rgb, scales, 1)
}

/// Settings of [`pretrain_vae`].
#[derive(Debug, Clone, PartialEq)]
pub struct VaePretrainConfig {
    /// Patches drawn from the images (each epoch sees all of them).
    pub patches: usize,
    /// Patch side (a multiple of 4).
    pub patch: usize,
    /// Epochs.
    pub epochs: usize,
    /// Channels of the conv preset's first convolution.
    pub channels: usize,
    /// Latent size.
    pub latent: usize,
    /// Seed of the patches, the weights and the batch order.
    pub seed: u64,
}

impl Default for VaePretrainConfig {
    /// 20,000 RGB patches of 32×32, 3 epochs, 32 channels, latent 32, seed 0.
    fn default() -> Self {
        VaePretrainConfig {
            patches: 20_000,
            patch: 32,
            epochs: 3,
            channels: 32,
            latent: 32,
            seed: 0,
        }
    }
}

/// Trains a VAE (conv preset, Bernoulli likelihood on grey levels) without labels on random
/// RGB patches of `images` (`[3, h, w]` each, in `[0, 1]`). Returns the model, the wall
/// seconds and the last epoch's loss (negative ELBO, nats per patch).
///
/// # Errors
/// [`VisionError::Empty`] without images; [`VisionError::InvalidParameter`] for a patch
/// larger than an image; the VAE's own errors.
pub fn pretrain_vae(
    images: &[Array3<f32>],
    cfg: &VaePretrainConfig,
    mut log: impl FnMut(&str),
) -> Result<(Vae, f64, Option<f64>)> {
    if images.is_empty() || cfg.patches == 0 {
        return Err(VisionError::Empty {
            op: "pretrain_vae",
            what: "no images or no patches".into(),
        });
    }
    let p = cfg.patch;
    if images
        .iter()
        .any(|im| im.dim().1 < p || im.dim().2 < p || im.dim().0 != 3)
    {
        return Err(VisionError::param(
            "pretrain_vae",
            "patch",
            p,
            "every image must be RGB and at least patch × patch",
        ));
    }
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0xed9e_5eed);
    let mut x = Array4::<f32>::zeros((cfg.patches, 3, p, p));
    for i in 0..cfg.patches {
        let im = &images[rng.random_range(0..images.len())];
        let (_, h, w) = im.dim();
        let (y0, x0) = (rng.random_range(0..=h - p), rng.random_range(0..=w - p));
        x.index_axis_mut(Axis(0), i)
            .assign(&window3(im.view(), y0, x0, p, p));
    }
    let vcfg = VaeConfig {
        input_shape: [3, p, p],
        latent: cfg.latent,
        preset: Preset::Conv {
            channels: cfg.channels,
            hidden: 256,
        },
        ..VaeConfig::default()
    };
    let vae = Vae::new(vcfg, &mut rng)?;
    let tcfg = TrainConfig {
        epochs: cfg.epochs,
        batch_size: 64,
        seed: cfg.seed,
        ..TrainConfig::default()
    };
    let start = Instant::now();
    let mut trainer = Trainer::new(vae, tcfg)?;
    let hist = trainer.fit(&x, None, |s| {
        log(&format!(
            "vae epoch {}: -ELBO {:.2} nats/patch ({:.0} patches/s)",
            s.epoch, s.train_loss, s.images_per_sec
        ))
    })?;
    Ok((
        trainer.into_vae(),
        start.elapsed().as_secs_f64(),
        hist.last().map(|s| s.train_loss),
    ))
}

/// A trained edge network with the VAE its encoder came from (if any).
#[derive(Debug)]
pub struct EdgeModel {
    /// The network.
    pub net: EdgeNet,
    /// The VAE pretrained on patches (`None` for the no-VAE ablation).
    pub vae: Option<Vae>,
    /// Free-form JSON saved with it (training settings, timings, scores).
    pub info: serde_json::Value,
}

fn config_json(c: &EdgeNetConfig) -> serde_json::Value {
    serde_json::json!({
        "fine": c.fine, "enc1": c.enc1, "enc2": c.enc2, "mid": c.mid, "head": c.head,
        "dilations": c.dilations, "leaky_slope": c.leaky_slope, "deep": c.deep,
    })
}

fn config_from_json(v: &serde_json::Value, path: &Path) -> Result<EdgeNetConfig> {
    let bad = || {
        VisionError::param(
            "EdgeModel::load",
            "checkpoint",
            path.display(),
            "no valid \"edge_net\" configuration in its metadata (not an edge checkpoint?)",
        )
    };
    let n = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_u64())
            .map(|x| x as usize)
            .ok_or_else(bad)
    };
    Ok(EdgeNetConfig {
        fine: n("fine")?,
        enc1: n("enc1")?,
        enc2: n("enc2")?,
        mid: n("mid")?,
        head: n("head")?,
        dilations: v
            .get("dilations")
            .and_then(|d| d.as_array())
            .ok_or_else(bad)?
            .iter()
            .map(|d| d.as_u64().map(|x| x as usize).ok_or_else(bad))
            .collect::<Result<_>>()?,
        leaky_slope: v
            .get("leaky_slope")
            .and_then(|x| x.as_f64())
            .ok_or_else(bad)? as f32,
        // Checkpoints from before the stride-8 stage have no "deep": no such stage.
        deep: match v.get("deep") {
            None => 0,
            Some(d) => d.as_u64().ok_or_else(bad)? as usize,
        },
    })
}

impl EdgeModel {
    /// Writes network and VAE weights (`net.*`, `vae.*`) to one safetensors file
    /// atomically, with the network's configuration and `info` in the metadata.
    ///
    /// # Errors
    /// [`VisionError::Core`] when the file cannot be written.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        let mut weights: Vec<(String, ArrayD<f32>)> = collect_weights(&mut self.net)
            .into_iter()
            .map(|(n, a)| (format!("net.{n}"), a))
            .collect();
        let config = match &mut self.vae {
            Some(v) => {
                weights.extend(
                    collect_weights(v)
                        .into_iter()
                        .map(|(n, a)| (format!("vae.{n}"), a)),
                );
                v.config().clone()
            }
            None => VaeConfig::default(),
        };
        let ck = Checkpoint {
            config,
            step: 0,
            epoch: 0,
            weights,
            optim_step: 0,
            optim_tensors: Vec::new(),
            extra: serde_json::json!({
                "edge_net": config_json(self.net.config()),
                "has_vae": self.vae.is_some(),
                "info": self.info,
            }),
        };
        ck.save(path)?;
        Ok(())
    }

    /// Reads a file written by [`EdgeModel::save`].
    ///
    /// # Errors
    /// [`VisionError::Core`] for a missing, truncated or mismatched file;
    /// [`VisionError::InvalidParameter`] when it is not an edge checkpoint.
    pub fn load(path: &Path) -> Result<Self> {
        let ck = Checkpoint::load(path)?;
        let cfg = config_from_json(
            ck.extra.get("edge_net").unwrap_or(&serde_json::Value::Null),
            path,
        )?;
        let mut rng = StdRng::seed_from_u64(0);
        let mut net = EdgeNet::new(cfg, &mut rng)?;
        let part = |prefix: &str| -> Vec<(String, ArrayD<f32>)> {
            ck.weights
                .iter()
                .filter_map(|(n, a)| n.strip_prefix(prefix).map(|n| (n.to_string(), a.clone())))
                .collect()
        };
        load_weights(&mut net, &part("net."), path)?;
        let has_vae = ck
            .extra
            .get("has_vae")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let vae = if has_vae {
            let mut vae = Vae::new(ck.config.clone(), &mut rng)?;
            load_weights(&mut vae, &part("vae."), path)?;
            Some(vae)
        } else {
            None
        };
        Ok(EdgeModel {
            net,
            vae,
            info: ck.extra.get("info").cloned().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampled_crops_keep_edges_and_ignored_pixels() {
        let input = Array3::from_shape_fn((INPUT_CHANNELS, 8, 8), |(k, y, x)| {
            (k * 64 + y * 8 + x) as f32
        });
        let mut target = Array2::<i8>::zeros((8, 8));
        target[[5, 2]] = 1;
        target[[1, 6]] = IGNORE;
        let smp = EdgeSample { input, target };
        // The same size: exactly the window.
        let (x, t) = resampled_crop(&smp, 2, 1, 4, 4);
        assert_eq!(x, window3(smp.input.view(), 2, 1, 4, 4));
        assert_eq!(t, window2(smp.target.view(), 2, 1, 4, 4));
        // Halved: every output pixel covers 2×2 source pixels; bilinear at half-pixel
        // centres is their mean.
        let (x, t) = resampled_crop(&smp, 0, 0, 8, 4);
        assert_eq!(x[[0, 0, 0]], (0.0 + 1.0 + 8.0 + 9.0) / 4.0);
        let mut expect = Array2::<i8>::zeros((4, 4));
        expect[[2, 1]] = 1;
        expect[[0, 3]] = IGNORE;
        assert_eq!(t, expect);
        // Doubled: the edge pixel becomes a 2×2 block.
        let (_, t) = resampled_crop(&smp, 4, 0, 4, 8);
        let edges: Vec<_> = t
            .indexed_iter()
            .filter(|(_, &v)| v == 1)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(edges, vec![(2, 4), (2, 5), (3, 4), (3, 5)]);
    }

    #[test]
    fn resize_keeps_constants_and_sizes() {
        let a = Array3::from_elem((2, 5, 7), 0.25f32);
        let r = resize3(a.view(), 8, 3);
        assert_eq!(r.dim(), (2, 8, 3));
        assert!(r.iter().all(|&v| (v - 0.25).abs() < 1e-6));
    }
}
