//! End-to-end gradient check of a whole VAE step: with a fixed ε the loss
//! `mean(recon + w·KL)` is a deterministic function of the weights, so every parameter's
//! analytic gradient from `Vae::backward` is compared with central differences.

use ndarray::{Array2, Array4};
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use vae_core::reparam::sample_eps;
use vae_core::{CoreError, Likelihood, Preset, Vae, VaeConfig, Variance};
use vae_tensor::{zero_grad, Parameterized};

/// Checks up to `per_tensor` coordinates of every parameter; returns the names checked and
/// the mismatches. The numeric side uses KL weight `numeric_kl_w` (0.7 = the analytic one).
fn gradcheck_vae(
    cfg: VaeConfig,
    n: usize,
    per_tensor: usize,
    seed: u64,
    numeric_kl_w: f32,
) -> (Vec<String>, Vec<String>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut vae = Vae::new(cfg.clone(), &mut rng).unwrap();
    let [c, h, w] = cfg.input_shape;
    let x = Array4::from_shape_simple_fn((n, c, h, w), || rng.random::<f32>());
    let eps: Array2<f32> = sample_eps(n, cfg.latent, &mut rng);
    let kl_w = 0.7;

    zero_grad(&mut vae);
    vae.forward_train_with_eps(&x, kl_w, eps.clone()).unwrap();
    vae.backward().unwrap();
    let mut grads = Vec::new();
    vae.visit_params("", &mut |name, p| {
        grads.push((name.to_string(), p.grad.clone()))
    });

    let loss = |vae: &mut Vae| {
        vae.forward_train_with_eps(&x, numeric_kl_w, eps.clone())
            .unwrap()
            .loss()
    };
    // A ReLU kink between θ − h and θ + h makes the central difference average two slopes.
    // The one-sided difference on the side without the kink still equals the analytic
    // gradient (up to O(h)), while a wrong gradient matches none of them. So a coordinate
    // passes when the central or one of the one-sided differences agrees, at h = 1e-3 or 2e-4.
    let close = |a: f64, n: f64| (a - n).abs() <= 2e-3 + 2e-2 * a.abs().max(n.abs());
    let mut failures = Vec::new();
    for (name, g) in &grads {
        let k = per_tensor.min(g.len());
        for i in sample(&mut rng, g.len(), k).into_iter() {
            let bump = |vae: &mut Vae, delta: f32| {
                vae.visit_params("", &mut |n, p| {
                    if n == name {
                        p.value.as_slice_mut().unwrap()[i] += delta;
                    }
                })
            };
            let analytic = g.as_slice().unwrap()[i] as f64;
            let l0 = loss(&mut vae);
            let mut tried = Vec::new();
            for h in [1e-3f32, 2e-4] {
                bump(&mut vae, h);
                let lp = loss(&mut vae);
                bump(&mut vae, -2.0 * h);
                let lm = loss(&mut vae);
                bump(&mut vae, h);
                let h = h as f64;
                tried.extend([(lp - lm) / (2.0 * h), (lp - l0) / h, (l0 - lm) / h]);
            }
            if !tried.iter().any(|&n| close(analytic, n)) {
                failures.push(format!(
                    "{name}[{i}]: analytic {analytic:+.6e} numeric {tried:?}"
                ));
            }
        }
    }
    (grads.into_iter().map(|(n, _)| n).collect(), failures)
}

fn check_vae(cfg: VaeConfig, n: usize, per_tensor: usize, seed: u64) -> Vec<String> {
    let (names, failures) = gradcheck_vae(cfg, n, per_tensor, seed, 0.7);
    assert!(
        failures.is_empty(),
        "gradient mismatches:\n{}",
        failures.join("\n")
    );
    names
}

#[test]
fn the_check_catches_a_wrong_gradient() {
    // Analytic gradient with KL weight 0.7, numeric with 1.0: the KL part is off by 30%.
    let cfg = VaeConfig {
        input_shape: [1, 4, 3],
        latent: 3,
        preset: Preset::Mlp { hidden: vec![7] },
        ..VaeConfig::default()
    };
    let (_, failures) = gradcheck_vae(cfg, 4, 12, 11, 1.0);
    assert!(
        failures.iter().any(|f| f.starts_with("mu_head")),
        "{failures:?}"
    );
}

#[test]
fn mlp_bernoulli_step_matches_finite_differences() {
    let cfg = VaeConfig {
        input_shape: [1, 4, 3],
        latent: 3,
        preset: Preset::Mlp { hidden: vec![7, 5] },
        ..VaeConfig::default()
    };
    let names = check_vae(cfg, 4, 12, 11);
    assert!(names.contains(&"encoder.fc1.weight".to_string()));
    assert!(names.contains(&"mu_head.weight".to_string()));
    assert!(names.contains(&"logvar_head.bias".to_string()));
    assert!(names.contains(&"decoder.out.weight".to_string()));
}

#[test]
fn mlp_learned_gaussian_step_matches_finite_differences() {
    let cfg = VaeConfig {
        input_shape: [2, 2, 3],
        latent: 2,
        preset: Preset::Mlp { hidden: vec![6] },
        likelihood: Likelihood::Gaussian(Variance::Learned { init_logvar: -0.5 }),
        ..VaeConfig::default()
    };
    let names = check_vae(cfg, 3, 12, 5);
    assert!(names.contains(&"likelihood.logvar".to_string()));
}

#[test]
fn wrong_decoder_fails_at_build_time() {
    use vae_tensor::init::Init;
    use vae_tensor::layers::{
        dense::Dense,
        reshape::{Flatten, Reshape},
        sequential::Sequential,
    };
    let mut rng = StdRng::seed_from_u64(0);
    let cfg = VaeConfig {
        input_shape: [1, 4, 4],
        latent: 2,
        preset: Preset::mlp(),
        ..VaeConfig::default()
    };
    let enc = Sequential::new().push("flatten", Flatten::new());
    let dec = Sequential::new()
        .push("fc", Dense::new(2, 15, Init::HeNormal, &mut rng).unwrap())
        .push("reshape", Reshape::new(vec![1, 3, 5]));
    let e = Vae::from_parts(cfg, enc, dec, &mut rng).unwrap_err();
    match e {
        CoreError::ArchitectureMismatch {
            input,
            decoder_output,
        } => {
            assert_eq!(input, vec![1, 4, 4]);
            assert_eq!(decoder_output, vec![1, 3, 5]);
        }
        other => panic!("wrong error {other:?}"),
    }
}

#[test]
fn bad_batches_are_typed_errors() {
    let mut rng = StdRng::seed_from_u64(0);
    let cfg = VaeConfig {
        input_shape: [1, 4, 4],
        latent: 2,
        preset: Preset::mlp(),
        ..VaeConfig::default()
    };
    let mut vae = Vae::new(cfg, &mut rng).unwrap();
    let e = vae.encode(&Array4::zeros((2, 1, 4, 5))).unwrap_err();
    assert!(matches!(e, CoreError::BadArgument { .. }));
    let e = vae.decode(&Array2::zeros((2, 3))).unwrap_err();
    assert!(matches!(e, CoreError::BadArgument { .. }));
    let e = vae.backward().unwrap_err();
    assert!(matches!(e, CoreError::Tensor(_)));
}

#[test]
fn seed_preset_step_matches_finite_differences() {
    let cfg = VaeConfig {
        input_shape: [1, 8, 8],
        latent: 2,
        preset: Preset::Seed,
        ..VaeConfig::default()
    };
    let names = check_vae(cfg, 2, 6, 21);
    for n in [
        "encoder.conv1.weight",
        "encoder.conv2.bias",
        "decoder.deconv1.weight",
        "decoder.deconv3.bias",
    ] {
        assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
    }
}

#[test]
fn conv_preset_gaussian_step_matches_finite_differences() {
    let cfg = VaeConfig {
        input_shape: [2, 8, 4],
        latent: 3,
        preset: Preset::Conv {
            channels: 3,
            hidden: 8,
        },
        likelihood: Likelihood::Gaussian(Variance::Fixed(0.5)),
        ..VaeConfig::default()
    };
    let names = check_vae(cfg, 3, 10, 4);
    assert!(names.contains(&"decoder.deconv2.weight".to_string()));
}

#[test]
fn seed_preset_has_the_reference_shapes() {
    let mut rng = StdRng::seed_from_u64(0);
    let mut vae = Vae::new(VaeConfig::default(), &mut rng).unwrap();
    let mut shapes = Vec::new();
    vae.visit_params("", &mut |n, p| {
        shapes.push((n.to_string(), p.value.shape().to_vec()))
    });
    let get = |name: &str| {
        shapes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .unwrap()
    };
    assert_eq!(get("encoder.conv1.weight"), vec![32, 1, 3, 3]);
    assert_eq!(get("encoder.conv2.weight"), vec![64, 32, 3, 3]);
    assert_eq!(get("encoder.fc.weight"), vec![128, 24 * 24 * 64]);
    assert_eq!(get("mu_head.weight"), vec![2, 128]);
    assert_eq!(get("decoder.fc2.weight"), vec![7 * 7 * 64, 128]);
    assert_eq!(get("decoder.deconv1.weight"), vec![64, 64, 3, 3]);
    assert_eq!(get("decoder.deconv2.weight"), vec![64, 32, 3, 3]);
    assert_eq!(get("decoder.deconv3.weight"), vec![32, 1, 3, 3]);
    // Same parameter count as the PyTorch reference model in ../shared/bench/torch_vae.py.
    let torch = 320 + 18_496 + 4_718_720 + 2 * 258 + 384 + 404_544 + 36_928 + 18_464 + 289;
    assert_eq!(vae_tensor::num_params(&mut vae), torch);
}

#[test]
fn custom_parts_cannot_be_cloned_from_the_preset() {
    use vae_tensor::init::Init;
    use vae_tensor::layers::{
        dense::Dense,
        reshape::{Flatten, Reshape},
        sequential::Sequential,
    };
    let mut rng = StdRng::seed_from_u64(0);
    let cfg = VaeConfig {
        input_shape: [1, 4, 4],
        latent: 2,
        preset: Preset::mlp(),
        ..VaeConfig::default()
    };
    let enc = Sequential::new()
        .push("flatten", Flatten::new())
        .push("fc1", Dense::new(16, 5, Init::HeNormal, &mut rng).unwrap());
    let dec = Sequential::new()
        .push("fc", Dense::new(2, 16, Init::HeNormal, &mut rng).unwrap())
        .push("reshape", Reshape::new(vec![1, 4, 4]));
    let mut vae = Vae::from_parts(cfg, enc, dec, &mut rng).unwrap();
    assert!(vae.reconstruct(&Array4::zeros((1, 1, 4, 4))).is_ok());
    let e = vae.try_clone().unwrap_err();
    assert!(
        matches!(
            e,
            CoreError::CheckpointShape { .. } | CoreError::CheckpointTensor { .. }
        ),
        "{e:?}"
    );
}
