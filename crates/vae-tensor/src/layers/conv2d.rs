//! TODO(conv2d): being written.
