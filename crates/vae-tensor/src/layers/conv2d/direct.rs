//! Direct (gemm-free) kernels for convolutions with **one input channel** and a small
//! kernel (`c_in = 1`, `k_h·k_w ≤ 9`): conv 1→32 and convT 32→1 of the reference VAE.
//!
//! There the im2col matrix has only `k_h·k_w` rows, so a gemm has an inner or outer
//! dimension of 9: a 16-wide micro-kernel runs at most 9/16 full, and the im2col/col2im
//! round trip costs as much as the gemm. These kernels instead read the kernel taps straight
//! from the image's phase planes ([`PhaseIm2col`]) and keep 16 output columns per tap in
//! registers (`[f32; 16]` lanes, vectorised by [`with_simd`]):
//!
//! - [`w_col`]: `out[co, P] = W[co, :] · im2col(x)` (conv forward, convT backward dL/dy);
//! - [`dw_col`]: `dW[co, t] += Σ_P D[co, P] · im2col(x)[t, P]` (both weight gradients);
//! - [`col2im_wt`]: `x = col2im(Wᵀ · D)` (conv backward dL/dx, convT forward).
//!
//! Every sum runs in a fixed order that depends only on the shapes, so results do not
//! depend on the thread count.

use crate::gemm::with_simd;
use crate::im2col::PhaseIm2col;
use crate::shape::Conv2dGeom;

/// Runs `$body` with `$T` bound to the constant `$t` (1..=MAX_TAPS), so the tap loops
/// have a compile-time length and their accumulators stay in registers.
macro_rules! seq_macro_taps {
    ($t:expr, $T:ident => $body:expr) => {
        match $t {
            1 => {
                const $T: usize = 1;
                $body
            }
            2 => {
                const $T: usize = 2;
                $body
            }
            3 => {
                const $T: usize = 3;
                $body
            }
            4 => {
                const $T: usize = 4;
                $body
            }
            5 => {
                const $T: usize = 5;
                $body
            }
            6 => {
                const $T: usize = 6;
                $body
            }
            7 => {
                const $T: usize = 7;
                $body
            }
            8 => {
                const $T: usize = 8;
                $body
            }
            9 => {
                const $T: usize = 9;
                $body
            }
            t => unreachable!("direct kernels take at most {MAX_TAPS} taps, got {t}"),
        }
    };
}

/// Lanes per vector (one AVX-512 register of f32).
const L: usize = 16;
/// Largest kernel (`k_h·k_w`) handled here.
pub const MAX_TAPS: usize = 9;

type V = [f32; L];

/// True when the direct kernels handle `g`.
pub fn applies(g: &Conv2dGeom) -> bool {
    g.c_in == 1 && g.k_h * g.k_w <= MAX_TAPS && g.w_out > 0 && g.h_out > 0
}

/// Scratch length for one image's phase planes plus the slack the 16-wide reads may run
/// into (kept zero).
pub fn scratch_len(ph: &PhaseIm2col) -> usize {
    ph.phases_len_pub() + L
}

/// The `T` tap offsets of `ph` as an array.
#[inline(always)]
fn offsets<const T: usize>(ph: &PhaseIm2col) -> [usize; T] {
    let mut o = [0; T];
    for (d, s) in o.iter_mut().zip(ph.tap_offsets()) {
        *d = s;
    }
    o
}

#[inline(always)]
fn load(s: &[f32], i: usize) -> V {
    s[i..i + L].try_into().expect("L elements")
}

/// Loads `n ≤ L` elements, zero in the other lanes.
#[inline(always)]
fn load_part(s: &[f32], i: usize, n: usize) -> V {
    if n == L {
        return load(s, i);
    }
    let mut v = [0.0; L];
    v[..n].copy_from_slice(&s[i..i + n]);
    v
}

#[inline(always)]
fn fma(acc: &mut V, a: f32, b: &V) {
    for (x, &y) in acc.iter_mut().zip(b) {
        *x = a.mul_add(y, *x);
    }
}

#[inline(always)]
fn fma_v(acc: &mut V, a: &V, b: &V) {
    for ((x, &p), &q) in acc.iter_mut().zip(a).zip(b) {
        *x = p.mul_add(q, *x);
    }
}

/// Splits the single-channel image `x` into `phases` (the slack after the planes zeroed).
#[inline(always)]
fn split(g: &Conv2dGeom, ph: &PhaseIm2col, x: &[f32], phases: &mut [f32]) {
    let len = ph.phases_len_pub();
    ph.split_plane(g, x, &mut phases[..len]);
    phases[len..len + L].fill(0.0);
}

/// `out[co, oy·w_out + ox] = Σ_t w[co·T + t] · im2col(x)[t, (oy, ox)] (+ bias[co])` for the
/// single-channel image `x` (`[h_in, w_in]`); `out: [c_out, h_out·w_out]`, every element
/// written. `phases` is scratch of at least [`scratch_len`].
pub fn w_col(
    g: &Conv2dGeom,
    ph: &PhaseIm2col,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    phases: &mut [f32],
) {
    let t = g.k_h * g.k_w;
    seq_macro_taps!(t, T => with_simd(|| w_col_t::<T>(g, ph, x, w, bias, out, phases)));
}

#[inline(always)]
fn w_col_t<const T: usize>(
    g: &Conv2dGeom,
    ph: &PhaseIm2col,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    phases: &mut [f32],
) {
    split(g, ph, x, phases);
    let off = offsets::<T>(ph);
    let (pw, p) = (ph.ext_width(), g.out_plane());
    for oy in 0..g.h_out {
        for x0 in (0..g.w_out).step_by(L) {
            let n = L.min(g.w_out - x0);
            let base = oy * pw + x0;
            let src: [V; T] = std::array::from_fn(|t| load(phases, off[t] + base));
            for co in 0..g.c_out {
                let mut acc = [bias.map_or(0.0, |b| b[co]); L];
                let wc = &w[co * T..co * T + T];
                for t in 0..T {
                    fma(&mut acc, wc[t], &src[t]);
                }
                let o = co * p + oy * g.w_out + x0;
                out[o..o + n].copy_from_slice(&acc[..n]);
            }
        }
    }
}

/// `dw[co·T + t] += Σ_(oy, ox) d[co, oy·w_out + ox] · im2col(x)[t, (oy, ox)]` for the
/// single-channel image `x`; `d: [c_out, h_out·w_out]`. `phases` is scratch of at least
/// [`scratch_len`].
pub fn dw_col(
    g: &Conv2dGeom,
    ph: &PhaseIm2col,
    x: &[f32],
    d: &[f32],
    dw: &mut [f32],
    phases: &mut [f32],
) {
    let t = g.k_h * g.k_w;
    seq_macro_taps!(t, T => with_simd(|| dw_col_t::<T>(g, ph, x, d, dw, phases)));
}

#[inline(always)]
fn dw_col_t<const T: usize>(
    g: &Conv2dGeom,
    ph: &PhaseIm2col,
    x: &[f32],
    d: &[f32],
    dw: &mut [f32],
    phases: &mut [f32],
) {
    split(g, ph, x, phases);
    let off = offsets::<T>(ph);
    let (pw, p) = (ph.ext_width(), g.out_plane());
    for co in 0..g.c_out {
        let mut acc = [[0.0f32; L]; T];
        let dc = &d[co * p..(co + 1) * p];
        for oy in 0..g.h_out {
            for x0 in (0..g.w_out).step_by(L) {
                let n = L.min(g.w_out - x0);
                // Zero lanes past the row end: the phase values they meet add nothing.
                let dv = load_part(dc, oy * g.w_out + x0, n);
                let base = oy * pw + x0;
                for t in 0..T {
                    fma_v(&mut acc[t], &dv, &load(phases, off[t] + base));
                }
            }
        }
        for t in 0..T {
            dw[co * T + t] += hsum(&acc[t]);
        }
    }
}

/// Sum of the lanes in a fixed pairwise order.
#[inline(always)]
fn hsum(v: &V) -> f32 {
    let mut h = *v;
    let mut w = L / 2;
    while w > 0 {
        for i in 0..w {
            h[i] += h[i + w];
        }
        w /= 2;
    }
    h[0]
}

/// `x = col2im(Wᵀ · d) (+ bias)` for one image: `d: [c_out, h_out·w_out]`, `x: [h_in,
/// w_in]` (single channel, every element written), `bias` one value. `phases` is scratch
/// of at least [`scratch_len`].
pub fn col2im_wt(
    g: &Conv2dGeom,
    ph: &PhaseIm2col,
    d: &[f32],
    w: &[f32],
    bias: Option<f32>,
    x: &mut [f32],
    phases: &mut [f32],
) {
    let t = g.k_h * g.k_w;
    seq_macro_taps!(t, T => with_simd(|| col2im_wt_t::<T>(g, ph, d, w, bias, x, phases)));
}

#[inline(always)]
fn col2im_wt_t<const T: usize>(
    g: &Conv2dGeom,
    ph: &PhaseIm2col,
    d: &[f32],
    w: &[f32],
    bias: Option<f32>,
    x: &mut [f32],
    phases: &mut [f32],
) {
    let len = ph.phases_len_pub();
    let phases = &mut phases[..len];
    phases.fill(0.0);
    let off = offsets::<T>(ph);
    let (pw, p) = (ph.ext_width(), g.out_plane());
    for oy in 0..g.h_out {
        for x0 in (0..g.w_out).step_by(L) {
            let n = L.min(g.w_out - x0);
            let mut acc = [[0.0f32; L]; T];
            let i = oy * g.w_out + x0;
            for co in 0..g.c_out {
                let dv = load_part(d, co * p + i, n);
                let wc = &w[co * T..co * T + T];
                for t in 0..T {
                    fma(&mut acc[t], wc[t], &dv);
                }
            }
            let base = oy * pw + x0;
            for t in 0..T {
                let dst = &mut phases[off[t] + base..off[t] + base + n];
                for (a, &v) in dst.iter_mut().zip(&acc[t][..n]) {
                    *a += v;
                }
            }
        }
    }
    ph.merge_plane(g, phases, x);
    if let Some(b) = bias {
        x.iter_mut().for_each(|e| *e += b);
    }
}

#[cfg(test)]
mod tests;
