//! Sequence log-probs of completions, the quantity every direct-alignment
//! loss (and eval's KL) is built from.
//!
//! A batch is an [`LmBatch`]: right-padded prompt + completion rows whose
//! `loss_mask` is 1 on completion tokens (what `engine::data::preference_batch`,
//! `kto_batch` and `sft_batch` produce). Position `t` predicts token `t + 1`,
//! so a completion token is scored from the logits one position before it, as
//! TRL's `get_batch_logps` does after shifting the labels.
//!
//! Two reductions ([`LogpReduce`]): the **sum** over completion tokens (DPO,
//! KTO, kto_pair, KL) and the **mean** (IPO: TRL divides both the policy and
//! the reference sums by the completion length). The mean is `sum · (1/n)` in
//! f32 on both the GPU and host paths, so a reference computed either way, or
//! cached, agrees bit for bit with the same weights' policy pass.

use anyhow::{ensure, Result};

use crate::data::LmBatch;
use crate::models::layers::Fwd;
use crate::models::lm::next_token_targets;
use crate::models::params::ParamVars;
use crate::models::CausalLm;
use crate::ops::cross_entropy::token_logprobs;
use crate::ops::elementwise as ew;
use crate::ops::reduce::{reduce_forward, sum_last, Axis, ReduceOp};
use crate::ops::row_gather::{row_gather, row_scatter};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// How the completion tokens' log-probs of one sequence are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogpReduce {
    /// Σ_t log p(y_t | x, y_<t): DPO, KTO, kto_pair, KL.
    Sum,
    /// The sum divided by the number of completion tokens (IPO).
    Mean,
}

/// The pad id a model's batches use: `pad_token_id`, else EOS, else 0 (pads
/// are masked, so any id works).
pub fn pad_token(model: &CausalLm) -> i32 {
    model
        .cfg
        .pad_token_id
        .or(model.cfg.eos_token_id)
        .unwrap_or(0) as i32
}

/// Completion tokens per row: the positions whose token is scored (mask 1 and
/// not the row's first token, which nothing predicts).
pub fn completion_tokens(batch: &LmBatch) -> Vec<usize> {
    let t = &batch.tokens;
    let targets = next_token_targets(t, Some(&batch.loss_mask));
    targets
        .chunks(t.seq)
        .map(|row| row.iter().filter(|&&x| x >= 0).count())
        .collect()
}

/// Per-token log-probs `[B, T]` on the tape: entry `(b, t)` is
/// `log p(token t+1 | tokens ≤ t)` where token `t+1` is a completion token,
/// and exactly 0 elsewhere (prompt, pads, the last column).
pub fn token_logps(
    model: &CausalLm,
    tape: &Tape,
    vars: &ParamVars,
    batch: &LmBatch,
) -> Result<Var> {
    Ok(token_logps_and_logits(model, tape, vars, batch)?.0)
}

/// What TRL 1.16's `logits/chosen` and `logits/rejected` are built from:
/// per row, the sum over its scored positions (those whose next token is a
/// completion token) of the mean raw LM-head logit over the vocabulary, and
/// how many such positions it has. DPOTrainer and KTOTrainer both log
/// `Σ mean_logits[mask] / Σ mask` over a group's rows (`outputs.mean_logits`
/// under `shift_completion_mask`). Summed over the vocabulary on the GPU from
/// the logits the log-probs already use (one `[B, T]` buffer, no `[B·T, V]`
/// copy), then in f64 on the host.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogitSums {
    pub rows: Vec<f64>,
    pub tokens: Vec<usize>,
}

impl LogitSums {
    /// The token-weighted mean logit over rows `r` (NaN when they score none).
    pub fn mean(&self, r: std::ops::Range<usize>) -> f64 {
        self.mean_where(|i| r.contains(&i))
    }

    /// The token-weighted mean logit over the rows `pick` accepts.
    pub fn mean_where(&self, pick: impl Fn(usize) -> bool) -> f64 {
        let (mut s, mut n) = (0.0, 0usize);
        for (i, (&x, &k)) in self.rows.iter().zip(&self.tokens).enumerate() {
            if pick(i) {
                s += x;
                n += k;
            }
        }
        s / n as f64
    }
}

/// [`completion_tokens`], refusing a batch with a row that has none.
fn scored_counts(batch: &LmBatch) -> Result<Vec<usize>> {
    let counts = completion_tokens(batch);
    ensure!(
        counts.iter().all(|&n| n > 0),
        "a row has no completion token to score (completion tokens per row: {counts:?})"
    );
    Ok(counts)
}

fn check_loss_mask(batch: &LmBatch) -> Result<()> {
    let t = &batch.tokens;
    ensure!(
        batch.loss_mask.len() == t.ids.len(),
        "loss mask of {} for {} tokens",
        batch.loss_mask.len(),
        t.ids.len()
    );
    Ok(())
}

/// [`token_logps`] and the [`LogitSums`] of the same forward pass.
pub fn token_logps_and_logits(
    model: &CausalLm,
    tape: &Tape,
    vars: &ParamVars,
    batch: &LmBatch,
) -> Result<(Var, LogitSums)> {
    let t = &batch.tokens;
    check_loss_mask(batch)?;
    let (_, logits) = model.forward(tape, vars, t)?;
    let v = logits.shape()[2];
    let (cells, _) = reduce_forward(logits.tensor(), ReduceOp::Sum, Axis::Last)?;
    let cells = cells.to_vec()?;
    let targets = next_token_targets(t, Some(&batch.loss_mask));
    let mut sums = LogitSums {
        rows: vec![0.0; t.batch],
        tokens: vec![0; t.batch],
    };
    for (i, (&c, &y)) in cells.iter().zip(&targets).enumerate() {
        if y != -100 {
            sums.rows[i / t.seq] += c as f64 / v as f64;
            sums.tokens[i / t.seq] += 1;
        }
    }
    let flat = tape.reshape(&logits, &[t.batch * t.seq, v])?;
    let targets = Tensor::from_i32(model.gpu(), &[targets.len()], &targets)?;
    let lp = token_logprobs(tape, &flat, &targets, 1.0)?;
    Ok((tape.reshape(&lp, &[t.batch, t.seq])?, sums))
}

/// Sequence log-probs `[B]` of the completions on the tape (with gradient
/// when `vars` hold trainable parameters and the tape records).
pub fn sequence_logps(
    model: &CausalLm,
    tape: &Tape,
    vars: &ParamVars,
    batch: &LmBatch,
    reduce: LogpReduce,
) -> Result<Var> {
    Ok(sequence_logps_and_logits(model, tape, vars, batch, reduce)?.0)
}

/// [`sequence_logps`] and the [`LogitSums`] of the same forward pass.
pub fn sequence_logps_and_logits(
    model: &CausalLm,
    tape: &Tape,
    vars: &ParamVars,
    batch: &LmBatch,
    reduce: LogpReduce,
) -> Result<(Var, LogitSums)> {
    let counts = scored_counts(batch)?;
    let (lp, logits) = token_logps_and_logits(model, tape, vars, batch)?;
    let sums = sum_last(tape, &lp)?;
    let reduced = match reduce {
        LogpReduce::Sum => sums,
        LogpReduce::Mean => {
            let inv: Vec<f32> = counts.iter().map(|&n| 1.0 / n as f32).collect();
            let inv = Tensor::from_f32(model.gpu(), &[inv.len()], &inv)?;
            ew::mul(tape, &sums, &tape.constant(inv))?
        }
    };
    Ok((reduced, logits))
}

/// The weights that score reference log-probs.
#[derive(Clone, Copy)]
pub enum RefPass<'a> {
    /// The model's base weights with its LoRA adapters off (errors without
    /// adapters: the "reference" would silently be the policy).
    AdaptersOff(&'a CausalLm),
    /// A model as it is (a frozen reference copy, or the policy itself).
    Model(&'a CausalLm),
}

impl RefPass<'_> {
    pub fn model(&self) -> &CausalLm {
        match *self {
            RefPass::AdaptersOff(m) | RefPass::Model(m) => m,
        }
    }
}

/// Per-sequence log-prob sums and completion lengths, on the host.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeqLogps {
    pub sum: Vec<f32>,
    pub tokens: Vec<usize>,
}

impl SeqLogps {
    /// The sums, or the token means (`sum · (1/n)` in f32, as on the GPU).
    pub fn reduced(&self, reduce: LogpReduce) -> Vec<f32> {
        match reduce {
            LogpReduce::Sum => self.sum.clone(),
            LogpReduce::Mean => self
                .sum
                .iter()
                .zip(&self.tokens)
                .map(|(&s, &n)| s * (1.0 / n as f32))
                .collect(),
        }
    }
}

/// [`sequence_logps`]' sums (`LogpReduce::Sum`) for a pass that needs
/// nothing else: the LM head and the log-softmax run only on the rows that
/// predict a completion token (about a third of an eval batch's positions),
/// whose log-probs are scattered back to their `[B, T]` places among exact
/// zeros and summed as [`sequence_logps`] sums them. Every LM-head row and
/// log-prob is computed from its own row alone, so the sums are the same
/// numbers, without the `[B·T, V]` logits of the other rows.
fn completion_logp_sums(
    model: &CausalLm,
    tape: &Tape,
    vars: &ParamVars,
    batch: &LmBatch,
) -> Result<Var> {
    let t = &batch.tokens;
    check_loss_mask(batch)?;
    let targets = next_token_targets(t, Some(&batch.loss_mask));
    let rows: Vec<i32> = (0..targets.len() as i32)
        .filter(|&i| targets[i as usize] != -100)
        .collect();
    scored_counts(batch)?;
    let picked_targets: Vec<i32> = rows.iter().map(|&i| targets[i as usize]).collect();
    let f = Fwd::new(tape, vars, t, None)?;
    let h = model.hidden(&f, None)?;
    let flat = tape.reshape(&h, &[t.batch * t.seq, model.cfg.hidden])?;
    let logits = model.logits(&f, &row_gather(tape, &flat, &rows)?)?;
    let picked_targets = Tensor::from_i32(model.gpu(), &[rows.len()], &picked_targets)?;
    let lp = token_logprobs(tape, &logits, &picked_targets, 1.0)?;
    let lp = tape.reshape(&lp, &[rows.len(), 1])?;
    let placed = row_scatter(tape, &lp, &rows, t.batch * t.seq)?;
    sum_last(tape, &tape.reshape(&placed, &[t.batch, t.seq])?)
}

/// Sequence log-prob sums under `reference`, without gradient (a fresh tape
/// that records nothing).
pub fn reference_logps(reference: RefPass<'_>, batch: &LmBatch) -> Result<SeqLogps> {
    let model = reference.model();
    let tape = Tape::new(model.gpu());
    let _no_grad = tape.no_grad();
    let vars = match reference {
        RefPass::AdaptersOff(m) => {
            ensure!(
                m.lora.is_some(),
                "an adapters-off reference needs LoRA adapters on the policy \
                 (without them use a frozen copy or precomputed log-probs)"
            );
            m.reference_vars(&tape)?
        }
        RefPass::Model(m) => m.vars(&tape),
    };
    let sum = completion_logp_sums(model, &tape, &vars, batch)?
        .tensor()
        .to_vec()?;
    Ok(SeqLogps {
        sum,
        tokens: completion_tokens(batch),
    })
}
