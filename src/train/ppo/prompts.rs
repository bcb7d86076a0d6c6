//! Where each PPO step's prompts come from: any [`PromptSource`] (a closure
//! of the step works), or [`PromptCycle`] over a fixed prompt set.

use anyhow::{ensure, Result};

/// Prompts for each step (token ids, unpadded).
pub trait PromptSource {
    /// The prompts of 1-based `step`; a pure function of `step` keeps
    /// resumed runs exact.
    fn batch(&mut self, step: u64, batch_size: usize) -> Result<Vec<Vec<i32>>>;
}

impl<F: FnMut(u64, usize) -> Result<Vec<Vec<i32>>>> PromptSource for F {
    fn batch(&mut self, step: u64, batch_size: usize) -> Result<Vec<Vec<i32>>> {
        self(step, batch_size)
    }
}

/// Cycles through a prompt set in epochs, each in a fresh seeded order
/// (`data::shuffled(n, seed + epoch)`); step s takes items
/// `(s − 1)·batch_size ..` of that endless sequence.
pub struct PromptCycle {
    pub prompts: Vec<Vec<i32>>,
    pub seed: u64,
}

impl PromptSource for PromptCycle {
    fn batch(&mut self, step: u64, batch_size: usize) -> Result<Vec<Vec<i32>>> {
        let n = self.prompts.len();
        ensure!(n > 0, "no prompts");
        let start = (step.saturating_sub(1) as usize) * batch_size;
        let mut order: Option<(usize, Vec<usize>)> = None;
        let mut out = Vec::with_capacity(batch_size);
        for i in start..start + batch_size {
            let epoch = i / n;
            if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
                let seed = self.seed.wrapping_add(epoch as u64);
                order = Some((epoch, crate::data::shuffled(n, seed)));
            }
            let (_, o) = order.as_ref().unwrap();
            out.push(self.prompts[o[i % n]].clone());
        }
        Ok(out)
    }
}
