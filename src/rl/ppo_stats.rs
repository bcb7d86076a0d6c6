//! TRL's PPO loss statistics, computed on the host in f64 from copies of
//! the minibatch the losses of `ppo_loss.rs` saw on the tape (TRL logs them
//! per minibatch; a trainer averages them over a step with
//! [`PpoLossStats::mean`]).

use anyhow::{ensure, Result};

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
    /// `masked_mean(ratio)`: TRL's `avg_ratio`, see
    /// [`skip_minibatch`](super::skip_minibatch).
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
    /// The two halves and `loss/total = pg_loss + vf_coef·vf_loss`.
    pub fn new(policy: PolicyStats, value: ValueStats, vf_coef: f32) -> Self {
        let total = policy.pg_loss + vf_coef as f64 * value.vf_loss;
        PpoLossStats {
            policy,
            value,
            total,
        }
    }

    /// What TRL logs for a minibatch skipped by
    /// [`skip_minibatch`](super::skip_minibatch): the three losses are
    /// multiplied by 0, the other statistics are kept.
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

/// Fails unless each of `xs` has the mask's length.
fn check_lengths(what: &str, xs: [(&str, &[f64]); 3], m: &[f64]) -> Result<()> {
    for (name, x) in xs {
        let (len, n) = (x.len(), m.len());
        ensure!(len == n, "{what}: {name} has {len} elements, mask {n}");
    }
    Ok(())
}

/// The statistics of [`clipped_surrogate`](super::clipped_surrogate) from
/// host copies of its inputs.
pub fn policy_stats(
    new: &[f64],
    old: &[f64],
    adv: &[f64],
    m: &[f64],
    cliprange: f32,
) -> Result<PolicyStats> {
    let named = [("logp_new", new), ("logp_old", old), ("advantages", adv)];
    check_lengths("policy_stats", named, m)?;
    let (lo, hi) = (1.0 - cliprange as f64, 1.0 + cliprange as f64);
    let d: Vec<f64> = new.iter().zip(old).map(|(n, o)| n - o).collect();
    let ratio: Vec<f64> = d.iter().map(|d| d.exp()).collect();
    let pair = |i: usize| (-adv[i] * ratio[i], -adv[i] * ratio[i].clamp(lo, hi));
    let n = d.len();
    Ok(PolicyStats {
        pg_loss: mmean((0..n).map(|i| pair(i).0.max(pair(i).1)), m),
        clipfrac: mmean((0..n).map(|i| (pair(i).1 > pair(i).0) as u8 as f64), m),
        approxkl: 0.5 * mmean(d.iter().map(|d| d * d), m),
        policykl: mmean(d.iter().map(|d| -d), m),
        ratio_mean: mmean(ratio.iter().copied(), m),
        advantages_mean: mmean(adv.iter().copied(), m),
    })
}

/// The statistics of [`clipped_value_loss`](super::clipped_value_loss) from
/// host copies of its inputs (`v` new, `vo` old values, `r` returns).
pub fn value_stats(
    v: &[f64],
    vo: &[f64],
    r: &[f64],
    m: &[f64],
    cliprange_value: f32,
) -> Result<ValueStats> {
    let named = [("values_new", v), ("values_old", vo), ("returns", r)];
    check_lengths("value_stats", named, m)?;
    let eps = cliprange_value as f64;
    let n = v.len();
    let pair = |i: usize| {
        let vc = v[i].min(vo[i] + eps).max(vo[i] - eps);
        ((v[i] - r[i]).powi(2), (vc - r[i]).powi(2))
    };
    Ok(ValueStats {
        vf_loss: 0.5 * mmean((0..n).map(|i| pair(i).0.max(pair(i).1)), m),
        clipfrac: mmean((0..n).map(|i| (pair(i).1 > pair(i).0) as u8 as f64), m),
        vpred: mmean(v.iter().copied(), m),
        error: mmean((0..n).map(|i| pair(i).0), m),
        mean: mmean(vo.iter().copied(), m),
        var: mvar(vo, m),
        returns_mean: mmean(r.iter().copied(), m),
        returns_var: mvar(r, m),
    })
}
