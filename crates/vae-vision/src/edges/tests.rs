//! Training, prediction and checkpoints of the edge head on tiny synthetic images.

use ndarray::{Array2, Array3};
use rand::{rngs::StdRng, SeedableRng};

use super::*;

/// `n` RGB images `[3, h, w]` with a vertical colour step at a per-image column, and the
/// matching targets (edge on the two columns beside the step).
fn step_images(n: usize, h: usize, w: usize) -> (Vec<Array3<f32>>, Vec<EdgeSample>) {
    let mut images = Vec::new();
    let mut samples = Vec::new();
    for i in 0..n {
        let col = w / 3 + (i * 5) % (w / 3);
        let rgb = Array3::from_shape_fn((3, h, w), |(c, _, x)| {
            if x < col {
                0.2 + 0.1 * c as f32
            } else {
                0.8 - 0.2 * c as f32
            }
        });
        let target = Array2::from_shape_fn((h, w), |(_, x)| (x + 1 == col || x == col) as i8);
        samples.push(EdgeSample {
            input: net_input(rgb.view()).unwrap(),
            target,
        });
        images.push(rgb);
    }
    (images, samples)
}

fn tiny() -> EdgeNetConfig {
    EdgeNetConfig {
        fine: 4,
        enc1: 4,
        enc2: 8,
        mid: 4,
        head: 8,
        dilations: vec![2],
        leaky_slope: 0.1,
        deep: 0,
    }
}

#[test]
fn training_lowers_the_loss_and_prediction_keeps_the_image_size() {
    let (images, samples) = step_images(4, 24, 28);
    let mut net = EdgeNet::new(tiny(), &mut StdRng::seed_from_u64(0)).unwrap();
    let cfg = EdgeTrainConfig {
        steps: 60,
        batch: 4,
        crop: 16,
        lr: 1e-2,
        ..EdgeTrainConfig::default()
    };
    let hist = train_edge_net(&mut net, &samples, &cfg, |_| {}).unwrap();
    let first: f64 = hist[..10].iter().map(|h| h.fused_loss).sum();
    let last: f64 = hist[50..].iter().map(|h| h.fused_loss).sum();
    assert!(last < 0.7 * first, "fused loss {first} -> {last}");
    // 23 x 27 is not a multiple of 4: padded inside, cropped back.
    let img = images[0]
        .slice_axis(ndarray::Axis(1), (0..23).into())
        .to_owned();
    let img = img.slice_axis(ndarray::Axis(2), (0..27).into()).to_owned();
    let p = predict(&mut net, img.view()).unwrap();
    assert_eq!(p.dim(), (23, 27));
    assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
    // The step (between columns 8 and 9 of image 0) is brighter than the flat far side.
    let col = 28 / 3;
    assert!(
        p[[12, col]] > p[[12, 24]],
        "{} vs {}",
        p[[12, col]],
        p[[12, 24]]
    );
    let e = edge_map(&mut net, img.view()).unwrap();
    assert_eq!(e.dim(), (23, 27));
}

#[test]
fn bad_training_settings_are_errors() {
    let (_, samples) = step_images(2, 16, 16);
    let mut net = EdgeNet::new(tiny(), &mut StdRng::seed_from_u64(0)).unwrap();
    for cfg in [
        EdgeTrainConfig {
            crop: 18,
            ..EdgeTrainConfig::default()
        },
        EdgeTrainConfig {
            crop: 20,
            ..EdgeTrainConfig::default()
        },
        EdgeTrainConfig {
            steps: 0,
            crop: 16,
            ..EdgeTrainConfig::default()
        },
    ] {
        assert!(train_edge_net(&mut net, &samples, &cfg, |_| {}).is_err());
    }
    assert!(train_edge_net(&mut net, &[], &EdgeTrainConfig::default(), |_| {}).is_err());
}

#[test]
fn checkpoint_round_trip_gives_the_same_maps() {
    let (images, _) = step_images(2, 32, 32);
    let vcfg = VaePretrainConfig {
        patches: 16,
        patch: 16,
        epochs: 1,
        channels: 4,
        latent: 2,
        seed: 1,
    };
    let (mut vae, _, loss) = pretrain_vae(&images, &vcfg, |_| {}).unwrap();
    assert!(loss.is_some_and(f64::is_finite));
    // With the stride-8 stage, so its weights and its configuration travel too.
    let cfg = EdgeNetConfig { deep: 4, ..tiny() };
    let net = EdgeNet::with_vae_encoder(cfg, &mut vae, &mut StdRng::seed_from_u64(2)).unwrap();
    let mut model = EdgeModel {
        net,
        vae: Some(vae),
        info: serde_json::json!({"note": "test"}),
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edges.safetensors");
    model.save(&path).unwrap();
    let mut back = EdgeModel::load(&path).unwrap();
    assert!(back.vae.is_some());
    assert_eq!(back.info["note"], "test");
    assert_eq!(back.net.config(), model.net.config());
    let a = predict(&mut model.net, images[0].view()).unwrap();
    let b = predict(&mut back.net, images[0].view()).unwrap();
    assert_eq!(a, b);
    // A file that is not an edge checkpoint is a typed error, not a panic.
    std::fs::write(&path, b"not a checkpoint").unwrap();
    assert!(EdgeModel::load(&path).is_err());
    assert!(EdgeModel::load(&dir.path().join("missing.safetensors")).is_err());
}

#[test]
fn targets_inputs_and_methods() {
    let a = Array2::from_shape_fn((2, 3), |(_, x)| x == 0);
    let b = Array2::from_shape_fn((2, 3), |(_, x)| x <= 1);
    let t = edge_targets(&[a.clone(), b], 1.0).unwrap();
    assert_eq!(t.row(0).to_vec(), vec![1, IGNORE, 0]);
    assert!(edge_targets(&[], 0.5).is_err());
    assert!(edge_targets(std::slice::from_ref(&a), 0.0).is_err());
    assert!(edge_targets(&[a, Array2::from_elem((3, 3), false)], 0.5).is_err());
    let x = net_input(Array3::from_elem((3, 2, 2), 0.5).view()).unwrap();
    assert_eq!(x.dim(), (INPUT_CHANNELS, 2, 2));
    // Mid grey: L = 53.4, a = b = 0.
    assert!((x[[3, 0, 0]] - 0.534).abs() < 1e-3 && x[[4, 0, 0]].abs() < 1e-3);
    assert!(net_input(Array3::zeros((1, 2, 2)).view()).is_err());
    for m in Method::CLASSICAL {
        assert_eq!(Method::from_name(m.name()).unwrap(), m);
    }
    assert!(Method::from_name("hed").is_err());
    assert!(classical_map(Method::Vae, Array3::zeros((3, 4, 4)).view()).is_err());
}

#[test]
fn augmented_training_of_the_stride8_network_and_multiscale_maps() {
    let (images, samples) = step_images(4, 24, 28);
    let cfg8 = EdgeNetConfig { deep: 4, ..tiny() };
    let mut net = EdgeNet::new(cfg8, &mut StdRng::seed_from_u64(0)).unwrap();
    assert_eq!(net.outputs(), 5);
    let cfg = EdgeTrainConfig {
        steps: 60,
        batch: 4,
        crop: 16,
        lr: 1e-2,
        scale_range: (0.75, 1.25),
        transpose: true,
        ..EdgeTrainConfig::default()
    };
    let hist = train_edge_net(&mut net, &samples, &cfg, |_| {}).unwrap();
    let first: f64 = hist[..10].iter().map(|h| h.fused_loss).sum();
    let last: f64 = hist[50..].iter().map(|h| h.fused_loss).sum();
    assert!(last < 0.8 * first, "fused loss {first} -> {last}");
    // Multi-scale prediction: [1] is plain prediction; other scales keep the image size.
    let img = images[0].view();
    assert_eq!(
        predict_multiscale(&mut net, img, &[1.0]).unwrap(),
        predict(&mut net, img).unwrap()
    );
    let p = predict_multiscale(&mut net, img, &[0.5, 1.0, 1.5]).unwrap();
    assert_eq!(p.dim(), (24, 28));
    assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
    let col = 28 / 3;
    assert!(
        p[[12, col]] > p[[12, 24]],
        "{} vs {}",
        p[[12, col]],
        p[[12, 24]]
    );
    assert_eq!(
        edge_map_multiscale(&mut net, img, &[0.5, 1.0])
            .unwrap()
            .dim(),
        (24, 28)
    );
    assert!(predict_multiscale(&mut net, img, &[]).is_err());
    assert!(predict_multiscale(&mut net, img, &[0.0]).is_err());
    // Dihedral test-time augmentation: 1 view is the multi-scale map; 2 views average it
    // with the left-right mirror's map mirrored back; 8 views of a non-square image keep
    // its shape (the transposed views are turned back), and the count is checked.
    assert_eq!(
        predict_dihedral(&mut net, img, &[1.0], 1).unwrap(),
        predict(&mut net, img).unwrap()
    );
    let mut mirrored = img;
    mirrored.invert_axis(ndarray::Axis(2));
    let mut back = predict(&mut net, mirrored.as_standard_layout().view()).unwrap();
    back.invert_axis(ndarray::Axis(1));
    let want = (predict(&mut net, img).unwrap() + &back) / 2.0;
    let got = predict_dihedral(&mut net, img, &[1.0], 2).unwrap();
    assert!(
        got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6),
        "two-view average differs"
    );
    let all8 = predict_dihedral(&mut net, img, &[1.0], 8).unwrap();
    assert_eq!(all8.dim(), (24, 28));
    assert!(all8[[12, col]] > all8[[12, 24]]);
    assert_eq!(
        edge_map_dihedral(&mut net, img, &[1.0], 4).unwrap().dim(),
        (24, 28)
    );
    assert!(predict_dihedral(&mut net, img, &[1.0], 0).is_err());
    assert!(predict_dihedral(&mut net, img, &[1.0], 9).is_err());
    // A time limit that has already passed stops training after its first step.
    let limited = EdgeTrainConfig {
        time_limit_s: Some(0.0),
        ..cfg.clone()
    };
    assert_eq!(
        train_edge_net(&mut net, &samples, &limited, |_| {})
            .unwrap()
            .len(),
        1
    );
    // stop_after replays the first N steps of the schedule and stops.
    let first3 = EdgeTrainConfig {
        stop_after: Some(3),
        ..cfg.clone()
    };
    assert_eq!(
        train_edge_net(&mut net, &samples, &first3, |_| {})
            .unwrap()
            .len(),
        3
    );
    // A crop that is not a multiple of 8, or a bad scale range, is an error.
    for bad in [
        EdgeTrainConfig {
            crop: 12,
            ..cfg.clone()
        },
        EdgeTrainConfig {
            scale_range: (1.5, 0.5),
            ..cfg.clone()
        },
        EdgeTrainConfig {
            scale_range: (0.0, 1.0),
            ..cfg.clone()
        },
    ] {
        assert!(train_edge_net(&mut net, &samples, &bad, |_| {}).is_err());
    }
}
