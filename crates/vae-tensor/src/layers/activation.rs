//! TODO(activation): being written.
