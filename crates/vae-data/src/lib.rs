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
