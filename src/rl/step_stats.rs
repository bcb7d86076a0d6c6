//! PPO step statistics, as TRL 0.11's `record_step_stats` logs them (names in
//! the field docs). Host-side, on the rollout batch `[B, T]`.

use anyhow::{ensure, Result};

use super::advantages::masked_mean;
use super::inputs::batch_rows;

/// One PPO step's rollout statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct StepStats {
    /// `objective/kl`: `mean_b Σ_t kl_{b,t}·m_{b,t}` (batch mean of the
    /// per-sequence **sums**; this is what the KL controller sees).
    pub kl: f64,
    /// `objective/kl_dist`: the per-sequence sums `Σ_t kl·m`, `[B]`.
    pub kl_dist: Vec<f64>,
    /// `objective/entropy`: `mean_b Σ_t −logp_{b,t}·m_{b,t}` (a sampled
    /// estimate of the sequence entropy).
    pub entropy: f64,
    /// `objective/kl_coef`: the β used for the rewards.
    pub kl_coef: f64,
    /// `ppo/mean_non_score_reward`: `masked_mean(−β·kl, m)` over the batch.
    pub mean_non_score_reward: f64,
    /// `ppo/mean_scores`: mean of the scores.
    pub mean_scores: f64,
    /// `ppo/std_scores`: unbiased std of the scores (NaN for B = 1, as torch).
    pub std_scores: f64,
    /// TRL warns when `objective/kl < −1` ("precursor for failed training":
    /// usually truncation sampling such as top-k/top-p during generation).
    pub negative_kl_warning: bool,
}

/// Computes [`StepStats`] from `scores [B]`, and `logp`, `kl`,
/// `non_score_rewards`, `mask` `[B, T]` (the outputs of
/// [`kl_penalized_rewards`](super::advantages::kl_penalized_rewards)).
pub fn step_stats(
    scores: &[f32],
    logp: &[f32],
    kl: &[f32],
    non_score_rewards: &[f32],
    mask: &[f32],
    t: usize,
    kl_coef: f64,
) -> Result<StepStats> {
    let b = batch_rows("step_stats", mask.len(), t)?;
    for (name, len) in [
        ("logp", logp.len()),
        ("kl", kl.len()),
        ("non_score_rewards", non_score_rewards.len()),
    ] {
        ensure!(
            len == mask.len(),
            "step_stats: {name} has {len} elements, mask {}",
            mask.len()
        );
    }
    ensure!(
        scores.len() == b,
        "step_stats: {} scores for {b} rows",
        scores.len()
    );
    let row_sum = |x: &[f32], row: usize, sign: f64| -> f64 {
        (row * t..(row + 1) * t)
            .map(|i| sign * x[i] as f64 * mask[i] as f64)
            .sum()
    };
    let kl_dist: Vec<f64> = (0..b).map(|r| row_sum(kl, r, 1.0)).collect();
    let entropy = (0..b).map(|r| row_sum(logp, r, -1.0)).sum::<f64>() / b as f64;
    let mean_scores = scores.iter().map(|&s| s as f64).sum::<f64>() / b as f64;
    let ss: f64 = scores
        .iter()
        .map(|&s| (s as f64 - mean_scores).powi(2))
        .sum();
    let kl_mean = kl_dist.iter().sum::<f64>() / b as f64;
    Ok(StepStats {
        kl: kl_mean,
        kl_dist,
        entropy,
        kl_coef,
        mean_non_score_reward: masked_mean(non_score_rewards, mask)?,
        mean_scores,
        std_scores: (ss / (b as f64 - 1.0)).sqrt(),
        negative_kl_warning: kl_mean < -1.0,
    })
}

/// `ppo/val/var_explained = 1 − val/error / returns/var`. TRL applies it to
/// the step's minibatch-averaged `val/error` and `returns/var` (see
/// [`PpoLossStats::mean`](super::ppo_loss::PpoLossStats::mean)).
pub fn var_explained(val_error: f64, returns_var: f64) -> f64 {
    1.0 - val_error / returns_var
}
