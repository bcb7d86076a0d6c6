//! PPO with TRL 0.11 `PPOTrainer` semantics (the math is [`crate::rl`], whose
//! TRL reference values come from `kernels-tests/fixtures/make_rl_fixtures.py`),
//! read in the order of one
//! [`PpoTrainer::step`]:
//!
//! 1. **rollout** (`rollout.rs`): sample responses (pure sampling, seeded),
//!    then, without gradients, the policy's log-probs and values and the
//!    reference's log-probs of the sampled tokens, and one score per
//!    response from the [`Scorer`](crate::train::scoring::Scorer);
//! 2. **score**: TRL's optional score scaling/normalisation by running
//!    moments and clipping ([`rl::process_scores`](crate::rl::process_scores)),
//!    then per-token rewards `−β·kl_t` plus the score on the last response
//!    token ([`rl::kl_penalized_rewards`](crate::rl::kl_penalized_rewards),
//!    k1 by default, `ppo.kl_penalty` picks k3 & co);
//! 3. **advantages**: GAE and whitening
//!    ([`rl::compute_advantages`](crate::rl::compute_advantages)) and the
//!    step statistics (`trainer.rs` runs steps 2–3 and 5);
//! 4. **update** (`update.rs`): `ppo_epochs` × shuffled backward batches,
//!    clipped surrogate + `vf_coef` × clipped value loss − `ent_coef` ×
//!    entropy, gradients accumulated over micro-batches, one optimizer step
//!    per backward batch, with the ratio / early-stop / non-finite guards;
//! 5. the KL controller's update with `objective/kl` and n = batch size,
//!    then the **health** checks (`health.rs`, n-gram statistics in
//!    `ngrams.rs`) on the step's
//!    [`PpoStepReport`] (`report.rs`: TRL's metric names).
//!
//! Around the step:
//! - `options.rs`: [`PpoTrainConfig`], TRL's `PPOConfig` defaults;
//! - `seeds.rs`: every random draw (sampling, shuffles, LoRA dropout) is a
//!   pure function of `(seed, step)`, so the trainer's RNG state is its step
//!   counter and a resumed run draws exactly what an uninterrupted one would;
//! - `state.rs`: β, the running score moments and the step counter, and the
//!   scalar checkpoint state ([`PpoTrainer::state`]/[`PpoTrainer::restore`];
//!   the model and the optimizer moments are checkpointed by the caller);
//! - `prompts.rs`: where each step's prompts come from ([`PromptSource`]);
//! - `command.rs`: `engine train-ppo`, [`PpoArgs`] and [`train_ppo`], which
//!   drives the trainer through `train::session::Session`.

mod command;
pub mod health;
mod ngrams;
mod options;
mod prompts;
mod readback;
mod report;
mod responses;
pub mod rollout;
mod seeds;
mod state;
mod trainer;
mod update;

pub use command::{train_ppo, KlEstimatorArg, PpoArgs, PPO_CHART, PPO_LR};
pub use options::PpoTrainConfig;
pub use prompts::{PromptCycle, PromptSource};
pub use report::PpoStepReport;
pub use rollout::RefSource;
pub use trainer::PpoTrainer;
pub use update::Fault;
