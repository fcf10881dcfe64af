//! The pictures a person wants to see after training, written in one call.

use crate::error::Result;
use crate::impute::{impute, mask_random, mask_top_half, ImputationReport};
use crate::model::Vae;
use crate::png::{line_plot, save_grid, save_png, scatter};
use crate::sample::{interpolate, manifold_2d, sample_prior, traversal};
use crate::train::EpochStats;
use ndarray::{concatenate, Array2, Array3, Array4, Axis};
use rand::Rng;
use std::path::{Path, PathBuf};

/// What [`write_gallery`] produced.
#[derive(Debug, Clone)]
pub struct Gallery {
    /// `(what it shows, file)` for every PNG written.
    pub files: Vec<(String, PathBuf)>,
    /// Imputation with the top half of each image missing.
    pub impute_top_half: ImputationReport,
    /// Imputation with 50% of the pixels missing at random.
    pub impute_random_half: ImputationReport,
}

fn rows(x: &Array4<f32>, idx: &[usize]) -> Array4<f32> {
    x.select(Axis(0), idx)
}

/// Writes reconstructions, prior samples, interpolations, a latent traversal (or the 2-D
/// manifold), a latent scatter coloured by label, imputations and the loss curve into
/// `out` (created if needed). `test` are images in `[0, 1]`, `labels` their classes (may
/// be empty: the scatter is then skipped), `fill` the per-pixel training mean used for the
/// imputation baseline.
pub fn write_gallery(
    vae: &mut Vae,
    test: &Array4<f32>,
    labels: &[u8],
    fill: &Array3<f32>,
    history: &[EpochStats],
    out: &Path,
    rng: &mut impl Rng,
) -> Result<Gallery> {
    std::fs::create_dir_all(out).map_err(|e| crate::CoreError::io(out, e))?;
    let mut files = Vec::new();
    let put = |files: &mut Vec<(String, PathBuf)>,
               what: &str,
               name: &str,
               imgs: &Array4<f32>,
               cols: usize|
     -> Result<()> {
        let p = out.join(name);
        save_grid(imgs, cols, 2, &p)?;
        files.push((what.to_string(), p));
        Ok(())
    };
    let n = test.dim().0.min(16);
    let first: Vec<usize> = (0..n).collect();
    let x = rows(test, &first);
    let recon = vae.reconstruct(&x)?;
    let pairs = concatenate(Axis(0), &[x.view(), recon.view()]).expect("same image shape");
    put(
        &mut files,
        "reconstructions (top: test images, bottom: decode of the posterior mean)",
        "reconstructions.png",
        &pairs,
        n,
    )?;
    put(
        &mut files,
        "samples from the prior",
        "samples.png",
        &sample_prior(vae, 64, rng)?,
        8,
    )?;

    let mut lines = Vec::new();
    for k in 0..8.min(n / 2) {
        lines.push(interpolate(
            vae,
            &rows(test, &[2 * k]),
            &rows(test, &[2 * k + 1]),
            10,
        )?);
    }
    if !lines.is_empty() {
        let views: Vec<_> = lines.iter().map(|a| a.view()).collect();
        let grid = concatenate(Axis(0), &views).expect("same image shape");
        put(
            &mut files,
            "interpolations between pairs of test images (one per row)",
            "interpolations.png",
            &grid,
            10,
        )?;
    }
    if vae.latent() == 2 {
        put(
            &mut files,
            "the 2-D latent manifold over [-3, 3]^2",
            "manifold.png",
            &manifold_2d(vae, 20, 3.0)?,
            20,
        )?;
    } else {
        let dims = vae.latent().min(10);
        let (mu, _) = vae.encode(&rows(test, &[0]))?;
        let base: Vec<f32> = mu.row(0).to_vec();
        let t = traversal(vae, &base, dims, 11, 3.0)?;
        put(
            &mut files,
            "latent traversal: row i moves dimension i over [-3, 3] from a test image's mean",
            "traversal.png",
            &t,
            11,
        )?;
    }
    if !labels.is_empty() {
        let m = test.dim().0.min(labels.len()).min(5000);
        let mut mus = Vec::new();
        for s in (0..m).step_by(crate::data::EVAL_BATCH) {
            let idx: Vec<usize> = (s..(s + crate::data::EVAL_BATCH).min(m)).collect();
            mus.push(vae.encode(&rows(test, &idx))?.0);
        }
        let views: Vec<_> = mus.iter().map(|a| a.view()).collect();
        let mu: Array2<f32> = concatenate(Axis(0), &views).expect("same latent size");
        let p = out.join("latent_scatter.png");
        save_png(&scatter(&mu, &labels[..m], 512)?, &p)?;
        files.push((
            "posterior means (first two latent dims) coloured by label".into(),
            p,
        ));
    }

    let m = test.dim().0.min(1000);
    let xi = rows(test, &(0..m).collect::<Vec<_>>());
    let shape = vae.config().input_shape;
    let (top_mask, random_mask) = (mask_top_half(m, shape), mask_random(m, shape, 0.5, rng));
    let impute_top_half = impute(vae, &xi, &top_mask, fill, 10)?;
    let impute_random_half = impute(vae, &xi, &random_mask, fill, 10)?;
    let shown: Vec<usize> = (0..n.min(8)).collect();
    for (r, mask, what, name) in [
        (
            &impute_top_half,
            &top_mask,
            "top half",
            "impute_top_half.png",
        ),
        (
            &impute_random_half,
            &random_mask,
            "50% at random",
            "impute_random_half.png",
        ),
    ] {
        let orig = rows(&xi, &shown);
        let observed = &orig * &rows(mask, &shown);
        let imputed = rows(&r.imputed, &shown);
        let grid = concatenate(Axis(0), &[observed.view(), imputed.view(), orig.view()])
            .expect("same shape");
        put(
            &mut files,
            &format!("imputation, {what} missing (rows: observed, imputed, truth)"),
            name,
            &grid,
            shown.len(),
        )?;
    }

    if !history.is_empty() {
        let train: Vec<f64> = history.iter().map(|s| s.train_loss).collect();
        let test: Vec<f64> = history
            .iter()
            .map(|s| s.test_neg_elbo.unwrap_or(f64::NAN))
            .collect();
        let p = out.join("loss_curve.png");
        save_png(&line_plot(&[train, test], 640, 400)?, &p)?;
        files.push((
            "loss per epoch (blue: train loss, orange: test -ELBO)".into(),
            p,
        ));
    }
    Ok(Gallery {
        files,
        impute_top_half,
        impute_random_half,
    })
}
