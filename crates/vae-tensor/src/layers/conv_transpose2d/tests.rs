//! ConvTranspose2d: scatter-loop twin, gradient checks, the adjoint identity, errors.

use super::*;
use crate::gradcheck::{check_layer, GradCheckConfig};
use crate::layer::zero_grad;
use crate::layers::conv2d::{Conv2d, Conv2dConfig};
use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Uniform};

fn uniform(shape: &[usize], rng: &mut StdRng) -> ArrayD<f32> {
    let u = Uniform::new(-1.0f32, 1.0).expect("valid range");
    ArrayD::from_shape_simple_fn(IxDyn(shape), || u.sample(rng))
}

/// The specification: every input pixel scatters `w[ci, co] · x` onto the output, f64 sums.
fn conv_transpose2d_naive(
    x: &ArrayD<f32>,
    w: &ArrayD<f32>,
    b: Option<&ArrayD<f32>>,
    cfg: &ConvTranspose2dConfig,
) -> ArrayD<f32> {
    let (n, c_in, h, wd) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let (c_out, kh, kw) = (w.shape()[1], w.shape()[2], w.shape()[3]);
    let (s, p, d, op) = (cfg.stride, cfg.padding, cfg.dilation, cfg.output_padding);
    let h_out = (h - 1) * s + d * (kh - 1) + op + 1 - 2 * p;
    let w_out = (wd - 1) * s + d * (kw - 1) + op + 1 - 2 * p;
    let mut acc = vec![0.0f64; n * c_out * h_out * w_out];
    for ni in 0..n {
        for ci in 0..c_in {
            for iy in 0..h {
                for ix in 0..wd {
                    for co in 0..c_out {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let oy = (iy * s + ky * d) as isize - p as isize;
                                let ox = (ix * s + kx * d) as isize - p as isize;
                                if oy < 0 || ox < 0 || oy as usize >= h_out || ox as usize >= w_out
                                {
                                    continue;
                                }
                                acc[((ni * c_out + co) * h_out + oy as usize) * w_out
                                    + ox as usize] +=
                                    w[[ci, co, ky, kx]] as f64 * x[[ni, ci, iy, ix]] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    let mut y = ArrayD::from_shape_vec(IxDyn(&[n, c_out, h_out, w_out]), acc).expect("shape");
    if let Some(b) = b {
        for ((_, co, _, _), v) in y
            .view_mut()
            .into_dimensionality::<ndarray::Ix4>()
            .expect("4d")
            .indexed_iter_mut()
        {
            *v += b[[co]] as f64;
        }
    }
    y.mapv(|v| v as f32)
}

/// (input shape, config)
fn cases() -> Vec<([usize; 4], ConvTranspose2dConfig)> {
    let c = ConvTranspose2dConfig::new;
    vec![
        ([2, 3, 4, 5], c(3, 2, 3)),
        (
            [3, 4, 4, 4],
            c(4, 3, 3).stride(2).padding(1).output_padding(1),
        ),
        ([2, 2, 5, 3], c(2, 4, 3).stride(2).padding(1)),
        ([2, 3, 3, 4], c(3, 2, 3).dilation(2).padding(1)),
        (
            [2, 2, 4, 3],
            c(2, 3, 2)
                .kernel_hw(3, 2)
                .stride(3)
                .dilation(2)
                .output_padding(2),
        ),
        ([2, 3, 7, 7], c(3, 2, 3).stride(1).padding(1)),
        ([2, 2, 24, 23], c(2, 1, 3).padding(1)),
        // One output channel, stride 1 (the direct AVX-512 kernels where the CPU has them):
        // no padding (output 2 wider), padding 2 (output 2 narrower), 2 column pairs.
        ([3, 3, 6, 17], c(3, 1, 3)),
        ([2, 4, 7, 37], c(4, 1, 3).padding(2)),
        // One output channel with stride 2 and output padding.
        (
            [3, 3, 5, 9],
            c(3, 1, 3).stride(2).padding(1).output_padding(1),
        ),
        // k3 s2 p1 op1 with channels multiples of 8: the sub-pixel phase path (where the
        // CPU has AVX-512), non-square, a one-row map.
        (
            [3, 8, 4, 5],
            c(8, 8, 3).stride(2).padding(1).output_padding(1),
        ),
        (
            [2, 8, 1, 3],
            c(8, 16, 3).stride(2).padding(1).output_padding(1),
        ),
    ]
}

fn layer(cfg: ConvTranspose2dConfig, rng: &mut StdRng) -> ConvTranspose2d {
    let mut t = ConvTranspose2d::new(cfg, rng).expect("valid config");
    if let Some(b) = &mut t.bias {
        b.value = uniform(&[cfg.c_out], rng);
    }
    t
}

#[test]
fn forward_matches_the_scatter_twin() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(21);
    for (shape, cfg) in cases() {
        for bias in [true, false] {
            let cfg = cfg.bias(bias);
            let mut t = layer(cfg, &mut rng);
            let x = uniform(&shape, &mut rng);
            let want = conv_transpose2d_naive(
                &x,
                &t.weight.value,
                t.bias.as_ref().map(|b| &b.value),
                &cfg,
            );
            assert_eq!(t.output_shape(&shape)?, want.shape().to_vec(), "{cfg:?}");
            let got = t.forward(x, Mode::Eval)?;
            assert_eq!(got.shape(), want.shape());
            for (a, b) in got.iter().zip(want.iter()) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{cfg:?}: {a} vs {b}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn gradients_pass_finite_differences() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(22);
    let gc = GradCheckConfig::default();
    for (shape, cfg) in cases() {
        let mut t = layer(cfg, &mut rng);
        let x = uniform(&shape, &mut rng);
        let report = check_layer(&mut t, &x, &gc, &mut rng)?;
        assert_eq!(report.tensors.len(), 3, "input, weight, bias");
        report.assert_passed();
    }
    Ok(())
}

#[test]
fn conv_transpose_is_the_adjoint_of_conv() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(23);
    // (x shape, c_out, k, stride, pad, dilation)
    let cases = [
        ([2, 3, 7, 7], 4, 3, 1, 0, 1),
        ([3, 2, 9, 7], 5, 3, 2, 1, 1),
        ([2, 3, 11, 13], 2, 3, 2, 2, 2),
        ([2, 4, 28, 28], 3, 3, 2, 1, 1),
    ];
    for (xs, c_out, k, s, p, d) in cases {
        let c_in = xs[1];
        let ccfg = Conv2dConfig::new(c_in, c_out, k)
            .stride(s)
            .padding(p)
            .dilation(d)
            .bias(false);
        let mut conv = Conv2d::new(ccfg, &mut rng)?;
        let ys = conv.output_shape(&xs)?;
        // The output padding that maps conv's output size back onto its input size.
        let op = (xs[2] + 2 * p - d * (k - 1) - 1) % s;
        assert_eq!(
            op,
            (xs[3] + 2 * p - d * (k - 1) - 1) % s,
            "same for both axes in these cases"
        );
        let tcfg = ConvTranspose2dConfig::new(c_out, c_in, k)
            .stride(s)
            .padding(p)
            .dilation(d)
            .output_padding(op)
            .bias(false);
        // The same weight tensor: conv [c_out, c_in, k, k] is convT's [c_in_t, c_out_t, k, k].
        let mut convt = ConvTranspose2d::from_weights(tcfg, conv.weight.value.clone(), None)?;
        assert_eq!(convt.output_shape(&ys)?, xs.to_vec());
        let x = uniform(&xs, &mut rng);
        let y = uniform(&ys, &mut rng);
        let cx = conv.forward(x.clone(), Mode::Eval)?;
        let ty = convt.forward(y.clone(), Mode::Eval)?;
        let lhs: f64 = cx
            .iter()
            .zip(y.iter())
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        let rhs: f64 = x
            .iter()
            .zip(ty.iter())
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        assert!(
            (lhs - rhs).abs() <= 1e-5 * (1.0 + lhs.abs()),
            "{xs:?}: {lhs} vs {rhs}"
        );
    }
    Ok(())
}

#[test]
fn backward_twice_doubles_the_gradients() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(24);
    let (shape, cfg) = cases()[1];
    let mut t = layer(cfg, &mut rng);
    let x = uniform(&shape, &mut rng);
    let dy = uniform(&t.output_shape(&shape)?, &mut rng);
    zero_grad(&mut t);
    t.forward(x.clone(), Mode::Train)?;
    let dx1 = t.backward(dy.clone())?;
    let (w1, b1) = (
        t.weight.grad.clone(),
        t.bias.as_ref().expect("bias").grad.clone(),
    );
    t.forward(x, Mode::Train)?;
    let dx2 = t.backward(dy)?;
    assert_eq!(dx1, dx2);
    for (g2, g1) in t.weight.grad.iter().zip(w1.iter()) {
        assert!((g2 - 2.0 * g1).abs() <= 1e-5 * (1.0 + g1.abs()));
    }
    for (g2, g1) in t.bias.as_ref().expect("bias").grad.iter().zip(b1.iter()) {
        assert!((g2 - 2.0 * g1).abs() <= 1e-5 * (1.0 + g1.abs()));
    }
    assert!(w1.iter().any(|&g| g != 0.0));
    Ok(())
}

#[test]
fn results_do_not_depend_on_the_thread_count() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(25);
    // The second configuration has one output channel (a gemm dimension of 9).
    let configs = [
        (
            [24, 16, 7, 7],
            ConvTranspose2dConfig::new(16, 8, 3)
                .stride(2)
                .padding(1)
                .output_padding(1),
        ),
        (
            [24, 32, 28, 28],
            ConvTranspose2dConfig::new(32, 1, 3).padding(1),
        ),
    ];
    for (shape, cfg) in configs {
        let x = uniform(&shape, &mut rng);
        let proto = layer(cfg, &mut rng);
        let dy = uniform(&proto.output_shape(x.shape())?, &mut rng);
        let run = |threads: usize| -> Result<(ArrayD<f32>, ArrayD<f32>, ArrayD<f32>)> {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            let mut t = ConvTranspose2d::from_weights(
                cfg,
                proto.weight.value.clone(),
                proto.bias.as_ref().map(|b| b.value.clone()),
            )?;
            pool.install(|| {
                let y = t.forward(x.clone(), Mode::Train)?;
                let dx = t.backward(dy.clone())?;
                Ok((y, dx, t.weight.grad.clone()))
            })
        };
        assert_eq!(run(1)?, run(2)?, "{cfg:?}");
    }
    Ok(())
}

#[test]
fn errors_are_typed() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(26);
    assert!(matches!(
        ConvTranspose2d::new(
            ConvTranspose2dConfig::new(2, 2, 3)
                .stride(2)
                .output_padding(2),
            &mut rng
        ),
        Err(TensorError::InvalidConfig { .. })
    ));
    assert!(matches!(
        ConvTranspose2d::new(ConvTranspose2dConfig::new(2, 0, 3), &mut rng),
        Err(TensorError::InvalidConfig { .. })
    ));
    assert!(matches!(
        ConvTranspose2d::from_weights(
            ConvTranspose2dConfig::new(2, 3, 3).bias(false),
            uniform(&[3, 2, 3, 3], &mut rng),
            None
        ),
        Err(TensorError::ShapeMismatch { .. })
    ));
    let mut t = ConvTranspose2d::new(
        ConvTranspose2dConfig::new(2, 3, 3)
            .stride(2)
            .padding(1)
            .output_padding(1),
        &mut rng,
    )?;
    match t.forward(uniform(&[1, 3, 4, 4], &mut rng), Mode::Train) {
        Err(TensorError::ShapeMismatch { layer, got, .. }) => {
            assert_eq!(layer, t.describe());
            assert_eq!(got, vec![1, 3, 4, 4]);
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
    assert!(matches!(
        t.backward(uniform(&[1, 3, 8, 8], &mut rng)),
        Err(TensorError::NoForwardCache { .. })
    ));
    let y = t.forward(uniform(&[1, 2, 4, 4], &mut rng), Mode::Train)?;
    assert_eq!(y.shape(), &[1, 3, 8, 8]);
    assert!(matches!(
        t.backward(uniform(&[1, 3, 8, 7], &mut rng)),
        Err(TensorError::ShapeMismatch { .. })
    ));
    let dx = t.backward(uniform(&[1, 3, 8, 8], &mut rng))?;
    assert_eq!(dx.shape(), &[1, 2, 4, 4]);
    assert!(matches!(
        t.backward(uniform(&[1, 3, 8, 8], &mut rng)),
        Err(TensorError::NoForwardCache { .. })
    ));
    Ok(())
}

#[test]
fn one_channel_layers_agree_on_the_direct_and_gemm_paths() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(27);
    let c = ConvTranspose2dConfig::new;
    let configs = [
        ([3, 3, 6, 17], c(3, 1, 3)),
        ([2, 4, 7, 37], c(4, 1, 3).padding(2)),
        ([4, 32, 28, 28], c(32, 1, 3).padding(1)),
    ];
    for (shape, cfg) in configs {
        let proto = layer(cfg, &mut rng);
        let x = uniform(&shape, &mut rng);
        let dy = uniform(&proto.output_shape(&shape)?, &mut rng);
        let run = |im2col_only: bool| -> Result<Vec<ArrayD<f32>>> {
            let mut t = ConvTranspose2d::from_weights(
                cfg,
                proto.weight.value.clone(),
                proto.bias.as_ref().map(|b| b.value.clone()),
            )?;
            t.scratch.set_im2col_only(im2col_only);
            let y = t.forward(x.clone(), Mode::Train)?;
            let dx = t.backward(dy.clone())?;
            let db = t.bias.as_ref().expect("bias").grad.clone();
            Ok(vec![y, dx, t.weight.grad.clone(), db])
        };
        let (direct, gemm) = (run(false)?, run(true)?);
        for (what, (a, b)) in ["y", "dx", "dw", "db"].iter().zip(direct.iter().zip(&gemm)) {
            assert_eq!(a.shape(), b.shape());
            let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            for (u, v) in a.iter().zip(b.iter()) {
                assert!((u - v).abs() <= 1e-5 * scale, "{cfg:?} {what}: {u} vs {v}");
            }
        }
    }
    Ok(())
}
