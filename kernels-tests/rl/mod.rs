//! One module per area: hand-computed unit tests (`ppo`, `ppo_loss`,
//! `preference`) and TRL parity (`parity_ppo`, `parity_ppo_loss`, `parity_preference`).

mod fixture;
mod parity_ppo;
mod parity_ppo_loss;
mod parity_preference;
mod ppo;
mod ppo_loss;
mod preference;
