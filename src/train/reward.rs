//! Reward-model training (TRL's RewardTrainer): a sequence-classification
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
//! Metrics: `train/loss`, `train/accuracy` (pairwise: r_chosen ≥ r_rejected,
//! ties counted correct as in TRL; classifier: (logit > 0) == label),
//! `train/margin` (bt) , `train/lr`, `train/grad_norm`, `eval/loss`,
//! `eval/accuracy`, `time/step_s`.

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::config::{apply_adaptation, CommonArgs, TrainArgs};
use super::session::{step_seed, weighted_backward, GradAccum, RunSummary, Session};
use crate::data::{
    classifier_batch, encode_all, load_classifier, load_preferences, pad_id, preference_batch,
    train_eval_split, ClassifierExample, Encoder, EpochSampler, LoadOptions, PreferenceExample,
    Truncation,
};
use crate::device::Gpu;
use crate::models::layers::{Fwd, Tokens};
use crate::models::lm::{CausalLm, Head};
use crate::models::params::ParamVars;
use crate::ops::row_gather::row_gather;
use crate::rl::{reward_bt_loss, reward_classifier_loss};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// TRL RewardConfig's default learning rate.
pub const REWARD_LR: f32 = 1e-5;
/// Seed stream of the fresh head's init.
const HEAD_STREAM: u64 = 0x5343_4f52;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RewardLoss {
    /// Pairwise Bradley-Terry on chosen/rejected.
    Bt,
    /// Binary cross-entropy on labelled texts.
    Classifier,
}

#[derive(clap::Args, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RewardArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// bt or classifier (default: from the data's fields).
    #[arg(long, value_enum)]
    pub loss: Option<RewardLoss>,
    /// TRL's center_rewards_coefficient (bt): λ·mean (r_c + r_r)².
    #[arg(long)]
    pub center_coef: Option<f32>,
}

impl TrainArgs for RewardArgs {
    const SECTION: &'static str = "reward";
    fn common(&self) -> &CommonArgs {
        &self.common
    }
    fn common_mut(&mut self) -> &mut CommonArgs {
        &mut self.common
    }
}

/// bt when the file reads as preferences, classifier when it reads as
/// labelled texts (judged on its first row).
pub fn detect_loss(path: &Path, opts: &LoadOptions) -> Result<RewardLoss> {
    let one = LoadOptions {
        max_rows: Some(1),
        skip_bad_rows: false,
        ..opts.clone()
    };
    let pref = load_preferences(path, &one);
    if pref.as_ref().is_ok_and(|d| !d.is_empty()) {
        return Ok(RewardLoss::Bt);
    }
    match load_classifier(path, &one) {
        Ok(d) if !d.is_empty() => Ok(RewardLoss::Classifier),
        other => bail!(
            "{}: neither preference rows ({:#}) nor labelled texts ({:#}); pass --loss",
            path.display(),
            pref.err().map_or("no rows".into(), |e| format!("{e:#}")),
            other.err().map_or("no rows".into(), |e| format!("{e:#}")),
        ),
    }
}

/// Encoded reward data of either kind.
pub enum RewardData {
    Pairs(Vec<PreferenceExample>),
    Labels(Vec<ClassifierExample>),
}

impl RewardData {
    pub fn len(&self) -> usize {
        match self {
            RewardData::Pairs(v) => v.len(),
            RewardData::Labels(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn split(self, fraction: f64, seed: u64) -> Result<(RewardData, RewardData)> {
        Ok(match self {
            RewardData::Pairs(v) => {
                let (a, b) = train_eval_split(v, fraction, seed)?;
                (RewardData::Pairs(a), RewardData::Pairs(b))
            }
            RewardData::Labels(v) => {
                let (a, b) = train_eval_split(v, fraction, seed)?;
                (RewardData::Labels(a), RewardData::Labels(b))
            }
        })
    }
}

/// Loads and encodes one file for `loss`.
pub fn load_reward_file(
    path: &Path,
    loss: RewardLoss,
    common: &CommonArgs,
    enc: &Encoder,
) -> Result<RewardData> {
    load_reward_file_noted(path, loss, common, enc, &mut Vec::new())
}

/// [`load_reward_file`], adding the load report (rows kept, bad rows skipped
/// under `--skip-bad-rows`, unlabelled rows) and encoding skips to `notes`.
pub fn load_reward_file_noted(
    path: &Path,
    loss: RewardLoss,
    common: &CommonArgs,
    enc: &Encoder,
    notes: &mut Vec<String>,
) -> Result<RewardData> {
    let opts = common.load_options()?;
    let skip = common.skip_bad_rows;
    let (data, skipped, reasons) = match loss {
        RewardLoss::Bt => {
            let ds = load_preferences(path, &opts)?;
            notes.push(ds.report.to_string());
            let (v, n, r) = encode_all(&ds.rows, skip, |r| enc.preference(r))?;
            (RewardData::Pairs(v), n, r)
        }
        RewardLoss::Classifier => {
            let ds = load_classifier(path, &opts)?;
            notes.push(ds.report.to_string());
            let (v, n, r) = encode_all(&ds.rows, skip, |r| enc.classifier(r))?;
            (RewardData::Labels(v), n, r)
        }
    };
    if skipped > 0 {
        notes.push(format!(
            "{skipped} rows skipped while encoding: {reasons:?}"
        ));
    }
    ensure!(!data.is_empty(), "{}: no usable examples", path.display());
    Ok(data)
}

/// Reward-head scores [B, 1] of `tokens`.
pub fn score_tokens(
    model: &CausalLm,
    tape: &Tape,
    vars: &ParamVars,
    tokens: &Tokens,
) -> Result<Var> {
    let f = Fwd::new(tape, vars, tokens, None)?;
    let h = model.hidden(&f, None)?;
    model.scores(&f, &h)
}

/// (loss, accuracy, margin or NaN) of one batch of `idx`, on `tape`.
fn batch_loss(
    model: &CausalLm,
    tape: &Tape,
    vars: &ParamVars,
    data: &RewardData,
    idx: &[usize],
    pad: i32,
    center: Option<f32>,
) -> Result<(Var, f64, f64)> {
    match data {
        RewardData::Pairs(v) => {
            let b = preference_batch(idx.iter().map(|&i| &v[i]), pad)?;
            let s = score_tokens(model, tape, vars, &b.batch.tokens)?;
            let p = b.pairs as i32;
            let c = row_gather(tape, &s, &(0..p).collect::<Vec<_>>())?;
            let r = row_gather(tape, &s, &(p..2 * p).collect::<Vec<_>>())?;
            let (loss, m) = reward_bt_loss(tape, &c, &r, None, center)?;
            Ok((loss, m.accuracy, m.rewards_margins))
        }
        RewardData::Labels(v) => {
            let b = classifier_batch(idx.iter().map(|&i| &v[i]), pad)?;
            let s = score_tokens(model, tape, vars, &b.tokens)?;
            let labels: Vec<bool> = b.labels.iter().map(|&l| l != 0).collect();
            let (loss, m) = reward_classifier_loss(tape, &s, &labels)?;
            Ok((loss, m.accuracy, f64::NAN))
        }
    }
}

/// Mean (loss, accuracy) over `data` in batches, without gradients.
pub fn reward_eval(
    model: &CausalLm,
    data: &RewardData,
    batch_size: usize,
    pad: i32,
) -> Result<(f64, f64)> {
    let n = data.len();
    ensure!(n > 0, "empty eval set");
    let (mut loss, mut acc) = (0.0, 0.0);
    let all: Vec<usize> = (0..n).collect();
    for idx in all.chunks(batch_size.max(1)) {
        let tape = Tape::new(model.gpu());
        let _g = tape.no_grad();
        let vars = model.vars(&tape);
        let (l, a, _) = batch_loss(model, &tape, &vars, data, idx, pad, None)?;
        let w = idx.len() as f64 / n as f64;
        loss += w * l.tensor().item()? as f64;
        acc += w * a;
    }
    Ok((loss, acc))
}

/// The model to train: a reward model as it is, or an LM with a fresh head.
pub fn reward_model_from(model: CausalLm, seed: u64) -> Result<CausalLm> {
    match model.head {
        Head::Reward => {
            ensure!(
                model.cfg.num_labels == 1,
                "the reward head has {} labels; engine trains one-logit reward models",
                model.cfg.num_labels
            );
            Ok(model)
        }
        _ => model.into_reward_model(1, seed ^ HEAD_STREAM),
    }
}

/// Keys drawn in the end-of-run chart.
pub const REWARD_CHART: &[&str] = &[
    "train/loss",
    "eval/loss",
    "train/accuracy",
    "eval/accuracy",
    "train/margin",
];

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
    if loss_kind == RewardLoss::Classifier {
        // One logit trained with BCE: transformers' multi-label problem type.
        if let Some(raw) = model.cfg.raw.as_object_mut() {
            raw.insert("problem_type".into(), "multi_label_classification".into());
        }
    }
    apply_adaptation(&mut model, &c)?;
    let template = c.chat_template()?;
    let tok = model
        .tokenizer
        .as_ref()
        .context("the model has no tokenizer.json")?;
    let pad = pad_id(tok).context("the tokenizer has no pad or EOS token")?;
    let enc = Encoder::new(tok, &template, Truncation::truncate(c.max_len_for(&model)));
    let mut notes = Vec::new();
    let mut train = load_reward_file_noted(c.data_file()?, loss_kind, &c, &enc, &mut notes)?;
    let eval = match &c.eval_data {
        Some(p) => Some(load_reward_file_noted(p, loss_kind, &c, &enc, &mut notes)?),
        None if c.eval_fraction > 0.0 => {
            let (t, e) = train.split(c.eval_fraction, c.seed)?;
            train = t;
            Some(e)
        }
        None => None,
    };
    let shown = ["train/loss", "train/accuracy", "eval/accuracy"];
    let mut s = Session::start(&mut args, &mut model, "reward", REWARD_LR, &shown)?;
    for n in &notes {
        s.progress.println(n);
    }
    let sampler = EpochSampler::new(train.len(), c.batch_size, c.seed)?;
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
        let mut row = vec![
            ("train/loss".to_string(), loss),
            ("train/accuracy".to_string(), accuracy),
            ("train/lr".to_string(), rep.lr as f64),
            ("train/grad_norm".to_string(), rep.grad_norm as f64),
        ];
        if loss_kind == RewardLoss::Bt {
            row.push(("train/margin".to_string(), margin));
        }
        if let Some(e) = eval.as_ref().filter(|_| s.is_eval_step(step)) {
            let (l, a) = reward_eval(&model, e, c.batch_size, pad)?;
            row.push(("eval/loss".to_string(), l));
            row.push(("eval/accuracy".to_string(), a));
        }
        row.push(("time/step_s".to_string(), t0.elapsed().as_secs_f64()));
        s.end_step(&model, step, &row, None)?;
    }
    let summary = s.finish(&mut model, true, Some(&template), REWARD_CHART)?;
    Ok((model, summary))
}
