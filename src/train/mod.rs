//! What every trainer shares: the optimizer step with its guards, metrics,
//! and (with the trainers) checkpoints and run configuration.

pub mod best_of_n;
pub mod dpo;
mod dpo_data;
mod dpo_metrics;
pub mod eval;
pub mod logprobs;
pub mod metrics;
pub mod optim;
pub mod scoring;
pub mod text_metrics;
