//! Convolution geometry, computed once with checked arithmetic.
//!
//! [`Conv2dGeom`] holds every size of one 2-D convolution over a batch (the role of candle's
//! `ParamsConv2D` and dfdx's `Conv2DOp`). It is built by [`Conv2dGeom::new`], which
//! validates the configuration and computes the output size, and it is passed by reference
//! to the kernels ([`crate::im2col`]) after that, so the kernels never re-check shapes.
//!
//! [`ConvTranspose2dGeom`] is the geometry of a transposed convolution. A transposed
//! convolution is the adjoint of an ordinary convolution that runs from the transposed
//! convolution's *output* back to its *input*; the struct stores that ordinary convolution
//! ([`ConvTranspose2dGeom::conv`]), so both layers share the same im2col/col2im kernels.

use crate::error::{Result, TensorError};

/// Stride, padding and dilation of a convolution (the same along both spatial axes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvHyper {
    /// Step between neighbouring output positions, in input pixels (> 0).
    pub stride: usize,
    /// Zero padding added on every side of the input.
    pub pad: usize,
    /// Spacing between kernel taps, in input pixels (> 0; 1 = ordinary convolution).
    pub dilation: usize,
}

impl Default for ConvHyper {
    fn default() -> Self {
        ConvHyper {
            stride: 1,
            pad: 0,
            dilation: 1,
        }
    }
}

/// The geometry of a 2-D convolution `[n, c_in, h_in, w_in] -> [n, c_out, h_out, w_out]`
/// with a `[c_out, c_in, k_h, k_w]` kernel.
///
/// `h_out = (h_in + 2·pad − dilation·(k_h − 1) − 1) / stride + 1` (floor division), and the
/// same for `w_out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dGeom {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height.
    pub h_in: usize,
    /// Input width.
    pub w_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel height.
    pub k_h: usize,
    /// Kernel width.
    pub k_w: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding (both axes, every side).
    pub pad: usize,
    /// Dilation (both axes).
    pub dilation: usize,
    /// Output height.
    pub h_out: usize,
    /// Output width.
    pub w_out: usize,
}

fn overflow(layer: &str, what: &str) -> TensorError {
    TensorError::config(layer, format!("{what} overflows usize"))
}

/// Checked product of several sizes.
pub fn checked_product(layer: &str, what: &str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| overflow(layer, what))
}

/// Requires a rank-4 `[n, c, h, w]` shape with `c == channels`; returns `[n, c, h, w]`.
pub fn expect_nchw(layer: &str, shape: &[usize], channels: usize) -> Result<[usize; 4]> {
    match *shape {
        [n, c, h, w] if c == channels => Ok([n, c, h, w]),
        _ => Err(TensorError::shape(
            layer,
            format!("[N, {channels}, H, W]"),
            shape,
        )),
    }
}

impl Conv2dGeom {
    /// Validates a convolution of an input of shape `input` (`[n, c_in, h_in, w_in]`) with
    /// `c_out` output channels and a `kernel = [k_h, k_w]` kernel, and computes its output
    /// size.
    ///
    /// # Errors
    /// - [`TensorError::ShapeMismatch`] when `input` is not rank 4.
    /// - [`TensorError::InvalidConfig`] when a channel count, kernel size, stride or
    ///   dilation is zero, when the dilated kernel does not fit in the padded input, or when a
    ///   size overflows.
    pub fn new(
        layer: &str,
        input: &[usize],
        c_out: usize,
        kernel: [usize; 2],
        hyper: ConvHyper,
    ) -> Result<Self> {
        let [n, c_in, h_in, w_in] = match *input {
            [n, c, h, w] => [n, c, h, w],
            _ => return Err(TensorError::shape(layer, "[N, C, H, W]", input)),
        };
        let [k_h, k_w] = kernel;
        validate_hyper(layer, c_in, c_out, kernel, hyper)?;
        if h_in == 0 || w_in == 0 {
            return Err(TensorError::config(
                layer,
                format!("input spatial size must be > 0, got {h_in}x{w_in}"),
            ));
        }
        let h_out = conv_out_len(layer, "height", h_in, k_h, hyper)?;
        let w_out = conv_out_len(layer, "width", w_in, k_w, hyper)?;
        let g = Conv2dGeom {
            n,
            c_in,
            h_in,
            w_in,
            c_out,
            k_h,
            k_w,
            stride: hyper.stride,
            pad: hyper.pad,
            dilation: hyper.dilation,
            h_out,
            w_out,
        };
        g.check_sizes(layer)?;
        Ok(g)
    }

    /// Checks that every buffer size this geometry implies fits in `usize`.
    fn check_sizes(&self, layer: &str) -> Result<()> {
        checked_product(
            layer,
            "input size",
            &[self.n, self.c_in, self.h_in, self.w_in],
        )?;
        checked_product(
            layer,
            "output size",
            &[self.n, self.c_out, self.h_out, self.w_out],
        )?;
        checked_product(
            layer,
            "im2col buffer size",
            &[self.c_in, self.k_h, self.k_w, self.h_out, self.w_out],
        )?;
        checked_product(
            layer,
            "weight size",
            &[self.c_out, self.c_in, self.k_h, self.k_w],
        )?;
        // The phase-plane layout of `im2col::PhaseIm2col` (extended output grid).
        let ext = |len: usize, k: usize, out: usize, spare: usize| -> Option<usize> {
            let padded = len
                .checked_add(self.pad.checked_mul(2)?)?
                .div_ceil(self.stride);
            let reach = (k - 1).checked_mul(self.dilation)? / self.stride;
            Some(padded.max(reach.checked_add(out)?.checked_add(spare)?))
        };
        let pw = ext(self.w_in, self.k_w, self.w_out, 0)
            .ok_or_else(|| overflow(layer, "phase planes"))?;
        let ph = ext(self.h_in, self.k_h, self.h_out, 1)
            .ok_or_else(|| overflow(layer, "phase planes"))?;
        checked_product(layer, "phase planes", &[self.stride, self.stride, ph, pw])?;
        checked_product(
            layer,
            "extended im2col buffer size",
            &[self.c_in, self.k_h, self.k_w, self.h_out, pw],
        )?;
        checked_product(layer, "extended output size", &[self.c_out, self.h_out, pw])?;
        Ok(())
    }

    /// Rows of the im2col matrix: `c_in · k_h · k_w` (the gemm's inner dimension).
    pub fn col_rows(&self) -> usize {
        self.c_in * self.k_h * self.k_w
    }

    /// Output positions per image: `h_out · w_out` (columns of one image's im2col matrix).
    pub fn out_plane(&self) -> usize {
        self.h_out * self.w_out
    }

    /// Input pixels per channel: `h_in · w_in`.
    pub fn in_plane(&self) -> usize {
        self.h_in * self.w_in
    }

    /// Scalars in one input image: `c_in · h_in · w_in`.
    pub fn in_image(&self) -> usize {
        self.c_in * self.in_plane()
    }

    /// Scalars in one output image: `c_out · h_out · w_out`.
    pub fn out_image(&self) -> usize {
        self.c_out * self.out_plane()
    }

    /// Input shape `[n, c_in, h_in, w_in]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.n, self.c_in, self.h_in, self.w_in]
    }

    /// Output shape `[n, c_out, h_out, w_out]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.n, self.c_out, self.h_out, self.w_out]
    }

    /// Multiply-accumulates of one forward pass over the batch:
    /// `n · c_out · h_out · w_out · c_in · k_h · k_w` (FLOPs are twice this).
    pub fn macs(&self) -> u64 {
        [
            self.n, self.c_out, self.h_out, self.w_out, self.c_in, self.k_h, self.k_w,
        ]
        .iter()
        .map(|&d| d as u64)
        .product()
    }
}

fn validate_hyper(
    layer: &str,
    c_in: usize,
    c_out: usize,
    kernel: [usize; 2],
    hyper: ConvHyper,
) -> Result<()> {
    if c_in == 0 || c_out == 0 {
        return Err(TensorError::config(
            layer,
            format!("channel counts must be > 0, got c_in = {c_in}, c_out = {c_out}"),
        ));
    }
    if kernel[0] == 0 || kernel[1] == 0 {
        return Err(TensorError::config(
            layer,
            format!("kernel size must be > 0, got {kernel:?}"),
        ));
    }
    if hyper.stride == 0 {
        return Err(TensorError::config(layer, "stride must be > 0"));
    }
    if hyper.dilation == 0 {
        return Err(TensorError::config(layer, "dilation must be > 0"));
    }
    Ok(())
}

/// `(len + 2·pad − dilation·(k − 1) − 1) / stride + 1`, checked.
fn conv_out_len(layer: &str, axis: &str, len: usize, k: usize, h: ConvHyper) -> Result<usize> {
    let padded = h
        .pad
        .checked_mul(2)
        .and_then(|p| p.checked_add(len))
        .ok_or_else(|| overflow(layer, "padded input"))?;
    let span = h
        .dilation
        .checked_mul(k - 1)
        .and_then(|s| s.checked_add(1))
        .ok_or_else(|| overflow(layer, "dilated kernel"))?;
    if span > padded {
        return Err(TensorError::config(
            layer,
            format!(
                "dilated kernel {axis} {span} (k = {k}, dilation = {}) is larger than the padded input {axis} {padded} ({len} + 2·{})",
                h.dilation, h.pad
            ),
        ));
    }
    Ok((padded - span) / h.stride + 1)
}

/// The geometry of a transposed 2-D convolution
/// `[n, c_in, h_in, w_in] -> [n, c_out, h_out, w_out]` with a `[c_in, c_out, k_h, k_w]`
/// kernel (PyTorch's `ConvTranspose2d` layout and semantics):
///
/// `h_out = (h_in − 1)·stride − 2·pad + dilation·(k_h − 1) + output_padding + 1`,
/// with `output_padding < max(stride, dilation)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTranspose2dGeom {
    /// The ordinary convolution whose adjoint this is: it maps `[n, c_out, h_out, w_out]`
    /// (this layer's output) to `[n, c_in, h_in, w_in]` (this layer's input). Its `c_in`
    /// is this layer's `c_out` and vice versa.
    pub conv: Conv2dGeom,
    /// Extra rows/columns added at the bottom/right of the output.
    pub output_padding: usize,
}

impl ConvTranspose2dGeom {
    /// Validates a transposed convolution of an input of shape `input`
    /// (`[n, c_in, h_in, w_in]`) with `c_out` output channels and computes its output size.
    ///
    /// # Errors
    /// - [`TensorError::ShapeMismatch`] when `input` is not rank 4.
    /// - [`TensorError::InvalidConfig`] when a size is zero, when
    ///   `output_padding >= max(stride, dilation)`, when `2·pad` exceeds the unpadded output
    ///   size, or when a size overflows.
    pub fn new(
        layer: &str,
        input: &[usize],
        c_out: usize,
        kernel: [usize; 2],
        hyper: ConvHyper,
        output_padding: usize,
    ) -> Result<Self> {
        let [n, c_in, h_in, w_in] = match *input {
            [n, c, h, w] => [n, c, h, w],
            _ => return Err(TensorError::shape(layer, "[N, C, H, W]", input)),
        };
        validate_hyper(layer, c_in, c_out, kernel, hyper)?;
        if output_padding >= hyper.stride.max(hyper.dilation) {
            return Err(TensorError::config(
                layer,
                format!(
                    "output_padding {output_padding} must be smaller than max(stride {}, dilation {})",
                    hyper.stride, hyper.dilation
                ),
            ));
        }
        if h_in == 0 || w_in == 0 {
            return Err(TensorError::config(
                layer,
                format!("input spatial size must be > 0, got {h_in}x{w_in}"),
            ));
        }
        let h_out = convt_out_len(layer, "height", h_in, kernel[0], hyper, output_padding)?;
        let w_out = convt_out_len(layer, "width", w_in, kernel[1], hyper, output_padding)?;
        let conv = Conv2dGeom {
            n,
            c_in: c_out,
            h_in: h_out,
            w_in: w_out,
            c_out: c_in,
            k_h: kernel[0],
            k_w: kernel[1],
            stride: hyper.stride,
            pad: hyper.pad,
            dilation: hyper.dilation,
            h_out: h_in,
            w_out: w_in,
        };
        conv.check_sizes(layer)?;
        Ok(ConvTranspose2dGeom {
            conv,
            output_padding,
        })
    }

    /// Input shape `[n, c_in, h_in, w_in]` of the transposed convolution.
    pub fn input_shape(&self) -> [usize; 4] {
        self.conv.output_shape()
    }

    /// Output shape `[n, c_out, h_out, w_out]` of the transposed convolution.
    pub fn output_shape(&self) -> [usize; 4] {
        self.conv.input_shape()
    }

    /// Multiply-accumulates of one forward pass (the same as the underlying convolution's).
    pub fn macs(&self) -> u64 {
        self.conv.macs()
    }
}

/// `(len − 1)·stride − 2·pad + dilation·(k − 1) + output_padding + 1`, checked.
fn convt_out_len(
    layer: &str,
    axis: &str,
    len: usize,
    k: usize,
    h: ConvHyper,
    output_padding: usize,
) -> Result<usize> {
    let full = (len - 1)
        .checked_mul(h.stride)
        .and_then(|v| v.checked_add(h.dilation.checked_mul(k - 1)?))
        .and_then(|v| v.checked_add(output_padding + 1))
        .ok_or_else(|| overflow(layer, "output size"))?;
    let two_pad = h
        .pad
        .checked_mul(2)
        .ok_or_else(|| overflow(layer, "padding"))?;
    if two_pad >= full {
        return Err(TensorError::config(
            layer,
            format!("padding 2·{} removes the whole output {axis} {full}", h.pad),
        ));
    }
    Ok(full - two_pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hyper(stride: usize, pad: usize, dilation: usize) -> ConvHyper {
        ConvHyper {
            stride,
            pad,
            dilation,
        }
    }

    #[test]
    fn conv_output_sizes_match_the_formula() -> Result<()> {
        let g = Conv2dGeom::new("c", &[128, 1, 28, 28], 32, [3, 3], hyper(1, 0, 1))?;
        assert_eq!(g.output_shape(), [128, 32, 26, 26]);
        let g = Conv2dGeom::new("c", &[2, 3, 28, 28], 4, [3, 3], hyper(2, 1, 1))?;
        assert_eq!((g.h_out, g.w_out), (14, 14));
        let g = Conv2dGeom::new("c", &[1, 3, 9, 7], 4, [3, 2], hyper(2, 1, 2))?;
        // (9 + 2 - 4 - 1) / 2 + 1 = 4 ; (7 + 2 - 2 - 1) / 2 + 1 = 4
        assert_eq!((g.h_out, g.w_out), (4, 4));
        assert_eq!(g.col_rows(), 3 * 3 * 2);
        assert_eq!(g.macs(), 4 * 4 * 4 * 18);
        Ok(())
    }

    #[test]
    fn conv_transpose_sizes_follow_pytorch() -> Result<()> {
        let t = ConvTranspose2dGeom::new("t", &[128, 64, 7, 7], 64, [3, 3], hyper(2, 1, 1), 1)?;
        assert_eq!(t.output_shape(), [128, 64, 14, 14]);
        let t = ConvTranspose2dGeom::new("t", &[128, 32, 28, 28], 1, [3, 3], hyper(1, 1, 1), 0)?;
        assert_eq!(t.output_shape(), [128, 1, 28, 28]);
        // dilation 3, stride 1: output_padding 2 is allowed (< max(1, 3)).
        let t = ConvTranspose2dGeom::new("t", &[1, 2, 5, 4], 3, [2, 2], hyper(1, 0, 3), 2)?;
        assert_eq!(t.output_shape(), [1, 3, 4 + 3 + 2 + 1, 3 + 3 + 2 + 1]);
        // The underlying convolution maps the output back onto the input grid.
        assert_eq!(t.conv.h_out, 5);
        assert_eq!(t.input_shape(), [1, 2, 5, 4]);
        Ok(())
    }

    #[test]
    fn bad_configurations_are_typed_errors() {
        let is_config = |r: Result<Conv2dGeom>| matches!(r, Err(TensorError::InvalidConfig { .. }));
        assert!(is_config(Conv2dGeom::new(
            "c",
            &[1, 1, 2, 2],
            1,
            [3, 3],
            hyper(1, 0, 1)
        )));
        assert!(is_config(Conv2dGeom::new(
            "c",
            &[1, 1, 5, 5],
            1,
            [3, 3],
            hyper(0, 0, 1)
        )));
        assert!(is_config(Conv2dGeom::new(
            "c",
            &[1, 1, 5, 5],
            1,
            [3, 3],
            hyper(1, 0, 0)
        )));
        assert!(is_config(Conv2dGeom::new(
            "c",
            &[1, 0, 5, 5],
            1,
            [3, 3],
            hyper(1, 0, 1)
        )));
        assert!(is_config(Conv2dGeom::new(
            "c",
            &[1, 1, 5, 5],
            1,
            [0, 3],
            hyper(1, 0, 1)
        )));
        assert!(is_config(Conv2dGeom::new(
            "c",
            &[1, 1, 5, 5],
            1,
            [3, 3],
            hyper(1, usize::MAX / 2, 1)
        )));
        assert!(matches!(
            Conv2dGeom::new("c", &[1, 5, 5], 1, [3, 3], hyper(1, 0, 1)),
            Err(TensorError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            ConvTranspose2dGeom::new("t", &[1, 1, 4, 4], 1, [3, 3], hyper(2, 1, 1), 2),
            Err(TensorError::InvalidConfig { .. })
        ));
        assert!(matches!(
            ConvTranspose2dGeom::new("t", &[1, 1, 1, 1], 1, [1, 1], hyper(1, 1, 1), 0),
            Err(TensorError::InvalidConfig { .. })
        ));
    }

    #[test]
    fn expect_nchw_names_the_expected_shape() {
        match expect_nchw("conv1", &[2, 3, 4], 3) {
            Err(TensorError::ShapeMismatch {
                layer,
                expected,
                got,
            }) => {
                assert_eq!(layer, "conv1");
                assert_eq!(expected, "[N, 3, H, W]");
                assert_eq!(got, vec![2, 3, 4]);
            }
            other => panic!("expected ShapeMismatch, got {other:?}"),
        }
    }
}
