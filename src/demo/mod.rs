//! The out-of-the-box demo: a customer-support agent that must not ask for
//! card numbers, SSNs or passwords, and must not be rude.
//!
//! - [`pipeline`]: `engine pipeline --preset support-tiny` makes the default
//!   models from nothing (the project's own data, tokenizer, SFT, reward model).
//! - [`embedded`]: those files, built into the binary when present.
//! - [`ppo_default`]: `engine train-ppo` with no arguments: PPO with LoRA on the
//!   embedded policy, measured before and after on held-out prompts.
//! - [`report`]: the report it prints and writes as `report.json`.

pub mod embedded;
pub mod pipeline;
pub mod ppo_default;
pub mod report;

/// The directory (under `models/`) of the embedded default.
pub const PRESET: &str = "support-tiny";
