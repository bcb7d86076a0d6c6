//! The trainers and what they share: the optimizer step with its guards,
//! metrics, sequence log-probs and scoring; SFT-style direct alignment (DPO,
//! IPO, KTO), PPO with health checks, best-of-n and evaluation.

pub mod best_of_n;
pub mod dpo;
mod dpo_data;
mod dpo_metrics;
pub mod eval;
pub mod health;
pub mod logprobs;
pub mod metrics;
pub mod optim;
pub mod ppo;
pub mod ppo_report;
pub mod ppo_rollout;
mod ppo_run;
mod ppo_train;
pub mod reward_fn;
pub mod scoring;
pub mod text_metrics;
