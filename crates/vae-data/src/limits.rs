//! [`Limits`]: the memory budget a reader may allocate, checked before it allocates.

use std::path::Path;

use crate::error::{DataError, Result};

/// A memory budget for readers, after `image`'s `io::Limits`.
///
/// Every reader computes what it will allocate from the file's header (with checked
/// arithmetic), compares it with [`Limits::max_alloc`] and with the real file length, and
/// only then allocates. A hostile header therefore fails at once with
/// [`DataError::LimitExceeded`] or a [`BadFileKind`](crate::BadFileKind) instead of
/// allocating.
///
/// ```
/// use vae_data::Limits;
/// let limits = Limits::default();
/// assert_eq!(limits.max_alloc, 2 << 30); // 2 GiB
/// let tight = Limits::with_max_alloc(1 << 20);
/// assert_eq!(tight.max_alloc, 1 << 20);
/// assert_eq!(Limits::no_limits().max_alloc, u64::MAX);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest number of bytes one read may allocate for its decoded data (the final
    /// buffer, e.g. 188 MB for MNIST train as f32). Default: 2 GiB.
    pub max_alloc: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_alloc: 2 << 30 }
    }
}

impl Limits {
    /// No limit at all: only the file length bounds what is allocated.
    pub fn no_limits() -> Self {
        Limits {
            max_alloc: u64::MAX,
        }
    }

    /// A budget of `max_alloc` bytes.
    pub fn with_max_alloc(max_alloc: u64) -> Self {
        Limits { max_alloc }
    }

    /// `Ok` if `requested` bytes fit the budget, else [`DataError::LimitExceeded`] naming `path`.
    pub fn check(&self, path: &Path, requested: u64) -> Result<()> {
        if requested > self.max_alloc {
            Err(DataError::LimitExceeded {
                path: path.to_path_buf(),
                requested,
                limit: self.max_alloc,
            })
        } else {
            Ok(())
        }
    }
}
