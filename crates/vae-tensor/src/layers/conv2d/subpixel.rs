//! Strided transposed convolutions by *sub-pixel (phase) decomposition*: one gemm per kernel
//! tap on offset views of a padded input, no im2col and no col2im.
//!
//! Notation as in [`super::kernel`]: `g` is the ordinary strided convolution whose adjoint
//! is the transposed convolution, with weight `W: [C_i, C_o·k_h·k_w]` (the transposed
//! convolution's `[c_in, c_out, k_h, k_w]`), the transposed convolution's input `y:
//! [C_i, H, W]` (`g`'s output) and its output `x: [C_o, H_o, W_o]` (`g`'s input), stride `s`,
//! padding `p`, dilation `d`.
//!
//! Output pixel `(oy, ox)` lies in *phase* `(py, px) = (oy mod s, ox mod s)` at
//! `(qy, qx) = (oy div s, ox div s)`, and receives only the taps `(ky, kx)` with
//! `py + p − ky·d ≡ 0 (mod s)` (and the same for `x`), each from input pixel
//! `(qy + dy, qx + dx)` with `dy = (py + p − ky·d) / s`. So, with the input copied onto a
//! zero-padded grid of `H_g × W_g` pixels per image (`m_t` rows and `m_l` columns of margin,
//! see [`Layout`]), tap `t`'s contribution to phase plane `(py, px)`, laid out on the same
//! grid, is one gemm
//!
//! `X_phase[C_o, cols] += W_tᵀ[C_o, C_i] · Y[C_i, cols + off_t]`, `off_t = (m_t + dy)·W_g + m_l + dx`
//!
//! where `Y[.., cols + off_t]` is just an offset view of the padded block (matrixmultiply
//! takes arbitrary strides, so `W_tᵀ` is a strided view of `W` too). Forward ends with one
//! interleave of the phase planes into the output (plus bias). For the reference VAE's
//! 3×3, stride 2, padding 1, output padding 1 layers, the four phases receive 1, 2, 2 and 4
//! taps and every `dy, dx ∈ {0, 1}`.
//!
//! Backward is the mirror: `dx` (dL/d output) is split once into zero-padded phase planes
//! `D_ph` on the same grid (with a leading zero margin of `max off_t` columns), then
//! `dy_grid[C_i, cols] = Σ_t W_t[C_i, C_o] · D_ph(t)[C_o, cols − off_t]` and
//! `dW_t += Y[C_i, cols + off_t] · D_ph(t)ᵀ`, 9 gemms each, into strided views of `dW`.
//!
//! Grid positions that are not real pixels ("junk": margins, rows `≥ H_q`, columns `≥ W_q`)
//! are written as zeros in the padded input and in `D_ph`, so they contribute nothing, and
//! results there are dropped. Every buffer is fully rewritten for each block, so nothing
//! depends on what a previous call left behind.

use super::kernel::{GroupBuf, Plan};
use crate::gemm::{sgemm, MatMut, MatRef};
use crate::shape::Conv2dGeom;

/// Aim for at least this many gemm columns per block of images.
pub const SUBPIXEL_COLS: usize = 256;

/// One kernel tap: its index `ky·k_w + kx` in `W`'s rows, and its offset `off_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tap {
    t: usize,
    off: usize,
}

/// The phase-plane layout of one geometry (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    s: usize,
    /// Grid height and width per image, and the top/left margins.
    hg: usize,
    wg: usize,
    mt: usize,
    ml: usize,
    /// Phase plane sizes `H_q(py)`, `W_q(px)`.
    hq: Vec<usize>,
    wq: Vec<usize>,
    /// Taps per phase `py·s + px`.
    taps: Vec<Vec<Tap>>,
    /// `max off_t` (slack after the padded input, leading margin of `D_ph`).
    max_off: usize,
}

/// Whether `g`'s adjoint runs through this module: stride ≥ 2.
pub fn applies(g: &Conv2dGeom) -> bool {
    g.stride >= 2
}

impl Layout {
    /// The layout for `g` (`g.stride ≥ 2`).
    pub fn new(g: &Conv2dGeom) -> Layout {
        let (s, p, d) = (g.stride, g.pad as isize, g.dilation);
        let (h, w) = (g.h_out, g.w_out);
        let (ho, wo) = (g.h_in, g.w_in);
        let plane_len = |len: usize, ph: usize| (len + s - 1 - ph.min(len)) / s;
        let hq: Vec<usize> = (0..s).map(|py| plane_len(ho, py).min(ho)).collect();
        let wq: Vec<usize> = (0..s).map(|px| plane_len(wo, px).min(wo)).collect();
        // Shifts per axis: for phase q and tap k, Some(shift) when the tap feeds the phase.
        let shift = |q: usize, k: usize| -> Option<isize> {
            let v = q as isize + p - (k * d) as isize;
            (v.rem_euclid(s as isize) == 0).then(|| v.div_euclid(s as isize))
        };
        let shifts = |kn: usize| -> Vec<isize> {
            (0..s)
                .flat_map(|q| (0..kn).filter_map(move |k| shift(q, k)))
                .collect()
        };
        let (sy, sx) = (shifts(g.k_h), shifts(g.k_w));
        let lo = |v: &[isize]| (-v.iter().copied().min().unwrap_or(0)).max(0) as usize;
        let hi = |v: &[isize]| v.iter().copied().max().unwrap_or(0).max(0) as usize;
        let (mt, ml) = (lo(&sy), lo(&sx));
        let hq_max = hq.iter().copied().max().unwrap_or(0);
        let wq_max = wq.iter().copied().max().unwrap_or(0);
        let hg = (h + mt).max(hq_max + mt + hi(&sy)).max(1);
        let wg = (w + ml).max(wq_max + ml + hi(&sx)).max(1);
        let mut taps = vec![Vec::new(); s * s];
        let mut max_off = 0;
        for py in 0..s {
            for px in 0..s {
                for ky in 0..g.k_h {
                    for kx in 0..g.k_w {
                        if let (Some(dy), Some(dx)) = (shift(py, ky), shift(px, kx)) {
                            let off =
                                ((mt as isize + dy) as usize) * wg + (ml as isize + dx) as usize;
                            max_off = max_off.max(off);
                            taps[py * s + px].push(Tap {
                                t: ky * g.k_w + kx,
                                off,
                            });
                        }
                    }
                }
            }
        }
        Layout {
            s,
            hg,
            wg,
            mt,
            ml,
            hq,
            wq,
            taps,
            max_off,
        }
    }

    fn grid(&self) -> usize {
        self.hg * self.wg
    }
}

fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

/// The plan (images per block and groups) for `g` on this layout.
pub fn plan(g: &Conv2dGeom, l: &Layout) -> Plan {
    Plan::with_target(g.n, l.grid(), SUBPIXEL_COLS)
}

/// Copies `nbb` images `y` (`[C_i, H, W]` each) onto the zero-padded grid: `yp[ci, ld]`
/// rows, image `b` at column `b·grid`, `max_off` zero columns after the last image.
fn pad_block(g: &Conv2dGeom, l: &Layout, y: &[f32], nbb: usize, yp: &mut [f32], ld: usize) {
    let (h, w, ci_n) = (g.h_out, g.w_out, g.c_out);
    let grid = l.grid();
    for ci in 0..ci_n {
        let row = &mut yp[ci * ld..ci * ld + nbb * grid + l.max_off];
        row[nbb * grid..].fill(0.0);
        for b in 0..nbb {
            let dst = &mut row[b * grid..(b + 1) * grid];
            let src = &y[(b * ci_n + ci) * h * w..(b * ci_n + ci + 1) * h * w];
            dst[..l.mt * l.wg].fill(0.0);
            for (gy, drow) in dst.chunks_exact_mut(l.wg).enumerate().skip(l.mt) {
                let iy = gy - l.mt;
                if iy < h {
                    drow[..l.ml].fill(0.0);
                    drow[l.ml..l.ml + w].copy_from_slice(&src[iy * w..(iy + 1) * w]);
                    drow[l.ml + w..].fill(0.0);
                } else {
                    drow.fill(0.0);
                }
            }
        }
    }
}

/// The transposed convolution's forward pass (`x = col2im(Wᵀ·y) + bias` of
/// [`super::kernel::conv_adjoint`]) by phase decomposition, for the images of one group.
#[allow(clippy::too_many_arguments)]
pub fn adjoint_group(
    g: &Conv2dGeom,
    l: &Layout,
    plan: &Plan,
    y: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    x: &mut [f32],
    buf: &mut GroupBuf,
) {
    let (ci_n, co_n, kk) = (g.c_out, g.c_in, g.k_h * g.k_w);
    let (in_img, out_img) = (g.out_image(), g.in_image());
    let grid = l.grid();
    let ld = plan.nb * grid + l.max_off;
    let ldc = plan.nb * grid;
    let s = l.s;
    grow(&mut buf.col, ci_n * ld);
    grow(&mut buf.mat, s * s * co_n * ldc);
    let imgs = y.len() / in_img;
    for b0 in (0..imgs).step_by(plan.nb) {
        let nbb = plan.nb.min(imgs - b0);
        let cols = nbb * grid;
        pad_block(
            g,
            l,
            &y[b0 * in_img..(b0 + nbb) * in_img],
            nbb,
            &mut buf.col,
            ld,
        );
        for (ph, taps) in l.taps.iter().enumerate() {
            let c = &mut buf.mat[ph * co_n * ldc..(ph + 1) * co_n * ldc];
            if taps.is_empty() {
                c.fill(0.0);
            }
            for (i, tap) in taps.iter().enumerate() {
                // W_tᵀ(co, ci) = w[ci·C_o·kk + co·kk + t]
                let a = MatRef {
                    data: &w[tap.t..],
                    rows: co_n,
                    cols: ci_n,
                    rs: kk,
                    cs: co_n * kk,
                };
                let bm = MatRef::row_major(&buf.col[tap.off..], ci_n, cols, ld);
                let beta = if i == 0 { 0.0 } else { 1.0 };
                sgemm(1.0, a, bm, beta, MatMut::row_major(c, co_n, cols, ldc));
            }
        }
        let xb = &mut x[b0 * out_img..(b0 + nbb) * out_img];
        interleave(g, l, &buf.mat, co_n * ldc, ldc, nbb, bias, xb);
    }
}

/// Writes the phase planes (`phases[ph·phase_len + co·ldc + b·grid + qy·W_g + qx]`) of
/// `nbb` images into `x` (`[C_o, H_o, W_o]` each), adding the bias.
#[allow(clippy::too_many_arguments)]
fn interleave(
    g: &Conv2dGeom,
    l: &Layout,
    phases: &[f32],
    phase_len: usize,
    ldc: usize,
    nbb: usize,
    bias: Option<&[f32]>,
    x: &mut [f32],
) {
    let (co_n, ho, wo, s) = (g.c_in, g.h_in, g.w_in, l.s);
    let grid = l.grid();
    for b in 0..nbb {
        for co in 0..co_n {
            let bv = bias.map_or(0.0, |bias| bias[co]);
            let plane = &mut x[(b * co_n + co) * ho * wo..(b * co_n + co + 1) * ho * wo];
            for (oy, row) in plane.chunks_exact_mut(wo).enumerate() {
                let (py, qy) = (oy % s, oy / s);
                for px in 0..s {
                    let base = (py * s + px) * phase_len + co * ldc + b * grid + qy * l.wg;
                    let src = &phases[base..base + l.wq[px]];
                    for (d, &v) in row.iter_mut().skip(px).step_by(s).zip(src) {
                        *d = v + bv;
                    }
                }
            }
        }
    }
}

/// Splits `nbb` images `dx` (`[C_o, H_o, W_o]` each) into zero-padded phase planes:
/// `dph[ph·phase_len + co·ldd + max_off + b·grid + qy·W_g + qx]`.
#[allow(clippy::too_many_arguments)]
fn split(
    g: &Conv2dGeom,
    l: &Layout,
    dx: &[f32],
    nbb: usize,
    dph: &mut [f32],
    phase_len: usize,
    ldd: usize,
) {
    let (co_n, ho, wo, s) = (g.c_in, g.h_in, g.w_in, l.s);
    let grid = l.grid();
    for py in 0..s {
        for px in 0..s {
            let (hq, wq) = (l.hq[py], l.wq[px]);
            let ph = &mut dph[(py * s + px) * phase_len..(py * s + px + 1) * phase_len];
            for co in 0..co_n {
                let row = &mut ph[co * ldd..co * ldd + l.max_off + nbb * grid];
                row[..l.max_off].fill(0.0);
                for b in 0..nbb {
                    let src = &dx[(b * co_n + co) * ho * wo..(b * co_n + co + 1) * ho * wo];
                    let dst = &mut row[l.max_off + b * grid..l.max_off + (b + 1) * grid];
                    for (qy, drow) in dst.chunks_exact_mut(l.wg).enumerate() {
                        if qy < hq {
                            let srow = &src[(qy * s + py) * wo..(qy * s + py + 1) * wo];
                            let sv = srow.iter().skip(px).step_by(s);
                            for (d, &v) in drow[..wq].iter_mut().zip(sv) {
                                *d = v;
                            }
                            drow[wq..].fill(0.0);
                        } else {
                            drow.fill(0.0);
                        }
                    }
                }
            }
        }
    }
}

/// The backward pass of [`adjoint_group`] for the images of one group: on entry `y_dy`
/// holds `y`, on return dL/dy; `dx` is dL/d(output). Adds the weight gradient into
/// `buf.dw` (`[C_i, C_o·kk]`, zeroed by the caller); the bias gradient is the caller's.
#[allow(clippy::too_many_arguments)]
pub fn adjoint_backward_group(
    g: &Conv2dGeom,
    l: &Layout,
    plan: &Plan,
    dx: &[f32],
    w: &[f32],
    y_dy: &mut [f32],
    buf: &mut GroupBuf,
) {
    let (ci_n, co_n, kk) = (g.c_out, g.c_in, g.k_h * g.k_w);
    let (h, wd) = (g.h_out, g.w_out);
    let (in_img, out_img) = (g.out_image(), g.in_image());
    let grid = l.grid();
    let ld = plan.nb * grid + l.max_off;
    let ldd = l.max_off + plan.nb * grid;
    let ldg = plan.nb * grid;
    let s = l.s;
    let phase_len = co_n * ldd;
    grow(&mut buf.col, ci_n * ld);
    grow(&mut buf.mat, s * s * phase_len);
    grow(&mut buf.phases, ci_n * ldg);
    let imgs = y_dy.len() / in_img;
    for b0 in (0..imgs).step_by(plan.nb) {
        let nbb = plan.nb.min(imgs - b0);
        let cols = nbb * grid;
        let yb = &mut y_dy[b0 * in_img..(b0 + nbb) * in_img];
        pad_block(g, l, yb, nbb, &mut buf.col, ld);
        let dxb = &dx[b0 * out_img..(b0 + nbb) * out_img];
        split(g, l, dxb, nbb, &mut buf.mat, phase_len, ldd);
        let mut first = true;
        for (ph, taps) in l.taps.iter().enumerate() {
            let d = &buf.mat[ph * phase_len..(ph + 1) * phase_len];
            for tap in taps {
                // dy_grid[C_i, cols] (+)= W_t[C_i, C_o] · D[C_o, cols − off_t]
                let wt = MatRef {
                    data: &w[tap.t..],
                    rows: ci_n,
                    cols: co_n,
                    rs: co_n * kk,
                    cs: kk,
                };
                let dv = MatRef::row_major(&d[l.max_off - tap.off..], co_n, cols, ldd);
                let beta = if first { 0.0 } else { 1.0 };
                first = false;
                sgemm(
                    1.0,
                    wt,
                    dv,
                    beta,
                    MatMut::row_major(&mut buf.phases, ci_n, cols, ldg),
                );
                // dW_t[C_i, C_o] += Y[C_i, cols + off_t] · D[C_o, cols]ᵀ
                let yv = MatRef::row_major(&buf.col[tap.off..], ci_n, cols, ld);
                let dt = MatRef::row_major(&d[l.max_off..], co_n, cols, ldd).t();
                sgemm(
                    1.0,
                    yv,
                    dt,
                    1.0,
                    MatMut {
                        data: &mut buf.dw[tap.t..],
                        rows: ci_n,
                        cols: co_n,
                        rs: co_n * kk,
                        cs: kk,
                    },
                );
            }
        }
        if first {
            buf.phases[..ci_n * ldg].fill(0.0);
        }
        // Extract dL/dy from the grid.
        for b in 0..nbb {
            for ci in 0..ci_n {
                let dst = &mut yb[(b * ci_n + ci) * h * wd..(b * ci_n + ci + 1) * h * wd];
                let src = &buf.phases[ci * ldg + b * grid..ci * ldg + (b + 1) * grid];
                for (iy, drow) in dst.chunks_exact_mut(wd).enumerate() {
                    let o = (l.mt + iy) * l.wg + l.ml;
                    drow.copy_from_slice(&src[o..o + wd]);
                }
            }
        }
    }
}
