//! Bilinear upsampling by an integer factor, as a layer with a hand-written backward pass.

use ndarray::{Array4, ArrayD, Axis, Ix4};
use vae_tensor::layer::{Layer, Mode};
use vae_tensor::TensorError;

/// Bilinear upsampling of `[n, c, h, w]` to `[n, c, f·h, f·w]` (half-pixel centres, edge
/// samples clamped: PyTorch's `align_corners = False`). Linear in its input; backward is
/// the transpose. No parameters.
#[derive(Debug, Clone)]
pub struct Upsample {
    factor: usize,
    input: Option<[usize; 4]>,
}

vae_tensor::no_params!(Upsample);

/// The two source taps and weights of each output coordinate along one axis.
fn taps(n_in: usize, factor: usize) -> Vec<(usize, usize, f32)> {
    (0..n_in * factor)
        .map(|o| {
            let s = ((o as f32 + 0.5) / factor as f32 - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(n_in - 1);
            let i1 = (i0 + 1).min(n_in - 1);
            (i0, i1, s - i0 as f32)
        })
        .collect()
}

impl Upsample {
    /// Upsampling by `factor >= 1`.
    ///
    /// # Errors
    /// [`TensorError::InvalidConfig`] for `factor == 0`.
    pub fn new(factor: usize) -> vae_tensor::Result<Self> {
        if factor == 0 {
            return Err(TensorError::config("Upsample", "factor must be >= 1"));
        }
        Ok(Upsample {
            factor,
            input: None,
        })
    }

    /// The upsampling factor.
    pub fn factor(&self) -> usize {
        self.factor
    }
}

impl Layer for Upsample {
    fn forward(&mut self, x: ArrayD<f32>, _mode: Mode) -> vae_tensor::Result<ArrayD<f32>> {
        let out_shape = self.output_shape(x.shape())?;
        let x = x
            .into_dimensionality::<Ix4>()
            .map_err(|_| TensorError::shape("Upsample", "[n, c, h, w]", &out_shape))?;
        let (n, c, h, w) = x.dim();
        self.input = Some([n, c, h, w]);
        let f = self.factor;
        if f == 1 {
            return Ok(x.into_dyn());
        }
        let (ty, tx) = (taps(h, f), taps(w, f));
        let mut out = Array4::<f32>::zeros((n, c, h * f, w * f));
        for b in 0..n {
            for ch in 0..c {
                let xb = x.index_axis(Axis(0), b);
                let src = xb.index_axis(Axis(0), ch);
                let mut ob = out.index_axis_mut(Axis(0), b);
                let mut dst = ob.index_axis_mut(Axis(0), ch);
                for (oy, &(y0, y1, fy)) in ty.iter().enumerate() {
                    for (ox, &(x0, x1, fx)) in tx.iter().enumerate() {
                        dst[[oy, ox]] = (1.0 - fy)
                            * ((1.0 - fx) * src[[y0, x0]] + fx * src[[y0, x1]])
                            + fy * ((1.0 - fx) * src[[y1, x0]] + fx * src[[y1, x1]]);
                    }
                }
            }
        }
        Ok(out.into_dyn())
    }

    fn backward(&mut self, dy: ArrayD<f32>) -> vae_tensor::Result<ArrayD<f32>> {
        let [n, c, h, w] = self.input.take().ok_or(TensorError::NoForwardCache {
            layer: "Upsample".into(),
        })?;
        let f = self.factor;
        let expected = [n, c, h * f, w * f];
        if dy.shape() != expected {
            return Err(TensorError::shape(
                "Upsample backward",
                format!("{expected:?}"),
                dy.shape(),
            ));
        }
        if f == 1 {
            return Ok(dy);
        }
        let dy = dy.into_dimensionality::<Ix4>().expect("shape checked");
        let (ty, tx) = (taps(h, f), taps(w, f));
        let mut dx = Array4::<f32>::zeros((n, c, h, w));
        for b in 0..n {
            for ch in 0..c {
                let gb = dy.index_axis(Axis(0), b);
                let g = gb.index_axis(Axis(0), ch);
                let mut db = dx.index_axis_mut(Axis(0), b);
                let mut d = db.index_axis_mut(Axis(0), ch);
                for (oy, &(y0, y1, fy)) in ty.iter().enumerate() {
                    for (ox, &(x0, x1, fx)) in tx.iter().enumerate() {
                        let v = g[[oy, ox]];
                        d[[y0, x0]] += (1.0 - fy) * (1.0 - fx) * v;
                        d[[y0, x1]] += (1.0 - fy) * fx * v;
                        d[[y1, x0]] += fy * (1.0 - fx) * v;
                        d[[y1, x1]] += fy * fx * v;
                    }
                }
            }
        }
        Ok(dx.into_dyn())
    }

    fn output_shape(&self, input: &[usize]) -> vae_tensor::Result<Vec<usize>> {
        match input {
            [n, c, h, w] if *h > 0 && *w > 0 => Ok(vec![*n, *c, h * self.factor, w * self.factor]),
            _ => Err(TensorError::shape(
                "Upsample",
                "[n, c, h > 0, w > 0]",
                input,
            )),
        }
    }

    fn describe(&self) -> String {
        format!("Upsample(bilinear x{})", self.factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};
    use vae_tensor::gradcheck::{check_layer, GradCheckConfig};

    #[test]
    fn constant_stays_constant_and_ramp_is_interpolated() {
        let mut up = Upsample::new(2).unwrap();
        let x = ArrayD::from_elem(vec![1, 1, 3, 3], 0.7f32);
        let y = up.forward(x, Mode::Eval).unwrap();
        assert_eq!(y.shape(), &[1, 1, 6, 6]);
        assert!(y.iter().all(|&v| (v - 0.7).abs() < 1e-6));
        // Ramp 0, 1, 2 along x: outputs at half-pixel centres 0, .25, .75, 1.25, 1.75, 2.
        let x = ArrayD::from_shape_fn(vec![1, 1, 1, 3], |i| i[3] as f32);
        let y = up.forward(x, Mode::Eval).unwrap();
        let ramp = [0.0, 0.25, 0.75, 1.25, 1.75, 2.0];
        let both_rows: Vec<f32> = ramp.iter().chain(&ramp).copied().collect();
        assert_eq!(y.iter().copied().collect::<Vec<f32>>(), both_rows);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let mut rng = StdRng::seed_from_u64(3);
        for f in [1, 2, 4] {
            let mut up = Upsample::new(f).unwrap();
            let x = ArrayD::from_shape_fn(vec![2, 2, 3, 5], |i| {
                (i[0] + 2 * i[1] + 3 * i[2] + 5 * i[3]) as f32 * 0.1 - 1.0
            });
            check_layer(&mut up, &x, &GradCheckConfig::default(), &mut rng)
                .unwrap()
                .assert_passed();
        }
        assert!(Upsample::new(0).is_err());
    }
}
