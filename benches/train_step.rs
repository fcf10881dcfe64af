//! Training-step and inference throughput of the `seed` preset (images/s).
//!
//! Two parts:
//! 1. The protocol of `../shared/bench/torch_vae.py`, so the numbers compare with PyTorch:
//!    a fresh model, Adam lr 1e-3, BCE-with-logits + KL with fresh noise every step, 20
//!    warm-up steps, then 200 steps timed in chunks of 20; the median chunk's images/s is
//!    reported (min and max beside it). Inference = encode (mean) + decode + sigmoid at batch
//!    256, 60 calls in chunks of 10. Each is run with 1 and 2 threads (a rayon `ThreadPool`
//!    installed around the work; set `MATMUL_NUM_THREADS=1` so matrixmultiply's own pool
//!    does not add threads). Results go to `target/vae-bench/train.json`.
//! 2. A criterion group `train_step` (throughput in elements = images, so criterion's
//!    "elem/s" reads as images/s) for regression tracking.
//!
//! Data: uniform random pixels (speed does not depend on the values). `VAE_BENCH_STEPS`
//! and `VAE_BENCH_WARMUP` change the number of timed and warm-up steps (defaults 200 and 20,
//! as the PyTorch script); `VAE_BENCH_CRITERION=1` also runs the criterion group.
use criterion::{criterion_group, Criterion, Throughput};
use ndarray::Array4;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;
use vae_core::{ImageSource, Preset, Vae, VaeConfig};
use vae_tensor::optim::{Adam, AdamConfig, Optimizer};
use vae_tensor::zero_grad;

fn seed_vae() -> Vae {
    let cfg = VaeConfig {
        preset: Preset::Seed,
        latent: 2,
        ..VaeConfig::default()
    };
    Vae::new(cfg, &mut StdRng::seed_from_u64(0)).expect("seed preset builds")
}

/// One training step: zero grads, forward, backward, Adam.
struct Step {
    vae: Vae,
    opt: Adam,
    rng: StdRng,
}

impl Step {
    fn new() -> Self {
        Step {
            vae: seed_vae(),
            opt: Adam::new(AdamConfig::adam(1e-3)),
            rng: StdRng::seed_from_u64(1),
        }
    }
    fn run(&mut self, x: &Array4<f32>) -> f64 {
        zero_grad(&mut self.vae);
        let t = self
            .vae
            .train_step(x, 1.0, &mut self.rng)
            .expect("train step");
        self.opt.step(&mut self.vae).expect("adam");
        t.loss()
    }
}

/// This process's user + system CPU seconds from `/proc/self/stat` (`None` elsewhere).
/// The machine is shared: images per CPU-second is less disturbed by other jobs than
/// images per wall-clock second.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Images/s of `f` per chunk of `chunk` calls over `calls` calls (sorted ascending).
fn timed_chunks(mut f: impl FnMut(), calls: usize, chunk: usize, batch: usize) -> Vec<f64> {
    let mut rates = Vec::new();
    let mut done = 0;
    while done < calls {
        let k = chunk.min(calls - done);
        let t = Instant::now();
        for _ in 0..k {
            f();
        }
        rates.push((k * batch) as f64 / t.elapsed().as_secs_f64());
        done += k;
    }
    rates.sort_by(f64::total_cmp);
    rates
}

/// Times `f` (`calls` calls in chunks of `chunk`), prints the CSV row and returns it as JSON.
fn measure(
    mode: &str,
    threads: usize,
    batch: usize,
    calls: usize,
    chunk: usize,
    f: impl FnMut(),
) -> serde_json::Value {
    let c0 = cpu_seconds();
    let r = timed_chunks(f, calls, chunk, batch);
    let per_cpu_s = cpu_seconds()
        .zip(c0)
        .map(|(b, a)| (calls * batch) as f64 / (b - a).max(0.01));
    let (med, lo, hi) = (r[r.len() / 2], r[0], r[r.len() - 1]);
    let cpu = per_cpu_s.map(|v| format!("{v:.0}")).unwrap_or_default();
    println!(
        "vae-rs,{mode},{threads},{batch},{med:.0},{lo:.0},{hi:.0},{},random,{cpu}",
        r.len()
    );
    serde_json::json!({"mode": mode, "threads": threads, "batch": batch, "median_images_per_sec": med,
        "min": lo, "max": hi, "images_per_cpu_second": per_cpu_s})
}

fn protocol() -> serde_json::Value {
    let mut rng = StdRng::seed_from_u64(0);
    let x_all = Array4::from_shape_simple_fn((1024, 1, 28, 28), || rng.random::<f32>());
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let (steps, warmup) = (env("VAE_BENCH_STEPS", 200), env("VAE_BENCH_WARMUP", 20));
    let mut rows = Vec::new();
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        pool.install(|| {
            for batch in [32usize, 128] {
                let mut step = Step::new();
                let mut pos = 0;
                let mut next = || {
                    pos = if pos + 2 * batch > x_all.dim().0 {
                        0
                    } else {
                        pos + batch
                    };
                    x_all.batch(&(pos..pos + batch).collect::<Vec<_>>())
                };
                for _ in 0..warmup {
                    step.run(&next());
                }
                rows.push(measure("train", threads, batch, steps, 20, || {
                    step.run(&next());
                }));
            }
            let mut vae = seed_vae();
            let x = x_all.batch(&(0..256).collect::<Vec<_>>());
            let mut infer = || {
                let (mu, _) = vae.encode(&x).expect("encode");
                std::hint::black_box(vae.decode(&mu).expect("decode"));
            };
            for _ in 0..5.min(warmup.max(1)) {
                infer();
            }
            rows.push(measure(
                "infer",
                threads,
                256,
                (3 * steps / 10).max(10),
                10,
                infer,
            ));
        });
    }
    serde_json::json!({ "model": "seed (latent 2)", "data": "random", "steps": steps, "warmup": warmup,
        "results": rows })
}

fn criterion_train(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(0);
    let x_all = Array4::from_shape_simple_fn((128, 1, 28, 28), || rng.random::<f32>());
    let mut g = c.benchmark_group("train_step");
    g.sample_size(10);
    g.throughput(Throughput::Elements(128));
    let mut step = Step::new();
    g.bench_function("seed_b128", |b| b.iter(|| step.run(&x_all)));
    g.finish();
}

criterion_group!(benches, criterion_train);

fn main() {
    println!(
        "framework,mode,threads,batch,median_img_s,min_img_s,max_img_s,chunks,data,img_per_cpu_s"
    );
    let report = protocol();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/vae-bench");
    std::fs::create_dir_all(&dir).expect("create target/vae-bench");
    let path = dir.join("train.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report).expect("json"))
        .expect("write train.json");
    println!("wrote {}", path.display());
    if std::env::var_os("VAE_BENCH_CRITERION").is_some() {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
}
