//! What every trainer shares: the optimizer step with its guards, metrics,
//! and (with the trainers) checkpoints and run configuration.

pub mod metrics;
pub mod optim;
