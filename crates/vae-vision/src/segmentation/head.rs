//! [`SegNet`]: the segmentation head on a VAE's convolutional encoder, with U-Net skips and
//! dilated context convolutions.
//!
//! ```text
//! x [n, c, H, W]
//! ├─ enc1 = ReLU(Conv 4×4 s2 p1, c → e1)          [n, e1, H/2, W/2]   (VAE encoder conv1)
//! │  ├─ enc2 = ReLU(Conv 4×4 s2 p1, e1 → e2)       [n, e2, H/4, W/4]   (VAE encoder conv2)
//! │  │  ctx1 = ReLU(Conv 3×3 dilation d1, e2 → 64) [n, 64, H/4, W/4]   "conv 64"
//! │  │  ctx2 = ReLU(Conv 3×3 dilation d2, 64 → 128)[n, 128, H/4, W/4]  "conv 128"
//! │  │  up1 = ReLU(ConvT 4×4 s2 p1, 128 → 64)      [n, 64, H/2, W/2]
//! │  └─ cat(up1, enc1)                             [n, 64 + e1, H/2, W/2]  (skip)
//! │     up2 = ConvT 4×4 s2 p1, 64 + e1 → K          [n, K, H, W]
//! └─ fine = Conv 3×3 p1, c → K on x                 [n, K, H, W]        (full-resolution skip)
//! logits = up2 + fine                                → softmax cross-entropy per pixel
//! ```
//!
//! Backward is the same column read from the bottom up: the logit gradient goes to both
//! `up2` and `fine`, the concatenation's gradient is split by channels, and `enc1` receives
//! the sum of the skip's share and the gradient coming back through `enc2`.

use ndarray::{concatenate, ArrayD, Axis, Slice};
use rand::Rng;
use vae_core::Vae;
use vae_tensor::layer::{join_name, Layer, Mode, Param, Parameterized};
use vae_tensor::layers::activation::ReLU;
use vae_tensor::layers::conv2d::{Conv2d, Conv2dConfig};
use vae_tensor::layers::conv_transpose2d::{ConvTranspose2d, ConvTranspose2dConfig};
use vae_tensor::TensorError;

use crate::error::{Result, VisionError};

/// Sizes of a [`SegNet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegNetConfig {
    /// Input channels `c` (1 for grey images).
    pub in_channels: usize,
    /// Channels of the first encoder convolution (`e1`; the VAE conv preset's `channels`).
    pub enc1: usize,
    /// Channels of the second encoder convolution (`e2`; the conv preset's `2·channels`).
    pub enc2: usize,
    /// Channels of the two context convolutions (64 and 128 in the source head).
    pub ctx: [usize; 2],
    /// Dilations of the two context convolutions.
    pub dilation: [usize; 2],
    /// Number of classes `K`.
    pub num_classes: usize,
}

impl SegNetConfig {
    /// The head on the VAE conv preset with `channels` (`e1 = channels`, `e2 = 2·channels`),
    /// context 64 → 128 with dilations 2 and 4.
    pub fn for_conv_preset(in_channels: usize, channels: usize, num_classes: usize) -> Self {
        SegNetConfig {
            in_channels,
            enc1: channels,
            enc2: 2 * channels,
            ctx: [64, 128],
            dilation: [2, 4],
            num_classes,
        }
    }
}

/// The encoder-decoder segmentation network described in the [module docs](self).
/// Input `[n, c, H, W]` with `H`, `W` divisible by 4; output logits `[n, K, H, W]`.
#[derive(Debug)]
pub struct SegNet {
    cfg: SegNetConfig,
    enc1: Conv2d,
    relu1: ReLU,
    enc2: Conv2d,
    relu2: ReLU,
    ctx1: Conv2d,
    relu3: ReLU,
    ctx2: Conv2d,
    relu4: ReLU,
    up1: ConvT,
    relu5: ReLU,
    up2: ConvT,
    fine: Conv2d,
}

type ConvT = ConvTranspose2d;

fn down(c_in: usize, c_out: usize) -> Conv2dConfig {
    Conv2dConfig::new(c_in, c_out, 4).stride(2).padding(1)
}

fn up(c_in: usize, c_out: usize) -> ConvTranspose2dConfig {
    ConvTranspose2dConfig::new(c_in, c_out, 4)
        .stride(2)
        .padding(1)
}

impl SegNet {
    /// A network with every weight drawn at random (He-normal): the from-scratch ablation.
    ///
    /// # Errors
    /// [`VisionError::Tensor`] when a size is zero.
    pub fn new(cfg: SegNetConfig, rng: &mut impl Rng) -> Result<Self> {
        let [c1, c2] = cfg.ctx;
        let [d1, d2] = cfg.dilation;
        let k = cfg.num_classes;
        Ok(SegNet {
            cfg,
            enc1: Conv2d::new(down(cfg.in_channels, cfg.enc1), rng)?,
            relu1: ReLU::new(),
            enc2: Conv2d::new(down(cfg.enc1, cfg.enc2), rng)?,
            relu2: ReLU::new(),
            ctx1: Conv2d::new(
                Conv2dConfig::new(cfg.enc2, c1, 3).padding(d1).dilation(d1),
                rng,
            )?,
            relu3: ReLU::new(),
            ctx2: Conv2d::new(Conv2dConfig::new(c1, c2, 3).padding(d2).dilation(d2), rng)?,
            relu4: ReLU::new(),
            up1: ConvT::new(up(c2, 64), rng)?,
            relu5: ReLU::new(),
            up2: ConvT::new(up(64 + cfg.enc1, k), rng)?,
            fine: Conv2d::new(Conv2dConfig::new(cfg.in_channels, k, 3).padding(1), rng)?,
        })
    }

    /// A network whose two encoder convolutions are copied from a trained VAE with the conv
    /// preset (parameters `encoder.conv1.*` and `encoder.conv2.*`); the rest is drawn at
    /// random as in [`SegNet::new`].
    ///
    /// # Errors
    /// [`VisionError::InvalidParameter`] when the VAE has no such convolutions or their
    /// shapes differ from `cfg` (e.g. the MLP preset, or other channel counts).
    pub fn with_vae_encoder(cfg: SegNetConfig, vae: &mut Vae, rng: &mut impl Rng) -> Result<Self> {
        let mut net = SegNet::new(cfg, rng)?;
        let mut found: Vec<(String, ArrayD<f32>)> = Vec::new();
        vae.visit_params("", &mut |name, p| {
            if name.starts_with("encoder.conv1.") || name.starts_with("encoder.conv2.") {
                found.push((name.to_string(), p.value.clone()));
            }
        });
        let mut copied = 0;
        let mut mismatch = None;
        net.visit_params("", &mut |name, p| {
            let src = match name.strip_prefix("enc1.") {
                Some(rest) => format!("encoder.conv1.{rest}"),
                None => match name.strip_prefix("enc2.") {
                    Some(rest) => format!("encoder.conv2.{rest}"),
                    None => return,
                },
            };
            match found.iter().find(|(n, _)| *n == src) {
                Some((_, v)) if v.shape() == p.value.shape() => {
                    p.value.assign(v);
                    copied += 1;
                }
                Some((_, v)) => {
                    mismatch = Some(format!(
                        "{src} has shape {:?}, head needs {:?}",
                        v.shape(),
                        p.value.shape()
                    ))
                }
                None => mismatch = Some(format!("the VAE has no parameter {src}")),
            }
        });
        if let Some(why) = mismatch {
            return Err(VisionError::param(
                "SegNet::with_vae_encoder",
                "vae",
                vae.describe(),
                why,
            ));
        }
        debug_assert_eq!(copied, 4);
        Ok(net)
    }

    /// The configuration.
    pub fn config(&self) -> &SegNetConfig {
        &self.cfg
    }
}

impl Parameterized for SegNet {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        self.enc1.visit_params(&join_name(prefix, "enc1"), f);
        self.enc2.visit_params(&join_name(prefix, "enc2"), f);
        self.ctx1.visit_params(&join_name(prefix, "ctx1"), f);
        self.ctx2.visit_params(&join_name(prefix, "ctx2"), f);
        self.up1.visit_params(&join_name(prefix, "up1"), f);
        self.up2.visit_params(&join_name(prefix, "up2"), f);
        self.fine.visit_params(&join_name(prefix, "fine"), f);
    }
}

impl Layer for SegNet {
    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> vae_tensor::Result<ArrayD<f32>> {
        self.output_shape(x.shape())?;
        let fine = self.fine.forward(x.clone(), mode)?;
        let e1 = self.relu1.forward(self.enc1.forward(x, mode)?, mode)?;
        let e2 = self
            .relu2
            .forward(self.enc2.forward(e1.clone(), mode)?, mode)?;
        let h = self.relu3.forward(self.ctx1.forward(e2, mode)?, mode)?;
        let h = self.relu4.forward(self.ctx2.forward(h, mode)?, mode)?;
        let u1 = self.relu5.forward(self.up1.forward(h, mode)?, mode)?;
        let cat = concatenate(Axis(1), &[u1.view(), e1.view()]).map_err(|_| {
            TensorError::shape("SegNet skip", format!("{:?}", u1.shape()), e1.shape())
        })?;
        let logits = self.up2.forward(cat, mode)?;
        Ok(logits + fine)
    }

    fn backward(&mut self, dy: ArrayD<f32>) -> vae_tensor::Result<ArrayD<f32>> {
        let dx_fine = self.fine.backward(dy.clone())?;
        let dcat = self.up2.backward(dy)?;
        let c_up = dcat.shape()[1] - self.cfg.enc1;
        let du1 = dcat.slice_axis(Axis(1), Slice::from(..c_up)).to_owned();
        let de1_skip = dcat.slice_axis(Axis(1), Slice::from(c_up..)).to_owned();
        let dh = self.up1.backward(self.relu5.backward(du1)?)?;
        let dh = self.ctx2.backward(self.relu4.backward(dh)?)?;
        let de2 = self.ctx1.backward(self.relu3.backward(dh)?)?;
        let de1 = self.enc2.backward(self.relu2.backward(de2)?)? + de1_skip;
        let dx = self.enc1.backward(self.relu1.backward(de1)?)?;
        Ok(dx + dx_fine)
    }

    fn output_shape(&self, input: &[usize]) -> vae_tensor::Result<Vec<usize>> {
        let ok = input.len() == 4
            && input[1] == self.cfg.in_channels
            && input[2] % 4 == 0
            && input[3] % 4 == 0
            && input[2] > 0
            && input[3] > 0;
        if !ok {
            return Err(TensorError::shape(
                "SegNet (input [n, c, H, W] with H, W multiples of 4)",
                format!("[n, {}, 4·i, 4·j]", self.cfg.in_channels),
                input,
            ));
        }
        Ok(vec![input[0], self.cfg.num_classes, input[2], input[3]])
    }

    fn describe(&self) -> String {
        let c = &self.cfg;
        format!(
            "SegNet(c={}, enc {}→{}, ctx {}(d{})→{}(d{}), skip, K={})",
            c.in_channels,
            c.enc1,
            c.enc2,
            c.ctx[0],
            c.dilation[0],
            c.ctx[1],
            c.dilation[1],
            c.num_classes
        )
    }
}
