//! 2-D convolution ([`Conv2d`]) with stride, padding and dilation, as im2col + gemm.
//!
//! The batched kernels live in [`kernel`] and are shared with
//! [`ConvTranspose2d`](crate::layers::conv_transpose2d::ConvTranspose2d).

// The one-channel AVX-512 kernels: with `crate::gemm`, the only module allowed `unsafe`.
#[allow(unsafe_code)]
pub mod direct;
pub mod kernel;
#[cfg(test)]
mod tests;

use crate::error::{Result, TensorError};
use crate::layer::{check_dy, join_name, Layer, Mode, Param, Parameterized};
use crate::shape::{expect_nchw, Conv2dGeom, ConvHyper};
use kernel::ConvScratch;
use ndarray::{ArrayD, IxDyn};
use rand::Rng;

/// Configuration of a [`Conv2d`] (builder style).
///
/// ```
/// use vae_tensor::layers::conv2d::Conv2dConfig;
/// let cfg = Conv2dConfig::new(32, 64, 3).stride(2).padding(1);
/// assert_eq!((cfg.c_in, cfg.c_out, cfg.kernel, cfg.stride), (32, 64, [3, 3], 2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel size `[k_h, k_w]`.
    pub kernel: [usize; 2],
    /// Stride (both axes), default 1.
    pub stride: usize,
    /// Zero padding on every side, default 0.
    pub padding: usize,
    /// Dilation (both axes), default 1.
    pub dilation: usize,
    /// Whether the layer has a bias, default true.
    pub bias: bool,
}

impl Conv2dConfig {
    /// A `kernel × kernel` convolution from `c_in` to `c_out` channels, stride 1, no
    /// padding, no dilation, with bias.
    pub fn new(c_in: usize, c_out: usize, kernel: usize) -> Self {
        Conv2dConfig {
            c_in,
            c_out,
            kernel: [kernel, kernel],
            stride: 1,
            padding: 0,
            dilation: 1,
            bias: true,
        }
    }
    /// Sets a non-square kernel `[k_h, k_w]`.
    pub fn kernel_hw(mut self, k_h: usize, k_w: usize) -> Self {
        self.kernel = [k_h, k_w];
        self
    }
    /// Sets the stride.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }
    /// Sets the zero padding.
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }
    /// Sets the dilation.
    pub fn dilation(mut self, dilation: usize) -> Self {
        self.dilation = dilation;
        self
    }
    /// Turns the bias on or off.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// Stride, padding and dilation as a [`ConvHyper`].
    pub fn hyper(&self) -> ConvHyper {
        ConvHyper {
            stride: self.stride,
            pad: self.padding,
            dilation: self.dilation,
        }
    }

    /// Checks that channels, kernel, stride and dilation are all > 0.
    ///
    /// # Errors
    /// [`TensorError::InvalidConfig`] naming the zero field.
    pub fn validate(&self, layer: &str) -> Result<()> {
        let fields = [
            ("c_in", self.c_in),
            ("c_out", self.c_out),
            ("kernel height", self.kernel[0]),
            ("kernel width", self.kernel[1]),
            ("stride", self.stride),
            ("dilation", self.dilation),
        ];
        for (name, v) in fields {
            if v == 0 {
                return Err(TensorError::config(layer, format!("{name} must be > 0")));
            }
        }
        Ok(())
    }
}

/// He-normal samples `N(0, 2 / fan_in)` of the given shape.
/// He-normal weights (std = sqrt(2 / fan_in)), the default for both convolution layers.
pub(crate) fn he_normal(shape: &[usize], fan_in: usize, rng: &mut impl Rng) -> ArrayD<f32> {
    crate::init::Init::HeNormal.sample(shape, fan_in, 1, rng)
}

/// The data of `a` in standard (row-major) order, without a copy when it already is.
pub(crate) fn into_std_vec(a: ArrayD<f32>) -> Vec<f32> {
    if a.is_standard_layout() {
        let len = a.len();
        let (v, off) = a.into_raw_vec_and_offset();
        if off.unwrap_or(0) == 0 && v.len() == len {
            return v;
        }
        let off = off.unwrap_or(0);
        return v[off..off + len].to_vec();
    }
    a.iter().copied().collect()
}

/// A row-major slice of `a`, converting `a` to standard layout first if needed.
pub(crate) fn std_slice_mut(a: &mut ArrayD<f32>) -> &mut [f32] {
    if !a.is_standard_layout() {
        *a = a.as_standard_layout().into_owned();
    }
    a.as_slice_mut().expect("standard layout")
}

/// Checks that a parameter's value and gradient still have shape `expected`.
pub(crate) fn check_param(layer: &str, name: &str, p: &Param, expected: &[usize]) -> Result<()> {
    for (what, shape) in [("value", p.value.shape()), ("grad", p.grad.shape())] {
        if shape != expected {
            return Err(TensorError::shape(
                layer,
                format!("{name} {what} of shape {expected:?}"),
                shape,
            ));
        }
    }
    Ok(())
}

/// The bias parameter of a convolution layer: `Some` with shape `[c_out]` exactly when the
/// config asks for a bias, an error when a bias is given against the config or missing.
pub(crate) fn bias_param(
    layer: &str,
    want: bool,
    bias: Option<ArrayD<f32>>,
    c_out: usize,
) -> Result<Option<Param>> {
    match (want, bias) {
        (true, Some(b)) => {
            let b = Param::new(b);
            check_param(layer, "bias", &b, &[c_out])?;
            Ok(Some(b))
        }
        (false, None) => Ok(None),
        (want, _) => Err(TensorError::config(
            layer,
            format!(
                "config says bias = {want} but a bias was {}given",
                if want { "not " } else { "" }
            ),
        )),
    }
}

/// Takes the recycled buffer if it has `len` elements (its contents are overwritten by the
/// kernel), otherwise allocates.
pub(crate) fn output_buffer(spare: &mut Vec<f32>, len: usize) -> Vec<f32> {
    let mut v = std::mem::take(spare);
    if v.len() != len {
        v.clear();
        v.resize(len, 0.0);
    }
    v
}

#[derive(Debug)]
struct Conv2dCache {
    /// The input, row-major; overwritten in place by dL/dx during backward.
    x: Vec<f32>,
    geom: Conv2dGeom,
}

/// A 2-D convolution over NCHW images.
///
/// # Shapes
/// - input `[N, c_in, H, W]` → output `[N, c_out, H', W']` with
///   `H' = (H + 2·padding − dilation·(k_h − 1) − 1) / stride + 1` (floor), same for `W'`.
/// - `weight: [c_out, c_in, k_h, k_w]`, `bias: [c_out]`.
///
/// # Formulas
/// - forward: `y[n, co, oy, ox] = b[co] + Σ_{ci,ky,kx} w[co, ci, ky, kx] · x[n, ci, oy·s + ky·d − p, ox·s + kx·d − p]`
///   (zero outside the image), computed as `y_n = W · im2col(x_n)`.
/// - backward: `dW += Σ_n dy_n · im2col(x_n)ᵀ`, `db += Σ_{n,oy,ox} dy`,
///   `dx_n = col2im(Wᵀ · dy_n)`.
///
/// PyTorch equivalent: `torch.nn.Conv2d(c_in, c_out, k, stride, padding, dilation, bias=bias)`.
///
/// Forward in [`Mode::Train`] caches the input (moved, no copy); backward overwrites that
/// cached buffer with dL/dx and returns it, and keeps `dy`'s buffer for the next forward's
/// output, so a training step allocates nothing once shapes are stable.
///
/// ```
/// use ndarray::{ArrayD, IxDyn};
/// use vae_tensor::layers::conv2d::{Conv2d, Conv2dConfig};
/// use vae_tensor::{Layer, Mode};
/// // A 2x2 all-ones kernel sums each 2x2 window of a 3x3 image.
/// let w = ArrayD::from_elem(IxDyn(&[1, 1, 2, 2]), 1.0f32);
/// let mut conv = Conv2d::from_weights(Conv2dConfig::new(1, 1, 2).bias(false), w, None)?;
/// let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, 3, 3]), (1..=9).map(|v| v as f32).collect())?;
/// let y = conv.forward(x, Mode::Eval)?;
/// assert_eq!(y.shape(), &[1, 1, 2, 2]);
/// assert_eq!(y.iter().copied().collect::<Vec<_>>(), vec![12.0, 16.0, 24.0, 28.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Conv2d {
    cfg: Conv2dConfig,
    name: String,
    /// `[c_out, c_in, k_h, k_w]`.
    pub weight: Param,
    /// `[c_out]`, when the config has a bias.
    pub bias: Option<Param>,
    cache: Option<Conv2dCache>,
    scratch: ConvScratch,
    spare: Vec<f32>,
}

impl Conv2d {
    /// A convolution with He-normal weights (`fan_in = c_in·k_h·k_w`) and zero bias.
    ///
    /// # Errors
    /// [`TensorError::InvalidConfig`] when a channel count, kernel size, stride or dilation is
    /// zero.
    pub fn new(cfg: Conv2dConfig, rng: &mut impl Rng) -> Result<Self> {
        let shape = Self::weight_shape(&cfg);
        let w = he_normal(&shape, cfg.c_in * cfg.kernel[0] * cfg.kernel[1], rng);
        let b = cfg.bias.then(|| ArrayD::zeros(IxDyn(&[cfg.c_out])));
        Self::from_weights(cfg, w, b)
    }

    /// A convolution with the given weight (`[c_out, c_in, k_h, k_w]`) and bias (`[c_out]`,
    /// required exactly when `cfg.bias`), e.g. from a checkpoint.
    ///
    /// # Errors
    /// [`TensorError::InvalidConfig`] for a bad config or a bias given/missing against
    /// `cfg.bias`; [`TensorError::ShapeMismatch`] for a weight or bias of the wrong shape.
    pub fn from_weights(
        cfg: Conv2dConfig,
        weight: ArrayD<f32>,
        bias: Option<ArrayD<f32>>,
    ) -> Result<Self> {
        let name = describe(&cfg);
        cfg.validate(&name)?;
        let weight = Param::new(weight);
        check_param(&name, "weight", &weight, &Self::weight_shape(&cfg))?;
        let bias = bias_param(&name, cfg.bias, bias, cfg.c_out)?;
        Ok(Conv2d {
            cfg,
            name,
            weight,
            bias,
            cache: None,
            scratch: ConvScratch::default(),
            spare: Vec::new(),
        })
    }

    /// The layer's configuration.
    pub fn config(&self) -> &Conv2dConfig {
        &self.cfg
    }

    fn weight_shape(cfg: &Conv2dConfig) -> [usize; 4] {
        [cfg.c_out, cfg.c_in, cfg.kernel[0], cfg.kernel[1]]
    }

    /// The geometry for an input shape, with the shape errors of the layer contract.
    pub fn geometry(&self, input: &[usize]) -> Result<Conv2dGeom> {
        expect_nchw(&self.name, input, self.cfg.c_in)?;
        Conv2dGeom::new(
            &self.name,
            input,
            self.cfg.c_out,
            self.cfg.kernel,
            self.cfg.hyper(),
        )
    }

    fn check_params(&self) -> Result<()> {
        check_param(
            &self.name,
            "weight",
            &self.weight,
            &Self::weight_shape(&self.cfg),
        )?;
        if let Some(b) = &self.bias {
            check_param(&self.name, "bias", b, &[self.cfg.c_out])?;
        }
        Ok(())
    }
}

fn describe(cfg: &Conv2dConfig) -> String {
    format!(
        "Conv2d({}->{}, k{}x{}, s{}, p{}, d{}{})",
        cfg.c_in,
        cfg.c_out,
        cfg.kernel[0],
        cfg.kernel[1],
        cfg.stride,
        cfg.padding,
        cfg.dilation,
        if cfg.bias { "" } else { ", no bias" }
    )
}

impl Parameterized for Conv2d {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        f(&join_name(prefix, "weight"), &mut self.weight);
        if let Some(b) = &mut self.bias {
            f(&join_name(prefix, "bias"), b);
        }
    }
}

impl Layer for Conv2d {
    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        let g = self.geometry(x.shape())?;
        self.check_params()?;
        let x = into_std_vec(x);
        let mut y = output_buffer(&mut self.spare, g.output_shape().iter().product());
        let w = std_slice_mut(&mut self.weight.value);
        let b = self.bias.as_mut().map(|b| &*std_slice_mut(&mut b.value));
        kernel::conv_forward(&g, &x, w, b, &mut y, &mut self.scratch);
        self.cache = match mode {
            Mode::Train => Some(Conv2dCache { x, geom: g }),
            Mode::Eval => None,
        };
        Ok(ArrayD::from_shape_vec(IxDyn(&g.output_shape()), y).expect("length matches geometry"))
    }

    fn backward(&mut self, dy: ArrayD<f32>) -> Result<ArrayD<f32>> {
        let g = match &self.cache {
            Some(c) => c.geom,
            None => {
                return Err(TensorError::NoForwardCache {
                    layer: self.name.clone(),
                })
            }
        };
        check_dy(&self.name, &g.output_shape(), &dy)?;
        self.check_params()?;
        let mut dx = self.cache.take().expect("checked above").x;
        let dy = into_std_vec(dy);
        // The kernel reads the weight while it adds into the gradient: split the borrow.
        let Param { value, grad } = &mut self.weight;
        let w = std_slice_mut(value);
        let dw = std_slice_mut(grad);
        let db = self.bias.as_mut().map(|b| std_slice_mut(&mut b.grad));
        kernel::conv_backward(&g, &mut dx, w, &dy, dw, db, &mut self.scratch);
        self.spare = dy;
        Ok(ArrayD::from_shape_vec(IxDyn(&g.input_shape()), dx).expect("length matches geometry"))
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(self.geometry(input)?.output_shape().to_vec())
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}
