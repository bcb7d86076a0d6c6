//! PPO's clipped losses on the tape, as TRL 0.11's `PPOTrainer.loss`, with
//! its statistics, and the two per-minibatch / per-epoch decisions.
//!
//! All tensors are `[B, T]` f32 with the same shape; `mask` is 1 on the
//! response tokens. The new log-probs / values are [`Var`]s (gradients flow
//! into them); everything from the rollout is a plain [`Tensor`] (a constant).
//! Statistics are recomputed on the host in f64 from the same inputs (a
//! read-back of the minibatch, which TRL also does for `avg_ratio.item()`).

use anyhow::{ensure, Result};

use super::inputs::host;
use crate::ops::elementwise::{self as ew, UnaryOp};
use crate::ops::reduce;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// The policy half of TRL's loss statistics (TRL's names in the docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyStats {
    /// `loss/policy`: the value of the clipped surrogate.
    pub pg_loss: f64,
    /// `policy/clipfrac`: `masked_mean(pg_losses2 > pg_losses)`.
    pub clipfrac: f64,
    /// `policy/approxkl`: `½·masked_mean((logp_new − logp_old)²)`.
    pub approxkl: f64,
    /// `policy/policykl`: `masked_mean(logp_old − logp_new)`.
    pub policykl: f64,
    /// `masked_mean(ratio)`: TRL's `avg_ratio`, see [`skip_minibatch`].
    pub ratio_mean: f64,
    /// `policy/advantages_mean`: `masked_mean(A)`.
    pub advantages_mean: f64,
}

/// The value half of TRL's loss statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValueStats {
    /// `loss/value`: `½·masked_mean(max((V − R)², (Vclip − R)²))`, not yet
    /// multiplied by `vf_coef`.
    pub vf_loss: f64,
    /// `val/clipfrac`: `masked_mean((Vclip − R)² > (V − R)²)`.
    pub clipfrac: f64,
    /// `val/vpred`: `masked_mean(V_new)`.
    pub vpred: f64,
    /// `val/error`: `masked_mean((V_new − R)²)`.
    pub error: f64,
    /// `val/mean`, `val/var`: masked mean and unbiased variance of `V_old`
    /// (NaN when the mask holds fewer than 2 tokens, as in TRL).
    pub mean: f64,
    pub var: f64,
    /// `returns/mean`, `returns/var`.
    pub returns_mean: f64,
    pub returns_var: f64,
}

/// Everything TRL's `loss` reports for one minibatch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PpoLossStats {
    pub policy: PolicyStats,
    pub value: ValueStats,
    /// `loss/total = pg_loss + vf_coef·vf_loss`.
    pub total: f64,
}

impl PpoLossStats {
    /// What TRL logs for a minibatch skipped by [`skip_minibatch`]: the three
    /// losses are multiplied by 0, the other statistics are kept.
    pub fn skipped(mut self) -> Self {
        self.policy.pg_loss = 0.0;
        self.value.vf_loss = 0.0;
        self.total = 0.0;
        self
    }

    /// Field-wise mean over a step's minibatches (TRL's `stack_dicts` then
    /// `mean(axis=0)`), the basis of the step's `ppo/...` statistics.
    pub fn mean(all: &[PpoLossStats]) -> PpoLossStats {
        let n = all.len() as f64;
        let avg = |f: &dyn Fn(&PpoLossStats) -> f64| all.iter().map(f).sum::<f64>() / n;
        PpoLossStats {
            policy: PolicyStats {
                pg_loss: avg(&|s| s.policy.pg_loss),
                clipfrac: avg(&|s| s.policy.clipfrac),
                approxkl: avg(&|s| s.policy.approxkl),
                policykl: avg(&|s| s.policy.policykl),
                ratio_mean: avg(&|s| s.policy.ratio_mean),
                advantages_mean: avg(&|s| s.policy.advantages_mean),
            },
            value: ValueStats {
                vf_loss: avg(&|s| s.value.vf_loss),
                clipfrac: avg(&|s| s.value.clipfrac),
                vpred: avg(&|s| s.value.vpred),
                error: avg(&|s| s.value.error),
                mean: avg(&|s| s.value.mean),
                var: avg(&|s| s.value.var),
                returns_mean: avg(&|s| s.value.returns_mean),
                returns_var: avg(&|s| s.value.returns_var),
            },
            total: avg(&|s| s.total),
        }
    }

    /// `ppo/val/var_explained = 1 − val/error / returns/var`.
    pub fn var_explained(&self) -> f64 {
        super::step_stats::var_explained(self.value.error, self.value.returns_var)
    }
}

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

/// `Σ x·m / Σ m` in f64.
fn mmean(x: impl Iterator<Item = f64>, m: &[f64]) -> f64 {
    x.zip(m).map(|(x, m)| x * m).sum::<f64>() / m.iter().sum::<f64>()
}

/// Masked unbiased variance; NaN where TRL would divide by zero.
fn mvar(x: &[f64], m: &[f64]) -> f64 {
    let mu = mmean(x.iter().copied(), m);
    let n: f64 = m.iter().sum();
    mmean(x.iter().map(|v| (v - mu).powi(2)), m) * n / (n - 1.0)
}

/// PPO's clipped surrogate (TRL `pg_loss`), with `ratio = exp(logp_new −
/// logp_old)` and ε = `cliprange`:
///   `pg_loss = masked_mean(max(−A·ratio, −A·clip(ratio, 1−ε, 1+ε)), m)`.
/// Gradient flows into `logp_new` only. Where the clip is inactive the two
/// terms tie, and the max splits the gradient between two equal paths (as
/// torch does), so it is the unclipped gradient.
pub fn clipped_surrogate(
    tape: &Tape,
    logp_new: &Var,
    logp_old: &Tensor,
    advantages: &Tensor,
    mask: &Tensor,
    cliprange: f32,
) -> Result<(Var, PolicyStats)> {
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
    let loss = reduce::masked_mean(tape, &ew::maximum(tape, &l1, &l2)?, &m)?;

    let (new, old, adv, m) = (
        host(logp_new.tensor())?,
        host(logp_old)?,
        host(advantages)?,
        host(mask)?,
    );
    let (lo, hi) = (1.0 - cliprange as f64, 1.0 + cliprange as f64);
    let d: Vec<f64> = new.iter().zip(&old).map(|(n, o)| n - o).collect();
    let ratio: Vec<f64> = d.iter().map(|d| d.exp()).collect();
    let pair = |i: usize| (-adv[i] * ratio[i], -adv[i] * ratio[i].clamp(lo, hi));
    let n = d.len();
    let stats = PolicyStats {
        pg_loss: mmean((0..n).map(|i| pair(i).0.max(pair(i).1)), &m),
        clipfrac: mmean((0..n).map(|i| (pair(i).1 > pair(i).0) as u8 as f64), &m),
        approxkl: 0.5 * mmean(d.iter().map(|d| d * d), &m),
        policykl: mmean(d.iter().map(|d| -d), &m),
        ratio_mean: mmean(ratio.iter().copied(), &m),
        advantages_mean: mmean(adv.iter().copied(), &m),
    };
    Ok((loss, stats))
}

/// PPO's clipped value loss (TRL `vf_loss`), with ε_v = `cliprange_value`:
///   `Vclip = clip(V_new, V_old − ε_v, V_old + ε_v)` (TRL's `clip_by_value`:
///   `max(min(V, V_old + ε_v), V_old − ε_v)`),
///   `vf_loss = ½·masked_mean(max((V_new − R)², (Vclip − R)²), m)`.
/// Gradient flows into `v_new` only. Not multiplied by `vf_coef`.
pub fn clipped_value_loss(
    tape: &Tape,
    v_new: &Var,
    v_old: &Tensor,
    returns: &Tensor,
    mask: &Tensor,
    cliprange_value: f32,
) -> Result<(Var, ValueStats)> {
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
    let loss = ew::scale(tape, &mean, 0.5, 0.0)?;

    let (v, vo, r, m) = (
        host(v_new.tensor())?,
        host(v_old)?,
        host(returns)?,
        host(mask)?,
    );
    let eps = cliprange_value as f64;
    let n = v.len();
    let pair = |i: usize| {
        let vc = v[i].min(vo[i] + eps).max(vo[i] - eps);
        ((v[i] - r[i]).powi(2), (vc - r[i]).powi(2))
    };
    let stats = ValueStats {
        vf_loss: 0.5 * mmean((0..n).map(|i| pair(i).0.max(pair(i).1)), &m),
        clipfrac: mmean((0..n).map(|i| (pair(i).1 > pair(i).0) as u8 as f64), &m),
        vpred: mmean(v.iter().copied(), &m),
        error: mmean((0..n).map(|i| pair(i).0), &m),
        mean: mmean(vo.iter().copied(), &m),
        var: mvar(&vo, &m),
        returns_mean: mmean(r.iter().copied(), &m),
        returns_var: mvar(&r, &m),
    };
    Ok((loss, stats))
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
    let (pg, policy) = clipped_surrogate(
        tape,
        logp_new,
        mb.logp_old,
        mb.advantages,
        mb.mask,
        cliprange,
    )?;
    let (vf, value) =
        clipped_value_loss(tape, v_new, mb.values, mb.returns, mb.mask, cliprange_value)?;
    let loss = ew::add(tape, &pg, &ew::scale(tape, &vf, vf_coef, 0.0)?)?;
    let total = policy.pg_loss + vf_coef as f64 * value.vf_loss;
    Ok((
        loss,
        PpoLossStats {
            policy,
            value,
            total,
        },
    ))
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
