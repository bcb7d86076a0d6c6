//! Reward-model training (TRL's RewardTrainer), read top down: the command
//! `engine train-reward` here ([`RewardArgs`], [`train_reward`]), its
//! [`data`] (and so its loss) and the reward [`model`]'s scores and batch loss.
//!
//! The trainer: a sequence-classification
//! head (`score.weight`, one logit) on the trunk, scored at each sequence's
//! last real token, trained with the pairwise Bradley-Terry loss on
//! preference data (`--loss bt`) or binary cross-entropy on labelled texts
//! (`--loss classifier`). The default follows the data: `chosen`/`rejected`
//! rows mean bt, `text`/`label` rows classifier.
//!
//! Starting from an LM directory, the head is created with a seeded
//! normal(0, 0.02) init ([`CausalLm::into_reward_model`]); starting from a
//! reward model, its head is kept. The final model is an HF
//! `*ForSequenceClassification` directory in `<out>/model` (LoRA merged
//! into it; the adapter is also kept in `<out>/adapter`).
//!
//! An encoder classifier (BERT, DistilBERT, RoBERTa) keeps its own head and
//! labels and trains with cross-entropy on `label` (full fine-tuning, or
//! LoRA on `query`/`value`-style targets), its texts tokenized as
//! transformers does (special tokens, truncated on the right at --max-len).
//! Accuracy is then argmax == label.
//!
//! Metrics, named as transformers' Trainer and TRL's RewardTrainer log them:
//! `loss`, `accuracy` (pairwise: r_chosen ≥ r_rejected, ties counted correct
//! as in TRL; classifier: (logit > 0) == label), `margin` (bt),
//! `learning_rate`, `grad_norm`, `epoch` (fractional), `eval_loss`,
//! `eval_accuracy`, and engine's timing `time/step_s`.

pub mod data;
pub mod model;

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use self::data::{detect_loss, load_encoder_labels, load_reward_file_noted, RewardLoss};
use self::model::{batch_loss, reward_eval, reward_model_from};
use crate::data::{pad_id, Encoder, EpochSampler, Truncation};
use crate::device::Gpu;
use crate::models::lm::CausalLm;
use crate::tape::Tape;
use crate::tensor::Tensor;
use crate::train::config::adapt::apply_adaptation;
use crate::train::config::{bounds, train_args, trl_batch_aliases, CommonArgs};
use crate::train::session::{step_seed, weighted_backward, GradAccum, RunSummary, Session};

/// TRL RewardConfig's default learning rate.
pub const REWARD_LR: f32 = 1e-5;

#[derive(clap::Args, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[command(mut_args(trl_batch_aliases))]
pub struct RewardArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// bt or classifier (default: from the data's fields).
    #[arg(long, value_enum)]
    pub loss: Option<RewardLoss>,
    /// TRL's center_rewards_coefficient (bt): λ·mean (r_c + r_r)².
    #[arg(long, value_parser = bounds::non_negative::<f32>)]
    pub center_coef: Option<f32>,
}

train_args!(RewardArgs, "reward");

/// Keys drawn in the end-of-run chart.
pub const REWARD_CHART: &[&str] = &["loss", "eval_loss", "accuracy", "eval_accuracy", "margin"];

/// Trains a reward model as `args` say; returns it and the summary.
pub fn train_reward(gpu: &Arc<Gpu>, mut args: RewardArgs) -> Result<(CausalLm, RunSummary)> {
    let c = args.common.clone();
    let loss_kind = match args.loss {
        Some(l) => l,
        None => detect_loss(c.data_file()?, &c.load_options()?)?,
    };
    args.loss = Some(loss_kind);
    let model = CausalLm::load(gpu, c.model_dir()?)?;
    let mut model = reward_model_from(model, c.seed)?;
    let encoder = model.arch().is_encoder();
    if encoder {
        ensure!(
            loss_kind == RewardLoss::Classifier,
            "an encoder classifier trains on labelled texts (`text`, `label` rows); \
             preference pairs need a decoder reward model"
        );
    } else if loss_kind == RewardLoss::Classifier {
        // One logit trained with BCE: transformers' multi-label problem type.
        if let Some(raw) = model.cfg.raw.as_object_mut() {
            raw.insert("problem_type".into(), "multi_label_classification".into());
        }
    }
    apply_adaptation(&mut model, &c)?;
    // An encoder reads the raw text through its own tokenizer (no template).
    let template = match encoder {
        true => None,
        false => Some(c.chat_template()?),
    };
    let tok = model
        .tokenizer
        .as_ref()
        .context("the model has no tokenizer.json")?;
    // An encoder pads with its config's pad id (RoBERTa's positions skip it).
    let pad = match (encoder, model.cfg.pad_token_id) {
        (true, Some(p)) => p as i32,
        _ => pad_id(tok).context("the tokenizer has no pad or EOS token")?,
    };
    let plain = crate::data::ChatTemplate::preset_or_file("plain")?;
    let enc = Encoder::new(
        tok,
        template.as_ref().unwrap_or(&plain),
        Truncation::truncate(c.max_len_for(&model)),
    );
    let mut notes = Vec::new();
    let load = |path: &std::path::Path, notes: &mut Vec<String>| match encoder {
        true => load_encoder_labels(path, &c, &model, notes),
        false => load_reward_file_noted(path, loss_kind, &c, &enc, notes),
    };
    let mut train = load(c.data_file()?, &mut notes)?;
    let eval = match &c.eval_data {
        Some(p) => Some(load(p, &mut notes)?),
        None if c.eval_fraction > 0.0 => {
            let (t, e) = train.split(c.eval_fraction, c.seed)?;
            train = t;
            Some(e)
        }
        None => None,
    };
    let sampler = EpochSampler::new(train.len(), c.batch_size, c.seed)?;
    let per_epoch = sampler.batches_per_epoch() as f64;
    args.common
        .resolve_epochs(sampler.batches_per_epoch(), c.grad_accum)?;
    let shown = ["loss", "accuracy", "eval_accuracy"];
    let mut s = Session::start(&mut args, &mut model, "reward", REWARD_LR, &shown)?;
    for n in &notes {
        s.progress.println(n);
    }
    let dropout = model.lora.as_ref().is_some_and(|a| a.config.dropout > 0.0);
    while let Some(step) = s.next_step() {
        let t0 = Instant::now();
        let batches: Vec<Vec<usize>> = (0..c.grad_accum)
            .map(|_| s.next_batch(&sampler))
            .collect::<Result<_>>()?;
        let total: usize = batches.iter().map(Vec::len).sum();
        let (mut acc, mut loss, mut accuracy, mut margin) = (GradAccum::default(), 0.0, 0.0, 0.0);
        for (i, idx) in batches.iter().enumerate() {
            let w = idx.len() as f64 / total as f64;
            let tape = Tape::new(gpu);
            let mut vars = model.vars(&tape);
            vars.set_lora_dropout_seed(dropout.then(|| step_seed(c.seed, step, i as u64)));
            let (l, a, m) = batch_loss(&model, &tape, &vars, &train, idx, pad, args.center_coef)?;
            loss += w * l.tensor().item()? as f64;
            accuracy += w * a;
            margin += w * m;
            acc.add(vars.grads(&weighted_backward(&tape, &l, w as f32)?))?;
        }
        let grads: BTreeMap<String, Tensor> = acc.finish()?;
        let rep = s.apply(&model, &grads, loss as f32)?;
        drop(grads);
        let cur = s.state.cursor;
        let mut row = vec![
            ("loss".to_string(), loss),
            ("accuracy".to_string(), accuracy),
            ("learning_rate".to_string(), rep.lr as f64),
            ("grad_norm".to_string(), rep.grad_norm as f64),
            (
                "epoch".to_string(),
                cur.epoch as f64 + cur.batch as f64 / per_epoch,
            ),
        ];
        if loss_kind == RewardLoss::Bt {
            row.push(("margin".to_string(), margin));
        }
        if let Some(e) = eval.as_ref().filter(|_| s.is_eval_step(step)) {
            let (l, a) = reward_eval(&model, e, c.batch_size, pad)?;
            row.push(("eval_loss".to_string(), l));
            row.push(("eval_accuracy".to_string(), a));
        }
        row.push(("time/step_s".to_string(), t0.elapsed().as_secs_f64()));
        s.end_step(&model, step, &row, None)?;
    }
    let summary = s.finish(&mut model, true, template.as_ref(), REWARD_CHART)?;
    Ok((model, summary))
}
