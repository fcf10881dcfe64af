//! Batched convolution kernels shared by [`Conv2d`](super::Conv2d) and
//! [`ConvTranspose2d`](crate::layers::conv_transpose2d::ConvTranspose2d).
//!
//! Everything is phrased in terms of one ordinary convolution `g: Conv2dGeom` with weight
//! `W: [c_out, K]` (`K = c_in·k_h·k_w`), input images `[c_in, h_in, w_in]` and output images
//! `[c_out, P]` (`P = h_out·w_out`). A transposed convolution is the adjoint of `g`, so it
//! uses the same four products with the roles of input and output swapped:
//!
//! | product                     | Conv2d           | ConvTranspose2d |
//! |-----------------------------|------------------|-----------------|
//! | `Y = W · im2col(X)`         | forward          | backward (dx)   |
//! | `X = col2im(Wᵀ · Y)`        | backward (dx)    | forward         |
//! | `dW += Y · im2col(X)ᵀ`      | backward (dw)    | backward (dw)   |
//!
//! # Blocking and threads
//! The batch is cut into *blocks* of `nb` images whose im2col matrices sit side by side in
//! one `[K, nb·P]` matrix, so every gemm has at least about [`TARGET_COLS`] columns even
//! when `P` is small (7×7 maps). Blocks are grouped into at most [`MAX_GROUPS`] *groups*;
//! rayon runs the groups in parallel, each on its own scratch buffers, with the gemms
//! inside single-threaded. Parameter gradients are accumulated per group and summed in
//! group order afterwards. `nb` and the groups depend only on the shapes, never on the
//! thread count, so results are bit-identical for any number of threads.

use crate::gemm::{sgemm, MatMut, MatRef};
use crate::im2col::{col2im, im2col};
use crate::shape::Conv2dGeom;
use rayon::prelude::*;

/// Aim for at least this many gemm columns per block (images are batched until `nb·P`
/// reaches it).
pub const TARGET_COLS: usize = 512;
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
    /// The plan for geometry `g` (depends on `g.n` and `g.out_plane()` only).
    pub fn new(g: &Conv2dGeom) -> Plan {
        let n = g.n.max(1);
        let nb = TARGET_COLS.div_ceil(g.out_plane().max(1)).clamp(1, n);
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
    /// `[K, nb·P]` im2col / `Wᵀ·Y` matrix.
    col: Vec<f32>,
    /// `[c, nb·P]` gather buffer for a block of `Y` (only when `nb > 1`).
    mat: Vec<f32>,
    /// This group's weight gradient `[c_out, K]`.
    dw: Vec<f32>,
    /// This group's bias gradient.
    db: Vec<f32>,
}

/// Scratch for the kernels in this module: one [`GroupBuf`] per group.
#[derive(Debug, Default, Clone)]
pub struct ConvScratch {
    groups: Vec<GroupBuf>,
}

fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

impl ConvScratch {
    /// Makes sure there is one buffer set per group, each large enough for `g` and `plan`.
    /// `y_rows` is the channel count of the gathered `Y` matrices, `db_len` the bias length.
    fn prepare(&mut self, g: &Conv2dGeom, plan: &Plan, grads: Option<usize>) -> &mut [GroupBuf] {
        if self.groups.len() < plan.groups {
            self.groups.resize_with(plan.groups, GroupBuf::default);
        }
        let cols = plan.nb * g.out_plane();
        for b in &mut self.groups[..plan.groups] {
            grow(&mut b.col, g.col_rows() * cols);
            if plan.nb > 1 {
                grow(&mut b.mat, g.c_out * cols);
            }
            if let Some(db_len) = grads {
                b.dw.clear();
                b.dw.resize(g.c_out * g.col_rows(), 0.0);
                b.db.clear();
                b.db.resize(db_len, 0.0);
            }
        }
        &mut self.groups[..plan.groups]
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

/// Gathers `nb` images `[c, p]` (contiguous) into a `[c, nb·p]` row-major matrix.
fn gather(imgs: &[f32], c: usize, p: usize, nb: usize, out: &mut [f32]) {
    let cols = nb * p;
    for b in 0..nb {
        for ch in 0..c {
            let src = &imgs[(b * c + ch) * p..(b * c + ch + 1) * p];
            out[ch * cols + b * p..ch * cols + (b + 1) * p].copy_from_slice(src);
        }
    }
}

/// Scatters a `[c, nb·p]` row-major matrix back into `nb` images `[c, p]`.
fn scatter(mat: &[f32], c: usize, p: usize, nb: usize, imgs: &mut [f32]) {
    let cols = nb * p;
    for b in 0..nb {
        for ch in 0..c {
            imgs[(b * c + ch) * p..(b * c + ch + 1) * p]
                .copy_from_slice(&mat[ch * cols + b * p..ch * cols + (b + 1) * p]);
        }
    }
}

/// Adds `bias[c]` to every pixel of channel `c` of every image in `imgs` (`[.., c, plane]`).
fn add_bias(imgs: &mut [f32], bias: &[f32], plane: usize) {
    for (ch, v) in imgs.chunks_mut(plane).enumerate() {
        let b = bias[ch % bias.len()];
        v.iter_mut().for_each(|e| *e += b);
    }
}

/// Adds the per-channel sums of `imgs` (`[.., c, plane]`) into `db`.
fn sum_bias(imgs: &[f32], db: &mut [f32], plane: usize) {
    let c = db.len();
    for (ch, v) in imgs.chunks(plane).enumerate() {
        db[ch % c] += v.iter().map(|&e| e as f64).sum::<f64>() as f32;
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
    let plan = Plan::new(g);
    let bufs = scratch.prepare(g, &plan, None);
    let (k, p, c_out) = (g.col_rows(), g.out_plane(), g.c_out);
    let (in_img, out_img) = (g.in_image(), g.out_image());
    let wm = MatRef::row_major(w, c_out, k, k);
    run_groups(g, &plan, bufs, x, in_img, y, out_img, |buf, xg, yg| {
        let imgs = xg.len() / in_img;
        for b0 in (0..imgs).step_by(plan.nb) {
            let nbb = plan.nb.min(imgs - b0);
            let cols = nbb * p;
            for b in 0..nbb {
                let xi = &xg[(b0 + b) * in_img..(b0 + b + 1) * in_img];
                im2col(g, xi, &mut buf.col[b * p..], cols);
            }
            let col = MatRef::row_major(&buf.col, k, cols, cols);
            let yb = &mut yg[b0 * out_img..(b0 + nbb) * out_img];
            if nbb == 1 {
                sgemm(1.0, wm, col, 0.0, MatMut::row_major(yb, c_out, cols, cols));
            } else {
                sgemm(
                    1.0,
                    wm,
                    col,
                    0.0,
                    MatMut::row_major(&mut buf.mat, c_out, cols, cols),
                );
                scatter(&buf.mat, c_out, p, nbb, yb);
            }
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
    let plan = Plan::new(g);
    let bufs = scratch.prepare(g, &plan, Some(g.c_out));
    let (k, p, c_out) = (g.col_rows(), g.out_plane(), g.c_out);
    let (in_img, out_img) = (g.in_image(), g.out_image());
    let wm = MatRef::row_major(w, c_out, k, k);
    let with_bias = db.is_some();
    run_groups(g, &plan, bufs, dy, out_img, x_dx, in_img, |buf, dyg, xg| {
        let imgs = dyg.len() / out_img;
        for b0 in (0..imgs).step_by(plan.nb) {
            let nbb = plan.nb.min(imgs - b0);
            let cols = nbb * p;
            let xb = &mut xg[b0 * in_img..(b0 + nbb) * in_img];
            for (b, xi) in xb.chunks(in_img).enumerate() {
                im2col(g, xi, &mut buf.col[b * p..], cols);
            }
            let dyb = &dyg[b0 * out_img..(b0 + nbb) * out_img];
            if with_bias {
                sum_bias(dyb, &mut buf.db, p);
            }
            let dym = if nbb == 1 {
                MatRef::row_major(dyb, c_out, cols, cols)
            } else {
                gather(dyb, c_out, p, nbb, &mut buf.mat);
                MatRef::row_major(&buf.mat, c_out, cols, cols)
            };
            // dw[c_out, K] += dy[c_out, cols] · colᵀ[cols, K]
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
            xb.fill(0.0);
            for (b, xi) in xb.chunks_mut(in_img).enumerate() {
                col2im(g, &buf.col[b * p..], cols, xi);
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
    let plan = Plan::new(g);
    let bufs = scratch.prepare(g, &plan, None);
    let (k, p, c_out) = (g.col_rows(), g.out_plane(), g.c_out);
    let (in_img, out_img) = (g.in_image(), g.out_image());
    let wm = MatRef::row_major(w, c_out, k, k);
    run_groups(g, &plan, bufs, y, out_img, x, in_img, |buf, yg, xg| {
        let imgs = yg.len() / out_img;
        for b0 in (0..imgs).step_by(plan.nb) {
            let nbb = plan.nb.min(imgs - b0);
            let cols = nbb * p;
            let yb = &yg[b0 * out_img..(b0 + nbb) * out_img];
            let ym = if nbb == 1 {
                MatRef::row_major(yb, c_out, cols, cols)
            } else {
                gather(yb, c_out, p, nbb, &mut buf.mat);
                MatRef::row_major(&buf.mat, c_out, cols, cols)
            };
            sgemm(
                1.0,
                wm.t(),
                ym,
                0.0,
                MatMut::row_major(&mut buf.col, k, cols, cols),
            );
            let xb = &mut xg[b0 * in_img..(b0 + nbb) * in_img];
            xb.fill(0.0);
            for (b, xi) in xb.chunks_mut(in_img).enumerate() {
                col2im(g, &buf.col[b * p..], cols, xi);
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
    let plan = Plan::new(g);
    let bufs = scratch.prepare(g, &plan, Some(g.c_in));
    let (k, p, c_out) = (g.col_rows(), g.out_plane(), g.c_out);
    let (in_img, out_img) = (g.in_image(), g.out_image());
    let wm = MatRef::row_major(w, c_out, k, k);
    let with_bias = db.is_some();
    run_groups(g, &plan, bufs, dx, in_img, y_dy, out_img, |buf, dxg, yg| {
        let imgs = dxg.len() / in_img;
        for b0 in (0..imgs).step_by(plan.nb) {
            let nbb = plan.nb.min(imgs - b0);
            let cols = nbb * p;
            let dxb = &dxg[b0 * in_img..(b0 + nbb) * in_img];
            for (b, xi) in dxb.chunks(in_img).enumerate() {
                im2col(g, xi, &mut buf.col[b * p..], cols);
            }
            if with_bias {
                sum_bias(dxb, &mut buf.db, g.in_plane());
            }
            let col = MatRef::row_major(&buf.col, k, cols, cols);
            let yb = &mut yg[b0 * out_img..(b0 + nbb) * out_img];
            if nbb == 1 {
                // dw += y · colᵀ, then y ← W · col (y is not needed after the first gemm).
                let ym = MatRef::row_major(yb, c_out, cols, cols);
                sgemm(
                    1.0,
                    ym,
                    col.t(),
                    1.0,
                    MatMut::row_major(&mut buf.dw, c_out, k, k),
                );
                sgemm(1.0, wm, col, 0.0, MatMut::row_major(yb, c_out, cols, cols));
            } else {
                gather(yb, c_out, p, nbb, &mut buf.mat);
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
                scatter(&buf.mat, c_out, p, nbb, yb);
            }
        }
    });
    reduce_grads(&scratch.groups[..plan.groups], dw, db);
}
