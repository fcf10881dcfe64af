//! Checkpoints in safetensors: weights, optimizer state, progress and config.
//!
//! # Layout
//! - One `F32` tensor per model parameter, keyed by its dotted name (`encoder.conv1.weight`).
//! - One tensor per optimizer state entry, keyed by the optimizer's own names
//!   (`adam.m.encoder.conv1.weight`); their names are listed in the metadata.
//! - Metadata (all strings): `format` = [`FORMAT`], `config` (the [`VaeConfig`] as JSON),
//!   `step`, `epoch`, `optim_step`, `weights` and `optim_tensors` (JSON lists of names, in
//!   order) and `extra`
//!   (free JSON, e.g. trainer settings and the loss history).
//!
//! Writes are atomic: the bytes go to a temporary file in the same directory, which is
//! fsynced and then renamed over the target, so a crash leaves either the old or the new
//! checkpoint, never half of one.

use crate::config::VaeConfig;
use crate::error::{CoreError, Result};
use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use vae_tensor::Parameterized;

/// The `format` metadata value of checkpoints written by this crate.
pub const FORMAT: &str = "vae-rs/checkpoint/1";

/// Everything a checkpoint holds, in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The model configuration.
    pub config: VaeConfig,
    /// Optimizer steps taken so far.
    pub step: u64,
    /// Epochs completed so far.
    pub epoch: usize,
    /// Parameter values by dotted name, in visiting order when written from a model.
    pub weights: Vec<(String, ArrayD<f32>)>,
    /// The optimizer's step counter.
    pub optim_step: u64,
    /// The optimizer's state tensors by name.
    pub optim_tensors: Vec<(String, ArrayD<f32>)>,
    /// Free-form JSON (trainer settings, history).
    pub extra: serde_json::Value,
}

/// Copies every parameter of `model` with its name.
pub fn collect_weights(model: &mut dyn Parameterized) -> Vec<(String, ArrayD<f32>)> {
    let mut out = Vec::new();
    model.visit_params("", &mut |name, p| {
        out.push((name.to_string(), p.value.clone()))
    });
    out
}

fn f32_bytes(a: &ArrayD<f32>) -> Vec<u8> {
    let mut b = Vec::with_capacity(a.len() * 4);
    for v in a.iter() {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

/// A parameter or optimizer tensor as a safetensors [`View`]: its bytes are produced one
/// tensor at a time while writing, so saving never holds a second copy of the whole
/// checkpoint.
struct F32View<'a>(&'a ArrayD<f32>);

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.0.shape()
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(f32_bytes(self.0))
    }
    fn data_len(&self) -> usize {
        self.0.len() * 4
    }
}

impl Checkpoint {
    /// The tensors as safetensors views and the metadata, after checking that no name is
    /// used twice.
    #[allow(clippy::type_complexity)]
    fn views(&self) -> Result<(Vec<(&str, F32View<'_>)>, HashMap<String, String>)> {
        let mut names = BTreeSet::new();
        for (n, _) in self.weights.iter().chain(&self.optim_tensors) {
            if !names.insert(n.as_str()) {
                return Err(CoreError::arg(
                    "checkpoint save",
                    format!("tensor name {n:?} used twice"),
                ));
            }
        }
        let views = self
            .weights
            .iter()
            .chain(&self.optim_tensors)
            .map(|(n, a)| (n.as_str(), F32View(a)))
            .collect();
        let optim_names: Vec<&str> = self.optim_tensors.iter().map(|(n, _)| n.as_str()).collect();
        let weight_names: Vec<&str> = self.weights.iter().map(|(n, _)| n.as_str()).collect();
        let to_json = |v: &dyn erased::Json| v.json();
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert("config".to_string(), to_json(&self.config)?);
        meta.insert("step".to_string(), self.step.to_string());
        meta.insert("epoch".to_string(), self.epoch.to_string());
        meta.insert("optim_step".to_string(), self.optim_step.to_string());
        meta.insert("optim_tensors".to_string(), to_json(&optim_names)?);
        meta.insert("weights".to_string(), to_json(&weight_names)?);
        meta.insert("extra".to_string(), to_json(&self.extra)?);
        Ok((views, meta))
    }

    /// Serializes to safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let (views, meta) = self.views()?;
        safetensors::serialize(views, Some(meta))
            .map_err(|e| CoreError::arg("checkpoint save", e.to_string()))
    }

    /// Parses safetensors bytes; `path` is only used in error messages.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let corrupt = |reason: String| CoreError::CorruptCheckpoint {
            path: path.to_path_buf(),
            reason,
        };
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| corrupt(e.to_string()))?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| corrupt(e.to_string()))?;
        let meta = header
            .metadata()
            .as_ref()
            .ok_or_else(|| corrupt("no metadata".into()))?;
        let get = |k: &str| {
            meta.get(k)
                .ok_or_else(|| corrupt(format!("metadata key {k:?} missing")))
        };
        if get("format")? != FORMAT {
            return Err(corrupt(format!(
                "format {:?}, expected {FORMAT:?}",
                get("format")?
            )));
        }
        let num = |k: &str| -> Result<u64> {
            get(k)?
                .parse::<u64>()
                .map_err(|e| corrupt(format!("metadata {k}: {e}")))
        };
        let config: VaeConfig = serde_json::from_str(get("config")?)
            .map_err(|e| corrupt(format!("metadata config: {e}")))?;
        let optim_names: Vec<String> = serde_json::from_str(get("optim_tensors")?)
            .map_err(|e| corrupt(format!("metadata optim_tensors: {e}")))?;
        let extra: serde_json::Value = serde_json::from_str(get("extra")?)
            .map_err(|e| corrupt(format!("metadata extra: {e}")))?;
        let read = |name: &str| -> Result<ArrayD<f32>> {
            let t = st.tensor(name).map_err(|e| CoreError::CheckpointTensor {
                path: path.to_path_buf(),
                tensor: name.to_string(),
                reason: e.to_string(),
            })?;
            if t.dtype() != Dtype::F32 {
                return Err(CoreError::CheckpointTensor {
                    path: path.to_path_buf(),
                    tensor: name.to_string(),
                    reason: format!("dtype {:?}, expected F32", t.dtype()),
                });
            }
            let v: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            ArrayD::from_shape_vec(IxDyn(t.shape()), v).map_err(|e| corrupt(format!("{name}: {e}")))
        };
        let weight_names: Vec<String> = serde_json::from_str(get("weights")?)
            .map_err(|e| corrupt(format!("metadata weights: {e}")))?;
        let listed: BTreeSet<&str> = weight_names
            .iter()
            .chain(&optim_names)
            .map(String::as_str)
            .collect();
        if let Some(stray) = st.names().into_iter().find(|n| !listed.contains(n)) {
            return Err(corrupt(format!(
                "tensor {stray:?} is not listed in the metadata"
            )));
        }
        let weights = weight_names
            .iter()
            .map(|n| Ok((n.clone(), read(n)?)))
            .collect::<Result<Vec<_>>>()?;
        let optim_tensors = optim_names
            .iter()
            .map(|n| Ok((n.clone(), read(n)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Checkpoint {
            config,
            step: num("step")?,
            epoch: num("epoch")? as usize,
            weights,
            optim_step: num("optim_step")?,
            optim_tensors,
            extra,
        })
    }

    /// Writes the checkpoint atomically (temp file in the same directory, fsync, rename).
    ///
    /// The file is streamed tensor by tensor (the same bytes as [`Checkpoint::to_bytes`]),
    /// so saving needs memory for one tensor, not for the whole file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let (views, meta) = self.views()?;
        write_atomic_with(path, |tmp| {
            safetensors::serialize_to_file(views, Some(meta), tmp)
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
    }

    /// Reads a checkpoint; a truncated or malformed file is [`CoreError::CorruptCheckpoint`].
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Copies the weights into `model` after checking that the names match exactly and every
    /// shape agrees; on any mismatch nothing is changed and the error names the tensor and
    /// both shapes. `path` is only used in error messages.
    pub fn apply_weights(&self, model: &mut dyn Parameterized, path: &Path) -> Result<()> {
        load_weights(model, &self.weights, path)
    }
}

/// Copies named `weights` into `model` (see [`Checkpoint::apply_weights`]); `path` is only
/// used in error messages.
pub fn load_weights(
    model: &mut dyn Parameterized,
    weights: &[(String, ArrayD<f32>)],
    path: &Path,
) -> Result<()> {
    let file: HashMap<&str, &ArrayD<f32>> = weights.iter().map(|(n, a)| (n.as_str(), a)).collect();
    let mut first_err: Option<CoreError> = None;
    let mut seen = BTreeSet::new();
    model.visit_params("", &mut |name, p| {
        if first_err.is_some() {
            return;
        }
        seen.insert(name.to_string());
        match file.get(name) {
            None => {
                first_err = Some(CoreError::CheckpointTensor {
                    path: path.to_path_buf(),
                    tensor: name.to_string(),
                    reason: "missing from file".into(),
                })
            }
            Some(a) if a.shape() != p.value.shape() => {
                first_err = Some(CoreError::CheckpointShape {
                    path: path.to_path_buf(),
                    tensor: name.to_string(),
                    expected: p.value.shape().to_vec(),
                    found: a.shape().to_vec(),
                })
            }
            _ => {}
        }
    });
    if let Some(e) = first_err {
        return Err(e);
    }
    if let Some((extra, _)) = weights.iter().find(|(n, _)| !seen.contains(n)) {
        return Err(CoreError::CheckpointTensor {
            path: path.to_path_buf(),
            tensor: extra.clone(),
            reason: "not in model".into(),
        });
    }
    model.visit_params("", &mut |name, p| {
        if let Some(a) = file.get(name) {
            p.value.assign(*a);
        }
    });
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, and a
/// best-effort fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp)?;
        f.write_all(bytes)?;
        f.flush()
    })
}

/// Atomic write where `write` creates and fills the temporary file at the path it is given;
/// then the file is fsynced and renamed over `path`. On any error the temporary file is
/// removed and `path` is untouched.
fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        CoreError::arg(
            "write_atomic",
            format!("{} has no file name", path.display()),
        )
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        write(&tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok::<(), std::io::Error>(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(CoreError::io(path, e));
    }
    Ok(())
}

mod erased {
    //! Serialize-to-string helper usable as a trait object.
    use crate::error::{CoreError, Result};

    pub trait Json {
        fn json(&self) -> Result<String>;
    }

    impl<T: serde::Serialize + ?Sized> Json for T {
        fn json(&self) -> Result<String> {
            serde_json::to_string(self)
                .map_err(|e| CoreError::arg("checkpoint save", e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayD;
    use vae_tensor::Param;

    /// A tiny model with two named parameters.
    struct Two {
        a: Param,
        b: Param,
    }

    impl Parameterized for Two {
        fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
            f(&vae_tensor::layer::join_name(prefix, "enc.a"), &mut self.a);
            f(&vae_tensor::layer::join_name(prefix, "dec.b"), &mut self.b);
        }
    }

    fn two(fill: f32, b_len: usize) -> Two {
        Two {
            a: Param::new(ArrayD::from_shape_fn(vec![2, 3], |i| {
                fill + i[0] as f32 + 0.1 * i[1] as f32
            })),
            b: Param::new(ArrayD::from_elem(vec![b_len], fill)),
        }
    }

    fn ckpt(model: &mut Two) -> Checkpoint {
        Checkpoint {
            config: VaeConfig::default(),
            step: 17,
            epoch: 2,
            weights: collect_weights(model),
            optim_step: 17,
            optim_tensors: vec![("adam.m.enc.a".into(), ArrayD::from_elem(vec![2, 3], 0.5))],
            extra: serde_json::json!({"seed": 3}),
        }
    }

    #[test]
    fn round_trip_restores_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let mut m = two(1.0, 4);
        let c = ckpt(&mut m);
        c.save(&path).unwrap();
        let back = Checkpoint::load(&path).unwrap();
        assert_eq!(back, c);
        let mut fresh = two(-5.0, 4);
        back.apply_weights(&mut fresh, &path).unwrap();
        assert_eq!(fresh.a, m.a);
        assert_eq!(fresh.b, m.b);
        // Only the checkpoint is left in the directory: no temp file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn shape_mismatch_names_tensor_and_both_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        ckpt(&mut two(1.0, 4)).save(&path).unwrap();
        let mut other = two(0.0, 5);
        let e = Checkpoint::load(&path)
            .unwrap()
            .apply_weights(&mut other, &path)
            .unwrap_err();
        match e {
            CoreError::CheckpointShape {
                tensor,
                expected,
                found,
                ..
            } => {
                assert_eq!(tensor, "dec.b");
                assert_eq!(expected, vec![5]);
                assert_eq!(found, vec![4]);
            }
            other => panic!("wrong error {other:?}"),
        }
        assert_eq!(other.b.value[[0]], 0.0, "model untouched on error");
    }

    #[test]
    fn missing_and_unknown_tensors_are_named() {
        let path = Path::new("x.safetensors");
        let mut m = two(1.0, 4);
        let mut c = ckpt(&mut m);
        c.weights.retain(|(n, _)| n != "enc.a");
        let e = c.apply_weights(&mut m, path).unwrap_err();
        assert!(matches!(e, CoreError::CheckpointTensor { ref tensor, .. } if tensor == "enc.a"));
        let mut c = ckpt(&mut m);
        c.weights.push(("dec.extra".into(), ArrayD::zeros(vec![1])));
        let e = c.apply_weights(&mut m, path).unwrap_err();
        assert!(
            matches!(e, CoreError::CheckpointTensor { ref tensor, .. } if tensor == "dec.extra")
        );
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        let bytes = ckpt(&mut two(1.0, 4)).to_bytes().unwrap();
        let path = Path::new("t.safetensors");
        for len in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
            let e = Checkpoint::from_bytes(&bytes[..len], path).unwrap_err();
            assert!(
                matches!(e, CoreError::CorruptCheckpoint { .. }),
                "len {len}: {e:?}"
            );
        }
        let mut garbage = bytes.clone();
        garbage[10] = b'}';
        assert!(Checkpoint::from_bytes(&garbage, path).is_err());
    }

    #[test]
    fn streamed_file_equals_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.safetensors");
        let c = ckpt(&mut two(0.5, 5));
        c.save(&path).unwrap();
        // The metadata map's key order may differ between two serializations; the length
        // and the parsed contents may not.
        let file = std::fs::read(&path).unwrap();
        let buffer = c.to_bytes().unwrap();
        assert_eq!(file.len(), buffer.len());
        assert_eq!(Checkpoint::from_bytes(&file, &path).unwrap(), c);
        assert_eq!(Checkpoint::from_bytes(&buffer, &path).unwrap(), c);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn wrong_format_is_corrupt() {
        let views: Vec<(String, safetensors::tensor::TensorView)> = vec![];
        let bytes = safetensors::serialize(views, None).unwrap();
        let e = Checkpoint::from_bytes(&bytes, Path::new("e")).unwrap_err();
        assert!(matches!(e, CoreError::CorruptCheckpoint { .. }));
    }

    #[test]
    fn overwrite_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let mut m = two(1.0, 4);
        ckpt(&mut m).save(&path).unwrap();
        let mut c = ckpt(&mut m);
        c.step = 99;
        c.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap().step, 99);
    }
}
