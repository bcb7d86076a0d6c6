//! The PPO trainer's scalar state: the steps done, the KL coefficient β
//! (adaptive controller or fixed) and the running score moments
//! (`use_score_scaling`), and the checkpoint form of it with the seed, the
//! optimizer's counters and the health monitor. Randomness (sampling,
//! shuffles, LoRA dropout) is a pure function of (seed, step), and the
//! prompts of step s are a pure function of (prompt seed, s), so this state
//! plus the weights and the optimizer moments continue a run exactly.

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::health::HealthMonitor;
use crate::rl::{self, AdaptiveKlController, PpoConfig, RunningMoments, ScoreOptions};
use crate::train::optim::Optimizer;

/// β: TRL's adaptive controller or a fixed value.
#[derive(Clone, Debug)]
enum KlCoef {
    Adaptive(AdaptiveKlController),
    Fixed(f64),
}

impl KlCoef {
    fn value(&self) -> f64 {
        match self {
            KlCoef::Adaptive(c) => c.value,
            KlCoef::Fixed(v) => *v,
        }
    }
    fn set(&mut self, v: f64) {
        match self {
            KlCoef::Adaptive(c) => c.value = v,
            KlCoef::Fixed(x) => *x = v,
        }
    }
}

/// What a [`PpoTrainer`](super::PpoTrainer) carries from step to step
/// besides the weights, the optimizer and the health monitor.
#[derive(Clone, Debug)]
pub(super) struct ScalarState {
    step: u64,
    kl: KlCoef,
    /// Running moments of the scores (`use_score_scaling`).
    running: RunningMoments,
}

impl ScalarState {
    /// Step 0, β = `init_kl_coef` (adaptive when `adap_kl_ctrl`).
    pub(super) fn new(ppo: &PpoConfig) -> ScalarState {
        let kl = if ppo.adap_kl_ctrl {
            KlCoef::Adaptive(AdaptiveKlController::new(
                ppo.init_kl_coef,
                ppo.target,
                ppo.horizon,
            ))
        } else {
            KlCoef::Fixed(ppo.init_kl_coef)
        };
        ScalarState {
            step: 0,
            kl,
            running: RunningMoments::default(),
        }
    }

    pub(super) fn steps_done(&self) -> u64 {
        self.step
    }

    pub(super) fn set_steps_done(&mut self, step: u64) {
        self.step = step;
    }

    /// The current β.
    pub(super) fn kl_coef(&self) -> f64 {
        self.kl.value()
    }

    /// TRL's score scaling/normalisation/clipping, updating the running
    /// moments ([`rl::process_scores`]).
    pub(super) fn process_scores(&mut self, scores: &mut [f32], opts: &ScoreOptions) -> Result<()> {
        rl::process_scores(scores, opts, &mut self.running)
    }

    /// The adaptive controller's update with the step's `objective/kl` and
    /// `n` = the batch size (a fixed β stays).
    pub(super) fn update_kl(&mut self, kl: f64, n: usize) {
        if let KlCoef::Adaptive(c) = &mut self.kl {
            c.update(kl, n);
        }
    }

    /// The checkpoint form: this state with the run seed, the optimizer's
    /// counters and the health monitor.
    pub(super) fn to_json(
        &self,
        seed: u64,
        optimizer: &Optimizer,
        health: &HealthMonitor,
    ) -> Value {
        json!({
            "step": self.step,
            "seed": seed,
            "kl_coef": self.kl.value(),
            "score_moments": serde_json::to_value(self.running).unwrap_or(Value::Null),
            "optimizer_step": optimizer.step,
            "optimizer_skipped": optimizer.skipped,
            "health": health.state(),
        })
    }

    /// Restores what [`ScalarState::to_json`] wrote.
    pub(super) fn restore(
        &mut self,
        v: &Value,
        seed: &mut u64,
        optimizer: &mut Optimizer,
        health: &mut HealthMonitor,
    ) -> Result<()> {
        let u = |k: &str| {
            v.get(k)
                .and_then(Value::as_u64)
                .with_context(|| format!("PPO state: missing `{k}`"))
        };
        let beta = v
            .get("kl_coef")
            .and_then(Value::as_f64)
            .context("PPO state: missing `kl_coef`")?;
        self.step = u("step")?;
        *seed = u("seed")?;
        optimizer.step = u("optimizer_step")? as u32;
        optimizer.skipped = u("optimizer_skipped")? as u32;
        self.kl.set(beta);
        self.running = match v.get("score_moments") {
            Some(m) if !m.is_null() => serde_json::from_value::<RunningMoments>(m.clone())
                .context("PPO state: `score_moments`")?,
            _ => RunningMoments::default(),
        };
        if let Some(h) = v.get("health") {
            health.restore(h)?;
        }
        Ok(())
    }
}
