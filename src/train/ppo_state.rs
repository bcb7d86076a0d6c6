//! The PPO trainer's scalar state for checkpoints: the step, the seed, the
//! KL coefficient β (adaptive controller or fixed), the running score
//! moments (`use_score_scaling`) and the health monitor. Randomness
//! (sampling, shuffles, LoRA dropout) is a pure function of (seed, step),
//! and the prompts of step s are a pure function of (prompt seed, s), so
//! this state plus the weights and the optimizer moments continue a run
//! exactly.

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::ppo::PpoTrainer;
use crate::rl::{AdaptiveKlController, RunningMoments};

/// β: TRL's adaptive controller or a fixed value.
#[derive(Clone, Debug)]
pub(crate) enum KlCoef {
    Adaptive(AdaptiveKlController),
    Fixed(f64),
}

impl KlCoef {
    pub(crate) fn value(&self) -> f64 {
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

impl PpoTrainer {
    /// Scalar state for checkpoints: step, seed, β, running score moments,
    /// optimizer counters and the health monitor.
    pub fn state(&self) -> Value {
        json!({
            "step": self.step,
            "seed": self.cfg.seed,
            "kl_coef": self.kl.value(),
            "score_moments": serde_json::to_value(self.running).unwrap_or(Value::Null),
            "optimizer_step": self.optimizer.step,
            "optimizer_skipped": self.optimizer.skipped,
            "health": self.health.state(),
        })
    }

    /// Restores what [`PpoTrainer::state`] wrote (the optimizer's moments
    /// are loaded separately, with `optimizer.load(path, params, step)`).
    pub fn restore(&mut self, v: &Value) -> Result<()> {
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
        self.cfg.seed = u("seed")?;
        self.optimizer.step = u("optimizer_step")? as u32;
        self.optimizer.skipped = u("optimizer_skipped")? as u32;
        self.kl.set(beta);
        self.running = match v.get("score_moments") {
            Some(m) if !m.is_null() => serde_json::from_value::<RunningMoments>(m.clone())
                .context("PPO state: `score_moments`")?,
            _ => RunningMoments::default(),
        };
        if let Some(h) = v.get("health") {
            self.health.restore(h)?;
        }
        Ok(())
    }
}
