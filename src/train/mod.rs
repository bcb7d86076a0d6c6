//! What every trainer shares: the optimizer step with its guards, metrics,
//! and (with the trainers) checkpoints and run configuration.

pub mod health;
pub mod metrics;
pub mod optim;
pub mod ppo;
pub mod ppo_report;
pub mod ppo_rollout;
mod ppo_run;
mod ppo_train;
pub mod reward_fn;
