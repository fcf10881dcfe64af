//! Trainer behaviour on small synthetic data: learning, exact resume, NaN guard.

use ndarray::Array4;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vae_core::checkpoint::{collect_weights, Checkpoint};
use vae_core::{Binarization, CoreError, Preset, TrainConfig, Trainer, Vae, VaeConfig};

/// `n` 6×6 images, each a random horizontal or vertical bar with a little noise.
fn bars(n: usize, seed: u64) -> Array4<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut x = Array4::zeros((n, 1, 6, 6));
    for i in 0..n {
        let k = rng.random_range(0..6);
        let vertical = rng.random::<bool>();
        for j in 0..6 {
            let (r, c) = if vertical { (j, k) } else { (k, j) };
            x[[i, 0, r, c]] = 1.0;
        }
    }
    x.mapv_inplace(|v| 0.05 + 0.9 * v);
    x
}

fn cfg() -> VaeConfig {
    VaeConfig {
        input_shape: [1, 6, 6],
        latent: 2,
        preset: Preset::Mlp { hidden: vec![32] },
        ..VaeConfig::default()
    }
}

fn tcfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        lr: 3e-3,
        seed: 9,
        binarization: Binarization::Dynamic,
        ..TrainConfig::default()
    }
}

#[test]
fn training_lowers_the_test_loss() {
    let (train, test) = (bars(256, 1), bars(64, 2));
    let vae = Vae::new(cfg(), &mut StdRng::seed_from_u64(0)).unwrap();
    let mut t = Trainer::new(
        vae,
        TrainConfig {
            binarization: Binarization::None,
            ..tcfg(8)
        },
    )
    .unwrap();
    let hist = t.fit(&train, Some(&test), |_| {}).unwrap();
    assert_eq!(hist.len(), 8);
    let first = hist[0].test_neg_elbo.unwrap();
    let last = hist[7].test_neg_elbo.unwrap();
    // 36 pixels at p = 0.05/0.95 cost at least 36·H(0.05) ≈ 7.2 nats; a useless model ≈ 25.
    assert!(last < 0.8 * first, "test -ELBO {first:.2} -> {last:.2}");
    assert_eq!(t.step(), 8 * 16);
}

#[test]
fn resume_continues_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let train = bars(100, 3); // 100 / 16: the last batch is partial

    let vae = Vae::new(cfg(), &mut StdRng::seed_from_u64(0)).unwrap();
    let mut straight = Trainer::new(vae, tcfg(2)).unwrap();
    straight.fit(&train, None, |_| {}).unwrap();

    let vae = Vae::new(cfg(), &mut StdRng::seed_from_u64(0)).unwrap();
    let mut first = Trainer::new(
        vae,
        TrainConfig {
            checkpoint: Some(path.clone()),
            ..tcfg(1)
        },
    )
    .unwrap();
    first.fit(&train, None, |_| {}).unwrap();
    drop(first);
    let mut resumed = Trainer::resume(&path, tcfg(2)).unwrap();
    assert_eq!((resumed.epoch(), resumed.step()), (1, 7));
    resumed.fit(&train, None, |_| {}).unwrap();

    assert_eq!(resumed.step(), straight.step());
    assert_eq!(
        collect_weights(resumed.vae()),
        collect_weights(straight.vae())
    );
    let losses = |t: &Trainer| {
        t.history()
            .iter()
            .map(|s| (s.epoch, s.train_loss))
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(&resumed), losses(&straight));
}

#[test]
fn nan_loss_names_the_step_and_keeps_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let good = bars(32, 4);
    let vae = Vae::new(cfg(), &mut StdRng::seed_from_u64(0)).unwrap();
    let tc = TrainConfig {
        checkpoint: Some(path.clone()),
        binarization: Binarization::None,
        ..tcfg(5)
    };
    let mut t = Trainer::new(vae, tc).unwrap();
    t.train_epoch(&good, None).unwrap();
    let saved = Checkpoint::load(&path).unwrap();

    let mut bad = good.clone();
    bad.fill(f32::NAN);
    let e = t.train_epoch(&bad, None).unwrap_err();
    match e {
        CoreError::Diverged { step, epoch, loss } => {
            assert_eq!(
                step, 2,
                "two good steps in epoch 1, the third is the first bad one"
            );
            assert_eq!(epoch, 1);
            assert!(loss.is_nan());
        }
        other => panic!("wrong error {other:?}"),
    }
    assert_eq!(
        Checkpoint::load(&path).unwrap(),
        saved,
        "checkpoint of the last good epoch intact"
    );
    assert_eq!(
        collect_weights(t.vae()),
        saved.weights,
        "weights not touched by the bad step"
    );
}

#[test]
fn resume_from_a_mismatched_checkpoint_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let vae = Vae::new(cfg(), &mut StdRng::seed_from_u64(0)).unwrap();
    let mut t = Trainer::new(vae, tcfg(1)).unwrap();
    t.save(&path).unwrap();
    let mut other = Vae::new(
        VaeConfig {
            preset: Preset::Mlp { hidden: vec![16] },
            ..cfg()
        },
        &mut StdRng::seed_from_u64(0),
    )
    .unwrap();
    let e = Checkpoint::load(&path)
        .unwrap()
        .apply_weights(&mut other, &path)
        .unwrap_err();
    match e {
        CoreError::CheckpointShape {
            tensor,
            expected,
            found,
            ..
        } => {
            assert_eq!(tensor, "encoder.fc1.weight");
            assert_eq!(expected, vec![16, 36]);
            assert_eq!(found, vec![32, 36]);
        }
        other => panic!("wrong error {other:?}"),
    }
}

#[test]
fn encode_and_decode_in_chunks_match_single_images() {
    let x = bars(300, 7); // more than EVAL_BATCH = 128, not a multiple of it
    let mut vae = Vae::new(cfg(), &mut StdRng::seed_from_u64(0)).unwrap();
    let (mu, lv) = vae.encode(&x).unwrap();
    assert_eq!(mu.dim(), (300, 2));
    for i in [0, 127, 128, 299] {
        let one = x.slice_axis(ndarray::Axis(0), (i..i + 1).into()).to_owned();
        let (m1, l1) = vae.encode(&one).unwrap();
        for j in 0..2 {
            assert!(
                (m1[[0, j]] - mu[[i, j]]).abs() < 1e-5 && (l1[[0, j]] - lv[[i, j]]).abs() < 1e-5
            );
        }
    }
    let out = vae.decode(&mu).unwrap();
    assert_eq!(out.dim(), (300, 1, 6, 6));
    let last = vae
        .decode(
            &mu.slice_axis(ndarray::Axis(0), (299..300).into())
                .to_owned(),
        )
        .unwrap();
    let diff = (&out.slice_axis(ndarray::Axis(0), (299..300).into()) - &last).mapv(f32::abs);
    assert!(diff.iter().all(|&d| d < 1e-5));
}

/// Two Adam steps of a small `seed`-preset model (12×12 inputs, batch 40: its dense,
/// ReLU, loss and optimizer loops are large enough to split over threads) give the same
/// bits with 1, 2 and 3 threads: every parallel loop uses fixed chunks and ordered sums.
#[test]
fn seed_steps_are_bit_identical_on_any_thread_count() {
    use vae_tensor::optim::{Adam, AdamConfig, Optimizer};
    use vae_tensor::Parameterized;
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let cfg = VaeConfig {
                input_shape: [1, 12, 12],
                latent: 2,
                preset: Preset::Seed,
                ..VaeConfig::default()
            };
            let mut rng = StdRng::seed_from_u64(5);
            let x = Array4::from_shape_simple_fn((40, 1, 12, 12), || rng.random::<f32>());
            let mut vae = Vae::new(cfg, &mut rng).unwrap();
            let mut adam = Adam::new(AdamConfig::adam(1e-3));
            let mut losses = Vec::new();
            for _ in 0..2 {
                vae_tensor::zero_grad(&mut vae);
                losses.push(vae.train_step(&x, 1.0, &mut rng).unwrap().loss());
                losses.push(vae_tensor::grad_norm(&mut vae));
                adam.step(&mut vae).unwrap();
            }
            let mut bits = Vec::new();
            vae.visit_params("", &mut |_, p| {
                bits.extend(p.value.iter().chain(p.grad.iter()).map(|v| v.to_bits()))
            });
            (losses.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), bits)
        })
    };
    let one = run(1);
    assert_eq!(run(2), one);
    assert_eq!(run(3), one);
}
