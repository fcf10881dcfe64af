//! TODO(reshape): being written.
