//! The layers: one file per kind.

pub mod activation;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod dense;
pub mod reshape;
pub mod sequential;
