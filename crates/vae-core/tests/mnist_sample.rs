//! A short real-data run on the repository's 10k-digit MNIST sample (skipped with a printed
//! reason when the folder is absent): one epoch on 1,000 digits must improve the test ELBO
//! and the importance-weighted bound must be at least as tight as the ELBO.

use rand::rngs::StdRng;
use rand::SeedableRng;
use vae_core::{train, Binarization, IwaeConfig, Preset, TrainConfig, Trainer, Vae, VaeConfig};
use vae_data::location::resolve_data_dir;
use vae_data::mnist::{load_mnist, Split};

#[test]
fn one_epoch_on_real_digits_improves_the_elbo() {
    let dir = match resolve_data_dir(None, "mnist-sample") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("skipping: no mnist-sample ({e})");
            return;
        }
    };
    let train_set = load_mnist(&dir, Split::Train)
        .unwrap()
        .subset(&(0..1000).collect::<Vec<_>>())
        .unwrap();
    let test_set = load_mnist(&dir, Split::Test)
        .unwrap()
        .subset(&(0..200).collect::<Vec<_>>())
        .unwrap();
    let cfg = VaeConfig {
        latent: 8,
        preset: Preset::Mlp { hidden: vec![128] },
        ..VaeConfig::default()
    };
    let mut vae = Vae::new(cfg, &mut StdRng::seed_from_u64(0)).unwrap();
    let before = train::evaluate(&mut vae, &test_set, Binarization::Dynamic, 0)
        .unwrap()
        .neg_elbo();
    let tc = TrainConfig {
        epochs: 1,
        batch_size: 50,
        binarization: Binarization::Dynamic,
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(vae, tc).unwrap();
    let stats = t.fit(&train_set, Some(&test_set), |_| {}).unwrap();
    let after = stats[0].test_neg_elbo.unwrap();
    assert!(
        after < before - 100.0,
        "test -ELBO {before:.1} -> {after:.1}"
    );
    // On the same 20 images and the same binary draws, the bound with K = 64 is tighter
    // than the one-sample ELBO (averaged over many ELBO draws).
    let few = test_set.subset(&(0..20).collect::<Vec<_>>()).unwrap();
    let mut xb = few.images.clone();
    Binarization::Dynamic
        .apply(&mut xb, &mut StdRng::seed_from_u64(5))
        .unwrap();
    let elbo: f64 = (0..20)
        .map(|s| {
            train::evaluate(t.vae(), &xb, Binarization::None, s)
                .unwrap()
                .neg_elbo()
        })
        .sum::<f64>()
        / 20.0;
    let icfg = IwaeConfig {
        k: 64,
        chunk: 64,
        seed: 0,
        binarization: Binarization::None,
    };
    let nll = vae_core::log_likelihood(t.vae(), &xb, &icfg).unwrap().nll();
    eprintln!("20 images: -ELBO {elbo:.2}, IWAE K=64 NLL {nll:.2}");
    assert!(
        nll.is_finite() && nll < elbo,
        "IWAE NLL {nll:.2} vs -ELBO {elbo:.2}"
    );
}
