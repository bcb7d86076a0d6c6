//! What every trainer shares: the optimizer step with its guards, metrics,
//! run configuration ([`config`]), the run directory and checkpoints
//! ([`run`]), the loop scaffolding ([`session`]), progress and the
//! end-of-run chart; and the trainers: SFT, reward model, PPO (with health
//! checks), direct alignment (DPO, IPO, KTO), best-of-n and evaluation.
//!
//! # Writing a trainer
//! 1. An args struct: `#[derive(clap::Args, Serialize, Deserialize)]` with
//!    `#[serde(rename_all = "kebab-case")]`, flattening [`config::CommonArgs`]
//!    (`#[command(flatten)] #[serde(flatten)]`), plus its own flags; implement
//!    [`config::TrainArgs`] (its run-file table name and the `common` accessors).
//!    The CLI passes it through [`config::run_file::load_args`] (tests:
//!    [`config::run_file::parse_args`]).
//! 2. Load the model, switch heads if needed, then [`config::apply_adaptation`]
//!    (LoRA / quantized base). Load data with the `common` helpers
//!    (`load_options`, `chat_template`, `max_len_for`).
//! 3. [`session::Session::start`] (restores everything on `--resume`), then
//!    `while let Some(step) = s.next_step()`: batches from `s.next_batch`,
//!    per-step seeds from [`session::step_seed`], gradients through
//!    [`session::GradAccum`], the update through `s.apply`, trainer scalars
//!    into `s.state.extra` (stateful RNGs into `s.state.rng`), then
//!    `s.end_step(model, step, &row, extra_files)`. A trainer object that
//!    steps its own optimizer (PPO, DPO) gets it built by
//!    [`session::Session::start_with`] and swaps `s.opt` in for its steps,
//!    so checkpoints hold the moments it stepped (see `ppo_command.rs`).
//! 4. `s.finish(model, merged, template, chart_keys)`.

pub mod chart;
pub mod config;
pub mod dpo;
pub mod driver;
pub mod health;
pub mod logprobs;
pub mod metrics;
pub mod optim;
pub mod ppo;
pub mod ppo_command;
pub mod ppo_report;
pub mod ppo_rollout;
mod ppo_run;
mod ppo_state;
mod ppo_train;
pub mod progress;
pub mod reward;
pub mod reward_fn;
pub mod run;
pub mod sample;
pub mod scoring;
pub mod session;
pub mod sft;
