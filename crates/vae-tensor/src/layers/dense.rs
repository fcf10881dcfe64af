//! TODO(dense): being written.
