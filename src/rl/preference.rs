//! Preference losses on the tape: DPO, IPO, KTO and kto_pair, each reduced
//! to the batch mean as the TRL trainers do, with TRL's metrics (the reward
//! model's losses are in [`super::reward_loss`]).
//!
//! Inputs are per-sequence log-probs `[B]` (any shape works; all inputs of one
//! call share it): the policy's as [`Var`]s, the reference's as [`Tensor`]s.
//! **Who reduces over tokens:** the caller. DPO, KTO and kto_pair take the
//! **sum** of the response tokens' log-probs (TRL's `get_batch_logps`); IPO
//! takes their **mean** (TRL's `concatenated_forward` divides both the policy
//! and the reference sums by the number of completion tokens for
//! `loss_type="ipo"`), so pass `Σ_t logp_t / n_tokens` to [`ipo_loss`].
//!
//! Every log σ uses the stable [`ew::log_sigmoid`]: `−log σ(x)` stays `≈ −x`
//! for x ≪ 0 instead of overflowing.

use anyhow::{ensure, Result};

use super::inputs::host;
use crate::ops::elementwise::{self as ew, BinaryOp, Broadcast};
use crate::ops::reduce;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// TRL DPOTrainer's reward metrics for a paired batch, with
/// `r_c = β·(log π(y_w) − log ref(y_w))` and `r_r` likewise.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PreferenceMetrics {
    /// `rewards/chosen`: mean `r_c`.
    pub rewards_chosen: f64,
    /// `rewards/rejected`: mean `r_r`.
    pub rewards_rejected: f64,
    /// `rewards/margins`: mean `r_c − r_r`.
    pub rewards_margins: f64,
    /// `rewards/accuracies`: fraction with `r_c > r_r` (strict).
    pub rewards_accuracies: f64,
}

fn same_shape(what: &str, x: &Var, others: &[(&str, &[usize])]) -> Result<()> {
    ensure!(x.tensor().numel() > 0, "{what}: empty batch");
    for (name, s) in others {
        ensure!(*s == x.shape(), "{what}: {name} {s:?} vs {:?}", x.shape());
    }
    Ok(())
}

/// `a − b` of two constants, as a constant.
fn const_diff(tape: &Tape, a: &Tensor, b: &Tensor) -> Result<Var> {
    let d = ew::binary_forward(BinaryOp::Sub, a, b, Broadcast::same(a.numel()))?;
    Ok(tape.constant(d))
}

fn mean_of(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn pair_metrics(
    pc: &Var,
    pr: &Var,
    rc: &Tensor,
    rr: &Tensor,
    beta: f64,
) -> Result<PreferenceMetrics> {
    let reward = |p: &Var, r: &Tensor| -> Result<Vec<f64>> {
        let (p, r) = (host(p.tensor())?, host(r)?);
        Ok(p.iter().zip(&r).map(|(p, r)| beta * (p - r)).collect())
    };
    let (c, r) = (reward(pc, rc)?, reward(pr, rr)?);
    let margins: Vec<f64> = c.iter().zip(&r).map(|(c, r)| c - r).collect();
    let acc: Vec<f64> = margins.iter().map(|&m| (m > 0.0) as u8 as f64).collect();
    Ok(PreferenceMetrics {
        rewards_chosen: mean_of(&c),
        rewards_rejected: mean_of(&r),
        rewards_margins: mean_of(&margins),
        rewards_accuracies: mean_of(&acc),
    })
}

/// `h = (log π(y_w) − log π(y_l)) − (log ref(y_w) − log ref(y_l))`, TRL's
/// `logits`, after checking the four shapes agree.
fn implicit_margin(
    what: &str,
    tape: &Tape,
    pc: &Var,
    pr: &Var,
    rc: &Tensor,
    rr: &Tensor,
) -> Result<Var> {
    same_shape(
        what,
        pc,
        &[
            ("policy_rejected", pr.shape()),
            ("ref_chosen", rc.shape()),
            ("ref_rejected", rr.shape()),
        ],
    )?;
    ew::sub(tape, &ew::sub(tape, pc, pr)?, &const_diff(tape, rc, rr)?)
}

/// DPO (TRL `loss_type="sigmoid"`) with label smoothing ε (cDPO):
///   `loss = mean_b[ −(1−ε)·log σ(β·h) − ε·log σ(−β·h) ]`,
/// `h` the implicit reward margin above, log-probs summed over tokens.
pub fn dpo_loss(
    tape: &Tape,
    policy_chosen: &Var,
    policy_rejected: &Var,
    ref_chosen: &Tensor,
    ref_rejected: &Tensor,
    beta: f32,
    label_smoothing: f32,
) -> Result<(Var, PreferenceMetrics)> {
    let (pc, pr, rc, rr) = (policy_chosen, policy_rejected, ref_chosen, ref_rejected);
    let h = implicit_margin("dpo_loss", tape, pc, pr, rc, rr)?;
    let z = ew::scale(tape, &h, beta, 0.0)?;
    let mut per = ew::scale(
        tape,
        &ew::log_sigmoid(tape, &z)?,
        -(1.0 - label_smoothing),
        0.0,
    )?;
    if label_smoothing != 0.0 {
        let flip = ew::log_sigmoid(tape, &ew::neg(tape, &z)?)?;
        per = ew::add(tape, &per, &ew::scale(tape, &flip, -label_smoothing, 0.0)?)?;
    }
    let loss = reduce::mean(tape, &per)?;
    Ok((loss, pair_metrics(pc, pr, rc, rr, beta as f64)?))
}

/// IPO (TRL `loss_type="ipo"`): `loss = mean_b (h − 1/(2β))²`, where the
/// log-probs in `h` are **token averages** (see the module docs). The metrics
/// use the same averaged log-probs, as TRL's do.
pub fn ipo_loss(
    tape: &Tape,
    policy_chosen: &Var,
    policy_rejected: &Var,
    ref_chosen: &Tensor,
    ref_rejected: &Tensor,
    beta: f32,
) -> Result<(Var, PreferenceMetrics)> {
    let (pc, pr, rc, rr) = (policy_chosen, policy_rejected, ref_chosen, ref_rejected);
    let h = implicit_margin("ipo_loss", tape, pc, pr, rc, rr)?;
    let centred = ew::scale(tape, &h, 1.0, -1.0 / (2.0 * beta))?;
    let loss = reduce::mean(tape, &ew::square(tape, &centred)?)?;
    Ok((loss, pair_metrics(pc, pr, rc, rr, beta as f64)?))
}

/// `max(x, 0)` with torch's `clamp(min=0)` gradient (passes at 0).
fn clamp_min0(tape: &Tape, x: &Var) -> Result<Var> {
    ew::clamp(tape, x, 0.0, f32::MAX)
}

/// kto_pair (TRL ≤ 0.9.4 DPOTrainer `loss_type="kto_pair"`, HALOs eq. 7),
/// with `r_w = log π(y_w) − log ref(y_w)`, `r_l` likewise (summed log-probs):
///   `KL_w = max(mean_b r_w, 0)`, `KL_l = max(mean_b r_l, 0)`,
///   `loss = mean of [1 − σ(β·(r_w − KL_l))]_b ++ [1 − σ(β·(KL_w − r_l))]_b`.
/// The KL for the chosen half comes from the rejected half and vice versa,
/// and — unlike KTOTrainer — the KL terms are **not** detached: gradient flows
/// through the batch means too.
pub fn kto_pair_loss(
    tape: &Tape,
    policy_chosen: &Var,
    policy_rejected: &Var,
    ref_chosen: &Tensor,
    ref_rejected: &Tensor,
    beta: f32,
) -> Result<(Var, PreferenceMetrics)> {
    let (pc, pr, rc, rr) = (policy_chosen, policy_rejected, ref_chosen, ref_rejected);
    same_shape(
        "kto_pair_loss",
        pc,
        &[
            ("policy_rejected", pr.shape()),
            ("ref_chosen", rc.shape()),
            ("ref_rejected", rr.shape()),
        ],
    )?;
    let r_w = ew::sub(tape, pc, &tape.constant(rc.clone()))?;
    let r_l = ew::sub(tape, pr, &tape.constant(rr.clone()))?;
    let kl_w = clamp_min0(tape, &reduce::mean(tape, &r_w)?)?;
    let kl_l = clamp_min0(tape, &reduce::mean(tape, &r_l)?)?;
    // 1 − σ(β·(r_w − KL_l)) and 1 − σ(β·(KL_w − r_l)) = 1 − σ(−β·(r_l − KL_w)).
    let half = |x: &Var, kl: &Var, sign: f32| -> Result<Var> {
        let s = ew::sigmoid(
            tape,
            &ew::scale(tape, &ew::sub(tape, x, kl)?, sign * beta, 0.0)?,
        )?;
        reduce::mean(tape, &ew::scale(tape, &s, -1.0, 1.0)?)
    };
    let both = ew::add(tape, &half(&r_w, &kl_l, 1.0)?, &half(&r_l, &kl_w, -1.0)?)?;
    let loss = ew::scale(tape, &both, 0.5, 0.0)?;
    Ok((loss, pair_metrics(pc, pr, rc, rr, beta as f64)?))
}

/// KTOTrainer's metrics (TRL 0.11 names).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KtoMetrics {
    /// `kl`: the detached, clamped `z_ref` used in the loss.
    pub kl: f64,
    /// `rewards/chosen`: mean `β·(log π − log ref)` over desirable examples
    /// (NaN when there are none; TRL accumulates `rewards/chosen_sum` and
    /// `count/chosen` and divides at logging time).
    pub rewards_chosen: f64,
    /// `rewards/rejected`: the same over undesirable examples.
    pub rewards_rejected: f64,
    /// `rewards/margins = rewards/chosen − rewards/rejected`.
    pub rewards_margins: f64,
    pub rewards_chosen_sum: f64,
    pub rewards_rejected_sum: f64,
    pub count_chosen: usize,
    pub count_rejected: usize,
}

/// KTO (TRL 0.11 KTOTrainer, `loss_type="kto"`), unpaired, with
/// `r_i = log π(y_i|x_i) − log ref(y_i|x_i)` (summed log-probs) and
///   `z_ref = max(0, mean_j[log π(y'_j|x_j) − log ref(y'_j|x_j)])`, detached,
/// from the mismatched pairs `(x_j, y'_j)` ([`kto_mismatched_indices`]),
/// whose log-probs TRL computes under `no_grad` (hence plain tensors here):
///   desirable:   `λ_D·(1 − σ(β·(r_i − z_ref)))`,
///   undesirable: `λ_U·(1 − σ(β·(z_ref − r_i)))`,
///   `loss` = the mean over all N examples (TRL's `losses.nanmean()` of the
///   concatenation of the two groups).
#[allow(clippy::too_many_arguments)]
pub fn kto_loss(
    tape: &Tape,
    policy_logps: &Var,
    ref_logps: &Tensor,
    desirable: &[bool],
    policy_kl_logps: &Tensor,
    ref_kl_logps: &Tensor,
    beta: f32,
    desirable_weight: f32,
    undesirable_weight: f32,
) -> Result<(Var, KtoMetrics)> {
    let n = policy_logps.tensor().numel();
    same_shape(
        "kto_loss",
        policy_logps,
        &[("ref_logps", ref_logps.shape())],
    )?;
    ensure!(
        desirable.len() == n,
        "kto_loss: {} labels for {n} examples",
        desirable.len()
    );
    ensure!(
        policy_kl_logps.shape() == ref_kl_logps.shape() && policy_kl_logps.numel() > 0,
        "kto_loss: KL log-probs {:?} vs {:?}",
        policy_kl_logps.shape(),
        ref_kl_logps.shape()
    );
    let (pk, rk) = (host(policy_kl_logps)?, host(ref_kl_logps)?);
    let z: Vec<f64> = pk.iter().zip(&rk).map(|(p, r)| p - r).collect();
    let kl = mean_of(&z).max(0.0);

    let gpu = tape.gpu();
    let sign: Vec<f32> = desirable
        .iter()
        .map(|&d| if d { beta } else { -beta })
        .collect();
    let weight: Vec<f32> = desirable
        .iter()
        .map(|&d| {
            if d {
                desirable_weight
            } else {
                undesirable_weight
            }
        })
        .collect();
    let shape = policy_logps.shape().to_vec();
    let r = ew::sub(tape, policy_logps, &tape.constant(ref_logps.clone()))?;
    let zc = tape.constant(Tensor::from_f32(gpu, &[1], &[kl as f32])?);
    let arg = ew::mul(
        tape,
        &ew::sub(tape, &r, &zc)?,
        &tape.constant(Tensor::from_f32(gpu, &shape, &sign)?),
    )?;
    let per = ew::scale(tape, &ew::sigmoid(tape, &arg)?, -1.0, 1.0)?;
    let per = ew::mul(
        tape,
        &per,
        &tape.constant(Tensor::from_f32(gpu, &shape, &weight)?),
    )?;
    let loss = reduce::mean(tape, &per)?;

    let (p, rf) = (host(policy_logps.tensor())?, host(ref_logps)?);
    let mut m = KtoMetrics {
        kl,
        ..Default::default()
    };
    for ((p, rf), &d) in p.iter().zip(&rf).zip(desirable) {
        let reward = beta as f64 * (p - rf);
        if d {
            m.rewards_chosen_sum += reward;
            m.count_chosen += 1;
        } else {
            m.rewards_rejected_sum += reward;
            m.count_rejected += 1;
        }
    }
    m.rewards_chosen = m.rewards_chosen_sum / m.count_chosen as f64;
    m.rewards_rejected = m.rewards_rejected_sum / m.count_rejected as f64;
    m.rewards_margins = m.rewards_chosen - m.rewards_rejected;
    Ok((loss, m))
}

/// KTOTrainer's mismatched pairs for the KL estimate: the dataset, in file
/// order, is cut into chunks of `chunk` = the total batch size, and within
/// each chunk the completions are rotated by one, so prompt `i` is paired
/// with completion `i − 1` and the first prompt of a chunk with the chunk's
/// last completion. Returns, for each of the `n` prompts, the index of its KL
/// completion. (A final chunk of one example pairs it with itself, as TRL
/// does.)
///
/// TRL 0.11.4 (`_get_kl_dataset`) rotates so after shuffling the data set
/// with `data_seed`: the pairs equal these for the file in that shuffled
/// order (`kernels-tests/train/trl_parity_kto.rs` replays it so). TRL 1.16
/// rotates within each batch of its required sequential sampler, i.e. these
/// pairs for the file as it is.
pub fn kto_mismatched_indices(n: usize, chunk: usize) -> Vec<usize> {
    let chunk = chunk.max(1);
    (0..n)
        .map(|i| {
            let c0 = i / chunk * chunk;
            let c1 = (c0 + chunk).min(n);
            if i == c0 {
                c1 - 1
            } else {
                i - 1
            }
        })
        .collect()
}
