//! Direct alignment from preferences (DPO, IPO, KTO, kto_pair), read top
//! down: the command `engine train-dpo --loss dpo|ipo|kto|kto_pair` here
//! ([`DpoArgs`] and the driver [`train_dpo`]), the [`trainer`] it runs, the
//! encoded [`data`] and its batch losses, the [`config`] (the loss and TRL's
//! hyper-parameters) and the [`metrics`] it reports.
//!
//! [`train_dpo`] runs [`DpoTrainer`] through [`Session`]: checkpoints hold
//! the model (or its PEFT adapter), Adam's moments and in
//! `trainer_state.json` the trainer's state (step, optimizer counters and,
//! for a precomputed reference, its log-prob cache). The batches and LoRA
//! dropout of step s are pure functions of (seed, s), so `--resume DIR`
//! continues exactly.

pub mod config;
pub mod data;
pub mod metrics;
pub mod trainer;

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

use self::config::{DirectLoss, DpoConfig};
use self::data::DirectData;
use self::trainer::DpoTrainer;
use crate::data::{Encoder, EpochSampler, Truncation};
use crate::device::Gpu;
use crate::models::lm::CausalLm;
use crate::train::config::adapt::load_adapted_lm;
use crate::train::config::{bounds, train_args, trl_batch_aliases, CommonArgs};
use crate::train::driver::{no_model_error, owned_row, resumed_extra, RlhfSummary};
use crate::train::optim::Schedule;
use crate::train::session::Session;

/// TRL `DPOConfig`'s learning rate.
pub const DPO_LR: f32 = 1e-6;

/// Keys drawn in the DPO chart.
pub const DPO_CHART: &[&str] = &[
    "loss",
    "eval_loss",
    "rewards/margins",
    "rewards/accuracies",
    "logps/chosen",
];

/// Keys in the progress line and the summary.
const SHOWN: &[&str] = &["loss", "rewards/margins", "rewards/accuracies", "eval_loss"];

#[derive(clap::Args, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[command(mut_args(trl_batch_aliases))]
pub struct DpoArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// dpo, ipo, kto or kto_pair.
    #[arg(long, default_value = "dpo", value_parser = parse_loss)]
    pub loss: String,
    /// β: the KL strength.
    #[arg(long, default_value_t = 0.1, value_parser = bounds::positive::<f32>)]
    pub beta: f32,
    #[arg(long, default_value_t = 0.0, value_parser = bounds::below_half::<f32>)]
    pub label_smoothing: f32,
    /// KTO's weight of desirable examples.
    #[arg(long, default_value_t = 1.0, value_parser = bounds::non_negative::<f32>)]
    pub desirable_weight: f32,
    /// KTO's weight of undesirable examples.
    #[arg(long, default_value_t = 1.0, value_parser = bounds::non_negative::<f32>)]
    pub undesirable_weight: f32,
    /// Most prompt tokens (TRL's max_prompt_length): a prompt that does not
    /// fit with its longer response keeps its last N tokens, and each
    /// response then at most --max-len minus N. Default: the prompt may take
    /// all but one token.
    #[arg(long, visible_alias = "max-prompt-length")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prompt_len: Option<usize>,
}

fn parse_loss(s: &str) -> Result<String, String> {
    direct_loss(s).map(|_| s.to_string())
}

fn direct_loss(s: &str) -> Result<DirectLoss, String> {
    match s {
        "dpo" | "sigmoid" => Ok(DirectLoss::Dpo),
        "ipo" => Ok(DirectLoss::Ipo),
        "kto" => Ok(DirectLoss::Kto),
        "kto_pair" | "kto-pair" => Ok(DirectLoss::KtoPair),
        _ => Err(format!("`{s}`: expected dpo, ipo, kto or kto_pair")),
    }
}

train_args!(DpoArgs, "dpo");

/// Runs DPO/IPO/KTO as `args` say; returns the trained model and the summary.
pub fn train_dpo(gpu: &Arc<Gpu>, mut args: DpoArgs) -> Result<(CausalLm, RlhfSummary)> {
    let c = args.common.clone();
    if c.model.is_none() {
        return Err(no_model_error("train-dpo", " (preference or KTO JSONL)"));
    }
    let loss = direct_loss(&args.loss).map_err(anyhow::Error::msg)?;
    let mut model = load_adapted_lm(gpu, &c, "DPO")?;
    let template = c.chat_template()?;
    let opts = c.load_options()?;
    let mut notes = Vec::new();
    let (train, eval) = {
        let tok = model
            .tokenizer
            .as_ref()
            .context("the model directory has no tokenizer.json")?;
        let max_len = c.max_len_for(&model);
        if let Some(p) = args.max_prompt_len {
            ensure!(
                p > 0 && p < max_len,
                "--max-prompt-len {p} must be between 1 and the sequence length {max_len} (--max-len) less one"
            );
        }
        let truncation = Truncation {
            max_prompt_len: args.max_prompt_len,
            ..Truncation::truncate(max_len)
        };
        let enc = Encoder::new(tok, &template, truncation.clone());
        let train = DirectData::load_noted(c.data_file()?, loss, &enc, &opts, &mut notes)?;
        let eval = match &c.eval_data {
            Some(p) => {
                let enc = Encoder::new(tok, &template, truncation);
                Some(DirectData::load_noted(p, loss, &enc, &opts, &mut notes)?)
            }
            None => None,
        };
        (train, eval)
    };
    let batches_per_epoch =
        EpochSampler::new(train.len(), c.batch_size, c.seed)?.batches_per_epoch();
    args.common
        .resolve_epochs(batches_per_epoch, c.grad_accum)?;
    let c = args.common.clone();
    let cfg = DpoConfig {
        loss,
        beta: args.beta,
        label_smoothing: args.label_smoothing,
        desirable_weight: args.desirable_weight,
        undesirable_weight: args.undesirable_weight,
        batch_size: c.batch_size,
        grad_accum: c.grad_accum,
        lr: c.lr_or(DPO_LR),
        weight_decay: c.weight_decay,
        warmup_steps: c.warmup_steps,
        total_steps: c.steps.min(u32::MAX as u64) as u32,
        schedule: c.schedule_or(Schedule::Linear),
        max_grad_norm: (c.max_grad_norm > 0.0).then_some(c.max_grad_norm),
        seed: c.seed,
        precompute_ref_log_probs: false,
    };
    // The session's optimizer is DpoTrainer's (same AdamW, schedule and
    // clipping from the flags); it restores the weights on --resume.
    let mut s = Session::start(&mut args, &mut model, "dpo", DPO_LR, SHOWN)?;
    for n in &notes {
        s.progress.println(n);
    }
    let mut trainer = DpoTrainer::new(model, cfg, train)?;
    if let Some(e) = eval {
        trainer = trainer.with_eval_data(e)?;
    }
    if c.resume.is_some() {
        trainer.restore(resumed_extra(&s.state.extra, "dpo")?)?;
        ensure!(
            trainer.steps_done() == s.state.step,
            "the checkpoint's DPO state is at step {}, its run at step {}",
            trainer.steps_done(),
            s.state.step
        );
    }
    let has_eval = c.eval_data.is_some();
    while let Some(step) = s.next_step() {
        let t0 = Instant::now();
        // The trainer steps the session's optimizer, which checkpoints save.
        std::mem::swap(&mut s.opt, trainer.optimizer_mut());
        let result = (|| {
            let rep = trainer.step()?;
            let eval = match has_eval && s.is_eval_step(step) {
                true => Some(trainer.evaluate()?),
                false => None,
            };
            anyhow::Ok((rep, eval, trainer.state()))
        })();
        std::mem::swap(&mut s.opt, trainer.optimizer_mut());
        let (rep, eval, state) = result?;
        let mut row = owned_row(rep.named());
        let micro_batches = step as f64 * c.grad_accum as f64;
        row.push((
            "epoch".to_string(),
            micro_batches / batches_per_epoch as f64,
        ));
        if let Some(e) = eval {
            row.extend(owned_row(e.named()));
        }
        row.push(("time/step_s".to_string(), t0.elapsed().as_secs_f64()));
        s.state.extra = json!({ "dpo": state });
        s.end_step(trainer.model(), step, &row, None)?;
    }
    let mut model = trainer.into_model();
    let run = s.finish(&mut model, false, Some(&template), DPO_CHART)?;
    Ok((model, RlhfSummary::new("dpo", run, SHOWN, Vec::new())))
}
