//! Image folders: every supported format, mixed sizes, patches and splits by source image;
//! the real KTH-TIPS grey set when present.

mod common;

use std::collections::HashSet;

use image::{DynamicImage, GrayImage, Luma, Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::SeedableRng;
use vae_data::folder::{
    extract_patches, list_image_folder, load_image_folder, split_images_per_class, ColorMode,
    PatchSampling,
};
use vae_data::DataError;

#[test]
fn every_format_gray_and_rgb_with_mixed_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("b_gray")).unwrap();
    std::fs::create_dir_all(root.join("a_rgb")).unwrap();
    std::fs::create_dir_all(root.join("c_empty")).unwrap();
    std::fs::write(root.join("README.md"), "not a class").unwrap();
    std::fs::write(root.join("b_gray/SHA256SUMS"), "ignored").unwrap();
    // Lossless formats keep exact values.
    let gray = GrayImage::from_fn(7, 5, |x, y| Luma([(x * 30 + y) as u8]));
    for ext in ["png", "bmp", "tiff", "gif"] {
        DynamicImage::ImageLuma8(gray.clone())
            .to_rgb8()
            .save(root.join(format!("b_gray/g.{ext}")))
            .unwrap();
    }
    // A smaller image in the same class.
    GrayImage::new(4, 3)
        .save(root.join("b_gray/small.png"))
        .unwrap();
    let rgb = RgbImage::from_fn(6, 4, |x, y| Rgb([255, (x * 40) as u8, (y * 60) as u8]));
    rgb.save(root.join("a_rgb/c.png")).unwrap();
    rgb.save(root.join("a_rgb/d.JPG")).unwrap();

    let listing = list_image_folder(root).unwrap();
    assert_eq!(listing.classes, ["a_rgb", "b_gray"]); // c_empty has no image
    assert_eq!(listing.labels, [0, 0, 1, 1, 1, 1, 1]);

    let f = load_image_folder(root, ColorMode::Gray).unwrap();
    for (p, img) in f.paths.iter().zip(&f.images) {
        let name = p.file_name().unwrap().to_str().unwrap();
        if name.starts_with("g.") {
            assert_eq!(img.shape(), &[1, 5, 7], "{name}");
            assert_eq!(img[[0, 2, 3]], (3.0 * 30.0 + 2.0) / 255.0, "{name}");
        }
    }
    assert_eq!(f.images[6].shape(), &[1, 3, 4]);

    let f = load_image_folder(root, ColorMode::Rgb).unwrap();
    let png = &f.images[0];
    assert_eq!(png.shape(), &[3, 4, 6]);
    assert_eq!(
        (png[[0, 1, 2]], png[[1, 1, 2]], png[[2, 3, 2]]),
        (1.0, 80.0 / 255.0, 180.0 / 255.0)
    );
    // JPEG is lossy: close, not exact.
    let jpg = &f.images[1];
    assert!((jpg[[0, 1, 2]] - 1.0).abs() < 0.1);
}

#[test]
fn bad_folders_and_files_are_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        list_image_folder(tmp.path()),
        Err(DataError::NotFound { .. })
    ));
    assert!(matches!(
        list_image_folder(&tmp.path().join("missing")),
        Err(DataError::Io { .. })
    ));
    std::fs::create_dir(tmp.path().join("x")).unwrap();
    std::fs::write(tmp.path().join("x/broken.png"), b"\x89PNG\r\n\x1a\nbroken").unwrap();
    match load_image_folder(tmp.path(), ColorMode::Gray) {
        Err(DataError::Decode { path, .. }) => assert!(path.ends_with("x/broken.png")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn patches_grid_and_random_and_disjoint_sources() {
    let images: Vec<_> = (0..6)
        .map(|i| ndarray::Array3::from_shape_fn((1, 9 + i, 10), |(_, y, x)| (y * 100 + x) as f32))
        .collect();
    let labels = vec![0, 0, 0, 1, 1, 1];
    let mut rng = StdRng::seed_from_u64(9);
    let (train, test) = split_images_per_class(&labels, 2, &mut rng).unwrap();
    assert_eq!((train.len(), test.len()), (4, 2));
    let grid = PatchSampling::Grid { size: 4, stride: 3 };
    let tr = extract_patches(&images, &labels, &train, &grid, &mut rng).unwrap();
    let te = extract_patches(&images, &labels, &test, &grid, &mut rng).unwrap();
    let a: HashSet<usize> = tr.sources.iter().copied().collect();
    let b: HashSet<usize> = te.sources.iter().copied().collect();
    assert!(
        a.is_disjoint(&b),
        "an image gave patches to both train and test"
    );
    // Patch contents are the right window: pixel (y, x) holds y*100 + x.
    for k in 0..tr.patches.shape()[0] {
        let p = tr.patches.index_axis(ndarray::Axis(0), k);
        let (y0, x0) = (
            (p[[0, 0, 0]] / 100.0) as usize,
            (p[[0, 0, 0]] % 100.0) as usize,
        );
        assert_eq!((y0 % 3, x0 % 3), (0, 0));
        assert_eq!(p[[0, 3, 2]], ((y0 + 3) * 100 + x0 + 2) as f32);
        assert_eq!(tr.labels[k], labels[tr.sources[k]]);
    }
    let random = PatchSampling::Random { size: 5, count: 7 };
    let r1 = extract_patches(
        &images,
        &labels,
        &[0, 5],
        &random,
        &mut StdRng::seed_from_u64(1),
    )
    .unwrap();
    let r2 = extract_patches(
        &images,
        &labels,
        &[0, 5],
        &random,
        &mut StdRng::seed_from_u64(1),
    )
    .unwrap();
    assert_eq!(r1, r2);
    assert_eq!(r1.patches.shape(), &[14, 1, 5, 5]);
    // A patch larger than one image names it.
    let big = PatchSampling::Grid {
        size: 10,
        stride: 1,
    };
    match extract_patches(&images, &labels, &[3, 0], &big, &mut rng) {
        Err(DataError::InvalidArgument { reason, .. }) => {
            assert!(reason.contains("image 0"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(split_images_per_class(&labels, 4, &mut rng).is_err());
}

#[test]
fn real_kth_tips_grey() {
    let Some(dir) = common::shared_data("textures/kth-tips-grey") else {
        return;
    };
    let f = load_image_folder(&dir, ColorMode::Gray).unwrap();
    assert_eq!(f.classes.len(), 10);
    assert_eq!(f.len(), 810);
    let smaller = f
        .images
        .iter()
        .filter(|i| i.shape() != [1, 200, 200])
        .count();
    assert_eq!(
        smaller, 63,
        "KTH-TIPS README: 63 images are smaller than 200×200"
    );
    let mut rng = StdRng::seed_from_u64(40);
    let (train, test) = split_images_per_class(&f.labels, 40, &mut rng).unwrap();
    assert_eq!((train.len(), test.len()), (400, 410));
    let p = f
        .patches(
            &test,
            &PatchSampling::Random { size: 32, count: 2 },
            &mut rng,
        )
        .unwrap();
    assert_eq!(p.patches.shape(), &[820, 1, 32, 32]);
}

#[test]
fn image_decoder_respects_the_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("big.png");
    GrayImage::new(300, 300).save(&path).unwrap();
    let tight = vae_data::Limits::with_max_alloc(10_000);
    match vae_data::folder::load_image(&path, ColorMode::Gray, &tight) {
        Err(DataError::Decode {
            source: image::ImageError::Limits(_),
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let ok = vae_data::folder::load_image(&path, ColorMode::Gray, &vae_data::Limits::default());
    assert_eq!(ok.unwrap().shape(), &[1, 300, 300]);
}
