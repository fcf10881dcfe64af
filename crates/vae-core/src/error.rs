//! The error type of `vae-core`.

use std::path::PathBuf;
use vae_tensor::TensorError;

/// Everything that can go wrong when building, training, using or saving a VAE.
///
/// Variants are grouped by who is at fault: a bad configuration or argument, a bad
/// checkpoint file, a diverged training run, an error from a layer or the data, or I/O.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A [`VaeConfig`](crate::VaeConfig) or trainer setting that cannot work.
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// The field that is wrong (`"latent"`, `"beta"`, ...).
        field: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// An argument to a function had the wrong shape or value.
    #[error("{op}: bad argument: {reason}")]
    BadArgument {
        /// The function that rejected it.
        op: String,
        /// What is wrong, in words (with the shapes involved).
        reason: String,
    },
    /// A model whose decoder does not reproduce the input shape.
    #[error("model build: decoder output shape {decoder_output:?} differs from the input shape {input:?}")]
    ArchitectureMismatch {
        /// The image shape `[c, h, w]` the model was configured for.
        input: Vec<usize>,
        /// The per-image shape the decoder produces.
        decoder_output: Vec<usize>,
    },
    /// A checkpoint tensor whose shape differs from the model's.
    #[error(
        "checkpoint {path}: tensor {tensor}: shape {found:?} in file, model expects {expected:?}"
    )]
    CheckpointShape {
        /// The checkpoint file.
        path: PathBuf,
        /// The dotted tensor name.
        tensor: String,
        /// The shape the model has.
        expected: Vec<usize>,
        /// The shape stored in the file.
        found: Vec<usize>,
    },
    /// A tensor the model needs is not in the checkpoint, or the file holds one it does not know.
    #[error("checkpoint {path}: tensor {tensor}: {reason}")]
    CheckpointTensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The dotted tensor name.
        tensor: String,
        /// `"missing from file"`, `"not in model"`, `"dtype ..."`.
        reason: String,
    },
    /// A checkpoint that cannot be parsed (truncated, not safetensors, bad metadata).
    #[error("checkpoint {path}: corrupt: {reason}")]
    CorruptCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What could not be read.
        reason: String,
    },
    /// The training loss became NaN or infinite; the last checkpoint written (if any) is intact.
    #[error("training diverged at step {step} (epoch {epoch}): loss is {loss}")]
    Diverged {
        /// The global optimizer step (0-based) whose loss was not finite.
        step: u64,
        /// The epoch (0-based) it happened in.
        epoch: usize,
        /// The non-finite loss value.
        loss: f64,
    },
    /// An error from a `vae-tensor` layer, loss or optimizer.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// An error from `vae-data` (loading, batching, binarization).
    #[error(transparent)]
    Data(#[from] vae_data::DataError),
    /// An image could not be encoded or written.
    #[error("image {path}: {reason}")]
    Image {
        /// The file being written.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("I/O on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

impl CoreError {
    /// Shorthand for [`CoreError::InvalidConfig`].
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CoreError::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`CoreError::BadArgument`].
    pub fn arg(op: impl Into<String>, reason: impl Into<String>) -> Self {
        CoreError::BadArgument {
            op: op.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`CoreError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CoreError::Io {
            path: path.into(),
            source,
        }
    }
}
