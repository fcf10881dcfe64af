//! Single-precision matrix multiply: the **only** call site of `matrixmultiply::sgemm`.
//!
//! `C ← α·A·B + β·C` for `A: [m, k]`, `B: [k, n]`, `C: [m, n]`, each given as a slice plus a
//! row stride and a column stride ([`MatRef`], [`MatMut`]), so a transpose is free: the
//! transpose of a row-major `[r, c]` matrix is the same slice with strides `(1, c)`.
//!
//! With `β = 0`, `C` is never read (it may hold NaN or garbage), as in BLAS.
//!
//! # Threads
//! rayon is the only thread pool in this crate: matrixmultiply is built without its
//! `threading` feature, so [`sgemm`] runs entirely on the calling thread and can be called
//! from inside a parallel loop without oversubscribing the cores. [`sgemm_par`] splits `C`
//! into row bands over the current rayon pool and calls [`sgemm`] on each band, so every
//! element is computed in the same order as by [`sgemm`]. See `docs/performance.md`.

use rayon::prelude::*;

/// A read-only matrix: element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    /// The backing storage.
    pub data: &'a [f32],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Row stride (elements between `(i, j)` and `(i + 1, j)`).
    pub rs: usize,
    /// Column stride (elements between `(i, j)` and `(i, j + 1)`).
    pub cs: usize,
}

/// A writable matrix: element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Debug)]
pub struct MatMut<'a> {
    /// The backing storage.
    pub data: &'a mut [f32],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `[rows, cols]` matrix with leading dimension `ld` (row stride).
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize, ld: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            rs: ld,
            cs: 1,
        }
    }

    /// The transpose (a free stride swap).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Element `(i, j)`, bounds-checked.
    #[track_caller]
    pub fn at(&self, i: usize, j: usize) -> f32 {
        assert!(
            i < self.rows && j < self.cols,
            "index ({i}, {j}) out of range"
        );
        self.data[i * self.rs + j * self.cs]
    }
}

impl<'a> MatMut<'a> {
    /// A row-major `[rows, cols]` matrix with leading dimension `ld` (row stride).
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize, ld: usize) -> Self {
        MatMut {
            data,
            rows,
            cols,
            rs: ld,
            cs: 1,
        }
    }

    /// The transpose (a free stride swap).
    pub fn t(self) -> Self {
        MatMut {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// Index of the last element a `[rows, cols]` matrix with strides `(rs, cs)` touches, or
/// `None` when it is empty. Panics on overflow.
#[track_caller]
fn last_index(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return None;
    }
    let last = (rows - 1)
        .checked_mul(rs)
        .and_then(|a| (cols - 1).checked_mul(cs).and_then(|b| a.checked_add(b)))
        .expect("gemm: matrix extent overflows usize");
    Some(last)
}

/// True when distinct `(i, j)` map to distinct offsets (needed so that no two writes of a
/// (possibly multi-threaded) gemm land on one element).
fn strides_injective(rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    if rows <= 1 && cols <= 1 {
        return true;
    }
    if rows <= 1 {
        return cs >= 1;
    }
    if cols <= 1 {
        return rs >= 1;
    }
    // One axis must step over the whole extent of the other.
    (cs >= 1 && rs >= cols * cs) || (rs >= 1 && cs >= rows * rs)
}

/// `C ← α·A·B + β·C`.
///
/// With `beta == 0.0` the old contents of `C` are ignored (NaN in `C` does not propagate).
///
/// # Panics
/// When the shapes disagree (`a.cols != b.rows`, `c` not `[a.rows, b.cols]`), when a
/// matrix's strides reach past the end of its slice, or when `c`'s strides map two elements
/// to one place. These are the conditions the unsafe call relies on, so they are checked
/// always, not only in debug builds.
#[track_caller]
pub fn sgemm(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm: A is [{m}, {k}] but B has {} rows", b.rows);
    assert!(
        c.rows == m && c.cols == n,
        "gemm: C is [{}, {}], expected [{m}, {n}]",
        c.rows,
        c.cols
    );
    if m == 0 || n == 0 {
        return;
    }
    if let Some(last) = last_index(m, k, a.rs, a.cs) {
        assert!(
            last < a.data.len(),
            "gemm: A's strides reach past its slice"
        );
    }
    if let Some(last) = last_index(k, n, b.rs, b.cs) {
        assert!(
            last < b.data.len(),
            "gemm: B's strides reach past its slice"
        );
    }
    let c_last = last_index(m, n, c.rs, c.cs).expect("m, n > 0");
    assert!(
        c_last < c.data.len(),
        "gemm: C's strides reach past its slice"
    );
    assert!(
        strides_injective(m, n, c.rs, c.cs),
        "gemm: C's strides ({}, {}) alias elements",
        c.rs,
        c.cs
    );
    if k == 0 {
        // C ← β·C, with β = 0 meaning "overwrite" (no NaN propagation).
        for i in 0..m {
            for j in 0..n {
                let e = &mut c.data[i * c.rs + j * c.cs];
                *e = if beta == 0.0 { 0.0 } else { beta * *e };
            }
        }
        return;
    }
    let as_isize = |s: usize| isize::try_from(s).expect("gemm: stride exceeds isize::MAX");
    // SAFETY:
    // - `a.data` holds every element `(i, p)`, `i < m`, `p < k` at `i·rs + p·cs`: the largest
    //   such offset is `last_index(m, k, ..)`, asserted `< a.data.len()` above (with checked
    //   arithmetic), and all offsets are non-negative. Same for `b` (`[k, n]`) and `c`
    //   (`[m, n]`).
    // - `c` is borrowed mutably and `a`, `b` immutably, so C does not alias A or B; its
    //   strides are asserted injective, so no two (possibly concurrent) writes hit one
    //   element.
    // - Strides fit in `isize` (checked by `as_isize`), and pointer offsets stay inside the
    //   slices, which are at most `isize::MAX` bytes long.
    // - With `beta == 0`, matrixmultiply does not read C, so uninitialised-looking (NaN)
    //   contents are fine; every element of `c.data` is an initialised f32 anyway.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            as_isize(a.rs),
            as_isize(a.cs),
            b.data.as_ptr(),
            as_isize(b.rs),
            as_isize(b.cs),
            beta,
            c.data.as_mut_ptr(),
            as_isize(c.rs),
            as_isize(c.cs),
        );
    }
}

/// Below this many multiply-adds [`sgemm_par`] does not split.
const PAR_MIN_MACS: usize = 1 << 18;

/// [`sgemm`] split into row bands of `C` over the current rayon pool (for large products
/// that are not already inside a parallel loop). Each band is an ordinary [`sgemm`] call, so
/// the result is bit-identical to [`sgemm`] whatever the thread count.
///
/// # Panics
/// As [`sgemm`].
#[track_caller]
pub fn sgemm_par(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    let threads = rayon::current_num_threads();
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if threads <= 1 || m.saturating_mul(k).saturating_mul(n) < PAR_MIN_MACS {
        return sgemm(alpha, a, b, beta, c);
    }
    // Make C's rows the outer (larger-stride) axis: Cᵀ = Bᵀ·Aᵀ is free with strides.
    if c.rs < c.cs {
        return sgemm_par(alpha, b.t(), a.t(), beta, c.t());
    }
    assert!(
        c.rows == m && c.cols == n && b.rows == k,
        "gemm: shapes disagree: A [{m}, {k}], B [{}, {n}], C [{}, {}]",
        b.rows,
        c.rows,
        c.cols
    );
    assert!(
        strides_injective(m, n, c.rs, c.cs) && (m <= 1 || c.rs >= n * c.cs.max(1)),
        "gemm: C's strides ({}, {}) alias elements",
        c.rs,
        c.cs
    );
    let bands = threads.min(m);
    let band_rows = m.div_ceil(bands);
    let (rs, cs) = (c.rs, c.cs);
    let band_len = band_rows * rs;
    c.data
        .par_chunks_mut(band_len)
        .take(m.div_ceil(band_rows))
        .enumerate()
        .for_each(|(bi, chunk)| {
            let i0 = bi * band_rows;
            let rows = band_rows.min(m - i0);
            let a_band = MatRef {
                data: &a.data[(i0 * a.rs).min(a.data.len())..],
                rows,
                ..a
            };
            sgemm(
                alpha,
                a_band,
                b,
                beta,
                MatMut {
                    data: chunk,
                    rows,
                    cols: n,
                    rs,
                    cs,
                },
            );
        });
}

/// The specification of [`sgemm`]: three loops, f64 accumulation, no blocking.
/// With `beta == 0.0` the old contents of `C` are ignored.
#[track_caller]
pub fn gemm_naive(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    assert_eq!(a.cols, b.rows, "gemm_naive: inner dimensions differ");
    assert!(
        c.rows == a.rows && c.cols == b.cols,
        "gemm_naive: C has the wrong shape"
    );
    for i in 0..a.rows {
        for j in 0..b.cols {
            let mut s = 0.0f64;
            for p in 0..a.cols {
                s += a.at(i, p) as f64 * b.at(p, j) as f64;
            }
            let e = &mut c.data[i * c.rs + j * c.cs];
            let old = if beta == 0.0 { 0.0 } else { beta * *e };
            *e = alpha * s as f32 + old;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn random(len: usize, rng: &mut StdRng) -> Vec<f32> {
        (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// Checks sgemm against gemm_naive for all four transpose combinations, with C
    /// row-major and column-major, NaN-prefilled for beta = 0.
    fn check(m: usize, k: usize, n: usize, alpha: f32, beta: f32, rng: &mut StdRng) {
        let a_buf = random(m * k, rng);
        let b_buf = random(k * n, rng);
        let c0 = random(m * n, rng);
        for ta in [false, true] {
            for tb in [false, true] {
                for c_col_major in [false, true] {
                    // A stored row-major as [m, k] or as [k, m] then transposed.
                    let a = if ta {
                        MatRef::row_major(&a_buf, k, m, m).t()
                    } else {
                        MatRef::row_major(&a_buf, m, k, k)
                    };
                    let b = if tb {
                        MatRef::row_major(&b_buf, n, k, k).t()
                    } else {
                        MatRef::row_major(&b_buf, k, n, n)
                    };
                    let init = if beta == 0.0 {
                        vec![f32::NAN; m * n]
                    } else {
                        c0.clone()
                    };
                    let (mut got, mut want) = (init.clone(), init);
                    let (rs, cs) = if c_col_major { (1, m) } else { (n, 1) };
                    sgemm(
                        alpha,
                        a,
                        b,
                        beta,
                        MatMut {
                            data: &mut got,
                            rows: m,
                            cols: n,
                            rs,
                            cs,
                        },
                    );
                    gemm_naive(
                        alpha,
                        a,
                        b,
                        beta,
                        MatMut {
                            data: &mut want,
                            rows: m,
                            cols: n,
                            rs,
                            cs,
                        },
                    );
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        let tol = 1e-5 * (k as f32 + 1.0) * (1.0 + w.abs());
                        assert!(
                            (g - w).abs() <= tol,
                            "m={m} k={k} n={n} ta={ta} tb={tb} ccm={c_col_major} beta={beta}: [{i}] {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn sgemm_matches_naive_on_awkward_sizes() {
        let mut rng = StdRng::seed_from_u64(7);
        let sizes = [1usize, 3, 17, 33, 67];
        for &m in &sizes {
            for &k in &sizes {
                for &n in &sizes {
                    check(m, k, n, 1.0, 0.0, &mut rng);
                }
            }
        }
        check(67, 129, 33, 0.5, 1.0, &mut rng);
        check(17, 3, 131, -2.0, 0.25, &mut rng);
    }

    #[test]
    fn k_zero_scales_c_by_beta() {
        let mut c = vec![f32::NAN; 6];
        sgemm(
            1.0,
            MatRef::row_major(&[], 2, 0, 0),
            MatRef::row_major(&[], 0, 3, 3),
            0.0,
            MatMut::row_major(&mut c, 2, 3, 3),
        );
        assert_eq!(c, vec![0.0; 6]);
        let mut c = vec![2.0; 6];
        sgemm(
            1.0,
            MatRef::row_major(&[], 2, 0, 0),
            MatRef::row_major(&[], 0, 3, 3),
            0.5,
            MatMut::row_major(&mut c, 2, 3, 3),
        );
        assert_eq!(c, vec![1.0; 6]);
    }

    #[test]
    fn sgemm_par_is_bit_identical_to_sgemm() {
        let mut rng = StdRng::seed_from_u64(3);
        let (m, k, n) = (131, 67, 97);
        let a_buf = random(m * k, &mut rng);
        let b_buf = random(k * n, &mut rng);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        for c_col_major in [false, true] {
            let (rs, cs) = if c_col_major { (1, m) } else { (n, 1) };
            let a = MatRef::row_major(&a_buf, m, k, k);
            let b = MatRef::row_major(&b_buf, k, n, n);
            let mut want = vec![f32::NAN; m * n];
            sgemm(
                1.0,
                a,
                b,
                0.0,
                MatMut {
                    data: &mut want,
                    rows: m,
                    cols: n,
                    rs,
                    cs,
                },
            );
            let mut got = vec![f32::NAN; m * n];
            pool.install(|| {
                sgemm_par(
                    1.0,
                    a,
                    b,
                    0.0,
                    MatMut {
                        data: &mut got,
                        rows: m,
                        cols: n,
                        rs,
                        cs,
                    },
                )
            });
            assert_eq!(got, want);
        }
    }

    #[test]
    #[should_panic(expected = "reach past")]
    fn short_slice_panics_before_the_unsafe_call() {
        let a = vec![0.0; 5];
        let b = vec![0.0; 6];
        let mut c = vec![0.0; 6];
        sgemm(
            1.0,
            MatRef::row_major(&a, 2, 3, 3),
            MatRef::row_major(&b, 3, 2, 2),
            0.0,
            MatMut::row_major(&mut c, 2, 2, 2),
        );
    }

    #[test]
    #[should_panic(expected = "alias")]
    fn aliasing_output_strides_panic() {
        let a = vec![0.0; 6];
        let b = vec![0.0; 6];
        let mut c = vec![0.0; 4];
        sgemm(
            1.0,
            MatRef::row_major(&a, 2, 3, 3),
            MatRef::row_major(&b, 3, 2, 2),
            0.0,
            MatMut {
                data: &mut c,
                rows: 2,
                cols: 2,
                rs: 1,
                cs: 1,
            },
        );
    }
}
