//! What one PPO step reports: every statistic under TRL 0.11's metric names
//! (`objective/…`, `env/…`, `ppo/…`), engine's extras (k1/k3 KL, skip
//! counters, response shape) and the time per phase.

use super::health::HealthInput;
use super::rollout::{PhaseTimes, Rollout};
use crate::rl::{KlEstimator, PpoLossStats, StepStats};

/// One PPO step. Floats are NaN where a step had nothing to measure (e.g.
/// the train statistics of a step whose rollout was not finite).
#[derive(Clone, Debug)]
pub struct PpoStepReport {
    /// 1-based number of this step.
    pub step: u64,
    /// Why the update was skipped entirely (None: it ran).
    pub skipped: Option<String>,

    /// `objective/kl`: batch mean of the per-sequence KL sums (configured
    /// estimator), what the KL controller sees.
    pub kl: f64,
    /// The same with k1 and with k3, whatever the estimator (health checks).
    pub kl_k1: f64,
    pub kl_k3: f64,
    /// `objective/kl_coef`: the β of this step's rewards.
    pub kl_coef: f64,
    /// `objective/entropy`: batch mean of the per-sequence Σ −log π.
    pub entropy: f64,
    /// `env/reward_mean`, `env/reward_std` (unbiased) of the raw scores.
    pub reward_mean: f64,
    pub reward_std: f64,
    /// `env/reward_component/<name>`: each component's mean raw score when
    /// the reward is a weighted mix (empty for a single source).
    pub reward_components: Vec<(String, f64)>,
    /// `ppo/mean_scores`, `ppo/std_scores`: the same of the scores trained
    /// on (after scaling/normalisation/clipping; equal to the raw ones when
    /// those are off).
    pub scores_mean: f64,
    pub scores_std: f64,
    /// `ppo/mean_non_score_reward`: masked mean of −β·kl.
    pub mean_non_score_reward: f64,
    /// `ppo/…` loss statistics, averaged over the step's minibatches as TRL
    /// does (minibatches skipped by the ratio guard count with zero losses).
    pub loss: PpoLossStats,
    /// `ppo/policy/entropy`: masked mean entropy of the policy's logits.
    pub policy_entropy: f64,
    /// `ppo/loss/entropy_bonus`: −ent_coef·entropy added to the loss (0 off).
    pub entropy_bonus: f64,
    /// Mean pre-clipping gradient norm of the applied minibatches.
    pub grad_norm: f64,
    pub lr: f64,

    /// PPO epochs run (fewer than `ppo_epochs` after an early stop).
    pub epochs: usize,
    pub early_stopped: bool,
    /// Minibatches run, skipped by the ratio guard, and vetoed by the
    /// non-finite guard (loss or gradient NaN/Inf; not applied).
    pub minibatches: usize,
    pub skipped_ratio: usize,
    pub skipped_nonfinite: usize,
    /// The trainable weights were restored from the step's snapshot
    /// (something non-finite reached them).
    pub restored: bool,

    /// Mean response length (tokens, EOS included), fraction ending on EOS.
    pub response_len_mean: f64,
    pub finished_frac: f64,
    /// Mean −log π and log ref per response token.
    pub entropy_per_token: f64,
    pub ref_logp_per_token: f64,
    /// Response tokens generated, and per second of the whole step.
    pub tokens: usize,
    pub tokens_per_s: f64,
    pub times: PhaseTimes,
    pub total_s: f64,

    /// The batch, for logging samples and the health checks.
    pub prompt_texts: Vec<String>,
    pub responses: Vec<Vec<u32>>,
    pub response_texts: Vec<String>,
    pub finished: Vec<bool>,
    pub scores: Vec<f32>,
    /// The responses' well-formed rate, when judged (logged as
    /// `env/well_formed_rate`, see [`crate::data::support::fluency`]).
    pub well_formed: Option<f64>,
    /// Health warnings raised on this step.
    pub warnings: Vec<String>,
}

impl PpoStepReport {
    /// A report with every statistic NaN and no batch.
    pub fn empty(step: u64) -> PpoStepReport {
        let nan = f64::NAN;
        let mut loss = PpoLossStats::default();
        for x in [
            &mut loss.policy.pg_loss,
            &mut loss.policy.clipfrac,
            &mut loss.policy.approxkl,
            &mut loss.policy.policykl,
            &mut loss.policy.ratio_mean,
            &mut loss.policy.advantages_mean,
            &mut loss.value.vf_loss,
            &mut loss.value.clipfrac,
            &mut loss.value.vpred,
            &mut loss.value.error,
            &mut loss.value.mean,
            &mut loss.value.var,
            &mut loss.value.returns_mean,
            &mut loss.value.returns_var,
            &mut loss.total,
        ] {
            *x = nan;
        }
        PpoStepReport {
            step,
            skipped: None,
            kl: nan,
            kl_k1: nan,
            kl_k3: nan,
            kl_coef: nan,
            entropy: nan,
            reward_mean: nan,
            reward_std: nan,
            reward_components: Vec::new(),
            scores_mean: nan,
            scores_std: nan,
            mean_non_score_reward: nan,
            loss,
            policy_entropy: nan,
            entropy_bonus: nan,
            grad_norm: nan,
            lr: nan,
            epochs: 0,
            early_stopped: false,
            minibatches: 0,
            skipped_ratio: 0,
            skipped_nonfinite: 0,
            restored: false,
            response_len_mean: nan,
            finished_frac: nan,
            entropy_per_token: nan,
            ref_logp_per_token: nan,
            tokens: 0,
            tokens_per_s: nan,
            times: PhaseTimes::default(),
            total_s: nan,
            prompt_texts: Vec::new(),
            responses: Vec::new(),
            response_texts: Vec::new(),
            finished: Vec::new(),
            scores: Vec::new(),
            well_formed: None,
            warnings: Vec::new(),
        }
    }

    /// Response-shape statistics, both KL estimators and the batch itself,
    /// from the step's rollout.
    pub(super) fn describe_rollout(&mut self, ro: &Rollout) {
        let b = ro.responses.len() as f64;
        let t = ro.t;
        let masked_sum = |x: &[f32], row: usize| -> f64 {
            (row * t..(row + 1) * t)
                .map(|i| x[i] as f64 * ro.mask[i] as f64)
                .sum()
        };
        let est_sum = |e: KlEstimator| -> f64 {
            (0..ro.responses.len())
                .map(|r| {
                    (r * t..(r + 1) * t)
                        .map(|i| {
                            ro.mask[i] as f64
                                * e.per_token(ro.logp[i] as f64, ro.ref_logp[i] as f64)
                        })
                        .sum::<f64>()
                })
                .sum::<f64>()
                / b
        };
        let n_tok: f64 = ro.mask.iter().map(|&m| m as f64).sum();
        let rows = 0..ro.responses.len();
        self.kl_k1 = est_sum(KlEstimator::K1);
        self.kl_k3 = est_sum(KlEstimator::K3);
        self.entropy_per_token =
            -rows.clone().map(|r| masked_sum(&ro.logp, r)).sum::<f64>() / n_tok;
        self.ref_logp_per_token = rows.map(|r| masked_sum(&ro.ref_logp, r)).sum::<f64>() / n_tok;
        self.tokens = n_tok as usize;
        self.response_len_mean = n_tok / b;
        self.finished_frac = ro.finished.iter().filter(|&&f| f).count() as f64 / b;
        self.times = ro.times;
        self.prompt_texts = ro.prompt_texts.clone();
        self.responses = ro.responses.clone();
        self.response_texts = ro.response_texts.clone();
        self.finished = ro.finished.clone();
        self.scores = ro.scores.clone();
        self.reward_components = ro.reward_components.clone();
    }

    /// What the health checks see of this step; `with_eos`: responses can
    /// end (an EOS is configured), so the never-ending check applies.
    /// `well_formed`: the responses' well-formed rate, when judged.
    pub(super) fn health_input(&self, with_eos: bool, well_formed: Option<f64>) -> HealthInput<'_> {
        HealthInput {
            step: self.step,
            kl: self.kl,
            kl_k1: self.kl_k1,
            kl_k3: self.kl_k3,
            entropy_per_token: self.entropy_per_token,
            reward_mean: self.reward_mean,
            reward_std: self.reward_std,
            ref_logp_per_token: self.ref_logp_per_token,
            responses: &self.responses,
            finished: if with_eos { &self.finished } else { &[] },
            well_formed,
        }
    }

    /// Copies the rollout statistics of [`crate::rl::step_stats`] (on the
    /// processed scores) and the moments of the `raw` scores.
    pub(super) fn set_step_stats(&mut self, s: &StepStats, raw: &[f32]) {
        self.kl = s.kl;
        self.kl_coef = s.kl_coef;
        self.entropy = s.entropy;
        self.scores_mean = s.mean_scores;
        self.scores_std = s.std_scores;
        let n = raw.len() as f64;
        self.reward_mean = raw.iter().map(|&x| x as f64).sum::<f64>() / n;
        let ss: f64 = raw
            .iter()
            .map(|&x| (x as f64 - self.reward_mean).powi(2))
            .sum();
        self.reward_std = (ss / (n - 1.0)).sqrt();
        self.mean_non_score_reward = s.mean_non_score_reward;
    }

    /// `(name, value)` for [`MetricsLog::write`](crate::train::metrics::MetricsLog::write):
    /// TRL's names first, then engine's.
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        let (p, v) = (&self.loss.policy, &self.loss.value);
        let t = &self.times;
        let flag = |b: bool| b as u8 as f64;
        vec![
            ("objective/kl", self.kl),
            ("objective/kl_coef", self.kl_coef),
            ("objective/entropy", self.entropy),
            ("env/reward_mean", self.reward_mean),
            ("env/reward_std", self.reward_std),
            ("ppo/mean_non_score_reward", self.mean_non_score_reward),
            ("ppo/mean_scores", self.scores_mean),
            ("ppo/std_scores", self.scores_std),
            ("ppo/returns/mean", v.returns_mean),
            ("ppo/returns/var", v.returns_var),
            ("ppo/val/vpred", v.vpred),
            ("ppo/val/error", v.error),
            ("ppo/val/clipfrac", v.clipfrac),
            ("ppo/val/mean", v.mean),
            ("ppo/val/var", v.var),
            ("ppo/val/var_explained", self.loss.var_explained()),
            ("ppo/policy/approxkl", p.approxkl),
            ("ppo/policy/policykl", p.policykl),
            ("ppo/policy/clipfrac", p.clipfrac),
            ("ppo/policy/advantages_mean", p.advantages_mean),
            ("ppo/policy/entropy", self.policy_entropy),
            ("ppo/loss/policy", p.pg_loss),
            ("ppo/loss/value", v.vf_loss),
            ("ppo/loss/total", self.loss.total),
            ("ppo/learning_rate", self.lr),
            ("ppo/loss/entropy_bonus", self.entropy_bonus),
            ("ppo/grad_norm", self.grad_norm),
            ("ppo/epochs", self.epochs as f64),
            ("ppo/early_stopped", flag(self.early_stopped)),
            ("ppo/minibatches", self.minibatches as f64),
            ("ppo/skipped/ratio", self.skipped_ratio as f64),
            ("ppo/skipped/nonfinite", self.skipped_nonfinite as f64),
            ("ppo/skipped/step", flag(self.skipped.is_some())),
            ("ppo/weights_restored", flag(self.restored)),
            ("objective/kl_k1", self.kl_k1),
            ("objective/kl_k3", self.kl_k3),
            ("env/response_len_mean", self.response_len_mean),
            ("env/finished_frac", self.finished_frac),
            ("env/entropy_per_token", self.entropy_per_token),
            ("env/ref_logp_per_token", self.ref_logp_per_token),
            ("health/warnings", self.warnings.len() as f64),
            ("time/ppo/generate", t.generate),
            ("time/ppo/forward", t.forward),
            ("time/ppo/ref", t.reference),
            ("time/ppo/score", t.score),
            ("time/ppo/train", t.train),
            ("time/ppo/total", self.total_s),
            ("time/tokens_per_s", self.tokens_per_s),
        ]
    }

    /// [`PpoStepReport::metrics`] with `env/reward_component/<name>` for
    /// each component of a mixed reward: the metrics log's row.
    pub fn rows(&self) -> Vec<(String, f64)> {
        let mut row: Vec<(String, f64)> = self
            .metrics()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        row.extend(
            self.reward_components
                .iter()
                .map(|(name, v)| (format!("env/reward_component/{name}"), *v)),
        );
        row.extend(
            self.well_formed
                .map(|v| ("env/well_formed_rate".to_string(), v)),
        );
        row
    }

    /// The value of one metric by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }
}
