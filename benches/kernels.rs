//! Kernel benches: sgemm (the in-run reference) and the forward/backward passes of every
//! layer of the reference VAE at batch 128, at 1 and 2 threads.
//!
//! Run with `cargo bench --bench kernels`. Criterion reports `Throughput::Elements(flops)`,
//! so its "elem/s" column reads as **FLOP/s** (FLOPs = 2 × multiply-adds, counted from the
//! formula, bias ignored). After criterion, a second timing pass writes
//! `$CARGO_TARGET_DIR/vae-bench/kernels.json` (default `target/vae-bench/kernels.json`) with
//! GFLOP/s and the ratios to sgemm 1024³ (`ratio_to_sgemm`) and to sgemm 512³
//! (`ratio_to_sgemm_512`) at the same thread count. That pass runs all kernels
//! round-robin, one iteration each per round, and takes medians, so that every kernel and
//! the reference see the same background load (the machine is shared); the ratio is the
//! median of per-round ratios.
//!
//! Threading policy (see docs/performance.md): rayon is the only thread pool. Layers run
//! fixed groups of images in parallel with single-threaded gemms inside; the sgemm reference
//! at 2 threads splits C into row bands over rayon (`gemm::sgemm_par`). matrixmultiply is
//! built without its `threading` feature, so each gemm call runs on the calling thread.
//!
//! Environment: `VAE_BENCH_QUICK=1` skips criterion and runs only the JSON pass;
//! `VAE_BENCH_THREADS=1,2` picks the thread counts; `VAE_BENCH_FILTER=conv` keeps the kernels
//! whose name contains the text, `VAE_BENCH_FILTER=convT_64_32,convT_32` those that contain
//! any of the comma-separated texts (plus the sgemm references); `VAE_BENCH_SECS=20` sets the
//! JSON pass's duration per thread count. `VAE_BENCH_FILTER=gemmprobe` / `im2colprobe`
//! time the bare gemm shapes / the im2col and col2im passes the conv layers run (diagnostics
//! used while tuning, see docs/performance.md). `VAE_BENCH_MEMPROBE=1` adds the memory
//! floors of conv-transpose 32→1 (`..._memread`, `..._memrw`, see `memory_floors`) just
//! before its forward, timed in the same rounds.
//!
//! Besides each layer alone (its input a fresh copy), conv-transpose 32→1 is also timed in
//! its place at the end of the reference decoder (`convT_32_1_in_decoder_*`, see
//! `decoder_tail_kernels`): the one layer whose speed is set by memory traffic, so by where
//! its input sits.

use criterion::{BenchmarkId, Criterion, Throughput};
use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::time::{Duration, Instant};
use vae_tensor::gemm::{sgemm_par, MatMut, MatRef};
use vae_tensor::layers::activation::ReLU;
use vae_tensor::layers::conv2d::{Conv2d, Conv2dConfig};
use vae_tensor::layers::conv_transpose2d::{ConvTranspose2d, ConvTranspose2dConfig};
use vae_tensor::{Layer, Mode};

const BATCH: usize = 128;

fn random(shape: &[usize], rng: &mut StdRng) -> ArrayD<f32> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.random_range(-1.0f32..1.0))
}

/// One timed operation: a name, a shape label, its FLOPs, and a closure that runs it once
/// and returns the time of the part that counts (setup such as cloning inputs excluded).
struct Kernel {
    name: String,
    shape: String,
    flops: u64,
    run: Box<dyn FnMut() -> Duration + Send>,
}

fn sgemm_kernel(n: usize, rng: &mut StdRng) -> Kernel {
    let a: Vec<f32> = (0..n * n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let b: Vec<f32> = (0..n * n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut c = vec![0.0f32; n * n];
    Kernel {
        name: format!("sgemm_{n}"),
        shape: format!("[{n}x{n}]·[{n}x{n}]"),
        flops: 2 * (n as u64).pow(3),
        run: Box::new(move || {
            let t = Instant::now();
            sgemm_par(
                1.0,
                MatRef::row_major(&a, n, n, n),
                MatRef::row_major(&b, n, n, n),
                0.0,
                MatMut::row_major(&mut c, n, n, n),
            );
            t.elapsed()
        }),
    }
}

/// Dense 36864 -> 128 at batch 128 as plain gemms (the Dense layer is written on main; this
/// measures the three products it will run).
fn dense_kernels(rng: &mut StdRng) -> Vec<Kernel> {
    let (n, i, o) = (BATCH, 36864, 128);
    let flops = 2 * (n * i * o) as u64;
    let x: Vec<f32> = (0..n * i).map(|_| rng.random_range(-1.0..1.0)).collect();
    let w: Vec<f32> = (0..o * i).map(|_| rng.random_range(-1.0..1.0)).collect();
    let dy: Vec<f32> = (0..n * o).map(|_| rng.random_range(-1.0..1.0)).collect();
    let (x2, w2, dy2) = (x.clone(), w.clone(), dy.clone());
    let mut y = vec![0.0f32; n * o];
    let mut dw = vec![0.0f32; o * i];
    let mut dx = vec![0.0f32; n * i];
    vec![
        Kernel {
            name: "dense_36864_128_forward".into(),
            shape: format!("y[{n}x{o}] = x[{n}x{i}]·Wᵀ[{i}x{o}]"),
            flops,
            run: Box::new(move || {
                let t = Instant::now();
                let wt = MatRef::row_major(&w, o, i, i).t();
                sgemm_par(
                    1.0,
                    MatRef::row_major(&x, n, i, i),
                    wt,
                    0.0,
                    MatMut::row_major(&mut y, n, o, o),
                );
                t.elapsed()
            }),
        },
        Kernel {
            name: "dense_36864_128_backward".into(),
            shape: format!("dW[{o}x{i}] += dyᵀ·x, dx[{n}x{i}] = dy·W"),
            flops: 2 * flops,
            run: Box::new(move || {
                let t = Instant::now();
                let dyt = MatRef::row_major(&dy2, n, o, o).t();
                sgemm_par(
                    1.0,
                    dyt,
                    MatRef::row_major(&x2, n, i, i),
                    1.0,
                    MatMut::row_major(&mut dw, o, i, i),
                );
                let dym = MatRef::row_major(&dy2, n, o, o);
                sgemm_par(
                    1.0,
                    dym,
                    MatRef::row_major(&w2, o, i, i),
                    0.0,
                    MatMut::row_major(&mut dx, n, i, i),
                );
                t.elapsed()
            }),
        },
    ]
}

/// Forward and backward kernels of one layer on a random input of shape `x_shape`.
fn layer_kernels<L: Layer + 'static>(
    name: &str,
    mut fwd_layer: L,
    mut bwd_layer: L,
    x_shape: &[usize],
    macs: u64,
    rng: &mut StdRng,
) -> Vec<Kernel> {
    let x = random(x_shape, rng);
    let y_shape = fwd_layer.output_shape(x_shape).expect("valid bench shape");
    let dy = random(&y_shape, rng);
    let shape = format!("{:?} -> {:?}", x_shape, y_shape);
    let x2 = x.clone();
    vec![
        Kernel {
            name: format!("{name}_forward"),
            shape: shape.clone(),
            flops: 2 * macs,
            run: Box::new(move || {
                let xi = x.clone();
                let t = Instant::now();
                let y = fwd_layer.forward(xi, Mode::Train).expect("forward");
                let d = t.elapsed();
                // Hand the output back as "dy" so the layer can recycle its buffer, as in training.
                bwd_dummy(&mut fwd_layer, y);
                d
            }),
        },
        Kernel {
            name: format!("{name}_backward"),
            shape,
            flops: 4 * macs,
            run: Box::new(move || {
                bwd_layer.forward(x2.clone(), Mode::Train).expect("forward");
                let dyi = dy.clone();
                let t = Instant::now();
                let dx = bwd_layer.backward(dyi).expect("backward");
                let d = t.elapsed();
                drop(dx);
                d
            }),
        },
    ]
}

/// Runs the (untimed) backward after a timed forward so the next forward sees the steady
/// state of a training loop.
fn bwd_dummy<L: Layer>(layer: &mut L, y: ArrayD<f32>) {
    layer.backward(y).expect("backward");
}

/// convT 32→1 in its place in the reference decoder: each run goes through
/// convT 64→32 (stride 2) → ReLU → convT 32→1 forward, then the backward of all three, as in
/// a training step, and times only convT 32→1's forward (`{name}_forward`) or backward
/// (`{name}_backward`). Its input is then the buffer that convT 64→32 and the ReLU just
/// wrote, as in training, not a fresh copy made by one thread as in [`layer_kernels`]; the
/// two rows differ by where that input sits in the cache hierarchy (see the `kern7` round in
/// docs/performance.md).
fn decoder_tail_kernels(rng: &mut StdRng) -> Vec<Kernel> {
    let up = ConvTranspose2dConfig::new(64, 32, 3)
        .stride(2)
        .padding(1)
        .output_padding(1);
    let last = ConvTranspose2dConfig::new(32, 1, 3).padding(1);
    let h = random(&[BATCH, 64, 14, 14], rng);
    let dy = random(&[BATCH, 1, 28, 28], rng);
    let macs = (BATCH * 32 * 28 * 28 * 9) as u64;
    let shape = format!("{:?} -> {:?}", [BATCH, 32, 28, 28], [BATCH, 1, 28, 28]);
    let mut make = |part: &'static str| {
        let mut a = ConvTranspose2d::new(up, rng).expect("cfg");
        let mut relu = ReLU::new();
        let mut b = ConvTranspose2d::new(last, rng).expect("cfg");
        let (h, dy) = (h.clone(), dy.clone());
        Kernel {
            name: format!("convT_32_1_in_decoder_{part}"),
            shape: shape.clone(),
            flops: if part == "forward" { 2 } else { 4 } * macs,
            run: Box::new(move || {
                let x = relu
                    .forward(
                        a.forward(h.clone(), Mode::Train).expect("forward"),
                        Mode::Train,
                    )
                    .expect("forward");
                let t = Instant::now();
                let y = b.forward(x, Mode::Train).expect("forward");
                let fwd = t.elapsed();
                drop(y);
                let g = dy.clone();
                let t = Instant::now();
                let dx = b.backward(g).expect("backward");
                let bwd = t.elapsed();
                let dh = a
                    .backward(relu.backward(dx).expect("backward"))
                    .expect("backward");
                std::hint::black_box(&dh);
                if part == "forward" {
                    fwd
                } else {
                    bwd
                }
            }),
        }
    };
    vec![make("forward"), make("backward")]
}

/// `reps` independent `[m, k]·[k, n]` products, single-threaded each, spread over rayon like
/// the layers' image groups: the gemm shapes the conv layers issue, to see what the gemm
/// alone reaches on them (only with `VAE_BENCH_FILTER=gemmprobe`).
fn probe_kernel(
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
    reps: usize,
    rng: &mut StdRng,
) -> Kernel {
    use rayon::prelude::*;
    let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut c = vec![0.0f32; reps * m * n];
    Kernel {
        name: format!(
            "probe_{m}x{k}x{n}{}{}",
            if ta { "_ta" } else { "" },
            if tb { "_tb" } else { "" }
        ),
        shape: format!("{reps} x [{m}x{k}]·[{k}x{n}]"),
        flops: 2 * (reps * m * k * n) as u64,
        run: Box::new(move || {
            let t = Instant::now();
            c.par_chunks_mut(m * n).for_each(|cc| {
                let am = if ta {
                    MatRef::row_major(&a, k, m, m).t()
                } else {
                    MatRef::row_major(&a, m, k, k)
                };
                let bm = if tb {
                    MatRef::row_major(&b, n, k, k).t()
                } else {
                    MatRef::row_major(&b, k, n, n)
                };
                vae_tensor::gemm::sgemm(1.0, am, bm, 0.0, MatMut::row_major(cc, m, n, n));
            });
            t.elapsed()
        }),
    }
}

/// im2col (or col2im) of `n` images through the phase planes, for one conv geometry;
/// "flops" here counts column entries so GFLOP/s reads as G entries/s.
fn probe_im2col(
    name: &str,
    x_shape: [usize; 4],
    c_out: usize,
    hyper: vae_tensor::shape::ConvHyper,
    adjoint: bool,
    rng: &mut StdRng,
) -> Kernel {
    use vae_tensor::im2col::PhaseIm2col;
    use vae_tensor::shape::Conv2dGeom;
    let g = Conv2dGeom::new("probe", &x_shape, c_out, [3, 3], hyper).expect("geometry");
    let ix = PhaseIm2col::new(&g);
    let p_ext = ix.ext_plane(&g);
    let mut x: Vec<f32> = (0..x_shape.iter().product::<usize>())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let mut col = vec![0.0f32; g.col_rows() * p_ext];
    let mut padded = Vec::new();
    Kernel {
        name: format!("probe_{name}"),
        shape: format!("{x_shape:?}"),
        flops: (g.n * g.col_rows() * g.out_plane()) as u64,
        run: Box::new(move || {
            let t = Instant::now();
            for xi in x.chunks_mut(g.in_image()) {
                if adjoint {
                    ix.col2im(&g, &col, p_ext, xi, &mut padded);
                } else {
                    ix.im2col(&g, xi, &mut col, p_ext, &mut padded);
                }
            }
            t.elapsed()
        }),
    }
}

/// Memory floors of a memory-bound layer, timed in the same state as its own kernels (only
/// with `VAE_BENCH_MEMPROBE=1`; placed just before the layer's forward): `{name}_memread`
/// reads a fresh copy of an input-sized tensor once (what the forward must at least do),
/// `{name}_memrw` reads it and rewrites it in place (what an in-place backward must at
/// least do), both image by image over rayon like the layers. They carry the forward's and
/// the backward's FLOP counts, so their "GFLOP/s" and ratios are the ceilings those passes
/// would reach if they took exactly as long as their memory traffic.
fn memory_floors(name: &str, x_shape: &[usize], macs: u64) -> Vec<Kernel> {
    let x = random(x_shape, &mut StdRng::seed_from_u64(7));
    let img: usize = x_shape[1..].iter().product();
    let shape = format!("{x_shape:?}");
    let x2 = x.clone();
    vec![
        Kernel {
            name: format!("{name}_memread"),
            shape: shape.clone(),
            flops: 2 * macs,
            run: Box::new(move || {
                let xi = x.clone();
                let t = Instant::now();
                let s: f32 = xi
                    .as_slice()
                    .expect("standard layout")
                    .par_chunks(img)
                    .map(|c| {
                        let mut acc = [0f32; 16];
                        for v in c.chunks_exact(16) {
                            for (a, e) in acc.iter_mut().zip(v) {
                                *a += e;
                            }
                        }
                        acc.iter().sum::<f32>()
                    })
                    .sum();
                let d = t.elapsed();
                std::hint::black_box(s);
                d
            }),
        },
        Kernel {
            name: format!("{name}_memrw"),
            shape,
            flops: 4 * macs,
            run: Box::new(move || {
                let mut xi = x2.clone();
                let t = Instant::now();
                xi.as_slice_mut()
                    .expect("standard layout")
                    .par_chunks_mut(img)
                    .for_each(|c| c.iter_mut().for_each(|e| *e = 0.5 * *e + 0.25));
                let d = t.elapsed();
                std::hint::black_box(&xi);
                d
            }),
        },
    ]
}

fn all_kernels(rng: &mut StdRng) -> Vec<Kernel> {
    if std::env::var("VAE_BENCH_FILTER").is_ok_and(|f| f == "im2colprobe") {
        use vae_tensor::shape::ConvHyper;
        let s2 = ConvHyper {
            stride: 2,
            pad: 1,
            dilation: 1,
        };
        return vec![
            sgemm_kernel(1024, rng),
            probe_im2col("im2col_32x28_s2", [128, 32, 28, 28], 64, s2, false, rng),
            probe_im2col("col2im_32x28_s2", [128, 32, 28, 28], 64, s2, true, rng),
            probe_im2col("im2col_64x14_s2", [128, 64, 14, 14], 64, s2, false, rng),
            probe_im2col("col2im_64x14_s2", [128, 64, 14, 14], 64, s2, true, rng),
        ];
    }
    if std::env::var("VAE_BENCH_FILTER").is_ok_and(|f| f.contains("gemmprobe")) {
        return vec![
            sgemm_kernel(256, rng),
            sgemm_kernel(512, rng),
            sgemm_kernel(1024, rng),
            probe_kernel(64, 288, 576, false, false, 128, rng),
            probe_kernel(64, 576, 288, false, true, 128, rng),
            probe_kernel(288, 64, 576, true, false, 128, rng),
            probe_kernel(576, 64, 539, true, false, 12, rng),
            probe_kernel(64, 539, 576, false, true, 12, rng),
            probe_kernel(256, 256, 256, false, false, 64, rng),
        ];
    }
    let mut ks = vec![
        sgemm_kernel(256, rng),
        sgemm_kernel(512, rng),
        sgemm_kernel(1024, rng),
    ];
    let convs = [
        ("conv2d_1_32_28", 1, 32, 28),
        ("conv2d_32_64_26", 32, 64, 26),
    ];
    for (name, ci, co, hw) in convs {
        let cfg = Conv2dConfig::new(ci, co, 3);
        let macs = (BATCH * co * (hw - 2) * (hw - 2) * ci * 9) as u64;
        let (a, b) = (
            Conv2d::new(cfg, rng).expect("cfg"),
            Conv2d::new(cfg, rng).expect("cfg"),
        );
        ks.extend(layer_kernels(name, a, b, &[BATCH, ci, hw, hw], macs, rng));
    }
    ks.extend(dense_kernels(rng));
    let convts = [
        ("convT_64_64_7_14", 64, 64, 7, 2, 1),
        ("convT_64_32_14_28", 64, 32, 14, 2, 1),
        ("convT_32_1_28_28", 32, 1, 28, 1, 0),
    ];
    for (name, ci, co, hw, s, op) in convts {
        let cfg = ConvTranspose2dConfig::new(ci, co, 3)
            .stride(s)
            .padding(1)
            .output_padding(op);
        let macs = (BATCH * ci * hw * hw * co * 9) as u64;
        let a = ConvTranspose2d::new(cfg, rng).expect("cfg");
        let b = ConvTranspose2d::new(cfg, rng).expect("cfg");
        if co == 1 && std::env::var_os("VAE_BENCH_MEMPROBE").is_some() {
            ks.extend(memory_floors(name, &[BATCH, ci, hw, hw], macs));
        }
        ks.extend(layer_kernels(name, a, b, &[BATCH, ci, hw, hw], macs, rng));
    }
    ks.extend(decoder_tail_kernels(rng));
    ks
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

fn criterion_pass(c: &mut Criterion, threads: &[usize]) {
    for &t in threads {
        let pool = pool(t);
        let mut rng = StdRng::seed_from_u64(1);
        let mut group = c.benchmark_group(format!("kernels_{t}thr"));
        for mut k in all_kernels(&mut rng) {
            group.throughput(Throughput::Elements(k.flops));
            group.bench_function(BenchmarkId::new(&k.name, &k.shape), |b| {
                b.iter_custom(|iters| pool.install(|| (0..iters).map(|_| (k.run)()).sum()))
            });
        }
        group.finish();
    }
}

struct Record {
    kernel: String,
    shape: String,
    threads: usize,
    flops: u64,
    median_ms: f64,
    gflops: f64,
    /// Median over rounds of (this kernel's GFLOP/s / sgemm_1024's GFLOP/s in the same round).
    paired_ratio: f64,
    /// The same against sgemm_512 (NaN when it was not run).
    paired_ratio_512: f64,
}

/// Times every kernel round-robin (one iteration of each per round) so that all kernels and
/// the sgemm reference see the same background load, which on a shared machine matters more
/// than anything else. Stops after at least 5 rounds and `VAE_BENCH_SECS` (default 20) s.
fn json_pass(threads: &[usize], filter: &str) -> Vec<Record> {
    let secs: f64 = std::env::var("VAE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20.0);
    let mut out = Vec::new();
    for &t in threads {
        let pool = pool(t);
        let mut rng = StdRng::seed_from_u64(1);
        let mut ks: Vec<Kernel> = all_kernels(&mut rng)
            .into_iter()
            .filter(|k| {
                filter.contains("probe")
                    || k.name.starts_with("sgemm")
                    || filter.split(',').any(|f| k.name.contains(f))
            })
            .collect();
        let reference = ks
            .iter()
            .position(|k| k.name == "sgemm_1024")
            .expect("reference kernel");
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); ks.len()];
        pool.install(|| {
            for k in ks.iter_mut() {
                (k.run)();
            }
            let start = Instant::now();
            while times[0].len() < 5 || start.elapsed().as_secs_f64() < secs {
                for (k, ts) in ks.iter_mut().zip(times.iter_mut()) {
                    ts.push((k.run)().as_secs_f64());
                }
            }
        });
        let median = |v: &[f64]| {
            let mut s = v.to_vec();
            s.sort_by(|a, b| a.total_cmp(b));
            s[s.len() / 2]
        };
        // Per-kernel series, plus forward + backward of each layer summed round by round.
        let mut series: Vec<(String, String, u64, Vec<f64>)> = ks
            .iter()
            .zip(&times)
            .map(|(k, ts)| (k.name.clone(), k.shape.clone(), k.flops, ts.clone()))
            .collect();
        for (f, ft) in ks.iter().zip(&times) {
            let Some(base) = f.name.strip_suffix("_forward") else {
                continue;
            };
            if let Some((b, bt)) = ks
                .iter()
                .zip(&times)
                .find(|(b, _)| b.name == format!("{base}_backward"))
            {
                let sum = ft.iter().zip(bt).map(|(a, b)| a + b).collect();
                series.push((
                    format!("{base}_fwd+bwd"),
                    f.shape.clone(),
                    f.flops + b.flops,
                    sum,
                ));
            }
        }
        let ref_flops = ks[reference].flops as f64;
        let ref_times = times[reference].clone();
        let ref512 = ks.iter().position(|k| k.name == "sgemm_512");
        let paired = |flops: u64, ts: &[f64], rf: f64, rt: &[f64]| {
            let ratios: Vec<f64> = ts
                .iter()
                .zip(rt)
                .map(|(&tk, &tr)| (flops as f64 / tk) / (rf / tr))
                .collect();
            median(&ratios)
        };
        for (name, shape, flops, ts) in series {
            let m = median(&ts);
            let r = Record {
                kernel: name,
                shape,
                threads: t,
                flops,
                median_ms: m * 1e3,
                gflops: flops as f64 / m / 1e9,
                paired_ratio: paired(flops, &ts, ref_flops, &ref_times),
                paired_ratio_512: ref512.map_or(f64::NAN, |i| {
                    paired(flops, &ts, ks[i].flops as f64, &times[i])
                }),
            };
            eprintln!(
                "{:>2} thr  {:<28} {:>9.3} ms  {:>7.1} GFLOP/s  {:>5.2} of sgemm_1024  {:>5.2} of sgemm_512 ({} rounds)",
                t,
                r.kernel,
                r.median_ms,
                r.gflops,
                r.paired_ratio,
                r.paired_ratio_512,
                ts.len()
            );
            out.push(r);
        }
    }
    out
}

fn lscpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn write_json(records: &[Record]) -> std::io::Result<std::path::PathBuf> {
    use serde_json::json;
    let sgemm_ref = |t: usize, name: &str| {
        records
            .iter()
            .find(|r| r.threads == t && r.kernel == name)
            .map_or(f64::NAN, |r| r.gflops)
    };
    let rows: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            json!({
                "kernel": r.kernel, "shape": r.shape, "threads": r.threads, "flops": r.flops,
                "median_ms": r.median_ms, "gflops": r.gflops,
                "sgemm_ref_gflops": sgemm_ref(r.threads, "sgemm_1024"), "ratio_to_sgemm": r.paired_ratio,
                "sgemm_512_gflops": sgemm_ref(r.threads, "sgemm_512"),
                "ratio_to_sgemm_512": r.paired_ratio_512,
            })
        })
        .collect();
    let doc = json!({
        "command": "cargo bench --bench kernels",
        "cpu": lscpu_model(),
        "logical_cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "flops_convention": "2 x multiply-adds from the layer formula (bias ignored); backward = dx + dW = 2 x forward",
        "sgemm_reference": "sgemm_1024 at the same thread count (gemm::sgemm_par over rayon); ratio_to_sgemm = median over rounds of (kernel GFLOP/s / sgemm_1024 GFLOP/s in the same round); ratio_to_sgemm_512 the same against sgemm_512",
        "threading": "rayon pool of `threads` workers; matrixmultiply built without its threading feature (single-threaded gemm calls)",
        "timing": "round-robin over all kernels (one iteration each per round), >= 5 rounds and >= VAE_BENCH_SECS (default 20) s per thread count; median per kernel",
        "records": rows,
    });
    let dir = std::path::PathBuf::from(
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()),
    )
    .join("vae-bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("kernels.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&doc).expect("json") + "\n",
    )?;
    Ok(path)
}

fn main() {
    let threads: Vec<usize> = std::env::var("VAE_BENCH_THREADS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let bench_mode = std::env::args().any(|a| a == "--bench");
    if std::env::var_os("VAE_BENCH_QUICK").is_none() {
        let mut c = Criterion::default()
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .configure_from_args();
        criterion_pass(&mut c, &threads);
        c.final_summary();
    }
    if bench_mode {
        let filter = std::env::var("VAE_BENCH_FILTER").unwrap_or_default();
        let records = json_pass(&threads, &filter);
        match write_json(&records) {
            Ok(p) => eprintln!("wrote {}", p.display()),
            Err(e) => eprintln!("could not write kernels.json: {e}"),
        }
    }
}
