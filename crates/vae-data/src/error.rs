//! The error type of `vae-data`: [`DataError`], grouped by cause, and the [`Result`] alias.
//!
//! Variants are grouped by who is at fault, after `image`'s `ImageError`:
//!
//! | group | variants |
//! |---|---|
//! | bad file | [`DataError::BadFile`] (with a [`BadFileKind`]), [`DataError::Decode`] |
//! | bad argument | [`DataError::InvalidArgument`] |
//! | resource limit | [`DataError::LimitExceeded`] |
//! | mismatch between files | [`DataError::CountMismatch`], [`DataError::LabelOutOfRange`], [`DataError::ShapeMismatch`] |
//! | not found | [`DataError::NotFound`] |
//! | I/O | [`DataError::Io`] |
//!
//! Every variant that concerns a file names it. Tests match on the variant, not the text.

use std::fmt;
use std::path::PathBuf;

/// `Result` with [`DataError`] as the default error type.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Everything that can go wrong when reading, writing or batching data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    // ---- bad file -------------------------------------------------------------------------
    /// The file's bytes are not what its format requires. `offset` is the byte offset of the
    /// problem where one makes sense; for a `.gz` file it counts decompressed bytes.
    #[error("{}: {kind}{}", path.display(), OffsetSuffix(*offset))]
    BadFile {
        /// The file (or a name standing for an in-memory buffer, such as `<memory>`).
        path: PathBuf,
        /// Byte offset of the problem, if it has one.
        offset: Option<u64>,
        /// What is wrong.
        kind: BadFileKind,
    },
    /// An image file (PNG, JPEG, ...) could not be decoded by the `image` crate (corrupt or
    /// truncated data, an unsupported format, or the decoder's own memory limit, which is
    /// set from [`Limits::max_alloc`](crate::Limits::max_alloc)).
    #[error("{}: cannot decode image: {source}", path.display())]
    Decode {
        /// The image file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },

    // ---- bad argument ---------------------------------------------------------------------
    /// A function was called with an argument it cannot work with (batch size 0, a patch
    /// larger than the image, a validation fraction above 1, ...).
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument's name.
        name: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    // ---- resource limit -------------------------------------------------------------------
    /// Reading the file would need more memory than [`Limits::max_alloc`](crate::Limits::max_alloc)
    /// allows. Raised before anything is allocated.
    #[error(
        "{}: reading it needs {requested} bytes, over the limit of {limit} bytes \
         (raise Limits::max_alloc to allow it)",
        path.display()
    )]
    LimitExceeded {
        /// The file.
        path: PathBuf,
        /// Bytes the read would allocate.
        requested: u64,
        /// The budget in force.
        limit: u64,
    },

    // ---- mismatch between files -----------------------------------------------------------
    /// An images file and its labels file hold different numbers of items.
    #[error(
        "{} holds {n_images} images but {} holds {n_labels} labels",
        images.display(),
        labels.display()
    )]
    CountMismatch {
        /// The images file.
        images: PathBuf,
        /// Number of images in it.
        n_images: usize,
        /// The labels file.
        labels: PathBuf,
        /// Number of labels in it.
        n_labels: usize,
    },
    /// A label is not below the number of classes.
    #[error(
        "{}: label {label} at index {index} is out of range 0..{num_classes}",
        path.display()
    )]
    LabelOutOfRange {
        /// The labels file.
        path: PathBuf,
        /// Index of the offending item.
        index: usize,
        /// The label found.
        label: i64,
        /// Number of classes the data set has.
        num_classes: usize,
    },
    /// A file's shape does not match what it must agree with (an MNIST image that is not
    /// 28×28, a segmentation map of a different size from its image, ...).
    #[error("{}: expected shape {expected:?}, found {found:?}", path.display())]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The shape it should have.
        expected: Vec<usize>,
        /// The shape it has.
        found: Vec<usize>,
    },

    // ---- not found ------------------------------------------------------------------------
    /// The data were not found. Says every place that was searched and which files were
    /// expected there.
    #[error("{}", NotFoundMessage { looked_in, expected })]
    NotFound {
        /// Every directory or file that was tried, in order.
        looked_in: Vec<PathBuf>,
        /// The file names (or patterns) that were expected.
        expected: Vec<String>,
    },

    // ---- I/O ------------------------------------------------------------------------------
    /// The operating system failed to read or write a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// What is wrong inside a file, for [`DataError::BadFile`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadFileKind {
    /// The first bytes are not a known magic number (IDX: two zero bytes, then type and rank;
    /// gzip: `1f 8b`).
    BadMagic {
        /// The bytes found (up to four).
        found: Vec<u8>,
    },
    /// The IDX type code (third byte) is not one of 0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E.
    UnknownTypeCode {
        /// The code found.
        code: u8,
    },
    /// The IDX rank (fourth byte) is not allowed (0, or not what the data set needs).
    BadRank {
        /// The rank found.
        rank: u8,
    },
    /// The product of the dimensions (times the element size) overflows 64 bits or `usize`.
    DimsOverflow {
        /// The dimensions read from the header.
        dims: Vec<u64>,
    },
    /// The file ends before the size its header declares.
    Truncated {
        /// Bytes the header declares (header included).
        expected: u64,
        /// Bytes actually present.
        actual: u64,
    },
    /// The file goes on after the size its header declares.
    TrailingBytes {
        /// Bytes the header declares (header included).
        expected: u64,
        /// Bytes actually present (for a `.gz` file: at least this many).
        actual: u64,
    },
    /// A `.gz` file declares more data than a deflate stream of its size can possibly hold
    /// (deflate expands at most 1032:1), so it must be truncated or corrupt.
    ImpossibleSize {
        /// Decompressed bytes the header declares (header included).
        declared: u64,
        /// Most bytes the compressed file could decode to.
        max_possible: u64,
    },
    /// The gzip layer is corrupt (bad deflate data, bad checksum, bad header).
    BadGzip {
        /// The decoder's message.
        reason: String,
    },
    /// The file is well formed but is not what was asked for (wrong element type, rank or
    /// sample shape for a data set).
    Unexpected {
        /// What was wanted, in words.
        expected: String,
        /// What the file holds, in words.
        found: String,
    },
    /// A text index (such as BSDS500's `index.csv`) is malformed.
    BadIndex {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for BadFileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadFileKind::BadMagic { found } => write!(f, "bad magic number {found:02x?}"),
            BadFileKind::UnknownTypeCode { code } => {
                write!(f, "unknown IDX element type code 0x{code:02x}")
            }
            BadFileKind::BadRank { rank } => write!(f, "bad IDX rank {rank}"),
            BadFileKind::DimsOverflow { dims } => {
                write!(f, "dimensions {dims:?} overflow when multiplied")
            }
            BadFileKind::Truncated { expected, actual } => write!(
                f,
                "truncated: header declares {expected} bytes but only {actual} are present"
            ),
            BadFileKind::TrailingBytes { expected, actual } => write!(
                f,
                "trailing bytes: header declares {expected} bytes but {actual} are present"
            ),
            BadFileKind::ImpossibleSize {
                declared,
                max_possible,
            } => write!(
                f,
                "header declares {declared} decompressed bytes but the gzip file can hold \
                 at most {max_possible}: truncated or corrupt"
            ),
            BadFileKind::BadGzip { reason } => write!(f, "corrupt gzip data: {reason}"),
            BadFileKind::Unexpected { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            BadFileKind::BadIndex { line, reason } => write!(f, "line {line}: {reason}"),
        }
    }
}

struct OffsetSuffix(Option<u64>);

impl fmt::Display for OffsetSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(o) => write!(f, " (at byte {o})"),
            None => Ok(()),
        }
    }
}

struct NotFoundMessage<'a> {
    looked_in: &'a [PathBuf],
    expected: &'a [String],
}

impl fmt::Display for NotFoundMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "data not found; looked in")?;
        if self.looked_in.is_empty() {
            write!(f, " nothing")?;
        }
        for (i, p) in self.looked_in.iter().enumerate() {
            write!(f, "{} {}", if i == 0 { "" } else { "," }, p.display())?;
        }
        write!(f, "; expected ")?;
        for (i, e) in self.expected.iter().enumerate() {
            write!(f, "{}{e}", if i == 0 { "" } else { ", " })?;
        }
        write!(
            f,
            " (pass --data DIR or set VAE_DATA_DIR to the folder that holds them)"
        )
    }
}

impl DataError {
    /// A [`DataError::BadFile`] for `path` at `offset`.
    pub(crate) fn bad_file(
        path: impl Into<PathBuf>,
        offset: Option<u64>,
        kind: BadFileKind,
    ) -> Self {
        DataError::BadFile {
            path: path.into(),
            offset,
            kind,
        }
    }

    /// A [`DataError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`DataError::InvalidArgument`].
    pub(crate) fn arg(name: &'static str, reason: impl Into<String>) -> Self {
        DataError::InvalidArgument {
            name,
            reason: reason.into(),
        }
    }

    /// The [`BadFileKind`] if this is a [`DataError::BadFile`].
    ///
    /// ```
    /// use vae_data::{idx, BadFileKind, Limits};
    /// let err = idx::read_idx_bytes(&[0, 0, 0x08], &Limits::default()).unwrap_err();
    /// assert!(matches!(err.bad_file_kind(), Some(BadFileKind::Truncated { .. })));
    /// ```
    pub fn bad_file_kind(&self) -> Option<&BadFileKind> {
        match self {
            DataError::BadFile { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_and_offset() {
        let e = DataError::bad_file(
            "a/b.idx",
            Some(2),
            BadFileKind::UnknownTypeCode { code: 0x42 },
        );
        let s = e.to_string();
        assert!(
            s.contains("a/b.idx") && s.contains("0x42") && s.contains("byte 2"),
            "{s}"
        );
        let e = DataError::NotFound {
            looked_in: vec!["x".into(), "y".into()],
            expected: vec!["train-images-idx3-ubyte[.gz]".into()],
        };
        let s = e.to_string();
        assert!(
            s.contains("x, y") && s.contains("train-images-idx3-ubyte"),
            "{s}"
        );
    }
}
