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

/// A precomputed gather table for one geometry, for maps where the row copies of
/// [`im2col`] and [`col2im`] are too short to be fast (stride 2, or rows narrower than
/// [`ROW_COPY_MIN_WIDTH`]).
///
/// Each channel plane is first copied into a zero-bordered *padded plane* (nothing to copy
/// when the padding is 0), so that every column entry, padding included, reads one element of
/// it: for kernel tap `(ky, kx)` and output position `(oy, ox)` the table holds the offset of
/// `(oy·s + ky·d, ox·s + kx·d)` in the padded plane. im2col is then one branch-free gather
/// loop per im2col row and col2im one scatter-add loop, with no per-output-row bookkeeping.
///
/// Built once per geometry (`k_h·k_w·h_out·w_out` offsets) and reused for every image; the
/// kernels keep it in their scratch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Im2colIndex {
    /// The geometry the table was built for, with `n`, `c_in`, `c_out` zeroed (they do not
    /// matter).
    key: Option<Conv2dGeom>,
    /// Padded plane height and width.
    ph: usize,
    pw: usize,
    taps: Vec<usize>,
}

/// Below this output width with stride 1, or at any stride > 1, the kernels use
/// [`Im2colIndex`]; otherwise the row-copy [`im2col`] / [`col2im`], whose inner loops are
/// `memcpy`-sized.
pub const ROW_COPY_MIN_WIDTH: usize = 16;

impl Im2colIndex {
    fn key(g: &Conv2dGeom) -> Conv2dGeom {
        Conv2dGeom {
            n: 0,
            c_in: 0,
            c_out: 0,
            ..*g
        }
    }

    /// The table for `g`.
    pub fn new(g: &Conv2dGeom) -> Self {
        let mut t = Im2colIndex::default();
        t.prepare(g);
        t
    }

    /// True when the kernels should use this table for `g` rather than the row copies.
    pub fn preferred_for(g: &Conv2dGeom) -> bool {
        g.stride > 1 || g.w_out < ROW_COPY_MIN_WIDTH
    }

    /// Rebuilds the table for `g` unless it already matches (reusing its allocation).
    pub fn prepare(&mut self, g: &Conv2dGeom) {
        let key = Self::key(g);
        if self.key == Some(key) {
            return;
        }
        let reach = |out: usize, k: usize| (out - 1) * g.stride + (k - 1) * g.dilation + 1;
        self.ph = (g.h_in + 2 * g.pad).max(reach(g.h_out, g.k_h));
        self.pw = (g.w_in + 2 * g.pad).max(reach(g.w_out, g.k_w));
        self.taps.clear();
        for ky in 0..g.k_h {
            for kx in 0..g.k_w {
                for oy in 0..g.h_out {
                    for ox in 0..g.w_out {
                        let py = oy * g.stride + ky * g.dilation;
                        let px = ox * g.stride + kx * g.dilation;
                        self.taps.push(py * self.pw + px);
                    }
                }
            }
        }
        self.key = Some(key);
    }

    /// True when the padded plane is the plane itself (no padding, no overhang).
    fn in_place(&self, g: &Conv2dGeom) -> bool {
        self.ph == g.h_in && self.pw == g.w_in
    }

    /// Writes one channel plane into the zero-bordered padded plane.
    fn pad_plane(&self, g: &Conv2dGeom, plane: &[f32], padded: &mut [f32]) {
        padded.fill(0.0);
        for (iy, src) in plane.chunks(g.w_in).enumerate() {
            let start = (iy + g.pad) * self.pw + g.pad;
            padded[start..start + g.w_in].copy_from_slice(src);
        }
    }

    /// [`im2col`] through the table. `g` must match the geometry the table was built for
    /// (up to `n`, `c_in`, `c_out`); `padded` is scratch, grown as needed.
    ///
    /// # Panics
    /// When `g` does not match the table.
    #[track_caller]
    pub fn im2col(
        &self,
        g: &Conv2dGeom,
        x: &[f32],
        col: &mut [f32],
        ld: usize,
        padded: &mut Vec<f32>,
    ) {
        assert!(
            self.key == Some(Self::key(g)),
            "Im2colIndex used with another geometry"
        );
        let (p_out, taps) = (g.out_plane(), g.k_h * g.k_w);
        debug_assert_eq!(x.len(), g.in_image());
        let in_place = self.in_place(g);
        if !in_place && padded.len() < self.ph * self.pw {
            padded.resize(self.ph * self.pw, 0.0);
        }
        for ci in 0..g.c_in {
            let plane = &x[ci * g.in_plane()..(ci + 1) * g.in_plane()];
            let src: &[f32] = if in_place {
                plane
            } else {
                let buf = &mut padded[..self.ph * self.pw];
                self.pad_plane(g, plane, buf);
                buf
            };
            for t in 0..taps {
                let r = ci * taps + t;
                let row = &mut col[r * ld..r * ld + p_out];
                let idx = &self.taps[t * p_out..(t + 1) * p_out];
                for (d, &i) in row.iter_mut().zip(idx) {
                    *d = src[i];
                }
            }
        }
    }

    /// [`col2im`] through the table (adds into `x`). `g` must match the table; `padded` is
    /// scratch, grown as needed.
    ///
    /// # Panics
    /// When `g` does not match the table.
    #[track_caller]
    pub fn col2im(
        &self,
        g: &Conv2dGeom,
        col: &[f32],
        ld: usize,
        x: &mut [f32],
        padded: &mut Vec<f32>,
    ) {
        assert!(
            self.key == Some(Self::key(g)),
            "Im2colIndex used with another geometry"
        );
        let (p_out, taps) = (g.out_plane(), g.k_h * g.k_w);
        debug_assert_eq!(x.len(), g.in_image());
        let in_plane = g.in_plane();
        let in_place = self.in_place(g);
        if !in_place && padded.len() < self.ph * self.pw {
            padded.resize(self.ph * self.pw, 0.0);
        }
        for ci in 0..g.c_in {
            let plane = &mut x[ci * in_plane..(ci + 1) * in_plane];
            let dst: &mut [f32] = if in_place {
                plane
            } else {
                let buf = &mut padded[..self.ph * self.pw];
                buf.fill(0.0);
                buf
            };
            for t in 0..taps {
                let r = ci * taps + t;
                let row = &col[r * ld..r * ld + p_out];
                let idx = &self.taps[t * p_out..(t + 1) * p_out];
                for (&v, &i) in row.iter().zip(idx) {
                    dst[i] += v;
                }
            }
            if !in_place {
                let plane = &mut x[ci * in_plane..(ci + 1) * in_plane];
                for (iy, out) in plane.chunks_mut(g.w_in).enumerate() {
                    let start = (iy + g.pad) * self.pw + g.pad;
                    for (o, &v) in out.iter_mut().zip(&padded[start..start + g.w_in]) {
                        *o += v;
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
            let mut indexed = got.clone();
            im2col(&g, &x, &mut got[p + 1..], ld);
            im2col_naive(&g, &x, &mut want[p + 1..], ld);
            Im2colIndex::new(&g).im2col(&g, &x, &mut indexed[p + 1..], ld, &mut Vec::new());
            for (a, b) in indexed.iter().zip(&want) {
                assert_eq!(a.to_bits(), b.to_bits(), "{case:?} indexed");
            }
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
            let mut indexed = start.clone();
            let mut want = start;
            col2im(&g, &col, p, &mut got);
            col2im_naive(&g, &col, p, &mut want);
            Im2colIndex::new(&g).col2im(&g, &col, p, &mut indexed, &mut Vec::new());
            for (a, b) in indexed.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{case:?} indexed: {a} vs {b}"
                );
            }
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
}
