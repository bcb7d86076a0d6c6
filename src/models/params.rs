//! Named model parameters on the GPU, in the checkpoint's own naming, so that
//! loading, saving, optimizer state and gradients all line up by name. The
//! LoRA adapters' parameter-level side (config, names, a pass's view) is in
//! [`adapters`].

use anyhow::{anyhow, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::checkpoint::{Checkpoint, HostTensor};
use crate::device::Gpu;
use crate::quant::QuantizedWeight;
use crate::tape::{Grads, Tape, Var};
use crate::tensor::{DType, Tensor};

mod adapters;
pub use adapters::{
    is_adapter_param, lora_a_name, lora_b_name, Adapters, LoraConfig, LoraSite, LoraVars,
};

pub struct Param {
    pub name: String,
    pub tensor: Tensor,
    pub trainable: bool,
}

/// Parameters in load order.
#[derive(Default)]
pub struct ParamStore {
    params: Vec<Param>,
    index: HashMap<String, usize>,
}

impl ParamStore {
    /// Reads `key` from the checkpoint (shape-checked) and stores it under
    /// `name` (usually the same; differs where a checkpoint's prefix does).
    pub fn load(
        &mut self,
        gpu: &Arc<Gpu>,
        ck: &Checkpoint,
        key: &str,
        name: &str,
        shape: &[usize],
    ) -> Result<()> {
        let host = ck.get_shaped(key, shape)?;
        self.insert(name, Tensor::from_f32(gpu, shape, &host.data)?);
        Ok(())
    }

    pub fn insert(&mut self, name: &str, tensor: Tensor) {
        match self.index.get(name) {
            Some(&i) => self.params[i].tensor = tensor,
            None => {
                self.index.insert(name.to_string(), self.params.len());
                self.params.push(Param {
                    name: name.to_string(),
                    tensor,
                    trainable: true,
                });
            }
        }
    }

    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.index
            .get(name)
            .map(|&i| &self.params[i].tensor)
            .ok_or_else(|| anyhow!("model has no parameter `{name}`"))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Drops a parameter (its storage returns to the pool), e.g. a base weight
    /// replaced by a quantized copy.
    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        let i = self.index.remove(name)?;
        let p = self.params.remove(i);
        for idx in self.index.values_mut() {
            if *idx > i {
                *idx -= 1;
            }
        }
        Some(p.tensor)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.params.iter()
    }

    pub fn set_trainable(&mut self, pred: impl Fn(&str) -> bool) {
        for p in &mut self.params {
            p.trainable = pred(&p.name);
        }
    }

    pub fn numel(&self) -> usize {
        self.params.iter().map(|p| p.tensor.numel()).sum()
    }

    /// Puts every parameter on the tape: trainable ones as parameters, frozen
    /// ones as constants.
    pub fn vars(&self, tape: &Tape) -> ParamVars {
        let vars = self
            .params
            .iter()
            .map(|p| {
                let v = if p.trainable {
                    tape.param(&p.tensor)
                } else {
                    tape.constant(p.tensor.clone())
                };
                (p.name.clone(), v)
            })
            .collect();
        ParamVars {
            vars,
            lora: None,
            quantized: Arc::default(),
        }
    }

    /// Host copies of every parameter, keyed by name, for saving.
    pub fn to_host(&self) -> Result<BTreeMap<String, HostTensor>> {
        self.params
            .iter()
            .map(|p| {
                Ok((
                    p.name.clone(),
                    HostTensor::new(p.tensor.shape(), p.tensor.to_vec()?),
                ))
            })
            .collect()
    }

    pub fn dtype_bytes(&self, dtype: DType) -> u64 {
        self.params
            .iter()
            .map(|p| dtype.storage_bytes(p.tensor.numel()))
            .sum()
    }
}

/// The tape's view of a [`ParamStore`] for one forward pass.
pub struct ParamVars {
    vars: HashMap<String, Var>,
    /// The model's LoRA adapters for this pass (see [`adapters`]).
    pub lora: Option<LoraVars>,
    /// Frozen quantized base weights by module (see `models::quantized`).
    pub quantized: Arc<BTreeMap<String, QuantizedWeight>>,
}

impl ParamVars {
    pub fn get(&self, name: &str) -> Result<&Var> {
        self.vars
            .get(name)
            .ok_or_else(|| anyhow!("model has no parameter `{name}`"))
    }

    /// Gradients by parameter name (parameters no gradient reached are left out).
    pub fn grads(&self, grads: &Grads) -> BTreeMap<String, Tensor> {
        self.vars
            .iter()
            .filter_map(|(n, v)| grads.get(v).map(|g| (n.clone(), g.clone())))
            .collect()
    }
}
