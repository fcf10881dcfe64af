//! Where data lives: a `--data DIR` argument, else the `VAE_DATA_DIR` environment variable,
//! else the repository's own `data/` folder.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// Name of the environment variable that points at the data root (CI sets it to
/// `../shared/data`).
pub const DATA_ENV: &str = "VAE_DATA_DIR";

/// Finds the folder of data set `sub` (e.g. `"mnist"`, `"mnist-sample"`,
/// `"textures/kth-tips-grey"`).
///
/// Search order:
/// 1. `cli` (a `--data DIR` argument), if given: `cli/sub`, then `cli` itself (so `--data`
///    may name the data set folder directly). When `cli` is given nothing else is tried, so
///    an explicit argument is never silently ignored.
/// 2. `$VAE_DATA_DIR/sub`.
/// 3. `data/sub` in the repository: under the running package's `CARGO_MANIFEST_DIR`, under
///    the workspace root this crate was built in, and under the current directory and each
///    of its ancestors.
///
/// ```
/// use vae_data::location::resolve_data_dir;
/// // The repository vendors 10,000 MNIST digits in data/mnist-sample.
/// let dir = resolve_data_dir(None, "mnist-sample")?;
/// assert!(dir.join("train-images-idx3-ubyte.gz").is_file());
/// # Ok::<(), vae_data::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::NotFound`] listing every folder that was tried.
pub fn resolve_data_dir(cli: Option<&Path>, sub: &str) -> Result<PathBuf> {
    let candidates = candidate_dirs(cli, sub);
    for c in &candidates {
        if c.is_dir() {
            return Ok(c.clone());
        }
    }
    Err(DataError::NotFound {
        looked_in: candidates,
        expected: vec![format!(
            "a folder `{sub}` (pass --data DIR or set {DATA_ENV})"
        )],
    })
}

/// Every folder [`resolve_data_dir`] would try for `sub`, in order, without duplicates.
pub fn candidate_dirs(cli: Option<&Path>, sub: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut push = |p: PathBuf| {
        if !out.contains(&p) {
            out.push(p);
        }
    };
    if let Some(dir) = cli {
        push(dir.join(sub));
        push(dir.to_path_buf());
        return out;
    }
    if let Some(env) = std::env::var_os(DATA_ENV).filter(|v| !v.is_empty()) {
        push(PathBuf::from(env).join(sub));
    }
    if let Some(m) = std::env::var_os("CARGO_MANIFEST_DIR") {
        push(PathBuf::from(m).join("data").join(sub));
    }
    // crates/vae-data -> workspace root, as laid out when this crate was built.
    let built_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if let Ok(root) = built_root.canonicalize() {
        push(root.join("data").join(sub));
    }
    if let Ok(cwd) = std::env::current_dir() {
        for a in cwd.ancestors() {
            push(a.join("data").join(sub));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_dir_is_exclusive_and_error_lists_where_it_looked() {
        let tmp = tempfile::tempdir().unwrap();
        let err = resolve_data_dir(Some(&tmp.path().join("nope")), "mnist").unwrap_err();
        match err {
            DataError::NotFound { looked_in, .. } => {
                assert_eq!(looked_in.len(), 2);
                assert_eq!(looked_in[0], tmp.path().join("nope").join("mnist"));
            }
            e => panic!("{e}"),
        }
        std::fs::create_dir(tmp.path().join("mnist")).unwrap();
        assert_eq!(
            resolve_data_dir(Some(tmp.path()), "mnist").unwrap(),
            tmp.path().join("mnist")
        );
        // --data may name the data set folder itself.
        assert_eq!(
            resolve_data_dir(Some(&tmp.path().join("mnist")), "mnist").unwrap(),
            tmp.path().join("mnist")
        );
    }

    #[test]
    fn repo_data_is_found_without_arguments() {
        let d = resolve_data_dir(None, "mnist-sample").unwrap();
        assert!(
            d.join("t10k-labels-idx1-ubyte.gz").is_file(),
            "{}",
            d.display()
        );
    }
}
