//! Edge detection on BSDS500: classical detectors and the learned VAE edge head, scored
//! with the standard boundary benchmark (ODS, OIS, AP).
//!
//! ```text
//! cargo run --release --example edges -- --data ../shared/data --split val --method all \
//!     --out out/edges --json out/edges/val.json
//! ```
//!
//! `--data DIR --split S` reads the split folder `DIR/S` or, if that does not exist,
//! `DIR/bsds500/S`; any folder laid out like BSDS500's `train` and `val` works (`<id>.jpg`
//! with `<id>_bnd<k>.png` for every annotator k = 1, 2, ...; see `vae_data::bsds`).
//!
//! Writes into `--out`: `<method>/<id>.png` (the soft edge map that was scored, 8-bit
//! grey, white = edge) and `pr_curve.png` (recall on x, precision on y, iso-F contours in
//! light grey, one colour per method as printed, filled squares at the ODS points). Prints
//! the ODS/OIS/AP table and, with `--json PATH`, writes it with the full curves.
//!
//! Methods: `sobel`, `prewitt`, `roberts` (gradient magnitude of the grey image over its
//! maximum), `canny` (sigma 2, soft over the high threshold), `vae` (the learned head,
//! after non-maximum suppression; needs `--checkpoint`), `all` (the classical four, plus
//! `vae` when `--checkpoint` is given). Each map goes through the standard protocol: 99
//! thresholds, thinning, one-to-one matching at 0.0075 of the image diagonal.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;
use rand::SeedableRng;
use rayon::prelude::*;
use serde_json::json;
use vae_core::checkpoint::collect_weights;
use vae_core::{Checkpoint, Vae};
use vae_data::bsds::{bsds_ids, load_bsds_image, BsdsImage};
use vae_tensor::layer::{Layer, Parameterized};
use vae_vision::classical::suppress_border;
use vae_vision::edges::{
    classical_map, edge_map_dihedral, pr_plot, prepare_samples, pretrain_vae, train_edge_net,
    EdgeModel, EdgeNet, EdgeNetConfig, EdgeTrainConfig, Method, VaePretrainConfig, DIHEDRAL,
};
use vae_vision::metrics::{evaluate_image, summarize, BsdsConfig, BsdsReport};

/// Edge detectors on a BSDS500 split, scored by ODS / OIS / AP.
#[derive(Parser, Debug)]
struct Args {
    /// Data root: the split is `DIR/SPLIT` or `DIR/bsds500/SPLIT` (default: $VAE_DATA_DIR,
    /// else `data`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Split folder name (`val`, `test`, `train`, or any folder laid out like them).
    #[arg(long, default_value = "val")]
    split: String,
    /// `sobel`, `prewitt`, `roberts`, `canny`, `vae`, `all`, or a comma-separated list.
    #[arg(long, default_value = "all")]
    method: String,
    /// Where edge maps and the precision-recall picture go.
    #[arg(long, default_value = "out/edges")]
    out: PathBuf,
    /// Write the table and curves as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Use only the first N images of the split (0 = all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// The learned head (`edges.safetensors` written by the edge head's training).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Do not write per-image edge maps (the curve picture and JSON are still written).
    #[arg(long)]
    no_maps: bool,
    /// Train the learned head (and its VAE) even if `--checkpoint` exists, then save it
    /// there. Without `--train`, an existing checkpoint is only evaluated.
    #[arg(long)]
    train: bool,
    /// Split folder the head and the VAE are trained on.
    #[arg(long, default_value = "train")]
    train_split: String,
    /// Optimizer steps of the head.
    #[arg(long, default_value_t = 1500)]
    steps: usize,
    /// Crops per step.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Crop side (multiple of 4).
    #[arg(long, default_value_t = 96)]
    crop: usize,
    /// Peak learning rate (Adam, cosine decay).
    #[arg(long, default_value_t = 2e-3)]
    lr: f32,
    /// A pixel is an edge when at least this fraction of annotators marked it; pixels some
    /// but fewer marked are ignored.
    #[arg(long, default_value_t = 0.3)]
    eta: f32,
    /// Dilations of the head's convolutions (one convolution each).
    #[arg(long, default_value = "2,4")]
    dilations: String,
    /// VAE pretraining epochs on image patches (0: no VAE, the encoder starts at random).
    #[arg(long, default_value_t = 3)]
    vae_epochs: usize,
    /// Reuse the VAE saved at this path (vae-core checkpoint), or save the one trained
    /// here to it, so several heads (e.g. ablations) share one pretrained VAE.
    #[arg(long)]
    vae: Option<PathBuf>,
    /// Patches (32x32 RGB) the VAE is trained on.
    #[arg(long, default_value_t = 20000)]
    vae_patches: usize,
    /// Supervise only the fused output (ablation of HED's deep supervision).
    #[arg(long)]
    no_deep_supervision: bool,
    /// Plain cross-entropy instead of HED's class-balanced one (ablation).
    #[arg(long)]
    no_balance: bool,
    /// Seed of the VAE, the network's weights, crops and flips.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Channels of the optional stride-8 stage with its own side output (0 = none).
    #[arg(long, default_value_t = 0)]
    deep: usize,
    /// Scale augmentation `MIN,MAX`: each training crop is rescaled by a random factor in
    /// that range (`1,1` = none).
    #[arg(long, default_value = "1,1")]
    scale_aug: String,
    /// Also transpose crops at random (with the flips: all 90° rotations).
    #[arg(long)]
    rotate: bool,
    /// Test scales of the learned head, comma-separated: the probability maps at these
    /// image scales are averaged before non-maximum suppression (e.g. `0.5,1,1.5`).
    #[arg(long, default_value = "1")]
    test_scales: String,
    /// Test-time symmetries of the learned head: the maps of the first N of the eight
    /// flips/turns of the image (identity, left-right, up-down, both, then transposed) are
    /// averaged, each at every test scale (1 = none, 2 = with the mirror image, 8 = all).
    #[arg(long, default_value_t = 1)]
    test_flips: usize,
    /// After the learned head's non-maximum suppression, fade its map linearly to 0 over
    /// this many pixels at the image border (`edgesNms`'s `s`: 5 in the structured-edge
    /// toolbox and the HED/RCF evaluation scripts; 0 = off, the earlier runs' setting).
    #[arg(long, default_value_t = 0)]
    nms_border: usize,
    /// Stop training after this many wall-clock minutes even before `--steps` (a safety
    /// net on a shared machine; a run cut short is not reproducible and says so in its
    /// checkpoint's info).
    #[arg(long)]
    time_limit_min: Option<f64>,
    /// Take only the first N steps of the `--steps` schedule (replays exactly a run that
    /// `--time-limit-min` stopped after N steps: its checkpoint's `steps_done`).
    #[arg(long)]
    stop_after: Option<usize>,
    /// Start training from this saved head (network and VAE, its own configuration;
    /// `--deep`, `--dilations` and the VAE options are then ignored) instead of a new one:
    /// a second training run with a fresh learning-rate schedule.
    #[arg(long)]
    init: Option<PathBuf>,
}

fn floats(arg: &str, what: &str) -> Result<Vec<f32>> {
    arg.split(',')
        .map(|v| v.trim().parse::<f32>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{what}: comma-separated numbers"))
}

/// Process CPU time (user + system) in seconds from /proc/self/stat (Linux, 100 ticks per
/// second), NaN elsewhere: on a shared machine wall time alone says little.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (tick(11) + tick(12)) / 100.0
}

fn split_dir(data: &Path, split: &str) -> Result<PathBuf> {
    if !data.is_dir() {
        bail!(
            "data directory {} does not exist (pass --data DIR, the folder holding bsds500/ \
             or the split folders)",
            data.display()
        );
    }
    for cand in [data.join(split), data.join("bsds500").join(split)] {
        if cand.is_dir() {
            return Ok(cand);
        }
    }
    bail!(
        "no split folder {split:?} in {} (looked for {0}/{split} and {0}/bsds500/{split}; \
         a split folder holds <id>.jpg and <id>_bnd<k>.png files)",
        data.display()
    )
}

fn methods(arg: &str, have_checkpoint: bool) -> Result<Vec<Method>> {
    let mut out = Vec::new();
    for name in arg.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name == "all" {
            out.extend(Method::CLASSICAL);
            if have_checkpoint {
                out.push(Method::Vae);
            }
        } else {
            out.push(Method::from_name(name)?);
        }
    }
    out.dedup();
    if out.is_empty() {
        bail!("no method given");
    }
    if out.contains(&Method::Vae) && !have_checkpoint {
        bail!("--method vae needs --checkpoint PATH (the trained edge head)");
    }
    Ok(out)
}

fn save_map(map: &Array2<f32>, path: &Path) -> Result<()> {
    let (h, w) = map.dim();
    let buf: Vec<u8> = map
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    let img = image::GrayImage::from_raw(w as u32, h as u32, buf).context("edge map buffer")?;
    img.save(path)
        .with_context(|| format!("writing {}", path.display()))
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {elapsed} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}

fn load_split(dir: &Path, limit: usize, what: &str) -> Result<Vec<BsdsImage>> {
    let mut ids = bsds_ids(dir).with_context(|| format!("listing {}", dir.display()))?;
    if limit > 0 {
        ids.truncate(limit);
    }
    let pb = bar(ids.len(), what);
    let images: Vec<BsdsImage> = ids
        .par_iter()
        .map(|id| {
            let im = load_bsds_image(dir, id);
            pb.inc(1);
            im
        })
        .collect::<Result<_, _>>()
        .with_context(|| format!("loading {}", dir.display()))?;
    pb.finish_and_clear();
    Ok(images)
}

/// Pretrains the VAE, trains the head, saves both to `path`.
fn train_head(a: &Args, data: &Path, path: &Path) -> Result<EdgeModel> {
    let dir = split_dir(data, &a.train_split)?;
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let images = load_split(&dir, 0, "load train")?;
    let samples = prepare_samples(&images, a.eta)?;
    println!(
        "training on {} images of {} (edge when >= {} of annotators agree)",
        images.len(),
        dir.display(),
        a.eta
    );
    let dilations = a
        .dilations
        .split(',')
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .context("--dilations: comma-separated integers")?;
    let vcfg = VaePretrainConfig {
        patches: a.vae_patches,
        epochs: a.vae_epochs,
        seed: a.seed,
        ..VaePretrainConfig::default()
    };
    let net_cfg = EdgeNetConfig {
        dilations,
        deep: a.deep,
        ..EdgeNetConfig::for_conv_preset(vcfg.channels)
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed.wrapping_add(11));
    let (mut vae, mut vae_s, mut vae_cpu, mut vae_loss) = (None, 0.0, 0.0, None);
    if a.vae_epochs > 0 {
        match a.vae.as_ref().filter(|p| p.exists()) {
            Some(p) => {
                let ck = Checkpoint::load(p)
                    .with_context(|| format!("loading the VAE from {}", p.display()))?;
                let mut v = Vae::new(ck.config.clone(), &mut rng)?;
                ck.apply_weights(&mut v, p)?;
                vae_loss = ck.extra.get("loss").and_then(|l| l.as_f64());
                println!(
                    "loaded the pretrained VAE from {} ({})",
                    p.display(),
                    ck.extra
                );
                vae = Some(v);
            }
            None => {
                let rgb: Vec<_> = images.iter().map(|im| im.image.clone()).collect();
                let c = cpu_seconds();
                let (mut v, s, l) = pretrain_vae(&rgb, &vcfg, |m| println!("{m}"))?;
                (vae_s, vae_cpu, vae_loss) = (s, cpu_seconds() - c, l);
                println!("VAE pretraining: {vae_s:.0} s wall, {vae_cpu:.0} s CPU");
                if let Some(p) = &a.vae {
                    let ck = Checkpoint {
                        config: v.config().clone(),
                        step: 0,
                        epoch: a.vae_epochs,
                        weights: collect_weights(&mut v),
                        optim_step: 0,
                        optim_tensors: Vec::new(),
                        extra: json!({"loss": l, "wall_s": s, "cpu_s": vae_cpu,
                                      "patches": a.vae_patches, "epochs": a.vae_epochs,
                                      "seed": a.seed, "train_dir": dir.display().to_string()}),
                    };
                    ck.save(p)?;
                    println!("saved the VAE to {}", p.display());
                }
                vae = Some(v);
            }
        }
    }
    let mut net = match (&a.init, vae.as_mut()) {
        (Some(p), _) => {
            let m = EdgeModel::load(p)
                .with_context(|| format!("loading the head to start from, {}", p.display()))?;
            println!("starting from the head in {} ({})", p.display(), m.info);
            vae = m.vae;
            m.net
        }
        (None, Some(v)) => EdgeNet::with_vae_encoder(net_cfg, v, &mut rng)?,
        (None, None) => EdgeNet::new(net_cfg, &mut rng)?,
    };
    let tcfg = EdgeTrainConfig {
        steps: a.steps,
        batch: a.batch,
        crop: a.crop,
        lr: a.lr,
        seed: a.seed,
        deep_supervision: !a.no_deep_supervision,
        balanced: !a.no_balance,
        scale_range: match floats(&a.scale_aug, "--scale-aug")?[..] {
            [lo, hi] => (lo, hi),
            _ => bail!("--scale-aug takes MIN,MAX"),
        },
        transpose: a.rotate,
        time_limit_s: a.time_limit_min.map(|m| m * 60.0),
        stop_after: a.stop_after,
    };
    println!("{} on {:?}", net.describe(), tcfg);
    let pb = bar(a.steps, "train");
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {pos}/{len} {elapsed} eta {eta} {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let (t, c) = (Instant::now(), cpu_seconds());
    let mut avg = f64::NAN;
    let history = train_edge_net(&mut net, &samples, &tcfg, |s| {
        avg = if avg.is_nan() {
            s.loss
        } else {
            0.98 * avg + 0.02 * s.loss
        };
        pb.set_message(format!("loss {avg:.4}"));
        pb.inc(1);
        if (s.step + 1) % 100 == 0 {
            pb.println(format!("step {}: loss (running mean) {avg:.4}", s.step + 1));
        }
    })?;
    pb.finish_and_clear();
    let stopped_by_time_limit = history.len() < a.steps.min(a.stop_after.unwrap_or(usize::MAX));
    if stopped_by_time_limit {
        println!(
            "time limit reached: stopped after {} of {} steps",
            history.len(),
            a.steps
        );
    }
    let (head_s, head_cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
    println!(
        "head training: {head_s:.0} s wall, {head_cpu:.0} s CPU; total with loading {:.0} s wall, {:.0} s CPU",
        t0.elapsed().as_secs_f64(),
        cpu_seconds() - c0
    );
    let fingerprint = weights_fingerprint(&mut net);
    println!(
        "weights fingerprint {fingerprint:016x} after {} steps",
        history.len()
    );
    let losses: Vec<f64> = history.iter().map(|h| h.loss).collect();
    let info = json!({
        "weights_fingerprint": format!("{fingerprint:016x}"),
        "train_dir": dir.display().to_string(),
        "train_images": images.len(),
        "eta": a.eta,
        "steps": a.steps, "batch": a.batch, "crop": a.crop, "lr": a.lr, "seed": a.seed,
        "deep_supervision": tcfg.deep_supervision, "balanced": tcfg.balanced,
        "deep": net.config().deep, "scale_aug": tcfg.scale_range, "rotate": a.rotate,
        "init": a.init.as_ref().map(|p| p.display().to_string()),
        "steps_done": history.len(), "stop_after": a.stop_after,
        "stopped_by_time_limit": stopped_by_time_limit,
        "vae_epochs": a.vae_epochs, "vae_patches": a.vae_patches, "vae_loss": vae_loss,
        "vae_wall_s": vae_s, "vae_cpu_s": vae_cpu,
        "head_wall_s": head_s, "head_cpu_s": head_cpu,
        "threads": rayon::current_num_threads(),
        "loss_first_100": losses.iter().take(100).sum::<f64>() / losses.len().clamp(1, 100) as f64,
        "loss_last_100": losses.iter().rev().take(100).sum::<f64>() / losses.len().clamp(1, 100) as f64,
    });
    let mut model = EdgeModel { net, vae, info };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    model.save(path)?;
    println!("saved the head and the VAE to {}", path.display());
    Ok(model)
}

/// FNV-1a over the bits of every weight of the head, in parameter order: two runs that
/// trained identically print the same value (the replay check for `--stop-after`).
fn weights_fingerprint(net: &mut EdgeNet) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    net.visit_params("", &mut |_, p| {
        for v in p.value.iter() {
            h = (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3);
        }
    });
    h
}

struct Outcome {
    method: Method,
    report: BsdsReport,
    wall_s: f64,
    cpu_s: f64,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let data = a
        .data
        .clone()
        .or_else(|| std::env::var_os("VAE_DATA_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data"));
    let dir = split_dir(&data, &a.split)?;
    let methods = methods(&a.method, a.checkpoint.is_some())?;
    let mut model = None;
    if methods.contains(&Method::Vae) {
        let path = a.checkpoint.as_ref().expect("checked by methods()");
        model = Some(if a.train || !path.exists() {
            train_head(&a, &data, path)?
        } else {
            let mut m = EdgeModel::load(path)
                .with_context(|| format!("loading the edge head from {}", path.display()))?;
            println!(
                "loaded the edge head from {} (weights fingerprint {:016x}; trained with {})",
                path.display(),
                weights_fingerprint(&mut m.net),
                m.info
            );
            m
        });
    }
    let t0 = Instant::now();
    let images = load_split(&dir, a.limit, "load")?;
    println!(
        "loaded {} images from {} in {:.1} s ({} threads)",
        images.len(),
        dir.display(),
        t0.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;

    let cfg = BsdsConfig::default();
    let test_scales = floats(&a.test_scales, "--test-scales")?;
    if !(1..=DIHEDRAL).contains(&a.test_flips) {
        bail!(
            "--test-flips {} must be between 1 and {DIHEDRAL}",
            a.test_flips
        );
    }
    let mut outcomes = Vec::new();
    for &method in &methods {
        let map_dir = a.out.join(method.name());
        if !a.no_maps {
            std::fs::create_dir_all(&map_dir)?;
        }
        let (t, c) = (Instant::now(), cpu_seconds());
        let pb = bar(images.len(), method.name());
        // The network is evaluated image by image (it keeps its activations for backward);
        // its maps then join the parallel benchmark like the classical ones.
        let mut net_maps: Vec<Option<Array2<f32>>> = vec![None; images.len()];
        if let (Method::Vae, Some(m)) = (method, model.as_mut()) {
            let pbn = bar(images.len(), "network");
            for (slot, im) in net_maps.iter_mut().zip(&images) {
                let mut map =
                    edge_map_dihedral(&mut m.net, im.image.view(), &test_scales, a.test_flips)?;
                suppress_border(&mut map, a.nms_border);
                *slot = Some(map);
                pbn.inc(1);
            }
            pbn.finish_and_clear();
        }
        let results = images
            .par_iter()
            .zip(net_maps.into_par_iter())
            .map(|(im, net_map)| -> Result<_> {
                let map = match net_map {
                    Some(m) => m,
                    None => classical_map(method, im.image.view())?,
                };
                if !a.no_maps {
                    save_map(&map, &map_dir.join(format!("{}.png", im.id)))?;
                }
                let r = evaluate_image(map.view(), &im.boundaries, &cfg)?;
                pb.inc(1);
                Ok(r)
            })
            .collect::<Result<Vec<_>>>()?;
        pb.finish_and_clear();
        let report = summarize(results, &cfg)?;
        outcomes.push(Outcome {
            method,
            report,
            wall_s: t.elapsed().as_secs_f64(),
            cpu_s: cpu_seconds() - c,
        });
    }

    println!(
        "\n{} images of {}, tolerance {} of the diagonal, {} thresholds\n",
        images.len(),
        dir.display(),
        cfg.max_dist,
        cfg.thresholds
    );
    println!(
        "| method | ODS | OIS | AP | ODS threshold | wall s | CPU s | colour in pr_curve.png |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    const COLOURS: [&str; 10] = [
        "blue", "orange", "green", "red", "purple", "brown", "pink", "grey", "olive", "cyan",
    ];
    for (k, o) in outcomes.iter().enumerate() {
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} | {} |",
            o.method.name(),
            o.report.ods.f,
            o.report.ois.f,
            o.report.ap,
            o.report.ods.threshold,
            o.wall_s,
            o.cpu_s,
            COLOURS[k % 10]
        );
    }
    let curves: Vec<_> = outcomes
        .iter()
        .map(|o| (o.report.curve.clone(), o.report.ods))
        .collect();
    let plot = a.out.join("pr_curve.png");
    pr_plot(&curves, 480)?
        .save(&plot)
        .with_context(|| format!("writing {}", plot.display()))?;
    println!("\nprecision-recall curves: {}", plot.display());
    if !a.no_maps {
        println!("edge maps: {}/<method>/<id>.png", a.out.display());
    }
    if let Some(path) = &a.json {
        let point = |p: &vae_vision::metrics::PrPoint| json!({"threshold": p.threshold, "recall": p.recall, "precision": p.precision, "f": p.f});
        let methods: Vec<_> = outcomes
            .iter()
            .enumerate()
            .map(|(k, o)| {
                json!({
                    "method": o.method.name(),
                    "ods": point(&o.report.ods),
                    "ois": point(&o.report.ois),
                    "ap": o.report.ap,
                    "wall_s": o.wall_s,
                    "cpu_s": o.cpu_s,
                    "colour": COLOURS[k % 10],
                    "curve": o.report.curve.iter().map(point).collect::<Vec<_>>(),
                })
            })
            .collect();
        let doc = json!({
            "split_dir": dir.display().to_string(),
            "images": images.len(),
            "max_dist": cfg.max_dist,
            "thresholds": cfg.thresholds,
            "checkpoint": a.checkpoint.as_ref().map(|p| p.display().to_string()),
            "test_scales": test_scales,
            "test_flips": a.test_flips,
            "nms_border": a.nms_border,
            "methods": methods,
        });
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("table and curves as JSON: {}", path.display());
    }
    Ok(())
}
