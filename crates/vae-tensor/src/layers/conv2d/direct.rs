//! Direct AVX-512 kernels for one-channel 3×3 convolutions (stride 1, dilation 1, any
//! padding): conv 1→32 and conv-transpose 32→1 of the reference VAE.
//!
//! Their gemms have an inner or outer dimension of 9 (`c_in·k_h·k_w` with one channel), which
//! runs a 16×16 gemm micro-kernel at most 9/16 full and moves an im2col matrix 9× the size of
//! the image. These kernels read the images directly instead, with `f32x16` FMAs from
//! explicit `std::arch` intrinsics. The module is the crate's second (and last) place with
//! `unsafe` code besides [`crate::gemm`]: every public function here is safe, checks all
//! slice lengths against the geometry with `assert!` before entering the `unsafe`
//! `#[target_feature]` kernel, and is only reachable when [`supported`] says so (runtime CPU
//! detection of AVX-512F and FMA). Otherwise the callers in [`super::kernel`] take the gemm
//! path.
//!
//! Notation: `g` is an ordinary convolution with `c_in = 1`, `c_out = C` channels, weight
//! `w: [C, 9]` (tap `t = 3·ky + kx`), one input plane `x: [h_in, w_in]` and output planes
//! `y: [C, h_out, w_out]`.
//!
//! | kernel             | formula                                                      | used by               |
//! |--------------------|--------------------------------------------------------------|-----------------------|
//! | [`forward`]        | `y[c, o] = b[c] + Σ_t w[c, t] · xp[o + t]`                   | conv 1→C forward      |
//! | [`adjoint`]        | `x[i] = b + Σ_c Σ_t w[c, t] · y[c, i + p − t]`               | convT C→1 forward, conv 1→C dx |
//! | [`weight_grad`]    | `dw[c, t] += Σ_o y[c, o] · xp[o + t]`                        | conv 1→C dW           |
//! | [`adjoint_backward`] | `dw[c, t] += Σ_o y[c, o] · xp[o + t]`, then `y[c, o] ← Σ_t w[c, t] · xp[o + t]` | convT C→1 dW and dx |
//!
//! `xp` is `x` zero-padded by `p` on every side (built by the safe wrappers in a scratch
//! buffer: one small plane per image). Output columns are processed in pairs of 16-lane
//! vectors (32 columns) with lane masks at the right edge; [`adjoint`] also masks its
//! shifted loads at both edges and skips rows outside the image, so it needs no padded copy
//! of its `C`-channel input.
//!
//! Register blocking: [`forward`] keeps the 18 shifted input vectors of one output row pair
//! in registers and streams all channels over them; [`weight_grad`] and
//! [`adjoint_backward`] go channel by channel with 9 vector accumulators for `dw[c, ·]`
//! (reduced at the end of each image) and the 9 weights of `c` in registers;
//! [`adjoint`] accumulates 4 output rows × 2 vectors and loads each input row once per
//! channel (3 shifted vectors per 16 columns reused for up to 3 output rows).
//! Sums run in a fixed order that depends only on the shapes.

use crate::shape::Conv2dGeom;

/// True when `g` has the shape these kernels handle (one input channel, 3×3 kernel, stride
/// 1, dilation 1) **and** the CPU has AVX-512F and FMA.
pub fn supported(g: &Conv2dGeom) -> bool {
    shape_fits(g) && cpu_has_avx512()
}

fn shape_fits(g: &Conv2dGeom) -> bool {
    g.c_in == 1 && g.k_h == 3 && g.k_w == 3 && g.stride == 1 && g.dilation == 1 && g.c_out > 0
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_avx512() -> bool {
    false
}

/// Row stride of the padded plane `xp`: room for every 32-column pair plus the 2 columns a
/// 3-wide kernel reaches past it, so the kernels load it without masks.
fn padded_width(g: &Conv2dGeom) -> usize {
    g.w_out.div_ceil(32) * 32 + 16
}

/// Writes `x` (`[h_in, w_in]`) zero-padded by `g.pad` into `xp` (`h_out + 2` rows of
/// [`padded_width`]) and returns that width.
fn pad_plane(g: &Conv2dGeom, x: &[f32], xp: &mut Vec<f32>) -> usize {
    let wp = padded_width(g);
    let rows = g.h_out + 2;
    xp.clear();
    xp.resize(rows * wp, 0.0);
    for (iy, row) in x.chunks_exact(g.w_in).take(g.h_in).enumerate() {
        let start = (iy + g.pad) * wp + g.pad;
        xp[start..start + g.w_in].copy_from_slice(row);
    }
    wp
}

#[track_caller]
fn check(g: &Conv2dGeom, w: &[f32], x_len: usize, y_len: usize) {
    assert!(
        supported(g),
        "direct kernel called for an unsupported geometry or CPU"
    );
    assert_eq!(w.len(), g.c_out * 9, "direct kernel: weight length");
    assert_eq!(
        x_len,
        g.in_plane(),
        "direct kernel: one-channel image length"
    );
    assert_eq!(
        y_len,
        g.c_out * g.out_plane(),
        "direct kernel: C-channel image length"
    );
}

/// `y[c] = bias[c] + Σ_t w[c, t] · xp[· + t]` for one image (every element of `y` written).
///
/// # Panics
/// When [`supported`] is false or a length disagrees with `g` (`x: [h_in·w_in]`,
/// `y: [c_out·h_out·w_out]`, `w: [c_out·9]`, `bias: [c_out]`).
pub fn forward(
    g: &Conv2dGeom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    xp: &mut Vec<f32>,
) {
    check(g, w, x.len(), y.len());
    if let Some(b) = bias {
        assert_eq!(b.len(), g.c_out, "direct kernel: bias length");
    }
    let wp = pad_plane(g, x, xp);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `supported(g)` (checked) guarantees AVX-512F and FMA. `xp` has `h_out + 2`
    // rows of `wp ≥ 32·⌈w_out/32⌉ + 16` columns, which covers every unmasked load
    // (row `oy + ky ≤ h_out + 1`, column `< 32·⌈w_out/32⌉ + 2 + 16`); `y` has
    // `c_out·h_out·w_out` elements (checked) and stores are masked to columns `< w_out`;
    // `w` has `9·c_out` and `bias` `c_out` elements (checked).
    unsafe {
        avx512::forward(
            xp.as_ptr(),
            wp,
            g.h_out,
            g.w_out,
            g.c_out,
            w.as_ptr(),
            bias.map(|b| b.as_ptr()),
            y.as_mut_ptr(),
        );
    }
}

/// `dw[c, t] += Σ_o y[c, o] · xp[o + t]` for one image (`y` is dL/dy of a conv 1→C).
///
/// # Panics
/// As [`forward`]; `dw: [c_out·9]`.
pub fn weight_grad(g: &Conv2dGeom, x: &[f32], y: &[f32], dw: &mut [f32], xp: &mut Vec<f32>) {
    check(g, dw, x.len(), y.len());
    let wp = pad_plane(g, x, xp);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `forward`; `y` is only read (masked to columns `< w_out`), `dw` has
    // `9·c_out` elements (checked) and `w` is not touched when `WRITE` is false.
    unsafe {
        avx512::by_channel::<false>(
            xp.as_ptr(),
            wp,
            g.h_out,
            g.w_out,
            g.c_out,
            dw.as_ptr(),
            y.as_ptr() as *mut f32,
            dw.as_mut_ptr(),
        );
    }
}

/// For one image: `dw[c, t] += Σ_o y[c, o] · xp[o + t]`, then `y[c] ← Σ_t w[c, t] · xp[· + t]`
/// (in place). With `x` = dL/d(output) of a conv-transpose C→1 and `y` its input, this is its
/// weight gradient and, in `y`, its input gradient.
///
/// # Panics
/// As [`forward`]; `dw: [c_out·9]`.
pub fn adjoint_backward(
    g: &Conv2dGeom,
    x: &[f32],
    w: &[f32],
    y: &mut [f32],
    dw: &mut [f32],
    xp: &mut Vec<f32>,
) {
    check(g, w, x.len(), y.len());
    assert_eq!(dw.len(), w.len(), "direct kernel: weight gradient length");
    let wp = pad_plane(g, x, xp);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `forward` and `weight_grad`; `y` is read and written at the same masked
    // positions (columns `< w_out` of its `c_out·h_out` rows), `w` and `dw` have `9·c_out`
    // elements (checked) and do not alias `y` (distinct borrows).
    unsafe {
        avx512::by_channel::<true>(
            xp.as_ptr(),
            wp,
            g.h_out,
            g.w_out,
            g.c_out,
            w.as_ptr(),
            y.as_mut_ptr(),
            dw.as_mut_ptr(),
        );
    }
}

/// `x[i] = bias + Σ_c Σ_t w[c, t] · y[c, i + p − t]` for one image (the adjoint of
/// [`forward`] without bias; every element of `x` written, taps that fall outside `y`
/// dropped).
///
/// # Panics
/// As [`forward`].
pub fn adjoint(g: &Conv2dGeom, y: &[f32], w: &[f32], bias: f32, x: &mut [f32]) {
    check(g, w, x.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `supported(g)` guarantees AVX-512F and FMA. Every load from `y` is masked to
    // rows `0 ≤ r < h_out` (others skipped) and columns `0 ≤ i + p − kx < w_out`, i.e. to
    // elements of channel `c < c_out`'s plane inside `y` (`c_out·h_out·w_out`, checked);
    // stores to `x` are masked to columns `< w_in` of rows `< h_in` (`h_in·w_in`, checked).
    // Masked-off lanes are not accessed, so their (wrapping) addresses may lie outside.
    unsafe {
        avx512::adjoint(
            y.as_ptr(),
            g.h_out,
            g.w_out,
            g.c_out,
            w.as_ptr(),
            g.pad,
            bias,
            x.as_mut_ptr(),
            g.h_in,
            g.w_in,
        );
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Lane mask of the first `n` lanes (`n ≥ 16`: all).
    #[inline(always)]
    fn first(n: usize) -> __mmask16 {
        if n >= 16 {
            0xffff
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    }

    /// See [`super::forward`]. `xp`: padded plane with row stride `wp`.
    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn forward(
        xp: *const f32,
        wp: usize,
        h_out: usize,
        w_out: usize,
        c: usize,
        w: *const f32,
        bias: Option<*const f32>,
        y: *mut f32,
    ) {
        let plane = h_out * w_out;
        for oy in 0..h_out {
            for j0 in (0..w_out).step_by(32) {
                let m = [first(w_out - j0), first((w_out - j0).saturating_sub(16))];
                let mut s = [[_mm512_setzero_ps(); 2]; 9];
                for ky in 0..3 {
                    for kx in 0..3 {
                        let p = xp.add((oy + ky) * wp + j0 + kx);
                        s[3 * ky + kx] = [_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16))];
                    }
                }
                for ci in 0..c {
                    let b = match bias {
                        Some(b) => *b.add(ci),
                        None => 0.0,
                    };
                    let mut a0 = _mm512_set1_ps(b);
                    let mut a1 = a0;
                    let wc = w.add(9 * ci);
                    for (t, st) in s.iter().enumerate() {
                        let wv = _mm512_set1_ps(*wc.add(t));
                        a0 = _mm512_fmadd_ps(wv, st[0], a0);
                        a1 = _mm512_fmadd_ps(wv, st[1], a1);
                    }
                    let out = y.wrapping_add(ci * plane + oy * w_out + j0);
                    _mm512_mask_storeu_ps(out, m[0], a0);
                    _mm512_mask_storeu_ps(out.wrapping_add(16), m[1], a1);
                }
            }
        }
    }

    /// See [`super::weight_grad`] (`WRITE = false`, `w` unused) and
    /// [`super::adjoint_backward`] (`WRITE = true`).
    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn by_channel<const WRITE: bool>(
        xp: *const f32,
        wp: usize,
        h_out: usize,
        w_out: usize,
        c: usize,
        w: *const f32,
        y: *mut f32,
        dw: *mut f32,
    ) {
        let plane = h_out * w_out;
        for ci in 0..c {
            let mut wv = [_mm512_setzero_ps(); 9];
            if WRITE {
                for (t, v) in wv.iter_mut().enumerate() {
                    *v = _mm512_set1_ps(*w.add(9 * ci + t));
                }
            }
            let mut acc = [_mm512_setzero_ps(); 9];
            // Cells of 1 row × 32 columns, in memory order. The next cell's `y` is loaded
            // before this cell's result is stored: a load issued after a masked store whose
            // 64-byte range overlaps it waits for that store (row ends share cache lines).
            let yc = y.wrapping_add(ci * plane);
            let masks = |j0: usize| [first(w_out - j0), first((w_out - j0).saturating_sub(16))];
            let (mut oy, mut j0) = (0, 0);
            let mut m = masks(0);
            let mut y0 = _mm512_maskz_loadu_ps(m[0], yc);
            let mut y1 = _mm512_maskz_loadu_ps(m[1], yc.wrapping_add(16));
            while oy < h_out {
                let (ny, nj) = if j0 + 32 < w_out {
                    (oy, j0 + 32)
                } else {
                    (oy + 1, 0)
                };
                let nm = masks(nj);
                let np = yc.wrapping_add(ny * w_out + nj);
                // Software prefetch a few rows ahead (the 32-channel tensor streams from
                // L3 or memory; a prefetch never faults, even past the end).
                let ahead = np.wrapping_add(PREFETCH_ROWS * w_out) as *const i8;
                _mm_prefetch::<_MM_HINT_T0>(ahead);
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
                let (n0, n1) = if ny < h_out {
                    (
                        _mm512_maskz_loadu_ps(nm[0], np),
                        _mm512_maskz_loadu_ps(nm[1], np.wrapping_add(16)),
                    )
                } else {
                    (_mm512_setzero_ps(), _mm512_setzero_ps())
                };
                let mut o0 = _mm512_setzero_ps();
                let mut o1 = _mm512_setzero_ps();
                for ky in 0..3 {
                    for kx in 0..3 {
                        let t = 3 * ky + kx;
                        let p = xp.add((oy + ky) * wp + j0 + kx);
                        let (s0, s1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
                        acc[t] = _mm512_fmadd_ps(y0, s0, acc[t]);
                        acc[t] = _mm512_fmadd_ps(y1, s1, acc[t]);
                        if WRITE {
                            o0 = _mm512_fmadd_ps(wv[t], s0, o0);
                            o1 = _mm512_fmadd_ps(wv[t], s1, o1);
                        }
                    }
                }
                if WRITE {
                    let yp = yc.wrapping_add(oy * w_out + j0);
                    _mm512_mask_storeu_ps(yp, m[0], o0);
                    _mm512_mask_storeu_ps(yp.wrapping_add(16), m[1], o1);
                }
                (oy, j0, m, y0, y1) = (ny, nj, nm, n0, n1);
            }
            for (t, a) in acc.iter().enumerate() {
                *dw.add(9 * ci + t) += _mm512_reduce_add_ps(*a);
            }
        }
    }

    /// How many rows ahead [`by_channel`] prefetches its streamed tensor.
    const PREFETCH_ROWS: usize = 8;

    /// Output rows per register block in [`adjoint`].
    const R: usize = 4;

    /// See [`super::adjoint`].
    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn adjoint(
        y: *const f32,
        h_y: usize,
        w_y: usize,
        c: usize,
        w: *const f32,
        pad: usize,
        bias: f32,
        x: *mut f32,
        h_x: usize,
        w_x: usize,
    ) {
        for j0 in (0..w_x).step_by(32) {
            // lm[kx][v]: lanes whose source column j0 + 16v + lane + pad − kx lies in 0..w_y
            // (and whose output column lies in 0..w_x).
            let mut lm = [[0 as __mmask16; 2]; 3];
            for (kx, row) in lm.iter_mut().enumerate() {
                for (v, m) in row.iter_mut().enumerate() {
                    for lane in 0..16 {
                        let col = j0 + 16 * v + lane;
                        let src = (col + pad) as isize - kx as isize;
                        if col < w_x && src >= 0 && (src as usize) < w_y {
                            *m |= 1 << lane;
                        }
                    }
                }
            }
            let sm = [first(w_x - j0), first((w_x - j0).saturating_sub(16))];
            let mut iy0 = 0;
            while iy0 + R <= h_x {
                rows::<R>(y, h_y, w_y, c, w, pad, bias, x, w_x, iy0, j0, &lm, sm);
                iy0 += R;
            }
            while iy0 < h_x {
                rows::<1>(y, h_y, w_y, c, w, pad, bias, x, w_x, iy0, j0, &lm, sm);
                iy0 += 1;
            }
        }
    }

    /// Output rows `iy0..iy0 + N`, columns `j0..j0 + 32` of [`adjoint`].
    #[target_feature(enable = "avx512f,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn rows<const N: usize>(
        y: *const f32,
        h_y: usize,
        w_y: usize,
        c: usize,
        w: *const f32,
        pad: usize,
        bias: f32,
        x: *mut f32,
        w_x: usize,
        iy0: usize,
        j0: usize,
        lm: &[[__mmask16; 2]; 3],
        sm: [__mmask16; 2],
    ) {
        let mut acc = [[_mm512_set1_ps(bias); 2]; N];
        let plane = h_y * w_y;
        // Input rows r = iy0 + pad + t − 2 for t in 0..N + 2 feed output row iy0 + i with
        // ky = i + 2 − t.
        let r0 = (iy0 + pad) as isize - 2;
        let t_lo = (-r0).max(0) as usize;
        let t_hi = ((h_y as isize - r0).max(0) as usize).min(N + 2);
        for ci in 0..c {
            let wc = w.add(9 * ci);
            let mut wv = [_mm512_setzero_ps(); 9];
            for (t, v) in wv.iter_mut().enumerate() {
                *v = _mm512_set1_ps(*wc.add(t));
            }
            let base = y.wrapping_add(ci * plane + j0 + pad);
            // Prefetch the rows of this channel that the next row block adds (the channels'
            // planes are 32 interleaved streams, too many for the hardware prefetcher).
            let next = y.wrapping_add(ci * plane) as *const i8;
            let next = next.wrapping_add(4 * (r0 + N as isize + 2).max(0) as usize * w_y);
            for line in 0..(N * w_y).div_ceil(16).min(16) {
                _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(64 * line));
            }
            // A constant trip count, so that `ky` below is a constant after unrolling
            // and the weights stay in registers.
            for t in 0..N + 2 {
                if t < t_lo || t >= t_hi {
                    continue;
                }
                let row = base.wrapping_add((r0 + t as isize) as usize * w_y);
                let mut v = [[_mm512_setzero_ps(); 2]; 3];
                for kx in 0..3 {
                    let p = row.wrapping_sub(kx);
                    v[kx] = [
                        _mm512_maskz_loadu_ps(lm[kx][0], p),
                        _mm512_maskz_loadu_ps(lm[kx][1], p.wrapping_add(16)),
                    ];
                }
                for (i, a) in acc.iter_mut().enumerate() {
                    let ky = i as isize + 2 - t as isize;
                    if (0..3).contains(&ky) {
                        let ky = ky as usize;
                        for kx in 0..3 {
                            a[0] = _mm512_fmadd_ps(wv[3 * ky + kx], v[kx][0], a[0]);
                            a[1] = _mm512_fmadd_ps(wv[3 * ky + kx], v[kx][1], a[1]);
                        }
                    }
                }
            }
        }
        for (i, a) in acc.iter().enumerate() {
            let out = x.wrapping_add((iy0 + i) * w_x + j0);
            _mm512_mask_storeu_ps(out, sm[0], a[0]);
            _mm512_mask_storeu_ps(out.wrapping_add(16), sm[1], a[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Naive twins (f64 sums over the formulas in the module docs) on awkward shapes: widths
    //! that leave partial and empty 16-lane vectors and several 32-column pairs, heights
    //! that are not multiples of the 4-row block, paddings 0, 1, 2. Outputs are NaN-prefilled
    //! where every element must be written.
    use super::*;
    use crate::shape::ConvHyper;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// (h_in, w_in, pad, channels)
    const SHAPES: &[(usize, usize, usize, usize)] = &[
        (3, 3, 0, 1),
        (2, 1, 1, 2),
        (5, 17, 1, 3),
        (7, 33, 2, 2),
        (4, 40, 0, 5),
        (9, 16, 1, 4),
        (6, 66, 1, 3),
        (28, 28, 1, 32),
        (28, 28, 0, 7),
    ];

    fn geom(h: usize, w: usize, pad: usize, c: usize) -> Conv2dGeom {
        let hyper = ConvHyper {
            stride: 1,
            pad,
            dilation: 1,
        };
        Conv2dGeom::new("direct test", &[1, 1, h, w], c, [3, 3], hyper).expect("valid")
    }

    fn random(len: usize, rng: &mut StdRng) -> Vec<f32> {
        (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// `xp[oy + ky, ox + kx]` of the padded input, or 0 outside.
    fn tap(g: &Conv2dGeom, x: &[f32], oy: usize, ox: usize, ky: usize, kx: usize) -> f64 {
        let iy = (oy + ky) as isize - g.pad as isize;
        let ix = (ox + kx) as isize - g.pad as isize;
        if iy < 0 || ix < 0 || iy as usize >= g.h_in || ix as usize >= g.w_in {
            return 0.0;
        }
        x[iy as usize * g.w_in + ix as usize] as f64
    }

    fn forward_naive(g: &Conv2dGeom, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f64> {
        let mut y = vec![0.0f64; g.c_out * g.out_plane()];
        for c in 0..g.c_out {
            for oy in 0..g.h_out {
                for ox in 0..g.w_out {
                    let mut s = b.map_or(0.0, |b| b[c] as f64);
                    for ky in 0..3 {
                        for kx in 0..3 {
                            s += w[9 * c + 3 * ky + kx] as f64 * tap(g, x, oy, ox, ky, kx);
                        }
                    }
                    y[(c * g.h_out + oy) * g.w_out + ox] = s;
                }
            }
        }
        y
    }

    /// The adjoint as a scatter: every `y[c, oy, ox]` lands on the pixels it was read from.
    fn adjoint_naive(g: &Conv2dGeom, y: &[f32], w: &[f32], bias: f32) -> Vec<f64> {
        let mut x = vec![bias as f64; g.in_plane()];
        for c in 0..g.c_out {
            for oy in 0..g.h_out {
                for ox in 0..g.w_out {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let iy = (oy + ky) as isize - g.pad as isize;
                            let ix = (ox + kx) as isize - g.pad as isize;
                            if iy < 0 || ix < 0 || iy as usize >= g.h_in || ix as usize >= g.w_in {
                                continue;
                            }
                            x[iy as usize * g.w_in + ix as usize] += w[9 * c + 3 * ky + kx] as f64
                                * y[(c * g.h_out + oy) * g.w_out + ox] as f64;
                        }
                    }
                }
            }
        }
        x
    }

    fn weight_grad_naive(g: &Conv2dGeom, x: &[f32], y: &[f32], dw0: &[f32]) -> Vec<f64> {
        let mut dw: Vec<f64> = dw0.iter().map(|&v| v as f64).collect();
        for c in 0..g.c_out {
            for oy in 0..g.h_out {
                for ox in 0..g.w_out {
                    let yv = y[(c * g.h_out + oy) * g.w_out + ox] as f64;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            dw[9 * c + 3 * ky + kx] += yv * tap(g, x, oy, ox, ky, kx);
                        }
                    }
                }
            }
        }
        dw
    }

    #[track_caller]
    fn assert_close(got: &[f32], want: &[f64], terms: usize, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
            let tol = 2e-6 * terms as f64 * (1.0 + b.abs());
            assert!(
                (a as f64 - b).abs() <= tol,
                "{what}: [{i}] {a} vs {b} (tol {tol})"
            );
        }
    }

    #[test]
    fn the_avx512_kernels_match_their_naive_twins() {
        let mut rng = StdRng::seed_from_u64(91);
        if !cpu_has_avx512() {
            // Nothing to run on this CPU: the layers take the gemm path, covered by the
            // layer tests. Check that the dispatcher agrees.
            assert!(!supported(&geom(5, 5, 1, 2)));
            return;
        }
        for &(h, wd, pad, c) in SHAPES {
            let g = geom(h, wd, pad, c);
            assert!(supported(&g));
            let what = format!("h {h} w {wd} pad {pad} c {c}");
            let x = random(g.in_plane(), &mut rng);
            let w = random(9 * c, &mut rng);
            let b = random(c, &mut rng);
            let dy = random(c * g.out_plane(), &mut rng);
            let mut xp = Vec::new();

            for bias in [Some(&b[..]), None] {
                let mut y = vec![f32::NAN; c * g.out_plane()];
                forward(&g, &x, &w, bias, &mut y, &mut xp);
                assert_close(&y, &forward_naive(&g, &x, &w, bias), 10, &what);
            }

            let mut xa = vec![f32::NAN; g.in_plane()];
            adjoint(&g, &dy, &w, 0.25, &mut xa);
            assert_close(&xa, &adjoint_naive(&g, &dy, &w, 0.25), 9 * c + 1, &what);

            let dw0 = random(9 * c, &mut rng);
            let mut dw = dw0.clone();
            weight_grad(&g, &x, &dy, &mut dw, &mut xp);
            let terms = g.out_plane() + 1;
            assert_close(&dw, &weight_grad_naive(&g, &x, &dy, &dw0), terms, &what);

            // adjoint_backward: dw += y·xp, then y ← w ⋆ xp (the forward without bias).
            let mut y = dy.clone();
            let mut dw = dw0.clone();
            adjoint_backward(&g, &x, &w, &mut y, &mut dw, &mut xp);
            assert_close(&dw, &weight_grad_naive(&g, &x, &dy, &dw0), terms, &what);
            assert_close(&y, &forward_naive(&g, &x, &w, None), 10, &what);
        }
    }

    #[test]
    fn only_one_channel_stride_one_3x3_geometries_are_supported() {
        let h = ConvHyper {
            stride: 1,
            pad: 1,
            dilation: 1,
        };
        let make = |c_in: usize, k: usize, hyper: ConvHyper| {
            Conv2dGeom::new("t", &[1, c_in, 9, 9], 4, [k, k], hyper).expect("valid")
        };
        assert!(!shape_fits(&make(2, 3, h)));
        assert!(!shape_fits(&make(1, 5, h)));
        assert!(!shape_fits(&make(1, 3, ConvHyper { stride: 2, ..h })));
        assert!(!shape_fits(&make(1, 3, ConvHyper { dilation: 2, ..h })));
        assert!(shape_fits(&make(1, 3, h)));
    }
}
