//! 2-D transposed convolution ([`ConvTranspose2d`]) with stride, padding, output padding and
//! dilation; forward is gemm + col2im, backward is im2col + gemm (k3 s2 p1 doubling maps:
//! sub-pixel phases, see [`crate::layers::conv2d::kernel`]).

#[cfg(test)]
mod tests;

use crate::error::{Result, TensorError};
use crate::layer::{check_dy, join_name, Layer, Mode, Param, Parameterized};
use crate::layers::conv2d::kernel::{self, ConvScratch};
use crate::layers::conv2d::{
    bias_param, check_param, he_normal, into_std_vec, output_buffer, std_slice_mut,
};
use crate::shape::{expect_nchw, ConvHyper, ConvTranspose2dGeom};
use ndarray::{ArrayD, IxDyn};
use rand::Rng;

/// Configuration of a [`ConvTranspose2d`] (builder style).
///
/// ```
/// use vae_tensor::layers::conv_transpose2d::ConvTranspose2dConfig;
/// let cfg = ConvTranspose2dConfig::new(64, 32, 3).stride(2).padding(1).output_padding(1);
/// assert_eq!((cfg.stride, cfg.padding, cfg.output_padding), (2, 1, 1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTranspose2dConfig {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel size `[k_h, k_w]`.
    pub kernel: [usize; 2],
    /// Stride (both axes), default 1.
    pub stride: usize,
    /// Padding removed from every side of the full output, default 0.
    pub padding: usize,
    /// Extra rows/columns at the bottom/right of the output, default 0; must be smaller
    /// than `max(stride, dilation)`.
    pub output_padding: usize,
    /// Dilation (both axes), default 1.
    pub dilation: usize,
    /// Whether the layer has a bias, default true.
    pub bias: bool,
}

impl ConvTranspose2dConfig {
    /// A `kernel × kernel` transposed convolution from `c_in` to `c_out` channels, stride 1,
    /// no padding, no output padding, no dilation, with bias.
    pub fn new(c_in: usize, c_out: usize, kernel: usize) -> Self {
        ConvTranspose2dConfig {
            c_in,
            c_out,
            kernel: [kernel, kernel],
            stride: 1,
            padding: 0,
            output_padding: 0,
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
    /// Sets the padding.
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }
    /// Sets the output padding.
    pub fn output_padding(mut self, output_padding: usize) -> Self {
        self.output_padding = output_padding;
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

    /// Checks channels, kernel, stride and dilation (> 0) and
    /// `output_padding < max(stride, dilation)`.
    ///
    /// # Errors
    /// [`TensorError::InvalidConfig`] naming the problem.
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
        if self.output_padding >= self.stride.max(self.dilation) {
            return Err(TensorError::config(
                layer,
                format!(
                    "output_padding {} must be smaller than max(stride {}, dilation {})",
                    self.output_padding, self.stride, self.dilation
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct ConvTranspose2dCache {
    /// The input, row-major; overwritten in place by dL/dx during backward.
    x: Vec<f32>,
    geom: ConvTranspose2dGeom,
}

/// A 2-D transposed convolution ("deconvolution") over NCHW images: the adjoint of
/// [`Conv2d`](crate::layers::conv2d::Conv2d) with the same kernel, plus a bias.
///
/// # Shapes
/// - input `[N, c_in, H, W]` → output `[N, c_out, H', W']` with
///   `H' = (H − 1)·stride − 2·padding + dilation·(k_h − 1) + output_padding + 1`, same for `W'`.
/// - `weight: [c_in, c_out, k_h, k_w]` (PyTorch layout), `bias: [c_out]`.
///
/// # Formulas
/// - forward: `y[n, co, oy·s + ky·d − p, ox·s + kx·d − p] += w[ci, co, ky, kx] · x[n, ci, oy, ox]`
///   (summed over `ci, ky, kx, oy, ox`, dropping positions outside the output) plus
///   `b[co]`; computed as `y_n = col2im(Wᵀ · x_n)` with `W` seen as `[c_in, c_out·k_h·k_w]`.
/// - backward: `dx_n = W · im2col(dy_n)`, `dW += Σ_n x_n · im2col(dy_n)ᵀ`,
///   `db += Σ_{n,y,x} dy`.
///
/// PyTorch equivalent: `torch.nn.ConvTranspose2d(c_in, c_out, k, stride, padding,
/// output_padding, bias=bias, dilation=dilation)`.
///
/// ```
/// use ndarray::{ArrayD, IxDyn};
/// use vae_tensor::layers::conv_transpose2d::{ConvTranspose2d, ConvTranspose2dConfig};
/// use vae_tensor::{Layer, Mode};
/// // Stride 2 with a 2x2 all-ones kernel copies each pixel into a 2x2 block.
/// let w = ArrayD::from_elem(IxDyn(&[1, 1, 2, 2]), 1.0f32);
/// let cfg = ConvTranspose2dConfig::new(1, 1, 2).stride(2).bias(false);
/// let mut up = ConvTranspose2d::from_weights(cfg, w, None)?;
/// let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, 1, 2]), vec![1.0, 2.0])?;
/// let y = up.forward(x, Mode::Eval)?;
/// assert_eq!(y.shape(), &[1, 1, 2, 4]);
/// assert_eq!(y.iter().copied().collect::<Vec<_>>(), vec![1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ConvTranspose2d {
    cfg: ConvTranspose2dConfig,
    name: String,
    /// `[c_in, c_out, k_h, k_w]`.
    pub weight: Param,
    /// `[c_out]`, when the config has a bias.
    pub bias: Option<Param>,
    cache: Option<ConvTranspose2dCache>,
    scratch: ConvScratch,
    spare: Vec<f32>,
}

impl ConvTranspose2d {
    /// A transposed convolution with He-normal weights (`fan_in = c_in·k_h·k_w`) and zero
    /// bias.
    ///
    /// # Errors
    /// [`TensorError::InvalidConfig`] for a bad configuration (see
    /// [`ConvTranspose2dConfig::validate`]).
    pub fn new(cfg: ConvTranspose2dConfig, rng: &mut impl Rng) -> Result<Self> {
        let shape = Self::weight_shape(&cfg);
        let w = he_normal(&shape, cfg.c_in * cfg.kernel[0] * cfg.kernel[1], rng);
        let b = cfg.bias.then(|| ArrayD::zeros(IxDyn(&[cfg.c_out])));
        Self::from_weights(cfg, w, b)
    }

    /// A transposed convolution with the given weight (`[c_in, c_out, k_h, k_w]`) and bias
    /// (`[c_out]`, required exactly when `cfg.bias`).
    ///
    /// # Errors
    /// [`TensorError::InvalidConfig`] for a bad config or a bias given/missing against
    /// `cfg.bias`; [`TensorError::ShapeMismatch`] for a weight or bias of the wrong shape.
    pub fn from_weights(
        cfg: ConvTranspose2dConfig,
        weight: ArrayD<f32>,
        bias: Option<ArrayD<f32>>,
    ) -> Result<Self> {
        let name = describe(&cfg);
        cfg.validate(&name)?;
        let weight = Param::new(weight);
        check_param(&name, "weight", &weight, &Self::weight_shape(&cfg))?;
        let bias = bias_param(&name, cfg.bias, bias, cfg.c_out)?;
        Ok(ConvTranspose2d {
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
    pub fn config(&self) -> &ConvTranspose2dConfig {
        &self.cfg
    }

    fn weight_shape(cfg: &ConvTranspose2dConfig) -> [usize; 4] {
        [cfg.c_in, cfg.c_out, cfg.kernel[0], cfg.kernel[1]]
    }

    /// The geometry for an input shape, with the shape errors of the layer contract.
    pub fn geometry(&self, input: &[usize]) -> Result<ConvTranspose2dGeom> {
        expect_nchw(&self.name, input, self.cfg.c_in)?;
        ConvTranspose2dGeom::new(
            &self.name,
            input,
            self.cfg.c_out,
            self.cfg.kernel,
            self.cfg.hyper(),
            self.cfg.output_padding,
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

fn describe(cfg: &ConvTranspose2dConfig) -> String {
    format!(
        "ConvTranspose2d({}->{}, k{}x{}, s{}, p{}, op{}, d{}{})",
        cfg.c_in,
        cfg.c_out,
        cfg.kernel[0],
        cfg.kernel[1],
        cfg.stride,
        cfg.padding,
        cfg.output_padding,
        cfg.dilation,
        if cfg.bias { "" } else { ", no bias" }
    )
}

impl Parameterized for ConvTranspose2d {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        f(&join_name(prefix, "weight"), &mut self.weight);
        if let Some(b) = &mut self.bias {
            f(&join_name(prefix, "bias"), b);
        }
    }
}

impl Layer for ConvTranspose2d {
    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        let t = self.geometry(x.shape())?;
        self.check_params()?;
        let x = into_std_vec(x);
        let mut y = output_buffer(&mut self.spare, t.output_shape().iter().product());
        let w = std_slice_mut(&mut self.weight.value);
        let b = self.bias.as_mut().map(|b| &*std_slice_mut(&mut b.value));
        kernel::conv_adjoint(&t.conv, &x, w, b, &mut y, &mut self.scratch);
        self.cache = match mode {
            Mode::Train => Some(ConvTranspose2dCache { x, geom: t }),
            Mode::Eval => None,
        };
        Ok(ArrayD::from_shape_vec(IxDyn(&t.output_shape()), y).expect("length matches geometry"))
    }

    fn backward(&mut self, dy: ArrayD<f32>) -> Result<ArrayD<f32>> {
        let t = match &self.cache {
            Some(c) => c.geom,
            None => {
                return Err(TensorError::NoForwardCache {
                    layer: self.name.clone(),
                })
            }
        };
        check_dy(&self.name, &t.output_shape(), &dy)?;
        self.check_params()?;
        let mut dx = self.cache.take().expect("checked above").x;
        let dy = into_std_vec(dy);
        let Param { value, grad } = &mut self.weight;
        let w = std_slice_mut(value);
        let dw = std_slice_mut(grad);
        let db = self.bias.as_mut().map(|b| std_slice_mut(&mut b.grad));
        kernel::conv_adjoint_backward(&t.conv, &mut dx, w, &dy, dw, db, &mut self.scratch);
        self.spare = dy;
        Ok(ArrayD::from_shape_vec(IxDyn(&t.input_shape()), dx).expect("length matches geometry"))
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(self.geometry(input)?.output_shape().to_vec())
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}
