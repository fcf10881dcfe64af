//! TODO(conv_transpose2d): being written.
