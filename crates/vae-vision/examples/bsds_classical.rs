//! BSDS500 boundary benchmark of the classical detectors (Sobel, Prewitt, Roberts, Canny).
//!
//! ```text
//! cargo run --release -p vae-vision --example bsds_classical -- --data ../shared/data --split val
//! ```
//!
//! Soft maps: Sobel, Prewitt and Roberts give the gradient magnitude of the grey image
//! (BT.601 luma) divided by its maximum over the image. Canny gives
//! [`canny_soft`](vae_vision::classical::canny_soft) (sigma 2, low = 0.4 high, 100 steps):
//! thresholding it at t is Canny with high = t times the image's largest suppressed
//! magnitude. Every map goes through the standard protocol (99 thresholds, thinning,
//! one-to-one matching at 0.0075 of the diagonal).

#[path = "../tests/common/bsds_loader.rs"]
mod bsds_loader;

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use ndarray::Array2;
use rayon::prelude::*;
use vae_vision::classical::{
    canny_soft, nonmax_suppression, prewitt, rgb_to_gray, roberts, sobel, sobel_gradients,
};
use vae_vision::metrics::{evaluate_bsds, BsdsConfig};

/// Classical edge detectors on BSDS500, scored by ODS / OIS / AP.
#[derive(Parser)]
struct Args {
    /// Data root holding `bsds500/` (default: $VAE_DATA_DIR, else ../shared/data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Split folder under bsds500/.
    #[arg(long, default_value = "val")]
    split: String,
    /// Evaluate only the first N images (0 = all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Comma-separated methods: sobel, prewitt, roberts, canny, sobel_nms (Sobel magnitude
    /// after non-maximum suppression).
    #[arg(long, default_value = "sobel,prewitt,roberts,canny")]
    methods: String,
    /// Canny's Gaussian sigma.
    #[arg(long, default_value_t = 2.0)]
    canny_sigma: f32,
    /// Canny's low threshold as a fraction of the high one.
    #[arg(long, default_value_t = 0.4)]
    canny_low_ratio: f32,
}

/// Process CPU time (user + system) in seconds from /proc/self/stat (Linux; clock ticks
/// assumed to be 100 per second), or NaN elsewhere. The machine is shared, so wall time
/// alone says little about the evaluator's cost.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the ")" of the command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (tick(11) + tick(12)) / 100.0
}

fn normalise(m: Array2<f32>) -> Array2<f32> {
    let max = m.iter().cloned().fold(0.0f32, f32::max);
    if max > 0.0 {
        m.mapv(|v| (v / max).clamp(0.0, 1.0))
    } else {
        m
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = args.data.clone().unwrap_or_else(bsds_loader::data_root);
    let dir = root.join("bsds500").join(&args.split);
    anyhow::ensure!(
        dir.is_dir(),
        "no BSDS split folder at {} (pass --data DIR)",
        dir.display()
    );
    let mut ids = bsds_loader::list_ids(&dir)?;
    if args.limit > 0 {
        ids.truncate(args.limit);
    }
    let t0 = Instant::now();
    let images: Vec<_> = ids
        .par_iter()
        .map(|id| bsds_loader::load(&dir, id))
        .collect::<anyhow::Result<_>>()?;
    let grays: Vec<Array2<f32>> = images
        .iter()
        .map(|im| rgb_to_gray(im.image.view()))
        .collect::<Result<_, _>>()?;
    let gts: Vec<Vec<Array2<bool>>> = images.iter().map(|im| im.boundaries.clone()).collect();
    println!(
        "loaded {} images from {} in {:.1} s",
        images.len(),
        dir.display(),
        t0.elapsed().as_secs_f64()
    );
    println!("threads: {}", rayon::current_num_threads());
    println!(
        "{:<10} {:>6} {:>6} {:>6} {:>8} {:>9} {:>8} {:>10}",
        "method", "ODS", "OIS", "AP", "ODS-thr", "detect-s", "eval-s", "eval-cpu-s"
    );
    let cfg = BsdsConfig::default();
    for method in args.methods.split(',').map(str::trim) {
        let t = Instant::now();
        let preds: Vec<Array2<f32>> = grays
            .par_iter()
            .map(|g| -> anyhow::Result<Array2<f32>> {
                Ok(match method {
                    "sobel" => normalise(sobel(g.view())),
                    "prewitt" => normalise(prewitt(g.view())),
                    "roberts" => normalise(roberts(g.view())),
                    "sobel_nms" => {
                        let gr = sobel_gradients(g.view());
                        normalise(nonmax_suppression(&gr, gr.magnitude().view(), 0.0))
                    }
                    "canny" => canny_soft(g.view(), args.canny_sigma, args.canny_low_ratio, 100)?,
                    other => anyhow::bail!("unknown method {other}"),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let detect_s = t.elapsed().as_secs_f64();
        let (t, c) = (Instant::now(), cpu_seconds());
        let rep = evaluate_bsds(&preds, &gts, &cfg)?;
        let (eval_s, eval_cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
        println!(
            "{:<10} {:>6.3} {:>6.3} {:>6.3} {:>8.3} {:>9.1} {:>8.1} {:>10.1}",
            method, rep.ods.f, rep.ois.f, rep.ap, rep.ods.threshold, detect_s, eval_s, eval_cpu
        );
    }
    Ok(())
}
