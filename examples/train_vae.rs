//! Train a VAE on MNIST or Fashion-MNIST, estimate log p(x), impute missing pixels and
//! write the pictures.
//!
//! ```text
//! cargo run --release --example train_vae -- --preset conv --latent 20 --epochs 10
//! ```
//! Data: `--data DIR` or `VAE_DATA_DIR` (a folder holding `mnist/` and `fashion-mnist/`
//! with the original IDX .gz files), else the repository's `data/mnist-sample`.
use anyhow::{bail, Context, Result};
use clap::Parser;
use ndarray::{Array4, Axis};
use rand::{rngs::StdRng, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::Instant;
use vae_core::{
    gallery, impute, iwae, train, Binarization, Preset, TrainConfig, Trainer, Vae, VaeConfig,
};

/// Train a VAE and write reconstructions, samples, interpolations, traversals and more.
#[derive(Parser, Debug)]
struct Args {
    /// Data root holding `mnist/` or `fashion-mnist/` (default: $VAE_DATA_DIR, then data/).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Data set: mnist or fashion-mnist.
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// Architecture: seed, mlp or conv.
    #[arg(long, default_value = "seed")]
    preset: String,
    /// Latent dimension.
    #[arg(long, default_value_t = 2)]
    latent: usize,
    /// Epochs to train (a resumed run continues up to this number).
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Images per optimizer step.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Binarization of the pixels: none (grey levels as Bernoulli targets) or dynamic.
    #[arg(long, default_value = "none")]
    binarization: String,
    /// KL weight beta.
    #[arg(long, default_value_t = 1.0)]
    beta: f32,
    /// KL warm-up length in optimizer steps (0: none).
    #[arg(long, default_value_t = 0)]
    kl_warmup: u64,
    /// Importance samples K for the log p(x) estimate (0 skips it).
    #[arg(long, default_value_t = 0)]
    importance_samples: usize,
    /// Number of test images for the log p(x) estimate (0: all).
    #[arg(long, default_value_t = 1000)]
    iwae_images: usize,
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Seed of weights and of every random draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory for PNGs and the checkpoint.
    #[arg(long, default_value = "out/train_vae")]
    out: PathBuf,
    /// Write the metrics as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Continue from this checkpoint instead of starting fresh.
    #[arg(long)]
    resume: Option<PathBuf>,
}

/// Reads an IDX .gz file: the dims and the u8 payload.
fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    use std::io::Read;
    let mut raw = Vec::new();
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    flate2::read::GzDecoder::new(f).read_to_end(&mut raw)?;
    let be = |i: usize| u32::from_be_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]) as usize;
    if raw.len() < 4 || raw[0] != 0 || raw[1] != 0 || raw[2] != 8 {
        bail!("{}: not an IDX u8 file", path.display());
    }
    let rank = raw[3] as usize;
    let dims: Vec<usize> = (0..rank).map(|k| be(4 + 4 * k)).collect();
    let body = raw.split_off(4 + 4 * rank);
    if body.len() != dims.iter().product::<usize>() {
        bail!(
            "{}: payload length {} does not match dims {dims:?}",
            path.display(),
            body.len()
        );
    }
    Ok((dims, body))
}

/// Images `[n, 1, 28, 28]` as u8 and labels of one split (`train` or `t10k`).
fn load_split(dir: &Path, split: &str) -> Result<(Array4<u8>, Vec<u8>)> {
    let (d, px) = read_idx(&dir.join(format!("{split}-images-idx3-ubyte.gz")))?;
    let (_, labels) = read_idx(&dir.join(format!("{split}-labels-idx1-ubyte.gz")))?;
    Ok((Array4::from_shape_vec((d[0], 1, d[1], d[2]), px)?, labels))
}

fn data_dir(args: &Args) -> Result<PathBuf> {
    let roots = args
        .data
        .clone()
        .into_iter()
        .chain(std::env::var_os("VAE_DATA_DIR").map(PathBuf::from));
    for root in roots.chain([PathBuf::from("data")]) {
        for dir in [
            root.join(&args.dataset),
            root.join("mnist-sample"),
            root.clone(),
        ] {
            if dir.join("t10k-images-idx3-ubyte.gz").exists()
                && (dir.ends_with(&args.dataset) || args.data.is_none())
            {
                return Ok(dir);
            }
        }
    }
    bail!(
        "no {} IDX files found: pass --data DIR or set VAE_DATA_DIR",
        args.dataset
    )
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dir = data_dir(&args)?;
    let (mut train_u8, _) = load_split(&dir, "train")?;
    let (test_u8, test_labels) = load_split(&dir, "t10k")?;
    if let Some(n) = args.train_limit {
        train_u8 = train_u8
            .slice_axis(Axis(0), (0..n.min(train_u8.dim().0)).into())
            .to_owned();
    }
    println!(
        "data: {} ({} train, {} test images)",
        dir.display(),
        train_u8.dim().0,
        test_u8.dim().0
    );
    std::fs::create_dir_all(&args.out)?;
    let binarization = Binarization::from_name(&args.binarization)?;
    let cfg = VaeConfig {
        latent: args.latent,
        preset: Preset::from_name(&args.preset)?,
        beta: args.beta,
        kl_warmup_steps: args.kl_warmup,
        ..VaeConfig::default()
    };
    let tcfg = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch,
        lr: args.lr,
        seed: args.seed,
        binarization,
        progress: true,
        checkpoint: Some(args.out.join("checkpoint.safetensors")),
        ..TrainConfig::default()
    };
    let mut trainer = match &args.resume {
        Some(p) => Trainer::resume(p, tcfg)?,
        None => Trainer::new(Vae::new(cfg, &mut StdRng::seed_from_u64(args.seed))?, tcfg)?,
    };
    println!(
        "{}\nparameters: {}",
        trainer.vae().describe(),
        vae_tensor::num_params(trainer.vae())
    );
    let start = Instant::now();
    let history = trainer.fit(&train_u8, Some(&test_u8), |s| {
        println!(
            "epoch {:>3}: train loss {:.2} (recon {:.2}, KL {:.2}) | test -ELBO {:.2} | {:.1} s, {:.0} img/s",
            s.epoch, s.train_loss, s.train_recon, s.train_kl, s.test_neg_elbo.unwrap_or(f64::NAN), s.seconds, s.images_per_sec
        )
    })?;
    let train_seconds = start.elapsed().as_secs_f64();
    let vae = trainer.vae();
    let test_f32 = test_u8.mapv(|v| v as f32 / 255.0);
    let test_elbo = train::evaluate(vae, &test_f32, binarization, args.seed)?;
    println!(
        "final test: -ELBO {:.2} nats (recon {:.2}, KL {:.2})",
        test_elbo.neg_elbo(),
        test_elbo.recon_nats_per_image,
        test_elbo.kl_nats_per_image
    );

    let mut nll = None;
    if args.importance_samples > 0 {
        let m = if args.iwae_images == 0 {
            test_f32.dim().0
        } else {
            args.iwae_images.min(test_f32.dim().0)
        };
        let subset = test_f32.slice_axis(Axis(0), (0..m).into()).to_owned();
        let icfg = iwae::IwaeConfig {
            k: args.importance_samples,
            seed: args.seed,
            binarization,
            ..Default::default()
        };
        let t = Instant::now();
        let r = iwae::log_likelihood(vae, &subset, &icfg)?;
        println!(
            "log p(x) estimate, K = {}, first {m} test images: NLL {:.2} nats ({:.0} s)",
            r.k,
            r.nll(),
            t.elapsed().as_secs_f64()
        );
        nll = Some((r.nll(), m));
    }
    let fill = impute::mean_image(&train_u8.mapv(|v| v as f32 / 255.0))?;
    let g = gallery::write_gallery(
        vae,
        &test_f32,
        &test_labels,
        &fill,
        &history,
        &args.out,
        &mut StdRng::seed_from_u64(args.seed),
    )?;
    for (name, r) in [
        ("top half", &g.impute_top_half),
        ("50% random", &g.impute_random_half),
    ] {
        println!(
            "imputation, {name} missing: MSE {:.4} vs mean-fill {:.4} (MAE {:.4} vs {:.4})",
            r.mse, r.mse_mean_fill, r.mae, r.mae_mean_fill
        );
    }
    for (what, p) in &g.files {
        println!("wrote {}: {what}", p.display());
    }
    if let Some(path) = &args.json {
        let imp = |r: &impute::ImputationReport| serde_json::json!({"mse": r.mse, "mse_mean_fill": r.mse_mean_fill, "mae": r.mae, "mae_mean_fill": r.mae_mean_fill});
        let metrics = serde_json::json!({
            "args": format!("{args:?}"), "data": dir, "test_neg_elbo": test_elbo.neg_elbo(),
            "test_recon": test_elbo.recon_nats_per_image, "test_kl": test_elbo.kl_nats_per_image,
            "iwae_nll": nll.map(|v| v.0), "iwae_k": args.importance_samples, "iwae_images": nll.map(|v| v.1),
            "impute_top_half": imp(&g.impute_top_half), "impute_random_half": imp(&g.impute_random_half),
            "seconds_per_epoch": history.iter().map(|s| s.seconds).collect::<Vec<_>>(),
            "images_per_sec": history.iter().map(|s| s.images_per_sec).collect::<Vec<_>>(),
            "train_seconds": train_seconds, "history": history,
        });
        std::fs::write(path, serde_json::to_string_pretty(&metrics)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
