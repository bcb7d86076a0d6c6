//! What every trainer shares, flat in this folder: the optimizer step with
//! its guards ([`optim`]), metrics and progress, run configuration
//! ([`config`]), the run directory and checkpoints ([`run`]), the loop
//! scaffolding ([`session`]), the end-of-run chart, sequence log-probs
//! ([`logprobs`]), scoring by a reward model or function ([`scoring`],
//! [`reward_fn`]) and what the command drivers share ([`driver`]). Each
//! trainer has its own folder: [`sft`], [`reward`], [`ppo`] (with health
//! checks), [`dpo`] (DPO, IPO, KTO) and the sampling commands [`sample`]
//! (best-of-n, eval). A trainer folder reads top down: its `mod.rs` holds the
//! command (the args struct and the entry the CLI calls), its children the
//! trainer's concepts (trainer, data, config, loss, metrics).
//!
//! # Writing a trainer
//! 1. An args struct: `#[derive(clap::Args, Serialize, Deserialize)]` with
//!    `#[serde(rename_all = "kebab-case")]`, flattening [`config::CommonArgs`]
//!    (`#[command(flatten)] #[serde(flatten)]`), plus its own flags; implement
//!    [`config::TrainArgs`] (its run-file table name and the `common` accessors).
//!    The CLI passes it through [`config::run_file::load_args`] (tests:
//!    [`config::run_file::parse_args`]).
//! 2. Load the model, switch heads if needed, then [`config::adapt::apply_adaptation`]
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
//!    so checkpoints hold the moments it stepped (see `ppo/command.rs`).
//! 4. `s.finish(model, merged, template, chart_keys)`.

pub mod chart;
pub mod config;
pub mod divergence;
pub mod dpo;
pub mod driver;
pub mod logprobs;
pub mod metrics;
pub mod optim;
pub mod ppo;
pub mod progress;
pub mod reward;
pub mod reward_fn;
pub mod reward_mix;
pub mod run;
pub mod sample;
pub mod scoring;
pub mod session;
pub mod sft;
