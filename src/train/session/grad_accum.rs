//! Gradient accumulation over micro-batches, shared by every trainer:
//! [`weighted_backward`] backpropagates a micro-batch's share of the step
//! and [`GradAccum`] sums the shares (re-exported by `train::session`).

use anyhow::Result;
use std::collections::BTreeMap;

use crate::tape::{Grads, Tape, Var};
use crate::tensor::axpy::axpy;
use crate::tensor::Tensor;

/// Backpropagates `loss · weight` (a micro-batch's share of the step).
pub fn weighted_backward(tape: &Tape, loss: &Var, weight: f32) -> Result<Grads> {
    let seed = Tensor::full(tape.gpu(), loss.shape(), weight)?;
    tape.backward_with(loss, seed)
}

/// Sum of micro-batch gradients (each already weighted by its share, e.g.
/// through [`weighted_backward`]), accumulated with `axpy` into the first
/// micro-batch's tensors.
#[derive(Default)]
pub struct GradAccum {
    sum: Option<BTreeMap<String, Tensor>>,
}

impl GradAccum {
    pub fn add(&mut self, grads: BTreeMap<String, Tensor>) -> Result<()> {
        match &mut self.sum {
            None => {
                // Accumulating in place must not write through a buffer two
                // gradients share (an op may hand the same tensor to both inputs).
                let mut owned: BTreeMap<String, Tensor> = BTreeMap::new();
                for (name, g) in grads {
                    let shared = owned.values().any(|o| o.same_storage(&g));
                    owned.insert(name, if shared { g.deep_copy()? } else { g });
                }
                self.sum = Some(owned);
            }
            Some(sum) => {
                for (name, g) in grads {
                    match sum.get(&name) {
                        Some(acc) => axpy(acc, 1.0, &g)?,
                        None => {
                            sum.insert(name, g.deep_copy()?);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Result<BTreeMap<String, Tensor>> {
        self.sum
            .ok_or_else(|| anyhow::anyhow!("no micro-batch gradients to apply"))
    }
}
