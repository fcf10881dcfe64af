use super::*;
use crate::init::Init;
use crate::layers::dense::Dense;
use crate::{Layer, Mode, Param, TensorError};
use ndarray::{arr1, ArrayD};
use rand::{rngs::StdRng, SeedableRng};

/// One parameter, for hand computations.
struct One(Param);

impl Parameterized for One {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        f(&crate::layer::join_name(prefix, "w"), &mut self.0)
    }
}

fn one(w: &[f32], g: &[f32]) -> One {
    let mut p = Param::new(arr1(w).into_dyn());
    p.grad = arr1(g).into_dyn();
    One(p)
}

#[test]
fn one_adam_step_matches_a_hand_computation() {
    // Step 1: m = 0.1 g, v = 0.001 g², m̂ = g, v̂ = g², so w -= lr · g / (|g| + eps).
    let mut model = one(&[1.0, -2.0], &[0.5, -4.0]);
    let mut adam = Adam::new(AdamConfig::adam(0.1));
    adam.step(&mut model).unwrap();
    let want = [
        1.0 - 0.1 * 0.5 / (0.5 + 1e-8),
        -2.0 + 0.1 * 4.0 / (4.0 + 1e-8),
    ];
    for (w, e) in model.0.value.iter().zip(want) {
        assert!((w - e).abs() < 1e-6, "{w} vs {e}");
    }
    // Step 2 with gradient g2 = 1 (first coordinate): by hand.
    model.0.grad = arr1(&[1.0f32, 0.0]).into_dyn();
    adam.step(&mut model).unwrap();
    let (b1, b2) = (0.9f64, 0.999f64);
    let m = b1 * (0.1 * 0.5) + 0.1 * 1.0;
    let v = b2 * (0.001 * 0.25) + 0.001 * 1.0;
    let mhat = m / (1.0 - b1 * b1);
    let vhat = v / (1.0 - b2 * b2);
    let w1 = (1.0 - 0.1 * 0.5 / (0.5 + 1e-8)) - 0.1 * mhat / (vhat.sqrt() + 1e-8);
    assert!((model.0.value[0] as f64 - w1).abs() < 1e-6);
    assert_eq!(adam.state().step, 2);
}

#[test]
fn adamw_decays_weights_and_adam_adds_l2() {
    let mut a = one(&[2.0], &[0.0]);
    let mut adamw = Adam::new(AdamConfig::adamw(0.1, 0.5));
    adamw.step(&mut a).unwrap();
    // Zero gradient: only the decoupled decay acts, w ← w (1 − lr·wd).
    assert!((a.0.value[0] - 2.0 * (1.0 - 0.05)).abs() < 1e-6);
    let mut b = one(&[2.0], &[0.0]);
    let mut adam = Adam::new(AdamConfig {
        weight_decay: 0.5,
        ..AdamConfig::adam(0.1)
    });
    adam.step(&mut b).unwrap();
    // L2 in the gradient: g = wd·w = 1, first Adam step moves by lr·sign(g).
    assert!((b.0.value[0] - 1.9).abs() < 1e-6);
}

#[test]
fn sgd_momentum_and_nesterov_match_hand_computation() {
    let cfg = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.1,
    };
    let mut m = one(&[1.0], &[1.0]);
    let mut sgd = Sgd::new(cfg);
    sgd.step(&mut m).unwrap(); // g = 1 + 0.1 = 1.1, buf = 1.1, w = 1 - 0.11
    assert!((m.0.value[0] - 0.89).abs() < 1e-6);
    sgd.step(&mut m).unwrap(); // g = 1 + 0.089 = 1.089, buf = 0.99 + 1.089 = 2.079
    assert!((m.0.value[0] - (0.89 - 0.2079)).abs() < 1e-6);
    let mut n = one(&[1.0], &[1.0]);
    let mut nag = Sgd::new(SgdConfig {
        nesterov: true,
        weight_decay: 0.0,
        ..cfg
    });
    nag.step(&mut n).unwrap(); // buf = 1, g = 1 + 0.9 = 1.9
    assert!((n.0.value[0] - 0.81).abs() < 1e-6);
}

#[test]
fn state_round_trips_and_resume_is_exact() {
    let mut rng = StdRng::seed_from_u64(41);
    let mut a = Dense::new(4, 3, Init::HeNormal, &mut rng).unwrap();
    let mut b = a.clone();
    let x: ArrayD<f32> = Init::HeNormal.sample(&[5, 4], 1, 1, &mut rng);
    let run = |d: &mut Dense, opt: &mut dyn Optimizer| {
        crate::zero_grad(d);
        let y = d.forward(x.clone(), Mode::Train).unwrap();
        d.backward(y).unwrap();
        opt.step(d).unwrap();
    };
    let mut oa = Adam::new(AdamConfig::adam(0.01));
    for _ in 0..3 {
        run(&mut a, &mut oa);
    }
    let mut ob = Adam::new(AdamConfig::adam(0.01));
    run(&mut b, &mut ob);
    let saved = ob.state();
    assert_eq!(saved.tensors.len(), 4);
    assert!(saved.tensors.iter().any(|(k, _)| k == "m.weight"));
    let mut resumed = Adam::new(AdamConfig::adam(0.01));
    resumed.load_state(saved).unwrap();
    run(&mut b, &mut resumed);
    run(&mut b, &mut resumed);
    let (mut wa, mut wb) = (Vec::new(), Vec::new());
    a.visit_params("", &mut |_, p| wa.push(p.value.clone()));
    b.visit_params("", &mut |_, p| wb.push(p.value.clone()));
    assert_eq!(wa, wb);
}

#[test]
fn a_changed_parameter_set_is_an_error() {
    let mut adam = Adam::new(AdamConfig::adam(0.01));
    adam.step(&mut one(&[1.0, 2.0], &[0.0, 0.0])).unwrap();
    let err = adam.step(&mut one(&[1.0], &[0.0])).unwrap_err();
    assert!(matches!(err, TensorError::ParamSetChanged { .. }), "{err}");
    let bad = OptimState {
        step: 1,
        tensors: vec![("m.w".into(), ArrayD::zeros(vec![1]))],
    };
    assert!(matches!(
        Adam::new(AdamConfig::adam(0.1)).load_state(bad),
        Err(TensorError::ParamSetChanged { .. })
    ));
}

#[test]
fn take_state_moves_exactly_what_state_copies() {
    let mut rng = StdRng::seed_from_u64(42);
    let mut d = Dense::new(3, 2, Init::HeNormal, &mut rng).unwrap();
    let x: ArrayD<f32> = Init::HeNormal.sample(&[4, 3], 1, 1, &mut rng);
    let mut opts: Vec<Box<dyn Optimizer>> = vec![
        Box::new(Adam::new(AdamConfig::adam(0.01))),
        Box::new(Sgd::new(SgdConfig {
            momentum: 0.9,
            ..SgdConfig::default()
        })),
    ];
    for opt in &mut opts {
        for _ in 0..2 {
            crate::zero_grad(&mut d);
            let y = d.forward(x.clone(), Mode::Train).unwrap();
            d.backward(y).unwrap();
            opt.step(&mut d).unwrap();
        }
        let copied = opt.state();
        let taken = opt.take_state();
        assert_eq!(taken, copied);
        assert_eq!(opt.state().tensors.len(), 0, "take_state leaves no buffers");
        opt.load_state(taken).unwrap();
        assert_eq!(opt.state(), copied);
    }
}
