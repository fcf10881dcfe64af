//! Canny and thinning against scikit-image 0.26 on three real BSDS500 crops.
//!
//! The fixtures (inputs and outputs) are made by `scripts/canny_reference.py`; see its
//! docstring to regenerate them.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use vae_vision::classical::{canny, thin};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load_gray(path: &Path) -> Array2<u8> {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_luma8();
    let (w, h) = img.dimensions();
    Array2::from_shape_vec((h as usize, w as usize), img.into_raw()).expect("shape")
}

#[test]
fn canny_agrees_with_scikit_image() {
    let dir = fixtures().join("canny");
    let manifest = std::fs::read_to_string(dir.join("manifest.csv")).expect("manifest");
    let mut cases = 0;
    for line in manifest.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let (input, sigma, low, high, output) = (
            f[0],
            f[1].parse::<f32>().unwrap(),
            f[2].parse::<f32>().unwrap(),
            f[3].parse::<f32>().unwrap(),
            f[4],
        );
        let img = load_gray(&dir.join(input)).mapv(|v| v as f32 / 255.0);
        let want = load_gray(&dir.join(output)).mapv(|v| v > 127);
        let got = canny(img.view(), sigma, low, high).unwrap();
        let n = want.len();
        let agree = got.iter().zip(want.iter()).filter(|(a, b)| a == b).count();
        let (ours, theirs) = (
            got.iter().filter(|&&b| b).count(),
            want.iter().filter(|&&b| b).count(),
        );
        eprintln!(
            "{output}: {agree}/{n} pixels agree; edge pixels ours {ours}, scikit-image {theirs}"
        );
        assert!(
            theirs > 100,
            "{output}: reference has too few edges to be a test"
        );
        // The bar is 99%. When this was written every pixel agreed on all six cases; the
        // only expected source of difference is f32 here vs f64 in scikit-image at exact
        // ties of the non-maximum suppression.
        assert!(
            agree as f64 >= 0.99 * n as f64,
            "{output}: only {agree}/{n} agree"
        );
        cases += 1;
    }
    assert_eq!(cases, 6);
}

#[test]
fn thin_equals_scikit_image_thin() {
    let dir = fixtures().join("thin");
    for id in ["101085", "101087", "102061"] {
        let bw = load_gray(&dir.join(format!("{id}_bw.png"))).mapv(|v| v > 127);
        let want = load_gray(&dir.join(format!("{id}_thin.png"))).mapv(|v| v > 127);
        let got = thin(bw.view());
        let diff = got.iter().zip(want.iter()).filter(|(a, b)| a != b).count();
        assert_eq!(
            diff, 0,
            "{id}: {diff} pixels differ from skimage.morphology.thin"
        );
        assert!(want.iter().filter(|&&b| b).count() > 100);
    }
}
