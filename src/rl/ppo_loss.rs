//! PPO's clipped losses on the tape, as TRL 0.11's `PPOTrainer.loss`, with
//! its statistics, and the two per-minibatch / per-epoch decisions.
//!
//! All tensors are `[B, T]` f32 with the same shape; `mask` is 1 on the
//! response tokens. The new log-probs / values are [`Var`]s (gradients flow
//! into them); everything from the rollout is a plain [`Tensor`] (a constant).
//! Statistics are computed on the host in f64 from copies of the same inputs
//! ([`policy_stats`], [`value_stats`] in `ppo_stats.rs`). [`ppo_loss`] reads
//! the minibatch back for them (TRL also reads `avg_ratio.item()`);
//! [`PpoMinibatch::loss`] is its loss alone, for a trainer that holds the
//! rollout's side on the host and reads back only the new log-probs and values.

use anyhow::{ensure, Result};

use super::inputs::host;
pub use super::ppo_stats::{policy_stats, value_stats, PolicyStats, PpoLossStats, ValueStats};
use crate::ops::elementwise::{self as ew, UnaryOp};
use crate::ops::reduce;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// The rollout side of one PPO minibatch, each `[B, T]`.
#[derive(Clone, Copy, Debug)]
pub struct PpoMinibatch<'a> {
    pub logp_old: &'a Tensor,
    /// `V_old` (TRL trains against the masked values from `compute_advantages`).
    pub values: &'a Tensor,
    /// Whitened advantages.
    pub advantages: &'a Tensor,
    pub returns: &'a Tensor,
    pub mask: &'a Tensor,
}

fn check_shapes(what: &str, x: &Var, others: &[(&str, &Tensor)]) -> Result<()> {
    for (name, t) in others {
        ensure!(
            t.shape() == x.shape(),
            "{what}: {name} {:?} vs {:?}",
            t.shape(),
            x.shape()
        );
    }
    Ok(())
}

/// PPO's clipped surrogate (TRL `pg_loss`), with `ratio = exp(logp_new −
/// logp_old)` and ε = `cliprange`:
///   `pg_loss = masked_mean(max(−A·ratio, −A·clip(ratio, 1−ε, 1+ε)), m)`.
/// Gradient flows into `logp_new` only. Where the clip is inactive the two
/// terms tie, and the max splits the gradient between two equal paths (as
/// torch does), so it is the unclipped gradient. Statistics: [`policy_stats`].
pub fn clipped_surrogate(
    tape: &Tape,
    logp_new: &Var,
    logp_old: &Tensor,
    advantages: &Tensor,
    mask: &Tensor,
    cliprange: f32,
) -> Result<Var> {
    check_shapes(
        "clipped_surrogate",
        logp_new,
        &[
            ("logp_old", logp_old),
            ("advantages", advantages),
            ("mask", mask),
        ],
    )?;
    let neg = UnaryOp::Scale {
        alpha: -1.0,
        beta: 0.0,
    };
    let old = tape.constant(logp_old.clone());
    let neg_adv = tape.constant(ew::unary_forward(neg, advantages)?);
    let m = tape.constant(mask.clone());
    let ratio = ew::exp(tape, &ew::sub(tape, logp_new, &old)?)?;
    let l1 = ew::mul(tape, &neg_adv, &ratio)?;
    let clipped = ew::clamp(tape, &ratio, 1.0 - cliprange, 1.0 + cliprange)?;
    let l2 = ew::mul(tape, &neg_adv, &clipped)?;
    reduce::masked_mean(tape, &ew::maximum(tape, &l1, &l2)?, &m)
}

/// PPO's clipped value loss (TRL `vf_loss`), with ε_v = `cliprange_value`:
///   `Vclip = clip(V_new, V_old − ε_v, V_old + ε_v)` (TRL's `clip_by_value`:
///   `max(min(V, V_old + ε_v), V_old − ε_v)`),
///   `vf_loss = ½·masked_mean(max((V_new − R)², (Vclip − R)²), m)`.
/// Gradient flows into `v_new` only. Not multiplied by `vf_coef`.
/// Statistics: [`value_stats`].
pub fn clipped_value_loss(
    tape: &Tape,
    v_new: &Var,
    v_old: &Tensor,
    returns: &Tensor,
    mask: &Tensor,
    cliprange_value: f32,
) -> Result<Var> {
    check_shapes(
        "clipped_value_loss",
        v_new,
        &[("v_old", v_old), ("returns", returns), ("mask", mask)],
    )?;
    let shift = |beta: f32| {
        ew::unary_forward(UnaryOp::Scale { alpha: 1.0, beta }, v_old).map(|t| tape.constant(t))
    };
    let (lo, hi) = (shift(-cliprange_value)?, shift(cliprange_value)?);
    let ret = tape.constant(returns.clone());
    let m = tape.constant(mask.clone());
    let vclip = ew::maximum(tape, &ew::minimum(tape, v_new, &hi)?, &lo)?;
    let e1 = ew::square(tape, &ew::sub(tape, v_new, &ret)?)?;
    let e2 = ew::square(tape, &ew::sub(tape, &vclip, &ret)?)?;
    let mean = reduce::masked_mean(tape, &ew::maximum(tape, &e1, &e2)?, &m)?;
    ew::scale(tape, &mean, 0.5, 0.0)
}

/// TRL's total minibatch loss `pg_loss + vf_coef·vf_loss` and all its
/// statistics. TRL zeroes this loss when [`skip_minibatch`] says so; check
/// `stats.policy.ratio_mean` before calling `backward`.
pub fn ppo_loss(
    tape: &Tape,
    logp_new: &Var,
    v_new: &Var,
    mb: &PpoMinibatch,
    cliprange: f32,
    cliprange_value: f32,
    vf_coef: f32,
) -> Result<(Var, PpoLossStats)> {
    let loss = mb.loss(tape, logp_new, v_new, cliprange, cliprange_value, vf_coef)?;
    let [new, old, adv, m] = [logp_new.tensor(), mb.logp_old, mb.advantages, mb.mask].map(host);
    let policy = policy_stats(&new?, &old?, &adv?, &m?, cliprange)?;
    let [v, vo, r, m] = [v_new.tensor(), mb.values, mb.returns, mb.mask].map(host);
    let value = value_stats(&v?, &vo?, &r?, &m?, cliprange_value)?;
    Ok((loss, PpoLossStats::new(policy, value, vf_coef)))
}

impl PpoMinibatch<'_> {
    /// [`ppo_loss`]'s loss alone, nothing read back (for a trainer that
    /// computes the statistics from its own host copies with
    /// [`policy_stats`] and [`value_stats`]).
    pub fn loss(
        &self,
        tape: &Tape,
        logp_new: &Var,
        v_new: &Var,
        cliprange: f32,
        cliprange_value: f32,
        vf_coef: f32,
    ) -> Result<Var> {
        let (old, adv, m) = (self.logp_old, self.advantages, self.mask);
        let pg = clipped_surrogate(tape, logp_new, old, adv, m, cliprange)?;
        let (v_old, ret) = (self.values, self.returns);
        let vf = clipped_value_loss(tape, v_new, v_old, ret, m, cliprange_value)?;
        ew::add(tape, &pg, &ew::scale(tape, &vf, vf_coef, 0.0)?)
    }
}

/// TRL's ratio guard: skip the minibatch when `masked_mean(ratio) >
/// ratio_threshold` (default 10). TRL implements the skip by multiplying the
/// losses by 0 and still runs backward and `optimizer.step()`, so Adam's
/// moments and weight decay still move the weights on a "skipped" minibatch;
/// a trainer that skips the step outright differs from TRL only there.
pub fn skip_minibatch(ratio_mean: f64, ratio_threshold: f64) -> bool {
    ratio_mean > ratio_threshold
}

/// TRL's `early_stopping`: after each PPO epoch, stop this batch's epochs
/// (and drop the pending gradient) when the epoch's **last** minibatch has
/// `policykl > 1.5·target_kl` (the other minibatches are not looked at).
pub fn early_stop(policykl: f64, target_kl: f64) -> bool {
    policykl > 1.5 * target_kl
}
