//! `Dense`: a fully connected layer `y = x Wᵀ + b`.

use crate::error::{Result, TensorError};
use crate::gemm::{sgemm_par, MatMut, MatRef};
use crate::init::Init;
use crate::layer::{
    check_dy, into_standard, join_name, take_cache, Layer, Mode, Param, Parameterized,
};
use ndarray::{Array2, ArrayD};
use rand::Rng;

/// A fully connected layer. PyTorch: `nn.Linear(in_features, out_features)`.
///
/// # Shapes
/// - input `[N, in_features]`, output `[N, out_features]`
/// - `weight` `[out_features, in_features]`, `bias` `[out_features]`
///
/// # Formulas
/// - forward: `y = x Wᵀ + b`
/// - backward: `dx = dy W`, `dW += dyᵀ x`, `db += Σ_n dy[n]`
///
/// ```
/// use ndarray::arr2;
/// use vae_tensor::{layers::dense::Dense, Layer, Mode};
/// let mut d = Dense::from_weights(arr2(&[[1.0f32, 2.0], [0.0, -1.0]]), ndarray::arr1(&[0.5, 0.0]))?;
/// let y = d.forward(arr2(&[[1.0f32, 1.0]]).into_dyn(), Mode::Eval)?;
/// assert_eq!(y.into_raw_vec_and_offset().0, vec![3.5, -1.0]);
/// # Ok::<(), vae_tensor::TensorError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dense {
    in_features: usize,
    out_features: usize,
    weight: Param,
    bias: Param,
    /// The last training input `[N, in]`; backward writes dx over it.
    cache: Option<ArrayD<f32>>,
}

impl Dense {
    /// A dense layer with `init` weights (fan-in = `in_features`) and zero bias.
    pub fn new(
        in_features: usize,
        out_features: usize,
        init: Init,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        if in_features == 0 || out_features == 0 {
            return Err(TensorError::config(
                "Dense",
                format!("features must be > 0, got in {in_features}, out {out_features}"),
            ));
        }
        let w = init.sample(&[out_features, in_features], in_features, out_features, rng);
        let b = ArrayD::zeros(vec![out_features]);
        Ok(Dense {
            in_features,
            out_features,
            weight: Param::new(w),
            bias: Param::new(b),
            cache: None,
        })
    }

    /// A dense layer with the given weight `[out, in]` and bias `[out]`.
    pub fn from_weights(weight: Array2<f32>, bias: ndarray::Array1<f32>) -> Result<Self> {
        let (out_features, in_features) = weight.dim();
        if bias.len() != out_features || in_features == 0 || out_features == 0 {
            return Err(TensorError::shape(
                "Dense",
                format!("bias of shape [{out_features}] and non-empty weight"),
                &[bias.len()],
            ));
        }
        Ok(Dense {
            in_features,
            out_features,
            weight: Param::new(weight.into_dyn()),
            bias: Param::new(bias.into_dyn()),
            cache: None,
        })
    }

    /// Number of input features.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Number of output features.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    fn name(&self) -> String {
        format!("Dense({} -> {})", self.in_features, self.out_features)
    }
}

impl Parameterized for Dense {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        f(&join_name(prefix, "weight"), &mut self.weight);
        f(&join_name(prefix, "bias"), &mut self.bias);
    }
}

/// Gives `a` row-major layout in place (a no-op for every array this crate creates).
fn make_standard(a: &mut ArrayD<f32>) {
    if !a.is_standard_layout() {
        *a = a.as_standard_layout().into_owned();
    }
}

impl Layer for Dense {
    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        let shape = x.shape().to_vec();
        if shape.len() != 2 || shape[1] != self.in_features {
            return Err(TensorError::shape(
                self.name(),
                format!("[N, {}]", self.in_features),
                &shape,
            ));
        }
        let (n, fi, fo) = (shape[0], self.in_features, self.out_features);
        let x = into_standard(x);
        let w = self.weight.value.as_standard_layout();
        let b = self.bias.value.as_standard_layout();
        let b = b.as_slice().expect("standard layout");
        // y starts as the bias in every row, then y += x Wᵀ.
        let mut y = Vec::with_capacity(n * fo);
        for _ in 0..n {
            y.extend_from_slice(b);
        }
        let x_m = MatRef::row_major(x.as_slice().expect("standard layout"), n, fi, fi);
        let w_m = MatRef::row_major(w.as_slice().expect("standard layout"), fo, fi, fi);
        sgemm_par(1.0, x_m, w_m.t(), 1.0, MatMut::row_major(&mut y, n, fo, fo));
        self.cache = (mode == Mode::Train).then_some(x);
        Ok(ArrayD::from_shape_vec(vec![n, fo], y).expect("n · out elements"))
    }

    fn backward(&mut self, dy: ArrayD<f32>) -> Result<ArrayD<f32>> {
        let name = self.name();
        let mut x = take_cache(&mut self.cache, &name)?;
        let (n, fi, fo) = (x.shape()[0], self.in_features, self.out_features);
        check_dy(&name, &[n, fo], &dy)?;
        let dy = into_standard(dy);
        let dy_s = dy.as_slice().expect("standard layout");
        let dy_m = MatRef::row_major(dy_s, n, fo, fo);
        make_standard(&mut self.weight.grad);
        make_standard(&mut self.bias.grad);
        // dW += dyᵀ x
        {
            let x_m = MatRef::row_major(x.as_slice().expect("standard layout"), n, fi, fi);
            let dw = self
                .weight
                .grad
                .as_slice_mut()
                .expect("gradients are row-major");
            sgemm_par(1.0, dy_m.t(), x_m, 1.0, MatMut::row_major(dw, fo, fi, fi));
        }
        // db += Σ_n dy[n] (rows summed in order, then added).
        let mut col_sum = vec![0.0f32; fo];
        for row in dy_s.chunks_exact(fo) {
            for (s, &d) in col_sum.iter_mut().zip(row) {
                *s += d;
            }
        }
        let db = self
            .bias
            .grad
            .as_slice_mut()
            .expect("gradients are row-major");
        for (g, s) in db.iter_mut().zip(col_sum) {
            *g += s;
        }
        // dx = dy W, written over the cached input (same shape, no longer needed).
        let w = self.weight.value.as_standard_layout();
        let w_m = MatRef::row_major(w.as_slice().expect("standard layout"), fo, fi, fi);
        let dx = x.as_slice_mut().expect("standard layout");
        sgemm_par(1.0, dy_m, w_m, 0.0, MatMut::row_major(dx, n, fi, fi));
        Ok(x)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        match input {
            [n, f] if *f == self.in_features => Ok(vec![*n, self.out_features]),
            _ => Err(TensorError::shape(
                self.name(),
                format!("[N, {}]", self.in_features),
                input,
            )),
        }
    }

    fn describe(&self) -> String {
        self.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check_layer, GradCheckConfig};
    use crate::layer::zero_grad;
    use rand::{rngs::StdRng, SeedableRng};
    use rand_distr::{Distribution, StandardNormal};

    fn randn(rng: &mut StdRng, shape: &[usize]) -> ArrayD<f32> {
        ArrayD::from_shape_simple_fn(shape, || StandardNormal.sample(rng))
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = StdRng::seed_from_u64(11);
        for (n, i, o) in [(1, 1, 1), (3, 7, 5), (4, 17, 2), (2, 64, 33)] {
            let mut d = Dense::new(i, o, Init::XavierNormal, &mut rng).unwrap();
            // A non-zero bias so the bias path is exercised in the forward too.
            d.bias.value = randn(&mut rng, &[o]);
            let x = randn(&mut rng, &[n, i]);
            let report = check_layer(&mut d, &x, &GradCheckConfig::default(), &mut rng).unwrap();
            assert!(report.passed(), "Dense {n}x{i}->{o}:\n{report}");
            assert_eq!(report.tensors.len(), 3);
        }
    }

    #[test]
    fn backward_twice_doubles_the_gradients() {
        let mut rng = StdRng::seed_from_u64(12);
        let mut d = Dense::new(6, 4, Init::HeNormal, &mut rng).unwrap();
        let x = randn(&mut rng, &[3, 6]);
        let dy = randn(&mut rng, &[3, 4]);
        zero_grad(&mut d);
        d.forward(x.clone(), Mode::Train).unwrap();
        d.backward(dy.clone()).unwrap();
        let once = (d.weight.grad.clone(), d.bias.grad.clone());
        d.forward(x, Mode::Train).unwrap();
        d.backward(dy).unwrap();
        approx::assert_abs_diff_eq!(d.weight.grad, &once.0 * 2.0, epsilon = 1e-5);
        approx::assert_abs_diff_eq!(d.bias.grad, &once.1 * 2.0, epsilon = 1e-5);
    }

    #[test]
    fn wrong_shapes_name_the_layer_and_both_shapes() {
        let mut rng = StdRng::seed_from_u64(13);
        let mut d = Dense::new(5, 3, Init::HeNormal, &mut rng).unwrap();
        let err = d
            .forward(ArrayD::zeros(vec![2, 4]), Mode::Train)
            .unwrap_err();
        assert_eq!(
            err,
            TensorError::ShapeMismatch {
                layer: "Dense(5 -> 3)".into(),
                expected: "[N, 5]".into(),
                got: vec![2, 4]
            }
        );
        assert!(err.to_string().contains("Dense(5 -> 3)"));
        assert!(matches!(
            d.output_shape(&[2, 4, 1]),
            Err(TensorError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            Dense::new(0, 3, Init::HeNormal, &mut rng),
            Err(TensorError::InvalidConfig { .. })
        ));
        d.forward(ArrayD::zeros(vec![2, 5]), Mode::Train).unwrap();
        assert!(matches!(
            d.backward(ArrayD::zeros(vec![2, 4])),
            Err(TensorError::ShapeMismatch { .. })
        ));
    }
}
