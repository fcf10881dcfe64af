//! MNIST and Fashion-MNIST: a directory with the four standard IDX files, raw or `.gz`.
//!
//! Both naming styles in circulation are accepted, with or without `.gz` (the content, not
//! the name, decides whether a file is gzip):
//!
//! | split | images | labels |
//! |---|---|---|
//! | [`Split::Train`] | `train-images-idx3-ubyte`, `train-images.idx3-ubyte` | `train-labels-idx1-ubyte`, `train-labels.idx1-ubyte` |
//! | [`Split::Test`] | `t10k-images-idx3-ubyte`, `t10k-images.idx3-ubyte` | `t10k-labels-idx1-ubyte`, `t10k-labels.idx1-ubyte` |
//!
//! Images come out as `f32` `[n, 1, 28, 28]` in `[0, 1]` (pixel / 255), labels as `u8`
//! below 10. Both headers are read and checked (type, rank, 28×28, equal counts, file
//! lengths, [`Limits`]) before either payload is decoded; the image payload is decoded
//! straight into the final `f32` buffer, in chunks, with no intermediate `u8` copy.

use std::path::{Path, PathBuf};

use ndarray::Array4;

use crate::error::{BadFileKind, DataError, Result};
use crate::idx::{ElemType, IdxStream};
use crate::limits::Limits;

/// Number of classes in MNIST and Fashion-MNIST.
pub const NUM_CLASSES: usize = 10;

/// Image side length in MNIST and Fashion-MNIST.
pub const SIDE: usize = 28;

/// Fashion-MNIST class names, by label.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Which half of the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training files (`train-*`).
    Train,
    /// The test files (`t10k-*`).
    Test,
}

impl Split {
    /// The file-name prefix: `"train"` or `"t10k"`.
    pub fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// A loaded MNIST-style split.
#[derive(Debug, Clone, PartialEq)]
pub struct Mnist {
    /// `[n, 1, 28, 28]`, pixel / 255 in `[0, 1]`.
    pub images: Array4<f32>,
    /// `n` labels, each below [`NUM_CLASSES`].
    pub labels: Vec<u8>,
}

impl Mnist {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `true` if there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The items at `indices` (copied, in that order), e.g. from
    /// [`train_val_split`](crate::split::train_val_split).
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] if an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> Result<Mnist> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::arg(
                "indices",
                format!("index {i} out of range for {} items", self.len()),
            ));
        }
        Ok(Mnist {
            images: self.images.select(ndarray::Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        })
    }
}

/// The file names accepted for one split's images or labels, in the order they are tried.
pub fn candidate_names(split: Split, labels: bool) -> [String; 4] {
    let (what, idx) = if labels {
        ("labels", "idx1")
    } else {
        ("images", "idx3")
    };
    let p = split.prefix();
    [
        format!("{p}-{what}-{idx}-ubyte"),
        format!("{p}-{what}-{idx}-ubyte.gz"),
        format!("{p}-{what}.{idx}-ubyte"),
        format!("{p}-{what}.{idx}-ubyte.gz"),
    ]
}

/// Finds the images and labels files of `split` in `dir`.
///
/// # Errors
/// [`DataError::NotFound`] naming `dir` and every accepted name of the missing file.
pub fn mnist_files(dir: &Path, split: Split) -> Result<(PathBuf, PathBuf)> {
    let find = |labels: bool| {
        let names = candidate_names(split, labels);
        names
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| DataError::NotFound {
                looked_in: vec![dir.to_path_buf()],
                expected: names.to_vec(),
            })
    };
    Ok((find(false)?, find(true)?))
}

/// Finds the folder of MNIST-style data set `sub` (e.g. `"mnist"`, `"fashion-mnist"`,
/// `"mnist-sample"`) that holds `split`'s two files, trying the places
/// [`resolve_data_dir`](crate::location::resolve_data_dir) tries, in its order.
///
/// ```
/// use vae_data::mnist::{locate_mnist, Split};
/// let dir = locate_mnist(None, "mnist-sample", Split::Train)?;
/// assert!(dir.ends_with("mnist-sample"));
/// # Ok::<(), vae_data::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::NotFound`] listing every folder tried and every accepted file name.
pub fn locate_mnist(cli: Option<&Path>, sub: &str, split: Split) -> Result<PathBuf> {
    let candidates = crate::location::candidate_dirs(cli, sub);
    if let Some(dir) = candidates.iter().find(|d| mnist_files(d, split).is_ok()) {
        return Ok(dir.clone());
    }
    let mut expected = candidate_names(split, false).to_vec();
    expected.extend(candidate_names(split, true));
    Err(DataError::NotFound {
        looked_in: candidates,
        expected,
    })
}

/// Loads `split` of the MNIST or Fashion-MNIST directory `dir` under the default [`Limits`].
///
/// ```
/// use vae_data::location::resolve_data_dir;
/// use vae_data::mnist::{load_mnist, Split};
/// let dir = resolve_data_dir(None, "mnist-sample")?; // 8,000 + 2,000 real digits
/// let test = load_mnist(&dir, Split::Test)?;
/// assert_eq!(test.images.shape(), &[2000, 1, 28, 28]);
/// assert_eq!(test.labels[..5], [0, 6, 2, 0, 6]);
/// assert!(test.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
/// # Ok::<(), vae_data::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::NotFound`] if a file is missing; [`DataError::BadFile`] for a malformed
/// file or one that is not `u8` `[n, 28, 28]` / `[n]`; [`DataError::ShapeMismatch`] for
/// images that are not 28×28; [`DataError::CountMismatch`] if the files disagree on `n`;
/// [`DataError::LabelOutOfRange`] for a label ≥ 10; [`DataError::LimitExceeded`].
pub fn load_mnist(dir: &Path, split: Split) -> Result<Mnist> {
    load_mnist_with(dir, split, &Limits::default())
}

/// [`load_mnist`] under explicit [`Limits`] (counted on the `f32` images plus the labels).
pub fn load_mnist_with(dir: &Path, split: Split, limits: &Limits) -> Result<Mnist> {
    let (images_path, labels_path) = mnist_files(dir, split)?;
    let images = open_images(&images_path)?;
    let labels = open_labels(&labels_path)?;
    let dims = images.header().dims();
    if dims[1..] != [SIDE, SIDE] {
        return Err(DataError::ShapeMismatch {
            path: images_path,
            expected: vec![dims[0], SIDE, SIDE],
            found: dims.to_vec(),
        });
    }
    let (n_images, n_labels) = (dims[0], labels.header().count());
    if n_images != n_labels {
        return Err(DataError::CountMismatch {
            images: images_path,
            n_images,
            labels: labels_path,
            n_labels,
        });
    }
    let bytes = (images.header().count() as u64)
        .saturating_mul(4)
        .saturating_add(n_labels as u64);
    limits.check(&images_path, bytes)?;
    let labels = decode_labels(labels, NUM_CLASSES)?;
    let images = decode_images(images)?;
    Ok(Mnist { images, labels })
}

/// Loads an IDX file of `u8` images `[n, h, w]` (any size) as `f32` `[n, 1, h, w]` in
/// `[0, 1]`.
///
/// # Errors
/// As [`crate::idx::read_idx`], plus [`BadFileKind::Unexpected`] if the file is not `u8`
/// of rank 3.
pub fn load_idx_images(path: &Path, limits: &Limits) -> Result<Array4<f32>> {
    let s = open_images(path)?;
    s.check_alloc(limits, 4)?;
    decode_images(s)
}

/// Loads an IDX file of `u8` labels `[n]`, each checked to be below `num_classes`.
///
/// # Errors
/// As [`crate::idx::read_idx`], plus [`BadFileKind::Unexpected`] if the file is not `u8`
/// of rank 1, and [`DataError::LabelOutOfRange`] for the first label ≥ `num_classes`.
pub fn load_idx_labels(path: &Path, num_classes: usize, limits: &Limits) -> Result<Vec<u8>> {
    let s = open_labels(path)?;
    s.check_alloc(limits, 1)?;
    decode_labels(s, num_classes)
}

fn expect_u8(s: &IdxStream<'_>, rank: usize, what: &str) -> Result<()> {
    let h = s.header();
    if h.elem_type() != ElemType::U8 || h.dims().len() != rank {
        return Err(DataError::bad_file(
            s.path(),
            Some(2),
            BadFileKind::Unexpected {
                expected: format!("{what}: u8 of rank {rank}"),
                found: format!("{} of shape {:?}", h.elem_type(), h.dims()),
            },
        ));
    }
    Ok(())
}

fn open_images(path: &Path) -> Result<IdxStream<'static>> {
    let s = IdxStream::open(path)?;
    expect_u8(&s, 3, "images")?;
    Ok(s)
}

fn open_labels(path: &Path) -> Result<IdxStream<'static>> {
    let s = IdxStream::open(path)?;
    expect_u8(&s, 1, "labels")?;
    Ok(s)
}

fn decode_images(s: IdxStream<'_>) -> Result<Array4<f32>> {
    let dims = s.header().dims().to_vec();
    let mut lut = [0f32; 256];
    for (i, v) in lut.iter_mut().enumerate() {
        *v = i as f32 / 255.0;
    }
    let mut v: Vec<f32> = Vec::with_capacity(s.header().count());
    s.for_each_chunk(|c| v.extend(c.iter().map(|&b| lut[b as usize])))?;
    Ok(Array4::from_shape_vec((dims[0], 1, dims[1], dims[2]), v)
        .expect("payload length = n·h·w was checked"))
}

fn decode_labels(s: IdxStream<'_>, num_classes: usize) -> Result<Vec<u8>> {
    let path = s.path().to_path_buf();
    let mut v: Vec<u8> = Vec::with_capacity(s.header().count());
    s.for_each_chunk(|c| v.extend_from_slice(c))?;
    if let Some((index, &label)) = v
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= num_classes)
    {
        return Err(DataError::LabelOutOfRange {
            path,
            index,
            label: label as i64,
            num_classes,
        });
    }
    Ok(v)
}
