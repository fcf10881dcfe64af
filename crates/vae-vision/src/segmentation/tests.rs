//! Tests of the segmentation module: data generation, the head's gradients, training.

use ndarray::{Array2, Array3, Array4, ArrayD};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vae_tensor::gradcheck::{check_layer, GradCheckConfig};
use vae_tensor::layer::{zero_grad, Layer, Mode, Parameterized};
use vae_tensor::optim::{Adam, AdamConfig};

use super::*;

/// Five made-up 28×28 "digits": strokes of different shapes with soft edges.
fn fake_digits() -> (Array4<f32>, Vec<u8>) {
    let d = Array4::from_shape_fn((5, 1, 28, 28), |(i, _, y, x)| {
        let (cy, cx) = (y as f32 - 14.0, x as f32 - 14.0);
        let r = (cy * cy + cx * cx).sqrt();
        match i {
            0 => (1.0 - (r - 8.0).abs() / 3.0).max(0.0),
            1 => (1.0 - cx.abs() / 2.5).max(0.0) * (cy.abs() < 10.0) as u8 as f32,
            2 => (1.0 - (cy - cx).abs() / 3.0).max(0.0) * (r < 11.0) as u8 as f32,
            3 => (1.0 - cy.abs() / 2.0).max(0.0) * (cx.abs() < 9.0) as u8 as f32,
            _ => (1.0 - r / 6.0).max(0.0),
        }
    });
    (d, vec![0, 1, 7, 4, 9])
}

#[test]
fn digit_scenes_are_deterministic_and_labels_follow_ink() {
    let (d, l) = fake_digits();
    let a = digit_scenes(&d, &l, 12, 64, 4, &mut StdRng::seed_from_u64(3)).unwrap();
    let b = digit_scenes(&d, &l, 12, 64, 4, &mut StdRng::seed_from_u64(3)).unwrap();
    let c = digit_scenes(&d, &l, 12, 64, 4, &mut StdRng::seed_from_u64(4)).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.images, c.images);
    assert_eq!(a.num_classes, 11);
    let allowed = [0u8, 1, 2, 8, 5, 10];
    let mut digits_seen = 0;
    for (img, lab) in a.images.outer_iter().zip(a.labels.outer_iter()) {
        let mut any = false;
        for ((y, x), &v) in lab.indexed_iter() {
            let ink = img[[0, y, x]];
            // A pixel is labelled exactly when the ink there is above the threshold.
            assert_eq!(
                v > 0,
                ink > scenes::INK_THRESHOLD,
                "pixel ({y},{x}) ink {ink} label {v}"
            );
            assert!(
                allowed.contains(&v),
                "label {v} is not a digit of the set + 1"
            );
            any |= v > 0;
        }
        assert!(any, "every scene holds at least one digit");
        digits_seen += 1;
    }
    assert_eq!(digits_seen, 12);
    let freqs = a.class_frequencies();
    assert!((freqs.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(freqs[0] > 0.5, "mostly background");
}

#[test]
fn digit_scenes_on_real_mnist_sample() {
    let Ok(dir) = vae_data::location::resolve_data_dir(None, "mnist-sample") else {
        eprintln!("skipping: data/mnist-sample not found");
        return;
    };
    let m = vae_data::mnist::load_mnist(&dir, vae_data::mnist::Split::Test).unwrap();
    let s = digit_scenes(
        &m.images,
        &m.labels,
        8,
        64,
        4,
        &mut StdRng::seed_from_u64(0),
    )
    .unwrap();
    for (img, lab) in s.images.outer_iter().zip(s.labels.outer_iter()) {
        for ((y, x), &v) in lab.indexed_iter() {
            assert_eq!(v > 0, img[[0, y, x]] > scenes::INK_THRESHOLD);
        }
    }
}

#[test]
fn bad_scene_arguments_are_errors() {
    let (d, l) = fake_digits();
    let mut rng = StdRng::seed_from_u64(0);
    assert!(matches!(
        digit_scenes(&d, &l, 1, 20, 4, &mut rng),
        Err(crate::VisionError::InvalidParameter { .. })
    ));
    assert!(matches!(
        digit_scenes(&d, &l[..3], 1, 64, 4, &mut rng),
        Err(crate::VisionError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        digit_scenes(&d, &[0, 1, 2, 3, 12], 1, 64, 4, &mut rng),
        Err(crate::VisionError::LabelOutOfRange { .. })
    ));
}

/// A bank whose every image is one distinct constant grey level, so each mosaic pixel
/// tells which source image it came from.
fn constant_bank(classes: usize, per_class: usize) -> TextureBank {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for c in 0..classes {
        for j in 0..per_class {
            let v = (c * per_class + j + 1) as f32 / 256.0;
            images.push(Array2::from_elem((20 + j, 24), v));
            labels.push(c);
        }
    }
    TextureBank {
        images,
        labels,
        num_classes: classes,
    }
}

#[test]
fn mosaics_train_and_test_use_disjoint_source_images() {
    let bank = constant_bank(6, 5);
    let (train, test) = bank.split(3, &mut StdRng::seed_from_u64(1)).unwrap();
    let values = |b: &TextureBank| -> Vec<f32> { b.images.iter().map(|im| im[[0, 0]]).collect() };
    let (tv, sv) = (values(&train), values(&test));
    assert_eq!((tv.len(), sv.len()), (18, 12));
    assert!(
        tv.iter().all(|v| !sv.contains(v)),
        "an image is in both banks"
    );
    let mtrain = texture_mosaics(&train, 4, 32, None, &mut StdRng::seed_from_u64(2)).unwrap();
    let mtest = texture_mosaics(&test, 4, 32, None, &mut StdRng::seed_from_u64(2)).unwrap();
    for (m, own, own_bank) in [(&mtrain, &tv, &train), (&mtest, &sv, &test)] {
        for (img, lab) in m.images.outer_iter().zip(m.labels.outer_iter()) {
            let mut classes: Vec<u8> = lab.iter().copied().collect();
            classes.sort_unstable();
            classes.dedup();
            assert_eq!(classes.len(), 5, "five regions with five classes");
            for ((y, x), &l) in lab.indexed_iter() {
                let v = img[[0, y, x]];
                let k = own
                    .iter()
                    .position(|&o| o == v)
                    .expect("pixel from this bank");
                assert_eq!(
                    own_bank.labels[k], l as usize,
                    "label = class of the source image"
                );
            }
        }
    }
    let again = texture_mosaics(&train, 4, 32, None, &mut StdRng::seed_from_u64(2)).unwrap();
    assert_eq!(again, mtrain);
}

fn tiny_cfg() -> SegNetConfig {
    SegNetConfig {
        in_channels: 1,
        enc1: 2,
        enc2: 3,
        ctx: [3, 4],
        dilation: [2, 1],
        num_classes: 3,
    }
}

/// Projected loss `Σ r ⊙ net(x)` in f64 (eval mode).
fn projected(net: &mut SegNet, x: &ArrayD<f32>, r: &ArrayD<f32>) -> f64 {
    let y = net.forward(x.clone(), Mode::Eval).unwrap();
    y.iter()
        .zip(r.iter())
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

/// Kink-aware check of every parameter (as in vae-core's end-to-end check): a ReLU kink
/// between θ − h and θ + h makes the central difference average two slopes, but a one-sided
/// difference on the kink-free side still equals the analytic gradient, while a wrong
/// gradient matches none of them. Returns the mismatches.
fn param_mismatches(
    net: &mut SegNet,
    x: &ArrayD<f32>,
    r: &ArrayD<f32>,
    per_tensor: usize,
    rng: &mut StdRng,
) -> (usize, Vec<String>) {
    zero_grad(net);
    net.forward(x.clone(), Mode::Train).unwrap();
    net.backward(r.clone()).unwrap();
    let mut grads = Vec::new();
    net.visit_params("", &mut |n, p| grads.push((n.to_string(), p.grad.clone())));
    let close = |a: f64, n: f64| (a - n).abs() <= 2e-3 + 2e-2 * a.abs().max(n.abs());
    let mut failures = Vec::new();
    for (name, g) in &grads {
        let k = per_tensor.min(g.len());
        for i in rand::seq::index::sample(rng, g.len(), k).into_iter() {
            let bump = |net: &mut SegNet, d: f32| {
                net.visit_params("", &mut |n, p| {
                    if n == name {
                        p.value.as_slice_mut().unwrap()[i] += d;
                    }
                })
            };
            let analytic = g.as_slice().unwrap()[i] as f64;
            let l0 = projected(net, x, r);
            let mut tried = Vec::new();
            for h in [1e-2f32, 2e-3, 5e-4] {
                bump(net, h);
                let lp = projected(net, x, r);
                bump(net, -2.0 * h);
                let lm = projected(net, x, r);
                bump(net, h);
                let h = h as f64;
                tried.extend([(lp - lm) / (2.0 * h), (lp - l0) / h, (l0 - lm) / h]);
            }
            if !tried.iter().any(|&n| close(analytic, n)) {
                failures.push(format!(
                    "{name}[{i}]: analytic {analytic:+.5e} numeric {tried:?}"
                ));
            }
        }
    }
    (grads.len(), failures)
}

#[test]
fn segnet_backward_passes_gradcheck_including_skips() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut net = SegNet::new(tiny_cfg(), &mut rng).unwrap();
    net.visit_params("", &mut |n, p| {
        if n.ends_with("bias") {
            p.value.mapv_inplace(|_| rng.random_range(0.05f32..0.3));
        }
    });
    let x = ArrayD::from_shape_simple_fn(vec![2, 1, 8, 8], || rng.random_range(-1.0f32..1.0));
    // dL/dx through both skips (enc1 -> up2 and the full-resolution `fine` path) and the
    // dilated context path, by vae-tensor's checker.
    let cfg = GradCheckConfig {
        eps: 1e-3,
        rtol: 2e-2,
        atol: 2e-3,
        max_coords: 64,
    };
    let report = check_layer(&mut net, &x, &cfg, &mut rng).unwrap();
    assert_eq!(
        report.tensors.len(),
        1 + 14,
        "input + weight and bias of 7 layers"
    );
    assert!(report.tensors[0].passed, "{report}");
    // Every parameter, kink-aware.
    let r = ArrayD::from_shape_simple_fn(vec![2, 3, 8, 8], || rng.random_range(-1.0f32..1.0));
    let (n, failures) = param_mismatches(&mut net, &x, &r, 24, &mut rng);
    assert_eq!(n, 14);
    assert!(
        failures.is_empty(),
        "gradient mismatches:\n{}",
        failures.join("\n")
    );
}

#[test]
fn segnet_backward_is_linear_accumulates_and_needs_a_forward() {
    // Backward is linear in the upstream gradient, accumulates, and needs a fresh forward.
    let mut rng = StdRng::seed_from_u64(6);
    let mut net = SegNet::new(tiny_cfg(), &mut rng).unwrap();
    let x = ArrayD::from_shape_simple_fn(vec![1, 1, 8, 8], || rng.random_range(-1.0f32..1.0));
    let r = ArrayD::from_shape_simple_fn(vec![1, 3, 8, 8], || rng.random_range(-1.0f32..1.0));
    zero_grad(&mut net);
    net.forward(x.clone(), Mode::Train).unwrap();
    net.backward(r.clone()).unwrap();
    let mut fine_grad = None;
    net.visit_params("", &mut |n, p| {
        if n == "fine.weight" {
            fine_grad = Some(p.grad.clone())
        }
    });
    // Same loss, gradient of 2r: fine.weight's gradient must be exactly doubled (linear path).
    zero_grad(&mut net);
    net.forward(x.clone(), Mode::Train).unwrap();
    net.backward(r.mapv(|v| 2.0 * v)).unwrap();
    net.visit_params("", &mut |n, p| {
        if n == "fine.weight" {
            let want = fine_grad.as_ref().unwrap().mapv(|v| 2.0 * v);
            assert!(p
                .grad
                .iter()
                .zip(want.iter())
                .all(|(a, b)| (a - b).abs() <= 1e-5 * b.abs().max(1.0)));
        }
    });
    // Backward accumulates: a second backward without zeroing doubles the gradients.
    net.forward(x.clone(), Mode::Train).unwrap();
    net.backward(r.mapv(|v| 2.0 * v)).unwrap();
    net.visit_params("", &mut |n, p| {
        if n == "fine.weight" {
            let want = fine_grad.as_ref().unwrap().mapv(|v| 4.0 * v);
            assert!(p
                .grad
                .iter()
                .zip(want.iter())
                .all(|(a, b)| (a - b).abs() <= 1e-4 * b.abs().max(1.0)));
        }
    });
    // A second backward without a forward is an error, not stale math.
    assert!(net.backward(r).is_err());
}

#[test]
fn segnet_shapes_and_errors() {
    let mut net = SegNet::new(tiny_cfg(), &mut StdRng::seed_from_u64(0)).unwrap();
    assert_eq!(
        net.output_shape(&[2, 1, 12, 16]).unwrap(),
        vec![2, 3, 12, 16]
    );
    assert!(net.output_shape(&[2, 1, 10, 16]).is_err());
    assert!(net
        .forward(ndarray::ArrayD::zeros(vec![1, 2, 8, 8]), Mode::Eval)
        .is_err());
}

#[test]
fn segnet_takes_the_vae_encoder_convolutions() {
    let mut rng = StdRng::seed_from_u64(0);
    let vcfg = vae_core::VaeConfig {
        input_shape: [1, 8, 8],
        latent: 2,
        preset: vae_core::Preset::Conv {
            channels: 2,
            hidden: 8,
        },
        ..vae_core::VaeConfig::default()
    };
    let mut vae = vae_core::Vae::new(vcfg, &mut rng).unwrap();
    let mut cfg = tiny_cfg();
    cfg.enc2 = 4;
    let mut net = SegNet::with_vae_encoder(cfg, &mut vae, &mut rng).unwrap();
    let mut from_vae = Vec::new();
    vae.visit_params("", &mut |n, p| {
        if n.starts_with("encoder.conv") {
            from_vae.push(p.value.clone())
        }
    });
    let mut in_net = Vec::new();
    net.visit_params("", &mut |n, p| {
        if n.starts_with("enc") {
            in_net.push(p.value.clone())
        }
    });
    assert_eq!(from_vae, in_net);
    // Channel counts that do not match the VAE are an error, not a silent re-init.
    assert!(matches!(
        SegNet::with_vae_encoder(tiny_cfg(), &mut vae, &mut rng),
        Err(crate::VisionError::InvalidParameter { .. })
    ));
}

#[test]
fn segnet_overfits_two_images() {
    let mut rng = StdRng::seed_from_u64(9);
    let mut net = SegNet::new(
        SegNetConfig {
            ctx: [8, 8],
            ..tiny_cfg()
        },
        &mut rng,
    )
    .unwrap();
    let images = Array4::from_shape_fn((2, 1, 16, 16), |(i, _, y, x)| {
        if (y / 4 + x / 4 + i) % 2 == 0 {
            0.9
        } else {
            0.1
        }
    });
    let labels = Array3::from_shape_fn((2, 16, 16), |(i, y, x)| {
        if x < 8 {
            ((y / 4 + x / 4 + i) % 2) as u8
        } else {
            2
        }
    });
    let mut opt = Adam::new(AdamConfig::adam(1e-2));
    let w = class_weights(&[0.25, 0.25, 0.5], ClassWeighting::InverseSqrt);
    let first = train::train_step(&mut net, &mut opt, images.clone(), &labels, Some(&w)).unwrap();
    let mut last = first;
    for _ in 0..60 {
        last = train::train_step(&mut net, &mut opt, images.clone(), &labels, Some(&w)).unwrap();
    }
    assert!(last < 0.3 * first, "loss {first} -> {last}");
    let pred = predict(&mut net, &images, 2).unwrap();
    let r = score(&pred, &labels, 3, 1.0).unwrap();
    assert!(
        r.pixel_accuracy > 0.9,
        "train pixel accuracy {}",
        r.pixel_accuracy
    );
}

#[test]
fn scores_of_a_perfect_and_a_wrong_prediction() {
    let truth = Array3::from_shape_fn((2, 8, 8), |(_, y, x)| ((x >= 4) as u8) + ((y >= 4) as u8));
    let r = score(&truth, &truth, 3, 1.0).unwrap();
    assert_eq!(
        (r.pixel_accuracy, r.mean_iou, r.boundary_f),
        (1.0, 1.0, 1.0)
    );
    let zeros = Array3::zeros((2, 8, 8));
    let r = score(&zeros, &truth, 3, 1.0).unwrap();
    assert_eq!(r.pixel_accuracy, 0.25);
    assert_eq!(r.per_class_iou[1], Some(0.0));
    assert!(score(&zeros, &Array3::zeros((2, 8, 4)), 3, 1.0).is_err());
}

#[test]
fn class_weights_balance_pixel_mass() {
    let f = [0.81, 0.09, 0.1, 0.0];
    let w = class_weights(&f, ClassWeighting::InverseSqrt);
    let mean: f64 = w.iter().zip(&f).map(|(&w, &f)| w as f64 * f).sum();
    assert!((mean - 1.0).abs() < 1e-5);
    assert!(w[1] > w[0] && w[3] == 0.0);
    assert_eq!(class_weights(&f, ClassWeighting::None), vec![1.0; 4]);
}

#[test]
fn upsampled_labels_and_overlay_png() {
    let l = Array3::from_shape_fn((1, 2, 2), |(_, y, x)| (2 * y + x) as u8);
    let u = train::upsample_labels(&l, 2);
    assert_eq!(u[[0, 3, 3]], 3);
    assert_eq!(u[[0, 1, 2]], 1);
    // (vae-vision has no tempfile dev-dependency: a uniquely named file in the temp dir.)
    let p = std::env::temp_dir().join(format!("vae-seg-panel-{}.png", std::process::id()));
    let img = Array4::from_elem((1, 1, 4, 4), 0.5f32);
    overlay::save_overlay_panel(&p, &img, &u, &u, 3, Some(0)).unwrap();
    let png = image::open(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    assert_eq!((png.width(), png.height()), (3 * 4 + 4, 4 + 2));
}
