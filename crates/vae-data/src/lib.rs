//! # vae-data
//!
//! Data for vae-rs, offline: IDX files (MNIST, Fashion-MNIST), image folders, BSDS500,
//! batching, shuffling and binarization. Images come out as `f32` in `[0, 1]`, in NCHW
//! layout (`[n, c, h, w]`), as `ndarray` arrays; this crate does not depend on
//! `vae-tensor`.
//!
//! Every reader checks a file's header against the real file length and a [`Limits`]
//! budget before it allocates, and every bad file gives a typed [`DataError`] naming the
//! file and what is wrong, never a panic.
//!
//! | module | holds |
//! |---|---|
//! | [`idx`] | IDX read/write, every element type, any rank, `.gz` by magic bytes |
//! | [`mnist`] | MNIST / Fashion-MNIST directories |
//! | [`location`] | where data lives: `--data`, `VAE_DATA_DIR`, the repo's `data/` |
//! | [`batch`] | seeded shuffling and batches |
//! | [`transform`] | dynamic and threshold binarization |
//! | [`split`] | train/validation split, labelled subsets |
//! | [`folder`] | image folders (one subfolder per class), patches, splits by source image |
//! | [`bsds`] | BSDS500 images with every annotator's segmentation and boundary map |
//!
//! Errors are one enum, [`DataError`], grouped by cause (bad file, bad argument, resource
//! limit, mismatch, not found, I/O); tests match on its variants.
//!
//! ```
//! use rand::{rngs::StdRng, SeedableRng};
//! use vae_data::batch::{shuffled_batches, LastBatch};
//! use vae_data::location::resolve_data_dir;
//! use vae_data::mnist::{load_mnist, Split};
//! use vae_data::split::train_val_split;
//! use vae_data::transform::binarize_dynamic_mut;
//!
//! // --data DIR, else $VAE_DATA_DIR, else the repository's data/ (10,000 vendored digits).
//! let dir = resolve_data_dir(None, "mnist-sample")?;
//! let train = load_mnist(&dir, Split::Train)?; // [8000, 1, 28, 28] f32 in [0, 1]
//! let mut rng = StdRng::seed_from_u64(0);
//! let (fit, val) = train_val_split(train.len(), 1000, &mut rng)?;
//! let fit = train.subset(&fit)?;
//! assert_eq!((fit.len(), val.len()), (7000, 1000));
//! for mut batch in shuffled_batches(fit.images.view(), &fit.labels, 128, LastBatch::Drop, &mut rng)? {
//!     binarize_dynamic_mut(&mut batch.images, &mut rng)?; // fresh bits every epoch
//!     assert_eq!(batch.images.shape(), &[128, 1, 28, 28]);
//!     # break;
//! }
//! # Ok::<(), vae_data::DataError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod batch;
pub mod bsds;
pub mod error;
pub mod folder;
pub mod idx;
mod image_io;
pub mod limits;
pub mod location;
pub mod mnist;
pub mod split;
pub mod transform;

pub use error::{BadFileKind, DataError, Result};
pub use limits::Limits;
