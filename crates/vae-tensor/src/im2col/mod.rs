//! im2col / col2im: turn a convolution into a matrix multiply.
//!
//! For one image `x: [c_in, h_in, w_in]` and a [`Conv2dGeom`] `g`, the im2col matrix has
//! `g.col_rows() = c_in·k_h·k_w` rows and `g.out_plane() = h_out·w_out` columns:
//!
//! `col[(ci·k_h + ky)·k_w + kx, oy·w_out + ox] = x[ci, oy·s + ky·d − p, ox·s + kx·d − p]`
//!
//! (zero where the index falls in the padding). Then a convolution is
//! `y[c_out, P] = W[c_out, K] · col[K, P]`. [`col2im`] is the adjoint of [`im2col`]: it adds
//! every column entry back onto the pixel it was read from.
//!
//! The column matrix is row-major with a caller-chosen row stride `ld ≥ h_out·w_out`, so
//! several images can sit side by side in one matrix (`ld = nb·h_out·w_out`, image `b`
//! starting at column `b·h_out·w_out`: pass `&mut col[b·h_out·w_out..]`).
//!
//! Shapes are validated once by [`Conv2dGeom::new`]; these kernels only `debug_assert!`.

use crate::shape::Conv2dGeom;

pub mod phase;
pub use phase::PhaseIm2col;

/// Output positions `o` in `0..out_len` with `0 ≤ o·stride + koff − pad < in_len`, as a
/// half-open range.
#[inline]
fn valid_range(
    out_len: usize,
    in_len: usize,
    koff: usize,
    pad: usize,
    stride: usize,
) -> (usize, usize) {
    let lo = if koff >= pad {
        0
    } else {
        (pad - koff).div_ceil(stride)
    };
    let hi = if in_len + pad <= koff {
        0
    } else {
        (in_len + pad - koff).div_ceil(stride)
    };
    let hi = hi.min(out_len);
    (lo.min(hi), hi)
}

/// Writes the im2col matrix of one image `x` (`[c_in, h_in, w_in]`, contiguous) into `col`
/// (row `r` starts at `col[r·ld]`; `h_out·w_out` entries per row are written, padding as 0).
pub fn im2col(g: &Conv2dGeom, x: &[f32], col: &mut [f32], ld: usize) {
    let (p_out, k_rows) = (g.out_plane(), g.col_rows());
    debug_assert_eq!(x.len(), g.in_image());
    debug_assert!(ld >= p_out);
    debug_assert!(k_rows == 0 || col.len() >= (k_rows - 1) * ld + p_out);
    let (s, d, pad) = (g.stride, g.dilation, g.pad);
    for ci in 0..g.c_in {
        let plane = &x[ci * g.in_plane()..(ci + 1) * g.in_plane()];
        for ky in 0..g.k_h {
            let (oy_lo, oy_hi) = valid_range(g.h_out, g.h_in, ky * d, pad, s);
            for kx in 0..g.k_w {
                let r = (ci * g.k_h + ky) * g.k_w + kx;
                let row = &mut col[r * ld..r * ld + p_out];
                let (ox_lo, ox_hi) = valid_range(g.w_out, g.w_in, kx * d, pad, s);
                row[..oy_lo * g.w_out].fill(0.0);
                row[oy_hi * g.w_out..].fill(0.0);
                for oy in oy_lo..oy_hi {
                    let iy = oy * s + ky * d - pad;
                    let src = &plane[iy * g.w_in..(iy + 1) * g.w_in];
                    let dst = &mut row[oy * g.w_out..(oy + 1) * g.w_out];
                    dst[..ox_lo].fill(0.0);
                    dst[ox_hi..].fill(0.0);
                    if ox_lo < ox_hi {
                        let ix0 = ox_lo * s + kx * d - pad;
                        let dst = &mut dst[ox_lo..ox_hi];
                        if s == 1 {
                            dst.copy_from_slice(&src[ix0..ix0 + dst.len()]);
                        } else {
                            for (j, v) in dst.iter_mut().enumerate() {
                                *v = src[ix0 + j * s];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Adds the im2col-shaped matrix `col` back onto one image `x` (`[c_in, h_in, w_in]`):
/// `x[ci, iy, ix] += Σ col[r, o]` over every `(r, o)` that [`im2col`] reads from `(ci, iy, ix)`.
/// Entries that fall in the padding are dropped. `x` is *added to*; zero it first for a
/// plain col2im.
pub fn col2im(g: &Conv2dGeom, col: &[f32], ld: usize, x: &mut [f32]) {
    let (p_out, k_rows) = (g.out_plane(), g.col_rows());
    debug_assert_eq!(x.len(), g.in_image());
    debug_assert!(ld >= p_out);
    debug_assert!(k_rows == 0 || col.len() >= (k_rows - 1) * ld + p_out);
    let (s, d, pad) = (g.stride, g.dilation, g.pad);
    let in_plane = g.in_plane();
    for ci in 0..g.c_in {
        let plane = &mut x[ci * in_plane..(ci + 1) * in_plane];
        for ky in 0..g.k_h {
            let (oy_lo, oy_hi) = valid_range(g.h_out, g.h_in, ky * d, pad, s);
            for kx in 0..g.k_w {
                let r = (ci * g.k_h + ky) * g.k_w + kx;
                let row = &col[r * ld..r * ld + p_out];
                let (ox_lo, ox_hi) = valid_range(g.w_out, g.w_in, kx * d, pad, s);
                if ox_lo >= ox_hi {
                    continue;
                }
                let ix0 = ox_lo * s + kx * d - pad;
                for oy in oy_lo..oy_hi {
                    let iy = oy * s + ky * d - pad;
                    let dst = &mut plane[iy * g.w_in..(iy + 1) * g.w_in];
                    let src = &row[oy * g.w_out + ox_lo..oy * g.w_out + ox_hi];
                    if s == 1 {
                        for (a, &b) in dst[ix0..ix0 + src.len()].iter_mut().zip(src) {
                            *a += b;
                        }
                    } else {
                        for (j, &b) in src.iter().enumerate() {
                            dst[ix0 + j * s] += b;
                        }
                    }
                }
            }
        }
    }
}

/// The input pixel `(iy, ix)` that column entry `(ky, kx, oy, ox)` reads, or `None` in the
/// padding. Signed arithmetic, straight from the formula.
fn source_pixel(
    g: &Conv2dGeom,
    ky: usize,
    kx: usize,
    oy: usize,
    ox: usize,
) -> Option<(usize, usize)> {
    let iy = (oy * g.stride + ky * g.dilation) as isize - g.pad as isize;
    let ix = (ox * g.stride + kx * g.dilation) as isize - g.pad as isize;
    let inside = iy >= 0 && ix >= 0 && (iy as usize) < g.h_in && (ix as usize) < g.w_in;
    inside.then_some((iy as usize, ix as usize))
}

/// The specification of [`im2col`]: one element at a time from the formula.
pub fn im2col_naive(g: &Conv2dGeom, x: &[f32], col: &mut [f32], ld: usize) {
    for ci in 0..g.c_in {
        for ky in 0..g.k_h {
            for kx in 0..g.k_w {
                let r = (ci * g.k_h + ky) * g.k_w + kx;
                for oy in 0..g.h_out {
                    for ox in 0..g.w_out {
                        col[r * ld + oy * g.w_out + ox] = match source_pixel(g, ky, kx, oy, ox) {
                            Some((iy, ix)) => x[(ci * g.h_in + iy) * g.w_in + ix],
                            None => 0.0,
                        };
                    }
                }
            }
        }
    }
}

/// The specification of [`col2im`]: one element at a time from the formula (adds into `x`).
pub fn col2im_naive(g: &Conv2dGeom, col: &[f32], ld: usize, x: &mut [f32]) {
    for ci in 0..g.c_in {
        for ky in 0..g.k_h {
            for kx in 0..g.k_w {
                let r = (ci * g.k_h + ky) * g.k_w + kx;
                for oy in 0..g.h_out {
                    for ox in 0..g.w_out {
                        if let Some((iy, ix)) = source_pixel(g, ky, kx, oy, ox) {
                            x[(ci * g.h_in + iy) * g.w_in + ix] += col[r * ld + oy * g.w_out + ox];
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::ConvHyper;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// (input [c, h, w], kernel [kh, kw], stride, pad, dilation)
    type Case = ([usize; 3], [usize; 2], usize, usize, usize);
    const CASES: &[Case] = &[
        ([1, 5, 5], [3, 3], 1, 0, 1),
        ([2, 7, 5], [3, 3], 2, 1, 1),
        ([3, 9, 11], [3, 2], 1, 2, 2),
        ([2, 8, 8], [3, 3], 2, 1, 2),
        ([1, 6, 13], [1, 4], 3, 0, 1),
        ([2, 4, 4], [5, 5], 1, 3, 1),
        ([1, 13, 7], [2, 3], 3, 2, 3),
        // Stride 2 (the paired even/odd column path) with pad 0 and 2, even and odd widths.
        ([2, 9, 6], [3, 3], 2, 0, 1),
        ([1, 6, 9], [3, 3], 2, 2, 1),
        ([2, 14, 14], [3, 3], 2, 1, 1),
    ];

    fn geom(c: &Case) -> Conv2dGeom {
        let ([ci, h, w], k, stride, pad, dilation) = *c;
        Conv2dGeom::new(
            "t",
            &[1, ci, h, w],
            1,
            k,
            ConvHyper {
                stride,
                pad,
                dilation,
            },
        )
        .expect("valid case")
    }

    #[test]
    fn im2col_matches_naive_with_padding_and_column_offset() {
        let mut rng = StdRng::seed_from_u64(1);
        for case in CASES {
            let g = geom(case);
            let x: Vec<f32> = (0..g.in_image())
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            // Two images side by side: write into the second column block.
            let p = g.out_plane();
            let ld = 2 * p + 3;
            let mut got = vec![f32::NAN; g.col_rows() * ld];
            let mut want = got.clone();
            im2col(&g, &x, &mut got[p + 1..], ld);
            im2col_naive(&g, &x, &mut want[p + 1..], ld);
            for r in 0..g.col_rows() {
                for o in 0..p {
                    let i = r * ld + p + 1 + o;
                    assert_eq!(
                        got[i].to_bits(),
                        want[i].to_bits(),
                        "{case:?} row {r} col {o}"
                    );
                }
            }
            // Outside the block nothing was written.
            assert!(got[..p + 1].iter().all(|v| v.is_nan()), "{case:?}");
        }
    }

    #[test]
    fn col2im_matches_naive_and_is_the_adjoint() {
        let mut rng = StdRng::seed_from_u64(2);
        for case in CASES {
            let g = geom(case);
            let p = g.out_plane();
            let col: Vec<f32> = (0..g.col_rows() * p)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let start: Vec<f32> = (0..g.in_image())
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let mut got = start.clone();
            let mut want = start;
            col2im(&g, &col, p, &mut got);
            col2im_naive(&g, &col, p, &mut want);
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{case:?}: {a} vs {b}"
                );
            }
            // <im2col(x), col> = <x, col2im(col)>
            let x: Vec<f32> = (0..g.in_image())
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let mut cx = vec![0.0; col.len()];
            im2col(&g, &x, &mut cx, p);
            let mut adj = vec![0.0; x.len()];
            col2im(&g, &col, p, &mut adj);
            let lhs: f64 = cx
                .iter()
                .zip(&col)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            let rhs: f64 = x.iter().zip(&adj).map(|(&a, &b)| a as f64 * b as f64).sum();
            assert!(
                (lhs - rhs).abs() <= 1e-4 * (1.0 + lhs.abs()),
                "{case:?}: {lhs} vs {rhs}"
            );
        }
    }

    #[test]
    fn phase_im2col_matches_naive_on_the_real_columns() {
        let mut rng = StdRng::seed_from_u64(3);
        for case in CASES {
            let g = geom(case);
            let ph = PhaseIm2col::new(&g);
            let (p, p_ext, w_ext) = (g.out_plane(), ph.ext_plane(&g), ph.ext_width());
            let x: Vec<f32> = (0..g.in_image())
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let mut want = vec![f32::NAN; g.col_rows() * p];
            im2col_naive(&g, &x, &mut want, p);
            // Second image of a two-image block, as the kernels use it.
            let ld = 2 * p_ext;
            let mut got = vec![f32::NAN; g.col_rows() * ld];
            ph.im2col(&g, &x, &mut got[p_ext..], ld, &mut Vec::new());
            for r in 0..g.col_rows() {
                for oy in 0..g.h_out {
                    for ox in 0..g.w_out {
                        let a = got[r * ld + p_ext + oy * w_ext + ox];
                        let b = want[r * p + oy * g.w_out + ox];
                        assert_eq!(a.to_bits(), b.to_bits(), "{case:?} r {r} ({oy}, {ox})");
                    }
                }
                // Junk columns hold finite values.
                assert!(got[r * ld + p_ext..r * ld + 2 * p_ext]
                    .iter()
                    .all(|v| v.is_finite()));
            }
        }
    }

    #[test]
    fn phase_col2im_matches_naive() {
        let mut rng = StdRng::seed_from_u64(4);
        for case in CASES {
            let g = geom(case);
            let ph = PhaseIm2col::new(&g);
            let (p, p_ext, w_ext) = (g.out_plane(), ph.ext_plane(&g), ph.ext_width());
            let col: Vec<f32> = (0..g.col_rows() * p)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let mut ext = vec![f32::NAN; g.col_rows() * p_ext];
            phase::expand(&col, g.col_rows(), g.h_out, g.w_out, w_ext, 1, &mut ext);
            let mut back = vec![0.0; col.len()];
            phase::compact(&ext, g.col_rows(), g.h_out, g.w_out, w_ext, 1, &mut back);
            assert_eq!(back, col, "compact inverts expand");
            let start: Vec<f32> = (0..g.in_image())
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let (mut got, mut want) = (start.clone(), start);
            ph.col2im(&g, &ext, p_ext, &mut got, &mut Vec::new());
            col2im_naive(&g, &col, p, &mut want);
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{case:?}: {a} vs {b}"
                );
            }
            // The overwriting form equals the adding form on a zeroed image.
            let mut into = vec![f32::NAN; g.in_image()];
            ph.col2im_into(&g, &ext, p_ext, &mut into, &mut Vec::new());
            let mut zeroed = vec![0.0; g.in_image()];
            ph.col2im(&g, &ext, p_ext, &mut zeroed, &mut Vec::new());
            assert_eq!(into, zeroed, "{case:?}");
        }
    }
}
