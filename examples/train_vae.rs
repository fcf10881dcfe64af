//! Train a VAE on MNIST or Fashion-MNIST, estimate log p(x), impute missing pixels and
//! write the pictures.
//!
//! ```text
//! cargo run --release --example train_vae -- --preset conv --latent 20 --epochs 10
//! ```
//! Data: `--data DIR` or `VAE_DATA_DIR` (a folder holding `mnist/` and `fashion-mnist/`
//! with the original IDX .gz files), else the repository's `data/mnist-sample`.
use anyhow::{Context, Result};
use clap::Parser;
use ndarray::{Array4, Axis};
use rand::{rngs::StdRng, SeedableRng};
use std::path::PathBuf;
use std::time::Instant;
use vae_core::{
    gallery, impute, iwae, train, Binarization, Preset, TrainConfig, Trainer, Vae, VaeConfig,
};
use vae_data::idx::read_idx;
use vae_data::location::resolve_data_dir;
use vae_data::mnist::{load_mnist, mnist_files, Split};

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
    /// Number of test images for the log p(x) estimate (capped at the test set size).
    #[arg(long, default_value_t = 1000)]
    iwae_images: usize,
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Seed of the weights and of every random draw.
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

/// `<root>/<dataset>` from --data or VAE_DATA_DIR, else the vendored `data/mnist-sample`.
fn data_dir(args: &Args) -> Result<PathBuf> {
    match resolve_data_dir(args.data.as_deref(), &args.dataset) {
        Err(e) if args.dataset == "mnist" && args.data.is_none() => {
            let dir = resolve_data_dir(None, "mnist-sample").context(e.to_string())?;
            println!(
                "note: full MNIST not found, using the 10k-digit sample {}",
                dir.display()
            );
            Ok(dir)
        }
        r => Ok(r?),
    }
}

/// Training pixels read straight from the IDX file as u8: a quarter of the memory of f32
/// (47 MB for MNIST train instead of 188 MB).
fn train_u8(dir: &std::path::Path, limit: Option<usize>) -> Result<Array4<u8>> {
    let (images, _) = mnist_files(dir, Split::Train)?;
    let a = ndarray::ArrayD::<u8>::try_from(read_idx(&images)?)?;
    let (n, h, w) = (a.shape()[0], a.shape()[1], a.shape()[2]);
    let a = a.into_shape_with_order((n, 1, h, w))?;
    Ok(a.slice_axis(Axis(0), (0..limit.unwrap_or(n).min(n)).into())
        .to_owned())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dir = data_dir(&args)?;
    let train_u8 = train_u8(&dir, args.train_limit)?;
    let test = load_mnist(&dir, Split::Test)?;
    let (n_train, d) = (train_u8.dim().0, dir.display());
    println!("data: {d} ({n_train} train, {} test images)", test.len());
    let binarization = Binarization::from_name(&args.binarization)?;
    let cfg = VaeConfig {
        latent: args.latent,
        preset: Preset::from_name(&args.preset)?,
        beta: args.beta,
        kl_warmup_steps: args.kl_warmup,
        ..VaeConfig::default()
    };
    std::fs::create_dir_all(&args.out)?;
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
    let n_params = vae_tensor::num_params(trainer.vae());
    println!("{}\nparameters: {n_params}", trainer.vae().describe());
    let start = Instant::now();
    let history = trainer.fit(&train_u8, Some(&test), |s| println!("{s}"))?;
    let train_seconds = start.elapsed().as_secs_f64();
    let vae = trainer.vae();
    let elbo = train::evaluate(vae, &test, binarization, args.seed)?;
    println!("final test {elbo}");
    let mut nll = None;
    if args.importance_samples > 0 {
        let m = args.iwae_images.min(test.len());
        let subset = test.images.slice_axis(Axis(0), (0..m).into()).to_owned();
        let icfg = iwae::IwaeConfig {
            k: args.importance_samples,
            seed: args.seed,
            binarization,
            ..Default::default()
        };
        let t = Instant::now();
        let r = iwae::log_likelihood(vae, &subset, &icfg)?;
        let (secs, k, v) = (t.elapsed().as_secs_f64(), r.k, r.nll());
        println!("test NLL (K = {k}, first {m} test images): {v:.2} nats ({secs:.0} s)");
        nll = Some((r.nll(), m));
    }
    let fill = impute::mean_image(&train_u8)?;
    let (out, mut rng) = (&args.out, StdRng::seed_from_u64(args.seed));
    let g = gallery::write_gallery(
        vae,
        &test.images,
        &test.labels,
        &fill,
        &history,
        out,
        &mut rng,
    )?;
    println!("imputation, top half missing: {}", g.impute_top_half);
    println!("imputation, 50% missing: {}", g.impute_random_half);
    for (what, p) in &g.files {
        println!("wrote {}: {what}", p.display());
    }
    if let Some(path) = &args.json {
        let metrics = serde_json::json!({
            "args": format!("{args:?}"), "data": dir, "test_neg_elbo": elbo.neg_elbo(),
            "test_recon": elbo.recon_nats_per_image, "test_kl": elbo.kl_nats_per_image,
            "iwae_nll": nll.map(|v| v.0), "iwae_k": args.importance_samples, "iwae_images": nll.map(|v| v.1),
            "impute_top_half": g.impute_top_half.metrics_json(),
            "impute_random_half": g.impute_random_half.metrics_json(),
            "seconds_per_epoch": history.iter().map(|s| s.seconds).collect::<Vec<_>>(),
            "images_per_sec": history.iter().map(|s| s.images_per_sec).collect::<Vec<_>>(),
            "train_seconds": train_seconds, "history": history,
        });
        std::fs::write(path, serde_json::to_string_pretty(&metrics)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
