//! TODO(sequential): being written.
