//! # vae-tensor
//!
//! Layers with hand-written forward **and** backward passes, on `f32` ndarray tensors in
//! NCHW layout (`[batch, channels, height, width]`; dense layers take `[batch, features]`).
//! No autodiff: every backward pass is written out and proven by a finite-difference check
//! ([`gradcheck`]).
//!
//! The [`Layer`] contract: `forward` in [`Mode::Train`] caches what `backward` needs;
//! `backward` takes dL/dy, returns dL/dx and **adds** into each [`Param::grad`]; parameters
//! are visited by dotted name through [`Parameterized::visit_params`], which drives optimizers,
//! checkpoints and gradient norms.
#![doc(test(attr(deny(warnings))))]
// `unsafe` only in `gemm` (the matrixmultiply call) and `layers::conv2d::direct` (AVX-512
// intrinsics), each allowed at its declaration.
#![deny(unsafe_code)]

pub mod error;
#[allow(unsafe_code)]
pub mod gemm;
pub mod gradcheck;
pub mod im2col;
pub mod init;
pub mod layer;
pub mod layers;
pub mod loss;
pub mod optim;
pub mod par;
pub mod shape;

pub use error::{Result, TensorError};
pub use layer::{
    clip_grad_norm, grad_norm, num_params, zero_grad, Layer, Mode, Param, Parameterized,
};
