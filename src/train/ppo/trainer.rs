//! [`PpoTrainer`]: the policy with its value head, the reference, the
//! reward and the optimizer, and one PPO step (the order is in `mod.rs`):
//! rollout, scores, KL-penalised rewards and advantages, the update phase,
//! the KL controller, the health checks. [`PpoTrainer::run`] loops steps
//! over a [`PromptSource`].

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use std::time::Instant;

use super::health::HealthMonitor;
use super::options::PpoTrainConfig;
use super::prompts::PromptSource;
use super::report::PpoStepReport;
use super::rollout::{rollout, RefSource, RolloutConfig};
use super::seeds::{derive_seed, SALT_GENERATE};
use super::state::ScalarState;
use super::update::{Fault, UpdatePhase};
use crate::data::support::fluency::WellFormed;
use crate::models::lm::{CausalLm, Head};
use crate::ops::adamw::AdamwConfig;
use crate::rl;
use crate::train::divergence::NonFinite;
use crate::train::metrics::MetricsLog;
use crate::train::optim::{LrSchedule, Optimizer};
use crate::train::scoring::Scorer;

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
    /// Steps done, β and the running score moments.
    scalars: ScalarState,
    #[doc(hidden)]
    pub fault: Option<Fault>,
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
        Ok(PpoTrainer {
            policy,
            reference,
            scorer,
            health: HealthMonitor::new(cfg.health.clone()),
            scalars: ScalarState::new(&cfg.ppo),
            cfg,
            optimizer,
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
        self.scalars.steps_done()
    }

    /// The current KL coefficient β.
    pub fn kl_coef(&self) -> f64 {
        self.scalars.kl_coef()
    }

    /// Scalar state for checkpoints: step, seed, β, running score moments,
    /// optimizer counters and the health monitor.
    pub fn state(&self) -> Value {
        self.scalars
            .to_json(self.cfg.seed, &self.optimizer, &self.health)
    }

    /// Restores what [`PpoTrainer::state`] wrote (the optimizer's moments
    /// are loaded separately, with `optimizer.load(path, params, step)`).
    pub fn restore(&mut self, v: &Value) -> Result<()> {
        self.scalars
            .restore(v, &mut self.cfg.seed, &mut self.optimizer, &mut self.health)
    }

    fn eos(&self) -> Option<u32> {
        self.cfg.eos.or(self.policy.cfg.eos_token_id)
    }

    /// One PPO step on `prompts` (token ids, unpadded; usually
    /// `batch_size` of them).
    pub fn step(&mut self, prompts: &[Vec<i32>]) -> Result<PpoStepReport> {
        ensure!(!prompts.is_empty(), "a PPO step needs prompts");
        let step = self.scalars.steps_done() + 1;
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
            sync_phases: self.cfg.sync_phases,
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
        rep.describe_rollout(&ro);
        let beta = self.scalars.kl_coef();
        rep.kl_coef = beta;
        if let Some(what) = ro.non_finite() {
            let fault = NonFinite::Other(format!("{what} in the rollout"));
            rep.skipped = Some(fault.to_string());
            self.optimizer.veto(fault);
        } else {
            let t = ro.t;
            // TRL scales/clips the scores it trains on; env/reward_* stay raw.
            let mut scores = ro.scores.clone();
            self.scalars.process_scores(&mut scores, &self.cfg.scores)?;
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
            let mut update = UpdatePhase {
                policy: &self.policy,
                optimizer: &mut self.optimizer,
                cfg: &self.cfg,
                fault: self.fault,
            };
            update
                .run(&ro, &adv, step, &mut rep)
                .with_context(|| format!("PPO step {step}: update"))?;
            rep.times.train = clock.elapsed().as_secs_f64();
            self.policy.gpu().profile_phase("step (host)")?;
            self.scalars.update_kl(stats.kl, prompts.len());
        }
        self.scalars.set_steps_done(step);
        rep.total_s = clock.elapsed().as_secs_f64();
        rep.tokens_per_s = rep.tokens as f64 / rep.total_s;
        rep.well_formed = self
            .cfg
            .judge_well_formed
            .then(|| WellFormed::support().rate(rep.response_texts.iter().map(String::as_str)));
        let warnings = self
            .health
            .observe(&rep.health_input(self.eos().is_some(), rep.well_formed));
        rep.warnings = warnings.into_iter().map(|w| w.message).collect();
        Ok(rep)
    }

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
        while self.steps_done() < total_steps {
            let batch = prompts.batch(self.steps_done() + 1, self.cfg.batch_size)?;
            let rep = self.step(&batch)?;
            if let Some(log) = log.as_deref_mut() {
                let rows = rep.rows();
                let row: Vec<(&str, f64)> = rows.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                log.write(rep.step, &row)?;
            }
            progress(&rep);
        }
        Ok(self.health.summary())
    }
}
