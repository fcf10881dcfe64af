//! `Flatten` and `Reshape`: change the per-sample shape, keep the batch dimension.

use crate::error::{Result, TensorError};
use crate::layer::{check_dy, into_standard, take_cache, Layer, Mode};
use ndarray::ArrayD;

/// `[N, d1, d2, ...] -> [N, d1·d2·...]`. PyTorch: `nn.Flatten()`.
///
/// Backward reshapes `dy` back to the input shape.
#[derive(Debug, Clone, Default)]
pub struct Flatten {
    input_shape: Option<Vec<usize>>,
}

impl Flatten {
    /// A flatten layer.
    pub fn new() -> Self {
        Self::default()
    }
}

/// `[N, ...] -> [N, shape...]` for a fixed per-sample `shape` with the same number of
/// elements. PyTorch: `x.view(-1, *shape)`.
#[derive(Debug, Clone)]
pub struct Reshape {
    shape: Vec<usize>,
    input_shape: Option<Vec<usize>>,
}

impl Reshape {
    /// Reshapes every sample to `per_sample_shape`.
    pub fn new(per_sample_shape: Vec<usize>) -> Self {
        Reshape {
            shape: per_sample_shape,
            input_shape: None,
        }
    }
}

fn reshape(layer: &str, x: ArrayD<f32>, shape: Vec<usize>) -> Result<ArrayD<f32>> {
    let got = x.shape().to_vec();
    // A row-major array is reshaped in place (no copy); others are copied once.
    into_standard(x)
        .into_shape_with_order(shape.clone())
        .map_err(|_| {
            TensorError::shape(
                layer,
                format!("{} elements", shape.iter().product::<usize>()),
                &got,
            )
        })
}

fn per_sample_output(layer: &str, input: &[usize], shape: &[usize]) -> Result<Vec<usize>> {
    let Some((&n, rest)) = input.split_first() else {
        return Err(TensorError::shape(layer, "[N, ...]", input));
    };
    if rest.iter().product::<usize>() != shape.iter().product::<usize>() {
        return Err(TensorError::shape(
            layer,
            format!(
                "[N, ...] with {} elements per sample",
                shape.iter().product::<usize>()
            ),
            input,
        ));
    }
    Ok(std::iter::once(n).chain(shape.iter().copied()).collect())
}

crate::no_params!(Flatten, Reshape);

impl Layer for Flatten {
    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        let input = x.shape().to_vec();
        let per: usize = input.iter().skip(1).product();
        let out = self.output_shape(&input)?;
        debug_assert_eq!(out[1], per);
        self.input_shape = (mode == Mode::Train).then(|| input.clone());
        reshape("Flatten", x, out)
    }

    fn backward(&mut self, dy: ArrayD<f32>) -> Result<ArrayD<f32>> {
        let input = take_cache(&mut self.input_shape, "Flatten")?;
        check_dy("Flatten", &self.output_shape(&input)?, &dy)?;
        reshape("Flatten", dy, input)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input.is_empty() {
            return Err(TensorError::shape("Flatten", "[N, ...]", input));
        }
        Ok(vec![input[0], input[1..].iter().product()])
    }

    fn describe(&self) -> String {
        "Flatten".into()
    }
}

impl Layer for Reshape {
    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        let input = x.shape().to_vec();
        let out = self.output_shape(&input)?;
        self.input_shape = (mode == Mode::Train).then(|| input.clone());
        reshape(&self.describe(), x, out)
    }

    fn backward(&mut self, dy: ArrayD<f32>) -> Result<ArrayD<f32>> {
        let name = self.describe();
        let input = take_cache(&mut self.input_shape, &name)?;
        check_dy(&name, &self.output_shape(&input)?, &dy)?;
        reshape(&name, dy, input)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        per_sample_output(&self.describe(), input, &self.shape)
    }

    fn describe(&self) -> String {
        format!("Reshape({:?})", self.shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check_layer, GradCheckConfig};
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn flatten_and_reshape_round_trip_with_exact_gradients() {
        let mut rng = StdRng::seed_from_u64(5);
        let x = ArrayD::from_shape_fn(vec![2, 3, 2, 2], |d| {
            (d[0] * 12 + d[1] * 4 + d[2] * 2 + d[3]) as f32
        });
        let mut f = Flatten::new();
        let y = f.forward(x.clone(), Mode::Train).unwrap();
        assert_eq!(y.shape(), &[2, 12]);
        let mut r = Reshape::new(vec![3, 2, 2]);
        let back = r.forward(y, Mode::Eval).unwrap();
        assert_eq!(back, x);
        for layer in [&mut f as &mut dyn Layer, &mut r] {
            let input = if layer.describe() == "Flatten" {
                x.clone()
            } else {
                x.clone().into_shape_with_order(vec![2, 12]).unwrap()
            };
            check_layer(layer, &input, &GradCheckConfig::default(), &mut rng)
                .unwrap()
                .assert_passed();
        }
    }

    #[test]
    fn reshape_rejects_a_wrong_element_count() {
        let mut r = Reshape::new(vec![64, 7, 7]);
        let err = r
            .forward(ArrayD::zeros(vec![2, 3000]), Mode::Eval)
            .unwrap_err();
        assert!(matches!(err, TensorError::ShapeMismatch { ref got, .. } if got == &vec![2, 3000]));
        assert_eq!(r.output_shape(&[5, 3136]).unwrap(), vec![5, 64, 7, 7]);
    }
}
