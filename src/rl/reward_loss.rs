//! Reward-model losses on the tape: TRL 0.11 RewardTrainer's pairwise
//! Bradley-Terry loss, and a binary-label classifier loss (torch's
//! `binary_cross_entropy_with_logits`), with their accuracy metrics.
//!
//! Rewards are the scalar head's outputs, `[B]` or `[B, 1]`; all inputs of one
//! call have the same element count.

use anyhow::{ensure, Result};

use super::inputs::host;
use crate::ops::elementwise as ew;
use crate::ops::reduce;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// RewardTrainer metrics of a pairwise batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RewardMetrics {
    /// `accuracy`: fraction of pairs with `r_c ≥ r_r`. TRL's
    /// `compute_accuracy` takes the argmax of softmax([r_c, r_r]) against
    /// label 0, so an exact tie counts as correct (TRL warns about ties).
    pub accuracy: f64,
    /// Mean `r_c`, mean `r_r`, mean `r_c − r_r`.
    pub rewards_chosen: f64,
    pub rewards_rejected: f64,
    pub rewards_margins: f64,
}

/// Pairwise Bradley-Terry loss (RewardTrainer.compute_loss):
///   `loss = −mean_b log σ(r_c − r_r − m) + λ·mean_b (r_c + r_r)²`,
/// with the optional per-pair `margin` m and `center_coef` λ
/// (`center_rewards_coefficient`).
///
/// The margin is applied per pair. (TRL 0.11 itself subtracts a `[B]` margin
/// from `[B, 1]` logits, which broadcasts to a `[B, B]` matrix and averages
/// every pair against every margin; that is a TRL bug, not reproduced.)
pub fn reward_bt_loss(
    tape: &Tape,
    r_chosen: &Var,
    r_rejected: &Var,
    margin: Option<&Tensor>,
    center_coef: Option<f32>,
) -> Result<(Var, RewardMetrics)> {
    let n = r_chosen.tensor().numel();
    ensure!(
        n > 0 && r_rejected.shape() == r_chosen.shape(),
        "reward_bt_loss: rewards {:?} vs {:?}",
        r_chosen.shape(),
        r_rejected.shape()
    );
    let mut d = ew::sub(tape, r_chosen, r_rejected)?;
    if let Some(margin) = margin {
        ensure!(
            margin.numel() == n,
            "reward_bt_loss: margin {:?} for rewards {:?}",
            margin.shape(),
            r_chosen.shape()
        );
        d = ew::sub(tape, &d, &tape.constant(margin.reshape(r_chosen.shape())?))?;
    }
    let mut loss = ew::neg(tape, &reduce::mean(tape, &ew::log_sigmoid(tape, &d)?)?)?;
    if let Some(coef) = center_coef {
        let s = ew::square(tape, &ew::add(tape, r_chosen, r_rejected)?)?;
        let center = ew::scale(tape, &reduce::mean(tape, &s)?, coef, 0.0)?;
        loss = ew::add(tape, &loss, &center)?;
    }
    let (c, r) = (host(r_chosen.tensor())?, host(r_rejected.tensor())?);
    let nf = n as f64;
    let metrics = RewardMetrics {
        accuracy: c.iter().zip(&r).filter(|(c, r)| c >= r).count() as f64 / nf,
        rewards_chosen: c.iter().sum::<f64>() / nf,
        rewards_rejected: r.iter().sum::<f64>() / nf,
        rewards_margins: c.iter().zip(&r).map(|(c, r)| c - r).sum::<f64>() / nf,
    };
    Ok((loss, metrics))
}

/// Metrics of the binary reward classifier.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClassifierMetrics {
    /// Fraction with `(logit > 0) == label`.
    pub accuracy: f64,
    /// Mean logit over the positive / negative examples (NaN if none).
    pub mean_positive: f64,
    pub mean_negative: f64,
}

/// Binary reward classifier (one logit per example, label good/bad), torch's
/// `binary_cross_entropy_with_logits(x, y)` with mean reduction:
///   `loss = mean_b[ −y·log σ(x) − (1−y)·log σ(−x) ] = −mean_b log σ(s_b·x_b)`,
/// `s = +1` for a positive label and `−1` for a negative one.
pub fn reward_classifier_loss(
    tape: &Tape,
    logits: &Var,
    labels: &[bool],
) -> Result<(Var, ClassifierMetrics)> {
    let n = logits.tensor().numel();
    ensure!(
        n > 0 && labels.len() == n,
        "reward_classifier_loss: {} labels for logits {:?}",
        labels.len(),
        logits.shape()
    );
    let sign: Vec<f32> = labels.iter().map(|&y| if y { 1.0 } else { -1.0 }).collect();
    let s = tape.constant(Tensor::from_f32(tape.gpu(), logits.shape(), &sign)?);
    let ls = ew::log_sigmoid(tape, &ew::mul(tape, logits, &s)?)?;
    let loss = ew::neg(tape, &reduce::mean(tape, &ls)?)?;

    let x = host(logits.tensor())?;
    let group_mean = |want: bool| {
        let v: Vec<f64> = x
            .iter()
            .zip(labels)
            .filter(|(_, &y)| y == want)
            .map(|(x, _)| *x)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let metrics = ClassifierMetrics {
        accuracy: x
            .iter()
            .zip(labels)
            .filter(|(x, &y)| (**x > 0.0) == y)
            .count() as f64
            / n as f64,
        mean_positive: group_mean(true),
        mean_negative: group_mean(false),
    };
    Ok((loss, metrics))
}
