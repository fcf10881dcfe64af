//! Heap use of training the `seed` preset at batch 128. The bar (peak RSS below
//! 300 MB) is for the whole `train_vae` process; this test bounds its largest part with a
//! counting allocator, so a regression shows here before it shows in `/usr/bin/time`.
//!
//! - Building the model and training two steps (zero_grad, forward, backward, Adam) may
//!   peak at most `TRAIN_BUDGET` above the heap before the model existed. That holds the
//!   parameters, gradients and two Adam moments (16 bytes per parameter: 84 MB for the
//!   seed preset), the layer caches of one step (each layer's input; the ReLUs keep only a
//!   byte mask) and the convolution layers' output and scratch buffers; about 170 MB
//!   measured. 200 MB leaves the 300 MB bar room for the MNIST training set as `u8`
//!   (47 MB), code, thread stacks and allocator slack.
//! - Writing a checkpoint streams tensor by tensor and moves the weights and moments
//!   instead of copying them: at most the largest tensor's bytes plus 1 MiB above the
//!   heap before the save.
//!
//! One test in its own binary: the counters are process-wide.

#[path = "../../vae-data/tests/common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{CURRENT, PEAK};
use ndarray::Array4;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::Ordering::SeqCst;
use vae_core::{Preset, TrainConfig, Trainer, Vae, VaeConfig};
use vae_tensor::{num_params, Parameterized};

/// Peak heap of model + optimizer + a batch-128 step, above the heap before the model.
const TRAIN_BUDGET: usize = 200_000_000;

/// Runs `f` and returns how far the heap rose above its level before `f`.
fn rise(f: impl FnOnce()) -> usize {
    let before = CURRENT.load(SeqCst);
    PEAK.store(before, SeqCst);
    f();
    PEAK.load(SeqCst) - before
}

#[test]
fn a_seed_step_and_a_checkpoint_stay_within_budget() {
    let cfg = VaeConfig {
        preset: Preset::Seed,
        latent: 2,
        ..VaeConfig::default()
    };
    let mut rng = StdRng::seed_from_u64(0);
    let x = Array4::from_shape_simple_fn((128, 1, 28, 28), || rng.random::<f32>());
    let (mut trainer, mut params, mut largest) = (None, 0, 0);
    let train_peak = rise(|| {
        let mut vae = Vae::new(cfg, &mut rng).unwrap();
        params = num_params(&mut vae);
        vae.visit_params("", &mut |_, p| largest = largest.max(p.value.len() * 4));
        let tcfg = TrainConfig {
            batch_size: 128,
            epochs: 2,
            progress: false,
            ..TrainConfig::default()
        };
        let mut t = Trainer::new(vae, tcfg).unwrap();
        // One step per epoch; the first creates Adam's moments.
        t.train_epoch(&x, None).unwrap();
        t.train_epoch(&x, None).unwrap();
        trainer = Some(t);
    });
    let mut trainer = trainer.unwrap();
    assert!(
        train_peak <= TRAIN_BUDGET,
        "model, Adam and a batch-128 step peaked at {:.1} MB of heap (budget {:.1} MB)",
        train_peak as f64 / 1e6,
        TRAIN_BUDGET as f64 / 1e6
    );
    assert!(train_peak >= 16 * params, "{train_peak} < 16 x {params}");

    // Weights and moments are moved into the checkpoint, the file streamed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.safetensors");
    let save_rise = rise(|| trainer.save(&path).unwrap());
    assert!(
        save_rise <= largest + (1 << 20),
        "saving a checkpoint allocated {save_rise} bytes, more than the largest tensor \
         ({largest} bytes) plus 1 MiB"
    );
    assert!(std::fs::metadata(&path).unwrap().len() as usize >= 12 * params);
    eprintln!(
        "seed b128: training peak {:.1} MB, checkpoint save +{:.1} MB",
        train_peak as f64 / 1e6,
        save_rise as f64 / 1e6
    );
}
