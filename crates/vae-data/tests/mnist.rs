//! MNIST / Fashion-MNIST directory loader: synthetic directories for every naming and every
//! mismatch, and the real data sets (vendored sample, full MNIST and Fashion-MNIST) when present.

mod common;

use std::path::Path;

use vae_data::idx::{write_idx, IdxArray, IdxData};
use vae_data::mnist::{load_mnist, load_mnist_with, Split};
use vae_data::{BadFileKind, DataError, Limits};

fn images(n: usize, h: usize, w: usize) -> IdxArray {
    IdxArray::new(
        vec![n, h, w],
        IdxData::U8((0..n * h * w).map(|i| (i % 256) as u8).collect()),
    )
    .unwrap()
}

fn labels(v: Vec<u8>) -> IdxArray {
    IdxArray::new(vec![v.len()], IdxData::U8(v)).unwrap()
}

fn write_split(dir: &Path, prefix: &str, dotted: bool, gz: bool, img: &IdxArray, lab: &IdxArray) {
    let (sep, ext) = (if dotted { "." } else { "-" }, if gz { ".gz" } else { "" });
    write_idx(
        dir.join(format!("{prefix}-images{sep}idx3-ubyte{ext}")),
        img,
        gz,
    )
    .unwrap();
    write_idx(
        dir.join(format!("{prefix}-labels{sep}idx1-ubyte{ext}")),
        lab,
        gz,
    )
    .unwrap();
}

fn class_counts(labels: &[u8]) -> Vec<usize> {
    let mut c = vec![0; 10];
    labels.iter().for_each(|&l| c[l as usize] += 1);
    c
}

#[test]
fn both_namings_raw_and_gz_load_the_same() {
    let img = images(3, 28, 28);
    let lab = labels(vec![7, 0, 9]);
    for (dotted, gz) in [(false, false), (false, true), (true, false), (true, true)] {
        let tmp = tempfile::tempdir().unwrap();
        write_split(tmp.path(), "t10k", dotted, gz, &img, &lab);
        let m = load_mnist(tmp.path(), Split::Test).unwrap();
        assert_eq!(m.images.shape(), &[3, 1, 28, 28]);
        assert_eq!(m.labels, vec![7, 0, 9]);
        // Pixel i of the file is (i % 256) / 255.
        assert_eq!(m.images[[0, 0, 0, 1]], 1.0 / 255.0);
        assert_eq!(m.images[[0, 0, 9, 3]], 255.0 / 255.0); // index 255
        assert_eq!(m.images[[1, 0, 0, 0]], (784 % 256) as f32 / 255.0);
        // The other split is not there.
        assert!(matches!(
            load_mnist(tmp.path(), Split::Train),
            Err(DataError::NotFound { .. })
        ));
    }
}

#[test]
fn missing_file_error_says_where_and_what() {
    let tmp = tempfile::tempdir().unwrap();
    write_idx(
        tmp.path().join("train-images-idx3-ubyte.gz"),
        &images(2, 28, 28),
        true,
    )
    .unwrap();
    match load_mnist(tmp.path(), Split::Train) {
        Err(e @ DataError::NotFound { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
            assert!(msg.contains("train-labels-idx1-ubyte.gz"), "{msg}");
            assert!(msg.contains("train-labels.idx1-ubyte"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn locate_says_where_it_looked_and_what_it_expected() {
    let tmp = tempfile::tempdir().unwrap();
    match vae_data::mnist::locate_mnist(Some(tmp.path()), "mnist", Split::Train) {
        Err(DataError::NotFound {
            looked_in,
            expected,
        }) => {
            assert_eq!(
                looked_in,
                [tmp.path().join("mnist"), tmp.path().to_path_buf()]
            );
            assert_eq!(expected.len(), 8);
            assert!(expected.contains(&"train-images.idx3-ubyte.gz".to_string()));
        }
        other => panic!("{other:?}"),
    }
    // --data may point at the data set folder itself.
    write_split(
        tmp.path(),
        "train",
        true,
        true,
        &images(1, 28, 28),
        &labels(vec![3]),
    );
    let found = vae_data::mnist::locate_mnist(Some(tmp.path()), "mnist", Split::Train).unwrap();
    assert_eq!(found, tmp.path());
}

#[test]
fn mismatches_are_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Counts disagree.
    write_split(
        d,
        "train",
        false,
        true,
        &images(3, 28, 28),
        &labels(vec![1, 2]),
    );
    assert!(matches!(
        load_mnist(d, Split::Train),
        Err(DataError::CountMismatch {
            n_images: 3,
            n_labels: 2,
            ..
        })
    ));
    // A label out of range.
    write_split(
        d,
        "train",
        false,
        true,
        &images(3, 28, 28),
        &labels(vec![1, 10, 2]),
    );
    assert!(matches!(
        load_mnist(d, Split::Train),
        Err(DataError::LabelOutOfRange {
            index: 1,
            label: 10,
            num_classes: 10,
            ..
        })
    ));
    // Images that are not 28×28.
    write_split(
        d,
        "train",
        false,
        true,
        &images(2, 27, 28),
        &labels(vec![1, 2]),
    );
    assert!(matches!(
        load_mnist(d, Split::Train),
        Err(DataError::ShapeMismatch { .. })
    ));
    // Images of another element type, and labels of rank 2.
    let i16_images = IdxArray::new(vec![1, 28, 28], IdxData::I16(vec![0; 784])).unwrap();
    write_split(d, "train", false, true, &i16_images, &labels(vec![1]));
    match load_mnist(d, Split::Train) {
        Err(DataError::BadFile {
            kind: BadFileKind::Unexpected { .. },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let lab2 = IdxArray::new(vec![1, 1], IdxData::U8(vec![1])).unwrap();
    write_split(d, "train", false, true, &images(1, 28, 28), &lab2);
    match load_mnist(d, Split::Train) {
        Err(DataError::BadFile {
            kind: BadFileKind::Unexpected { .. },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // The budget counts the f32 images: 2 × 784 × 4 + 2 bytes.
    write_split(
        d,
        "train",
        false,
        false,
        &images(2, 28, 28),
        &labels(vec![1, 2]),
    );
    assert!(matches!(
        load_mnist_with(d, Split::Train, &Limits::with_max_alloc(6000)),
        Err(DataError::LimitExceeded {
            requested: 6274,
            ..
        })
    ));
    assert!(load_mnist_with(d, Split::Train, &Limits::with_max_alloc(6274)).is_ok());
    // A truncated images file, renamed to .gz although it is raw.
    let mut bytes = vae_data::idx::to_idx_bytes(&images(2, 28, 28));
    bytes.truncate(100);
    std::fs::remove_file(d.join("train-images-idx3-ubyte")).unwrap();
    std::fs::write(d.join("train-images-idx3-ubyte.gz"), bytes).unwrap();
    assert!(matches!(
        load_mnist(d, Split::Train).unwrap_err().bad_file_kind(),
        Some(BadFileKind::Truncated { .. })
    ));
}

#[test]
fn vendored_sample_matches_its_readme() {
    let dir = vae_data::location::resolve_data_dir(None, "mnist-sample").unwrap();
    let train = load_mnist(&dir, Split::Train).unwrap();
    assert_eq!(train.images.shape(), &[8000, 1, 28, 28]);
    assert_eq!(
        class_counts(&train.labels),
        [795, 906, 788, 811, 799, 702, 798, 853, 753, 795]
    );
    let test = load_mnist(&dir, Split::Test).unwrap();
    assert_eq!(
        class_counts(&test.labels),
        [206, 221, 203, 221, 181, 161, 216, 217, 191, 183]
    );
    // A labelled subset of 10 per class, for semi-supervised use.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
    let idx = vae_data::split::labelled_subset(&train.labels, 10, 10, &mut rng).unwrap();
    let sub = train.subset(&idx).unwrap();
    assert_eq!(class_counts(&sub.labels), vec![10; 10]);
    assert_eq!(
        sub.images.index_axis(ndarray::Axis(0), 3),
        train.images.index_axis(ndarray::Axis(0), idx[3])
    );
    // Real digits: mostly background, some full ink.
    let mean = train.images.mean().unwrap();
    assert!((0.1..0.15).contains(&mean), "{mean}");
    assert_eq!(train.images.iter().cloned().fold(0.0f32, f32::max), 1.0);
}

#[test]
fn full_mnist_and_fashion_mnist_match_their_readmes() {
    if let Some(dir) = common::shared_data("mnist") {
        let train = load_mnist(&dir, Split::Train).unwrap();
        assert_eq!(train.images.shape(), &[60000, 1, 28, 28]);
        assert_eq!(
            class_counts(&train.labels),
            [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
        );
        let test = load_mnist(&dir, Split::Test).unwrap();
        assert_eq!(
            class_counts(&test.labels),
            [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
        );
        // mnist-sample is MNIST train[0:10000]: its t10k part is train[8000:10000].
        let sample = vae_data::location::resolve_data_dir(None, "mnist-sample").unwrap();
        let s = load_mnist(&sample, Split::Test).unwrap();
        assert_eq!(s.labels[..], train.labels[8000..10000]);
        assert_eq!(
            s.images,
            train.images.slice(ndarray::s![8000..10000, .., .., ..])
        );
    }
    if let Some(dir) = common::shared_data("fashion-mnist") {
        for split in [Split::Train, Split::Test] {
            let m = load_mnist(&dir, split).unwrap();
            let per_class = if split == Split::Train { 6000 } else { 1000 };
            assert_eq!(class_counts(&m.labels), vec![per_class; 10]);
        }
    }
}
