//! Loading MNIST: time and peak heap.
//!
//! * `mnist_train_gz`: the full MNIST training set (60,000 images) from the original `.gz`
//!   files in `$VAE_DATA_DIR/mnist` (else `../shared/data/mnist`); skipped with a message
//!   when absent. Throughput is images/s ("Kelem/s" = thousand images per second).
//! * `mnist_train_raw`: the same files gunzipped to a temp folder (IDX parse + f32 only).
//! * `mnist_sample_gz`: the 8,000-image vendored sample in `data/mnist-sample` (always there).
//!
//! Before timing, one load runs under a counting global allocator and prints its peak heap
//! next to the size of what it returns. "Decoded size" here is the `f32` image tensor the
//! loader returns, `60,000 × 784 × 4 B = 188.16 MB` (the raw `u8` IDX payload is 47.04 MB);
//! the target is a peak under twice that tensor.
//!
//! Run: `cargo bench --bench data_load` (add `-- --quick` for a shorter run).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vae_data::mnist::{load_mnist, Split};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, SeqCst) + by;
    PEAK.fetch_max(now, SeqCst);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only
// updates two atomic counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), SeqCst);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, SeqCst);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn mnist_dir() -> Option<PathBuf> {
    if let Ok(d) = vae_data::location::resolve_data_dir(None, "mnist") {
        return Some(d);
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    beside.is_dir().then_some(beside)
}

fn report_peak(name: &str, dir: &Path) {
    let base = CURRENT.load(SeqCst);
    PEAK.store(base, SeqCst);
    let t = std::time::Instant::now();
    let m = load_mnist(dir, Split::Train).expect("load");
    let secs = t.elapsed().as_secs_f64();
    let peak = PEAK.load(SeqCst) - base;
    let tensor = m.images.len() * 4;
    let held = tensor + m.labels.len();
    let mb = |b: usize| b as f64 / 1e6;
    println!(
        "{name}: {} images in {secs:.3} s (one cold-ish load); peak heap {:.2} MB; \
         returned {:.2} MB (f32 images {:.2} MB + labels {:.2} MB); \
         peak / f32 tensor = {:.3} (target < 2); peak / u8 payload = {:.3}",
        m.len(),
        mb(peak),
        mb(held),
        mb(tensor),
        mb(m.labels.len()),
        peak as f64 / tensor as f64,
        peak as f64 / (m.images.len()) as f64,
    );
    drop(m);
}

fn gunzip_to_temp(dir: &Path) -> PathBuf {
    let out = std::env::temp_dir().join(format!("vae-data-bench-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"] {
        let a = vae_data::idx::read_idx(dir.join(format!("{name}.gz"))).unwrap();
        vae_data::idx::write_idx(out.join(name), &a, false).unwrap();
    }
    out
}

fn bench(c: &mut Criterion) {
    let sample = vae_data::location::resolve_data_dir(None, "mnist-sample").expect("vendored");
    let mut g = c.benchmark_group("data_load");
    g.sample_size(10);
    match mnist_dir() {
        Some(dir) => {
            report_peak("mnist_train_gz", &dir);
            g.throughput(Throughput::Elements(60_000));
            g.bench_function("mnist_train_gz", |b| {
                b.iter(|| load_mnist(&dir, Split::Train).unwrap())
            });
            let raw = gunzip_to_temp(&dir);
            report_peak("mnist_train_raw", &raw);
            g.bench_function("mnist_train_raw", |b| {
                b.iter(|| load_mnist(&raw, Split::Train).unwrap())
            });
            std::fs::remove_dir_all(&raw).ok();
        }
        None => println!(
            "skipping mnist_train_gz: full MNIST not found (set VAE_DATA_DIR to a folder \
             holding mnist/train-images-idx3-ubyte.gz)"
        ),
    }
    g.throughput(Throughput::Elements(8_000));
    g.bench_function("mnist_sample_gz", |b| {
        b.iter(|| load_mnist(&sample, Split::Train).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
