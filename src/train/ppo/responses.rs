//! The sequences of a PPO pass: `query ++ response`, right-padded, and the
//! one forward pass over them that gives the response tokens' log-probs
//! (and values).
//!
//! Layout. Per-token arrays are `[B, R]` over the **response** tokens only
//! (R = the longest response of the batch, mask 1 on real response tokens,
//! 0 after a shorter one ends). Entry k of row b is what TRL stores at
//! position `j = len(query_b) − 1 + k` of its `[B, L − 1]` arrays: the
//! log-prob of token j + 1 (response token k) from the logits at j, and the
//! value at j. Query positions, which TRL masks out, are never computed:
//! the trunk runs on the whole right-padded `query ++ response`, then only
//! the rows that predict a response token are gathered before the LM head.
//! The masked math (KL rewards, GAE, whitening, losses) is the same; only
//! `whiten_rewards = true` differs, because TRL whitens padding positions
//! too and their number depends on the layout.

use anyhow::{ensure, Result};

use crate::data::right_padded;
use crate::models::layers::{Fwd, Tokens};
use crate::models::lm::CausalLm;
use crate::models::params::ParamVars;
use crate::ops::cross_entropy::{token_logprobs, IGNORE_INDEX};
use crate::ops::entropy::entropy;
use crate::ops::row_gather::{row_gather, row_scatter};
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

/// The pad id the trainer uses for `model`'s sequences (pads are masked).
pub fn pad_of(model: &CausalLm) -> i32 {
    model
        .cfg
        .pad_token_id
        .or(model.cfg.eos_token_id)
        .unwrap_or(0) as i32
}

/// `query ++ response` sequences for one forward pass, and which hidden rows
/// predict each response token.
pub struct ResponseBatch {
    pub tokens: Tokens,
    pub rows: usize,
    /// R, the response columns of the `[rows, R]` outputs.
    pub t: usize,
    /// [rows·R] 1.0 on real response tokens.
    pub mask: Vec<f32>,
    gather: Vec<i32>,
    targets: Vec<i32>,
}

impl ResponseBatch {
    /// `t` ≥ the longest response (the batch's R, so minibatches share it).
    pub fn new(queries: &[Vec<i32>], responses: &[Vec<u32>], t: usize, pad: i32) -> Result<Self> {
        ensure!(
            queries.len() == responses.len() && !queries.is_empty(),
            "{} queries for {} responses",
            queries.len(),
            responses.len()
        );
        let seqs: Vec<Vec<i32>> = queries
            .iter()
            .zip(responses)
            .map(|(q, r)| {
                q.iter()
                    .copied()
                    .chain(r.iter().map(|&x| x as i32))
                    .collect()
            })
            .collect();
        let tokens = right_padded(&seqs, pad)?;
        let l = tokens.seq;
        let n = queries.len();
        let (mut gather, mut targets, mut mask) =
            (vec![0; n * t], vec![0; n * t], vec![0.0; n * t]);
        for (b, (q, r)) in queries.iter().zip(responses).enumerate() {
            ensure!(!q.is_empty(), "query {b} is empty");
            ensure!(r.len() <= t, "response {b} has {} > {t} tokens", r.len());
            for k in 0..t {
                let i = b * t + k;
                // Rows past a response's end read any valid position of
                // their own sequence; their target is ignored (logp 0, no
                // gradient) and the mask drops them.
                gather[i] = (b * l + (q.len() - 1 + k).min(l - 1)) as i32;
                (targets[i], mask[i]) = match r.get(k) {
                    Some(&tok) => (tok as i32, 1.0),
                    None => (IGNORE_INDEX, 0.0),
                };
            }
        }
        Ok(ResponseBatch {
            tokens,
            rows: n,
            t,
            mask,
            gather,
            targets,
        })
    }
}

/// `[B, t]` 1.0 on each response's tokens, 0 after it ends.
pub fn response_mask(responses: &[Vec<u32>], t: usize) -> Vec<f32> {
    responses
        .iter()
        .flat_map(|r| (0..t).map(move |k| (k < r.len()) as u8 as f32))
        .collect()
}

/// What one pass over a [`ResponseBatch`] gives.
pub struct ResponseOut {
    /// [rows, R] log-probs of the response tokens (0 where masked).
    pub logp: Var,
    /// [rows, R] values, when asked for.
    pub values: Option<Var>,
    /// [live, V] logits of the rows that predict a response token (None
    /// when no row does: every response is empty).
    logits: Option<Var>,
    /// Where those rows sit among the [rows·R] entries.
    live: Vec<i32>,
    shape: [usize; 2],
}

impl ResponseOut {
    /// [rows, R] entropies of the response positions' distributions (0
    /// where masked).
    pub fn entropy(&self, tape: &Tape) -> Result<Var> {
        let [n, t] = self.shape;
        let Some(logits) = &self.logits else {
            return Ok(tape.constant(Tensor::zeros(tape.gpu(), &self.shape, DType::F32)?));
        };
        let ent = entropy(tape, logits, 1.0)?;
        let placed = row_scatter(
            tape,
            &tape.reshape(&ent, &[self.live.len(), 1])?,
            &self.live,
            n * t,
        )?;
        tape.reshape(&placed, &self.shape)
    }
}

/// One forward pass of `model` with `vars` (adapters on or off, with or
/// without gradients, as the caller set them up). The LM head and the
/// log-softmax run only on the rows that predict a response token (those
/// after a shorter response has ended are masked anyway, about a quarter of
/// the [rows, R] grid); their log-probs are scattered back among exact
/// zeros, the values the masked rows used to get, so everything after this
/// sees the same numbers.
pub fn response_forward(
    model: &CausalLm,
    tape: &Tape,
    vars: &ParamVars,
    batch: &ResponseBatch,
    with_values: bool,
) -> Result<ResponseOut> {
    let f = Fwd::new(tape, vars, &batch.tokens, None)?;
    let h = model.hidden(&f, None)?;
    let (n, l, c) = (batch.rows, batch.tokens.seq, model.cfg.hidden);
    let flat = tape.reshape(&h, &[n * l, c])?;
    let live: Vec<i32> = (0..batch.mask.len() as i32)
        .filter(|&i| batch.mask[i as usize] != 0.0)
        .collect();
    let shape = [n, batch.t];
    let (logp, logits) = if live.is_empty() {
        let zeros = Tensor::zeros(tape.gpu(), &shape, DType::F32)?;
        (tape.constant(zeros), None)
    } else {
        let pick = |v: &[i32]| -> Vec<i32> { live.iter().map(|&i| v[i as usize]).collect() };
        let logits = model.logits(&f, &row_gather(tape, &flat, &pick(&batch.gather))?)?;
        let targets = Tensor::from_i32(tape.gpu(), &[live.len()], &pick(&batch.targets))?;
        let logp = token_logprobs(tape, &logits, &targets, 1.0)?;
        let logp = tape.reshape(&logp, &[live.len(), 1])?;
        let logp = tape.reshape(&row_scatter(tape, &logp, &live, n * batch.t)?, &shape)?;
        (logp, Some(logits))
    };
    let values = if with_values {
        let v = tape.reshape(&model.values(&f, &h)?, &[n * l, 1])?;
        let v = row_gather(tape, &v, &batch.gather)?;
        Some(tape.reshape(&v, &[n, batch.t])?)
    } else {
        None
    };
    Ok(ResponseOut {
        logp,
        values,
        logits,
        live,
        shape,
    })
}
