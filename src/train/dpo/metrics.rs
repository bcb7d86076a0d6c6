//! The direct-alignment trainer's reports: TRL's metric names per step and
//! for eval, and the size-weighted means eval takes over its batches.

use serde::Serialize;

/// Batch means of TRL's reward metrics (`rewards/*`, `logps/*`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DirectMetrics {
    pub rewards_chosen: f64,
    pub rewards_rejected: f64,
    pub rewards_margins: f64,
    /// Paired losses only: the fraction of pairs with a positive margin.
    pub rewards_accuracies: Option<f64>,
    /// KTO only: the clamped KL estimate `z_ref`.
    pub kl: Option<f64>,
    /// Mean policy log-probs of chosen (desirable) and rejected completions.
    pub logps_chosen: f64,
    pub logps_rejected: f64,
    /// TRL 1.16's `logits/chosen` and `logits/rejected`: the mean raw logit
    /// (over the vocabulary) at the positions that score chosen (rejected,
    /// for KTO desirable/undesirable) completion tokens, weighted by tokens
    /// over the batch. See [`crate::train::logprobs::LogitSums`].
    pub logits_chosen: f64,
    pub logits_rejected: f64,
    /// Chosen (desirable) and rejected (undesirable) completions in the batch.
    pub count_chosen: usize,
    pub count_rejected: usize,
}

impl DirectMetrics {
    /// TRL's names, with `eval_` in front for eval (as transformers' Trainer
    /// prefixes eval metrics).
    pub fn named(&self, eval: bool) -> Vec<(&'static str, f64)> {
        let n = |train: &'static str, ev: &'static str| if eval { ev } else { train };
        let mut out = vec![
            (
                n("rewards/chosen", "eval_rewards/chosen"),
                self.rewards_chosen,
            ),
            (
                n("rewards/rejected", "eval_rewards/rejected"),
                self.rewards_rejected,
            ),
            (
                n("rewards/margins", "eval_rewards/margins"),
                self.rewards_margins,
            ),
            (n("logps/chosen", "eval_logps/chosen"), self.logps_chosen),
            (
                n("logps/rejected", "eval_logps/rejected"),
                self.logps_rejected,
            ),
            (n("logits/chosen", "eval_logits/chosen"), self.logits_chosen),
            (
                n("logits/rejected", "eval_logits/rejected"),
                self.logits_rejected,
            ),
        ];
        if let Some(a) = self.rewards_accuracies {
            out.push((n("rewards/accuracies", "eval_rewards/accuracies"), a));
        }
        if let Some(k) = self.kl {
            out.push((n("kl", "eval_kl"), k));
        }
        out
    }
}

/// What one [`super::trainer::DpoTrainer::step`] did.
#[derive(Clone, Debug, Serialize)]
pub struct DpoStepReport {
    /// 1-based: the number of steps taken including this one.
    pub step: u64,
    pub epoch: u64,
    pub loss: f64,
    pub metrics: DirectMetrics,
    pub grad_norm: f32,
    pub lr: f32,
    /// False when the optimizer skipped a non-finite step.
    pub applied: bool,
}

impl DpoStepReport {
    /// `loss`, the reward metrics, `grad_norm`, `learning_rate`.
    pub fn named(&self) -> Vec<(&'static str, f64)> {
        let mut out = vec![("loss", self.loss)];
        out.extend(self.metrics.named(false));
        out.push(("grad_norm", self.grad_norm as f64));
        out.push(("learning_rate", self.lr as f64));
        out
    }
}

/// [`super::trainer::DpoTrainer::evaluate`]'s means over a held-out set.
#[derive(Clone, Debug, Serialize)]
pub struct DpoEvalReport {
    pub loss: f64,
    pub metrics: DirectMetrics,
    pub examples: usize,
}

impl DpoEvalReport {
    pub fn named(&self) -> Vec<(&'static str, f64)> {
        let mut out = vec![("eval_loss", self.loss)];
        out.extend(self.metrics.named(true));
        out
    }
}

/// Mean (NaN when empty, like TRL's per-group means).
pub(super) fn mean(x: &[f32]) -> f64 {
    x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64
}

/// Sums of batch metrics for eval: the loss and accuracy weighted by batch
/// size, chosen/rejected values by their counts (so KTO batches with one
/// group missing still average right).
#[derive(Default)]
pub(super) struct Acc {
    w: f64,
    loss: f64,
    /// (Σ count·reward, Σ count·logps, Σ count·logits, Σ count) for
    /// chosen, then rejected.
    groups: [(f64, f64, f64, f64); 2],
    acc: Option<f64>,
    kl: Option<f64>,
}

impl Acc {
    pub(super) fn add(&mut self, w: f64, loss: f64, m: &DirectMetrics) {
        let sides = [
            (
                m.rewards_chosen,
                m.logps_chosen,
                m.logits_chosen,
                m.count_chosen,
            ),
            (
                m.rewards_rejected,
                m.logps_rejected,
                m.logits_rejected,
                m.count_rejected,
            ),
        ];
        for (g, (r, l, x, n)) in self.groups.iter_mut().zip(sides) {
            if n > 0 {
                let n = n as f64;
                *g = (g.0 + n * r, g.1 + n * l, g.2 + n * x, g.3 + n);
            }
        }
        self.w += w;
        self.loss += w * loss;
        let add = |slot: &mut Option<f64>, v: Option<f64>| {
            if let Some(v) = v {
                *slot = Some(slot.unwrap_or(0.0) + w * v);
            }
        };
        add(&mut self.acc, m.rewards_accuracies);
        add(&mut self.kl, m.kl);
    }

    pub(super) fn finish(self, examples: usize) -> DpoEvalReport {
        let w = self.w;
        let [c, r] = self.groups;
        let (chosen, rejected) = (c.0 / c.3, r.0 / r.3);
        DpoEvalReport {
            loss: self.loss / w,
            metrics: DirectMetrics {
                rewards_chosen: chosen,
                rewards_rejected: rejected,
                rewards_margins: chosen - rejected,
                rewards_accuracies: self.acc.map(|a| a / w),
                kl: self.kl.map(|k| k / w),
                logps_chosen: c.1 / c.3,
                logps_rejected: r.1 / r.3,
                logits_chosen: c.2 / c.3,
                logits_rejected: r.2 / r.3,
                count_chosen: c.3 as usize,
                count_rejected: r.3 as usize,
            },
            examples,
        }
    }
}
