//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The real data root (`$VAE_DATA_DIR`, else `../shared/data` beside the repository), or
/// `None` with a printed reason, so tests on real data skip when it is absent.
pub fn shared_data(sub: &str) -> Option<PathBuf> {
    let root = match std::env::var_os("VAE_DATA_DIR").filter(|v| !v.is_empty()) {
        Some(v) => PathBuf::from(v),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    let dir = root.join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: real data folder {} not found (set VAE_DATA_DIR)",
            dir.display()
        );
        None
    }
}
