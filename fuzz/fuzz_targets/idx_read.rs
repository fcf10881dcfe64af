//! Fuzz the IDX reader: any bytes (raw or gzip) give `Ok` or a typed error, never a panic
//! or an allocation above the budget; a raw input that parses re-encodes byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vae_data::idx::{read_idx_bytes, to_idx_bytes};
use vae_data::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::with_max_alloc(16 << 20);
    if let Ok(a) = read_idx_bytes(data, &limits) {
        assert!(a.byte_len() as u64 <= limits.max_alloc);
        if !data.starts_with(&[0x1f, 0x8b]) {
            assert_eq!(to_idx_bytes(&a), data);
        }
    }
});
