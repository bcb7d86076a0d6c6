//! Run configuration shared by every training command: [`CommonArgs`] (the
//! flags), a TOML run file (`--config run.toml`) that can supply any of them,
//! the model-adaptation hook ([`apply_adaptation`]: LoRA, quantized base) and
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

use anyhow::{anyhow, ensure, Context, Result};
use clap::Args;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use std::path::{Path, PathBuf};

use crate::data::{ChatTemplate, ColumnMap, LoadOptions};
use crate::models::lm::CausalLm;
use crate::models::lora::{is_adapter_param, LoraConfig};
use crate::train::optim::Schedule;
use crate::train::progress::ProgressMode;

pub mod bounds;
pub mod run_file;

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
    /// Examples per micro-batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Peak learning rate (default: the trainer's own).
    #[arg(long, value_parser = bounds::positive::<f32>)]
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
    /// Plain log line every N steps when stdout is not a terminal.
    #[arg(long, default_value_t = 10)]
    pub log_every: u64,
    /// Most tokens per sequence (default: the model's context).
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Chat template: an engine preset (gpt2, plain, hh, support), an
    /// engine_template.json, or a .jinja file (default: the model
    /// directory's engine_template.json, else its tokenizer's chat_template).
    #[arg(long)]
    pub template: Option<String>,
    /// Skip (and count) bad data rows instead of failing.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Column renames, `field=column,...`.
    #[arg(long)]
    pub columns: Option<String>,
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

    /// The learning rate, `default` unless one was given.
    pub fn lr_or(&self, default: f32) -> f32 {
        self.lr.unwrap_or(default)
    }

    /// The schedule, `default` unless one was given.
    pub fn schedule_or(&self, default: Schedule) -> Schedule {
        self.schedule.unwrap_or(default)
    }

    pub fn column_map(&self) -> Result<ColumnMap> {
        column_map(self.columns.as_deref())
    }

    pub fn load_options(&self) -> Result<LoadOptions> {
        load_options(self.columns.as_deref(), self.skip_bad_rows)
    }

    /// --template, else the model directory's template (see [`ChatTemplate::resolve`]).
    pub fn chat_template(&self) -> Result<ChatTemplate> {
        chat_template(self.template.as_deref(), self.model_dir())
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
        self.column_map()?;
        Ok(())
    }
}

/// `--columns` (`field=column,...`), or no renames.
fn column_map(columns: Option<&str>) -> Result<ColumnMap> {
    match columns {
        Some(s) => s.parse().context("--columns"),
        None => Ok(ColumnMap::default()),
    }
}

/// Load options from `--columns` and `--skip-bad-rows`, for the trainers
/// and the sampling commands alike.
pub fn load_options(columns: Option<&str>, skip_bad_rows: bool) -> Result<LoadOptions> {
    Ok(LoadOptions {
        columns: column_map(columns)?,
        skip_bad_rows,
        ..LoadOptions::default()
    })
}

/// `--template`, else the model directory's template; see [`ChatTemplate::resolve`].
pub fn chat_template(template: Option<&str>, model_dir: Result<&Path>) -> Result<ChatTemplate> {
    ChatTemplate::resolve(template, model_dir)
}

/// Seed offset of LoRA's initialisation (distinct from data order seeds).
const LORA_INIT_STREAM: u64 = 0x4c6f_5241;

/// Adapts a loaded model as the flags ask: quantizes the frozen base
/// (`--quant`), then attaches fresh LoRA adapters (`--lora-*`). With
/// adapters, task heads (`v_head.*`, `score.weight`) stay trainable, as
/// PEFT's `modules_to_save`; everything else is frozen.
pub fn apply_adaptation(model: &mut CausalLm, args: &CommonArgs) -> Result<()> {
    args.validate()?;
    if args.quant != Quant::None {
        quantize_base(model, args.quant)?;
    }
    if let Some(cfg) = args.lora_config(model) {
        model
            .attach_lora(&cfg, args.seed ^ LORA_INIT_STREAM)
            .with_context(|| format!("--lora-r {}", args.lora_r))?;
        keep_heads_trainable(model);
    }
    Ok(())
}

/// Stores the frozen base as int8/NF4 (`CausalLm::quantize_base`).
fn quantize_base(model: &mut CausalLm, quant: Quant) -> Result<()> {
    let format = match quant {
        Quant::None => return Ok(()),
        Quant::Int8 => crate::quant::QuantFormat::Int8,
        Quant::Nf4 => crate::quant::QuantFormat::Nf4,
    };
    model.quantize_base(format)
}

/// True for head parameters that train alongside LoRA adapters (PEFT's
/// SEQ_CLS `modules_to_save`: `score`, and `classifier` matched as a name
/// suffix, so DistilBERT's `pre_classifier` too).
pub fn is_head_param(name: &str) -> bool {
    name.starts_with("v_head.")
        || name == "score.weight"
        || name.starts_with("classifier.")
        || name.starts_with("pre_classifier.")
}

/// Adapters and heads trainable, the rest frozen (after attaching or
/// loading adapters, which freeze everything else).
pub fn keep_heads_trainable(model: &mut CausalLm) {
    model
        .params
        .set_trainable(|n| is_adapter_param(n) || is_head_param(n));
}

/// A training command's args struct: a `clap::Args` + serde (kebab-case)
/// struct that flattens [`CommonArgs`].
pub trait TrainArgs: Serialize + DeserializeOwned {
    /// The run file's table for this command (one of [`run_file::SECTIONS`]).
    const SECTION: &'static str;
    fn common(&self) -> &CommonArgs;
    fn common_mut(&mut self) -> &mut CommonArgs;
}
