//! Seeded mutation test of the IDX reader: at least 10,000 mutations and truncations of
//! valid IDX and IDX.gz bytes. Each must give `Ok` or a typed bad-file / limit error, never
//! a panic, and never allocate beyond a bound fixed by the input:
//!
//! * raw input of `n` bytes: peak heap ≤ `n` + 4 KiB (the payload is at most the input, and
//!   the only other allocations are O(rank) ≤ 255 dimensions);
//! * gzip input of `n` bytes: peak heap ≤ `min(max_alloc, 1032 n)` + 192 KiB (what the
//!   header may legitimately claim: deflate expands at most 1032:1, and the `Limits` budget
//!   caps it; plus the inflater's fixed state and one 64 KiB decode buffer).
//!
//! The heap is measured by a counting global allocator in this test binary, which holds
//! this single test so that no other test allocates at the same time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vae_data::idx::{read_idx_bytes, read_idx_with, to_idx_bytes, IdxArray, IdxData};
use vae_data::{DataError, Limits};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, SeqCst) + by;
    PEAK.fetch_max(now, SeqCst);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only
// updates two atomic counters; the allocator contract is `System`'s.
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

/// Runs the reader on `input`, returning its result and the peak heap growth during the call.
fn read_measured(input: &[u8], limits: &Limits) -> (vae_data::Result<IdxArray>, usize) {
    let base = CURRENT.load(SeqCst);
    PEAK.store(base, SeqCst);
    let r = read_idx_bytes(input, limits);
    (r, PEAK.load(SeqCst) - base)
}

/// The variant of an error (and of its bad-file kind), without paths or messages.
fn error_kind(e: &DataError) -> String {
    match e {
        DataError::BadFile { kind, .. } => format!("{:?}", std::mem::discriminant(kind)),
        other => format!("{:?}", std::mem::discriminant(other)),
    }
}

fn bases() -> Vec<IdxArray> {
    vec![
        IdxArray::new(
            vec![6, 5, 4],
            IdxData::U8((0..120).map(|i| (i * 13) as u8).collect()),
        )
        .unwrap(),
        IdxArray::new(vec![40], IdxData::U8((0..40).map(|i| i % 10).collect())).unwrap(),
        IdxArray::new(vec![3, 3], IdxData::I8((0..9).map(|i| i - 4).collect())).unwrap(),
        IdxArray::new(
            vec![2, 2, 2, 2],
            IdxData::I16((0..16).map(|i| i * 999).collect()),
        )
        .unwrap(),
        IdxArray::new(vec![9], IdxData::I32((0..9).map(|i| i << 20).collect())).unwrap(),
        IdxArray::new(
            vec![4, 4],
            IdxData::F32((0..16).map(|i| i as f32 / 3.0).collect()),
        )
        .unwrap(),
        IdxArray::new(vec![5, 1], IdxData::F64(vec![1.0, -2.5, 1e-9, 7.0, 0.0])).unwrap(),
    ]
}

fn gz(bytes: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let level = flate2::Compression::new(rng.random_range(0..=9));
    let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
    std::io::Write::write_all(&mut e, bytes).unwrap();
    e.finish().unwrap()
}

/// One random mutation of `b`, biased towards the header where the interesting checks are.
fn mutate(b: &mut Vec<u8>, rng: &mut StdRng) {
    let header_end = b.len().min(4 + 4 * b.get(3).copied().unwrap_or(0) as usize);
    match rng.random_range(0..9) {
        // Flip one bit anywhere.
        0 if !b.is_empty() => {
            let i = rng.random_range(0..b.len());
            b[i] ^= 1 << rng.random_range(0..8);
        }
        // Random byte in the header.
        1 if header_end > 0 => {
            let i = rng.random_range(0..header_end);
            b[i] = rng.random();
        }
        // A dimension set to something big or extreme.
        2 if header_end >= 8 => {
            let d = 4 * rng.random_range(1..header_end / 4);
            let v: u32 = *[u32::MAX, 0, 1, 4_000_000_000, 65_536, rng.random()]
                .get(rng.random_range(0..6))
                .unwrap();
            b[d..d + 4].copy_from_slice(&v.to_be_bytes());
        }
        // Truncate.
        3 => {
            let n = rng.random_range(0..=b.len());
            b.truncate(n);
        }
        // Append random bytes.
        4 => {
            for _ in 0..rng.random_range(1..16) {
                b.push(rng.random());
            }
        }
        // Delete a range.
        5 if !b.is_empty() => {
            let i = rng.random_range(0..b.len());
            let j = rng.random_range(i..=b.len().min(i + 8));
            b.drain(i..j);
        }
        // Insert bytes.
        6 => {
            let i = rng.random_range(0..=b.len());
            b.insert(i, rng.random());
        }
        // Rank or type code set to a random value.
        7 if b.len() >= 4 => {
            let i = rng.random_range(2..4);
            b[i] = rng.random();
        }
        // Random byte anywhere.
        _ if !b.is_empty() => {
            let i = rng.random_range(0..b.len());
            b[i] = rng.random();
        }
        _ => b.push(0),
    }
}

#[test]
fn ten_thousand_mutations_never_panic_or_over_allocate() {
    const CASES: usize = 12_000;
    let limits = Limits::with_max_alloc(1 << 20);
    let mut rng = StdRng::seed_from_u64(0x1D8);
    let raw_bases: Vec<Vec<u8>> = bases().iter().map(to_idx_bytes).collect();
    let (mut ok, mut errs, mut gz_cases) = (0usize, 0usize, 0usize);
    let tmp = tempfile::tempdir().unwrap();
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for case in 0..CASES {
        let mut input = raw_bases[rng.random_range(0..raw_bases.len())].clone();
        // Three shapes of case: raw mutated; mutated then gzipped (so header mutations reach
        // the IDX layer through gzip); gzipped then mutated (corrupt gzip layer).
        let shape = rng.random_range(0..3);
        let n_mut = rng.random_range(1..=3);
        if shape != 2 {
            for _ in 0..n_mut {
                mutate(&mut input, &mut rng);
            }
        }
        if shape != 0 {
            input = gz(&input, &mut rng);
            gz_cases += 1;
        }
        if shape == 2 {
            for _ in 0..n_mut {
                mutate(&mut input, &mut rng);
            }
        }
        let is_gz = input.starts_with(&[0x1f, 0x8b]);
        let run = catch_unwind(AssertUnwindSafe(|| read_measured(&input, &limits)));
        let (result, peak) = match run {
            Ok(x) => x,
            Err(_) => panic!("case {case}: reader panicked on input {input:02x?}"),
        };
        let n = input.len();
        let bound = if is_gz {
            (limits.max_alloc as usize).min(1032 * n) + 192 * 1024
        } else {
            n + 4096
        };
        assert!(
            peak <= bound,
            "case {case}: allocated {peak} bytes for a {n}-byte input (bound {bound}): {input:02x?}"
        );
        // Every tenth case also goes through a file (a `Read` source rather than a slice):
        // it must give the same array or the same kind of error.
        if case % 10 == 0 {
            let path = tmp.path().join("case.idx");
            std::fs::write(&path, &input).unwrap();
            let from_file = read_idx_with(&path, &limits);
            match (&result, &from_file) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "case {case}"),
                (Err(a), Err(b)) => {
                    assert_eq!(error_kind(a), error_kind(b), "case {case}: {a} vs {b}")
                }
                (a, b) => panic!("case {case}: bytes gave {a:?}, file gave {b:?}"),
            }
        }
        match result {
            Ok(a) => {
                ok += 1;
                let cap = if is_gz {
                    (limits.max_alloc as usize).min(1032 * n)
                } else {
                    n
                };
                assert!(
                    a.byte_len() <= cap,
                    "case {case}: decoded {} bytes",
                    a.byte_len()
                );
            }
            Err(e) => {
                errs += 1;
                let name = match &e {
                    DataError::BadFile { kind, .. } => format!("{kind:?}"),
                    DataError::LimitExceeded { .. } => "LimitExceeded".into(),
                    other => panic!("case {case}: in-memory read gave a non-file error {other:?}"),
                };
                let name = name.split([' ', '{', '(']).next().unwrap().to_string();
                *kinds.entry(name).or_default() += 1;
                // Every error names the input and says what is wrong.
                assert!(e.to_string().starts_with("<memory>: "), "{e}");
            }
        }
    }
    // The counter really sees the reader's allocations: a valid read allocates its data.
    let (r, peak) = read_measured(&raw_bases[0], &limits);
    assert!(peak >= r.unwrap().byte_len());
    eprintln!("{CASES} cases ({gz_cases} gzip): {ok} Ok, {errs} errors: {kinds:?}");
    assert_eq!(ok + errs, CASES);
    // The sweep must reach the interesting checks, not only one kind of error.
    for k in [
        "BadMagic",
        "UnknownTypeCode",
        "BadRank",
        "Truncated",
        "TrailingBytes",
        "BadGzip",
    ] {
        assert!(
            kinds.get(k).copied().unwrap_or(0) > 0,
            "no {k} in {kinds:?}"
        );
    }
    assert!(kinds.contains_key("ImpossibleSize") || kinds.contains_key("LimitExceeded"));
}
