//! Seeded weight initialisation: He (Kaiming) and Xavier (Glorot), normal and uniform.
//!
//! Every function takes the generator explicitly, so the same seed gives the same weights.

use ndarray::ArrayD;
use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};

/// How to draw a weight tensor.
///
/// `fan_in` is the number of inputs that feed one output (in·kh·kw for a convolution) and
/// `fan_out` the number of outputs one input feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Init {
    /// N(0, 2 / fan_in), for ReLU networks (He et al. 2015). PyTorch: `kaiming_normal_`.
    #[default]
    HeNormal,
    /// U(−a, a) with a = sqrt(6 / fan_in). PyTorch: `kaiming_uniform_(nonlinearity="relu")`.
    HeUniform,
    /// N(0, 2 / (fan_in + fan_out)) (Glorot and Bengio 2010). PyTorch: `xavier_normal_`.
    XavierNormal,
    /// U(−a, a) with a = sqrt(6 / (fan_in + fan_out)). PyTorch: `xavier_uniform_`.
    XavierUniform,
    /// All zeros (for biases and for tests).
    Zeros,
}

impl Init {
    /// Draws a tensor of `shape` with this scheme.
    ///
    /// ```
    /// use rand::{rngs::StdRng, SeedableRng};
    /// use vae_tensor::init::Init;
    /// let mut rng = StdRng::seed_from_u64(7);
    /// let w = Init::HeNormal.sample(&[64, 32], 32, 64, &mut rng);
    /// assert_eq!(w.shape(), &[64, 32]);
    /// let again = Init::HeNormal.sample(&[64, 32], 32, 64, &mut StdRng::seed_from_u64(7));
    /// assert_eq!(w, again);
    /// ```
    pub fn sample(
        self,
        shape: &[usize],
        fan_in: usize,
        fan_out: usize,
        rng: &mut impl Rng,
    ) -> ArrayD<f32> {
        let fan_in = fan_in.max(1) as f32;
        let fan_out = fan_out.max(1) as f32;
        match self {
            Init::HeNormal => normal(shape, (2.0 / fan_in).sqrt(), rng),
            Init::HeUniform => uniform(shape, (6.0 / fan_in).sqrt(), rng),
            Init::XavierNormal => normal(shape, (2.0 / (fan_in + fan_out)).sqrt(), rng),
            Init::XavierUniform => uniform(shape, (6.0 / (fan_in + fan_out)).sqrt(), rng),
            Init::Zeros => ArrayD::zeros(shape),
        }
    }
}

fn normal(shape: &[usize], std: f32, rng: &mut impl Rng) -> ArrayD<f32> {
    let d = Normal::new(0.0f32, std).expect("std is finite and positive");
    ArrayD::from_shape_simple_fn(shape, || d.sample(rng))
}

fn uniform(shape: &[usize], a: f32, rng: &mut impl Rng) -> ArrayD<f32> {
    let d = Uniform::new_inclusive(-a, a).expect("bound is finite");
    ArrayD::from_shape_simple_fn(shape, || d.sample(rng))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    fn moments(a: &ArrayD<f32>) -> (f64, f64) {
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var)
    }

    #[test]
    fn variances_match_the_formulas() {
        let mut rng = StdRng::seed_from_u64(1);
        let (fi, fo) = (300usize, 100usize);
        let cases = [
            (Init::HeNormal, 2.0 / fi as f64),
            (Init::HeUniform, 2.0 / fi as f64),
            (Init::XavierNormal, 2.0 / (fi + fo) as f64),
            (Init::XavierUniform, 2.0 / (fi + fo) as f64),
        ];
        for (init, want) in cases {
            let w = init.sample(&[200, 300], fi, fo, &mut rng);
            let (mean, var) = moments(&w);
            assert!(
                mean.abs() < 0.01 * want.sqrt() * 10.0,
                "{init:?} mean {mean}"
            );
            assert!(
                (var / want - 1.0).abs() < 0.03,
                "{init:?} var {var} want {want}"
            );
        }
        let z = Init::Zeros.sample(&[3, 4], 4, 3, &mut rng);
        assert!(z.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn uniform_stays_in_bounds() {
        let mut rng = StdRng::seed_from_u64(2);
        let a = (6.0f32 / 50.0).sqrt();
        let w = Init::HeUniform.sample(&[1000], 50, 10, &mut rng);
        assert!(w.iter().all(|&v| v.abs() <= a));
    }
}
