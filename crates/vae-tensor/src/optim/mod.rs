//! Optimizers: SGD (momentum, Nesterov, weight decay), Adam and AdamW.
//!
//! Each optimizer is a pure per-tensor update (`sgd_update`, `adam_update`) plus a thin
//! [`Optimizer::step`] that walks the model's parameters by name. State (momentum buffers,
//! Adam moments) is keyed by the same dotted names, exposed as [`OptimState`] so it can be
//! checkpointed, and checked: a step that sees a different set of parameter names or
//! shapes than the first step is [`TensorError::ParamSetChanged`].

mod adam;
mod sgd;

pub use adam::{adam_update, Adam, AdamConfig};
pub use sgd::{sgd_update, Sgd, SgdConfig};

use crate::error::{Result, TensorError};
use crate::layer::Parameterized;
use ndarray::ArrayD;
use std::collections::BTreeMap;

/// An optimizer's full state: the step count and every buffer by name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OptimState {
    /// Number of steps taken.
    pub step: u64,
    /// Named buffers, e.g. `m.encoder.conv1.weight` and `v.encoder.conv1.weight` for Adam.
    pub tensors: Vec<(String, ArrayD<f32>)>,
}

/// A first-order optimizer over named parameters.
pub trait Optimizer: Send {
    /// Applies one update to every parameter of `model` from its accumulated gradient.
    /// Gradients are left as they are (call [`zero_grad`](crate::zero_grad) next).
    fn step(&mut self, model: &mut dyn Parameterized) -> Result<()>;
    /// The current learning rate.
    fn lr(&self) -> f32;
    /// Sets the learning rate (for schedules).
    fn set_lr(&mut self, lr: f32);
    /// The state to checkpoint.
    fn state(&self) -> OptimState;
    /// Restores a state produced by [`Optimizer::state`]; the next step checks it against the model.
    fn load_state(&mut self, state: OptimState) -> Result<()>;
    /// The state, moved out without copying the buffers where the optimizer can (Adam and
    /// SGD do), leaving the optimizer without state until [`Optimizer::load_state`] puts it
    /// back: a checkpoint can then be written without a second copy of every moment. The
    /// provided implementation copies ([`Optimizer::state`]).
    fn take_state(&mut self) -> OptimState {
        self.state()
    }
}

/// Per-parameter buffers keyed by name, with the check that the parameter set is stable.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slots {
    pub(crate) step: u64,
    /// name -> buffers (one per kind: e.g. [m, v]).
    pub(crate) buffers: BTreeMap<String, Vec<ArrayD<f32>>>,
}

impl Slots {
    /// Calls `f(name, param, buffers)` for each parameter, creating zeroed buffers on the
    /// first step and checking names and shapes on every later one.
    pub(crate) fn for_each(
        &mut self,
        kinds: usize,
        model: &mut dyn Parameterized,
        mut f: impl FnMut(&mut crate::Param, &mut [ArrayD<f32>]),
    ) -> Result<()> {
        let first = self.buffers.is_empty();
        let mut seen = 0usize;
        let mut error: Option<String> = None;
        let buffers = &mut self.buffers;
        model.visit_params("", &mut |name, p| {
            if error.is_some() {
                return;
            }
            if first {
                buffers.insert(
                    name.to_string(),
                    (0..kinds)
                        .map(|_| ArrayD::zeros(p.value.raw_dim()))
                        .collect(),
                );
            }
            match buffers.get_mut(name) {
                Some(b) if b.iter().all(|b| b.shape() == p.value.shape()) => {
                    seen += 1;
                    f(p, b)
                }
                Some(b) => {
                    error = Some(format!(
                        "{name} has shape {:?}, optimizer state has {:?}",
                        p.value.shape(),
                        b[0].shape()
                    ))
                }
                None => error = Some(format!("{name} is new to the optimizer")),
            }
        });
        if let Some(reason) = error {
            return Err(TensorError::ParamSetChanged { reason });
        }
        if seen != self.buffers.len() {
            return Err(TensorError::ParamSetChanged {
                reason: format!(
                    "the model has {seen} parameters, the optimizer state {}",
                    self.buffers.len()
                ),
            });
        }
        self.step += 1;
        Ok(())
    }

    pub(crate) fn to_state(&self, kind_names: &[&str]) -> OptimState {
        let mut tensors = Vec::new();
        for (k, kind) in kind_names.iter().enumerate() {
            for (name, b) in &self.buffers {
                tensors.push((format!("{kind}.{name}"), b[k].clone()));
            }
        }
        OptimState {
            step: self.step,
            tensors,
        }
    }

    /// As [`Slots::to_state`], moving the buffers out (same order) and leaving no state.
    pub(crate) fn take_state(&mut self, kind_names: &[&str]) -> OptimState {
        let buffers = std::mem::take(&mut self.buffers);
        let mut per_kind: Vec<Vec<(String, ArrayD<f32>)>> = vec![Vec::new(); kind_names.len()];
        for (name, b) in buffers {
            for ((kind, list), t) in kind_names.iter().zip(per_kind.iter_mut()).zip(b) {
                list.push((format!("{kind}.{name}"), t));
            }
        }
        OptimState {
            step: std::mem::take(&mut self.step),
            tensors: per_kind.into_iter().flatten().collect(),
        }
    }

    pub(crate) fn from_state(state: OptimState, kind_names: &[&str]) -> Result<Self> {
        let mut buffers: BTreeMap<String, Vec<Option<ArrayD<f32>>>> = BTreeMap::new();
        for (key, t) in state.tensors {
            let (kind, name) = key
                .split_once('.')
                .ok_or_else(|| TensorError::ParamSetChanged {
                    reason: format!("state tensor {key:?} has no kind prefix"),
                })?;
            let k = kind_names.iter().position(|&n| n == kind).ok_or_else(|| {
                TensorError::ParamSetChanged {
                    reason: format!(
                        "state tensor {key:?}: unknown kind {kind:?}, expected {kind_names:?}"
                    ),
                }
            })?;
            buffers
                .entry(name.to_string())
                .or_insert_with(|| vec![None; kind_names.len()])[k] = Some(t);
        }
        let mut out = BTreeMap::new();
        for (name, b) in buffers {
            let b: Option<Vec<_>> = b.into_iter().collect();
            let b = b.ok_or_else(|| TensorError::ParamSetChanged {
                reason: format!("state for {name} lacks one of {kind_names:?}"),
            })?;
            out.insert(name, b);
        }
        Ok(Slots {
            step: state.step,
            buffers: out,
        })
    }
}

#[cfg(test)]
mod tests;
