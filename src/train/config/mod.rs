//! Run configuration shared by every training command: [`CommonArgs`] (the
//! flags), a TOML run file (`--config run.toml`) that can supply any of them,
//! the model-adaptation hook ([`adapt::apply_adaptation`]: LoRA, quantized base) and
//! the effective config as JSON.
//!
//! # Layers, highest first
//! 1. flags given on the command line;
//! 2. the run file: flat keys named like the flags (`lora-r = 8`), and keys in
//!    the command's own table (`[sft]`, `[ppo]`, ...; see [`TrainArgs::SECTION`]),
//!    which win over flat keys;
//! 3. on `--resume`, the config stored in the checkpoint (so a resumed run
//!    continues with the same settings unless told otherwise);
//! 4. the flags' defaults.
//!
//! A command's args struct is a `clap::Args` that also derives serde with
//! `rename_all = "kebab-case"` and flattens [`CommonArgs`] (both in clap and
//! serde); [`run_file::load_args`] merges the layers for any such struct. A flat key no
//! field of the command knows, a key of its table it does not know, or a
//! table that is no trainer's ([`run_file::SECTIONS`]) is an error naming the key and
//! the file, and so is a value of the wrong type. Tables of other trainers
//! are skipped, so one file can drive a whole SFT -> reward -> PPO pipeline.
//! Paths in the file are taken as written (relative to the working
//! directory, as on the command line).
//!
//! ```toml
//! model = "models/pythia-160m"     # flat keys: any command's shared options
//! data = "data/train.jsonl"
//! steps = 2000
//! lr = 1e-5
//! lora-r = 16
//! lora-targets = ["query_key_value", "dense"]   # or "query_key_value,dense"
//!
//! [sft]                            # read by train-sft only
//! completion-only = false
//! lr = 2e-5
//!
//! [ppo]                            # read by train-ppo only
//! reward-model = "runs/rm/model"
//! ```

use anyhow::{anyhow, ensure, Result};
use clap::Args;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use std::path::{Path, PathBuf};

use crate::data::{ChatTemplate, LoadOptions};
use crate::models::lm::CausalLm;
use crate::models::lora::LoraConfig;
use crate::train::metrics::report_to::ReportTo;
use crate::train::optim::Schedule;
use crate::train::progress::ProgressMode;

pub mod adapt;
pub mod bounds;
pub mod data_format;
pub mod run_file;

use self::data_format::DataFormatArgs;

/// Frozen-base storage for QLoRA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quant {
    None,
    Int8,
    Nf4,
}

impl std::fmt::Display for Quant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Quant::None => "none",
            Quant::Int8 => "int8",
            Quant::Nf4 => "nf4",
        })
    }
}

fn parse_schedule(s: &str) -> Result<Schedule, String> {
    match s {
        "constant" => Ok(Schedule::Constant),
        "linear" => Ok(Schedule::Linear),
        "cosine" => Ok(Schedule::Cosine),
        _ => Err(format!("`{s}`: expected constant, linear or cosine")),
    }
}

/// A list as a TOML array or a comma-separated string.
fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Either>::deserialize(d)? {
        None => None,
        Some(Either::One(s)) => Some(s.split(',').map(|t| t.trim().to_string()).collect()),
        Some(Either::Many(v)) => Some(v),
    })
}

fn default_max_skipped_steps() -> u32 {
    3
}

/// Options every training command takes.
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CommonArgs {
    /// Model directory (Hugging Face layout).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Training data (JSONL, CSV or TSV, optionally gzipped).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Held-out data for eval metrics.
    #[arg(long)]
    pub eval_data: Option<PathBuf>,
    /// Without --eval-data: hold out this fraction of --data (seeded).
    #[arg(long, default_value_t = 0.0, value_parser = bounds::fraction::<f64>)]
    pub eval_fraction: f64,
    /// Run directory (default `./runs/<UTC timestamp>`; with --resume, the
    /// resumed run's directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write into an --out that exists and is not empty (not needed to
    /// resume a run in its own directory).
    #[arg(long)]
    #[serde(default)]
    pub force: bool,
    /// Optimizer steps of the whole run.
    #[arg(long, default_value_t = 100)]
    pub steps: u64,
    /// Passes over --data instead of --steps (may be fractional): steps =
    /// ⌈epochs × max(1, ⌊batches per epoch / --grad-accum⌋)⌉, as
    /// transformers' Trainer (PPO: prompts per epoch / --batch-size).
    #[arg(
        long,
        visible_alias = "num-train-epochs",
        conflicts_with = "steps",
        value_parser = bounds::positive::<f64>
    )]
    pub epochs: Option<f64>,
    /// Examples per micro-batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Peak learning rate (default: the trainer's own).
    #[arg(long, visible_alias = "learning-rate", value_parser = bounds::positive::<f32>)]
    pub lr: Option<f32>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Continue from a checkpoint (a run directory or its `checkpoint`).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// TOML run file supplying any option (flags take precedence).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Micro-batches per optimizer step (gradients summed).
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    #[arg(long, default_value_t = 0)]
    pub warmup_steps: u32,
    /// Decay after warm-up: constant, linear or cosine (default: the
    /// trainer's own: linear as transformers' Trainer for SFT, reward and
    /// DPO; constant for PPO, as TRL).
    #[arg(long, value_parser = parse_schedule)]
    pub schedule: Option<Schedule>,
    /// Global gradient-norm clip (0 = off).
    #[arg(long, default_value_t = 1.0, value_parser = bounds::non_negative::<f32>)]
    pub max_grad_norm: f32,
    #[arg(long, default_value_t = 0.0, value_parser = bounds::non_negative::<f32>)]
    pub weight_decay: f32,
    /// Eval every N steps (0 = only at the end).
    #[arg(long, default_value_t = 0)]
    pub eval_every: u64,
    /// Checkpoint every N steps (0 = only at the end).
    #[arg(long, default_value_t = 0)]
    pub save_every: u64,
    /// Also keep `checkpoint-<step>` copies.
    #[arg(long)]
    pub keep_checkpoints: bool,
    /// Also write the metrics for other tools, comma list: tensorboard
    /// (event files in <out>/runs/), csv (<out>/metrics.csv); metrics.jsonl
    /// is always written.
    #[arg(long, value_enum, value_delimiter = ',')]
    #[serde(default)]
    pub report_to: Vec<ReportTo>,
    /// Plain log line every N steps when stdout is not a terminal.
    #[arg(long, default_value_t = 10)]
    pub log_every: u64,
    /// Most tokens per sequence (default: the model's context).
    #[arg(long, visible_alias = "max-length")]
    pub max_len: Option<usize>,
    #[command(flatten)]
    #[serde(flatten)]
    pub format: DataFormatArgs,
    /// Store the frozen base quantized (needs LoRA).
    #[arg(long, value_enum, default_value_t = Quant::None)]
    pub quant: Quant,
    /// LoRA rank (0 = full fine-tuning).
    #[arg(long, default_value_t = 0)]
    pub lora_r: usize,
    #[arg(long, default_value_t = 16.0, value_parser = bounds::positive::<f32>)]
    pub lora_alpha: f32,
    #[arg(long, default_value_t = 0.0, value_parser = bounds::fraction::<f32>)]
    pub lora_dropout: f32,
    /// Adapted modules, comma list (default: c_attn / query_key_value).
    #[arg(long, value_delimiter = ',')]
    #[serde(default, deserialize_with = "string_or_list")]
    pub lora_targets: Option<Vec<String>>,
    /// auto (a bar on a terminal, else plain lines), bar, plain or silent.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Stop the run after this many steps in a row were skipped as
    /// non-finite (NaN/Inf loss or gradients); at least 1.
    #[arg(long, default_value_t = 3)]
    #[serde(default = "default_max_skipped_steps")]
    pub max_skipped_steps: u32,
    /// Stop after this step as if interrupted (checkpointing first).
    #[arg(long, hide = true)]
    pub stop_after: Option<u64>,
}

impl CommonArgs {
    pub fn model_dir(&self) -> Result<&Path> {
        self.model
            .as_deref()
            .ok_or_else(|| anyhow!("no model: pass --model DIR (or `model` in the run file)"))
    }

    pub fn data_file(&self) -> Result<&Path> {
        self.data
            .as_deref()
            .ok_or_else(|| anyhow!("no data: pass --data FILE (or `data` in the run file)"))
    }

    /// With `--epochs`, sets `--steps` for `batches_per_epoch` micro-batches
    /// an epoch and `per_step` of them an optimizer step, as transformers'
    /// Trainer: ⌈epochs × max(1, ⌊batches_per_epoch / per_step⌋)⌉.
    pub fn resolve_epochs(&mut self, batches_per_epoch: usize, per_step: usize) -> Result<()> {
        ensure!(
            self.epochs.is_none() || batches_per_epoch > 0,
            "--epochs: --data gives no full batch of {}",
            self.batch_size
        );
        let updates = (batches_per_epoch / per_step.max(1)).max(1);
        self.resolve_epochs_by(|epochs| epochs * updates as f64);
        Ok(())
    }

    /// With `--epochs`, sets `--steps` to ⌈`steps(epochs)`⌉ (at least 1).
    pub fn resolve_epochs_by(&mut self, steps: impl FnOnce(f64) -> f64) {
        if let Some(epochs) = self.epochs {
            self.steps = steps(epochs).ceil().max(1.0) as u64;
        }
    }

    /// The learning rate, `default` unless one was given.
    pub fn lr_or(&self, default: f32) -> f32 {
        self.lr.unwrap_or(default)
    }

    /// The schedule, `default` unless one was given.
    pub fn schedule_or(&self, default: Schedule) -> Schedule {
        self.schedule.unwrap_or(default)
    }

    pub fn load_options(&self) -> Result<LoadOptions> {
        self.format.load_options()
    }

    /// --template, else the model directory's template (see [`ChatTemplate::resolve`]).
    pub fn chat_template(&self) -> Result<ChatTemplate> {
        self.format.chat_template(self.model_dir())
    }

    /// Sequence length limit: --max-len capped at the model's context.
    pub fn max_len_for(&self, model: &CausalLm) -> usize {
        self.max_len
            .map_or(model.cfg.n_ctx, |m| m.min(model.cfg.n_ctx))
    }

    /// The LoRA config the flags ask for (None for full fine-tuning).
    pub fn lora_config(&self, model: &CausalLm) -> Option<LoraConfig> {
        if self.lora_r == 0 {
            return None;
        }
        let targets = self.lora_targets.clone().unwrap_or_else(|| {
            // PEFT's default for the architecture.
            let targets = model.arch().default_lora_targets();
            targets.iter().map(|t| t.to_string()).collect()
        });
        let mut cfg = LoraConfig::new(self.lora_r, self.lora_alpha, &[]);
        cfg.target_modules = targets;
        cfg.dropout = self.lora_dropout;
        Some(cfg)
    }

    /// Checks that do not need the model.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.batch_size > 0, "--batch-size must be positive");
        ensure!(self.grad_accum > 0, "--grad-accum must be positive");
        ensure!(self.steps > 0, "--steps must be positive");
        ensure!(
            self.max_skipped_steps >= 1,
            "--max-skipped-steps must be at least 1 (got {})",
            self.max_skipped_steps
        );
        ensure!(
            self.quant == Quant::None || self.lora_r > 0,
            "--quant {} keeps the base frozen: add LoRA adapters (--lora-r N) to train",
            self.quant
        );
        self.format.column_map()?;
        Ok(())
    }
}

/// TRL's names of `--batch-size` and `--grad-accum` as visible aliases,
/// for the trainers whose batch is transformers' per-device train batch
/// (SFT, reward, DPO; PPO has its own `--gradient-accumulation-steps`):
/// `#[command(mut_args(config::trl_batch_aliases))]`.
pub fn trl_batch_aliases(arg: clap::Arg) -> clap::Arg {
    match arg.get_id().as_str() {
        "batch_size" => arg.visible_alias("per-device-train-batch-size"),
        "grad_accum" => arg.visible_alias("gradient-accumulation-steps"),
        _ => arg,
    }
}

/// A training command's args struct: a `clap::Args` + serde (kebab-case)
/// struct that flattens [`CommonArgs`].
pub trait TrainArgs: Serialize + DeserializeOwned {
    /// The run file's table for this command (one of [`run_file::SECTIONS`]).
    const SECTION: &'static str;
    fn common(&self) -> &CommonArgs;
    fn common_mut(&mut self) -> &mut CommonArgs;
}

/// Implements [`TrainArgs`] for an args struct whose `common` field is the
/// flattened [`CommonArgs`]: `train_args!(SftArgs, "sft");`.
macro_rules! train_args {
    ($args:ty, $section:literal) => {
        impl $crate::train::config::TrainArgs for $args {
            const SECTION: &'static str = $section;
            fn common(&self) -> &$crate::train::config::CommonArgs {
                &self.common
            }
            fn common_mut(&mut self) -> &mut $crate::train::config::CommonArgs {
                &mut self.common
            }
        }
    };
}
pub(crate) use train_args;
