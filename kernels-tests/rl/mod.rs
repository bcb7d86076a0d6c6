//! One module per file of `src/rl`: hand-computed unit tests (`advantages`,
//! `kl_control`, `step_stats`, `ppo_loss`, `preference`) and TRL parity
//! (`parity_advantages`, `parity_ppo_loss`, `parity_preference`).

mod advantages;
mod fixture;
mod kl_control;
mod parity_advantages;
mod parity_ppo_loss;
mod parity_preference;
mod ppo_loss;
mod preference;
mod step_stats;
