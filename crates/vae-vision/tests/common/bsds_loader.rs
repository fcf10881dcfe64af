//! A small private BSDS500 loader for tests and examples, until `vae_data::bsds` lands.
//! Reads `<dir>/<id>.jpg` and `<dir>/<id>_bnd<k>.png` (k = 1, 2, ... until one is missing).

use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3};

/// One BSDS image with its human boundary maps.
#[allow(dead_code)]
pub struct BsdsImage {
    pub id: String,
    /// `[3, h, w]` in `[0, 1]`.
    pub image: Array3<f32>,
    pub boundaries: Vec<Array2<bool>>,
}

/// The data root: `VAE_DATA_DIR` if set, else `../shared/data` from the repository root.
#[allow(dead_code)]
pub fn data_root() -> PathBuf {
    std::env::var_os("VAE_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

/// Sorted image ids of a split folder.
pub fn list_ids(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut ids: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".jpg"))
                .map(str::to_string)
        })
        .collect();
    ids.sort();
    Ok(ids)
}

/// Loads one image and its boundary maps.
pub fn load(dir: &Path, id: &str) -> anyhow::Result<BsdsImage> {
    let rgb = image::open(dir.join(format!("{id}.jpg")))?.to_rgb8();
    let (w, h) = rgb.dimensions();
    let (w, h) = (w as usize, h as usize);
    let raw = rgb.into_raw();
    let image = Array3::from_shape_fn((3, h, w), |(c, y, x)| {
        raw[(y * w + x) * 3 + c] as f32 / 255.0
    });
    let mut boundaries = Vec::new();
    for k in 1.. {
        let p = dir.join(format!("{id}_bnd{k}.png"));
        if !p.exists() {
            break;
        }
        let g = image::open(&p)?.to_luma8();
        anyhow::ensure!(
            g.dimensions() == (w as u32, h as u32),
            "{}: size differs from the image",
            p.display()
        );
        boundaries.push(Array2::from_shape_vec((h, w), g.into_raw())?.mapv(|v| v > 0));
    }
    anyhow::ensure!(!boundaries.is_empty(), "{id}: no boundary maps");
    Ok(BsdsImage {
        id: id.to_string(),
        image,
        boundaries,
    })
}
