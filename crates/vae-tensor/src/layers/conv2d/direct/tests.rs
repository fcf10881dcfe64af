//! The direct kernels (through the public batched entry points of `kernel`, which pick them
//! for one input channel) against the specification: naive im2col/col2im and a naive gemm,
//! on awkward shapes, batch 3, with NaN-prefilled outputs.

use super::applies;
use crate::gemm::{gemm_naive, MatMut, MatRef};
use crate::im2col::{col2im_naive, im2col_naive};
use crate::layers::conv2d::kernel::{
    conv_adjoint, conv_adjoint_backward, conv_backward, conv_forward, ConvScratch,
};
use crate::shape::{Conv2dGeom, ConvHyper};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// (h_in, w_in, c_out, [k_h, k_w], stride, pad, dilation), all with c_in = 1, batch 3.
type Case = (usize, usize, usize, [usize; 2], usize, usize, usize);
const CASES: &[Case] = &[
    (28, 28, 32, [3, 3], 1, 0, 1), // conv 1->32 of the reference VAE (w_out 26: 16 + 10)
    (28, 28, 32, [3, 3], 1, 1, 1), // convT 32->1 of the reference VAE (its adjoint)
    (9, 7, 5, [3, 3], 2, 1, 1),    // stride 2, odd sizes
    (13, 37, 3, [3, 3], 1, 2, 2),  // dilation 2, padding 2, two-and-a-bit chunks per row
    (11, 17, 4, [3, 2], 2, 1, 2),  // non-square kernel, stride 2, dilation 2
    (6, 5, 2, [1, 1], 1, 0, 1),    // one tap
    (8, 33, 7, [2, 3], 3, 2, 1),   // stride 3, padding 2
    (5, 5, 3, [3, 3], 1, 1, 1),    // map narrower than one vector
];

fn geom(c: &Case) -> Conv2dGeom {
    let (h, w, c_out, k, stride, pad, dilation) = *c;
    Conv2dGeom::new(
        "direct",
        &[3, 1, h, w],
        c_out,
        k,
        ConvHyper {
            stride,
            pad,
            dilation,
        },
    )
    .expect("valid case")
}

fn random(len: usize, rng: &mut StdRng) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
            "{what}[{i}]: {a} vs {b}"
        );
    }
}

/// The naive im2col matrix `[K, P]` of one single-channel image.
fn col_of(g: &Conv2dGeom, x: &[f32]) -> Vec<f32> {
    let mut col = vec![f32::NAN; g.col_rows() * g.out_plane()];
    im2col_naive(g, x, &mut col, g.out_plane());
    col
}

/// `W · im2col(x) (+ bias)` per image, `[n, c_out, P]`.
fn w_col_naive(g: &Conv2dGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (k, p) = (g.col_rows(), g.out_plane());
    let mut y = vec![f32::NAN; g.n * g.c_out * p];
    for (xi, yi) in x.chunks(g.in_image()).zip(y.chunks_mut(g.out_image())) {
        let col = col_of(g, xi);
        gemm_naive(
            1.0,
            MatRef::row_major(w, g.c_out, k, k),
            MatRef::row_major(&col, k, p, p),
            0.0,
            MatMut::row_major(yi, g.c_out, p, p),
        );
        if let Some(b) = bias {
            for (ch, v) in yi.chunks_mut(p).enumerate() {
                v.iter_mut().for_each(|e| *e += b[ch]);
            }
        }
    }
    y
}

/// `col2im(Wᵀ · d) (+ bias)` per image, `[n, 1, h_in, w_in]`.
fn col2im_wt_naive(g: &Conv2dGeom, d: &[f32], w: &[f32], bias: Option<f32>) -> Vec<f32> {
    let (k, p) = (g.col_rows(), g.out_plane());
    let mut x = vec![0.0; g.n * g.in_image()];
    for (di, xi) in d.chunks(g.out_image()).zip(x.chunks_mut(g.in_image())) {
        let mut col = vec![f32::NAN; k * p];
        gemm_naive(
            1.0,
            MatRef::row_major(w, g.c_out, k, k).t(),
            MatRef::row_major(di, g.c_out, p, p),
            0.0,
            MatMut::row_major(&mut col, k, p, p),
        );
        col2im_naive(g, &col, p, xi);
        if let Some(b) = bias {
            xi.iter_mut().for_each(|e| *e += b);
        }
    }
    x
}

/// `dw0 + Σ_n d_n · im2col(x_n)ᵀ`.
fn dw_naive(g: &Conv2dGeom, x: &[f32], d: &[f32], dw0: &[f32]) -> Vec<f32> {
    let (k, p) = (g.col_rows(), g.out_plane());
    let mut dw = dw0.to_vec();
    for (xi, di) in x.chunks(g.in_image()).zip(d.chunks(g.out_image())) {
        let col = col_of(g, xi);
        gemm_naive(
            1.0,
            MatRef::row_major(di, g.c_out, p, p),
            MatRef::row_major(&col, k, p, p).t(),
            1.0,
            MatMut::row_major(&mut dw, g.c_out, k, k),
        );
    }
    dw
}

fn channel_sums(imgs: &[f32], c: usize, plane: usize, start: &[f32]) -> Vec<f32> {
    let mut s: Vec<f64> = start.iter().map(|&v| v as f64).collect();
    for (i, v) in imgs.chunks(plane).enumerate() {
        s[i % c] += v.iter().map(|&e| e as f64).sum::<f64>();
    }
    s.into_iter().map(|v| v as f32).collect()
}

#[test]
fn every_case_takes_the_direct_path() {
    assert!(CASES.iter().all(|c| applies(&geom(c))));
}

#[test]
fn forward_and_adjoint_match_the_naive_twins() {
    let mut rng = StdRng::seed_from_u64(21);
    for case in CASES {
        let g = geom(case);
        let w = random(g.c_out * g.col_rows(), &mut rng);
        let x = random(g.n * g.in_image(), &mut rng);
        let y = random(g.n * g.out_image(), &mut rng);
        for with_bias in [false, true] {
            let bias = random(g.c_out, &mut rng);
            let bias = with_bias.then_some(&bias[..]);
            let mut scratch = ConvScratch::default();
            // Twice, so the second call runs on recycled (dirty) scratch.
            for _ in 0..2 {
                let mut got = vec![f32::NAN; y.len()];
                conv_forward(&g, &x, &w, bias, &mut got, &mut scratch);
                close(
                    &got,
                    &w_col_naive(&g, &x, &w, bias),
                    &format!("{case:?} fwd"),
                );

                let b1 = bias.map(|b| &b[..1]);
                let mut got = vec![f32::NAN; x.len()];
                conv_adjoint(&g, &y, &w, b1, &mut got, &mut scratch);
                let want = col2im_wt_naive(&g, &y, &w, b1.map(|b| b[0]));
                close(&got, &want, &format!("{case:?} adjoint"));
            }
        }
    }
}

#[test]
fn backward_passes_match_the_naive_twins() {
    let mut rng = StdRng::seed_from_u64(22);
    for case in CASES {
        let g = geom(case);
        let w = random(g.c_out * g.col_rows(), &mut rng);
        let x = random(g.n * g.in_image(), &mut rng);
        let dy = random(g.n * g.out_image(), &mut rng);
        let dw0 = random(w.len(), &mut rng);
        let mut scratch = ConvScratch::default();

        // Conv2d backward: x_dx holds x on entry, dL/dx on return.
        let db0 = random(g.c_out, &mut rng);
        let (mut x_dx, mut dw, mut db) = (x.clone(), dw0.clone(), db0.clone());
        conv_backward(&g, &mut x_dx, &w, &dy, &mut dw, Some(&mut db), &mut scratch);
        close(
            &x_dx,
            &col2im_wt_naive(&g, &dy, &w, None),
            &format!("{case:?} dx"),
        );
        close(&dw, &dw_naive(&g, &x, &dy, &dw0), &format!("{case:?} dw"));
        let want_db = channel_sums(&dy, g.c_out, g.out_plane(), &db0);
        close(&db, &want_db, &format!("{case:?} db"));

        // ConvTranspose2d backward: y_dy holds y (= dy here) on entry, W · im2col(dx) on
        // return; the gradient w.r.t. the transposed conv's output is `x`.
        let db0 = random(1, &mut rng);
        let (mut y_dy, mut dw, mut db) = (dy.clone(), dw0.clone(), db0.clone());
        conv_adjoint_backward(&g, &mut y_dy, &w, &x, &mut dw, Some(&mut db), &mut scratch);
        close(
            &y_dy,
            &w_col_naive(&g, &x, &w, None),
            &format!("{case:?} dy"),
        );
        close(
            &dw,
            &dw_naive(&g, &x, &dy, &dw0),
            &format!("{case:?} adj dw"),
        );
        let want_db = channel_sums(&x, 1, g.in_plane(), &db0);
        close(&db, &want_db, &format!("{case:?} adj db"));

        // Without a bias gradient, the other outputs are the same.
        let (mut y_dy2, mut dw2) = (dy.clone(), dw0.clone());
        conv_adjoint_backward(&g, &mut y_dy2, &w, &x, &mut dw2, None, &mut scratch);
        assert_eq!(y_dy2, y_dy, "{case:?}");
        assert_eq!(dw2, dw, "{case:?}");
    }
}
