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
//! The module also holds [`igemm`], a multi-channel *implicit gemm* (a correlation with
//! per-tap offsets and lane masks, no im2col and no packing) used by [`super::kernel`] for
//! the stride-1 unpadded conv forward and the sub-pixel phases of the k3 s2 p1
//! conv-transpose forward; its safe wrapper checks every enabled lane's reads.
//!
//! Notation: `g` is an ordinary convolution with `c_in = 1`, `c_out = C` channels, weight
//! `w: [C, 9]` (tap `t = 3·ky + kx`), one input plane `x: [h_in, w_in]` and output planes
//! `y: [C, h_out, w_out]`.
//!
//! | kernel             | formula                                                      | used by               |
//! |--------------------|--------------------------------------------------------------|-----------------------|
//! | [`forward`]        | `y[c, o] = b[c] + Σ_t w[c, t] · xp[o + t]`                   | conv 1→C forward      |
//! | [`adjoint`]        | `x[i] = b + Σ_c Σ_t w[c, t] · y[c, i + p − t]`               | conv 1→C dx           |
//! | [`adjoint_taps`]   | the same, by tap planes `a[t] = Σ_c w[c, t] · y[c]`          | convT C→1 forward     |
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
//! [`adjoint_taps`] computes the same sum in two steps per image: the 9 tap sums
//! `a[t, q] = Σ_c w[c, t] · y[c, q]` with 9 × 3 vector accumulators (48 pixels, all
//! channels, every element of `y` loaded once and unshifted), folded at once into 3
//! column planes `b[kx, q + ky·w_out] += a[(ky, kx), q]` (the row shift is a constant offset
//! of the flat index, 10 KiB for 28×28, so they stay in L1 next to the stream), then `x` as
//! the sum of the 3 planes, each shifted by its column offset (masked loads from L1): the
//! shifts cost 3 loads per output vector once per image rather than 9 per channel.
//!
//! [`adjoint_backward`] with padding ≥ 1 (the "same" convT C→1 of the VAE) does not use
//! 32-column cells: it lays `x` out on the output grid (row stride `w_out`, zero rows above
//! and below) so that every tap is a constant offset of the flat pixel index, and walks each
//! channel's plane as one run of full 16-lane vectors (only the last one masked), with
//! per-column lane masks for the taps that cross the left or right border ([`FlatMasks`],
//! built once per geometry). No wasted lanes at the row ends, no partial stores, one
//! sequential stream through the `C`-channel tensor. The 3 column-shifted, masked copies of
//! `x` (one per `kx`, zero rows included) are built once per image (10 KiB for 28×28, so
//! they stay in L1 next to the stream; 9 planes, one per tap, took 28 KiB and were slower),
//! and the channel loop reads tap `(ky, kx)` as copy `kx` at offset `ky·w_out`, unmasked,
//! instead of 9 masked loads per vector and channel.
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
    masks: &mut FlatMasks,
) {
    check(g, w, x.len(), y.len());
    assert_eq!(dw.len(), w.len(), "direct kernel: weight gradient length");
    if g.pad >= 1 {
        let nq = g.out_plane();
        if nq == 0 {
            return;
        }
        flat_plane(g, x, xp, masks);
        let np = 16 * (16 * nq.div_ceil(16) + 2 * g.w_out).div_ceil(16);
        assert!(xp.len() >= np + 18);
        let FlatMasks {
            m: masks, planes, ..
        } = masks;
        assert_eq!(masks.len(), 3 * np / 16);
        if planes.len() < 3 * np {
            planes.resize(3 * np, 0.0);
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `supported(g)` (checked) guarantees AVX-512F and FMA. With
        // `np = 16·⌈(16·⌈nq/16⌉ + 2·w_out)/16⌉`, the kernel reads `xp` at `16u + kx + lane`
        // for `u < np/16`, `kx < 3`, below `np + 18 ≤ xp.len()` (checked), and `masks` at
        // `kx·np/16 + u` (`3·np/16` elements, checked); it writes `planes` (`≥ 3·np`, ensured
        // above) at `kx·np + 16u + lane` and reads it at `kx·np + ky·w_out + 16v + lane` for
        // `v < ⌈nq/16⌉`, `ky < 3`, which is below `2·np + 2·w_out + 16·⌈nq/16⌉ ≤ 3·np`. `y`
        // (`c_out·nq`, checked) is read and written masked to the first `nq` elements of
        // each channel; `w`, `dw` have `9·c_out` elements (checked); none of them alias `y`
        // (distinct borrows).
        unsafe {
            avx512::flat_backward(
                xp.as_ptr(),
                g.w_out,
                nq,
                g.c_out,
                masks.as_ptr(),
                w.as_ptr(),
                y.as_mut_ptr(),
                dw.as_mut_ptr(),
                planes.as_mut_ptr(),
            );
        }
        return;
    }
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

/// Lane masks of [`adjoint_backward`] (see `flat_plane`), kept between calls and rebuilt
/// when the geometry changes, and its scratch buffer for the shifted planes.
#[derive(Debug, Default, Clone)]
pub struct FlatMasks {
    /// `(w_out, h_out·w_out, pad, w_in)` of the masks in `m`.
    key: (usize, usize, usize, usize),
    /// `[3, ⌈h_out·w_out/16⌉]`.
    m: Vec<u16>,
    /// Scratch: the 3 column-shifted, masked planes of one image (`[3, np]`, see
    /// `avx512::flat_backward`).
    planes: Vec<f32>,
}

/// For `g.pad ≥ 1` (so `w_in ≤ w_out`): writes `x` into `xq` on the output grid, so that tap
/// `(ky, kx)` of output pixel `q = oy·w_out + ox` reads `xq[q + ky·w_out + kx]`
/// (`xq[p + (r + p)·w_out + col] = x[r, col]`, zeros elsewhere, including the rows above and
/// below the image, up to `np + 18` elements with `np = 16·⌈(16·⌈nq/16⌉ + 2·w_out)/16⌉`),
/// and into `masks[kx·np/16 + v]` the lanes of pixel vector `v < np/16` whose column
/// `ox + kx − p` lies in `0..w_in`.
fn flat_plane(g: &Conv2dGeom, x: &[f32], xq: &mut Vec<f32>, masks: &mut FlatMasks) {
    let (p, wo, nq) = (g.pad, g.w_out, g.out_plane());
    let nv3 = (16 * nq.div_ceil(16) + 2 * wo).div_ceil(16);
    xq.clear();
    xq.resize(16 * nv3 + 2 + 16, 0.0);
    for (r, row) in x.chunks_exact(g.w_in).take(g.h_in).enumerate() {
        let start = p + (r + p) * wo;
        xq[start..start + g.w_in].copy_from_slice(row);
    }
    if masks.key != (wo, nq, p, g.w_in) {
        masks.key = (wo, nq, p, g.w_in);
        let m = &mut masks.m;
        m.clear();
        m.resize(3 * nv3, 0);
        let mut ox = 0;
        for v in 0..nv3 {
            for lane in 0..16 {
                // Column `ox + kx − p` of tap `kx` lies in `0..w_in`.
                for kx in 0..3 {
                    if ox + kx >= p && ox + kx < p + g.w_in {
                        m[kx * nv3 + v] |= 1 << lane;
                    }
                }
                ox = if ox + 1 == wo { 0 } else { ox + 1 };
            }
        }
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

/// [`adjoint`] for a run of `k ≥ 0` images (`y: [k, c_out, h_out·w_out]`,
/// `x: [k, h_in·w_in]`), by *tap planes*: per image, first the nine sums
/// `a[t, q] = Σ_c w[c, t] · y[c, q]` (a `[9, c_out] · [c_out, h_out·w_out]` product with
/// aligned, unshifted loads of `y`: each element of `y` is read once, into registers that
/// feed 9 FMAs), added into 3 column planes `b[kx, q + ky·w_out]` (rows shifted by `ky`),
/// then `x[i] = bias + Σ_kx b[kx, i + p − kx]` (columns outside `y` dropped), which
/// shifts each plane once per image instead of once per channel. `a` is scratch (about
/// `3·(h_out + 2)·w_out` floats, kept between calls). While one image is summed, the next one is
/// prefetched into L2 (and the next block of each channel into L1).
///
/// # Panics
/// When [`supported`] is false, or when the lengths disagree with `g` and each other.
pub fn adjoint_taps(
    g: &Conv2dGeom,
    y: &[f32],
    w: &[f32],
    bias: f32,
    x: &mut [f32],
    a: &mut Vec<f32>,
) {
    assert!(
        supported(g),
        "direct kernel called for an unsupported geometry or CPU"
    );
    assert_eq!(w.len(), g.c_out * 9, "direct kernel: weight length");
    let (nq, ni) = (g.out_plane(), g.in_plane());
    let y_img = g.c_out * nq;
    if x.is_empty() || nq == 0 || ni == 0 {
        assert_eq!(x.len(), 0, "direct kernel: output length");
        assert_eq!(y.len(), 0, "direct kernel: input length");
        return;
    }
    let k = x.len() / ni;
    assert_eq!(x.len(), k * ni, "direct kernel: one-channel image length");
    assert_eq!(y.len(), k * y_img, "direct kernel: C-channel image length");
    let na = 16 * (16 * nq.div_ceil(16) + 2 * g.w_out).div_ceil(16);
    if a.len() < 3 * na {
        a.resize(3 * na, 0.0);
    }
    for i in 0..k {
        let yi = &y[i * y_img..(i + 1) * y_img];
        let next = y.get((i + 1) * y_img..(i + 2) * y_img).map(|n| n.as_ptr());
        let xi = &mut x[i * ni..(i + 1) * ni];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `supported(g)` (checked) guarantees AVX-512F and FMA. `taps` reads `yi`
        // (`c_out·nq` elements) at `c·nq + q` only for `q < nq` (the last vector of each
        // channel is masked), `w` (`9·c_out`, checked) at `9c + t`, and reads and writes
        // `a[kx·na + ky·w_out + q]` for `q < 16·⌈nq/16⌉`, `ky, kx < 3`, i.e. below
        // `2·na + 16·⌈nq/16⌉ + 2·w_out ≤ 3·na`, inside `a` (`≥ 3·na`, ensured above).
        // `next` is only prefetched (a prefetch never faults). `gather` reads
        // `a[kx·na + (iy + p)·w_out + col]` only for enabled lanes, whose column
        // `col < w_out` and row `iy + p < h_in + p ≤ h_out + 2` (so the index is
        // `< kx·na + nq + 2·w_out ≤ (kx + 1)·na`), and writes `xi` (`h_in·w_in`, checked)
        // masked to columns `< w_in` of rows `< h_in`. Masked-off lanes are not accessed,
        // so their (wrapping) addresses may lie outside.
        unsafe {
            avx512::taps(
                yi.as_ptr(),
                nq,
                g.w_out,
                g.c_out,
                w.as_ptr(),
                a.as_mut_ptr(),
                na,
                next,
            );
            avx512::gather(
                a.as_ptr(),
                na,
                g.w_out,
                g.pad,
                bias,
                xi.as_mut_ptr(),
                g.h_in,
                g.w_in,
            );
        }
    }
}

/// Output channels per register block of [`igemm`]: its `c_out` must be a multiple of this.
pub const IGEMM_CO_BLOCK: usize = 8;

/// One *implicit gemm* for [`igemm`]: a multi-channel correlation whose im2col matrix is
/// never built. For `q < nq` and `co < c_out`:
///
/// `dst[co·ds + q] = Σ_t Σ_ci w[(t·c_in + ci)·c_out + co] · src[off[t] + ci·cs + q]`
///
/// where the term of tap `t` at `q` counts only when bit `q mod 16` of
/// `masks[t·⌈nq/16⌉ + q/16]` is set (a zero term otherwise: padding and image borders).
/// `src` is a set of `c_in` planes `cs` apart, `q` a flat pixel index shared by all taps.
#[derive(Debug, Clone, Copy)]
pub struct Igemm<'a> {
    /// The input planes.
    pub src: &'a [f32],
    /// Elements between two input channels of `src`.
    pub cs: usize,
    /// Per tap: the element offset of its plane start in `src` (may be negative where the
    /// masks keep every read inside `src`).
    pub offs: &'a [isize],
    /// Per tap and 16-pixel vector: the lanes that read (see above).
    pub masks: &'a [u16],
    /// Input channels.
    pub c_in: usize,
    /// Packed weights `[taps, c_in, c_out]`.
    pub w: &'a [f32],
    /// Output channels (a multiple of [`IGEMM_CO_BLOCK`]).
    pub c_out: usize,
    /// Output pixels.
    pub nq: usize,
}

/// True when the CPU runs [`igemm`] (AVX-512F and FMA).
pub fn igemm_supported() -> bool {
    cpu_has_avx512()
}

/// Runs the implicit gemm `p` into `dst` (row stride `ds ≥ nq`; every `dst[co·ds + q]`,
/// `q < nq`, is written, nothing else). Sums run over taps, then input channels, in that
/// fixed order. Register blocks of 8 output channels × 48 pixels, the weights broadcast
/// from memory and the pixels loaded (masked) straight from `src`: no im2col, no packing.
///
/// # Panics
/// When the CPU lacks AVX-512 ([`igemm_supported`]), when `c_out` is not a multiple of
/// [`IGEMM_CO_BLOCK`], when a length disagrees, when a mask sets a lane at or past `nq`, or
/// when some enabled lane would read outside `src`.
pub fn igemm(p: &Igemm<'_>, dst: &mut [f32], ds: usize) {
    assert!(igemm_supported(), "igemm needs AVX-512F and FMA");
    assert!(
        p.c_out.is_multiple_of(IGEMM_CO_BLOCK),
        "igemm: c_out {} is not a multiple of {IGEMM_CO_BLOCK}",
        p.c_out
    );
    if p.nq == 0 || p.c_out == 0 {
        return;
    }
    let taps = p.offs.len();
    let nvec = p.nq.div_ceil(16);
    assert_eq!(p.masks.len(), taps * nvec, "igemm: mask table length");
    assert_eq!(p.w.len(), taps * p.c_in * p.c_out, "igemm: weight length");
    assert!(ds >= p.nq, "igemm: row stride {ds} < nq {}", p.nq);
    assert!(
        (p.c_out - 1) * ds + p.nq <= dst.len(),
        "igemm: destination too short"
    );
    if p.c_in > 0 {
        let span = ((p.c_in - 1) * p.cs) as isize;
        for (t, &off) in p.offs.iter().enumerate() {
            for (v, &m) in p.masks[t * nvec..(t + 1) * nvec].iter().enumerate() {
                if m == 0 {
                    continue;
                }
                let lo = (16 * v) as isize + m.trailing_zeros() as isize;
                let hi = (16 * v + 15) as isize - m.leading_zeros() as isize;
                assert!((hi as usize) < p.nq, "igemm: mask lane past nq");
                assert!(
                    off + lo >= 0 && off + span + hi < p.src.len() as isize,
                    "igemm: tap {t} reads outside the source"
                );
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F and FMA are present (checked). Every enabled lane reads
    // `src[off[t] + ci·cs + q]` inside `src` (checked above for the lowest and highest
    // enabled lane of every tap and vector, over all channels); disabled lanes are not
    // accessed (masked loads; their wrapping addresses may lie outside). `w` has
    // `taps·c_in·c_out` elements and is read at `(t·c_in + ci)·c_out + co` (checked);
    // stores go to `dst[co·ds + q]` for `q < nq ≤ ds`, inside `dst` (checked).
    unsafe {
        avx512::igemm(
            p.src.as_ptr(),
            p.cs,
            p.offs,
            p.masks,
            p.c_in,
            p.w.as_ptr(),
            p.c_out,
            dst.as_mut_ptr(),
            ds,
            p.nq,
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

    /// See [`super::adjoint_backward`] for `pad ≥ 1`. First the 3 column-shifted planes of
    /// the image, `s[kx·np + q] = xq[q + kx]` for `q < np = 16·⌈(16·⌈nq/16⌉ + 2·w_out)/16⌉`,
    /// masked to the lanes whose column lies inside the image (see `super::flat_plane`), so
    /// that tap `(ky, kx)` of pixel `q` is `s[kx·np + ky·w_out + q]`, loaded unmasked from
    /// L1; then channel by channel, one flat pass over the `nq` pixels of the
    /// plane in 16-lane vectors (full vectors but the last). Per vector: 9 FMAs into the 9
    /// `dw` accumulators, 1 multiply and 8 FMAs into the output.
    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn flat_backward(
        xq: *const f32,
        w_out: usize,
        nq: usize,
        c: usize,
        masks: *const u16,
        w: *const f32,
        y: *mut f32,
        dw: *mut f32,
        s: *mut f32,
    ) {
        let nvec = nq.div_ceil(16);
        let nv3 = (16 * nvec + 2 * w_out).div_ceil(16);
        let np = 16 * nv3;
        for u in 0..nv3 {
            for kx in 0..3 {
                let mk = *masks.add(kx * nv3 + u);
                let out = s.add(kx * np + 16 * u);
                _mm512_storeu_ps(out, _mm512_maskz_loadu_ps(mk, xq.add(16 * u + kx)));
            }
        }
        let tail = first(nq - 16 * (nvec - 1));
        for ci in 0..c {
            let mut wv = [_mm512_setzero_ps(); 9];
            for (t, v) in wv.iter_mut().enumerate() {
                *v = _mm512_set1_ps(*w.add(9 * ci + t));
            }
            let mut acc = [_mm512_setzero_ps(); 9];
            let yc = y.add(ci * nq);
            for v in 0..nvec {
                let sm = if v + 1 == nvec { tail } else { 0xffff };
                let yp = yc.add(16 * v);
                _mm_prefetch::<_MM_HINT_T0>(yp.wrapping_add(16 * FLAT_AHEAD) as *const i8);
                _mm_prefetch::<_MM_HINT_T1>(yp.wrapping_add(16 * FLAT_AHEAD_L2) as *const i8);
                let yv = _mm512_maskz_loadu_ps(sm, yp);
                // One chain of 1 multiply and 8 FMAs for the output (the vectors are
                // independent, so out-of-order execution overlaps the chains).
                let s0 = _mm512_loadu_ps(s.add(16 * v));
                acc[0] = _mm512_fmadd_ps(yv, s0, acc[0]);
                let mut out = _mm512_mul_ps(wv[0], s0);
                for t in 1..9 {
                    let (ky, kx) = (t / 3, t % 3);
                    let sv = _mm512_loadu_ps(s.add(kx * np + ky * w_out + 16 * v));
                    acc[t] = _mm512_fmadd_ps(yv, sv, acc[t]);
                    out = _mm512_fmadd_ps(wv[t], sv, out);
                }
                _mm512_mask_storeu_ps(yp, sm, out);
            }
            for (t, a) in acc.iter().enumerate() {
                *dw.add(9 * ci + t) += _mm512_reduce_add_ps(*a);
            }
        }
    }

    /// How many 16-lane vectors ahead [`flat_backward`] prefetches its streamed tensor.
    const FLAT_AHEAD: usize = 16;
    /// How many vectors ahead [`flat_backward`] prefetches into L2.
    const FLAT_AHEAD_L2: usize = 96;

    /// Pixel vectors per register block of [`igemm`].
    const QV: usize = 3;
    /// Output channels per register block of [`igemm`].
    const CB: usize = super::IGEMM_CO_BLOCK;

    /// See [`super::igemm`].
    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn igemm(
        src: *const f32,
        cs: usize,
        offs: &[isize],
        masks: &[u16],
        c_in: usize,
        w: *const f32,
        c_out: usize,
        dst: *mut f32,
        ds: usize,
        nq: usize,
    ) {
        let nvec = nq.div_ceil(16);
        let mut v0 = 0;
        while v0 + QV <= nvec {
            igemm_block::<QV>(src, cs, offs, masks, c_in, w, c_out, dst, ds, nq, v0);
            v0 += QV;
        }
        match nvec - v0 {
            2 => igemm_block::<2>(src, cs, offs, masks, c_in, w, c_out, dst, ds, nq, v0),
            1 => igemm_block::<1>(src, cs, offs, masks, c_in, w, c_out, dst, ds, nq, v0),
            _ => {}
        }
    }

    /// Pixel vectors `v0..v0 + V` of [`igemm`], all output channels.
    #[target_feature(enable = "avx512f,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn igemm_block<const V: usize>(
        src: *const f32,
        cs: usize,
        offs: &[isize],
        masks: &[u16],
        c_in: usize,
        w: *const f32,
        c_out: usize,
        dst: *mut f32,
        ds: usize,
        nq: usize,
        v0: usize,
    ) {
        let nvec = nq.div_ceil(16);
        let mut sm = [0 as __mmask16; V];
        for (j, m) in sm.iter_mut().enumerate() {
            *m = first(nq - 16 * (v0 + j));
        }
        for co0 in (0..c_out).step_by(CB) {
            let mut acc = [[_mm512_setzero_ps(); V]; CB];
            for (t, &off) in offs.iter().enumerate() {
                let mut m = [0 as __mmask16; V];
                for (j, mj) in m.iter_mut().enumerate() {
                    *mj = masks[t * nvec + v0 + j];
                }
                let mut xp = src.wrapping_offset(off).wrapping_add(16 * v0);
                let mut wp = w.add(t * c_in * c_out + co0);
                for _ in 0..c_in {
                    let mut xv = [_mm512_setzero_ps(); V];
                    for (j, x) in xv.iter_mut().enumerate() {
                        *x = _mm512_maskz_loadu_ps(m[j], xp.wrapping_add(16 * j));
                    }
                    for (i, a) in acc.iter_mut().enumerate() {
                        let wv = _mm512_set1_ps(*wp.add(i));
                        for (aj, x) in a.iter_mut().zip(&xv) {
                            *aj = _mm512_fmadd_ps(wv, *x, *aj);
                        }
                    }
                    xp = xp.wrapping_add(cs);
                    wp = wp.add(c_out);
                }
            }
            for (i, a) in acc.iter().enumerate() {
                let out = dst.add((co0 + i) * ds + 16 * v0);
                for (j, aj) in a.iter().enumerate() {
                    _mm512_mask_storeu_ps(out.wrapping_add(16 * j), sm[j], *aj);
                }
            }
        }
    }

    /// Pixel vectors per register block of [`taps`] (9 taps × 3 vectors = 27 accumulators).
    const TV: usize = 3;

    /// See [`super::adjoint_taps`]: the column planes
    /// `a[kx·na + e] = Σ_ky Σ_c w[9c + 3ky + kx] · y[c·nq + e − ky·w_y]` for
    /// `e < 16·⌈nq/16⌉ + 2·w_y` (sources outside `0..nq` read as 0), prefetching `next` (the
    /// same positions of the next image) into L2.
    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn taps(
        y: *const f32,
        nq: usize,
        w_y: usize,
        c: usize,
        w: *const f32,
        a: *mut f32,
        na: usize,
        next: Option<*const f32>,
    ) {
        for kx in 0..3 {
            for i in 0..2 * w_y {
                *a.add(kx * na + i) = 0.0;
            }
        }
        let nvec = nq.div_ceil(16);
        let mut v0 = 0;
        while v0 + TV <= nvec {
            taps_block::<TV>(y, nq, w_y, c, w, a, na, next, v0);
            v0 += TV;
        }
        match nvec - v0 {
            2 => taps_block::<2>(y, nq, w_y, c, w, a, na, next, v0),
            1 => taps_block::<1>(y, nq, w_y, c, w, a, na, next, v0),
            _ => {}
        }
    }

    /// Pixel vectors `v0..v0 + V` of [`taps`], all channels, the 9 × `V` sums in registers.
    #[target_feature(enable = "avx512f,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn taps_block<const V: usize>(
        y: *const f32,
        nq: usize,
        w_y: usize,
        c: usize,
        w: *const f32,
        a: *mut f32,
        na: usize,
        next: Option<*const f32>,
        v0: usize,
    ) {
        let mut m = [0 as __mmask16; V];
        for (j, mj) in m.iter_mut().enumerate() {
            *mj = first(nq - 16 * (v0 + j));
        }
        let mut acc = [[_mm512_setzero_ps(); V]; 9];
        for ci in 0..c {
            let off = ci * nq + 16 * v0;
            // Prefetch the same lines of the next image into L2, and the next block of this
            // channel into L1 (a prefetch never faults, even past the end).
            let pl2 = next.map(|nx| nx.wrapping_add(off) as *const i8);
            let pl1 = y.wrapping_add(off + 16 * V) as *const i8;
            for j in 0..V {
                if let Some(p) = pl2 {
                    _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(64 * j));
                }
                _mm_prefetch::<_MM_HINT_T0>(pl1.wrapping_add(64 * j));
            }
            let yc = y.add(off);
            let mut yv = [_mm512_setzero_ps(); V];
            for (j, v) in yv.iter_mut().enumerate() {
                *v = _mm512_maskz_loadu_ps(m[j], yc.add(16 * j));
            }
            let wc = w.add(9 * ci);
            for (t, at) in acc.iter_mut().enumerate() {
                let wb = _mm512_set1_ps(*wc.add(t));
                for (aj, v) in at.iter_mut().zip(&yv) {
                    *aj = _mm512_fmadd_ps(wb, *v, *aj);
                }
            }
        }
        // Tap (ky, kx) goes to plane kx at offset ky·w_y. Rows ky = 2 reach these positions
        // first (earlier blocks wrote below them), so they are stored; ky = 1, 0 add.
        for ky in (0..3).rev() {
            for kx in 0..3 {
                let dst = a.add(kx * na + ky * w_y + 16 * v0);
                for (j, aj) in acc[3 * ky + kx].iter().enumerate() {
                    let d = dst.add(16 * j);
                    let v = if ky == 2 {
                        *aj
                    } else {
                        _mm512_add_ps(_mm512_loadu_ps(d), *aj)
                    };
                    _mm512_storeu_ps(d, v);
                }
            }
        }
    }

    /// Lanes `lo..hi` (clamped to `0..16`).
    #[inline(always)]
    fn span(lo: isize, hi: isize) -> __mmask16 {
        let (lo, hi) = (lo.clamp(0, 16) as u32, hi.clamp(0, 16) as u32);
        if lo >= hi {
            0
        } else {
            (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as __mmask16
        }
    }

    /// See [`super::adjoint_taps`]: `x[iy, ix] = bias + Σ_kx a[kx·na + (iy + pad)·w_y + ix +
    /// pad − kx]` over the taps whose source column lies in `0..w_y` (the rows of the
    /// column planes of [`taps`] already hold the sum over `ky`).
    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn gather(
        a: *const f32,
        na: usize,
        w_y: usize,
        pad: usize,
        bias: f32,
        x: *mut f32,
        h_x: usize,
        w_x: usize,
    ) {
        for j0 in (0..w_x).step_by(16) {
            // lm[kx]: lanes whose column j0 + lane < w_x reads source column
            // j0 + lane + pad − kx inside 0..w_y.
            let mut lm = [0 as __mmask16; 3];
            for (kx, m) in lm.iter_mut().enumerate() {
                let shift = kx as isize - pad as isize - j0 as isize;
                let hi = ((w_x - j0) as isize).min(w_y as isize + shift);
                *m = span(shift, hi);
            }
            let sm = first(w_x - j0);
            for iy in 0..h_x {
                let mut s = _mm512_set1_ps(bias);
                let row = a.wrapping_add((iy + pad) * w_y + j0 + pad);
                for (kx, &mk) in lm.iter().enumerate() {
                    let p = row.wrapping_add(kx * na).wrapping_sub(kx);
                    s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(mk, p));
                }
                _mm512_mask_storeu_ps(x.add(iy * w_x + j0), sm, s);
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
        (13, 5, 1, 3),
        (1, 20, 2, 2),
        (3, 47, 3, 2),
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
        // Shared by all shapes: `adjoint_backward` must rebuild its masks when the
        // geometry changes.
        let mut masks = FlatMasks::default();
        let mut taps = Vec::new();
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

            // adjoint_taps over two images at once (the second one prefetched), with a
            // scratch buffer shared across shapes.
            let dy2 = random(c * g.out_plane(), &mut rng);
            let both = [dy.clone(), dy2.clone()].concat();
            let mut xt = vec![f32::NAN; 2 * g.in_plane()];
            adjoint_taps(&g, &both, &w, 0.25, &mut xt, &mut taps);
            let (x0, x1) = xt.split_at(g.in_plane());
            assert_close(x0, &adjoint_naive(&g, &dy, &w, 0.25), 9 * c + 1, &what);
            assert_close(x1, &adjoint_naive(&g, &dy2, &w, 0.25), 9 * c + 1, &what);

            let dw0 = random(9 * c, &mut rng);
            let mut dw = dw0.clone();
            weight_grad(&g, &x, &dy, &mut dw, &mut xp);
            let terms = g.out_plane() + 1;
            assert_close(&dw, &weight_grad_naive(&g, &x, &dy, &dw0), terms, &what);

            // adjoint_backward: dw += y·xp, then y ← w ⋆ xp (the forward without bias).
            let mut y = dy.clone();
            let mut dw = dw0.clone();
            adjoint_backward(&g, &x, &w, &mut y, &mut dw, &mut xp, &mut masks);
            assert_close(&dw, &weight_grad_naive(&g, &x, &dy, &dw0), terms, &what);
            assert_close(&y, &forward_naive(&g, &x, &w, None), 10, &what);
        }
    }

    /// `igemm` against its formula, with negative offsets, random masks (so borders and
    /// padding of every shape are exercised), a row stride past `nq` whose gap must stay
    /// untouched, and pixel counts that leave 0, 1 and 2 vectors after the 3-vector blocks.
    #[test]
    fn igemm_matches_its_formula() {
        let mut rng = StdRng::seed_from_u64(93);
        if !igemm_supported() {
            return;
        }
        let cases: [(usize, usize, usize, usize); 4] =
            [(1, 1, 8, 1), (47, 3, 16, 4), (80, 5, 8, 9), (100, 2, 24, 3)];
        for (nq, c_in, c_out, taps) in cases {
            let nvec = nq.div_ceil(16);
            let cs = nq + 7;
            let src = random(c_in * cs + 30, &mut rng);
            let offs: Vec<isize> = (0..taps).map(|t| 3 * t as isize - 9).collect();
            let masks: Vec<u16> = (0..taps * nvec)
                .map(|i| {
                    let v = i % nvec;
                    let m: u16 = rng.random();
                    // Lanes 0..9 of vector 0 would read before `src` for the negative offsets.
                    let m = if v == 0 { m & 0xfe00 } else { m };
                    m & lanes(nq - 16 * v)
                })
                .collect();
            let w = random(taps * c_in * c_out, &mut rng);
            let ds = nq + 5;
            let mut dst = vec![f32::NAN; c_out * ds];
            let p = Igemm {
                src: &src,
                cs,
                offs: &offs,
                masks: &masks,
                c_in,
                w: &w,
                c_out,
                nq,
            };
            igemm(&p, &mut dst, ds);
            for co in 0..c_out {
                for q in 0..ds {
                    let got = dst[co * ds + q];
                    if q >= nq {
                        assert!(got.is_nan(), "gap written at [{co}, {q}]");
                        continue;
                    }
                    let mut want = 0.0f64;
                    for t in 0..taps {
                        if masks[t * nvec + q / 16] & (1 << (q % 16)) == 0 {
                            continue;
                        }
                        for ci in 0..c_in {
                            let at = (offs[t] + (ci * cs + q) as isize) as usize;
                            want += w[(t * c_in + ci) * c_out + co] as f64 * src[at] as f64;
                        }
                    }
                    let tol = 2e-6 * (taps * c_in) as f64 * (1.0 + want.abs());
                    assert!(
                        (got as f64 - want).abs() <= tol,
                        "[{co}, {q}] {got} vs {want}"
                    );
                }
            }
        }
    }

    fn lanes(n: usize) -> u16 {
        if n >= 16 {
            u16::MAX
        } else {
            ((1u32 << n) - 1) as u16
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
