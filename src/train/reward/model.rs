//! The reward model: a one-logit head on the trunk ([`reward_model_from`]),
//! its scores, the loss of a batch of either data kind and the eval means.

use anyhow::{ensure, Result};

use super::data::RewardData;
use crate::data::{classifier_batch, preference_batch};
use crate::models::classifier::{classification_loss, Labels};
use crate::models::layers::{Fwd, Tokens};
use crate::models::lm::{CausalLm, Head};
use crate::models::params::ParamVars;
use crate::ops::row_gather::row_gather;
use crate::rl::{reward_bt_loss, reward_classifier_loss};
use crate::tape::{Tape, Var};

/// Seed stream of the fresh head's init.
const HEAD_STREAM: u64 = 0x5343_4f52;

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
pub(super) fn batch_loss(
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
        RewardData::Labels(v) if model.arch().is_encoder() => {
            let b = classifier_batch(idx.iter().map(|&i| &v[i]), pad)?;
            let logits = score_tokens(model, tape, vars, &b.tokens)?;
            let loss = classification_loss(tape, &logits, &Labels::Classes(b.labels.clone()))?;
            let x = logits.tensor().to_vec()?;
            let n = model.cfg.num_labels;
            let right = x.chunks(n).zip(&b.labels).filter(|(row, &y)| {
                let best = (0..n).max_by(|&i, &j| row[i].total_cmp(&row[j]));
                best == Some(y as usize)
            });
            Ok((loss, right.count() as f64 / b.labels.len() as f64, f64::NAN))
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
        // An encoder classifier keeps its own head and labels.
        Head::Reward if model.arch().is_encoder() => Ok(model),
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
