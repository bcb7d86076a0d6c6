//! PPO health checks: warnings that catch a run going wrong early (the
//! motivating report's "3by3by3… purlo purlo" after 100 steps, with the KL
//! far outside 1–10 and an unstable reward).
//!
//! [`HealthMonitor::observe`] is fed one [`HealthInput`] per step (built from
//! the step report and its responses) and returns that step's warnings.
//! Checks against the start of the run compare with a baseline: the mean
//! over the first `baseline_steps` observed steps; they are silent until it
//! exists. A check warns when it starts failing, then every `remind_every`
//! steps while it keeps failing; [`HealthMonitor::summary`] lists each
//! check's first and last failing step for the end-of-run report.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use super::ngrams::{distinct_n, dominant_ngram};

/// Thresholds (all options; the defaults in brackets).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthConfig {
    /// Negative KL: `objective/kl` below this (default −1, TRL's warning).
    pub negative_kl: f64,
    /// k1 vs k3: both estimate KL(π‖ref) under exact sampling; warn when
    /// `k3 ≥ k3_min` (default 1 nat) and `k1 < k1_k3_ratio·k3` (default
    /// 0.5): samples not drawn from the policy (e.g. truncated sampling) or a
    /// broken reference.
    pub k3_min: f64,
    pub k1_k3_ratio: f64,
    /// Steps averaged into the baseline (default 3).
    pub baseline_steps: usize,
    /// Entropy collapse: per-token entropy of the sampled tokens below this
    /// fraction of the baseline (default 0.3).
    pub entropy_frac: f64,
    /// Repetition: distinct-2 of the batch below this fraction of the
    /// baseline (default 0.5) ...
    pub distinct2_frac: f64,
    /// ... or at least `repeat_response_frac` (default 0.25) of the
    /// responses of `repeat_min_len` (default 8) tokens or more dominated by
    /// one n-gram (n ≤ `repeat_max_n`, default 4) occurring
    /// `repeat_min_count` (default 3) times or more and covering
    /// `repeat_coverage` (default 0.5) of the response or more.
    pub repeat_response_frac: f64,
    pub repeat_min_len: usize,
    pub repeat_max_n: usize,
    pub repeat_min_count: usize,
    pub repeat_coverage: f64,
    /// Reward-hacking canary: reward mean above the baseline by
    /// `hack_reward_rise` (default 1) baseline reward std (at least 1e-3) while the
    /// reference's mean log-prob per response token fell by
    /// `hack_ref_logp_drop` (default 2 nats) or more.
    pub hack_reward_rise: f64,
    pub hack_ref_logp_drop: f64,
    /// Responses that never end: at least this fraction (default 0.8) hit
    /// max_new_tokens without EOS (only when an EOS is configured).
    pub unfinished_frac: f64,
    /// Fluency drift: the well-formed rate of the responses (when judged,
    /// see [`HealthInput::well_formed`]) below this fraction of the baseline
    /// (default 0.9), or distinct-2 below `distinct2_drift_frac` (default
    /// 0.8) of it: earlier and milder than the repetition check.
    pub fluency_frac: f64,
    pub distinct2_drift_frac: f64,
    /// Re-warn a failing check every this many steps (default 10).
    pub remind_every: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            negative_kl: -1.0,
            k3_min: 1.0,
            k1_k3_ratio: 0.5,
            baseline_steps: 3,
            entropy_frac: 0.3,
            distinct2_frac: 0.5,
            repeat_response_frac: 0.25,
            repeat_min_len: 8,
            repeat_max_n: 4,
            repeat_min_count: 3,
            repeat_coverage: 0.5,
            hack_reward_rise: 1.0,
            hack_ref_logp_drop: 2.0,
            unfinished_frac: 0.8,
            fluency_frac: 0.9,
            distinct2_drift_frac: 0.8,
            remind_every: 10,
        }
    }
}

/// The checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Check {
    NegativeKl,
    KlDisagreement,
    EntropyCollapse,
    Repetition,
    RewardHacking,
    NeverEnding,
    FluencyDrift,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthWarning {
    pub step: u64,
    pub check: Check,
    pub message: String,
}

/// One step as the checks see it.
#[derive(Clone, Copy, Debug)]
pub struct HealthInput<'a> {
    pub step: u64,
    /// `objective/kl` (the configured estimator), and the k1 and k3 sums.
    pub kl: f64,
    pub kl_k1: f64,
    pub kl_k3: f64,
    /// Mean −log π of the sampled response tokens.
    pub entropy_per_token: f64,
    pub reward_mean: f64,
    pub reward_std: f64,
    /// Mean log ref(token) over the response tokens.
    pub ref_logp_per_token: f64,
    pub responses: &'a [Vec<u32>],
    /// Whether each response ended on EOS; empty when no EOS is configured.
    pub finished: &'a [bool],
    /// The responses' well-formed rate, when a judge is configured
    /// ([`crate::data::support::fluency`]).
    pub well_formed: Option<f64>,
}

/// Means over the first steps (`well_formed` is absent from checkpoints
/// written before it existed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct Baseline {
    n: usize,
    entropy: f64,
    distinct2: f64,
    reward: f64,
    reward_std: f64,
    ref_logp: f64,
    well_formed: f64,
}

/// Per check: first and last failing step, and how many steps failed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub first: u64,
    pub last: u64,
    pub steps: u64,
    /// Consecutive failing steps up to `last`.
    pub run: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HealthMonitor {
    pub cfg: HealthConfig,
    baseline: Baseline,
    records: BTreeMap<Check, CheckRecord>,
    /// Every warning emitted so far.
    pub warnings: Vec<HealthWarning>,
}

impl HealthMonitor {
    pub fn new(cfg: HealthConfig) -> HealthMonitor {
        HealthMonitor {
            cfg,
            ..Default::default()
        }
    }

    /// Whether a response is dominated by one repeated n-gram.
    pub fn is_repetitive(&self, ids: &[u32]) -> bool {
        let c = &self.cfg;
        if ids.len() < c.repeat_min_len {
            return false;
        }
        let (_, count, coverage) = dominant_ngram(ids, c.repeat_max_n);
        count >= c.repeat_min_count && coverage >= c.repeat_coverage
    }

    /// Runs every check on one step; returns (and keeps) its warnings.
    pub fn observe(&mut self, x: &HealthInput) -> Vec<HealthWarning> {
        let c = self.cfg.clone();
        let d2 = distinct_n(x.responses, 2);
        let mut failing: Vec<(Check, String)> = Vec::new();
        if x.kl < c.negative_kl {
            failing.push((
                Check::NegativeKl,
                format!(
                    "negative KL: objective/kl = {:.3} < {} (sampling is not from the policy? \
                     truncated sampling, e.g. top-k/top-p, biases it)",
                    x.kl, c.negative_kl
                ),
            ));
        }
        if x.kl_k3 >= c.k3_min && x.kl_k1 < c.k1_k3_ratio * x.kl_k3 {
            failing.push((
                Check::KlDisagreement,
                format!(
                    "KL estimators disagree: k1 = {:.3} vs k3 = {:.3} nats per sequence",
                    x.kl_k1, x.kl_k3
                ),
            ));
        }
        let b = &self.baseline;
        if b.n >= c.baseline_steps && c.baseline_steps > 0 {
            if x.entropy_per_token < c.entropy_frac * b.entropy {
                failing.push((
                    Check::EntropyCollapse,
                    format!(
                        "entropy collapse: {:.3} nats/token, {:.0}% of the starting {:.3}",
                        x.entropy_per_token,
                        100.0 * x.entropy_per_token / b.entropy,
                        b.entropy
                    ),
                ));
            }
            if d2 < c.distinct2_frac * b.distinct2 {
                failing.push((
                    Check::Repetition,
                    format!(
                        "repetition: distinct-2 = {d2:.3}, down from {:.3}",
                        b.distinct2
                    ),
                ));
            }
            let rise = x.reward_mean - b.reward;
            let drop = b.ref_logp - x.ref_logp_per_token;
            if rise > c.hack_reward_rise * b.reward_std.max(1e-3) && drop >= c.hack_ref_logp_drop {
                failing.push((
                    Check::RewardHacking,
                    format!(
                        "reward hacking? reward {:.3} → {:.3} while the reference's log-prob per \
                         response token fell {:.3} → {:.3}",
                        b.reward, x.reward_mean, b.ref_logp, x.ref_logp_per_token
                    ),
                ));
            }
        }
        let loops = x.responses.iter().filter(|r| self.is_repetitive(r)).count();
        let n = x.responses.len().max(1) as f64;
        if loops > 0 && loops as f64 >= c.repeat_response_frac * n {
            let example = x.responses.iter().find(|r| self.is_repetitive(r)).unwrap();
            let (ng, count, _) = dominant_ngram(example, c.repeat_max_n);
            let msg = format!(
                "repetition: {loops} of {} responses loop on one n-gram (e.g. a {ng}-gram \
                 repeated {count}× in {} tokens)",
                x.responses.len(),
                example.len()
            );
            if !failing.iter().any(|(k, _)| *k == Check::Repetition) {
                failing.push((Check::Repetition, msg));
            }
        }
        // Milder than repetition, so only reported without it.
        let repeating = failing.iter().any(|(k, _)| *k == Check::Repetition);
        if b.n >= c.baseline_steps && c.baseline_steps > 0 && !repeating {
            failing.extend(self.fluency_drift(x, d2).map(|m| (Check::FluencyDrift, m)));
        }
        if !x.finished.is_empty() {
            let open = x.finished.iter().filter(|&&f| !f).count();
            if open as f64 >= c.unfinished_frac * x.finished.len() as f64 {
                failing.push((
                    Check::NeverEnding,
                    format!(
                        "responses never end: {open} of {} hit max_new_tokens without EOS",
                        x.finished.len()
                    ),
                ));
            }
        }
        if b.n < c.baseline_steps {
            let k = self.baseline.n as f64;
            let avg = |old: f64, new: f64| (old * k + new) / (k + 1.0);
            let b = &mut self.baseline;
            b.entropy = avg(b.entropy, x.entropy_per_token);
            b.distinct2 = avg(b.distinct2, d2);
            b.reward = avg(b.reward, x.reward_mean);
            b.reward_std = avg(b.reward_std, x.reward_std);
            b.ref_logp = avg(b.ref_logp, x.ref_logp_per_token);
            b.well_formed = avg(b.well_formed, x.well_formed.unwrap_or(0.0));
            b.n += 1;
        }
        self.emit(x.step, failing)
    }

    /// The fluency-drift message, if the step's well-formed rate or
    /// distinct-2 fell below its fraction of the baseline.
    fn fluency_drift(&self, x: &HealthInput, d2: f64) -> Option<String> {
        let (c, b) = (&self.cfg, &self.baseline);
        let mut why = Vec::new();
        if let Some(wf) = x
            .well_formed
            .filter(|&wf| wf < c.fluency_frac * b.well_formed)
        {
            why.push(format!(
                "well-formed sentences {:.0}%, down from {:.0}%",
                100.0 * wf,
                100.0 * b.well_formed
            ));
        }
        if d2 < c.distinct2_drift_frac * b.distinct2 {
            why.push(format!("distinct-2 {d2:.3}, down from {:.3}", b.distinct2));
        }
        (!why.is_empty()).then(|| format!("fluency drift: {}", why.join("; ")))
    }

    fn emit(&mut self, step: u64, failing: Vec<(Check, String)>) -> Vec<HealthWarning> {
        let mut out = Vec::new();
        for (check, message) in failing {
            let rec = self.records.entry(check).or_insert(CheckRecord {
                first: step,
                last: step,
                steps: 0,
                run: 0,
            });
            let continuing = rec.steps > 0 && rec.last + 1 == step;
            rec.run = if continuing { rec.run + 1 } else { 1 };
            rec.last = step;
            rec.steps += 1;
            if rec.run == 1 || (rec.run - 1).is_multiple_of(self.cfg.remind_every.max(1)) {
                out.push(HealthWarning {
                    step,
                    check,
                    message: format!("step {step}: {message}"),
                });
            }
        }
        self.warnings.extend(out.iter().cloned());
        out
    }

    /// Per failing check, its record (first/last step, count).
    pub fn records(&self) -> &BTreeMap<Check, CheckRecord> {
        &self.records
    }

    /// The end-of-run report: one line per check that ever failed.
    pub fn summary(&self) -> Vec<String> {
        self.records
            .iter()
            .map(|(check, r)| {
                format!(
                    "{check:?}: failed on {} step(s), first at step {}, last at step {}",
                    r.steps, r.first, r.last
                )
            })
            .collect()
    }

    /// Serialisable state (baseline, records, warnings) for checkpoints.
    pub fn state(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    pub fn restore(&mut self, v: &serde_json::Value) -> anyhow::Result<()> {
        *self = serde_json::from_value(v.clone())?;
        Ok(())
    }
}
