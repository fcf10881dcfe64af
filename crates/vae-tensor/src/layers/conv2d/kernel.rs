//! Batched convolution kernels shared by [`Conv2d`](super::Conv2d) and
//! [`ConvTranspose2d`](crate::layers::conv_transpose2d::ConvTranspose2d).
//!
//! Everything is phrased in terms of one ordinary convolution `g: Conv2dGeom` with weight
//! `W: [c_out, K]` (`K = c_in·k_h·k_w`), input images `[c_in, h_in, w_in]` and output images
//! `[c_out, P]` (`P = h_out·w_out`). A transposed convolution is the adjoint of `g`, so it
//! uses the same products with the roles of input and output swapped:
//!
//! | product                     | Conv2d           | ConvTranspose2d |
//! |-----------------------------|------------------|-----------------|
//! | `Y = W · im2col(X)`         | forward          | backward (dx)   |
//! | `X = col2im(Wᵀ · Y)`        | backward (dx)    | forward         |
//! | `dW += Y · im2col(X)ᵀ`      | backward (dw)    | backward (dw)   |
//!
//! # Layout
//! im2col runs on the *extended output grid* of [`PhaseIm2col`]: each output row is
//! `ext_width ≥ w_out` wide, so every im2col row is one contiguous copy and every col2im row
//! one vector add (see [`crate::im2col::phase`]). `Y`-side matrices are expanded to that grid
//! with zero junk columns before a gemm that reads them ([`expand`]) and compacted after a
//! gemm that writes them ([`compact`]).
//!
//! # Blocking and threads
//! The batch is cut into *blocks* of `nb` images whose im2col matrices sit side by side in
//! one `[K, nb·P_ext]` matrix, so every gemm has at least about [`TARGET_COLS`] columns even
//! when maps are small (7×7). Blocks are grouped into at most [`MAX_GROUPS`] *groups*;
//! rayon runs the groups in parallel, each on its own scratch buffers, with the gemms
//! inside single-threaded. Parameter gradients are accumulated per group and summed in
//! group order afterwards. `nb` and the groups depend only on the shapes, never on the
//! thread count, so results are bit-identical for any number of threads.
//!
//! # One-channel 3×3 convolutions
//! When `g` has one input channel, a 3×3 kernel, stride 1 and dilation 1 (conv 1→32 and
//! conv-transpose 32→1 of the reference VAE) and the CPU has AVX-512, all four entry points
//! run the [`direct`] kernels instead, one image at a time in the same groups: their gemms
//! would have a dimension of 9. Otherwise (or with [`ConvScratch::set_im2col_only`] in
//! tests) they take the im2col + gemm path.

use super::direct;
use crate::gemm::{sgemm, MatMut, MatRef};
use crate::im2col::phase::{compact, expand};
use crate::im2col::PhaseIm2col;
use crate::shape::Conv2dGeom;
use rayon::prelude::*;

/// Aim for at least this many gemm columns per block (images are batched until `nb·P`
/// reaches it). Measured on the reference VAE's transposed convolutions (7×7 and 14×14
/// maps): 128–256 columns beat 512, 1024 and 2048 (the `[K, nb·P]` block then stays in L2),
/// see docs/performance.md.
pub const TARGET_COLS: usize = 256;
/// At most this many groups (parallel tasks, each with its own scratch buffers).
pub const MAX_GROUPS: usize = 8;
/// Below this many multiply-adds per forward pass everything runs on the calling thread
/// (same groups, so the same numbers).
const PAR_MIN_MACS: u64 = 1 << 20;

/// How a batch of `n` images is cut into blocks and groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Images per block (one gemm).
    pub nb: usize,
    /// Images per group (a multiple of `nb`; the last group may be shorter).
    pub per_group: usize,
    /// Number of groups.
    pub groups: usize,
}

impl Plan {
    /// The plan for a batch of `n` images with `p_ext` gemm columns each (depends on the
    /// shapes only).
    pub fn new(n: usize, p_ext: usize) -> Plan {
        let n = n.max(1);
        let nb = TARGET_COLS.div_ceil(p_ext.max(1)).clamp(1, n);
        let blocks = n.div_ceil(nb);
        let groups = blocks.min(MAX_GROUPS);
        let per_group = blocks.div_ceil(groups) * nb;
        Plan {
            nb,
            per_group,
            groups: n.div_ceil(per_group),
        }
    }
}

/// Per-group scratch buffers, kept between steps so nothing is allocated once shapes are
/// stable.
#[derive(Debug, Default, Clone)]
pub struct GroupBuf {
    /// `[K, nb·P_ext]` im2col / `Wᵀ·Y` matrix.
    col: Vec<f32>,
    /// `[c_out, nb·P_ext]` block of `Y` on the extended grid.
    mat: Vec<f32>,
    /// This group's weight gradient `[c_out, K]`.
    dw: Vec<f32>,
    /// This group's bias gradient.
    db: Vec<f32>,
    /// Phase-plane scratch for [`PhaseIm2col`].
    phases: Vec<f32>,
}

/// Scratch for the kernels in this module: one [`GroupBuf`] per group.
#[derive(Debug, Default, Clone)]
pub struct ConvScratch {
    groups: Vec<GroupBuf>,
    phase: PhaseIm2col,
    /// Never take the [`direct`] kernels (tests use it to cover the im2col + gemm path
    /// on AVX-512 machines).
    im2col_only: bool,
}

fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

impl ConvScratch {
    /// Forces the im2col + gemm path even where the [`direct`] kernels apply (for tests).
    #[cfg(test)]
    pub(crate) fn set_im2col_only(&mut self, on: bool) {
        self.im2col_only = on;
    }

    /// Whether `g` runs on the [`direct`] one-channel kernels.
    fn direct(&self, g: &Conv2dGeom) -> bool {
        !self.im2col_only && direct::supported(g)
    }

    /// The plan and group buffers for the [`direct`] kernels (one image at a time; the
    /// groups depend on the shapes only). Zeroes the per-group gradients when `grads` gives
    /// the bias length.
    fn prepare_direct(&mut self, g: &Conv2dGeom, grads: Option<usize>) -> (Plan, &mut [GroupBuf]) {
        let plan = Plan::new(g.n, g.out_plane());
        if self.groups.len() < plan.groups {
            self.groups.resize_with(plan.groups, GroupBuf::default);
        }
        for b in &mut self.groups[..plan.groups] {
            if let Some(db_len) = grads {
                b.dw.clear();
                b.dw.resize(g.c_out * g.col_rows(), 0.0);
                b.db.clear();
                b.db.resize(db_len, 0.0);
            }
        }
        (plan, &mut self.groups[..plan.groups])
    }

    /// Prepares the im2col layout for `g`, the plan, and one buffer set per group, each large
    /// enough for `g`; zeroes the per-group gradients when `grads` gives the bias length.
    fn prepare(
        &mut self,
        g: &Conv2dGeom,
        grads: Option<usize>,
    ) -> (Plan, &mut [GroupBuf], &PhaseIm2col) {
        self.phase.prepare(g);
        let p_ext = self.phase.ext_plane(g);
        let plan = Plan::new(g.n, p_ext);
        if self.groups.len() < plan.groups {
            self.groups.resize_with(plan.groups, GroupBuf::default);
        }
        let cols = plan.nb * p_ext;
        for b in &mut self.groups[..plan.groups] {
            grow(&mut b.col, g.col_rows() * cols);
            grow(&mut b.mat, g.c_out * cols);
            if let Some(db_len) = grads {
                b.dw.clear();
                b.dw.resize(g.c_out * g.col_rows(), 0.0);
                b.db.clear();
                b.db.resize(db_len, 0.0);
            }
        }
        (plan, &mut self.groups[..plan.groups], &self.phase)
    }
}

/// Runs `f(group buffers, a-chunk, b-chunk)` for every group, in parallel when the work is
/// large enough. `a` and `b` are cut into per-group chunks of `a_img`/`b_img` scalars per
/// image. Groups are fixed by `plan`, so the serial and parallel paths give the same numbers.
#[allow(clippy::too_many_arguments)]
fn run_groups<F>(
    g: &Conv2dGeom,
    plan: &Plan,
    bufs: &mut [GroupBuf],
    a: &[f32],
    a_img: usize,
    b: &mut [f32],
    b_img: usize,
    f: F,
) where
    F: Fn(&mut GroupBuf, &[f32], &mut [f32]) + Sync + Send,
{
    let (a_len, b_len) = (plan.per_group * a_img, plan.per_group * b_img);
    if g.macs() < PAR_MIN_MACS || plan.groups == 1 {
        for ((buf, ac), bc) in bufs
            .iter_mut()
            .zip(a.chunks(a_len))
            .zip(b.chunks_mut(b_len))
        {
            f(buf, ac, bc);
        }
    } else {
        bufs.par_iter_mut()
            .zip(a.par_chunks(a_len))
            .zip(b.par_chunks_mut(b_len))
            .for_each(|((buf, ac), bc)| f(buf, ac, bc));
    }
}

/// Adds `bias[c]` to every pixel of channel `c` of every image in `imgs` (`[.., c, plane]`).
fn add_bias(imgs: &mut [f32], bias: &[f32], plane: usize) {
    for (ch, v) in imgs.chunks_mut(plane).enumerate() {
        let b = bias[ch % bias.len()];
        v.iter_mut().for_each(|e| *e += b);
    }
}

/// Adds the per-channel sums of `imgs` (`[.., c, plane]`) into `db` (f64 sums in 8 lanes, so
/// the additions do not form one long dependency chain).
fn sum_bias(imgs: &[f32], db: &mut [f32], plane: usize) {
    let c = db.len();
    for (ch, v) in imgs.chunks(plane).enumerate() {
        let mut acc = [0.0f64; 8];
        let mut it = v.chunks_exact(8);
        for chunk in &mut it {
            for (a, &e) in acc.iter_mut().zip(chunk) {
                *a += e as f64;
            }
        }
        let rest: f64 = it.remainder().iter().map(|&e| e as f64).sum();
        db[ch % c] += (acc.iter().sum::<f64>() + rest) as f32;
    }
}

/// Sums the groups' `dw`/`db` into the parameter gradients, in group order.
fn reduce_grads(bufs: &[GroupBuf], dw: &mut [f32], db: Option<&mut [f32]>) {
    for b in bufs {
        dw.iter_mut().zip(&b.dw).for_each(|(d, s)| *d += s);
    }
    if let Some(db) = db {
        for b in bufs {
            db.iter_mut().zip(&b.db).for_each(|(d, s)| *d += s);
        }
    }
}

/// `y = W · im2col(x) (+ bias)`: a convolution forward pass over the whole batch.
///
/// `x: [n, c_in, h_in, w_in]`, `w: [c_out, K]`, `bias: [c_out]`, `y: [n, c_out, P]`
/// (every element of `y` is written).
pub fn conv_forward(
    g: &Conv2dGeom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut ConvScratch,
) {
    if g.n == 0 {
        return;
    }
    let (in_img, out_img) = (g.in_image(), g.out_image());
    if scratch.direct(g) {
        let (plan, bufs) = scratch.prepare_direct(g, None);
        run_groups(g, &plan, bufs, x, in_img, y, out_img, |buf, xg, yg| {
            for (xi, yi) in xg.chunks(in_img).zip(yg.chunks_mut(out_img)) {
                direct::forward(g, xi, w, bias, yi, &mut buf.phases);
            }
        });
        return;
    }
    let (plan, bufs, ph) = scratch.prepare(g, None);
    let (k, p, c_out) = (g.col_rows(), g.out_plane(), g.c_out);
    let (p_ext, ew) = (ph.ext_plane(g), ph.ext_width());
    let (in_img, out_img) = (g.in_image(), g.out_image());
    let wm = MatRef::row_major(w, c_out, k, k);
    run_groups(g, &plan, bufs, x, in_img, y, out_img, |buf, xg, yg| {
        let imgs = xg.len() / in_img;
        for b0 in (0..imgs).step_by(plan.nb) {
            let nbb = plan.nb.min(imgs - b0);
            let cols = nbb * p_ext;
            let xb = &xg[b0 * in_img..(b0 + nbb) * in_img];
            for (b, xi) in xb.chunks(in_img).enumerate() {
                ph.im2col(g, xi, &mut buf.col[b * p_ext..], cols, &mut buf.phases);
            }
            let col = MatRef::row_major(&buf.col, k, cols, cols);
            sgemm(
                1.0,
                wm,
                col,
                0.0,
                MatMut::row_major(&mut buf.mat, c_out, cols, cols),
            );
            let yb = &mut yg[b0 * out_img..(b0 + nbb) * out_img];
            compact(&buf.mat, c_out, g.h_out, g.w_out, ew, nbb, yb);
            if let Some(bias) = bias {
                add_bias(yb, bias, p);
            }
        }
    });
}

/// The backward pass of [`conv_forward`], fused so that im2col runs once per block.
///
/// On entry `x_dx` holds `x`; on return it holds dL/dx. `dy: [n, c_out, P]`. Adds
/// `dy · im2col(x)ᵀ` into `dw` (`[c_out, K]`) and the per-channel sums of `dy` into `db`.
pub fn conv_backward(
    g: &Conv2dGeom,
    x_dx: &mut [f32],
    w: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    scratch: &mut ConvScratch,
) {
    if g.n == 0 {
        return;
    }
    if scratch.direct(g) {
        let (in_img, out_img, p) = (g.in_image(), g.out_image(), g.out_plane());
        let with_bias = db.is_some();
        let (plan, bufs) = scratch.prepare_direct(g, Some(g.c_out));
        run_groups(g, &plan, bufs, dy, out_img, x_dx, in_img, |buf, dyg, xg| {
            for (dyi, xi) in dyg.chunks(out_img).zip(xg.chunks_mut(in_img)) {
                if with_bias {
                    sum_bias(dyi, &mut buf.db, p);
                }
                direct::weight_grad(g, xi, dyi, &mut buf.dw, &mut buf.phases);
                direct::adjoint(g, dyi, w, 0.0, xi);
            }
        });
        reduce_grads(&scratch.groups[..plan.groups], dw, db);
        return;
    }
    let (plan, bufs, ph) = scratch.prepare(g, Some(g.c_out));
    let (k, p, c_out) = (g.col_rows(), g.out_plane(), g.c_out);
    let (p_ext, ew) = (ph.ext_plane(g), ph.ext_width());
    let (in_img, out_img) = (g.in_image(), g.out_image());
    let wm = MatRef::row_major(w, c_out, k, k);
    let with_bias = db.is_some();
    run_groups(g, &plan, bufs, dy, out_img, x_dx, in_img, |buf, dyg, xg| {
        let imgs = dyg.len() / out_img;
        for b0 in (0..imgs).step_by(plan.nb) {
            let nbb = plan.nb.min(imgs - b0);
            let cols = nbb * p_ext;
            let xb = &mut xg[b0 * in_img..(b0 + nbb) * in_img];
            for (b, xi) in xb.chunks(in_img).enumerate() {
                ph.im2col(g, xi, &mut buf.col[b * p_ext..], cols, &mut buf.phases);
            }
            let dyb = &dyg[b0 * out_img..(b0 + nbb) * out_img];
            if with_bias {
                sum_bias(dyb, &mut buf.db, p);
            }
            expand(dyb, c_out, g.h_out, g.w_out, ew, nbb, &mut buf.mat);
            let dym = MatRef::row_major(&buf.mat, c_out, cols, cols);
            // dw[c_out, K] += dy[c_out, cols] · colᵀ[cols, K] (junk columns of dy are 0)
            let col_t = MatRef::row_major(&buf.col, k, cols, cols).t();
            sgemm(
                1.0,
                dym,
                col_t,
                1.0,
                MatMut::row_major(&mut buf.dw, c_out, k, k),
            );
            // dcol[K, cols] = Wᵀ[K, c_out] · dy[c_out, cols], reusing the im2col buffer.
            sgemm(
                1.0,
                wm.t(),
                dym,
                0.0,
                MatMut::row_major(&mut buf.col, k, cols, cols),
            );
            for (b, xi) in xb.chunks_mut(in_img).enumerate() {
                ph.col2im_into(g, &buf.col[b * p_ext..], cols, xi, &mut buf.phases);
            }
        }
    });
    reduce_grads(&scratch.groups[..plan.groups], dw, db);
}

/// `x = col2im(Wᵀ · y) (+ bias)`: the adjoint of [`conv_forward`] (a transposed
/// convolution's forward pass).
///
/// `y: [n, c_out, P]` (the transposed convolution's input), `x: [n, c_in, h_in, w_in]` (its
/// output, every element written), `bias: [c_in]`.
pub fn conv_adjoint(
    g: &Conv2dGeom,
    y: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    x: &mut [f32],
    scratch: &mut ConvScratch,
) {
    if g.n == 0 {
        return;
    }
    if scratch.direct(g) {
        let (in_img, out_img) = (g.in_image(), g.out_image());
        let b0 = bias.map_or(0.0, |b| b[0]);
        let (plan, bufs) = scratch.prepare_direct(g, None);
        run_groups(g, &plan, bufs, y, out_img, x, in_img, |_, yg, xg| {
            for (yi, xi) in yg.chunks(out_img).zip(xg.chunks_mut(in_img)) {
                direct::adjoint(g, yi, w, b0, xi);
            }
        });
        return;
    }
    let (plan, bufs, ph) = scratch.prepare(g, None);
    let (k, c_out) = (g.col_rows(), g.c_out);
    let (p_ext, ew) = (ph.ext_plane(g), ph.ext_width());
    let (in_img, out_img) = (g.in_image(), g.out_image());
    let wm = MatRef::row_major(w, c_out, k, k);
    run_groups(g, &plan, bufs, y, out_img, x, in_img, |buf, yg, xg| {
        let imgs = yg.len() / out_img;
        for b0 in (0..imgs).step_by(plan.nb) {
            let nbb = plan.nb.min(imgs - b0);
            let cols = nbb * p_ext;
            let yb = &yg[b0 * out_img..(b0 + nbb) * out_img];
            expand(yb, c_out, g.h_out, g.w_out, ew, nbb, &mut buf.mat);
            let ym = MatRef::row_major(&buf.mat, c_out, cols, cols);
            sgemm(
                1.0,
                wm.t(),
                ym,
                0.0,
                MatMut::row_major(&mut buf.col, k, cols, cols),
            );
            let xb = &mut xg[b0 * in_img..(b0 + nbb) * in_img];
            for (b, xi) in xb.chunks_mut(in_img).enumerate() {
                ph.col2im_into(g, &buf.col[b * p_ext..], cols, xi, &mut buf.phases);
            }
            if let Some(bias) = bias {
                add_bias(xb, bias, g.in_plane());
            }
        }
    });
}

/// The backward pass of [`conv_adjoint`], fused so that im2col runs once per block.
///
/// On entry `y_dy` holds `y` (the transposed convolution's input); on return it holds
/// dL/dy = `W · im2col(dx)`. `dx: [n, c_in, h_in, w_in]` is dL/d(output). Adds
/// `y · im2col(dx)ᵀ` into `dw` (`[c_out, K]`) and the per-channel sums of `dx` into `db`.
pub fn conv_adjoint_backward(
    g: &Conv2dGeom,
    y_dy: &mut [f32],
    w: &[f32],
    dx: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    scratch: &mut ConvScratch,
) {
    if g.n == 0 {
        return;
    }
    if scratch.direct(g) {
        let (in_img, out_img) = (g.in_image(), g.out_image());
        let with_bias = db.is_some();
        let (plan, bufs) = scratch.prepare_direct(g, Some(g.c_in));
        run_groups(g, &plan, bufs, dx, in_img, y_dy, out_img, |buf, dxg, yg| {
            for (dxi, yi) in dxg.chunks(in_img).zip(yg.chunks_mut(out_img)) {
                if with_bias {
                    sum_bias(dxi, &mut buf.db, g.in_plane());
                }
                direct::adjoint_backward(g, dxi, w, yi, &mut buf.dw, &mut buf.phases);
            }
        });
        reduce_grads(&scratch.groups[..plan.groups], dw, db);
        return;
    }
    let (plan, bufs, ph) = scratch.prepare(g, Some(g.c_in));
    let (k, c_out) = (g.col_rows(), g.c_out);
    let (p_ext, ew) = (ph.ext_plane(g), ph.ext_width());
    let (in_img, out_img) = (g.in_image(), g.out_image());
    let wm = MatRef::row_major(w, c_out, k, k);
    let with_bias = db.is_some();
    run_groups(g, &plan, bufs, dx, in_img, y_dy, out_img, |buf, dxg, yg| {
        let imgs = dxg.len() / in_img;
        for b0 in (0..imgs).step_by(plan.nb) {
            let nbb = plan.nb.min(imgs - b0);
            let cols = nbb * p_ext;
            let dxb = &dxg[b0 * in_img..(b0 + nbb) * in_img];
            for (b, xi) in dxb.chunks(in_img).enumerate() {
                ph.im2col(g, xi, &mut buf.col[b * p_ext..], cols, &mut buf.phases);
            }
            if with_bias {
                sum_bias(dxb, &mut buf.db, g.in_plane());
            }
            let col = MatRef::row_major(&buf.col, k, cols, cols);
            let yb = &mut yg[b0 * out_img..(b0 + nbb) * out_img];
            // dw += y · colᵀ (junk columns of y are 0), then y ← W · col.
            expand(yb, c_out, g.h_out, g.w_out, ew, nbb, &mut buf.mat);
            let ym = MatRef::row_major(&buf.mat, c_out, cols, cols);
            sgemm(
                1.0,
                ym,
                col.t(),
                1.0,
                MatMut::row_major(&mut buf.dw, c_out, k, k),
            );
            sgemm(
                1.0,
                wm,
                col,
                0.0,
                MatMut::row_major(&mut buf.mat, c_out, cols, cols),
            );
            compact(&buf.mat, c_out, g.h_out, g.w_out, ew, nbb, yb);
        }
    });
    reduce_grads(&scratch.groups[..plan.groups], dw, db);
}
