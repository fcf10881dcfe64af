//! Conv2d: fast path against the 7-loop twin, gradient checks, the accumulate rule, errors.

use super::*;
use crate::gradcheck::{check_layer, GradCheckConfig};
use crate::layer::zero_grad;
use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Uniform};

pub(crate) fn uniform(shape: &[usize], rng: &mut StdRng) -> ArrayD<f32> {
    let u = Uniform::new(-1.0f32, 1.0).expect("valid range");
    ArrayD::from_shape_simple_fn(IxDyn(shape), || u.sample(rng))
}

/// The specification: seven nested loops straight from the formula, accumulated in f64.
pub(crate) fn conv2d_forward_naive(
    x: &ArrayD<f32>,
    w: &ArrayD<f32>,
    b: Option<&ArrayD<f32>>,
    stride: usize,
    pad: usize,
    dil: usize,
) -> ArrayD<f32> {
    let (n, c_in, h, wd) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let (c_out, kh, kw) = (w.shape()[0], w.shape()[2], w.shape()[3]);
    let h_out = (h + 2 * pad - dil * (kh - 1) - 1) / stride + 1;
    let w_out = (wd + 2 * pad - dil * (kw - 1) - 1) / stride + 1;
    let mut y = ArrayD::zeros(IxDyn(&[n, c_out, h_out, w_out]));
    for ni in 0..n {
        for co in 0..c_out {
            for oy in 0..h_out {
                for ox in 0..w_out {
                    let mut s = b.map_or(0.0, |b| b[[co]] as f64);
                    for ci in 0..c_in {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * stride + ky * dil) as isize - pad as isize;
                                let ix = (ox * stride + kx * dil) as isize - pad as isize;
                                if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= wd {
                                    continue;
                                }
                                s += w[[co, ci, ky, kx]] as f64
                                    * x[[ni, ci, iy as usize, ix as usize]] as f64;
                            }
                        }
                    }
                    y[[ni, co, oy, ox]] = s as f32;
                }
            }
        }
    }
    y
}

/// (input shape, c_out, kernel [kh, kw], stride, pad, dilation)
type Case = ([usize; 4], usize, [usize; 2], usize, usize, usize);

/// Batch > 1, odd and non-square sizes, stride 2, padding, dilation 2, c_in != c_out,
/// small maps (several images per gemm block) and a large map (one image per block).
const CASES: &[Case] = &[
    ([2, 3, 7, 5], 4, [3, 3], 1, 0, 1),
    ([3, 2, 9, 8], 5, [3, 3], 2, 1, 1),
    ([2, 3, 11, 9], 2, [3, 3], 1, 2, 2),
    ([3, 4, 8, 13], 3, [3, 2], 2, 1, 2),
    ([1, 1, 6, 6], 3, [1, 1], 1, 0, 1),
    ([2, 2, 24, 25], 3, [3, 3], 1, 1, 1),
    // One input channel (the conv 1->32 case), with stride 2, padding, dilation.
    ([3, 1, 9, 19], 4, [3, 3], 2, 1, 2),
    // One input channel, 3x3, stride 1: the direct AVX-512 kernels (where the CPU has
    // them), with padding, a width of 2 column pairs and a height that is not a multiple
    // of their 4-row block.
    ([3, 1, 10, 21], 5, [3, 3], 1, 1, 1),
    ([2, 1, 7, 35], 3, [3, 3], 1, 0, 1),
    // Stride 1, no padding, c_out a multiple of 8: the implicit-gemm forward (where the
    // CPU has AVX-512), with odd sizes, dilation 2, a non-square kernel and a 1x1 kernel.
    ([3, 5, 9, 11], 8, [3, 3], 1, 0, 1),
    ([2, 3, 8, 7], 16, [3, 3], 1, 0, 2),
    ([2, 2, 6, 9], 8, [2, 3], 1, 0, 1),
    ([2, 4, 5, 5], 8, [1, 1], 1, 0, 1),
];

fn layer(case: &Case, bias: bool, rng: &mut StdRng) -> Conv2d {
    let ([_, c_in, _, _], c_out, [kh, kw], s, p, d) = *case;
    let cfg = Conv2dConfig::new(c_in, c_out, kh)
        .kernel_hw(kh, kw)
        .stride(s)
        .padding(p)
        .dilation(d)
        .bias(bias);
    let mut conv = Conv2d::new(cfg, rng).expect("valid config");
    if let Some(b) = &mut conv.bias {
        b.value = uniform(&[c_out], rng);
    }
    conv
}

#[test]
fn forward_matches_the_seven_loop_twin() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(11);
    for case in CASES {
        for bias in [true, false] {
            let mut conv = layer(case, bias, &mut rng);
            let x = uniform(&case.0, &mut rng);
            let (_, _, _, s, p, d) = *case;
            let want = conv2d_forward_naive(
                &x,
                &conv.weight.value,
                conv.bias.as_ref().map(|b| &b.value),
                s,
                p,
                d,
            );
            let got = conv.forward(x, Mode::Eval)?;
            assert_eq!(got.shape(), want.shape(), "{case:?}");
            assert_eq!(conv.output_shape(&case.0)?, want.shape().to_vec());
            for (a, b) in got.iter().zip(want.iter()) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{case:?}: {a} vs {b}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn gradients_pass_finite_differences() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(12);
    let cfg = GradCheckConfig::default();
    for case in CASES {
        let mut conv = layer(case, true, &mut rng);
        let x = uniform(&case.0, &mut rng);
        let report = check_layer(&mut conv, &x, &cfg, &mut rng)?;
        assert_eq!(report.tensors.len(), 3, "input, weight, bias");
        assert!(report.tensors.iter().all(|t| t.checked > 0));
        report.assert_passed();
    }
    Ok(())
}

/// A Conv2d whose backward is deliberately wrong in one of two ways.
struct Broken {
    inner: Conv2d,
    /// Scale dx by 1.05 (a 5% error).
    scale_dx: bool,
    /// Flip the weight gradient's kernel (the classic transposed-kernel bug).
    flip_dw: bool,
}

impl Parameterized for Broken {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        self.inner.visit_params(prefix, f)
    }
}

impl Layer for Broken {
    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        self.inner.forward(x, mode)
    }
    fn backward(&mut self, dy: ArrayD<f32>) -> Result<ArrayD<f32>> {
        let before = self.inner.weight.grad.clone();
        let mut dx = self.inner.backward(dy)?;
        if self.scale_dx {
            dx.mapv_inplace(|v| v * 1.05);
        }
        if self.flip_dw {
            let added = &self.inner.weight.grad - &before;
            let flipped = added
                .slice(ndarray::s![.., .., ..;-1, ..;-1])
                .to_owned()
                .into_dyn();
            self.inner.weight.grad = before + flipped;
        }
        Ok(dx)
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.inner.output_shape(input)
    }
    fn describe(&self) -> String {
        format!("Broken({})", self.inner.describe())
    }
}

#[test]
fn gradcheck_catches_a_wrong_backward() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(13);
    let cfg = GradCheckConfig::default();
    let case = &CASES[1];
    let x = uniform(&case.0, &mut rng);

    let mut scaled = Broken {
        inner: layer(case, true, &mut rng),
        scale_dx: true,
        flip_dw: false,
    };
    let report = check_layer(&mut scaled, &x, &cfg, &mut rng)?;
    assert!(!report.passed(), "5% error in dx must fail:\n{report}");
    assert!(
        !report.tensors[0].passed,
        "the input check is the one that fails"
    );
    assert!(report.tensors[1].passed && report.tensors[2].passed);

    let mut flipped = Broken {
        inner: layer(case, true, &mut rng),
        scale_dx: false,
        flip_dw: true,
    };
    let report = check_layer(&mut flipped, &x, &cfg, &mut rng)?;
    assert!(
        !report.passed(),
        "a flipped kernel gradient must fail:\n{report}"
    );
    assert!(report.tensors[0].passed && !report.tensors[1].passed);

    // The same layer unbroken passes, so the failures above are the bugs, not the check.
    let mut ok = Broken {
        inner: layer(case, true, &mut rng),
        scale_dx: false,
        flip_dw: false,
    };
    check_layer(&mut ok, &x, &cfg, &mut rng)?.assert_passed();
    Ok(())
}

#[test]
fn backward_twice_doubles_the_gradients() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(14);
    let case = &CASES[3];
    let mut conv = layer(case, true, &mut rng);
    let x = uniform(&case.0, &mut rng);
    let dy_shape = conv.output_shape(&case.0)?;
    let dy = uniform(&dy_shape, &mut rng);
    zero_grad(&mut conv);
    conv.forward(x.clone(), Mode::Train)?;
    let dx1 = conv.backward(dy.clone())?;
    let (w1, b1) = (
        conv.weight.grad.clone(),
        conv.bias.as_ref().expect("bias").grad.clone(),
    );
    conv.forward(x, Mode::Train)?;
    let dx2 = conv.backward(dy)?;
    assert_eq!(dx1, dx2, "dx does not accumulate");
    for (g2, g1) in conv.weight.grad.iter().zip(w1.iter()) {
        assert!((g2 - 2.0 * g1).abs() <= 1e-5 * (1.0 + g1.abs()));
    }
    for (g2, g1) in conv.bias.as_ref().expect("bias").grad.iter().zip(b1.iter()) {
        assert!((g2 - 2.0 * g1).abs() <= 1e-5 * (1.0 + g1.abs()));
    }
    assert!(w1.iter().any(|&g| g != 0.0));
    Ok(())
}

#[test]
fn results_do_not_depend_on_the_thread_count() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(15);
    // Large enough to take the parallel path (> 2^20 MACs, several groups); the second
    // case has one input channel (a gemm dimension of 9).
    let cases: [Case; 2] = [
        ([16, 8, 16, 16], 8, [3, 3], 1, 1, 1),
        ([24, 1, 28, 28], 32, [3, 3], 1, 0, 1),
    ];
    for case in cases {
        let x = uniform(&case.0, &mut rng);
        let proto = layer(&case, true, &mut rng);
        let dy = uniform(&proto.output_shape(&case.0)?, &mut rng);
        let run = |threads: usize| -> Result<(ArrayD<f32>, ArrayD<f32>, ArrayD<f32>)> {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            let mut conv = Conv2d::from_weights(
                proto.cfg,
                proto.weight.value.clone(),
                proto.bias.as_ref().map(|b| b.value.clone()),
            )?;
            pool.install(|| {
                let y = conv.forward(x.clone(), Mode::Train)?;
                let dx = conv.backward(dy.clone())?;
                Ok((y, dx, conv.weight.grad.clone()))
            })
        };
        assert_eq!(run(1)?, run(2)?, "{case:?}");
        assert_eq!(run(2)?, run(3)?, "{case:?}");
    }
    Ok(())
}

#[test]
fn buffers_are_reused_across_steps() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(16);
    let case = &CASES[0];
    let mut conv = layer(case, true, &mut rng);
    let x = uniform(&case.0, &mut rng);
    let y0 = conv.forward(x.clone(), Mode::Train)?;
    let dy = uniform(y0.shape(), &mut rng);
    let dx0 = conv.backward(dy.clone())?;
    // The next forward writes into dy's old buffer; results must not change.
    let y1 = conv.forward(x, Mode::Train)?;
    let dx1 = conv.backward(dy)?;
    assert_eq!(y0, y1);
    assert_eq!(dx0, dx1);
    Ok(())
}

#[test]
fn shape_errors_name_the_layer_and_shapes() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(17);
    let mut conv = Conv2d::new(Conv2dConfig::new(3, 4, 3).padding(1), &mut rng)?;
    let name = conv.describe();
    match conv.forward(uniform(&[2, 2, 5, 5], &mut rng), Mode::Train) {
        Err(TensorError::ShapeMismatch {
            layer,
            expected,
            got,
        }) => {
            assert_eq!(layer, name);
            assert_eq!(expected, "[N, 3, H, W]");
            assert_eq!(got, vec![2, 2, 5, 5]);
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
    assert!(matches!(
        conv.forward(uniform(&[3, 5, 5], &mut rng), Mode::Train),
        Err(TensorError::ShapeMismatch { .. })
    ));
    let mut big = Conv2d::new(Conv2dConfig::new(1, 1, 5), &mut rng)?;
    assert!(matches!(
        big.forward(uniform(&[1, 1, 4, 4], &mut rng), Mode::Train),
        Err(TensorError::InvalidConfig { .. })
    ));
    // backward without forward, after an Eval forward, and twice after one forward.
    assert!(matches!(
        conv.backward(uniform(&[2, 4, 5, 5], &mut rng)),
        Err(TensorError::NoForwardCache { .. })
    ));
    conv.forward(uniform(&[2, 3, 5, 5], &mut rng), Mode::Eval)?;
    assert!(matches!(
        conv.backward(uniform(&[2, 4, 5, 5], &mut rng)),
        Err(TensorError::NoForwardCache { .. })
    ));
    conv.forward(uniform(&[2, 3, 5, 5], &mut rng), Mode::Train)?;
    // A wrong dy is rejected and keeps the cache, so a correct dy still works.
    assert!(matches!(
        conv.backward(uniform(&[2, 4, 5, 4], &mut rng)),
        Err(TensorError::ShapeMismatch { .. })
    ));
    conv.backward(uniform(&[2, 4, 5, 5], &mut rng))?;
    assert!(matches!(
        conv.backward(uniform(&[2, 4, 5, 5], &mut rng)),
        Err(TensorError::NoForwardCache { .. })
    ));
    Ok(())
}

#[test]
fn bad_configs_and_weights_are_rejected() {
    let mut rng = StdRng::seed_from_u64(18);
    assert!(matches!(
        Conv2d::new(Conv2dConfig::new(0, 4, 3), &mut rng),
        Err(TensorError::InvalidConfig { .. })
    ));
    assert!(matches!(
        Conv2d::new(Conv2dConfig::new(1, 4, 3).stride(0), &mut rng),
        Err(TensorError::InvalidConfig { .. })
    ));
    assert!(matches!(
        Conv2d::new(Conv2dConfig::new(1, 4, 3).dilation(0), &mut rng),
        Err(TensorError::InvalidConfig { .. })
    ));
    let cfg = Conv2dConfig::new(2, 3, 3);
    assert!(matches!(
        Conv2d::from_weights(
            cfg,
            uniform(&[3, 2, 3, 2], &mut rng),
            Some(uniform(&[3], &mut rng))
        ),
        Err(TensorError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Conv2d::from_weights(
            cfg,
            uniform(&[3, 2, 3, 3], &mut rng),
            Some(uniform(&[2], &mut rng))
        ),
        Err(TensorError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Conv2d::from_weights(cfg, uniform(&[3, 2, 3, 3], &mut rng), None),
        Err(TensorError::InvalidConfig { .. })
    ));
}

#[test]
fn parameters_are_visited_by_name() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(19);
    let mut conv = Conv2d::new(Conv2dConfig::new(2, 3, 3), &mut rng)?;
    let mut names = Vec::new();
    conv.visit_params("enc.conv1", &mut |n, p| {
        names.push((n.to_string(), p.value.shape().to_vec()))
    });
    assert_eq!(
        names,
        vec![
            ("enc.conv1.weight".to_string(), vec![3, 2, 3, 3]),
            ("enc.conv1.bias".to_string(), vec![3])
        ]
    );
    // He-normal: std ≈ sqrt(2 / fan_in) on a large layer.
    let big = Conv2d::new(Conv2dConfig::new(64, 64, 3), &mut rng)?;
    let v = &big.weight.value;
    let var = v.iter().map(|&a| (a as f64).powi(2)).sum::<f64>() / v.len() as f64;
    let want = 2.0 / (64.0 * 9.0);
    assert!((var / want - 1.0).abs() < 0.05, "variance {var} vs {want}");
    Ok(())
}

#[test]
fn an_empty_batch_gives_empty_outputs_and_no_gradient() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(20);
    let mut conv = Conv2d::new(Conv2dConfig::new(2, 3, 3).padding(1), &mut rng)?;
    let y = conv.forward(ArrayD::zeros(IxDyn(&[0, 2, 5, 5])), Mode::Train)?;
    assert_eq!(y.shape(), &[0, 3, 5, 5]);
    let dx = conv.backward(ArrayD::zeros(IxDyn(&[0, 3, 5, 5])))?;
    assert_eq!(dx.shape(), &[0, 2, 5, 5]);
    assert!(conv.weight.grad.iter().all(|&g| g == 0.0));
    Ok(())
}

#[test]
fn one_channel_layers_agree_on_the_direct_and_gemm_paths() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(19);
    let cases: [Case; 3] = [
        ([3, 1, 10, 21], 5, [3, 3], 1, 1, 1),
        ([2, 1, 7, 35], 3, [3, 3], 1, 0, 1),
        ([4, 1, 28, 28], 32, [3, 3], 1, 0, 1),
    ];
    for case in &cases {
        let proto = layer(case, true, &mut rng);
        let x = uniform(&case.0, &mut rng);
        let dy = uniform(&proto.output_shape(&case.0)?, &mut rng);
        let run = |im2col_only: bool| -> Result<Vec<ArrayD<f32>>> {
            let mut conv = Conv2d::from_weights(
                proto.cfg,
                proto.weight.value.clone(),
                proto.bias.as_ref().map(|b| b.value.clone()),
            )?;
            conv.scratch.set_im2col_only(im2col_only);
            let y = conv.forward(x.clone(), Mode::Train)?;
            let dx = conv.backward(dy.clone())?;
            let db = conv.bias.as_ref().expect("bias").grad.clone();
            Ok(vec![y, dx, conv.weight.grad.clone(), db])
        };
        let (direct, gemm) = (run(false)?, run(true)?);
        for (what, (a, b)) in ["y", "dx", "dw", "db"].iter().zip(direct.iter().zip(&gemm)) {
            assert_eq!(a.shape(), b.shape());
            let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            for (u, v) in a.iter().zip(b.iter()) {
                assert!((u - v).abs() <= 1e-5 * scale, "{case:?} {what}: {u} vs {v}");
            }
        }
    }
    Ok(())
}
