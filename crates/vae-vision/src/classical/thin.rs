//! Morphological thinning of binary maps: MATLAB's `bwmorph(bw, 'thin', Inf)`, the step
//! the BSDS benchmark applies to every thresholded edge map.
//!
//! The algorithm is the parallel two-subiteration thinning of Guo and Hall as described by
//! Lam, Lee and Suen (1992), which MATLAB and `skimage.morphology.thin` implement. Number
//! the 8 neighbours of `p` counter-clockwise from east: `x1 = E, x2 = NE, x3 = N, x4 = NW,
//! x5 = W, x6 = SW, x7 = S, x8 = SE`. A pixel is deleted in a subiteration when
//!
//! * G1: the Hilditch crossing number `X_H(p) = Σ_{i=1..4} [x_{2i−1} = 0 ∧ (x_{2i} ∨
//!   x_{2i+1})]` is 1;
//! * G2: `2 <= min(n1, n2) <= 3` with `n1 = Σ_k x_{2k−1} ∨ x_{2k}`, `n2 = Σ_k x_{2k} ∨
//!   x_{2k+1}`;
//! * G3 (first subiteration): `(x2 ∨ x3 ∨ ¬x8) ∧ x1 = 0`; G3' (second): `(x6 ∨ x7 ∨ ¬x4) ∧
//!   x5 = 0`.
//!
//! All deletions of one subiteration are decided on the map as it was when the
//! subiteration began. Outside the image counts as 0. Iterate until nothing changes.

use ndarray::{Array2, ArrayView2};

/// Neighbourhood code of `(y, x)`: bit k−1 set when neighbour `x_k` is on.
#[inline]
fn code(m: &Array2<bool>, y: usize, x: usize) -> u8 {
    let (h, w) = m.dim();
    let at = |dy: isize, dx: isize| -> bool {
        let yy = y as isize + dy;
        let xx = x as isize + dx;
        yy >= 0
            && xx >= 0
            && (yy as usize) < h
            && (xx as usize) < w
            && m[[yy as usize, xx as usize]]
    };
    let mut c = 0u8;
    for (bit, (dy, dx)) in [
        (0, 1),
        (-1, 1),
        (-1, 0),
        (-1, -1),
        (0, -1),
        (1, -1),
        (1, 0),
        (1, 1),
    ]
    .iter()
    .enumerate()
    {
        if at(*dy, *dx) {
            c |= 1 << bit;
        }
    }
    c
}

fn build_luts() -> [[bool; 256]; 2] {
    let mut luts = [[false; 256]; 2];
    #[allow(clippy::needless_range_loop)] // n is both the code and the index
    for n in 0..256usize {
        let b = |k: usize| (n >> (k % 8)) & 1 == 1; // b(0) = x1 ... b(7) = x8
        let xh = (0..4)
            .filter(|&i| !b(2 * i) && (b(2 * i + 1) || b(2 * i + 2)))
            .count();
        let n1 = (0..4).filter(|&k| b(2 * k) || b(2 * k + 1)).count();
        let n2 = (0..4).filter(|&k| b(2 * k + 1) || b(2 * k + 2)).count();
        let g12 = xh == 1 && (2..=3).contains(&n1.min(n2));
        let g3 = !((b(1) || b(2) || !b(7)) && b(0));
        let g3p = !((b(5) || b(6) || !b(3)) && b(4));
        luts[0][n] = g12 && g3;
        luts[1][n] = g12 && g3p;
    }
    luts
}

/// Thins a binary map to 1-pixel-wide, 8-connected curves (`bwmorph(bw, 'thin', Inf)`;
/// see the module doc). Work is proportional to the pixels examined: each subiteration
/// only looks at on-pixels with an off 4-neighbour (no other pixel can satisfy G1).
///
/// ```
/// use ndarray::array;
/// // A 3-pixel-thick horizontal bar thins to its middle row.
/// let bar = array![[false, false, false, false, false, false, false],
///                  [false, true,  true,  true,  true,  true,  false],
///                  [false, true,  true,  true,  true,  true,  false],
///                  [false, true,  true,  true,  true,  true,  false],
///                  [false, false, false, false, false, false, false]];
/// let t = vae_vision::classical::thin(bar.view());
/// assert_eq!(t.row(2).iter().filter(|&&b| b).count(), 3);
/// assert!(t.row(1).iter().chain(t.row(3).iter()).all(|&b| !b));
/// ```
pub fn thin(bw: ArrayView2<bool>) -> Array2<bool> {
    let (h, w) = bw.dim();
    // Padded copy: one row/column of zeros all round, so neighbours need no bounds checks.
    let pw = w + 2;
    let mut m = vec![0u8; (h + 2) * pw];
    for ((y, x), &b) in bw.indexed_iter() {
        m[(y + 1) * pw + x + 1] = b as u8;
    }
    thin_padded(&mut m, h, w);
    Array2::from_shape_fn((h, w), |(y, x)| m[(y + 1) * pw + x + 1] == 1)
}

/// Thresholds `values` (row-major `[h, w]`) at `v >= t`, optionally thins, and returns the
/// flat indices `y * w + x` of the on-pixels in row-major order: the benchmark's inner
/// step without intermediate arrays.
pub(crate) fn threshold_thin_list(
    values: &[f64],
    h: usize,
    w: usize,
    t: f64,
    do_thin: bool,
) -> Vec<u32> {
    debug_assert_eq!(values.len(), h * w);
    let pw = w + 2;
    let mut m = vec![0u8; (h + 2) * pw];
    for y in 0..h {
        let src = &values[y * w..(y + 1) * w];
        let dst = &mut m[(y + 1) * pw + 1..(y + 1) * pw + 1 + w];
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = (v >= t) as u8;
        }
    }
    if do_thin {
        thin_padded(&mut m, h, w);
    }
    let mut out = Vec::new();
    for y in 0..h {
        let row = &m[(y + 1) * pw + 1..(y + 1) * pw + 1 + w];
        for (x, &v) in row.iter().enumerate() {
            if v == 1 {
                out.push((y * w + x) as u32);
            }
        }
    }
    out
}

/// The thinning iterations on a zero-padded `(h + 2) x (w + 2)` buffer of 0/1 bytes.
fn thin_padded(m: &mut [u8], h: usize, w: usize) {
    let luts = build_luts();
    let pw = w + 2;
    // Neighbour offsets x1..x8 (E, NE, N, NW, W, SW, S, SE) in the padded buffer.
    let pwi = pw as isize;
    let nb: [isize; 8] = [1, 1 - pwi, -pwi, -pwi - 1, -1, pwi - 1, pwi, pwi + 1];
    let code = |m: &[u8], p: usize| -> usize {
        let mut c = 0usize;
        for (bit, &o) in nb.iter().enumerate() {
            c |= (m[(p as isize + o) as usize] as usize) << bit;
        }
        c
    };
    // Candidates: on-pixels with an off 4-neighbour (only they can satisfy G1).
    let four = [1isize, -1, pwi, -pwi];
    let mut cand: Vec<usize> = Vec::new();
    for y in 1..=h {
        for x in 1..=w {
            let p = y * pw + x;
            if m[p] == 1 && four.iter().any(|&o| m[(p as isize + o) as usize] == 0) {
                cand.push(p);
            }
        }
    }
    let mut in_cand = vec![false; m.len()];
    let mut del: Vec<usize> = Vec::new();
    let mut next: Vec<usize> = Vec::new();
    loop {
        let mut changed = false;
        for lut in &luts {
            del.clear();
            del.extend(
                cand.iter()
                    .copied()
                    .filter(|&p| m[p] == 1 && lut[code(m, p)]),
            );
            if del.is_empty() {
                continue;
            }
            changed = true;
            for &p in &del {
                m[p] = 0;
            }
            // Next candidates: surviving old candidates plus on 4-neighbours of deleted pixels.
            next.clear();
            for &p in cand.iter() {
                if m[p] == 1 && !in_cand[p] {
                    in_cand[p] = true;
                    next.push(p);
                }
            }
            for &p in &del {
                for &o in &four {
                    let q = (p as isize + o) as usize;
                    if m[q] == 1 && !in_cand[q] {
                        in_cand[q] = true;
                        next.push(q);
                    }
                }
            }
            for &p in &next {
                in_cand[p] = false;
            }
            std::mem::swap(&mut cand, &mut next);
        }
        if !changed {
            break;
        }
    }
}

/// The plain full-image version of [`thin`] (every pixel, every subiteration): the spec
/// the fast version is tested against.
pub fn thin_naive(bw: ArrayView2<bool>) -> Array2<bool> {
    let luts = build_luts();
    let mut m = bw.to_owned();
    let (h, w) = m.dim();
    loop {
        let mut changed = false;
        for lut in &luts {
            let mut del = Vec::new();
            for y in 0..h {
                for x in 0..w {
                    if m[[y, x]] && lut[code(&m, y, x) as usize] {
                        del.push((y, x));
                    }
                }
            }
            changed |= !del.is_empty();
            for (y, x) in del {
                m[[y, x]] = false;
            }
        }
        if !changed {
            break;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lut_matches_scikit_image_first_entries() {
        // skimage.morphology._skeletonize.G123_LUT[0:32] (first subiteration).
        let expect = [
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1,
            0, 1, 0,
        ];
        let luts = build_luts();
        for (n, &e) in expect.iter().enumerate() {
            assert_eq!(luts[0][n], e == 1, "code {n}");
        }
    }

    #[test]
    fn fast_equals_naive_on_blobs() {
        // Deterministic pseudo-random blobs: thresholded sum of sines.
        for seed in 0..6u32 {
            let f = seed as f32 * 0.7 + 0.3;
            let bw = Array2::from_shape_fn((37, 41), |(y, x)| {
                ((y as f32 * 0.31 * f).sin()
                    + (x as f32 * 0.23 / f).cos()
                    + (0.11 * (x + y) as f32 * f).sin())
                    > 0.4
            });
            assert_eq!(thin(bw.view()), thin_naive(bw.view()), "seed {seed}");
        }
    }

    #[test]
    fn single_pixels_and_lines_survive() {
        let mut bw = Array2::<bool>::from_elem((5, 5), false);
        bw[[2, 2]] = true;
        assert_eq!(thin(bw.view()), bw);
        let diag = Array2::from_shape_fn((6, 6), |(y, x)| y == x);
        assert_eq!(thin(diag.view()), diag);
    }
}
