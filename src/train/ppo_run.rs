//! The plain training loop over [`PpoTrainer::step`] and the prompt
//! sources it draws from.

use anyhow::{ensure, Result};

use super::metrics::MetricsLog;
use super::ppo::PpoTrainer;
use super::ppo_report::PpoStepReport;

impl PpoTrainer {
    /// Runs steps until `total_steps` are done (a restored trainer carries
    /// on from its step), logging each step's metrics to `log` and calling
    /// `progress` after each. Returns the health summary lines.
    pub fn run(
        &mut self,
        total_steps: u64,
        prompts: &mut dyn PromptSource,
        mut log: Option<&mut MetricsLog>,
        progress: &mut dyn FnMut(&PpoStepReport),
    ) -> Result<Vec<String>> {
        while self.step < total_steps {
            let batch = prompts.batch(self.step + 1, self.cfg.batch_size)?;
            let rep = self.step(&batch)?;
            if let Some(log) = log.as_deref_mut() {
                log.write(rep.step, &rep.metrics())?;
            }
            progress(&rep);
        }
        Ok(self.health.summary())
    }
}

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
