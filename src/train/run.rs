//! The run directory and its checkpoints, shared by every trainer.
//!
//! ```text
//! <out>/                      default ./runs/<UTC timestamp>/
//!   run_config.json           the effective config (flags + run file + defaults)
//!   metrics.jsonl             one object per step (MetricsLog)
//!   chart.svg                 end-of-run chart
//!   summary.json              end-of-run summary
//!   model/                    final model, HF layout (full fine-tuning; merged
//!                             LoRA where the trainer asks for it)
//!   adapter/                  final PEFT adapter (LoRA) + heads.safetensors
//!                             (+ model.safetensors: the PPO v_head.* alone,
//!                             where TRL's value-head loader reads it)
//!   checkpoint/               latest checkpoint, replaced atomically:
//!     model/                  full fine-tuning: HF layout (config, weights, tokenizer)
//!     adapter/                LoRA: PEFT adapter_config.json + adapter_model.safetensors
//!     heads.safetensors       LoRA: trainable heads (v_head.*, score.weight)
//!     optimizer.safetensors   AdamW moments (Optimizer::save)
//!     extra files             whatever the trainer's `extra` hook writes
//!     trainer_state.json      step, data cursor, RNG streams, trainer scalars,
//!                             effective config; written last
//!   checkpoint-<step>/        earlier checkpoints, with --keep-checkpoints
//! ```
//!
//! A checkpoint is written into `<out>/.checkpoint.tmp`; only when every file
//! is written does it replace `checkpoint` (old one renamed aside, new one
//! renamed in, old one removed or kept as `checkpoint-<step>`). A failure
//! leaves the previous checkpoint untouched; a crash between the two renames
//! leaves `.checkpoint.old`, which [`checkpoint_dir`] falls back to.

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::config::adapt::{is_head_param, keep_heads_trainable};
use super::divergence::GuardState;
use super::optim::Optimizer;
use crate::models::checkpoint::{
    save_safetensors, write_atomic, Checkpoint, HostTensor, SaveDtype,
};
use crate::models::lm::CausalLm;
use crate::models::lora::is_adapter_param;

pub const CHECKPOINT: &str = "checkpoint";
mod out_dir;
pub use out_dir::{check_out_dir, default_out_dir, resumed_run_dir, utc_stamp};

const TMP: &str = ".checkpoint.tmp";
const OLD: &str = ".checkpoint.old";
pub const STATE_FILE: &str = "trainer_state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const HEADS_FILE: &str = "heads.safetensors";
/// The PPO value head in a final adapter directory, as TRL reads it.
pub const TRL_VALUE_HEAD_FILE: &str = "model.safetensors";
pub const RUN_CONFIG_FILE: &str = "run_config.json";

/// A trainer's hook that writes its own files into a checkpoint directory
/// (e.g. a separate value model), called before the state file is written.
pub type ExtraFiles<'a> = &'a dyn Fn(&Path) -> Result<()>;

/// Where the next batch comes from: `batch` batches of `epoch` are done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCursor {
    pub epoch: u64,
    pub batch: u64,
}

/// Everything besides tensors that a resumed run needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// `sft`, `reward`, `ppo`, `dpo`, ...: a checkpoint resumes only its own trainer.
    pub trainer: String,
    /// Trainer steps completed.
    pub step: u64,
    pub cursor: DataCursor,
    /// Optimizer::step and Optimizer::skipped.
    pub optimizer_step: u32,
    pub optimizer_skipped: u32,
    /// The divergence guard's counters (skipped steps, the current streak).
    #[serde(default)]
    pub divergence: GuardState,
    /// Named RNG streams (`Rng::state`), for trainers with stateful sampling.
    #[serde(default)]
    pub rng: BTreeMap<String, u64>,
    /// Trainer-specific scalars (e.g. PPO's KL coefficient).
    #[serde(default)]
    pub extra: Value,
    /// The effective config (see `config::run_file::effective_config`).
    #[serde(default)]
    pub config: Value,
    #[serde(default)]
    pub engine_version: String,
}

impl TrainerState {
    pub fn new(trainer: &str, config: Value) -> TrainerState {
        TrainerState {
            trainer: trainer.to_string(),
            config,
            engine_version: env!("CARGO_PKG_VERSION").to_string(),
            ..TrainerState::default()
        }
    }
}

/// The checkpoint directory for `--resume PATH`: PATH itself when it holds
/// a trainer state, else PATH/checkpoint (or the `.checkpoint.old` a crash
/// mid-swap left).
pub fn checkpoint_dir(path: &Path) -> Result<PathBuf> {
    for dir in [path.to_path_buf(), path.join(CHECKPOINT), path.join(OLD)] {
        if dir.join(STATE_FILE).is_file() {
            return Ok(dir);
        }
    }
    bail!(
        "{}: no checkpoint ({STATE_FILE} not found there or in {CHECKPOINT}/)",
        path.display()
    )
}

pub fn read_state(ckpt: &Path) -> Result<TrainerState> {
    let path = ckpt.join(STATE_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn write_json(path: &Path, v: &impl Serialize) -> Result<()> {
    write_atomic(path, (serde_json::to_string_pretty(v)? + "\n").as_bytes())
}

/// Trainable non-adapter parameters (heads) beside a LoRA adapter.
fn save_heads(model: &CausalLm, path: &Path) -> Result<()> {
    let mut heads = BTreeMap::new();
    for p in model.params.iter().filter(|p| is_head_param(&p.name)) {
        heads.insert(
            p.name.clone(),
            HostTensor::new(p.tensor.shape(), p.tensor.to_vec()?),
        );
    }
    if !heads.is_empty() {
        save_safetensors(path, &heads, SaveDtype::F32)?;
    }
    Ok(())
}

/// A PPO value head beside a LoRA adapter where TRL finds it: TRL 0.11's
/// `AutoModelForCausalLMWithValueHead.from_pretrained(adapter_dir)` loads
/// the adapter with PEFT, then reads `adapter_dir/model.safetensors` (else
/// `pytorch_model.bin`, what its own `save_pretrained` writes for a PEFT
/// model) and keeps the `v_head.*` tensors (`PreTrainedModelWrapper.post_init`).
fn save_trl_value_head(model: &CausalLm, dir: &Path) -> Result<()> {
    let mut head = BTreeMap::new();
    for p in model
        .params
        .iter()
        .filter(|p| p.name.starts_with("v_head."))
    {
        let host = HostTensor::new(p.tensor.shape(), p.tensor.to_vec()?);
        head.insert(p.name.clone(), host);
    }
    if head.is_empty() {
        return Ok(());
    }
    save_safetensors(&dir.join(TRL_VALUE_HEAD_FILE), &head, SaveDtype::F32)
}

/// The trained weights into `dir`: `model/` (full fine-tuning) or
/// `adapter/` + `heads.safetensors` (LoRA).
fn save_weights(model: &CausalLm, dir: &Path) -> Result<()> {
    if model.lora.is_some() {
        model.save_adapter(&dir.join("adapter"))?;
        save_heads(model, &dir.join(HEADS_FILE))
    } else {
        model.save(&dir.join("model"), SaveDtype::F32)
    }
}

/// Overwrites the model's parameters named in `path` (shapes checked);
/// `only` limits which are expected.
fn load_params(model: &CausalLm, ck: &Checkpoint, only: impl Fn(&str) -> bool) -> Result<()> {
    for p in model.params.iter().filter(|p| only(&p.name)) {
        let host = ck
            .get_shaped(&p.name, p.tensor.shape())
            .with_context(|| format!("checkpoint {}", ck.describe()))?;
        p.tensor.write(&host.data)?;
    }
    Ok(())
}

/// Writes a checkpoint of `model`, `opt` and `state` to `<out>/checkpoint`
/// atomically (see the module docs). `extra` writes trainer-specific files
/// into the new checkpoint directory before the state file. `keep` renames
/// the replaced checkpoint to `checkpoint-<its step>` instead of removing it.
pub fn save_checkpoint(
    out: &Path,
    model: &CausalLm,
    opt: &Optimizer,
    state: &TrainerState,
    keep: bool,
    extra: Option<ExtraFiles>,
) -> Result<PathBuf> {
    let tmp = out.join(TMP);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    let written = (|| -> Result<()> {
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        save_weights(model, &tmp)?;
        opt.save(&tmp.join(OPTIMIZER_FILE))?;
        if let Some(f) = extra {
            f(&tmp)?;
        }
        let mut st = state.clone();
        st.optimizer_step = opt.step;
        st.optimizer_skipped = opt.skipped;
        write_json(&tmp.join(STATE_FILE), &st)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context(format!("writing checkpoint into {}", out.display())));
    }
    let dest = out.join(CHECKPOINT);
    let aside = if dest.exists() {
        let prev = read_state(&dest).map(|s| s.step).ok();
        let aside = match (keep, prev) {
            (true, Some(step)) => out.join(format!("{CHECKPOINT}-{step}")),
            _ => out.join(OLD),
        };
        if aside.exists() {
            std::fs::remove_dir_all(&aside)?;
        }
        std::fs::rename(&dest, &aside)
            .with_context(|| format!("moving {} aside", dest.display()))?;
        Some(aside)
    } else {
        None
    };
    if let Err(e) = std::fs::rename(&tmp, &dest) {
        if let Some(a) = &aside {
            let _ = std::fs::rename(a, &dest);
        }
        return Err(anyhow!(e).context(format!("renaming {} into place", tmp.display())));
    }
    if let Some(a) = aside.filter(|a| a.ends_with(OLD)) {
        std::fs::remove_dir_all(&a).with_context(|| format!("removing {}", a.display()))?;
    }
    Ok(dest)
}

/// Restores weights, optimizer moments and the trainer state from `ckpt`
/// onto a model set up as the run was (same --model, adaptation applied).
/// Returns the state; `opt.step`/`opt.skipped` are set from it.
pub fn restore_checkpoint(
    ckpt: &Path,
    model: &mut CausalLm,
    opt: &mut Optimizer,
) -> Result<TrainerState> {
    let state = read_state(ckpt)?;
    let adapter = ckpt.join("adapter");
    if adapter.is_dir() {
        ensure!(
            model.lora.is_some(),
            "{} holds LoRA adapters but this run has none (--lora-r)",
            ckpt.display()
        );
        model.load_adapter(&adapter)?;
        keep_heads_trainable(model);
        let heads = ckpt.join(HEADS_FILE);
        if heads.is_file() {
            load_params(model, &Checkpoint::open_file(&heads)?, is_head_param)?;
        }
    } else {
        ensure!(
            model.lora.is_none(),
            "{} holds a fully fine-tuned model but this run has LoRA adapters",
            ckpt.display()
        );
        let ck = Checkpoint::open(&ckpt.join("model"))?;
        load_params(model, &ck, |n| !is_adapter_param(n))?;
    }
    opt.load(
        &ckpt.join(OPTIMIZER_FILE),
        &model.params,
        state.optimizer_step,
    )?;
    opt.skipped = state.optimizer_skipped;
    Ok(state)
}

/// Where the final weights went.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SavedModel {
    /// HF directory (full fine-tuning, or merged adapters).
    pub model: Option<PathBuf>,
    /// PEFT adapter directory (+ heads.safetensors).
    pub adapter: Option<PathBuf>,
}

/// Saves the final model into `<out>/model` (full fine-tuning) or
/// `<out>/adapter` (LoRA; with `merged`, also the merged model in
/// `<out>/model`, adapters unmerged again afterwards). `template` is stored
/// beside the model so later stages render prompts the same way.
pub fn save_final(
    out: &Path,
    model: &mut CausalLm,
    merged: bool,
    template: Option<&crate::data::ChatTemplate>,
) -> Result<SavedModel> {
    let mut saved = SavedModel::default();
    let model_dir = out.join("model");
    // The template the run used is the outputs' tokenizer chat_template.
    if let Some(t) = template {
        model.set_chat_template(t.jinja_source());
    }
    if model.lora.is_some() {
        let dir = out.join("adapter");
        model.save_adapter(&dir)?;
        model.save_tokenizer(&dir)?;
        save_heads(model, &dir.join(HEADS_FILE))?;
        save_trl_value_head(model, &dir)?;
        saved.adapter = Some(dir);
        if merged {
            model.merge_lora()?;
            let r = model.save(&model_dir, SaveDtype::F32);
            model.unmerge_lora()?;
            r?;
            saved.model = Some(model_dir.clone());
        }
    } else {
        model.save(&model_dir, SaveDtype::F32)?;
        saved.model = Some(model_dir.clone());
    }
    if let Some(t @ crate::data::ChatTemplate::Engine(_)) = template {
        for dir in [&saved.model, &saved.adapter].into_iter().flatten() {
            t.save(&dir.join(crate::data::TEMPLATE_FILE))?;
        }
    }
    Ok(saved)
}

/// Prepares `<out>/metrics.jsonl` for a resumed run: keeps rows up to
/// `step` (later ones were logged after the checkpoint and will be redone),
/// copying them from the checkpoint's own run directory when `out` is new.
pub fn rewind_metrics(out: &Path, ckpt: &Path, step: u64) -> Result<()> {
    let path = out.join("metrics.jsonl");
    let source = if path.exists() {
        path.clone()
    } else {
        match ckpt.parent().map(|p| p.join("metrics.jsonl")) {
            Some(p) if p.exists() => p,
            _ => return Ok(()),
        }
    };
    let text = std::fs::read_to_string(&source)
        .with_context(|| format!("reading {}", source.display()))?;
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| v.get("step")?.as_u64())
                .is_some_and(|s| s <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    write_atomic(&path, kept.as_bytes())
}
