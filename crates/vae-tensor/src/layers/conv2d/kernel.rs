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
//! would have a dimension of 9. Otherwise (or with `ConvScratch::set_im2col_only` in
//! tests) they take the im2col + gemm path.
//!
//! # Implicit gemm and sub-pixel phases
//! With AVX-512, [`conv_forward`] at stride 1 without padding and `c_out` a multiple of 8
//! runs one [`direct::igemm`] per image (no im2col). For the k3 s2 p1 geometry whose adjoint
//! exactly doubles the map (a transposed convolution with output padding 1),
//! [`conv_adjoint`] computes each of the four output phases as one igemm with its taps
//! concatenated (`conv_adjoint_s2`), and [`conv_adjoint_backward`] builds its im2col on the
//! compact grid by phase (`s2_im2col`, no junk columns), then computes the weight gradient
//! with sgemm and the input gradient as one igemm over that im2col matrix (no second
//! packing of it).

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
    /// Stride-2 backward: the input gradient of a block, `[c, block]`.
    dout: Vec<f32>,
    /// Lane masks of [`direct::adjoint_backward`].
    masks: direct::FlatMasks,
}

/// Scratch for the kernels in this module: one [`GroupBuf`] per group.
#[derive(Debug, Default, Clone)]
pub struct ConvScratch {
    groups: Vec<GroupBuf>,
    phase: PhaseIm2col,
    /// Shared inputs of the implicit-gemm paths (packed weights, offsets, masks).
    ig: IgemmPrep,
    /// Never take the [`direct`] kernels (tests use it to cover the im2col + gemm path
    /// on AVX-512 machines).
    im2col_only: bool,
}

/// Read-only inputs of the [`direct::igemm`] paths, rebuilt once per call on the calling
/// thread (reused buffers, so no allocation once shapes are stable).
#[derive(Debug, Default, Clone)]
struct IgemmPrep {
    /// Packed weights `[taps, c_in, c_out]` (for the stride-2 transposed convolution: the
    /// four phases' packs one after the other).
    w: Vec<f32>,
    /// Tap offsets (all phases, same order as `w`).
    offs: Vec<isize>,
    /// Lane masks `[taps, vectors]`: for a full block of images, and for the short last
    /// block of the batch.
    masks: [Vec<u16>; 2],
}

/// The kernel taps of output phase `p` (row or column parity) of a k3 s2 p1 transposed
/// convolution, as (input offset, kernel index): even outputs take tap 1 at the same input
/// pixel, odd outputs tap 2 at the same pixel and tap 0 at the next one.
fn s2_taps(p: usize) -> &'static [(usize, usize)] {
    if p == 0 {
        &[(0, 1)]
    } else {
        &[(0, 2), (1, 0)]
    }
}

/// First tap of each output phase `2·py + px` in the packed stride-2 tables (1, 2, 2 and 4
/// taps), and the total.
const S2_TAP_START: [usize; 5] = [0, 1, 3, 5, 9];

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

    /// Whether [`conv_forward`] of `g` runs as one [`direct::igemm`] per image: stride 1,
    /// no padding (every tap of every output pixel reads inside the image), output channels
    /// a multiple of the kernel's 8-channel block, AVX-512.
    fn igemm_conv(&self, g: &Conv2dGeom) -> bool {
        !self.im2col_only
            && g.stride == 1
            && g.pad == 0
            && g.c_out > 0
            && g.c_out.is_multiple_of(direct::IGEMM_CO_BLOCK)
            && direct::igemm_supported()
    }

    /// Whether `g` is the k3 s2 p1 convolution whose adjoint exactly doubles the map (a
    /// transposed convolution with output padding 1): [`conv_adjoint_backward`] then runs
    /// by sub-pixel phases on the compact grid ([`conv_adjoint_backward_s2`]).
    fn s2(&self, g: &Conv2dGeom) -> bool {
        !self.im2col_only
            && g.stride == 2
            && (g.k_h, g.k_w, g.pad, g.dilation) == (3, 3, 1, 1)
            && g.h_in == 2 * g.h_out
            && g.w_in == 2 * g.w_out
            && g.c_out > 0
            && g.c_in > 0
    }

    /// Whether [`conv_adjoint`] of `g` runs by sub-pixel phases on [`direct::igemm`]
    /// ([`conv_adjoint_s2`]): an [`Self::s2`] geometry whose transposed convolution has a
    /// multiple of 8 output channels (`g.c_in`), on AVX-512.
    fn igemm_s2(&self, g: &Conv2dGeom) -> bool {
        self.s2(g) && g.c_in.is_multiple_of(direct::IGEMM_CO_BLOCK) && direct::igemm_supported()
    }

    /// Group buffers for `plan`, each with `col`/`mat` of at least the given lengths.
    fn groups_for(&mut self, plan: &Plan, col: usize, mat: usize) {
        if self.groups.len() < plan.groups {
            self.groups.resize_with(plan.groups, GroupBuf::default);
        }
        for b in &mut self.groups[..plan.groups] {
            grow(&mut b.col, col);
            grow(&mut b.mat, mat);
        }
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
    if scratch.igemm_conv(g) {
        conv_forward_igemm(g, x, w, bias, y, scratch);
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

/// [`conv_forward`] for stride 1 without padding: one [`direct::igemm`] per image over the
/// input grid (`q = oy·w_in + ox`, so every tap is a constant offset and the `w_in − w_out`
/// columns past each output row are junk), then a compaction to `[c_out, h_out, w_out]`
/// with the bias.
fn conv_forward_igemm(
    g: &Conv2dGeom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut ConvScratch,
) {
    let (k, taps, c_in, c_out) = (g.col_rows(), g.k_h * g.k_w, g.c_in, g.c_out);
    let nq = (g.h_out - 1) * g.w_in + g.w_out;
    let nvec = nq.div_ceil(16);
    let ds = nvec * 16;
    let ig = &mut scratch.ig;
    ig.w.clear();
    ig.w.resize(taps * c_in * c_out, 0.0);
    for (co, wr) in w.chunks_exact(k).enumerate() {
        for (ci, wc) in wr.chunks_exact(taps).enumerate() {
            for (t, &v) in wc.iter().enumerate() {
                ig.w[(t * c_in + ci) * c_out + co] = v;
            }
        }
    }
    ig.offs.clear();
    for ky in 0..g.k_h {
        for kx in 0..g.k_w {
            ig.offs
                .push((ky * g.dilation * g.w_in + kx * g.dilation) as isize);
        }
    }
    let masks = &mut ig.masks[0];
    masks.clear();
    for _ in 0..taps {
        masks.extend((0..nvec).map(|v| lanes(nq - 16 * v)));
    }
    let plan = Plan::new(g.n, nq);
    scratch.groups_for(&plan, 0, c_out * ds);
    let ConvScratch { groups, ig, .. } = scratch;
    let (in_img, out_img, p) = (g.in_image(), g.out_image(), g.out_plane());
    let prob = direct::Igemm {
        src: &[],
        cs: g.in_plane(),
        offs: &ig.offs,
        masks: &ig.masks[0],
        c_in,
        w: &ig.w,
        c_out,
        nq,
    };
    let bufs = &mut groups[..plan.groups];
    run_groups(g, &plan, bufs, x, in_img, y, out_img, |buf, xg, yg| {
        for (xi, yi) in xg.chunks(in_img).zip(yg.chunks_mut(out_img)) {
            direct::igemm(&direct::Igemm { src: xi, ..prob }, &mut buf.mat, ds);
            for (co, yc) in yi.chunks_exact_mut(p).enumerate() {
                let b = bias.map_or(0.0, |b| b[co]);
                let src = &buf.mat[co * ds..];
                for (oy, row) in yc.chunks_exact_mut(g.w_out).enumerate() {
                    let s = &src[oy * g.w_in..oy * g.w_in + g.w_out];
                    row.iter_mut().zip(s).for_each(|(d, &v)| *d = v + b);
                }
            }
        }
    });
}

/// The 16-lane mask of the first `n` lanes (all for `n ≥ 16`).
fn lanes(n: usize) -> u16 {
    if n >= 16 {
        u16::MAX
    } else {
        ((1u32 << n) - 1) as u16
    }
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
        run_groups(g, &plan, bufs, y, out_img, x, in_img, |buf, yg, xg| {
            direct::adjoint_taps(g, yg, w, b0, xg, &mut buf.col);
        });
        return;
    }
    if scratch.igemm_s2(g) {
        conv_adjoint_s2(g, y, w, bias, x, scratch);
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

/// Lane masks of the nine stride-2 phase taps (packed order, see [`S2_TAP_START`]) over a
/// block of `nbb` images of `h × w` pixels (`q = (img·h + a)·w + b`): tap `(dy, dx)` reads
/// input pixel `(a + dy, b + dx)`, which must lie inside the image.
fn s2_masks(h: usize, w: usize, nbb: usize, masks: &mut Vec<u16>) {
    let nq = nbb * h * w;
    let nvec = nq.div_ceil(16);
    masks.clear();
    for py in 0..2 {
        for px in 0..2 {
            for &(dy, _) in s2_taps(py) {
                for &(dx, _) in s2_taps(px) {
                    let start = masks.len();
                    masks.resize(start + nvec, 0);
                    let (mut a, mut b) = (0, 0);
                    for q in 0..nq {
                        if a + dy < h && b + dx < w {
                            masks[start + q / 16] |= 1 << (q % 16);
                        }
                        b += 1;
                        if b == w {
                            b = 0;
                            a = if a + 1 == h { 0 } else { a + 1 };
                        }
                    }
                }
            }
        }
    }
}

/// [`conv_adjoint`] of a k3 s2 p1 transposed convolution that doubles the map, by sub-pixel
/// phases: output pixel `(2a + py, 2b + px)` only receives the kernel taps of parity
/// `(py, px)` (1, 2, 2 or 4 of them, see [`s2_taps`]), read at input pixels `(a, b)`,
/// `(a + 1, b)`, `(a, b + 1)`, `(a + 1, b + 1)`. Per block of images: the input is laid out
/// channel-major (`[c, img, h, w]`), each phase is one [`direct::igemm`] with its taps
/// concatenated (`K` = taps × channels, no zero multiplies, no col2im), and the four phase
/// planes are interleaved into the output with the bias.
fn conv_adjoint_s2(
    g: &Conv2dGeom,
    y: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    x: &mut [f32],
    scratch: &mut ConvScratch,
) {
    // Transposed-convolution view: input [ci_t, h, wd], output [co_t, 2h, 2wd].
    let (ci_t, co_t, h, wd) = (g.c_out, g.c_in, g.h_out, g.w_out);
    let hw = h * wd;
    let ig = &mut scratch.ig;
    ig.w.clear();
    ig.offs.clear();
    for py in 0..2 {
        for px in 0..2 {
            for &(dy, ky) in s2_taps(py) {
                for &(dx, kx) in s2_taps(px) {
                    ig.offs.push((dy * wd + dx) as isize);
                    for ci in 0..ci_t {
                        let wr = &w[ci * co_t * 9..(ci + 1) * co_t * 9];
                        ig.w.extend((0..co_t).map(|co| wr[co * 9 + ky * 3 + kx]));
                    }
                }
            }
        }
    }
    let plan = Plan::new(g.n, hw);
    s2_masks(h, wd, plan.nb, &mut ig.masks[0]);
    s2_masks(h, wd, g.n % plan.nb, &mut ig.masks[1]);
    let ds_max = (plan.nb * hw).div_ceil(16) * 16;
    scratch.groups_for(&plan, ci_t * plan.nb * hw, 4 * co_t * ds_max);
    let ConvScratch { groups, ig, .. } = scratch;
    let ig = &*ig;
    let (in_img, out_img) = (g.in_image(), g.out_image());
    let bufs = &mut groups[..plan.groups];
    run_groups(g, &plan, bufs, y, out_img, x, in_img, |buf, yg, xg| {
        let imgs = yg.len() / out_img;
        for b0 in (0..imgs).step_by(plan.nb) {
            let nbb = plan.nb.min(imgs - b0);
            let (nq, masks) = if nbb == plan.nb {
                (plan.nb * hw, &ig.masks[0])
            } else {
                (nbb * hw, &ig.masks[1])
            };
            let nvec = nq.div_ceil(16);
            let ds = nvec * 16;
            let yb = &yg[b0 * out_img..(b0 + nbb) * out_img];
            for (b, yi) in yb.chunks_exact(out_img).enumerate() {
                for (ci, plane) in yi.chunks_exact(hw).enumerate() {
                    buf.col[ci * nq + b * hw..ci * nq + (b + 1) * hw].copy_from_slice(plane);
                }
            }
            for ph in 0..4 {
                let (t0, t1) = (S2_TAP_START[ph], S2_TAP_START[ph + 1]);
                let prob = direct::Igemm {
                    src: &buf.col[..ci_t * nq],
                    cs: nq,
                    offs: &ig.offs[t0..t1],
                    masks: &masks[t0 * nvec..t1 * nvec],
                    c_in: ci_t,
                    w: &ig.w[t0 * ci_t * co_t..t1 * ci_t * co_t],
                    c_out: co_t,
                    nq,
                };
                let dst = &mut buf.mat[ph * co_t * ds..(ph + 1) * co_t * ds];
                direct::igemm(&prob, dst, ds);
            }
            let xb = &mut xg[b0 * in_img..(b0 + nbb) * in_img];
            let mat = &buf.mat;
            for (b, xi) in xb.chunks_exact_mut(in_img).enumerate() {
                for (co, out) in xi.chunks_exact_mut(4 * hw).enumerate() {
                    let bv = bias.map_or(0.0, |b| b[co]);
                    let phase = |ph: usize, a: usize| {
                        let q = (ph * co_t + co) * ds + b * hw + a * wd;
                        &mat[q..q + wd]
                    };
                    for (a, rows) in out.chunks_exact_mut(4 * wd).enumerate() {
                        let (r0, r1) = rows.split_at_mut(2 * wd);
                        for (row, py) in [(r0, 0), (r1, 1)] {
                            let (e, o) = (phase(2 * py, a), phase(2 * py + 1, a));
                            for (c, (&u, &v)) in row.chunks_exact_mut(2).zip(e.iter().zip(o)) {
                                c[0] = u + bv;
                                c[1] = v + bv;
                            }
                        }
                    }
                }
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
                direct::adjoint_backward(
                    g,
                    dxi,
                    w,
                    yi,
                    &mut buf.dw,
                    &mut buf.phases,
                    &mut buf.masks,
                );
            }
        });
        reduce_grads(&scratch.groups[..plan.groups], dw, db);
        return;
    }
    if scratch.s2(g) {
        conv_adjoint_backward_s2(g, y_dy, w, dx, dw, db, scratch);
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

/// The im2col matrix of a k3 s2 p1 stride-2 convolution of `dyb` (a block of images
/// `[img, c, 2h, 2w]`) on the compact `h × w` grid: row `c·9 + 3·ky + kx`, column
/// `q = (img·h + a)·w + b` holds `dy[img, c, 2a + ky − 1, 2b + kx − 1]` (0 outside the
/// image). By sub-pixel phase, tap `ky` reads row `2a` (`ky = 1`), `2a + 1` (`ky = 2`) or
/// `2a − 1` (`ky = 0`), the same for columns: each channel is split once into its four
/// phase planes (in `ph`), then every tap's row is a copy of one phase plane, shifted by
/// one row and/or column for `ky = 0` / `kx = 0`. No junk columns, unlike the extended grid
/// of [`PhaseIm2col`].
fn s2_im2col(h: usize, wd: usize, c: usize, dyb: &[f32], col: &mut [f32], ph: &mut Vec<f32>) {
    let hw = h * wd;
    let nq = dyb.len() / (4 * c);
    grow(ph, 4 * hw);
    for (img, dimg) in dyb.chunks_exact(4 * c * hw).enumerate() {
        for (ch, plane) in dimg.chunks_exact(4 * hw).enumerate() {
            // Split into the phase planes ph[2·py + px][a][b] = dy[2a + py][2b + px], even
            // and odd columns of a row in one pass over pairs.
            for (r, row) in plane.chunks_exact(2 * wd).enumerate() {
                let (a, py) = (r / 2, r % 2);
                let (lo, hi) = ph.split_at_mut((2 * py + 1) * hw);
                let e = &mut lo[2 * py * hw + a * wd..2 * py * hw + (a + 1) * wd];
                let o = &mut hi[a * wd..(a + 1) * wd];
                for ((e, o), p) in e.iter_mut().zip(o.iter_mut()).zip(row.chunks_exact(2)) {
                    *e = p[0];
                    *o = p[1];
                }
            }
            // Tap k reads phase (k + 1) mod 2 at offset −1 (k = 0) or 0.
            for ky in 0..3 {
                for kx in 0..3 {
                    let src = &ph[(2 * ((ky + 1) % 2) + (kx + 1) % 2) * hw..][..hw];
                    let row = (ch * 9 + ky * 3 + kx) * nq + img * hw;
                    let dst = &mut col[row..row + hw];
                    let (dst, src) = if ky == 0 {
                        dst[..wd].fill(0.0);
                        (&mut dst[wd..], &src[..hw - wd])
                    } else {
                        (dst, src)
                    };
                    if kx == 0 {
                        for (d, s) in dst.chunks_exact_mut(wd).zip(src.chunks_exact(wd)) {
                            d[0] = 0.0;
                            d[1..].copy_from_slice(&s[..wd - 1]);
                        }
                    } else {
                        dst.copy_from_slice(src);
                    }
                }
            }
        }
    }
}

/// [`conv_adjoint_backward`] of an s2 geometry (see [`ConvScratch::s2`]) on the compact
/// grid: per block, [`s2_im2col`] of the output gradient (`[c_in·9, nb·h·w]`, sub-pixel
/// phases, no junk columns), the block's input laid out channel-major, then `dW += y · colᵀ`
/// (sgemm, as `dWᵀ += col · yᵀ`: measured a little faster, the large `col` then being
/// packed as the left operand) and `dy = W · col`. With AVX-512 and `c_out` a multiple of
/// 8, the second product is one [`direct::igemm`] with a single tap over the `c_in·9` rows
/// of `col` (`Wᵀ` packed once per call): it reads `col` where it lies, where sgemm would
/// pack it again.
fn conv_adjoint_backward_s2(
    g: &Conv2dGeom,
    y_dy: &mut [f32],
    w: &[f32],
    dx: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    scratch: &mut ConvScratch,
) {
    let (k, c_out, h, wd) = (g.col_rows(), g.c_out, g.h_out, g.w_out);
    let hw = h * wd;
    let use_igemm = c_out.is_multiple_of(direct::IGEMM_CO_BLOCK) && direct::igemm_supported();
    let plan = scratch.prepare(g, Some(g.c_in)).0;
    if use_igemm {
        // Wᵀ as the igemm weight pack `[1 tap, k, c_out]`, and the lane masks of one tap over
        // a full block and over the short last block.
        let ig = &mut scratch.ig;
        ig.w.clear();
        ig.w.extend((0..k).flat_map(|r| (0..c_out).map(move |co| w[co * k + r])));
        ig.offs.clear();
        ig.offs.push(0);
        for (m, imgs) in ig.masks.iter_mut().zip([plan.nb, g.n % plan.nb]) {
            let nq = imgs * hw;
            m.clear();
            m.extend((0..nq.div_ceil(16)).map(|v| lanes(nq - 16 * v)));
        }
    }
    let ConvScratch { groups, ig, .. } = &mut *scratch;
    let (ig, bufs) = (&*ig, &mut groups[..plan.groups]);
    let (in_img, out_img) = (g.in_image(), g.out_image());
    let wm = MatRef::row_major(w, c_out, k, k);
    let with_bias = db.is_some();
    run_groups(g, &plan, bufs, dx, in_img, y_dy, out_img, |buf, dxg, yg| {
        let imgs = dxg.len() / in_img;
        for b0 in (0..imgs).step_by(plan.nb) {
            let nbb = plan.nb.min(imgs - b0);
            let nq = nbb * hw;
            let dxb = &dxg[b0 * in_img..(b0 + nbb) * in_img];
            s2_im2col(h, wd, g.c_in, dxb, &mut buf.col, &mut buf.phases);
            if with_bias {
                sum_bias(dxb, &mut buf.db, g.in_plane());
            }
            let yb = &mut yg[b0 * out_img..(b0 + nbb) * out_img];
            for (img, yi) in yb.chunks_exact(out_img).enumerate() {
                for (c, plane) in yi.chunks_exact(hw).enumerate() {
                    buf.mat[c * nq + img * hw..c * nq + (img + 1) * hw].copy_from_slice(plane);
                }
            }
            let col = MatRef::row_major(&buf.col, k, nq, nq);
            let ym = MatRef::row_major(&buf.mat, c_out, nq, nq);
            sgemm(
                1.0,
                col,
                ym.t(),
                1.0,
                MatMut::row_major(&mut buf.dw, c_out, k, k).t(),
            );
            // The input gradient, `[c_out, ds]` with row stride `ds`.
            let ds = if use_igemm {
                let ds = nq.div_ceil(16) * 16;
                grow(&mut buf.dout, c_out * ds);
                let masks = if nbb == plan.nb {
                    &ig.masks[0]
                } else {
                    &ig.masks[1]
                };
                let prob = direct::Igemm {
                    src: &buf.col[..k * nq],
                    cs: nq,
                    offs: &ig.offs,
                    masks,
                    c_in: k,
                    w: &ig.w,
                    c_out,
                    nq,
                };
                direct::igemm(&prob, &mut buf.dout, ds);
                ds
            } else {
                grow(&mut buf.dout, c_out * nq);
                sgemm(
                    1.0,
                    wm,
                    col,
                    0.0,
                    MatMut::row_major(&mut buf.dout, c_out, nq, nq),
                );
                nq
            };
            for (img, yi) in yb.chunks_exact_mut(out_img).enumerate() {
                for (c, plane) in yi.chunks_exact_mut(hw).enumerate() {
                    plane.copy_from_slice(&buf.dout[c * ds + img * hw..c * ds + (img + 1) * hw]);
                }
            }
        }
    });
    reduce_grads(&scratch.groups[..plan.groups], dw, db);
}

#[cfg(test)]
mod tests {
    //! The implicit-gemm and sub-pixel paths against the general im2col + gemm path (itself
    //! checked against the naive twins in the layer tests), on NaN-prefilled outputs so that
    //! an element left unwritten fails, with batches that leave a short last block.
    use super::*;
    use crate::shape::ConvHyper;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn random(len: usize, rng: &mut StdRng) -> Vec<f32> {
        (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    fn geom(
        input: [usize; 4],
        c_out: usize,
        k: [usize; 2],
        s: usize,
        p: usize,
        d: usize,
    ) -> Conv2dGeom {
        let hyper = ConvHyper {
            stride: s,
            pad: p,
            dilation: d,
        };
        Conv2dGeom::new("kernel test", &input, c_out, k, hyper).expect("valid")
    }

    #[track_caller]
    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
            assert!((a - b).abs() <= 1e-5 * scale, "{what}: [{i}] {a} vs {b}");
        }
    }

    fn scratches() -> (ConvScratch, ConvScratch) {
        let mut general = ConvScratch::default();
        general.set_im2col_only(true);
        (ConvScratch::default(), general)
    }

    #[test]
    fn stride_one_unpadded_forward_matches_the_general_path() {
        let mut rng = StdRng::seed_from_u64(5);
        // (input, c_out, kernel, dilation): odd sizes, a 1x1 and a non-square kernel,
        // dilation 2, the reference conv 32->64 at batch 2.
        let cases = [
            ([3, 5, 9, 11], 8, [3, 3], 1),
            ([2, 3, 8, 7], 16, [3, 3], 2),
            ([2, 2, 6, 9], 8, [2, 3], 1),
            ([3, 4, 5, 5], 24, [1, 1], 1),
            ([2, 32, 26, 26], 64, [3, 3], 1),
        ];
        for (input, c_out, k, d) in cases {
            let g = geom(input, c_out, k, 1, 0, d);
            let x = random(g.n * g.in_image(), &mut rng);
            let w = random(g.c_out * g.col_rows(), &mut rng);
            let b = random(g.c_out, &mut rng);
            let (mut fast, mut general) = scratches();
            assert_eq!(fast.igemm_conv(&g), direct::igemm_supported());
            for bias in [Some(&b[..]), None] {
                let mut y = vec![f32::NAN; g.n * g.out_image()];
                let mut want = vec![f32::NAN; g.n * g.out_image()];
                conv_forward(&g, &x, &w, bias, &mut y, &mut fast);
                conv_forward(&g, &x, &w, bias, &mut want, &mut general);
                assert_close(&y, &want, &format!("{input:?} {c_out} {k:?} d{d}"));
            }
        }
    }

    #[test]
    fn stride_two_phase_paths_match_the_general_path() {
        let mut rng = StdRng::seed_from_u64(6);
        // (transposed-conv input [n, c_in, h, w], c_out): the conv these are the adjoint of
        // has input [n, c_out, 2h, 2w]. Batch 13 of 5x6 maps leaves a short last block;
        // c_out = 3 takes the general forward but the phase backward.
        let cases = [
            ([13, 8, 5, 6], 16),
            ([3, 16, 7, 7], 8),
            ([2, 3, 4, 3], 8),
            ([2, 8, 3, 3], 3),
            ([2, 8, 1, 1], 8),
        ];
        for ([n, ci, h, wd], co) in cases {
            let g = geom([n, co, 2 * h, 2 * wd], ci, [3, 3], 2, 1, 1);
            assert_eq!((g.h_out, g.w_out), (h, wd));
            let what = format!("{n}x{ci}x{h}x{wd} -> {co}");
            let y = random(g.n * g.out_image(), &mut rng);
            let w = random(g.c_out * g.col_rows(), &mut rng);
            let b = random(g.c_in, &mut rng);
            let (mut fast, mut general) = scratches();
            assert!(fast.s2(&g));
            assert_eq!(fast.igemm_s2(&g), co % 8 == 0 && direct::igemm_supported());
            let mut x = vec![f32::NAN; g.n * g.in_image()];
            let mut want = vec![f32::NAN; g.n * g.in_image()];
            conv_adjoint(&g, &y, &w, Some(&b), &mut x, &mut fast);
            conv_adjoint(&g, &y, &w, Some(&b), &mut want, &mut general);
            assert_close(&x, &want, &format!("{what}: forward"));

            let dx = random(g.n * g.in_image(), &mut rng);
            let dw0 = random(w.len(), &mut rng);
            let (mut y1, mut y2) = (y.clone(), y.clone());
            let (mut dw1, mut dw2) = (dw0.clone(), dw0.clone());
            let (mut db1, mut db2) = (vec![0.5; g.c_in], vec![0.5; g.c_in]);
            conv_adjoint_backward(&g, &mut y1, &w, &dx, &mut dw1, Some(&mut db1), &mut fast);
            conv_adjoint_backward(&g, &mut y2, &w, &dx, &mut dw2, Some(&mut db2), &mut general);
            assert_close(&y1, &y2, &format!("{what}: input gradient"));
            assert_close(&dw1, &dw2, &format!("{what}: weight gradient"));
            assert_close(&db1, &db2, &format!("{what}: bias gradient"));
        }
    }
}
