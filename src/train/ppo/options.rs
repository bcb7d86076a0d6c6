//! [`PpoTrainConfig`]: the trainer's options, TRL 0.11's `PPOConfig`
//! defaults where TRL has the option.

use super::health::HealthConfig;
use crate::rl::{PpoConfig, ScoreOptions};
use crate::train::optim::Schedule;

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
    /// Judge each step's responses against the support-data generator's
    /// sentences (the health checks' fluency drift; the demo turns it on).
    pub judge_well_formed: bool,
    /// Wait for the device at the update's phase boundaries (and after the
    /// rollout's policy pass), so that
    /// [`PhaseTimes`](super::rollout::PhaseTimes)' split (forward, reference;
    /// update forward, backward, optimizer) is each phase's own work rather
    /// than whatever the next read-back waited for (default false: `engine
    /// bench --ppo` turns it on; costs two waits per minibatch and one per
    /// rollout).
    pub sync_phases: bool,
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
            judge_well_formed: false,
            sync_phases: false,
        }
    }
}
