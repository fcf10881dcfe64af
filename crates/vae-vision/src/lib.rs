//! # vae-vision
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

pub mod classify;
pub mod error;

pub use error::{Result, VisionError};
