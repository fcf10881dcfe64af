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
use rayon::prelude::*;
use serde_json::json;
use vae_data::bsds::{bsds_ids, load_bsds_image, BsdsImage};
use vae_vision::edges::{classical_map, pr_plot, Method};
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
    let mut ids = bsds_ids(&dir).with_context(|| format!("listing {}", dir.display()))?;
    if a.limit > 0 {
        ids.truncate(a.limit);
    }
    let t0 = Instant::now();
    let pb = bar(ids.len(), "load");
    let images: Vec<BsdsImage> = ids
        .par_iter()
        .map(|id| {
            let im = load_bsds_image(&dir, id);
            pb.inc(1);
            im
        })
        .collect::<Result<_, _>>()
        .with_context(|| format!("loading {}", dir.display()))?;
    pb.finish_and_clear();
    println!(
        "loaded {} images from {} in {:.1} s ({} threads)",
        images.len(),
        dir.display(),
        t0.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;

    let cfg = BsdsConfig::default();
    let mut outcomes = Vec::new();
    for &method in &methods {
        if method == Method::Vae {
            bail!("the learned edge head is not available in this build");
        }
        let map_dir = a.out.join(method.name());
        if !a.no_maps {
            std::fs::create_dir_all(&map_dir)?;
        }
        let (t, c) = (Instant::now(), cpu_seconds());
        let pb = bar(images.len(), method.name());
        let results = images
            .par_iter()
            .map(|im| -> Result<_> {
                let map = classical_map(method, im.image.view())?;
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
