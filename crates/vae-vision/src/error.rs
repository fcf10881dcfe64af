//! The error type of `vae-vision`.

use std::path::PathBuf;

/// Everything that can go wrong in `vae-vision`.
///
/// Variants are grouped by who is at fault: a bad argument (shape, range, parameter),
/// an empty input, or a file that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VisionError {
    /// A parameter is outside its documented range (`sigma <= 0`, `low > high`, ...).
    #[error("{op}: invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        /// The function that rejected it.
        op: &'static str,
        /// The parameter name.
        name: &'static str,
        /// The value, formatted.
        value: String,
        /// What the valid range is.
        reason: String,
    },
    /// Two arrays that must agree in shape do not.
    #[error("{op}: shape mismatch: expected {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// The function that compared them.
        op: &'static str,
        /// The shape it expected.
        expected: Vec<usize>,
        /// The shape it got.
        got: Vec<usize>,
    },
    /// An input is empty or too small for the operation (a 0-pixel image, no training samples).
    #[error("{op}: empty input: {what}")]
    Empty {
        /// The function that needed data.
        op: &'static str,
        /// What was empty.
        what: String,
    },
    /// A label or class index is out of range.
    #[error("{op}: label {label} out of range for {num_classes} classes")]
    LabelOutOfRange {
        /// The function that saw the label.
        op: &'static str,
        /// The label.
        label: usize,
        /// The number of classes.
        num_classes: usize,
    },
    /// A value that must be finite (or in `[0, 1]`) is not.
    #[error("{op}: bad value: {what}")]
    BadValue {
        /// The function that saw it.
        op: &'static str,
        /// What was wrong.
        what: String,
    },
    /// A layer, loss or optimizer of a learned head failed.
    #[error(transparent)]
    Tensor(#[from] vae_tensor::TensorError),
    /// Loading a data set failed.
    #[error(transparent)]
    Data(#[from] vae_data::DataError),
    /// The VAE behind a head failed (training, encoding).
    #[error(transparent)]
    Core(#[from] vae_core::CoreError),
    /// Writing or encoding an image failed.
    #[error("image file {path}: {source}")]
    Image {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: image::ImageError,
    },
}

/// `Result` with [`VisionError`].
pub type Result<T, E = VisionError> = std::result::Result<T, E>;

impl VisionError {
    /// Shorthand for [`VisionError::InvalidParameter`].
    pub(crate) fn param(
        op: &'static str,
        name: &'static str,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        VisionError::InvalidParameter {
            op,
            name,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`VisionError::ShapeMismatch`].
    pub(crate) fn shape(op: &'static str, expected: &[usize], got: &[usize]) -> Self {
        VisionError::ShapeMismatch {
            op,
            expected: expected.to_vec(),
            got: got.to_vec(),
        }
    }
}
