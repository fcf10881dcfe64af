//! BSDS500 reader: synthetic split folders in a temp dir, and the real train/val when present.

mod common;

use std::path::Path;

use image::{DynamicImage, GrayImage, Luma, RgbImage};
use vae_data::bsds::{bsds_ids, load_bsds_image, load_bsds_split, read_bsds_index};
use vae_data::{BadFileKind, DataError};

fn write_image(dir: &Path, id: &str, w: u32, h: u32, annotators: u32) {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 10) as u8, (y * 10) as u8, 128])
    }))
    .save(dir.join(format!("{id}.jpg")))
    .unwrap();
    for k in 1..=annotators {
        let seg = GrayImage::from_fn(w, h, |x, _| Luma([(1 + x % k + k) as u8]));
        seg.save(dir.join(format!("{id}_seg{k}.png"))).unwrap();
        let bnd = GrayImage::from_fn(w, h, |x, y| {
            Luma([if (x + y + k) % 3 == 0 { 255 } else { 0 }])
        });
        bnd.save(dir.join(format!("{id}_bnd{k}.png"))).unwrap();
    }
}

#[test]
fn synthetic_split_with_and_without_index() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_image(d, "7", 6, 5, 2);
    write_image(d, "3", 5, 6, 3);
    // No index: scanned and sorted.
    assert_eq!(bsds_ids(d).unwrap(), vec!["3", "7"]);
    let split = load_bsds_split(d).unwrap();
    assert_eq!(split.len(), 2);
    let a = &split[0];
    assert_eq!(
        (a.id.as_str(), a.height(), a.width(), a.num_annotators()),
        ("3", 6, 5, 3)
    );
    assert_eq!(a.boundaries.len(), 3);
    // Annotator 2 of image "3": label 1 + x % 2 + 2.
    assert_eq!(a.segmentations[1][[0, 0]], 3);
    assert_eq!(a.segmentations[1][[0, 1]], 4);
    // Boundary (x + y + k) % 3 == 0 with k = 1: pixel (y=0, x=2).
    assert!(a.boundaries[0][[0, 2]] && !a.boundaries[0][[0, 1]]);
    assert!(a.image.iter().all(|&v| (0.0..=1.0).contains(&v)));
    // JPEG is lossy but the blue plane of a constant 128 stays near 0.5.
    let blue_mean = a.image.index_axis(ndarray::Axis(0), 2).mean().unwrap();
    assert!((blue_mean - 128.0 / 255.0).abs() < 0.03, "{blue_mean}");

    // With an index: its order, and checked against it.
    std::fs::write(
        d.join("index.csv"),
        "id,width,height,annotators,max_label\n7,6,5,2,4\n3,5,6,3,6\n",
    )
    .unwrap();
    let idx = read_bsds_index(d).unwrap().unwrap();
    assert_eq!(idx[0].id, "7");
    let split = load_bsds_split(d).unwrap();
    assert_eq!(split[0].id, "7");
    // A wrong annotator count in the index is a mismatch.
    std::fs::write(
        d.join("index.csv"),
        "id,width,height,annotators,max_label\n7,6,5,3,5\n",
    )
    .unwrap();
    assert!(matches!(
        load_bsds_split(d),
        Err(DataError::ShapeMismatch { .. })
    ));
    // A malformed index names the line.
    std::fs::write(
        d.join("index.csv"),
        "id,width,height,annotators,max_label\n7,6,x,2,5\n",
    )
    .unwrap();
    match load_bsds_split(d) {
        Err(DataError::BadFile {
            kind: BadFileKind::BadIndex { line: 2, .. },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_and_mismatched_files_are_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    assert!(matches!(
        load_bsds_image(d, "1"),
        Err(DataError::NotFound { .. })
    ));
    assert!(matches!(bsds_ids(d), Err(DataError::NotFound { .. })));
    assert!(matches!(
        load_bsds_image(d, "../x"),
        Err(DataError::InvalidArgument { .. })
    ));
    write_image(d, "1", 4, 4, 1);
    // A segmentation of the wrong size.
    GrayImage::new(3, 4).save(d.join("1_seg1.png")).unwrap();
    assert!(matches!(
        load_bsds_image(d, "1"),
        Err(DataError::ShapeMismatch { .. })
    ));
    // A seg without its bnd.
    write_image(d, "2", 4, 4, 2);
    std::fs::remove_file(d.join("2_bnd2.png")).unwrap();
    assert!(matches!(
        load_bsds_image(d, "2"),
        Err(DataError::NotFound { .. })
    ));
    // No annotation at all.
    write_image(d, "3", 4, 4, 0);
    assert!(matches!(
        load_bsds_image(d, "3"),
        Err(DataError::NotFound { .. })
    ));
    // A corrupt JPEG.
    std::fs::write(d.join("4.jpg"), b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    assert!(matches!(
        load_bsds_image(d, "4"),
        Err(DataError::Decode { .. })
    ));
    // An RGB segmentation is not a label map.
    write_image(d, "5", 4, 4, 1);
    DynamicImage::ImageRgb8(RgbImage::new(4, 4))
        .save(d.join("5_seg1.png"))
        .unwrap();
    match load_bsds_image(d, "5") {
        Err(DataError::BadFile {
            kind: BadFileKind::Unexpected { .. },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn real_bsds500_image_matches_its_index() {
    let Some(dir) = common::shared_data("bsds500/train") else {
        return;
    };
    let index = read_bsds_index(&dir).unwrap().unwrap();
    assert_eq!(index.len(), 200);
    let e = &index[0];
    assert_eq!(e.id, "100075");
    let img = load_bsds_image(&dir, &e.id).unwrap();
    assert_eq!(img.image.shape(), &[3, e.height, e.width]);
    assert_eq!(img.num_annotators(), e.annotators);
    let max = img
        .segmentations
        .iter()
        .flat_map(|s| s.iter().copied())
        .max()
        .unwrap();
    assert_eq!(max as usize, e.max_label as usize);
    // BSDS labels start at 1: 0 never occurs.
    assert!(img.segmentations.iter().all(|s| s.iter().all(|&v| v >= 1)));
    // Every annotator marks some boundary pixels, but only a small fraction.
    for b in &img.boundaries {
        let frac = b.iter().filter(|&&v| v).count() as f64 / b.len() as f64;
        assert!(frac > 0.0 && frac < 0.2, "{frac}");
    }
}

#[test]
fn real_bsds500_val_split_agrees_with_its_index() {
    let Some(dir) = common::shared_data("bsds500/val") else {
        return;
    };
    // load_bsds_split checks size, annotator count and largest label against index.csv.
    let split = load_bsds_split(&dir).unwrap();
    assert_eq!(split.len(), 100);
    let annotations: usize = split.iter().map(|i| i.num_annotators()).sum();
    assert_eq!(annotations, 546); // README: 546 human annotations in val
}
