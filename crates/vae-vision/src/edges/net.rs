//! [`EdgeNet`]: a fully convolutional edge detector with HED-style side outputs on a VAE's
//! convolutional encoder.
//!
//! ```text
//! x [n, 6, H, W]  (R, G, B, L, a, b at full resolution; H, W multiples of 4)
//! ├─ fine: ReLU(Conv 3×3, 6 → F) → ReLU(Conv 3×3, F → F)       [n, F, H, W]
//! │        side1 = Conv 1×1, F → 1                              [n, 1, H, W]
//! └─ enc1 = ReLU(Conv 4×4 s2, 6 → E1)   (VAE encoder conv1 on RGB) [n, E1, H/2, W/2]
//!    ├─ mid = ReLU(Conv 3×3, E1 → M); side2 = up×2(Conv 1×1, M → 1)   [n, 1, H, W]
//!    └─ enc2 = ReLU(Conv 4×4 s2, E1 → E2) (VAE encoder conv2)        [n, E2, H/4, W/4]
//!       head: LeakyReLU(Conv 3×3 dilation d1, E2 → 64) → LeakyReLU(Conv 3×3 dilation d2,
//!             64 → 64) → … = h; side3 = up×4(Conv 1×1, 64 → 1)      [n, 1, H, W]
//!       optional stride-8 stage (D > 0): ReLU(Conv 4×4 s2, 64 → D) on h, then
//!             LeakyReLU(Conv 3×3 dilation d1, D → D) → … (same dilations as the head);
//!             side4 = up×8(Conv 1×1, D → 1)                       [n, 1, H, W]
//! fused = Conv 1×1 (S → 1) on [side1, …, sideS] (S = 3, or 4 with the stage) [n, 1, H, W]
//! output: logits [side1, …, sideS, fused] stacked as channels     [n, S + 1, H, W]
//! ```
//!
//! `H` and `W` must be multiples of [`EdgeNet::multiple`] (4, or 8 with the stride-8
//! stage).
//!
//! The stride-4 column is the second source document's head (conv 64 → conv 64 with leaky
//! ReLU → conv 1, trained with binary cross-entropy through a sigmoid) on the VAE encoder's
//! features; the field's additions are the dilations (context without downsampling), the
//! two finer side outputs (localisation at stride 2 and at full resolution, where the image
//! itself in RGB and Lab enters), the fused output (HED's learned 1×1 combination, started
//! at equal weights 1/3), deep supervision of every side output and the class-balanced loss
//! ([`balanced_bce`](super::balanced_bce)). `up×k` is bilinear ([`Upsample`]).
//!
//! Backward runs the same graph in reverse: the fused logit's gradient flows into the three
//! side outputs, where it is added to their own deep-supervision gradients; `enc1` receives
//! the sum of the stride-2 branch's and the stride-4 column's gradients.

use ndarray::{concatenate, ArrayD, Axis, Ix3, Slice};
use rand::Rng;
use vae_core::Vae;
use vae_tensor::layer::{join_name, Layer, Mode, Param, Parameterized};
use vae_tensor::layers::activation::{LeakyReLU, ReLU};
use vae_tensor::layers::conv2d::{Conv2d, Conv2dConfig};
use vae_tensor::TensorError;

use super::input::INPUT_CHANNELS;
use super::upsample::Upsample;
use crate::error::{Result, VisionError};

/// Number of output channels without the stride-8 stage: three side outputs and the fused
/// output ([`EdgeNet::outputs`] gives the count of a given network).
pub const OUTPUTS: usize = 4;

/// Sizes of an [`EdgeNet`].
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeNetConfig {
    /// Channels of the full-resolution branch (`F`).
    pub fine: usize,
    /// Channels of the VAE's first convolution (`E1`, the conv preset's `channels`).
    pub enc1: usize,
    /// Channels of the VAE's second convolution (`E2 = 2·E1` in the conv preset).
    pub enc2: usize,
    /// Channels of the stride-2 branch (`M`).
    pub mid: usize,
    /// Channels of the head's convolutions (64 in the source head).
    pub head: usize,
    /// Dilation of each head convolution (one convolution per entry; at least one).
    pub dilations: Vec<usize>,
    /// Negative slope of the head's leaky ReLUs.
    pub leaky_slope: f32,
    /// Channels of the optional stride-8 stage (`D`; 0 = no such stage, the original
    /// three-side network).
    pub deep: usize,
}

impl EdgeNetConfig {
    /// The network on the VAE conv preset with `channels` (`E1 = channels`, `E2 =
    /// 2·channels`): `F = 16`, `M = 32`, head 64 → 64 with dilations 2 and 4, slope 0.1.
    pub fn for_conv_preset(channels: usize) -> Self {
        EdgeNetConfig {
            fine: 16,
            enc1: channels,
            enc2: 2 * channels,
            mid: 32,
            head: 64,
            dilations: vec![2, 4],
            leaky_slope: 0.1,
            deep: 0,
        }
    }

    fn validate(&self) -> Result<()> {
        let sizes = [self.fine, self.enc1, self.enc2, self.mid, self.head];
        if sizes.contains(&0) {
            return Err(VisionError::param(
                "EdgeNetConfig",
                "channels",
                format!("{sizes:?}"),
                "every channel count must be > 0",
            ));
        }
        if self.dilations.is_empty() || self.dilations.contains(&0) {
            return Err(VisionError::param(
                "EdgeNetConfig",
                "dilations",
                format!("{:?}", self.dilations),
                "need at least one head convolution, every dilation >= 1",
            ));
        }
        if !(self.leaky_slope.is_finite() && self.leaky_slope >= 0.0) {
            return Err(VisionError::param(
                "EdgeNetConfig",
                "leaky_slope",
                self.leaky_slope,
                "must be finite and >= 0",
            ));
        }
        Ok(())
    }
}

/// The network described in the [module docs](self). Input `[n, 6, H, W]` with `H`, `W`
/// multiples of 4 ([`net_input`](super::net_input) builds the channels); output logits
/// `[n, 4, H, W]`: side outputs 1–3, then the fused output.
#[derive(Debug)]
pub struct EdgeNet {
    cfg: EdgeNetConfig,
    fine1: Conv2d,
    fine1_act: ReLU,
    fine2: Conv2d,
    fine2_act: ReLU,
    side1: Conv2d,
    enc1: Conv2d,
    enc1_act: ReLU,
    mid: Conv2d,
    mid_act: ReLU,
    side2: Conv2d,
    up2: Upsample,
    enc2: Conv2d,
    enc2_act: ReLU,
    head: Vec<(Conv2d, LeakyReLU)>,
    side3: Conv2d,
    up4: Upsample,
    /// The stride-8 stage: downsampling conv, its dilated convs, side output, ×8.
    stage8: Option<Stage8>,
    fuse: Conv2d,
}

/// The optional stride-8 stage of an [`EdgeNet`].
#[derive(Debug)]
struct Stage8 {
    down: Conv2d,
    down_act: ReLU,
    convs: Vec<(Conv2d, LeakyReLU)>,
    side: Conv2d,
    up: Upsample,
}

fn conv3(c_in: usize, c_out: usize, dilation: usize) -> Conv2dConfig {
    Conv2dConfig::new(c_in, c_out, 3)
        .padding(dilation)
        .dilation(dilation)
}

fn down(c_in: usize, c_out: usize) -> Conv2dConfig {
    Conv2dConfig::new(c_in, c_out, 4).stride(2).padding(1)
}

impl EdgeNet {
    /// A network with every weight drawn at random (He-normal; the fusion starts at equal
    /// weights 1/3): the no-VAE ablation.
    ///
    /// # Errors
    /// [`VisionError::InvalidParameter`] for a zero size or dilation.
    pub fn new(cfg: EdgeNetConfig, rng: &mut impl Rng) -> Result<Self> {
        cfg.validate()?;
        let c = INPUT_CHANNELS;
        let mut head = Vec::new();
        let mut c_in = cfg.enc2;
        for &d in &cfg.dilations {
            head.push((
                Conv2d::new(conv3(c_in, cfg.head, d), rng)?,
                LeakyReLU::new(cfg.leaky_slope),
            ));
            c_in = cfg.head;
        }
        let stage8 = if cfg.deep > 0 {
            let mut convs = Vec::new();
            for &d in &cfg.dilations {
                convs.push((
                    Conv2d::new(conv3(cfg.deep, cfg.deep, d), rng)?,
                    LeakyReLU::new(cfg.leaky_slope),
                ));
            }
            Some(Stage8 {
                down: Conv2d::new(down(cfg.head, cfg.deep), rng)?,
                down_act: ReLU::new(),
                convs,
                side: Conv2d::new(Conv2dConfig::new(cfg.deep, 1, 1), rng)?,
                up: Upsample::new(8)?,
            })
        } else {
            None
        };
        let sides = if stage8.is_some() { 4 } else { 3 };
        let fuse_w = ArrayD::from_elem(vec![1, sides, 1, 1], 1.0 / sides as f32);
        let fuse = Conv2d::from_weights(
            Conv2dConfig::new(sides, 1, 1),
            fuse_w,
            Some(ArrayD::zeros(vec![1])),
        )?;
        Ok(EdgeNet {
            fine1: Conv2d::new(conv3(c, cfg.fine, 1), rng)?,
            fine1_act: ReLU::new(),
            fine2: Conv2d::new(conv3(cfg.fine, cfg.fine, 1), rng)?,
            fine2_act: ReLU::new(),
            side1: Conv2d::new(Conv2dConfig::new(cfg.fine, 1, 1), rng)?,
            enc1: Conv2d::new(down(c, cfg.enc1), rng)?,
            enc1_act: ReLU::new(),
            mid: Conv2d::new(conv3(cfg.enc1, cfg.mid, 1), rng)?,
            mid_act: ReLU::new(),
            side2: Conv2d::new(Conv2dConfig::new(cfg.mid, 1, 1), rng)?,
            up2: Upsample::new(2)?,
            enc2: Conv2d::new(down(cfg.enc1, cfg.enc2), rng)?,
            enc2_act: ReLU::new(),
            head,
            side3: Conv2d::new(Conv2dConfig::new(cfg.head, 1, 1), rng)?,
            up4: Upsample::new(4)?,
            stage8,
            fuse,
            cfg,
        })
    }

    /// A network whose two encoder convolutions start from a VAE trained with the conv
    /// preset on RGB images (`encoder.conv1.*`, `encoder.conv2.*`): `enc1`'s RGB input
    /// weights are the VAE's, its Lab input weights start at zero; the rest is drawn as in
    /// [`EdgeNet::new`].
    ///
    /// # Errors
    /// [`VisionError::InvalidParameter`] when the VAE has no such convolutions or their
    /// shapes differ (another preset, other channel counts, not 3 input channels).
    pub fn with_vae_encoder(cfg: EdgeNetConfig, vae: &mut Vae, rng: &mut impl Rng) -> Result<Self> {
        let mut net = EdgeNet::new(cfg, rng)?;
        let mut found: Vec<(String, ArrayD<f32>)> = Vec::new();
        vae.visit_params("", &mut |name, p| {
            if name.starts_with("encoder.conv1.") || name.starts_with("encoder.conv2.") {
                found.push((name.to_string(), p.value.clone()));
            }
        });
        let get = |name: &str, shape: &[usize]| -> Result<ArrayD<f32>> {
            match found.iter().find(|(n, _)| n == name) {
                Some((_, v)) if v.shape() == shape => Ok(v.clone()),
                Some((_, v)) => Err(VisionError::param(
                    "EdgeNet::with_vae_encoder",
                    "vae",
                    vae_shape_note(name, v.shape()),
                    format!("the network needs {shape:?}"),
                )),
                None => Err(VisionError::param(
                    "EdgeNet::with_vae_encoder",
                    "vae",
                    name,
                    "the VAE has no such parameter (train it with the conv preset)",
                )),
            }
        };
        let (e1, e2) = (net.cfg.enc1, net.cfg.enc2);
        let w1 = get("encoder.conv1.weight", &[e1, 3, 4, 4])?;
        let b1 = get("encoder.conv1.bias", &[e1])?;
        let w2 = get("encoder.conv2.weight", &[e2, e1, 4, 4])?;
        let b2 = get("encoder.conv2.bias", &[e2])?;
        net.enc1.weight.value.fill(0.0);
        net.enc1
            .weight
            .value
            .slice_each_axis_mut(|ax| {
                if ax.axis.index() == 1 {
                    Slice::from(0..3)
                } else {
                    Slice::from(..)
                }
            })
            .assign(&w1);
        if let Some(b) = &mut net.enc1.bias {
            b.value.assign(&b1);
        }
        net.enc2.weight.value.assign(&w2);
        if let Some(b) = &mut net.enc2.bias {
            b.value.assign(&b2);
        }
        Ok(net)
    }

    /// The configuration.
    pub fn config(&self) -> &EdgeNetConfig {
        &self.cfg
    }

    /// Output channels: the side outputs, then the fused output (4, or 5 with the
    /// stride-8 stage).
    pub fn outputs(&self) -> usize {
        if self.stage8.is_some() {
            5
        } else {
            4
        }
    }

    /// Input height and width must be multiples of this (4, or 8 with the stride-8
    /// stage).
    pub fn multiple(&self) -> usize {
        if self.stage8.is_some() {
            8
        } else {
            4
        }
    }
}

fn vae_shape_note(name: &str, shape: &[usize]) -> String {
    format!("{name} {shape:?}")
}

impl Parameterized for EdgeNet {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        self.fine1.visit_params(&join_name(prefix, "fine1"), f);
        self.fine2.visit_params(&join_name(prefix, "fine2"), f);
        self.side1.visit_params(&join_name(prefix, "side1"), f);
        self.enc1.visit_params(&join_name(prefix, "enc1"), f);
        self.mid.visit_params(&join_name(prefix, "mid"), f);
        self.side2.visit_params(&join_name(prefix, "side2"), f);
        self.enc2.visit_params(&join_name(prefix, "enc2"), f);
        for (i, (conv, _)) in self.head.iter_mut().enumerate() {
            conv.visit_params(&join_name(prefix, &format!("head{}", i + 1)), f);
        }
        self.side3.visit_params(&join_name(prefix, "side3"), f);
        if let Some(st) = &mut self.stage8 {
            st.down.visit_params(&join_name(prefix, "deep_down"), f);
            for (i, (conv, _)) in st.convs.iter_mut().enumerate() {
                conv.visit_params(&join_name(prefix, &format!("deep{}", i + 1)), f);
            }
            st.side.visit_params(&join_name(prefix, "side4"), f);
        }
        self.fuse.visit_params(&join_name(prefix, "fuse"), f);
    }
}

fn channel(a: &ArrayD<f32>, c: usize) -> ArrayD<f32> {
    a.slice_axis(Axis(1), Slice::from(c..c + 1)).to_owned()
}

impl Layer for EdgeNet {
    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> vae_tensor::Result<ArrayD<f32>> {
        self.output_shape(x.shape())?;
        let f = self
            .fine1_act
            .forward(self.fine1.forward(x.clone(), mode)?, mode)?;
        let f = self.fine2_act.forward(self.fine2.forward(f, mode)?, mode)?;
        let s1 = self.side1.forward(f, mode)?;
        let e1 = self.enc1_act.forward(self.enc1.forward(x, mode)?, mode)?;
        let m = self
            .mid_act
            .forward(self.mid.forward(e1.clone(), mode)?, mode)?;
        let s2 = self.up2.forward(self.side2.forward(m, mode)?, mode)?;
        let mut h = self.enc2_act.forward(self.enc2.forward(e1, mode)?, mode)?;
        for (conv, act) in &mut self.head {
            h = act.forward(conv.forward(h, mode)?, mode)?;
        }
        let s4 = match &mut self.stage8 {
            Some(st) => {
                let mut g = st
                    .down_act
                    .forward(st.down.forward(h.clone(), mode)?, mode)?;
                for (conv, act) in &mut st.convs {
                    g = act.forward(conv.forward(g, mode)?, mode)?;
                }
                Some(st.up.forward(st.side.forward(g, mode)?, mode)?)
            }
            None => None,
        };
        let s3 = self.up4.forward(self.side3.forward(h, mode)?, mode)?;
        let mut views = vec![s1.view(), s2.view(), s3.view()];
        if let Some(s4) = &s4 {
            views.push(s4.view());
        }
        let sides = concatenate(Axis(1), &views)
            .map_err(|_| TensorError::shape("EdgeNet sides", "equal shapes", s1.shape()))?;
        let fused = self.fuse.forward(sides.clone(), mode)?;
        concatenate(Axis(1), &[sides.view(), fused.view()])
            .map_err(|_| TensorError::shape("EdgeNet output", "equal shapes", fused.shape()))
    }

    fn backward(&mut self, dy: ArrayD<f32>) -> vae_tensor::Result<ArrayD<f32>> {
        let outputs = self.outputs();
        if dy.ndim() != 4 || dy.shape()[1] != outputs {
            return Err(TensorError::shape(
                "EdgeNet backward",
                format!("[n, {outputs}, H, W]"),
                dy.shape(),
            ));
        }
        let dsides = self.fuse.backward(channel(&dy, outputs - 1))?;
        let d = |k: usize| channel(&dy, k) + channel(&dsides, k);
        let (d1, d2, d3) = (d(0), d(1), d(2));
        // Full-resolution branch.
        let g = self.side1.backward(d1)?;
        let g = self.fine2.backward(self.fine2_act.backward(g)?)?;
        let dx_fine = self.fine1.backward(self.fine1_act.backward(g)?)?;
        // Stride-4 column back to enc1.
        let mut g = self.side3.backward(self.up4.backward(d3)?)?;
        if let Some(st) = &mut self.stage8 {
            let mut g8 = st.side.backward(st.up.backward(d(3))?)?;
            for (conv, act) in st.convs.iter_mut().rev() {
                g8 = conv.backward(act.backward(g8)?)?;
            }
            g = g + st.down.backward(st.down_act.backward(g8)?)?;
        }
        for (conv, act) in self.head.iter_mut().rev() {
            g = conv.backward(act.backward(g)?)?;
        }
        let de1 = self.enc2.backward(self.enc2_act.backward(g)?)?;
        // Stride-2 branch.
        let g = self.side2.backward(self.up2.backward(d2)?)?;
        let de1 = de1 + self.mid.backward(self.mid_act.backward(g)?)?;
        let dx = self.enc1.backward(self.enc1_act.backward(de1)?)?;
        Ok(dx + dx_fine)
    }

    fn output_shape(&self, input: &[usize]) -> vae_tensor::Result<Vec<usize>> {
        let m = self.multiple();
        let ok = input.len() == 4
            && input[1] == INPUT_CHANNELS
            && input[2] % m == 0
            && input[3] % m == 0
            && input[2] > 0
            && input[3] > 0;
        if !ok {
            return Err(TensorError::shape(
                "EdgeNet (input [n, 6, H, W] with H, W multiples of 4, or 8 with the stride-8 stage)",
                format!("[n, 6, {m}·i, {m}·j]"),
                input,
            ));
        }
        Ok(vec![input[0], self.outputs(), input[2], input[3]])
    }

    fn describe(&self) -> String {
        let c = &self.cfg;
        format!(
            "EdgeNet(fine {}, enc {}→{}, mid {}, head {}×{:?}, stride-8 stage {}, sides {} + fused)",
            c.fine,
            c.enc1,
            c.enc2,
            c.mid,
            c.head,
            c.dilations,
            c.deep,
            self.outputs() - 1
        )
    }
}

/// The fused logits of an [`EdgeNet`] output `[n, S + 1, H, W]` (the last channel) as
/// `[n, H, W]`.
pub(crate) fn fused_logits(out: &ArrayD<f32>) -> ndarray::Array3<f32> {
    out.index_axis(Axis(1), out.shape()[1] - 1)
        .to_owned()
        .into_dimensionality::<Ix3>()
        .expect("EdgeNet output is 4-D")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};
    use vae_core::{Preset, VaeConfig};
    use vae_tensor::gradcheck::{check_layer, GradCheckConfig};

    fn tiny() -> EdgeNetConfig {
        EdgeNetConfig {
            fine: 2,
            enc1: 2,
            enc2: 4,
            mid: 2,
            head: 3,
            dilations: vec![1, 2],
            leaky_slope: 0.1,
            deep: 0,
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        gradcheck_net(tiny(), 8, 0.5, 5.0);
    }

    #[test]
    fn gradient_with_the_stride8_stage_matches_finite_differences() {
        // Smaller biases than above: with the fourth stage, biases of 5 make the outputs so
        // large that f32 rounding of the projected loss swamps the small fine-branch
        // gradients.
        gradcheck_net(EdgeNetConfig { deep: 3, ..tiny() }, 16, 0.25, 2.0);
    }

    fn gradcheck_net(cfg: EdgeNetConfig, side: usize, weight_scale: f32, bias: f32) {
        let mut rng = StdRng::seed_from_u64(7);
        let mut net = EdgeNet::new(cfg, &mut rng).unwrap();
        // Keep pre-activations away from the ReLU kinks, where central differences with a
        // step of 1e-2 are meaningless (with He-initialised weights a few of the 8x8
        // full-resolution units sit within a step of zero and spoil the comparison):
        // smaller weights and large biases keep every ReLU unit on. This checks the
        // graph's wiring (branches, skips, fusion, upsampling); the ReLU and leaky-ReLU
        // masks themselves are checked in vae-tensor.
        net.visit_params("", &mut |name, p| {
            let relu_layer = !(name.starts_with("side") || name.starts_with("fuse"));
            if relu_layer && name.ends_with("weight") {
                p.value.mapv_inplace(|v| weight_scale * v);
            }
            if relu_layer && name.ends_with("bias") {
                p.value.fill(bias);
            }
        });
        let x = ArrayD::from_shape_fn(vec![2, INPUT_CHANNELS, side, side], |i| {
            (((i[0] * 31 + i[1] * 17 + i[2] * 7 + i[3] * 3) % 23) as f32) / 23.0 - 0.4
        });
        let cfg = GradCheckConfig {
            eps: 1e-2,
            rtol: 2e-2,
            atol: 2e-3,
            max_coords: 24,
        };
        check_layer(&mut net, &x, &cfg, &mut rng)
            .unwrap()
            .assert_passed();
    }

    #[test]
    fn shapes_and_vae_initialisation() {
        let mut rng = StdRng::seed_from_u64(1);
        let vcfg = VaeConfig {
            input_shape: [3, 8, 8],
            latent: 2,
            preset: Preset::Conv {
                channels: 2,
                hidden: 8,
            },
            ..VaeConfig::default()
        };
        let mut vae = Vae::new(vcfg, &mut rng).unwrap();
        let mut net = EdgeNet::with_vae_encoder(tiny(), &mut vae, &mut rng).unwrap();
        let mut vae_w = None;
        vae.visit_params("", &mut |n, p| {
            if n == "encoder.conv1.weight" {
                vae_w = Some(p.value.clone());
            }
        });
        let vae_w = vae_w.unwrap();
        assert_eq!(
            net.enc1.weight.value.slice_axis(Axis(1), Slice::from(0..3)),
            vae_w.view()
        );
        assert!(net
            .enc1
            .weight
            .value
            .slice_axis(Axis(1), Slice::from(3..))
            .iter()
            .all(|&v| v == 0.0));
        let y = net
            .forward(ArrayD::zeros(vec![1, INPUT_CHANNELS, 12, 16]), Mode::Eval)
            .unwrap();
        assert_eq!(y.shape(), &[1, OUTPUTS, 12, 16]);
        assert!(net
            .forward(ArrayD::zeros(vec![1, INPUT_CHANNELS, 10, 16]), Mode::Eval)
            .is_err());
        let mut other = tiny();
        other.enc1 = 3;
        assert!(EdgeNet::with_vae_encoder(other, &mut vae, &mut rng).is_err());
        let mut deep = EdgeNet::new(EdgeNetConfig { deep: 2, ..tiny() }, &mut rng).unwrap();
        assert_eq!((deep.outputs(), deep.multiple()), (5, 8));
        let y = deep
            .forward(ArrayD::zeros(vec![1, INPUT_CHANNELS, 16, 24]), Mode::Eval)
            .unwrap();
        assert_eq!(y.shape(), &[1, 5, 16, 24]);
        assert!(deep
            .forward(ArrayD::zeros(vec![1, INPUT_CHANNELS, 12, 16]), Mode::Eval)
            .is_err());
        let mut bad = tiny();
        bad.dilations.clear();
        assert!(EdgeNet::new(bad, &mut rng).is_err());
    }
}
