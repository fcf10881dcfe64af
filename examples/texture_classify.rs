//! Recognition from a VAE trained without labels: the main job of vae-rs.
//!
//! With no arguments it runs offline on the vendored MNIST sample (8,000 training digits,
//! 2,000 held out). `--dataset mnist|fashion-mnist` runs it on the full sets. Baselines run
//! on the same split: raw pixels with the same classifiers, and multi-scale LBP with a
//! chi-square nearest neighbour.
//!
//! `--dataset textures` (KTH-TIPS, or any folder with one subfolder per class via
//! `--data DIR`; grey or colour, any image sizes) splits by source image and, by default,
//! describes each image by texton histograms of the dense latent codes of a patch VAE
//! (`vae_vision::texton`), classified by a chi-square 1-NN, beside pixel textons and LBP on
//! the same split; `--splits N` averages N seeded splits. `--texture-method patch-vote`
//! runs the older pipeline (one latent per patch, patches classified and voted).
//!
//! ```sh
//! cargo run --release --example texture_classify
//! cargo run --release --example texture_classify -- --dataset textures --data ../shared/data
//! cargo run --release --example texture_classify -- --dataset textures --data ../shared/data --splits 5
//! ```
use anyhow::{Context, Result};
use clap::Parser;
use ndarray::{Array2, Axis};
use rand::{rngs::StdRng, SeedableRng};
use std::path::PathBuf;
use std::time::Instant;
use vae_core::{
    checkpoint::Checkpoint, png, Likelihood, Preset, TrainConfig, Trainer, Vae, VaeConfig, Variance,
};
use vae_data::location::resolve_data_dir;
use vae_vision::classical::LbpConfig;
use vae_vision::classify::{KnnGraph, Method, NeuralConfig, SpreadingConfig};
use vae_vision::knn::ChiSquareKnn;
use vae_vision::metrics::classification::ConfusionMatrix;
use vae_vision::texture::{
    encode_features, lbp_descriptors, pool_by_owner, score_methods, vote, FeatureKind, MethodScore,
};
use vae_vision::texture_task::RecognitionTask;

/// Train a VAE without labels, then classify from its latent features.
#[derive(Parser, Debug)]
struct Args {
    /// mnist-sample (vendored, default), mnist, fashion-mnist or textures (KTH-TIPS grey).
    #[arg(long, default_value = "mnist-sample")]
    dataset: String,
    /// Data root holding the data set folder (else $VAE_DATA_DIR, else the repo's data/).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Labels per class the classifiers may use, as a comma-separated list of budgets
    /// (`10,60,100,300,all`); the VAE is trained once and always sees every training item.
    #[arg(long, default_value = "all")]
    labels_per_class: String,
    /// Write the trained VAE here (vae-core safetensors checkpoint, rewritten every epoch).
    #[arg(long)]
    save_vae: Option<PathBuf>,
    /// Load a VAE saved with `--save-vae` instead of training one (same data set).
    #[arg(long)]
    load_vae: Option<PathBuf>,
    /// Encoder features the classifiers see: `mean` (posterior mean), `mean-logvar`, or
    /// `hidden` (the encoder's last hidden layer, which the mean and log-variance heads read).
    #[arg(long, default_value = "mean")]
    features: String,
    /// Also run label spreading (transductive: it sees the unlabelled training images and the
    /// test images, without labels) on a k-NN graph of the standardised latent features.
    #[arg(long)]
    transductive: bool,
    /// Neighbours per point of the label-spreading graph.
    #[arg(long, default_value_t = 10)]
    spread_k: usize,
    /// Label spreading's alpha (how far labels flow), in (0, 1).
    #[arg(long, default_value_t = 0.99)]
    spread_alpha: f32,
    /// Label spreading on the raw latent features (not standardised).
    #[arg(long)]
    spread_raw: bool,
    /// Hidden width of the MLP classifier.
    #[arg(long, default_value_t = 256)]
    mlp_width: usize,
    /// MLP epochs (default: 200 below 5,000 labelled items, else 40).
    #[arg(long)]
    mlp_epochs: Option<usize>,
    /// MLP AdamW weight decay.
    #[arg(long, default_value_t = 1e-3)]
    mlp_wd: f32,
    /// Augment the neural classifiers' training set with this many copies of every labelled
    /// item, each shifted by a random whole-pixel offset within `--shift-radius` (seeded) and
    /// encoded by the VAE; k-NN and label spreading keep the plain items.
    #[arg(long, default_value_t = 0)]
    augment_copies: usize,
    /// Largest shift, in pixels, of `--augment-copies` (each axis).
    #[arg(long, default_value_t = 2)]
    shift_radius: usize,
    /// Skip the pixel and LBP baselines (for quick classifier experiments on a saved VAE).
    #[arg(long)]
    skip_baselines: bool,
    /// Latent dimension of the VAE (default: 32; 16 for the texton method).
    #[arg(long)]
    latent: Option<usize>,
    /// VAE training epochs (default: 12 for the sample, 30 for full sets, 20 for textures).
    #[arg(long)]
    epochs: Option<usize>,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Seed for every random choice (split, init, batches, noise).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Textures: training images per class, the rest are test images (default: 40, or half
    /// the smallest class when a class has fewer than 80 images, for the texton method).
    #[arg(long)]
    train_per_class: Option<usize>,
    /// Textures: `textons` (default: a patch VAE, texton histograms of the dense latent
    /// codes over an image pyramid, chi-square 1-NN) or `patch-vote` (one VAE latent per
    /// patch, patches classified and voted).
    #[arg(long, default_value = "textons")]
    texture_method: String,
    /// Textures: patch side in pixels (default: 8 for textons, 16 for patch-vote).
    #[arg(long)]
    patch: Option<usize>,
    /// Textures: step between patches (default: 2 for textons, 16 for patch-vote).
    #[arg(long)]
    stride: Option<usize>,
    /// Textons: pyramid levels.
    #[arg(long, default_value_t = 3)]
    levels: usize,
    /// Textons: codebook size.
    #[arg(long, default_value_t = 64)]
    textons: usize,
    /// Textons: patches sampled from the training images for the VAE and the codebook.
    #[arg(long, default_value_t = 60_000)]
    train_patches: usize,
    /// Textons: weight of the patch contrast feature.
    #[arg(long, default_value_t = 0.0)]
    contrast_weight: f32,
    /// Textons: hidden layer sizes of the patch VAE, comma-separated.
    #[arg(long, default_value = "256")]
    hidden: String,
    /// Textons: number of random splits (seeds seed, seed+1, ...); mean ± sd is printed.
    #[arg(long, default_value_t = 1)]
    splits: usize,
    /// Textons: skip the pixel-texton baseline.
    #[arg(long)]
    skip_pixel_textons: bool,
    /// Where PNGs go.
    #[arg(long, default_value = "out/texture_classify")]
    out: PathBuf,
    /// Write the settings and every method's accuracy here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const FASHION: [&str; 10] = [
    "tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot",
];

fn main() -> Result<()> {
    let args = Args::parse();
    if args.dataset == "textures" && args.texture_method == "textons" {
        return run_textons(&args);
    }
    if args.dataset == "textures" && args.texture_method != "patch-vote" {
        anyhow::bail!(
            "unknown --texture-method {:?} (textons, patch-vote)",
            args.texture_method
        );
    }
    let patch = args.patch.unwrap_or(16);
    let stride = args.stride.unwrap_or(16);
    let latent = args.latent.unwrap_or(32);
    let start = Instant::now();
    let mut rng = StdRng::seed_from_u64(args.seed);
    let (task, default_epochs) = match args.dataset.as_str() {
        "mnist-sample" | "mnist" => {
            let dir = resolve_data_dir(args.data.as_deref(), &args.dataset)?;
            let epochs = if args.dataset == "mnist" { 30 } else { 12 };
            (RecognitionTask::digits(&dir, &DIGITS)?, epochs)
        }
        "fashion-mnist" => {
            let dir = resolve_data_dir(args.data.as_deref(), "fashion-mnist")?;
            (RecognitionTask::digits(&dir, &FASHION)?, 30)
        }
        "textures" => {
            let dir = resolve_data_dir(args.data.as_deref(), "textures/kth-tips-grey")?;
            let t = RecognitionTask::texture_folder(
                &dir,
                args.train_per_class.unwrap_or(40),
                patch,
                stride,
                &mut rng,
            )?;
            (t, 20)
        }
        other => anyhow::bail!(
            "unknown --dataset {other:?} (mnist-sample, mnist, fashion-mnist, textures)"
        ),
    };
    let classes = task.num_classes();
    println!(
        "{}: {} training items from {} images, {} test items from {} images, {} classes",
        args.dataset,
        task.train.dim().0,
        task.train_images.len(),
        task.test.dim().0,
        task.test_images.len(),
        classes
    );

    // 1. The VAE learns from every training item, without labels.
    let (_, c, h, w) = task.train.dim();
    // Grey textures: a Gaussian with a learned variance (a Bernoulli on grey levels is dominated
    // by the targets' own entropy and lets the posterior collapse). Digits: Bernoulli.
    let likelihood = if args.dataset == "textures" {
        Likelihood::Gaussian(Variance::Learned { init_logvar: -4.0 })
    } else {
        Likelihood::Bernoulli
    };
    let budgets = parse_budgets(&args.labels_per_class)?;
    let feature_kind = match args.features.as_str() {
        "mean" => FeatureKind::Mean,
        "mean-logvar" => FeatureKind::MeanLogvar,
        "hidden" => FeatureKind::Hidden,
        other => anyhow::bail!("unknown --features {other:?} (mean, mean-logvar, hidden)"),
    };
    let epochs = args.epochs.unwrap_or(default_epochs);
    let (mut vae, trained_epochs) = match &args.load_vae {
        Some(path) => {
            let ckpt = Checkpoint::load(path)?;
            if ckpt.config.input_shape != [c, h, w] {
                anyhow::bail!(
                    "{} holds a VAE for {:?} images, this data set has {:?}",
                    path.display(),
                    ckpt.config.input_shape,
                    [c, h, w]
                );
            }
            // Built with the same generator draws as a fresh VAE, so the classifiers below
            // see the same random stream whether the VAE was trained here or loaded.
            let mut vae = Vae::new(ckpt.config.clone(), &mut rng)?;
            ckpt.apply_weights(&mut vae, path)?;
            println!(
                "loaded {} (latent {}, {} epochs)",
                path.display(),
                vae.latent(),
                ckpt.epoch
            );
            (vae, ckpt.epoch)
        }
        None => {
            let cfg = VaeConfig {
                input_shape: [c, h, w],
                latent,
                preset: Preset::conv(),
                likelihood,
                ..VaeConfig::default()
            };
            let vae = Vae::new(cfg, &mut rng)?;
            let tcfg = TrainConfig {
                epochs,
                batch_size: args.batch,
                seed: args.seed,
                progress: true,
                checkpoint: args.save_vae.clone(),
                ..TrainConfig::default()
            };
            let mut trainer = Trainer::new(vae, tcfg)?;
            trainer.fit(&task.train, Some(&task.test), |s| {
                println!(
                    "epoch {:>3}: train loss {:.2}, test -ELBO {:.2} nats, {:.0} img/s",
                    s.epoch,
                    s.train_loss,
                    s.test_neg_elbo.unwrap_or(f64::NAN),
                    s.images_per_sec
                )
            })?;
            if let Some(path) = &args.save_vae {
                println!("saved the VAE to {}", path.display());
            }
            (trainer.into_vae(), epochs)
        }
    };
    let vae_seconds = start.elapsed().as_secs_f64();
    let f_train = encode_features(&mut vae, &task.train, feature_kind, 500)?;
    let f_test = encode_features(&mut vae, &task.test, feature_kind, 500)?;
    let f_aug: Vec<Array2<f32>> = (0..args.augment_copies)
        .map(|copy| {
            encode_shifted(
                &mut vae,
                &task.train,
                feature_kind,
                args.shift_radius,
                args.seed.wrapping_add(1 + copy as u64),
            )
        })
        .collect::<Result<_>>()?;
    if !f_aug.is_empty() {
        println!(
            "encoded {} shifted copies of the training items (radius {} px)",
            f_aug.len(),
            args.shift_radius
        );
    }
    let flat = |x: &ndarray::Array4<f32>| -> Array2<f32> {
        let n = x.dim().0;
        x.to_shape((n, c * h * w)).expect("contiguous").to_owned()
    };
    let (p_train, p_test) = if args.skip_baselines {
        (Array2::zeros((0, 0)), Array2::zeros((0, 0)))
    } else {
        (flat(&task.train), flat(&task.test))
    };
    let lbp = LbpConfig::default();
    let l_test = if args.skip_baselines {
        Array2::zeros((0, 0))
    } else {
        lbp_descriptors(&task.test_images, &lbp)?
    };
    let scope = if args.dataset == "mnist-sample" {
        "sample hold-out (MNIST train[8000:10000], not the MNIST test set)"
    } else {
        "test"
    };
    let names: Vec<&str> = task.classes.iter().map(|s| s.as_str()).collect();
    let vote_on = Some((
        &task.test_owner[..],
        task.test_images.len(),
        &task.test_image_y[..],
    ));

    let spread_cfg = SpreadingConfig {
        k: args.spread_k,
        alpha: args.spread_alpha,
        standardize: !args.spread_raw,
        ..SpreadingConfig::default()
    };
    let graph = if args.transductive {
        let t = Instant::now();
        let all = ndarray::concatenate(Axis(0), &[f_train.view(), f_test.view()])?;
        let g = KnnGraph::build(all.view(), &spread_cfg)?;
        println!(
            "label-spreading graph: {} points, {} edges, {:.0} s",
            g.len(),
            g.num_edges(),
            t.elapsed().as_secs_f64()
        );
        Some(g)
    } else {
        None
    };

    // 2. Classifiers see only the labelled items, budget by budget. Every budget starts from
    // the same generator state, so a budget scores the same alone or in a list.
    let rng_at_budgets = rng.clone();
    let mut results = Vec::new();
    let mut best_overall: Option<MethodScore> = None;
    for &budget in &budgets {
        let budget_start = Instant::now();
        let mut rng = rng_at_budgets.clone();
        let labelled: Vec<usize> = match budget {
            Some(n) => task.labelled_items(n, &mut rng)?,
            None => (0..task.train_y.len()).collect(),
        };
        let ly: Vec<usize> = labelled.iter().map(|&i| task.train_y[i]).collect();
        let mlp = NeuralConfig {
            epochs: args
                .mlp_epochs
                .unwrap_or(if labelled.len() < 5000 { 200 } else { 40 }),
            weight_decay: args.mlp_wd,
            ..NeuralConfig::mlp(args.mlp_width)
        };
        let neural = [
            Method::Neural(NeuralConfig::softmax_regression()),
            Method::Neural(mlp),
        ];
        let mut methods = vec![Method::Knn { k: 5 }];
        if f_aug.is_empty() {
            methods.extend(neural.iter().cloned());
        }
        let mut scores = score_methods(
            "vae",
            &methods,
            f_train.select(Axis(0), &labelled).view(),
            &ly,
            f_test.view(),
            &task.test_y,
            classes,
            vote_on,
            &mut rng,
        )?;
        if !f_aug.is_empty() {
            // Neural classifiers on the labelled items plus their shifted copies.
            let parts: Vec<Array2<f32>> = std::iter::once(&f_train)
                .chain(&f_aug)
                .map(|f| f.select(Axis(0), &labelled))
                .collect();
            let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
            let aug_x = ndarray::concatenate(Axis(0), &views)?;
            let aug_y: Vec<usize> = ly.repeat(parts.len());
            scores.extend(score_methods(
                &format!("vae-shift{}x{}", f_aug.len(), args.shift_radius),
                &neural,
                aug_x.view(),
                &aug_y,
                f_test.view(),
                &task.test_y,
                classes,
                vote_on,
                &mut rng,
            )?);
        }
        if let Some(graph) = &graph {
            // Transductive: every training item and every test item are nodes of the graph;
            // only the labelled items carry their labels.
            let seeds: Vec<(usize, usize)> =
                labelled.iter().map(|&i| (i, task.train_y[i])).collect();
            let pred = graph.predict(&seeds, classes, &spread_cfg)?;
            let pred = vote(
                &pred[task.train_y.len()..],
                &task.test_owner,
                task.test_images.len(),
                classes,
            )?;
            let confusion = ConfusionMatrix::from_labels(&task.test_image_y, &pred, classes)?;
            scores.push(MethodScore {
                name: format!("vae+{}", Method::LabelSpreading(spread_cfg.clone()).name()),
                accuracy: confusion.accuracy().unwrap_or(0.0),
                confusion,
            });
        }
        if task.train_images.len() < task.train_y.len() {
            // Patches: also pool each image's patch latents (mean and spread) into one descriptor.
            let images: Vec<usize> = {
                let mut v: Vec<usize> = labelled.iter().map(|&i| task.train_owner[i]).collect();
                v.dedup();
                v
            };
            let pooled_train = pool_by_owner(&f_train, &task.train_owner, task.train_images.len())?
                .select(Axis(0), &images);
            let pooled_test = pool_by_owner(&f_test, &task.test_owner, task.test_images.len())?;
            let y: Vec<usize> = images.iter().map(|&i| task.train_image_y[i]).collect();
            let ids: Vec<usize> = (0..task.test_images.len()).collect();
            scores.extend(score_methods(
                "vae-pooled",
                &methods,
                pooled_train.view(),
                &y,
                pooled_test.view(),
                &task.test_image_y,
                classes,
                Some((&ids, ids.len(), &task.test_image_y)),
                &mut rng,
            )?);
        }
        if !args.skip_baselines {
            scores.extend(score_methods(
                "pixels",
                &methods,
                p_train.select(Axis(0), &labelled).view(),
                &ly,
                p_test.view(),
                &task.test_y,
                classes,
                vote_on,
                &mut rng,
            )?);

            // 3. LBP on whole images with a chi-square 1-NN, on the labelled images only.
            let mut images: Vec<usize> = labelled.iter().map(|&i| task.train_owner[i]).collect();
            images.dedup();
            let l_train = lbp_descriptors(
                &images
                    .iter()
                    .map(|&i| task.train_images[i].clone())
                    .collect::<Vec<_>>(),
                &lbp,
            )?;
            let l_y: Vec<usize> = images.iter().map(|&i| task.train_image_y[i]).collect();
            let pred =
                ChiSquareKnn::fit(l_train.view(), &l_y, classes, 1)?.predict(l_test.view())?;
            let pred = vote(
                &pred,
                &(0..pred.len()).collect::<Vec<_>>(),
                pred.len(),
                classes,
            )?;
            let confusion = ConfusionMatrix::from_labels(&task.test_image_y, &pred, classes)?;
            scores.push(MethodScore {
                name: "lbp-riu2+chi2-1nn".into(),
                accuracy: confusion.accuracy().unwrap_or(0.0),
                confusion,
            });
        }

        // 4. Report.
        let budget_name = budget.map_or("all".to_string(), |n| n.to_string());
        println!(
            "\nlabels per class: {budget_name}; accuracy on the {scope}, {} test images, classifiers trained on {} labelled items:",
            task.test_images.len(),
            labelled.len()
        );
        for s in &scores {
            let note = if s.name.contains("+spread") {
                " (transductive)"
            } else {
                ""
            };
            println!("  {:<24} {:.4}{note}", s.name, s.accuracy);
        }
        let best = scores
            .iter()
            .filter(|s| s.name.starts_with("vae"))
            .max_by(|a, b| a.accuracy.total_cmp(&b.accuracy))
            .context("no VAE method")?
            .clone();
        println!(
            "\nconfusion matrix of {} (rows: truth, columns: prediction):\n{}",
            best.name,
            best.confusion.to_text(Some(&names))
        );
        let accuracy: serde_json::Map<String, serde_json::Value> = scores
            .iter()
            .map(|s| (s.name.clone(), s.accuracy.into()))
            .collect();
        results.push(
            serde_json::json!({ "labels_per_class": budget, "labelled_items": labelled.len(),
            "accuracy": accuracy, "seconds": budget_start.elapsed().as_secs_f64() }),
        );
        // The confusion PNG shows the best VAE method of the largest budget (the last one
        // when budgets are listed in increasing order).
        best_overall = Some(best);
    }
    let best = best_overall.context("no label budget")?;
    std::fs::create_dir_all(&args.out)?;
    let cm_path = args.out.join("confusion.png");
    best.confusion.save_png(&cm_path, 24)?;
    let n_show = f_test.nrows().min(3000);
    let labels_u8: Vec<u8> = task.test_y[..n_show].iter().map(|&l| l as u8).collect();
    let scatter_path = args.out.join("latent_scatter.png");
    png::save_png(
        &png::scatter(
            &top_two_dims(
                &f_test
                    .slice_axis(Axis(0), (0..n_show).into())
                    .slice_axis(Axis(1), (0..vae.latent()).into())
                    .to_owned(),
            ),
            &labels_u8,
            512,
        )?,
        &scatter_path,
    )?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "wrote {} and {}\ntotal time {seconds:.0} s (VAE {} {vae_seconds:.0} s)",
        cm_path.display(),
        scatter_path.display(),
        if args.load_vae.is_some() {
            "loading"
        } else {
            "training"
        }
    );
    if let Some(path) = &args.json {
        let mut j = serde_json::json!({ "dataset": args.dataset, "evaluated_on": scope, "train_items": task.train.dim().0, "test_items": task.test.dim().0,
            "test_images": task.test_images.len(), "latent": vae.latent(), "features": args.features,
            "epochs": trained_epochs, "batch": args.batch, "seed": args.seed, "patch": patch, "stride": stride, "train_per_class": args.train_per_class.unwrap_or(40),
            "load_vae": args.load_vae, "transductive": graph.as_ref().map(|_| serde_json::json!({ "k": spread_cfg.k, "alpha": spread_cfg.alpha,
            "min_std": spread_cfg.min_std, "standardize": spread_cfg.standardize, "max_iter": spread_cfg.max_iter })), "mlp_width": args.mlp_width, "mlp_wd": args.mlp_wd, "mlp_epochs": args.mlp_epochs, "budgets": results, "seconds": seconds, "vae_seconds": vae_seconds });
        if let [only] = &results[..] {
            // One budget: its numbers at the top level too (the layout of earlier runs).
            for key in ["labels_per_class", "labelled_items", "accuracy"] {
                j[key] = only[key].clone();
            }
        }
        std::fs::write(path, serde_json::to_string_pretty(&j)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Parses `--labels-per-class`: comma-separated counts or `all`.
fn parse_budgets(s: &str) -> Result<Vec<Option<usize>>> {
    s.split(',')
        .map(|t| match t.trim() {
            "all" => Ok(None),
            n => match n.parse::<usize>() {
                Ok(v) if v > 0 => Ok(Some(v)),
                _ => {
                    anyhow::bail!("--labels-per-class: {n:?} is neither a positive count nor `all`")
                }
            },
        })
        .collect()
}

/// The two latent coordinates with the largest variance, for a scatter plot.
fn top_two_dims(f: &Array2<f32>) -> Array2<f32> {
    let var = f.var_axis(Axis(0), 0.0);
    let mut idx: Vec<usize> = (0..var.len()).collect();
    idx.sort_by(|&a, &b| var[b].total_cmp(&var[a]));
    f.select(Axis(1), &idx[..2.min(idx.len())])
}

/// Encodes a copy of every image of `images`, each translated by its own random whole-pixel
/// offset in `[-radius, radius]²` (drawn from `seed`), with `kind` features.
fn encode_shifted(
    vae: &mut vae_core::Vae,
    images: &ndarray::Array4<f32>,
    kind: FeatureKind,
    radius: usize,
    seed: u64,
) -> Result<Array2<f32>> {
    use rand::Rng;
    let mut rng = StdRng::seed_from_u64(seed);
    let r = radius as i64;
    let mut shifted = images.clone();
    for mut img in shifted.axis_iter_mut(Axis(0)) {
        let (dy, dx) = (
            rng.random_range(-r..=r) as isize,
            rng.random_range(-r..=r) as isize,
        );
        let one = img.view().insert_axis(Axis(0));
        let moved = vae_data::transform::shift(&one, dy, dx, 0.0);
        img.assign(&moved.index_axis(Axis(0), 0));
    }
    Ok(encode_features(vae, &shifted, kind, 500)?)
}

/// The texton method on a texture folder: one or more seeded random splits, the VAE
/// textons beside pixel textons and LBP on each.
fn run_textons(args: &Args) -> Result<()> {
    use vae_data::folder::{load_image_folder, split_images_per_class, ColorMode};
    use vae_vision::texton::{evaluate_split, Baselines, TextonConfig};
    let start = Instant::now();
    let dir = resolve_data_dir(args.data.as_deref(), "textures/kth-tips-grey")?;
    let folder = load_image_folder(&dir, ColorMode::Gray)?;
    let images: Vec<Array2<f32>> = folder
        .images
        .iter()
        .map(|img| img.index_axis(Axis(0), 0).to_owned())
        .collect();
    let classes = folder.classes.len();
    let smallest = (0..classes)
        .map(|c| folder.labels.iter().filter(|&&l| l == c).count())
        .min()
        .unwrap_or(0);
    let train_per_class = args
        .train_per_class
        .unwrap_or_else(|| 40.min(smallest / 2).max(1));
    let hidden = args
        .hidden
        .split(',')
        .map(|t| t.trim().parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .context("--hidden: comma-separated layer sizes")?;
    let cfg = TextonConfig {
        patch: args.patch.unwrap_or(8),
        stride: args.stride.unwrap_or(2),
        levels: args.levels,
        textons: args.textons,
        train_patches: args.train_patches,
        contrast_weight: args.contrast_weight,
        latent: args.latent.unwrap_or(16),
        hidden,
        epochs: args.epochs.unwrap_or(10),
        batch: args.batch,
        ..TextonConfig::default()
    };
    let baselines = Baselines {
        pixel_textons: !args.skip_pixel_textons,
        lbp: !args.skip_baselines,
    };
    println!(
        "{}: {} images, {} classes, {} training images per class; textons {:?}",
        dir.display(),
        images.len(),
        classes,
        train_per_class,
        cfg
    );
    let mut per_method: Vec<(String, Vec<f64>)> = Vec::new();
    let mut splits_json = Vec::new();
    let mut first_best = None;
    for s in 0..args.splits.max(1) {
        let seed = args.seed + s as u64;
        // The split is the first draw of the seed's generator, as in the patch-vote path.
        let mut rng = StdRng::seed_from_u64(seed);
        let (train, test) = split_images_per_class(&folder.labels, train_per_class, &mut rng)?;
        let scores = evaluate_split(
            &images,
            &folder.labels,
            classes,
            &train,
            &test,
            &cfg,
            baselines,
            seed,
            &mut rng,
        )?;
        println!(
            "\nsplit seed {seed}: {} training images, {} test images; accuracy:",
            train.len(),
            test.len()
        );
        let mut acc = serde_json::Map::new();
        for sc in &scores {
            println!(
                "  {:<32} {:.4}   ({:.0} s)",
                sc.score.name, sc.score.accuracy, sc.seconds
            );
            acc.insert(sc.score.name.clone(), sc.score.accuracy.into());
            match per_method.iter_mut().find(|(n, _)| *n == sc.score.name) {
                Some((_, v)) => v.push(sc.score.accuracy),
                None => per_method.push((sc.score.name.clone(), vec![sc.score.accuracy])),
            }
        }
        splits_json.push(serde_json::json!({ "seed": seed, "train_images": train.len(), "test_images": test.len(), "accuracy": acc }));
        if first_best.is_none() {
            first_best = Some((scores[0].score.clone(), test.len()));
        }
    }
    let (best, n_test) = first_best.context("no split")?;
    let names: Vec<&str> = folder.classes.iter().map(|s| s.as_str()).collect();
    println!(
        "\nconfusion matrix of {} on split seed {} ({n_test} test images; rows: truth, columns: prediction):\n{}",
        best.name,
        args.seed,
        best.confusion.to_text(Some(&names))
    );
    let mut summary = serde_json::Map::new();
    if args.splits > 1 {
        println!("\nmean ± sd over {} splits:", args.splits);
    }
    for (name, v) in &per_method {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let sd = if v.len() > 1 {
            (v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        if args.splits > 1 {
            println!("  {name:<32} {mean:.4} ± {sd:.4}");
        }
        summary.insert(name.clone(), serde_json::json!({ "mean": mean, "sd": sd }));
    }
    std::fs::create_dir_all(&args.out)?;
    let cm_path = args.out.join("confusion.png");
    best.confusion.save_png(&cm_path, 24)?;
    let seconds = start.elapsed().as_secs_f64();
    println!("wrote {}\ntotal time {seconds:.0} s", cm_path.display());
    if let Some(path) = &args.json {
        let j = serde_json::json!({ "dataset": args.dataset, "method": "textons", "data": dir, "images": images.len(),
            "classes": classes, "train_per_class": train_per_class, "config": format!("{cfg:?}"), "seed": args.seed,
            "splits": splits_json, "mean_sd": summary, "seconds": seconds });
        std::fs::write(path, serde_json::to_string_pretty(&j)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
