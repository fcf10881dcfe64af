//! Semantic segmentation with a head on a VAE encoder, and the same head from scratch.
//!
//! ```text
//! cargo run --release --example segment -- --task digits --data ../shared/data --out out/seg
//! cargo run --release --example segment -- --task mosaic --data ../shared/data --out out/seg
//! cargo run --release --example segment -- --task mosaic --method textons \
//!     --data ../shared/data --out out/seg --mirror-refs --refs 400 --neighbours 5
//! cargo run --release --example segment -- --task mosaic --method textons-regions \
//!     --data ../shared/data --out out/seg --mirror-refs --refs 400 --neighbours 5
//! ```
//!
//! `digits`: 64×64 scenes of 1–4 MNIST digits (train scenes from MNIST train, test scenes
//! from MNIST test), 11 classes. `mosaic`: 256×256 KTH-TIPS grey mosaics of five textures
//! (quadrants + disc, and Voronoi), test mosaics from source images never seen in training.
//! `--method textons` (mosaics only) replaces the heads by the texton segmenter
//! (`vae_vision::segmentation::textons`); `--method textons-regions` groups each mosaic's
//! points into `--regions` segments without labels and classifies each segment as a whole
//! (`vae_vision::segmentation::textons::regions`); `--holdout N` tunes either on mosaics cut
//! from N held-out training images per class instead of the test images, and `--sweep`
//! scores further region settings on the same fit. By default the region method fuses
//! multi-scale LBP histograms with the VAE textons (`--lbp true`, `--lbp-weight`,
//! `--lbp-refine`); `--lbp false --posterior 0 --lbp-weight 0 --lbp-refine 0` is the
//! VAE-texton-only setting.
//! Writes `<task>_<head>.png` panels (input | truth | prediction), prints the metrics and
//! writes them as JSON.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::json;
use vae_vision::classical::LbpConfig;
use vae_vision::classify::SvmConfig;
use vae_vision::segmentation::overlay::save_overlay_panel;
use vae_vision::segmentation::{
    run_digits, run_mosaic, run_mosaic_textons_sweep, ClassWeighting, LbpKind, RegionConfig,
    SegmentScoring, SegmentSvmConfig, TaskConfig, TextonSegConfig,
};
use vae_vision::texton::EncoderKind;

/// Segmentation on digit scenes or texture mosaics.
#[derive(Parser, Debug)]
struct Args {
    /// `digits` or `mosaic`.
    #[arg(long, default_value = "digits")]
    task: String,
    /// Data root (holds `mnist/` and `textures/kth-tips-grey/`); else `VAE_DATA_DIR` or `data/`.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where the PNG panels go.
    #[arg(long, default_value = "out/segment")]
    out: PathBuf,
    /// Where to write the metrics as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seed of everything random.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Training scenes/mosaics drawn afresh per epoch (default: 2000 digits, 400 mosaic).
    #[arg(long)]
    train: Option<usize>,
    /// Test scenes/mosaics.
    #[arg(long, default_value_t = 200)]
    test: usize,
    /// Head epochs (default: 4 digits, 6 mosaic).
    #[arg(long)]
    epochs: Option<usize>,
    /// Head batch size.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Head learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f32,
    /// VAE pretraining epochs (0: skip the VAE head).
    #[arg(long, default_value_t = 2)]
    vae_epochs: usize,
    /// Images (digits or 32×32 patches) for VAE pretraining.
    #[arg(long, default_value_t = 10000)]
    vae_images: usize,
    /// Channels of the VAE conv preset.
    #[arg(long, default_value_t = 32)]
    channels: usize,
    /// Scene / mosaic side in pixels (default: 64 digits, 256 mosaic).
    #[arg(long)]
    size: Option<usize>,
    /// Training source images per texture class (the rest are test-only).
    #[arg(long, default_value_t = 40)]
    train_per_class: usize,
    /// Class weights: `sqrt` (1/√frequency) or `none`.
    #[arg(long, default_value = "sqrt")]
    weights: String,
    /// Skip the from-scratch ablation.
    #[arg(long)]
    no_ablation: bool,
    /// Mosaic method: `head` (the trained heads), `textons` (windowed VAE-texton
    /// histograms, chi-square nearest neighbour; no head training) or `textons-regions`
    /// (k-means grouping of each mosaic's window histograms, each group classified whole).
    #[arg(long, default_value = "head")]
    method: String,
    /// Textons: window side in pixels.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Textons: step of the classified point grid in pixels.
    #[arg(long, default_value_t = 8)]
    step: usize,
    /// Textons: reference windows per class.
    #[arg(long, default_value_t = 150)]
    refs: usize,
    /// Textons: box-smoothing radius of the score maps in grid points.
    #[arg(long, default_value_t = 2)]
    smooth: usize,
    /// Textons: keep only the N classes that win most points (5 = the mosaics' known five
    /// textures); 0 keeps all.
    #[arg(long, default_value_t = 0)]
    keep_classes: usize,
    /// Textons: also cut references from mirrored training images.
    #[arg(long)]
    mirror_refs: bool,
    /// Textons: a class scores minus the mean distance of its this many nearest references.
    #[arg(long, default_value_t = 1)]
    neighbours: usize,
    /// Textons: patch-VAE epochs.
    #[arg(long, default_value_t = 10)]
    texton_epochs: usize,
    /// Textons: codebook size (textons).
    #[arg(long, default_value_t = 64)]
    textons: usize,
    /// Textons: pyramid levels.
    #[arg(long, default_value_t = 3)]
    levels: usize,
    /// Textons: tune instead of test — hold out this many training images per class and
    /// score on mosaics cut from them (the test images are not used).
    #[arg(long)]
    holdout: Option<usize>,
    /// Regions: k-means segments per mosaic (the benchmark's mosaics have five regions).
    #[arg(long, default_value_t = 5)]
    regions: usize,
    /// Regions: k-means restarts.
    #[arg(long, default_value_t = 8)]
    restarts: usize,
    /// Regions: weight of the point position in the clustering.
    #[arg(long, default_value_t = 1.0)]
    spatial: f32,
    /// Regions: passes of the 3x3 majority filter over the segment labels.
    #[arg(long, default_value_t = 2)]
    majority: usize,
    /// Regions: pool over points whose neighbours within this radius share the segment.
    #[arg(long, default_value_t = 1)]
    interior: usize,
    /// Regions: segment scoring, `images`, `references`, `points`, `learned` or `svm`.
    #[arg(long, default_value = "svm")]
    scoring: String,
    /// Regions: fit the RBF-kernel SVM on the fused texton + LBP features (`true` or
    /// `false`; needs `--lbp true`); the `svm` scoring uses it.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    svm: bool,
    /// Textons: what describes a patch before k-means, `vae` (the patch VAE's posterior
    /// mean) or `pixels` (the normalised pixels: the ablation without a VAE).
    #[arg(long, default_value = "vae")]
    encoder: String,
    /// Regions: the SVM's box constraint C.
    #[arg(long, default_value_t = 3.0)]
    svm_c: f32,
    /// Regions: the SVM's kernel width, relative (gamma = this / (features x variance)).
    #[arg(long, default_value_t = 1.0)]
    svm_gamma: f32,
    /// Regions: weight of the standardised LBP bins against the texton bins in the SVM.
    #[arg(long, default_value_t = 4.0)]
    svm_lbp_weight: f32,
    /// Regions: nearest models per class for `images` / `references` scoring.
    #[arg(long, default_value_t = 1)]
    region_neighbours: usize,
    /// Regions: give the segments pairwise different classes (`true` or `false`).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    distinct: bool,
    /// Regions: pyramid-level shifts tolerated when matching a segment to a model.
    #[arg(long, default_value_t = 0)]
    scale_shifts: usize,
    /// Regions: boundary refinement window in pixels (0: off).
    #[arg(long, default_value_t = 16)]
    refine_window: usize,
    /// Regions: radius in grid points of the refined boundary band.
    #[arg(long, default_value_t = 1)]
    refine_radius: usize,
    /// Regions: cell side in pixels of the boundary refinement below the grid (0: off).
    #[arg(long, default_value_t = 2)]
    fine_step: usize,
    /// Regions: whitening of the refinement's distance (0: plain; e > 0: per-feature
    /// within-segment variance plus e times their mean).
    #[arg(long, default_value_t = 0.1)]
    refine_whiten: f32,
    /// Regions: passes of the 3x3 majority filter over the cells below the grid.
    #[arg(long, default_value_t = 3)]
    fine_majority: usize,
    /// Regions: shift border windows inside the mosaic (`true` or `false`).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    inside_windows: bool,
    /// Regions: weight of the learned classifier's window probabilities in the clustering
    /// (the fused texton + LBP classifier's with `--lbp true`).
    #[arg(long, default_value_t = 0.5)]
    posterior: f32,
    /// Regions: hidden units of the learned segment classifier (0: softmax regression).
    #[arg(long, default_value_t = 0)]
    classifier_hidden: usize,
    /// Regions: random crops of twice the window side per training image (and mirror
    /// image) added to the learned classifier's training set.
    #[arg(long, default_value_t = 0)]
    classifier_crops: usize,
    /// Regions: learned scoring on VAE-texton histograms fused with multi-scale riu2 LBP
    /// histograms (`true` or `false`); fits the fused classifier beside the texton one
    /// (also when only a `--sweep` entry sets `lbp=true`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    lbp: bool,
    /// Regions: the LBP scales, `;`-separated `P,R` pairs.
    #[arg(long, default_value = "8,1;16,2;24,3")]
    lbp_scales: String,
    /// Regions: which LBP codes are counted: `sign` (riu2 LBP), `sign-magnitude` (completed
    /// LBP, sign and magnitude histograms) or `joint` (joint sign/magnitude codes).
    #[arg(long, default_value = "sign")]
    lbp_kind: String,
    /// Regions: weight of the windows' multi-scale LBP histograms in the clustering.
    #[arg(long, default_value_t = 4.0)]
    lbp_weight: f32,
    /// Regions: weight of the LBP histograms in the boundary refinement.
    #[arg(long, default_value_t = 2.0)]
    lbp_refine: f32,
    /// Regions: also classify the true regions (the segment classifier alone).
    #[arg(long)]
    oracle: bool,
    /// Regions: further settings scored on the same fit, `;`-separated, each a
    /// `,`-separated list of `key=value` overriding the flags above (keys: regions,
    /// restarts, spatial, majority, interior, scoring, neighbours, distinct, shifts, refine, refine_radius, fine, whiten, fine_majority, inside, posterior, lbp,
    /// lbp_weight, lbp_refine).
    #[arg(long)]
    sweep: Option<String>,
}

/// The settings of one region configuration, for the JSON report.
fn region_json(rc: &RegionConfig) -> serde_json::Value {
    json!({
        "regions": rc.regions, "restarts": rc.restarts, "iters": rc.iters,
        "spatial_weight": rc.spatial_weight, "majority_passes": rc.smooth_iters,
        "interior": rc.interior, "scoring": rc.scoring.name(),
        "neighbours": rc.neighbours, "distinct": rc.distinct,
        "scale_shifts": rc.scale_shifts, "refine_window": rc.refine_window,
        "refine_radius": rc.refine_radius, "fine_step": rc.fine_step, "inside_windows": rc.inside_windows,
        "refine_whiten": rc.refine_whiten, "fine_majority": rc.fine_majority,
        "posterior_weight": rc.posterior_weight, "lbp": rc.lbp, "lbp_weight": rc.lbp_weight,
        "lbp_refine": rc.lbp_refine, "seed": rc.seed,
    })
}

/// `base` with the `key=value` overrides of one `--sweep` entry.
fn region_variant(base: &RegionConfig, spec: &str) -> Result<RegionConfig> {
    let mut rc = base.clone();
    for kv in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("sweep entry {kv:?} is not key=value"))?;
        match k {
            "regions" => rc.regions = v.parse()?,
            "restarts" => rc.restarts = v.parse()?,
            "spatial" => rc.spatial_weight = v.parse()?,
            "majority" => rc.smooth_iters = v.parse()?,
            "interior" => rc.interior = v.parse()?,
            "scoring" => rc.scoring = SegmentScoring::parse(v)?,
            "neighbours" => rc.neighbours = v.parse()?,
            "distinct" => rc.distinct = v.parse()?,
            "shifts" => rc.scale_shifts = v.parse()?,
            "refine" => rc.refine_window = v.parse()?,
            "refine_radius" => rc.refine_radius = v.parse()?,
            "fine" => rc.fine_step = v.parse()?,
            "whiten" => rc.refine_whiten = v.parse()?,
            "fine_majority" => rc.fine_majority = v.parse()?,
            "inside" => rc.inside_windows = v.parse()?,
            "posterior" => rc.posterior_weight = v.parse()?,
            "lbp" => rc.lbp = v.parse()?,
            "lbp_weight" => rc.lbp_weight = v.parse()?,
            "lbp_refine" => rc.lbp_refine = v.parse()?,
            _ => bail!("unknown sweep key {k:?}"),
        }
    }
    Ok(rc)
}

fn main() -> Result<()> {
    let a = Args::parse();
    let digits = match a.task.as_str() {
        "digits" => true,
        "mosaic" => false,
        t => bail!("unknown task {t:?} (expected digits or mosaic)"),
    };
    let weighting = match a.weights.as_str() {
        "sqrt" => ClassWeighting::InverseSqrt,
        "none" => ClassWeighting::None,
        w => bail!("unknown weighting {w:?} (expected sqrt or none)"),
    };
    let cfg = TaskConfig {
        seed: a.seed,
        train_images: a.train.unwrap_or(if digits { 2000 } else { 400 }),
        test_images: a.test,
        epochs: a.epochs.unwrap_or(if digits { 4 } else { 6 }),
        batch_size: a.batch,
        lr: a.lr,
        vae_epochs: a.vae_epochs,
        vae_images: a.vae_images,
        channels: a.channels,
        latent: 16,
        weighting,
        ablation: !a.no_ablation,
    };
    let mut log = |m: &str| eprintln!("{m}");
    let start = std::time::Instant::now();
    let textons = match a.method.as_str() {
        "head" => false,
        "textons" | "textons-regions" if !digits => true,
        "textons" | "textons-regions" => bail!("--method {} is only for --task mosaic", a.method),
        m => bail!("unknown method {m:?} (expected head, textons or textons-regions)"),
    };
    let region_cfg = RegionConfig {
        regions: a.regions,
        restarts: a.restarts,
        iters: 50,
        spatial_weight: a.spatial,
        smooth_iters: a.majority,
        interior: a.interior,
        scoring: SegmentScoring::parse(&a.scoring)?,
        neighbours: a.region_neighbours,
        distinct: a.distinct,
        scale_shifts: a.scale_shifts,
        refine_window: a.refine_window,
        refine_radius: a.refine_radius,
        fine_step: a.fine_step,
        refine_whiten: a.refine_whiten,
        fine_majority: a.fine_majority,
        inside_windows: a.inside_windows,
        posterior_weight: a.posterior,
        lbp: a.lbp,
        lbp_weight: a.lbp_weight,
        lbp_refine: a.lbp_refine,
        seed: a.seed,
    };
    let regions = a.method == "textons-regions";
    let sweep: Vec<RegionConfig> = match (&a.sweep, regions) {
        (None, _) => Vec::new(),
        (Some(s), true) => s
            .split(';')
            .map(|spec| region_variant(&region_cfg, spec))
            .collect::<Result<_>>()?,
        (Some(_), false) => bail!("--sweep needs --method textons-regions"),
    };
    let tcfg = TextonSegConfig {
        texton: vae_vision::texton::TextonConfig {
            epochs: a.texton_epochs,
            textons: a.textons,
            levels: a.levels,
            ..Default::default()
        },
        window: a.window,
        step: a.step,
        refs_per_class: a.refs,
        smooth: a.smooth,
        keep_classes: (a.keep_classes > 0).then_some(a.keep_classes),
        mirror_refs: a.mirror_refs,
        neighbours: a.neighbours,
        regions: regions.then(|| region_cfg.clone()),
        classifier_hidden: a.classifier_hidden,
        classifier_crops: a.classifier_crops,
        lbp: regions && (a.lbp || sweep.iter().any(|rc| rc.lbp)),
        svm: a.svm.then(|| SegmentSvmConfig {
            svm: SvmConfig {
                c: a.svm_c,
                gamma_scale: a.svm_gamma,
                ..SvmConfig::default()
            },
            lbp_weight: a.svm_lbp_weight,
        }),
        encoder: match a.encoder.as_str() {
            "vae" => EncoderKind::Vae,
            "pixels" => EncoderKind::Pixels,
            e => bail!("unknown --encoder {e:?} (expected vae or pixels)"),
        },
        lbp_scales: LbpConfig {
            scales: a
                .lbp_scales
                .split(';')
                .map(|pr| -> Result<(usize, f32)> {
                    let (p, r) = pr
                        .split_once(',')
                        .with_context(|| format!("LBP scale {pr:?} is not P,R"))?;
                    Ok((p.trim().parse()?, r.trim().parse()?))
                })
                .collect::<Result<_>>()?,
        },
        lbp_kind: LbpKind::parse(&a.lbp_kind)?,
    };
    let outcome = if digits {
        let dir = vae_data::location::resolve_data_dir(a.data.as_deref(), "mnist")
            .context("MNIST for the digit scenes")?;
        run_digits(&dir, a.size.unwrap_or(64), &cfg, &mut log)?
    } else {
        let dir = vae_data::location::resolve_data_dir(a.data.as_deref(), "textures/kth-tips-grey")
            .context("KTH-TIPS grey for the mosaics")?;
        if textons {
            run_mosaic_textons_sweep(
                &dir,
                a.size.unwrap_or(256),
                a.train_per_class,
                a.test,
                a.seed,
                &tcfg,
                &sweep,
                a.oracle,
                a.holdout,
                &mut log,
            )?
        } else {
            run_mosaic(
                &dir,
                a.size.unwrap_or(256),
                a.train_per_class,
                &cfg,
                &mut log,
            )?
        }
    };
    let total = start.elapsed().as_secs_f64();
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let background = digits.then_some(0u8);
    let mut heads = Vec::new();
    for h in &outcome.heads {
        let r = &h.report;
        let what = if textons {
            "segmenting"
        } else {
            "head training"
        };
        println!(
            "{:8} pixel accuracy {:.4} | mIoU {:.4} | boundary F (tol {} px) {:.4} | {what} {:.0} s",
            h.name, r.pixel_accuracy, r.mean_iou, r.boundary_tolerance, r.boundary_f, h.train_seconds
        );
        let iou: Vec<String> = r
            .per_class_iou
            .iter()
            .map(|v| v.map_or("-".into(), |v| format!("{v:.3}")))
            .collect();
        println!("         per-class IoU: {}", iou.join(" "));
        let png = a.out.join(format!("{}_{}.png", a.task, h.name));
        save_overlay_panel(
            &png,
            &outcome.test.images,
            &outcome.test.labels,
            &h.pred,
            6,
            background,
        )?;
        let cm = a.out.join(format!("{}_{}_confusion.png", a.task, h.name));
        r.confusion.save_png(&cm, 16)?;
        println!(
            "         wrote {} (input | truth | prediction) and {}",
            png.display(),
            cm.display()
        );
        heads.push(json!({
            "head": h.name, "pixel_accuracy": r.pixel_accuracy, "mean_iou": r.mean_iou,
            "per_class_iou": r.per_class_iou, "boundary_f": r.boundary_f,
            "boundary_tolerance_px": r.boundary_tolerance, "train_seconds": h.train_seconds,
            "loss_per_epoch": h.history.iter().map(|e| e.loss).collect::<Vec<_>>(),
            "confusion": r.confusion.to_text(None),
        }));
    }
    println!("{}", outcome.heads[0].report.confusion.to_text(None));
    let what = if textons {
        "texton model + references"
    } else {
        "VAE pretraining"
    };
    println!("{what} {:.0} s; total {:.0} s", outcome.vae_seconds, total);
    if let Some(path) = &a.json {
        let j = json!({
            "task": a.task, "seed": a.seed, "train_images_per_epoch": cfg.train_images,
            "test_images": cfg.test_images, "epochs": cfg.epochs, "batch": cfg.batch_size, "lr": cfg.lr,
            "vae_epochs": cfg.vae_epochs, "vae_images": cfg.vae_images, "vae_seconds": outcome.vae_seconds,
            "vae_train_neg_elbo": outcome.vae_loss, "class_weights": outcome.weights,
            "network_downsampling": outcome.scale, "total_seconds": total, "heads": heads,
            "method": a.method,
        });
        let mut j = j;
        if textons {
            j["textons"] = json!({
                "window": tcfg.window, "step": tcfg.step, "refs_per_class": tcfg.refs_per_class,
                "smooth": tcfg.smooth, "keep_classes": tcfg.keep_classes, "mirror_refs": tcfg.mirror_refs, "neighbours": tcfg.neighbours,
                "texton_epochs": tcfg.texton.epochs, "textons": tcfg.texton.textons,
                "levels": tcfg.texton.levels, "holdout_per_class": a.holdout,
                "fit_seconds": outcome.vae_seconds, "classifier_hidden": tcfg.classifier_hidden,
                "classifier_crops": tcfg.classifier_crops, "lbp_classifier": tcfg.lbp,
                "lbp_scales": tcfg.lbp_scales.scales, "lbp_kind": tcfg.lbp_kind.name(),
            "encoder": a.encoder,
                "svm": tcfg.svm.as_ref().map(|s| json!({
                    "c": s.svm.c, "gamma_scale": s.svm.gamma_scale, "tolerance": s.svm.tolerance,
                    "lbp_weight": s.lbp_weight,
                })),
            });
            if let Some(rc) = &tcfg.regions {
                j["regions"] = region_json(rc);
                j["sweep"] = json!(sweep.iter().map(region_json).collect::<Vec<_>>());
            }
        }
        std::fs::write(path, serde_json::to_string_pretty(&j)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
