//! The BSDS benchmark on a few real val images (skips when the data is absent).

#[path = "common/bsds_loader.rs"]
mod bsds_loader;

use ndarray::Array2;
use vae_vision::classical::{canny, canny_nms, canny_soft, rgb_to_gray};
use vae_vision::metrics::{evaluate_bsds, evaluate_image, BsdsConfig};

fn first_images(n: usize) -> Option<Vec<bsds_loader::BsdsImage>> {
    let dir = bsds_loader::data_root().join("bsds500/val");
    if !dir.is_dir() {
        eprintln!(
            "skipping: no BSDS500 val folder at {} (set VAE_DATA_DIR)",
            dir.display()
        );
        return None;
    }
    let ids = bsds_loader::list_ids(&dir).expect("list val");
    Some(
        ids.iter()
            .take(n)
            .map(|id| bsds_loader::load(&dir, id).expect("load"))
            .collect(),
    )
}

#[test]
fn a_human_map_is_fully_precise_against_all_annotators() {
    let Some(images) = first_images(2) else {
        return;
    };
    let one = BsdsConfig {
        thresholds: 1,
        ..BsdsConfig::default()
    };
    for im in &images {
        let pred = im.boundaries[0].mapv(|b| if b { 1.0f32 } else { 0.0 });
        let r = evaluate_image(pred.view(), &im.boundaries, &one).unwrap();
        // Every (thinned) pixel of annotator 1's map matches itself at distance 0.
        assert!(r.sum_p[0] > 500, "{}: {} pixels", im.id, r.sum_p[0]);
        assert_eq!(r.cnt_p[0], r.sum_p[0], "{}", im.id);
        // Recall sums over all annotators, so it is below 1 but well above 1/K.
        let recall = r.cnt_r[0] as f64 / r.sum_r[0] as f64;
        let k = im.boundaries.len() as f64;
        assert!(
            recall > 1.0 / k && recall < 1.0,
            "{}: recall {recall}",
            im.id
        );
    }
}

#[test]
fn soft_canny_threshold_is_binary_canny_and_scores_sensibly() {
    let Some(images) = first_images(2) else {
        return;
    };
    let grays: Vec<Array2<f32>> = images
        .iter()
        .map(|im| rgb_to_gray(im.image.view()).unwrap())
        .collect();
    let gts: Vec<Vec<Array2<bool>>> = images.iter().map(|im| im.boundaries.clone()).collect();
    // One threshold (0.5): the soft map and binary Canny at high = 0.5 M give equal counts.
    let one = BsdsConfig {
        thresholds: 1,
        ..BsdsConfig::default()
    };
    let g = &grays[0];
    let soft = canny_soft(g.view(), 2.0, 0.4, 100).unwrap();
    let m = canny_nms(g.view(), 2.0)
        .unwrap()
        .iter()
        .cloned()
        .fold(0.0f32, f32::max);
    let bin = canny(g.view(), 2.0, 0.4 * 0.5 * m, 0.5 * m)
        .unwrap()
        .mapv(|b| if b { 1.0f32 } else { 0.0 });
    let a = evaluate_image(soft.view(), &gts[0], &one).unwrap();
    let b = evaluate_image(bin.view(), &gts[0], &one).unwrap();
    assert_eq!(
        (a.cnt_r.clone(), a.cnt_p.clone(), a.sum_p.clone()),
        (b.cnt_r, b.cnt_p, b.sum_p)
    );
    assert!(a.sum_p[0] > 0);
    // The full protocol on two images: Canny is a real edge detector (published ODS on
    // the test split: 0.611), far above a constant map.
    let preds: Vec<Array2<f32>> = grays
        .iter()
        .map(|g| canny_soft(g.view(), 2.0, 0.4, 100).unwrap())
        .collect();
    let rep = evaluate_bsds(&preds, &gts, &BsdsConfig::default()).unwrap();
    eprintln!(
        "canny on 2 val images: ODS {:.3} OIS {:.3} AP {:.3}",
        rep.ods.f, rep.ois.f, rep.ap
    );
    assert!(rep.ods.f > 0.45 && rep.ods.f < 0.9, "ODS {}", rep.ods.f);
    assert!(
        rep.ois.f >= rep.ods.f - 0.02,
        "OIS {} vs ODS {}",
        rep.ois.f,
        rep.ods.f
    );
}
