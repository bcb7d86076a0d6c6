//! PPO trainer with TRL 0.11 `PPOTrainer` semantics (the math is
//! [`crate::rl`]; see `shared/notes/rlhf-math.md`).
//!
//! One [`PpoTrainer::step`]:
//! 1. rollout ([`super::ppo_rollout`]): sample responses (pure sampling,
//!    seeded), the policy's log-probs and values and the reference's
//!    log-probs without gradients, one score per response;
//! 2. per-token rewards `−β·kl_t` plus the score on the last response token
//!    ([`rl::kl_penalized_rewards`], k1 by default, `ppo.kl_penalty` picks
//!    k3 & co), GAE and whitening ([`rl::compute_advantages`]);
//!    Before that, TRL's optional score scaling/normalisation by running
//!    moments and clipping ([`rl::process_scores`]);
//! 3. `ppo_epochs` × shuffled backward batches of `mini_batch_size ×
//!    gradient_accumulation_steps` sequences, each split into micro-batches
//!    of `mini_batch_size`: clipped surrogate + `vf_coef` × clipped value
//!    loss ([`rl::ppo_loss()`]) − `ent_coef` × entropy, backward with weight
//!    1/accumulation, gradients summed, one [`Optimizer::step`] (clipping,
//!    non-finite guard) — see `ppo_train.rs` for the skip rules;
//! 4. the KL controller's update with `objective/kl` and n = batch size.
//!
//! Randomness is a pure function of `(seed, step)` (sampling, shuffles,
//! LoRA dropout), so the trainer's RNG state is just its step counter and a
//! resumed run draws exactly what an uninterrupted one would.
//! [`PpoTrainer::state`]/[`PpoTrainer::restore`] (`ppo_state.rs`) carry the
//! scalar state; the model and optimizer moments are checkpointed by the
//! caller (`train::session::Session` in `train-ppo`).

use anyhow::{ensure, Context, Result};
use std::time::Instant;

use super::health::{HealthConfig, HealthInput, HealthMonitor};
use super::optim::{LrSchedule, Optimizer, Schedule};
use super::ppo_report::PpoStepReport;
use super::ppo_rollout::{rollout, RefSource, Rollout, RolloutConfig};
pub use super::ppo_run::{PromptCycle, PromptSource};
use super::ppo_state::KlCoef;
use super::scoring::Scorer;
use crate::models::lm::{CausalLm, Head};
use crate::ops::adamw::AdamwConfig;
use crate::rl::{self, AdaptiveKlController, KlEstimator, PpoConfig, RunningMoments, ScoreOptions};
use crate::rng::Rng;

/// Trainer options. `Default` is TRL 0.11's `PPOConfig` where TRL has the
/// option (its Adam: no weight decay; no grad clipping; no entropy bonus).
#[derive(Clone, Debug)]
pub struct PpoTrainConfig {
    /// The math knobs (β, target, horizon, γ, λ, clip ranges, vf_coef,
    /// ppo_epochs, ratio_threshold, whiten_rewards, kl_penalty = k1/k3/…,
    /// early_stopping, target_kl).
    pub ppo: PpoConfig,
    /// Prompts per step (default 128) and per forward/backward pass
    /// (default 128; TRL's `mini_batch_size`).
    pub batch_size: usize,
    pub mini_batch_size: usize,
    /// Micro-batches of `mini_batch_size` whose gradients are summed (each
    /// loss weighted 1/n) into one optimizer step (default 1; TRL's
    /// `gradient_accumulation_steps`: `backward_batch_size = mini_batch_size
    /// × gradient_accumulation_steps`).
    pub gradient_accumulation_steps: usize,
    /// TRL's `use_score_scaling`, `use_score_norm`, `score_clip` (all off).
    pub scores: ScoreOptions,
    /// Sequences per no-grad rollout pass (default = mini_batch_size when 0).
    pub forward_batch_size: usize,
    /// Response length cap (default 32; TRL takes it from the generation
    /// kwargs).
    pub max_new_tokens: usize,
    /// EOS id [None: the policy's `eos_token_id`].
    pub eos: Option<u32>,
    /// Adam learning rate (default 1.41e-5) and weight decay (default 0).
    pub lr: f32,
    /// The learning-rate schedule over PPO steps (default constant, as TRL
    /// without an `lr_scheduler`; with one, TRL steps it once per PPO step,
    /// so every mini-batch update of a step uses that step's rate).
    pub schedule: Schedule,
    pub warmup_steps: u32,
    /// PPO steps the schedule spans (ignored by `constant`).
    pub total_steps: u32,
    pub weight_decay: f32,
    /// Global grad-norm clip [None, as TRL's `max_grad_norm`].
    pub max_grad_norm: Option<f32>,
    pub seed: u64,
    /// Entropy bonus coefficient (default 0: off; TRL 0.11 has none).
    pub ent_coef: f32,
    /// Copy the trainable weights before the update phase so a non-finite
    /// update can be undone (default true; costs one copy of the trainable
    /// weights).
    pub snapshot_weights: bool,
    pub health: HealthConfig,
}

impl Default for PpoTrainConfig {
    fn default() -> Self {
        PpoTrainConfig {
            ppo: PpoConfig::default(),
            batch_size: 128,
            mini_batch_size: 128,
            gradient_accumulation_steps: 1,
            scores: ScoreOptions::default(),
            forward_batch_size: 0,
            max_new_tokens: 32,
            eos: None,
            lr: 1.41e-5,
            schedule: Schedule::Constant,
            warmup_steps: 0,
            total_steps: 1,
            weight_decay: 0.0,
            max_grad_norm: None,
            seed: 0,
            ent_coef: 0.0,
            snapshot_weights: true,
            health: HealthConfig::default(),
        }
    }
}

/// Deliberate faults for tests of the guards (not for normal use).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Multiply every minibatch loss by NaN (NaN loss and gradients).
    NanLoss,
    /// Write a NaN into the first trainable weight after the updates.
    NanWeight,
}

pub struct PpoTrainer {
    /// Policy with its value head (and LoRA adapters, if any).
    pub policy: CausalLm,
    pub reference: RefSource,
    pub scorer: Box<dyn Scorer>,
    pub cfg: PpoTrainConfig,
    /// Adam on the policy's trainable parameters; the caller saves and
    /// loads its moments with the model.
    pub optimizer: Optimizer,
    pub health: HealthMonitor,
    pub(crate) kl: KlCoef,
    /// Running moments of the scores (`use_score_scaling`).
    pub(crate) running: RunningMoments,
    pub(crate) step: u64,
    #[doc(hidden)]
    pub fault: Option<Fault>,
}

/// Salts of the per-step seeds.
pub(crate) const SALT_GENERATE: u64 = 1;
pub(crate) const SALT_SHUFFLE: u64 = 2;
pub(crate) const SALT_DROPOUT: u64 = 3;

/// A seed that depends only on the run seed, the step and what it is for.
pub(crate) fn derive_seed(seed: u64, step: u64, salt: u64, index: u64) -> u64 {
    let mut r = Rng::new(seed ^ step.wrapping_mul(0xA24B_AED4_963E_E407));
    let a = r.next_u64();
    Rng::new(a ^ salt.wrapping_mul(0x9FB2_1C65_1E98_DF25) ^ index.rotate_left(32)).next_u64()
}

impl PpoTrainer {
    /// `policy` must have a value head ([`CausalLm::add_value_head`] puts a
    /// fresh one on a plain LM). The value head is made trainable next to
    /// whatever else is (everything, or the LoRA adapters).
    pub fn new(
        mut policy: CausalLm,
        reference: RefSource,
        scorer: Box<dyn Scorer>,
        cfg: PpoTrainConfig,
    ) -> Result<PpoTrainer> {
        ensure!(
            policy.head == Head::LmWithValue,
            "the PPO policy needs a value head (CausalLm::add_value_head)"
        );
        reference.check(&policy)?;
        ensure!(
            cfg.batch_size > 0 && cfg.mini_batch_size > 0,
            "batch_size and mini_batch_size must be > 0"
        );
        ensure!(cfg.max_new_tokens > 0, "max_new_tokens must be > 0");
        ensure!(cfg.ppo.ppo_epochs > 0, "ppo_epochs must be > 0");
        ensure!(
            cfg.gradient_accumulation_steps > 0,
            "gradient_accumulation_steps must be > 0"
        );
        let trainable: Vec<String> = policy
            .params
            .iter()
            .filter(|p| p.trainable)
            .map(|p| p.name.clone())
            .collect();
        policy
            .params
            .set_trainable(|n| n.starts_with("v_head.") || trainable.iter().any(|t| t == n));
        let optimizer = PpoTrainer::optimizer_for(&cfg);
        let kl = if cfg.ppo.adap_kl_ctrl {
            KlCoef::Adaptive(AdaptiveKlController::new(
                cfg.ppo.init_kl_coef,
                cfg.ppo.target,
                cfg.ppo.horizon,
            ))
        } else {
            KlCoef::Fixed(cfg.ppo.init_kl_coef)
        };
        Ok(PpoTrainer {
            policy,
            reference,
            scorer,
            health: HealthMonitor::new(cfg.health.clone()),
            cfg,
            optimizer,
            kl,
            running: RunningMoments::default(),
            step: 0,
            fault: None,
        })
    }

    /// TRL's optimizer: Adam(W) at a constant `lr`, `weight_decay`, with
    /// `max_grad_norm` clipping.
    pub fn optimizer_for(cfg: &PpoTrainConfig) -> Optimizer {
        let adam = AdamwConfig {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..Default::default()
        };
        Optimizer::new(adam, LrSchedule::constant(cfg.lr), cfg.max_grad_norm)
    }

    /// The learning rate of PPO step `step` (1-based) under the schedule.
    pub fn lr_at(&self, step: u64) -> f32 {
        let c = &self.cfg;
        let schedule = LrSchedule {
            base: c.lr,
            warmup_steps: c.warmup_steps,
            total_steps: c.total_steps,
            kind: c.schedule,
        };
        schedule.lr_at(step.min(u32::MAX as u64) as u32)
    }

    /// Steps completed so far.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// The current KL coefficient β.
    pub fn kl_coef(&self) -> f64 {
        self.kl.value()
    }

    fn eos(&self) -> Option<u32> {
        self.cfg.eos.or(self.policy.cfg.eos_token_id)
    }

    /// One PPO step on `prompts` (token ids, unpadded; usually
    /// `batch_size` of them).
    pub fn step(&mut self, prompts: &[Vec<i32>]) -> Result<PpoStepReport> {
        ensure!(!prompts.is_empty(), "a PPO step needs prompts");
        let step = self.step + 1;
        let clock = Instant::now();
        let fbs = match self.cfg.forward_batch_size {
            0 => self.cfg.mini_batch_size,
            n => n,
        };
        let ro_cfg = RolloutConfig {
            max_new_tokens: self.cfg.max_new_tokens,
            eos: self.eos(),
            seed: derive_seed(self.cfg.seed, step, SALT_GENERATE, 0),
            forward_batch_size: fbs,
        };
        let ro = rollout(
            &self.policy,
            &self.reference,
            self.scorer.as_ref(),
            prompts,
            &ro_cfg,
        )
        .with_context(|| format!("PPO step {step}: rollout"))?;
        let mut rep = PpoStepReport::empty(step);
        self.describe_rollout(&ro, &mut rep);
        let beta = self.kl.value();
        rep.kl_coef = beta;
        let finite = [&ro.logp, &ro.values, &ro.ref_logp, &ro.scores]
            .iter()
            .all(|x| x.iter().all(|v| v.is_finite()));
        if !finite {
            rep.skipped = Some("non-finite log-probs, values or scores in the rollout".into());
        } else {
            let t = ro.t;
            // TRL scales/clips the scores it trains on; env/reward_* stay raw.
            let mut scores = ro.scores.clone();
            rl::process_scores(&mut scores, &self.cfg.scores, &mut self.running)?;
            let kr = rl::kl_penalized_rewards(
                &scores,
                &ro.logp,
                &ro.ref_logp,
                &ro.mask,
                t,
                beta,
                self.cfg.ppo.kl_penalty,
            )?;
            let adv = rl::compute_advantages(
                &ro.values,
                &kr.rewards,
                &ro.mask,
                t,
                self.cfg.ppo.gamma,
                self.cfg.ppo.lam,
                self.cfg.ppo.whiten_rewards,
            )?;
            let stats = rl::step_stats(
                &scores,
                &ro.logp,
                &kr.kl,
                &kr.non_score_rewards,
                &ro.mask,
                t,
                beta,
            )?;
            rep.set_step_stats(&stats, &ro.scores);
            let clock = Instant::now();
            // Every optimizer update of this PPO step runs at the step's rate.
            self.optimizer.schedule = LrSchedule::constant(self.lr_at(step));
            self.train(&ro, &adv, step, &mut rep)
                .with_context(|| format!("PPO step {step}: update"))?;
            rep.times.train = clock.elapsed().as_secs_f64();
            if let KlCoef::Adaptive(c) = &mut self.kl {
                c.update(stats.kl, prompts.len());
            }
        }
        self.step = step;
        rep.total_s = clock.elapsed().as_secs_f64();
        rep.tokens_per_s = rep.tokens as f64 / rep.total_s;
        let input = HealthInput {
            step,
            kl: rep.kl,
            kl_k1: rep.kl_k1,
            kl_k3: rep.kl_k3,
            entropy_per_token: rep.entropy_per_token,
            reward_mean: rep.reward_mean,
            reward_std: rep.reward_std,
            ref_logp_per_token: rep.ref_logp_per_token,
            responses: &rep.responses,
            finished: if self.eos().is_some() {
                &rep.finished
            } else {
                &[]
            },
        };
        let warnings = self.health.observe(&input);
        rep.warnings = warnings.into_iter().map(|w| w.message).collect();
        Ok(rep)
    }

    /// Response-shape statistics, both KL estimators and the batch itself.
    fn describe_rollout(&self, ro: &Rollout, rep: &mut PpoStepReport) {
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
        rep.kl_k1 = est_sum(KlEstimator::K1);
        rep.kl_k3 = est_sum(KlEstimator::K3);
        rep.entropy_per_token = -rows.clone().map(|r| masked_sum(&ro.logp, r)).sum::<f64>() / n_tok;
        rep.ref_logp_per_token = rows.map(|r| masked_sum(&ro.ref_logp, r)).sum::<f64>() / n_tok;
        rep.tokens = n_tok as usize;
        rep.response_len_mean = n_tok / b;
        rep.finished_frac = ro.finished.iter().filter(|&&f| f).count() as f64 / b;
        rep.times = ro.times;
        rep.prompt_texts = ro.prompt_texts.clone();
        rep.responses = ro.responses.clone();
        rep.response_texts = ro.response_texts.clone();
        rep.finished = ro.finished.clone();
        rep.scores = ro.scores.clone();
    }
}
