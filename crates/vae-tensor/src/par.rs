//! Element-wise loops over the current rayon pool with **fixed chunks**.
//!
//! Every loop here splits its slice into chunks of [`CHUNK`] elements, a constant that does
//! not depend on the thread count. Element-wise maps are therefore trivially the same on
//! any pool, and reductions ([`sum_f64`], [`zip_sum_f64`]) add each chunk in order and then
//! the chunk sums in order, so they give the same bits with 1, 2 or 64 threads (but not
//! necessarily the bits of one long serial sum).
//!
//! Slices of at most one chunk run on the calling thread without touching rayon.

use rayon::prelude::*;

/// Elements per chunk of every loop in this module (32 Ki `f32` = 128 KiB).
pub const CHUNK: usize = 1 << 15;

/// `a[i] = f(a[i])` for every element.
pub fn map_inplace(a: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    if a.len() <= CHUNK {
        a.iter_mut().for_each(|v| *v = f(*v));
    } else {
        a.par_chunks_mut(CHUNK)
            .for_each(|c| c.iter_mut().for_each(|v| *v = f(*v)));
    }
}

/// `a[i] = f(a[i], b[i])` for every element.
///
/// # Panics
/// If the slices differ in length.
#[track_caller]
pub fn zip_map_inplace(a: &mut [f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    assert_eq!(a.len(), b.len(), "zip_map_inplace: lengths differ");
    let body = |(ca, cb): (&mut [f32], &[f32])| {
        ca.iter_mut().zip(cb).for_each(|(x, &y)| *x = f(*x, y));
    };
    if a.len() <= CHUNK {
        body((a, b));
    } else {
        a.par_chunks_mut(CHUNK)
            .zip(b.par_chunks(CHUNK))
            .for_each(body);
    }
}

/// Sets every element to `v` (a parallel `fill`).
pub fn fill(a: &mut [f32], v: f32) {
    if a.len() <= CHUNK {
        a.fill(v);
    } else {
        a.par_chunks_mut(CHUNK).for_each(|c| c.fill(v));
    }
}

/// `Σ f(a[i])` in `f64`: each chunk summed in order, then the chunk sums in order.
pub fn sum_f64(a: &[f32], f: impl Fn(f32) -> f64 + Sync) -> f64 {
    let chunk_sum = |c: &[f32]| c.iter().map(|&v| f(v)).sum::<f64>();
    if a.len() <= CHUNK {
        return chunk_sum(a);
    }
    let parts: Vec<f64> = a.par_chunks(CHUNK).map(chunk_sum).collect();
    parts.iter().sum()
}

/// Writes `out[i] = g(a[i], b[i])` and returns `Σ f(a[i], b[i])` in `f64` (chunk sums
/// in order, as [`sum_f64`]): a loss value and its gradient in one pass. `out` may be
/// a fresh buffer; its old contents are ignored.
///
/// # Panics
/// If the slices differ in length.
#[track_caller]
pub fn zip_map_sum_f64(
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    fg: impl Fn(f32, f32) -> (f64, f32) + Sync,
) -> f64 {
    assert!(
        a.len() == b.len() && a.len() == out.len(),
        "zip_map_sum_f64: lengths differ"
    );
    let body = |((co, ca), cb): ((&mut [f32], &[f32]), &[f32])| {
        let mut s = 0.0f64;
        for ((o, &x), &y) in co.iter_mut().zip(ca).zip(cb) {
            let (v, g) = fg(x, y);
            s += v;
            *o = g;
        }
        s
    };
    if a.len() <= CHUNK {
        return body(((out, a), b));
    }
    let parts: Vec<f64> = out
        .par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK))
        .zip(b.par_chunks(CHUNK))
        .map(body)
        .collect();
    parts.iter().sum()
}

/// `Σ f(a[i], b[i])` in `f64` (chunk sums in order, as [`sum_f64`]).
///
/// # Panics
/// If the slices differ in length.
#[track_caller]
pub fn zip_sum_f64(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f64 + Sync) -> f64 {
    assert_eq!(a.len(), b.len(), "zip_sum_f64: lengths differ");
    let chunk_sum =
        |(ca, cb): (&[f32], &[f32])| ca.iter().zip(cb).map(|(&x, &y)| f(x, y)).sum::<f64>();
    if a.len() <= CHUNK {
        return chunk_sum((a, b));
    }
    let parts: Vec<f64> = a
        .par_chunks(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .map(chunk_sum)
        .collect();
    parts.iter().sum()
}

/// A mask with one byte per element of a slice, for layers whose backward pass only needs
/// a sign (ReLU, LeakyReLU): a quarter of the memory of caching the `f32` output, and
/// loops over it vectorize (a bit per element was measured slower than the clone it
/// replaced).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mask {
    bytes: Vec<u8>,
}

impl Mask {
    /// Number of elements the mask covers.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when the mask covers no element.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Element `i` of the mask (false past the end).
    pub fn get(&self, i: usize) -> bool {
        self.bytes.get(i).is_some_and(|&b| b != 0)
    }
}

/// `a[i] = f(a[i])` for every element and returns the mask of `keep(a[i])` on the new
/// values.
pub fn map_inplace_mask(
    a: &mut [f32],
    f: impl Fn(f32) -> f32 + Sync,
    keep: impl Fn(f32) -> bool + Sync,
) -> Mask {
    let mut bytes = vec![0u8; a.len()];
    let body = |(ca, cm): (&mut [f32], &mut [u8])| {
        for (v, m) in ca.iter_mut().zip(cm.iter_mut()) {
            let y = f(*v);
            *v = y;
            *m = keep(y) as u8;
        }
    };
    if a.len() <= CHUNK {
        body((a, &mut bytes));
    } else {
        a.par_chunks_mut(CHUNK)
            .zip(bytes.par_chunks_mut(CHUNK))
            .for_each(body);
    }
    Mask { bytes }
}

/// `a[i] = f(a[i], mask[i])` for every element.
///
/// # Panics
/// If the mask does not cover exactly `a.len()` elements.
#[track_caller]
pub fn map_with_mask(a: &mut [f32], mask: &Mask, f: impl Fn(f32, bool) -> f32 + Sync) {
    assert_eq!(a.len(), mask.len(), "map_with_mask: lengths differ");
    let body = |(ca, cm): (&mut [f32], &[u8])| {
        for (v, &m) in ca.iter_mut().zip(cm) {
            *v = f(*v, m != 0);
        }
    };
    if a.len() <= CHUNK {
        body((a, &mask.bytes));
    } else {
        a.par_chunks_mut(CHUNK)
            .zip(mask.bytes.par_chunks(CHUNK))
            .for_each(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0)
            .collect()
    }

    fn on(threads: usize, f: impl FnOnce() -> f64 + Send) -> f64 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    #[test]
    fn sums_are_the_same_bits_on_any_pool_and_close_to_serial() {
        for n in [0, 1, 63, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let a = data(n);
            let b: Vec<f32> = a.iter().map(|v| v * 0.5 + 1.0).collect();
            let s1 = on(1, || sum_f64(&a, |v| v as f64 * v as f64));
            let s3 = on(3, || sum_f64(&a, |v| v as f64 * v as f64));
            assert_eq!(s1.to_bits(), s3.to_bits());
            let serial: f64 = a.iter().map(|&v| v as f64 * v as f64).sum();
            assert!((s1 - serial).abs() <= 1e-9 * serial.abs().max(1.0));
            let z1 = on(1, || zip_sum_f64(&a, &b, |x, y| x as f64 * y as f64));
            let z4 = on(4, || zip_sum_f64(&a, &b, |x, y| x as f64 * y as f64));
            assert_eq!(z1.to_bits(), z4.to_bits());
            let mut o1 = vec![f32::NAN; n];
            let mut o2 = vec![0.0; n];
            let m1 = on(1, || {
                zip_map_sum_f64(&mut o1, &a, &b, |x, y| (x as f64, x - y))
            });
            let m2 = on(2, || {
                zip_map_sum_f64(&mut o2, &a, &b, |x, y| (x as f64, x - y))
            });
            assert_eq!(m1.to_bits(), m2.to_bits());
            assert_eq!(o1, o2);
            assert!(o1.iter().zip(&a).zip(&b).all(|((&o, &x), &y)| o == x - y));
        }
    }

    #[test]
    fn masks_record_the_predicate_and_drive_the_backward_map() {
        for n in [0, 5, 64, 65, CHUNK + 100, 2 * CHUNK] {
            let orig = data(n);
            let mut a = orig.clone();
            let mask = map_inplace_mask(&mut a, |v| v.max(0.0), |v| v > 0.0);
            assert_eq!(mask.len(), n);
            for (i, (&y, &x)) in a.iter().zip(&orig).enumerate() {
                assert_eq!(y, x.max(0.0));
                assert_eq!(mask.get(i), x > 0.0, "element {i}");
            }
            assert!(!mask.get(n));
            let mut g = vec![1.5f32; n];
            map_with_mask(&mut g, &mask, |g, k| if k { g } else { 0.0 });
            for (i, &v) in g.iter().enumerate() {
                assert_eq!(v, if orig[i] > 0.0 { 1.5 } else { 0.0 });
            }
            let mut f = vec![2.0f32; n];
            map_inplace(&mut f, |v| v * 3.0);
            zip_map_inplace(&mut f, &orig, |v, o| v + o);
            fill(&mut g, 0.25);
            for i in 0..n {
                assert_eq!(f[i], 6.0 + orig[i]);
                assert_eq!(g[i], 0.25);
            }
        }
    }
}
