//! SFT's loss: next-token cross-entropy on the batch's target tokens; one
//! optimizer step's loss and gradients over micro-batches weighted by their
//! target tokens, and the eval loss with its perplexity.

use anyhow::{ensure, Result};
use std::collections::BTreeMap;

use crate::data::{sft_batch, LmBatch, SftExample};
use crate::models::lm::{next_token_targets, CausalLm};
use crate::tape::Tape;
use crate::tensor::Tensor;
use crate::train::session::{weighted_backward, GradAccum};

/// Positions whose next token is a target of the loss.
pub fn target_count(batch: &LmBatch) -> usize {
    next_token_targets(&batch.tokens, Some(&batch.loss_mask))
        .iter()
        .filter(|&&t| t >= 0)
        .count()
}

/// Loss and summed gradients of one optimizer step over `micro` batches:
/// each micro-batch's mean loss is weighted by its share of the step's
/// target tokens, so the result equals one pass over their union. With
/// LoRA dropout, micro-batch `i` uses `dropout_seed(i)`.
pub fn sft_grads(
    model: &CausalLm,
    micro: &[LmBatch],
    dropout_seed: impl Fn(usize) -> Option<u64>,
) -> Result<(f64, BTreeMap<String, Tensor>)> {
    let counts: Vec<usize> = micro.iter().map(target_count).collect();
    let total: usize = counts.iter().sum();
    ensure!(total > 0, "no target token in this step's batches");
    let mut acc = GradAccum::default();
    let mut loss = 0.0;
    for (i, (b, &n)) in micro.iter().zip(&counts).enumerate() {
        if n == 0 {
            continue;
        }
        let w = n as f32 / total as f32;
        let tape = Tape::new(model.gpu());
        let mut vars = model.vars(&tape);
        vars.set_lora_dropout_seed(dropout_seed(i));
        let l = model.lm_loss(&tape, &vars, &b.tokens, Some(&b.loss_mask))?;
        loss += w as f64 * l.tensor().item()? as f64;
        acc.add(vars.grads(&weighted_backward(&tape, &l, w)?))?;
    }
    Ok((loss, acc.finish()?))
}

/// Token-weighted mean loss over `examples` (no gradients), and its perplexity.
pub fn sft_eval(
    model: &CausalLm,
    examples: &[SftExample],
    batch_size: usize,
    pad: i32,
) -> Result<(f64, f64)> {
    let (mut sum, mut count) = (0.0, 0usize);
    for chunk in examples.chunks(batch_size.max(1)) {
        let b = sft_batch(chunk, pad)?;
        let n = target_count(&b);
        if n == 0 {
            continue;
        }
        let tape = Tape::new(model.gpu());
        let _g = tape.no_grad();
        let vars = model.vars(&tape);
        let l = model.lm_loss(&tape, &vars, &b.tokens, Some(&b.loss_mask))?;
        sum += n as f64 * l.tensor().item()? as f64;
        count += n;
    }
    ensure!(count > 0, "the eval set has no target token");
    let loss = sum / count as f64;
    Ok((loss, loss.exp()))
}
