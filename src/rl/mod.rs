//! RLHF math, named after the equations, with TRL parity (the reference
//! values are written by TRL itself: `kernels-tests/fixtures/make_rl_fixtures.py`,
//! described in `kernels-tests/fixtures/rl/README.md`; the implementations are TRL 0.11's
//! `PPOTrainer`, `DPOTrainer`, `KTOTrainer` and `RewardTrainer`, and TRL
//! 0.9.4's `DPOTrainer` for `kto_pair`).
//!
//! Two kinds of function live here:
//! - **Host-side** rollout math ([`advantages`], [`kl_control`],
//!   [`score_scaling`], [`step_stats`]): KL-penalised rewards, GAE,
//!   whitening, KL controllers, TRL's score scaling and step statistics.
//!   They take `&[f32]` batches `[B, T]` (row-major, `T` passed explicitly),
//!   compute in f64 and return f32 vectors ready to upload. No gradients flow
//!   through them, as in TRL, where they all run under `torch.no_grad()`.
//! - **Differentiable losses** on the [`Tape`](crate::Tape)
//!   ([`ppo_loss`], [`preference`], [`reward_loss`]): composed from the
//!   elementwise and reduce tape ops, so `tape.backward(&loss)` gives the
//!   gradients w.r.t. the policy's log-probs / the value head's outputs. Each
//!   also returns TRL's statistics (computed on the host in f64 from the same
//!   inputs; PPO's parts leave that to `policy_stats` / `value_stats`).
//!
//! Trainers (rollouts, minibatching, optimizers) are built on top of these
//! elsewhere; nothing here owns a model. `inputs.rs` holds the shape check and
//! read-back the files above share; this file only declares and re-exports.

pub mod advantages;
mod inputs;
pub mod kl_control;
pub mod ppo_loss;
mod ppo_stats;
pub mod preference;
pub mod reward_loss;
pub mod score_scaling;
pub mod step_stats;

pub use advantages::{
    compute_advantages, gae, kl_penalized_rewards, masked_mean, masked_var, whiten, Advantages,
    KlEstimator, KlRewards, PpoConfig,
};
pub use kl_control::{AdaptiveKlController, FixedKlController, KlController};
pub use ppo_loss::{
    clipped_surrogate, clipped_value_loss, early_stop, policy_stats, ppo_loss, skip_minibatch,
    value_stats, PolicyStats, PpoLossStats, PpoMinibatch, ValueStats,
};
pub use preference::{
    dpo_loss, ipo_loss, kto_loss, kto_mismatched_indices, kto_pair_loss, KtoMetrics,
    PreferenceMetrics,
};
pub use reward_loss::{reward_bt_loss, reward_classifier_loss, ClassifierMetrics, RewardMetrics};
pub use score_scaling::{process_scores, RunningMoments, ScoreOptions};
pub use step_stats::{step_stats, var_explained, StepStats};
