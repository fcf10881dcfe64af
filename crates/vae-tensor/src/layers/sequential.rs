//! `Sequential`: runs named layers forward in order and backward in reverse.

use crate::error::{Result, TensorError};
use crate::layer::{join_name, Layer, Mode, Param, Parameterized};
use ndarray::ArrayD;

/// A chain of named layers. PyTorch: `nn.Sequential(OrderedDict(...))`.
///
/// Parameters are named `<layer name>.<param name>`, so a `Sequential` named `encoder`
/// holding a `Dense` named `fc` exposes `encoder.fc.weight`.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use vae_tensor::{init::Init, layers::{activation::ReLU, dense::Dense, sequential::Sequential}};
/// use vae_tensor::{num_params, Layer};
/// let mut rng = StdRng::seed_from_u64(0);
/// let mut mlp = Sequential::new()
///     .push("fc1", Dense::new(4, 8, Init::HeNormal, &mut rng)?)
///     .push("relu", ReLU::new())
///     .push("fc2", Dense::new(8, 2, Init::XavierNormal, &mut rng)?);
/// assert_eq!(mlp.output_shape(&[5, 4])?, vec![5, 2]);
/// assert_eq!(num_params(&mut mlp), 4 * 8 + 8 + 8 * 2 + 2);
/// # Ok::<(), vae_tensor::TensorError>(())
/// ```
#[derive(Default)]
pub struct Sequential {
    layers: Vec<(String, Box<dyn Layer>)>,
}

impl std::fmt::Debug for Sequential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.layers
                    .iter()
                    .map(|(n, l)| format!("{n}: {}", l.describe())),
            )
            .finish()
    }
}

impl Sequential {
    /// An empty chain (the identity).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a layer (builder style).
    pub fn push(mut self, name: &str, layer: impl Layer + 'static) -> Self {
        self.add(name, Box::new(layer));
        self
    }

    /// Appends a boxed layer.
    pub fn add(&mut self, name: &str, layer: Box<dyn Layer>) {
        self.layers.push((name.to_string(), layer));
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when the chain holds no layer.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The layers with their names, in forward order.
    pub fn layers(&self) -> impl Iterator<Item = (&str, &dyn Layer)> {
        self.layers.iter().map(|(n, l)| (n.as_str(), l.as_ref()))
    }

    /// Runs forward and records the output shape of every layer (for summaries and tests).
    pub fn shapes(&self, input: &[usize]) -> Result<Vec<(String, Vec<usize>)>> {
        let mut shape = input.to_vec();
        let mut out = Vec::with_capacity(self.layers.len());
        for (name, layer) in &self.layers {
            shape = layer.output_shape(&shape)?;
            out.push((name.clone(), shape.clone()));
        }
        Ok(out)
    }
}

/// Prefixes a child's error with the child's name inside the chain.
fn in_child(name: &str, e: TensorError) -> TensorError {
    match e {
        TensorError::ShapeMismatch {
            layer,
            expected,
            got,
        } => TensorError::ShapeMismatch {
            layer: format!("{name} ({layer})"),
            expected,
            got,
        },
        TensorError::NoForwardCache { layer } => TensorError::NoForwardCache {
            layer: format!("{name} ({layer})"),
        },
        other => other,
    }
}

impl Parameterized for Sequential {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        for (name, layer) in &mut self.layers {
            layer.visit_params(&join_name(prefix, name), f);
        }
    }
}

impl Layer for Sequential {
    fn forward(&mut self, mut x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        for (name, layer) in &mut self.layers {
            x = layer.forward(x, mode).map_err(|e| in_child(name, e))?;
        }
        Ok(x)
    }

    fn backward(&mut self, mut dy: ArrayD<f32>) -> Result<ArrayD<f32>> {
        for (name, layer) in self.layers.iter_mut().rev() {
            dy = layer.backward(dy).map_err(|e| in_child(name, e))?;
        }
        Ok(dy)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let mut shape = input.to_vec();
        for (name, layer) in &self.layers {
            shape = layer.output_shape(&shape).map_err(|e| in_child(name, e))?;
        }
        Ok(shape)
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = self.layers.iter().map(|(_, l)| l.describe()).collect();
        format!("Sequential[{}]", parts.join(" -> "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check_layer, GradCheckConfig};
    use crate::init::Init;
    use crate::layers::activation::{Sigmoid, Tanh};
    use crate::layers::dense::Dense;
    use crate::layers::reshape::{Flatten, Reshape};
    use rand::{rngs::StdRng, SeedableRng};
    use rand_distr::{Distribution, StandardNormal};

    fn mlp(rng: &mut StdRng) -> Sequential {
        Sequential::new()
            .push("flat", Flatten::new())
            .push("fc1", Dense::new(12, 7, Init::XavierNormal, rng).unwrap())
            .push("tanh", Tanh::new())
            .push("fc2", Dense::new(7, 6, Init::XavierNormal, rng).unwrap())
            .push("sig", Sigmoid::new())
            .push("shape", Reshape::new(vec![2, 3]))
    }

    #[test]
    fn chain_gradients_match_finite_differences() {
        let mut rng = StdRng::seed_from_u64(21);
        let mut net = mlp(&mut rng);
        let x = ArrayD::from_shape_simple_fn(vec![3, 3, 2, 2], || StandardNormal.sample(&mut rng));
        let report = check_layer(&mut net, &x, &GradCheckConfig::default(), &mut rng).unwrap();
        report.assert_passed();
        let names: Vec<&str> = report.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["input", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
        );
    }

    #[test]
    fn errors_name_the_child() {
        let mut rng = StdRng::seed_from_u64(22);
        let net = mlp(&mut rng);
        let err = net.output_shape(&[3, 13]).unwrap_err();
        match err {
            TensorError::ShapeMismatch { layer, got, .. } => {
                assert!(layer.starts_with("fc1 (Dense(12 -> 7))"), "{layer}");
                assert_eq!(got, vec![3, 13]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            net.shapes(&[4, 12]).unwrap().last().unwrap().1,
            vec![4, 2, 3]
        );
    }
}
