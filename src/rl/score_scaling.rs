//! TRL 0.11's score post-processing in `PPOTrainer.step`, before the scores
//! enter the KL-penalised rewards:
//! - `use_score_scaling`: update [`RunningMoments`] with the batch, then
//!   divide the scores by the running std (+ f32 eps); with `use_score_norm`
//!   also subtract the running mean first;
//! - `score_clip`: clip to `[−score_clip, score_clip]` (after scaling).
//!
//! `use_score_norm` without `use_score_scaling` does nothing, as in TRL.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

/// TRL's `RunningMoments` (single process): Chan et al.'s parallel update
/// of the mean and the population variance over every score seen, starting
/// from mean 0, var 1, std 1 and a count of 1e-24.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunningMoments {
    pub mean: f64,
    /// Unbiased std over all scores seen (what the scores are divided by).
    pub std: f64,
    /// Population variance over all scores seen.
    pub var: f64,
    pub count: f64,
}

impl Default for RunningMoments {
    fn default() -> Self {
        RunningMoments {
            mean: 0.0,
            std: 1.0,
            var: 1.0,
            count: 1e-24,
        }
    }
}

impl RunningMoments {
    /// Folds in a batch; returns the batch's mean and unbiased std (as TRL).
    /// TRL computes the batch moments in the scores' dtype (f32 here) and
    /// the running ones in f64 Python floats; both are done in f64 here.
    pub fn update(&mut self, xs: &[f32]) -> Result<(f64, f64)> {
        ensure!(!xs.is_empty(), "no scores to update the running moments");
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        let delta = mean - self.mean;
        let total = self.count + n;
        let old_sum = self.var * self.count + delta * delta * self.count * n / total;
        let new_var = (old_sum + var * n) / total;
        self.mean += delta * n / total;
        self.std = (new_var * total / (total - 1.0)).sqrt();
        self.var = new_var;
        self.count = total;
        Ok((mean, (var * n / (n - 1.0)).sqrt()))
    }
}

/// The score options of TRL's `PPOConfig` (all off by default).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ScoreOptions {
    pub use_score_scaling: bool,
    pub use_score_norm: bool,
    pub score_clip: Option<f64>,
}

/// Scales, normalises and clips `scores` in place as TRL does, updating
/// `running` when scaling is on.
pub fn process_scores(
    scores: &mut [f32],
    opts: &ScoreOptions,
    running: &mut RunningMoments,
) -> Result<()> {
    if opts.use_score_scaling {
        running.update(scores)?;
        let factor = running.std as f32 + f32::EPSILON;
        let mean = running.mean as f32;
        for s in scores.iter_mut() {
            *s = if opts.use_score_norm {
                (*s - mean) / factor
            } else {
                *s / factor
            };
        }
    }
    if let Some(c) = opts.score_clip {
        ensure!(c >= 0.0, "score_clip must be ≥ 0 (got {c})");
        let c = c as f32;
        for s in scores.iter_mut() {
            *s = s.clamp(-c, c);
        }
    }
    Ok(())
}
