//! Supervised fine-tuning (TRL's SFTTrainer), read top down: the command
//! `engine train-sft` here ([`SftArgs`], [`train_sft`]) with its data
//! loading, and the [`loss`] of a step and of eval.
//!
//! Next-token cross-entropy on
//! prompt/completion, text or conversation data, optionally on completions
//! (assistant turns) only; full fine-tuning, LoRA or QLoRA through
//! [`apply_adaptation`](crate::train::config::adapt::apply_adaptation); gradient accumulation weighted by target tokens (so
//! `k` micro-batches give the gradient of their union as one batch); eval
//! loss and perplexity.
//!
//! Metrics, named as transformers' Trainer and TRL's SFTTrainer log them:
//! `loss`, `learning_rate`, `grad_norm`, `epoch` (fractional),
//! `num_tokens` (tokens seen so far), `eval_loss`, `eval_ppl`, and engine's
//! timings `time/tokens_per_s`, `time/step_s`.

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

pub mod loss;

use self::loss::{sft_eval, sft_grads};
use crate::data::{
    encode_all, load_sft, pad_id, sft_batch, train_eval_split, ChatTemplate, Encoder, EpochSampler,
    SftExample, Truncation,
};
use crate::device::Gpu;
use crate::models::lm::CausalLm;
use crate::train::config::adapt::load_adapted_lm;
use crate::train::config::{train_args, trl_batch_aliases, CommonArgs};
use crate::train::session::{step_seed, RunSummary, Session};

/// TRL SFTConfig's default learning rate.
pub const SFT_LR: f32 = 2e-5;

#[derive(clap::Args, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[command(mut_args(trl_batch_aliases))]
pub struct SftArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// Loss on completions / assistant turns only (false: every token).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub completion_only: bool,
}

train_args!(SftArgs, "sft");

/// Encoded SFT examples and how loading went.
pub struct SftData {
    pub train: Vec<SftExample>,
    pub eval: Vec<SftExample>,
    pub pad: i32,
    /// Load reports and skipped-row counts, one line each.
    pub notes: Vec<String>,
}

fn encode_file(
    path: &std::path::Path,
    common: &CommonArgs,
    enc: &Encoder,
    notes: &mut Vec<String>,
) -> Result<Vec<SftExample>> {
    let ds = load_sft(path, &common.load_options()?)?;
    notes.push(ds.report.to_string());
    let (ex, skipped, reasons) = encode_all(&ds.rows, common.format.skip_bad_rows, |r| enc.sft(r))?;
    if skipped > 0 {
        notes.push(format!(
            "{skipped} rows skipped while encoding: {reasons:?}"
        ));
    }
    ensure!(!ex.is_empty(), "{}: no usable examples", path.display());
    Ok(ex)
}

/// Loads and encodes --data (and --eval-data or an --eval-fraction split).
pub fn load_sft_data(args: &SftArgs, model: &CausalLm, template: &ChatTemplate) -> Result<SftData> {
    let c = &args.common;
    let tok = model
        .tokenizer
        .as_ref()
        .context("the model directory has no tokenizer.json")?;
    let mut enc = Encoder::new(tok, template, Truncation::truncate(c.max_len_for(model)));
    enc.completion_only = args.completion_only;
    let mut notes = Vec::new();
    let mut train = encode_file(c.data_file()?, c, &enc, &mut notes)?;
    let eval = match &c.eval_data {
        Some(p) => encode_file(p, c, &enc, &mut notes)?,
        None if c.eval_fraction > 0.0 => {
            let (t, e) = train_eval_split(train, c.eval_fraction, c.seed)?;
            train = t;
            e
        }
        None => Vec::new(),
    };
    let pad = pad_id(tok).context("the tokenizer has no pad or EOS token to pad with")?;
    Ok(SftData {
        train,
        eval,
        pad,
        notes,
    })
}

/// Keys drawn in the end-of-run chart.
pub const SFT_CHART: &[&str] = &["loss", "eval_loss", "grad_norm", "learning_rate"];

/// Runs SFT as `args` say; returns the trained model and the summary.
pub fn train_sft(gpu: &Arc<Gpu>, mut args: SftArgs) -> Result<(CausalLm, RunSummary)> {
    let c = args.common.clone();
    let mut model = load_adapted_lm(gpu, &c, "SFT")?;
    let template = c.chat_template()?;
    let data = load_sft_data(&args, &model, &template)?;
    let sampler = EpochSampler::new(data.train.len(), c.batch_size, c.seed)?;
    args.common
        .resolve_epochs(sampler.batches_per_epoch(), c.grad_accum)?;
    let shown = ["loss", "eval_loss", "learning_rate"];
    let mut s = Session::start(&mut args, &mut model, "sft", SFT_LR, &shown)?;
    for n in &data.notes {
        s.progress.println(n);
    }
    let per_epoch = sampler.batches_per_epoch() as f64;
    let dropout = model.lora.as_ref().is_some_and(|a| a.config.dropout > 0.0);
    while let Some(step) = s.next_step() {
        let t0 = Instant::now();
        let mut micro = Vec::with_capacity(c.grad_accum);
        for _ in 0..c.grad_accum {
            let idx = s.next_batch(&sampler)?;
            micro.push(sft_batch(idx.iter().map(|&i| &data.train[i]), data.pad)?);
        }
        let seed = |i: usize| dropout.then(|| step_seed(c.seed, step, i as u64));
        let (loss, grads) = sft_grads(&model, &micro, seed)?;
        let rep = s.apply(&model, &grads, loss as f32)?;
        drop(grads);
        let tokens: usize = micro
            .iter()
            .map(|b| b.tokens.mask.iter().filter(|&&m| m == 1).count())
            .sum();
        let cur = s.state.cursor;
        let mut row = vec![
            ("loss".to_string(), loss),
            ("learning_rate".to_string(), rep.lr as f64),
            ("grad_norm".to_string(), rep.grad_norm as f64),
            (
                "epoch".to_string(),
                cur.epoch as f64 + cur.batch as f64 / per_epoch,
            ),
            (
                "num_tokens".to_string(),
                s.last_metric("num_tokens") + tokens as f64,
            ),
        ];
        let secs = t0.elapsed().as_secs_f64();
        row.push(("time/tokens_per_s".to_string(), tokens as f64 / secs));
        if s.is_eval_step(step) && !data.eval.is_empty() {
            let (l, ppl) = sft_eval(&model, &data.eval, c.batch_size, data.pad)?;
            row.push(("eval_loss".to_string(), l));
            row.push(("eval_ppl".to_string(), ppl));
        }
        row.push(("time/step_s".to_string(), t0.elapsed().as_secs_f64()));
        s.end_step(&model, step, &row, None)?;
    }
    let summary = s.finish(&mut model, false, Some(&template), SFT_CHART)?;
    Ok((model, summary))
}
