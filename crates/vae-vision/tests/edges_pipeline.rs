//! The edge pipeline end to end on a tiny BSDS-style split folder written to a temp dir
//! (always runs), and the learned head's input stage on a real val image (skips when the
//! data is absent).

use image::{GrayImage, Luma, Rgb, RgbImage};
use rand::{rngs::StdRng, SeedableRng};
use vae_data::bsds::{bsds_ids, load_bsds_image};
use vae_vision::edges::{
    classical_map, edge_map, prepare_samples, train_edge_net, EdgeNet, EdgeNetConfig,
    EdgeTrainConfig, Method,
};
use vae_vision::metrics::{evaluate_bsds, BsdsConfig};

/// Writes `n` 40×36 images with a bright square on a dark background, the square's
/// outline as boundary (two annotators) and its inside/outside as segments.
fn write_split(dir: &std::path::Path, n: usize) {
    for i in 0..n {
        let (x0, y0, s) = (6 + i as u32 * 2, 8, 16);
        let inside = |x: u32, y: u32| x >= x0 && x < x0 + s && y >= y0 && y < y0 + s;
        let on_edge = |x: u32, y: u32| {
            inside(x, y) && (x == x0 || x == x0 + s - 1 || y == y0 || y == y0 + s - 1)
        };
        let img = RgbImage::from_fn(40, 36, |x, y| {
            if inside(x, y) {
                Rgb([220, 200, 90])
            } else {
                Rgb([30, 60, 90])
            }
        });
        img.save(dir.join(format!("{i}.jpg"))).unwrap();
        for k in 1..=2 {
            GrayImage::from_fn(40, 36, |x, y| Luma([1 + inside(x, y) as u8]))
                .save(dir.join(format!("{i}_seg{k}.png")))
                .unwrap();
            GrayImage::from_fn(40, 36, |x, y| Luma([255 * on_edge(x, y) as u8]))
                .save(dir.join(format!("{i}_bnd{k}.png")))
                .unwrap();
        }
    }
}

#[test]
fn classical_and_learned_maps_on_a_synthetic_split() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), 3);
    let ids = bsds_ids(tmp.path()).unwrap();
    let images: Vec<_> = ids
        .iter()
        .map(|id| load_bsds_image(tmp.path(), id).unwrap())
        .collect();
    let gts: Vec<_> = images.iter().map(|im| im.boundaries.clone()).collect();
    let cfg = BsdsConfig::default();
    // Canny finds the squares' outlines (JPEG noise aside).
    let canny: Vec<_> = images
        .iter()
        .map(|im| classical_map(Method::Canny, im.image.view()).unwrap())
        .collect();
    let rep = evaluate_bsds(&canny, &gts, &cfg).unwrap();
    assert!(rep.ods.f > 0.8, "canny ODS {}", rep.ods.f);
    // A few training steps of a small head run and give maps the benchmark accepts.
    let samples = prepare_samples(&images, 0.5).unwrap();
    let net_cfg = EdgeNetConfig {
        fine: 4,
        enc1: 4,
        enc2: 8,
        mid: 4,
        head: 8,
        dilations: vec![2],
        leaky_slope: 0.1,
        deep: 0,
    };
    let mut net = EdgeNet::new(net_cfg, &mut StdRng::seed_from_u64(0)).unwrap();
    let tcfg = EdgeTrainConfig {
        steps: 5,
        batch: 2,
        crop: 32,
        ..EdgeTrainConfig::default()
    };
    let hist = train_edge_net(&mut net, &samples, &tcfg, |_| {}).unwrap();
    assert_eq!(hist.len(), 5);
    let maps: Vec<_> = images
        .iter()
        .map(|im| edge_map(&mut net, im.image.view()).unwrap())
        .collect();
    assert_eq!(maps[0].dim(), (36, 40));
    let rep = evaluate_bsds(&maps, &gts, &cfg).unwrap();
    assert!(rep.ods.f.is_finite() && rep.ods.f > 0.0);
}

#[test]
fn real_val_image_gives_inputs_and_targets() {
    let root = std::env::var_os("VAE_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
        });
    let dir = root.join("bsds500/val");
    if !dir.is_dir() {
        eprintln!(
            "skipping: no BSDS500 val folder at {} (set VAE_DATA_DIR)",
            dir.display()
        );
        return;
    }
    let id = bsds_ids(&dir).unwrap().remove(0);
    let im = load_bsds_image(&dir, &id).unwrap();
    let s = prepare_samples(std::slice::from_ref(&im), 0.3).unwrap();
    let (c, h, w) = s[0].input.dim();
    assert_eq!((c, h, w), (6, im.height(), im.width()));
    let pos = s[0].target.iter().filter(|&&t| t == 1).count();
    let neg = s[0].target.iter().filter(|&&t| t == 0).count();
    // Boundaries are a few percent of the pixels of a BSDS image.
    assert!(
        pos > 100 && pos * 10 < neg,
        "{pos} edge pixels, {neg} non-edge"
    );
}
