//! The error type of `vae-tensor`.

/// Everything that can go wrong when building or running a layer, loss or optimizer.
///
/// Variants are grouped by who is at fault: a bad configuration, a tensor of the wrong
/// shape, or a call made in the wrong order. Messages name the layer or op and both shapes.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum TensorError {
    /// A layer or op was configured with values that cannot work (zero channels, a kernel
    /// larger than the padded input, an output size that overflows, ...).
    #[error("{layer}: invalid configuration: {reason}")]
    InvalidConfig {
        /// The layer or op that rejected its configuration.
        layer: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// A tensor had a shape the layer or op cannot take.
    #[error("{layer}: shape mismatch: expected {expected}, got {got:?}")]
    ShapeMismatch {
        /// The layer or op that saw the tensor.
        layer: String,
        /// The shape it expected, in words (may contain `N` for any batch size).
        expected: String,
        /// The shape it got.
        got: Vec<usize>,
    },
    /// `backward` was called without a preceding `forward` in [`Mode::Train`](crate::Mode::Train).
    #[error("{layer}: backward called without a forward pass in training mode")]
    NoForwardCache {
        /// The layer that had nothing cached.
        layer: String,
    },
    /// An optimizer saw a different set of parameters from the one it was built for.
    #[error("optimizer: parameter set changed: {reason}")]
    ParamSetChanged {
        /// Which names appeared, disappeared or changed shape.
        reason: String,
    },
    /// A value that must be finite was NaN or infinite.
    #[error("{op}: non-finite value: {what}")]
    NonFinite {
        /// The op that found it.
        op: String,
        /// What was not finite.
        what: String,
    },
}

/// `Result` with [`TensorError`].
pub type Result<T, E = TensorError> = std::result::Result<T, E>;

impl TensorError {
    /// Shorthand for [`TensorError::ShapeMismatch`].
    pub fn shape(layer: impl Into<String>, expected: impl Into<String>, got: &[usize]) -> Self {
        TensorError::ShapeMismatch {
            layer: layer.into(),
            expected: expected.into(),
            got: got.to_vec(),
        }
    }

    /// Shorthand for [`TensorError::InvalidConfig`].
    pub fn config(layer: impl Into<String>, reason: impl Into<String>) -> Self {
        TensorError::InvalidConfig {
            layer: layer.into(),
            reason: reason.into(),
        }
    }
}
