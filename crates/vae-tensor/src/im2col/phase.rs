//! im2col / col2im on an *extended output grid* through stride-phase planes: every im2col
//! row is one contiguous copy, every col2im row one contiguous vector add.
//!
//! Write `s` for the stride and pad the input by `pad` on every side. Split each padded
//! channel plane into `s·s` *phase planes*: phase `(a, b)` holds the padded pixels
//! `(s·i + a, s·j + b)` at `(i, j)`, in a plane of width `pw`. Kernel tap `(ky, kx)` reads,
//! for output `(oy, ox)`, the padded pixel `(oy·s + ky·d, ox·s + kx·d)`, which is pixel
//! `(oy + qy, ox + qx)` of phase `(a, b)` with `qy = ky·d / s`, `a = ky·d mod s` (same for
//! `x`). If the output grid is *extended* to width `pw` (columns `w_out..pw` are junk), the
//! im2col row of tap `(ky, kx)` is the run of `h_out·pw` consecutive elements of its phase
//! plane starting at `qy·pw + qx`: a `memcpy` instead of `k_h·k_w·h_out` short copies or a
//! scalar gather. The price is `pw / w_out` more gemm columns (8-14 % on the reference VAE)
//! and one input-sized pass to build the phase planes.
//!
//! Junk columns: [`PhaseIm2col::im2col`] fills them with finite values taken from the
//! phase planes (other real pixels or zeros), so a product with a matrix whose junk
//! columns are zero (see [`expand`]) contributes nothing, and a result's junk columns are
//! dropped by [`compact`]. [`PhaseIm2col::col2im`] expects junk columns that are zero (they
//! would otherwise land on real pixels).

use crate::shape::Conv2dGeom;

/// The phase-plane layout for one geometry, reused for every image. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhaseIm2col {
    /// The geometry the layout was built for, with `n`, `c_in`, `c_out` zeroed.
    key: Option<Conv2dGeom>,
    /// Stride (number of phases per axis).
    s: usize,
    /// Phase plane height and width.
    ph: usize,
    pw: usize,
    /// For each tap `(ky, kx)`: (phase index `a·s + b`, start offset `qy·pw + qx`).
    taps: Vec<(usize, usize)>,
}

impl PhaseIm2col {
    fn key(g: &Conv2dGeom) -> Conv2dGeom {
        Conv2dGeom {
            n: 0,
            c_in: 0,
            c_out: 0,
            ..*g
        }
    }

    /// The layout for `g`.
    pub fn new(g: &Conv2dGeom) -> Self {
        let mut t = PhaseIm2col::default();
        t.prepare(g);
        t
    }

    /// Rebuilds the layout for `g` unless it already matches.
    pub fn prepare(&mut self, g: &Conv2dGeom) {
        let key = Self::key(g);
        if self.key == Some(key) {
            return;
        }
        let s = g.stride;
        let q = |k: usize| ((k - 1) * g.dilation) / s;
        let (qy_max, qx_max) = (q(g.k_h), q(g.k_w));
        self.s = s;
        self.pw = (g.w_in + 2 * g.pad).div_ceil(s).max(qx_max + g.w_out);
        // One spare row when qx > 0: the last run starts qx past a row start.
        self.ph = (g.h_in + 2 * g.pad)
            .div_ceil(s)
            .max(qy_max + g.h_out + usize::from(qx_max > 0));
        self.taps.clear();
        for ky in 0..g.k_h {
            for kx in 0..g.k_w {
                let (oy, ox) = (ky * g.dilation, kx * g.dilation);
                let phase = (oy % s) * s + ox % s;
                self.taps.push((phase, (oy / s) * self.pw + ox / s));
            }
        }
        self.key = Some(key);
    }

    /// Width of the extended output grid (`≥ w_out`).
    pub fn ext_width(&self) -> usize {
        self.pw
    }

    /// Columns of one image's extended im2col matrix: `h_out · ext_width()`.
    pub fn ext_plane(&self, g: &Conv2dGeom) -> usize {
        g.h_out * self.pw
    }

    fn phases_len(&self) -> usize {
        self.s * self.s * self.ph * self.pw
    }

    #[track_caller]
    fn check(&self, g: &Conv2dGeom) {
        assert!(
            self.key == Some(Self::key(g)),
            "PhaseIm2col used with another geometry"
        );
    }

    /// For input column phase `b` (`(ix + pad) mod s = b`): the first such `ix` and its
    /// phase-plane column `(ix + pad) / s`. No division in the pixel loops.
    fn column_phase(&self, g: &Conv2dGeom, b: usize) -> (usize, usize) {
        let s = self.s;
        let ix0 = (b + s - g.pad % s) % s;
        (ix0, (ix0 + g.pad) / s)
    }

    /// Splits one channel plane into its zero-padded phase planes. Writes the same
    /// positions for every plane, so `phases` only has to be zeroed once for all channels.
    fn split(&self, g: &Conv2dGeom, plane: &[f32], phases: &mut [f32]) {
        let (s, plen) = (self.s, self.ph * self.pw);
        for (iy, row) in plane.chunks(g.w_in).enumerate() {
            let py = iy + g.pad;
            let base = (py % s) * s * plen + (py / s) * self.pw;
            if s == 1 {
                phases[base + g.pad..base + g.pad + g.w_in].copy_from_slice(row);
                continue;
            }
            if s == 2 {
                // Even and odd columns in one pass over pairs (vectorizes as a shuffle).
                let (e, o) = self.pair_starts(g, base, plen);
                let (ne, no) = (g.w_in.div_ceil(2), g.w_in / 2);
                let (lo, hi) = phases.split_at_mut(e.max(o));
                let (de, dodd) = if e < o {
                    (&mut lo[e..e + ne], &mut hi[..no])
                } else {
                    (&mut hi[..ne], &mut lo[o..o + no])
                };
                for ((a, b), c) in de.iter_mut().zip(dodd.iter_mut()).zip(row.chunks_exact(2)) {
                    *a = c[0];
                    *b = c[1];
                }
                if ne > no {
                    de[no] = row[g.w_in - 1];
                }
                continue;
            }
            for b in 0..s {
                let (ix0, j0) = self.column_phase(g, b);
                let dst = &mut phases[base + b * plen + j0..base + b * plen + self.pw];
                for (d, &v) in dst.iter_mut().zip(row.iter().skip(ix0).step_by(s)) {
                    *d = v;
                }
            }
        }
    }

    /// For stride 2: the phase-plane offsets (from a row's `base`) where the even input
    /// columns (`ix = 0, 2, ..`) and the odd ones (`ix = 1, 3, ..`) of that row start.
    fn pair_starts(&self, g: &Conv2dGeom, base: usize, plen: usize) -> (usize, usize) {
        let mut starts = [0; 2];
        for b in 0..2 {
            let (ix0, j0) = self.column_phase(g, b);
            starts[ix0] = base + b * plen + j0;
        }
        (starts[0], starts[1])
    }

    /// Adds (or, with `overwrite`, writes) the phase planes' real pixels back onto one
    /// channel plane. Every pixel of the plane is visited exactly once.
    fn merge(&self, g: &Conv2dGeom, phases: &[f32], plane: &mut [f32], overwrite: bool) {
        let (s, plen) = (self.s, self.ph * self.pw);
        for (iy, row) in plane.chunks_mut(g.w_in).enumerate() {
            let py = iy + g.pad;
            let base = (py % s) * s * plen + (py / s) * self.pw;
            if s == 1 {
                let src = &phases[base + g.pad..base + g.pad + g.w_in];
                if overwrite {
                    row.copy_from_slice(src);
                } else {
                    row.iter_mut().zip(src).for_each(|(d, &v)| *d += v);
                }
                continue;
            }
            if s == 2 {
                let (e, o) = self.pair_starts(g, base, plen);
                let (ne, no) = (g.w_in.div_ceil(2), g.w_in / 2);
                let (se, so) = (&phases[e..e + ne], &phases[o..o + no]);
                let pairs = row.chunks_exact_mut(2).zip(se.iter().zip(so));
                if overwrite {
                    pairs.for_each(|(c, (&a, &b))| {
                        c[0] = a;
                        c[1] = b;
                    });
                } else {
                    pairs.for_each(|(c, (&a, &b))| {
                        c[0] += a;
                        c[1] += b;
                    });
                }
                if ne > no {
                    let last = &mut row[g.w_in - 1];
                    *last = if overwrite { se[no] } else { *last + se[no] };
                }
                continue;
            }
            for b in 0..s {
                let (ix0, j0) = self.column_phase(g, b);
                let src = &phases[base + b * plen + j0..base + b * plen + self.pw];
                let dst = row.iter_mut().skip(ix0).step_by(s).zip(src);
                if overwrite {
                    dst.for_each(|(d, &v)| *d = v);
                } else {
                    dst.for_each(|(d, &v)| *d += v);
                }
            }
        }
    }

    /// Writes the extended im2col matrix of one image `x` (`[c_in, h_in, w_in]`) into `col`
    /// (row `r` starts at `col[r·ld]`, `ext_plane(g)` entries per row). `phases` is scratch.
    ///
    /// # Panics
    /// When `g` does not match the layout.
    #[track_caller]
    pub fn im2col(
        &self,
        g: &Conv2dGeom,
        x: &[f32],
        col: &mut [f32],
        ld: usize,
        phases: &mut Vec<f32>,
    ) {
        self.check(g);
        let (p_ext, plen, taps) = (self.ext_plane(g), self.ph * self.pw, self.taps.len());
        if phases.len() < self.phases_len() {
            phases.resize(self.phases_len(), 0.0);
        }
        let phases = &mut phases[..self.phases_len()];
        phases.fill(0.0);
        for (ci, plane) in x.chunks(g.in_plane()).enumerate().take(g.c_in) {
            self.split(g, plane, phases);
            for (t, &(phase, start)) in self.taps.iter().enumerate() {
                let r = ci * taps + t;
                let src = &phases[phase * plen + start..phase * plen + start + p_ext];
                col[r * ld..r * ld + p_ext].copy_from_slice(src);
            }
        }
    }

    /// Adds the extended im2col-shaped matrix `col` (junk columns zero) back onto one image
    /// `x` (`[c_in, h_in, w_in]`), like [`col2im`](super::col2im). `phases` is scratch.
    ///
    /// # Panics
    /// When `g` does not match the layout.
    #[track_caller]
    pub fn col2im(
        &self,
        g: &Conv2dGeom,
        col: &[f32],
        ld: usize,
        x: &mut [f32],
        phases: &mut Vec<f32>,
    ) {
        self.col2im_impl(g, col, ld, x, phases, false);
    }

    /// As [`PhaseIm2col::col2im`], but *writes* the result into `x` (no need to zero it
    /// first; every element is written).
    ///
    /// # Panics
    /// When `g` does not match the layout.
    #[track_caller]
    pub fn col2im_into(
        &self,
        g: &Conv2dGeom,
        col: &[f32],
        ld: usize,
        x: &mut [f32],
        phases: &mut Vec<f32>,
    ) {
        self.col2im_impl(g, col, ld, x, phases, true);
    }

    #[track_caller]
    fn col2im_impl(
        &self,
        g: &Conv2dGeom,
        col: &[f32],
        ld: usize,
        x: &mut [f32],
        phases: &mut Vec<f32>,
        overwrite: bool,
    ) {
        self.check(g);
        let (p_ext, plen, taps) = (self.ext_plane(g), self.ph * self.pw, self.taps.len());
        if phases.len() < self.phases_len() {
            phases.resize(self.phases_len(), 0.0);
        }
        let phases = &mut phases[..self.phases_len()];
        let in_plane = g.in_plane();
        for (ci, plane) in x.chunks_mut(in_plane).enumerate().take(g.c_in) {
            phases.fill(0.0);
            for (t, &(phase, start)) in self.taps.iter().enumerate() {
                let r = ci * taps + t;
                let dst = &mut phases[phase * plen + start..phase * plen + start + p_ext];
                let src = &col[r * ld..r * ld + p_ext];
                dst.iter_mut().zip(src).for_each(|(d, &v)| *d += v);
            }
            self.merge(g, phases, plane, overwrite);
        }
    }
}

/// Copies `nb` images `[c, h·w]` into a `[c, nb·h·ext_w]` row-major block on the extended
/// grid, with zeros in the junk columns `w..ext_w`.
pub fn expand(
    imgs: &[f32],
    c: usize,
    h: usize,
    w: usize,
    ext_w: usize,
    nb: usize,
    out: &mut [f32],
) {
    let (p, p_ext) = (h * w, h * ext_w);
    let cols = nb * p_ext;
    for b in 0..nb {
        for ch in 0..c {
            let src = &imgs[(b * c + ch) * p..(b * c + ch + 1) * p];
            let dst = &mut out[ch * cols + b * p_ext..ch * cols + (b + 1) * p_ext];
            for (d, s) in dst.chunks_mut(ext_w).zip(src.chunks(w)) {
                d[..w].copy_from_slice(s);
                d[w..].fill(0.0);
            }
        }
    }
}

/// The inverse of [`expand`]: copies the real columns of a `[c, nb·h·ext_w]` block back into
/// `nb` images `[c, h·w]`.
pub fn compact(
    block: &[f32],
    c: usize,
    h: usize,
    w: usize,
    ext_w: usize,
    nb: usize,
    imgs: &mut [f32],
) {
    let (p, p_ext) = (h * w, h * ext_w);
    let cols = nb * p_ext;
    for b in 0..nb {
        for ch in 0..c {
            let src = &block[ch * cols + b * p_ext..ch * cols + (b + 1) * p_ext];
            let dst = &mut imgs[(b * c + ch) * p..(b * c + ch + 1) * p];
            for (d, s) in dst.chunks_mut(w).zip(src.chunks(ext_w)) {
                d.copy_from_slice(&s[..w]);
            }
        }
    }
}
