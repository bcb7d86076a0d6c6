//! Generation over a prompt set in seeded batches, shared by `eval` and
//! `best-of-n`: batch k of `batch_size` prompts samples from
//! [`batch_seed`]`(seed, k)`, so its replies do not depend on the rest of
//! the set.
//!
//! Batches run together in one generation pass where that changes no token
//! ([`pass_plan`]): each keeps its own RNG stream (rows sharing a seed share
//! its stream, [`generate_seeded`]), and only batches whose longest prompts
//! are equally long share a pass, so every prompt is left-padded exactly as
//! in its own batch. The padding matters: the attention kernels sum a row's
//! keys in blocks counted from the first cache slot, so the number of pads
//! before a prompt moves its logits by an ulp or so (e.g. only multiples of
//! 8 pads leave them unchanged on llvmpipe), enough to change an occasional
//! sampled token. Every other kernel computes a row from its own data in an
//! order that does not depend on the batch. A pass of many batches costs
//! the dispatches of one, which is most of decoding's cost on CPU adapters.

use anyhow::Result;
use serde::Serialize;

use crate::models::generate::{generate_seeded, Compaction, GenerateConfig};
use crate::models::CausalLm;

/// The seed of generation batch `k` under base seed `seed`.
pub fn batch_seed(seed: u64, k: usize) -> u64 {
    seed ^ (k as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

/// One sampled response.
#[derive(Clone, Debug, Serialize)]
pub struct Response {
    /// New token ids, including the EOS that ended the row (if any).
    pub ids: Vec<u32>,
    /// The decoded text without a final EOS.
    pub text: String,
    /// Tokens without a final EOS.
    pub length: usize,
    /// Stopped on EOS or a stop string (not the length cap).
    pub finished: bool,
}

/// Samples one response per prompt, batch k of `batch_size` prompts from
/// [`batch_seed`]`(seed, k)`, in the passes of [`pass_plan`].
pub fn generate_all(
    model: &CausalLm,
    prompts: &[Vec<i32>],
    cfg: &GenerateConfig,
    batch_size: usize,
) -> Result<Vec<Response>> {
    let batch_size = batch_size.max(1);
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let max_rows = pass_rows(model, batch_size, longest + cfg.max_new_tokens);
    let mut out: Vec<Option<Response>> = (0..prompts.len()).map(|_| None).collect();
    for pass in pass_plan(prompts, batch_size, max_rows) {
        // The pass's prompts, each one's seed, and where its reply goes.
        let (mut rows, mut seeds, mut at) = (Vec::new(), Vec::new(), Vec::new());
        for k in pass {
            let first = k * batch_size;
            for (i, p) in prompts[first..].iter().take(batch_size).enumerate() {
                rows.push(p.clone());
                seeds.push(batch_seed(cfg.seed, k));
                at.push(first + i);
            }
        }
        let g = generate_seeded(model, &rows, cfg, &seeds, Compaction::default())?;
        for ((ids, finished), i) in g.new_ids.into_iter().zip(g.finished).zip(at) {
            let ended = cfg.eos.is_some() && ids.last().copied() == cfg.eos;
            let body = &ids[..ids.len() - ended as usize];
            out[i] = Some(Response {
                text: model.decode(body)?,
                length: body.len(),
                ids,
                finished,
            });
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// The generation passes for `prompts` in batches of `batch_size`: each
/// pass lists the batches (by index) it runs, at most `rows / batch_size`
/// of them (at least one), all with longest prompts of the same length, in
/// order of their first batch.
pub fn pass_plan(prompts: &[Vec<i32>], batch_size: usize, rows: usize) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let per_pass = (rows / batch_size).max(1);
    let mut passes: Vec<(usize, Vec<usize>)> = Vec::new();
    for (k, batch) in prompts.chunks(batch_size).enumerate() {
        let longest = batch.iter().map(Vec::len).max().unwrap_or(0);
        match passes
            .iter_mut()
            .find(|(l, ks)| *l == longest && ks.len() < per_pass)
        {
            Some((_, ks)) => ks.push(k),
            None => passes.push((longest, vec![k])),
        }
    }
    passes.into_iter().map(|(_, ks)| ks).collect()
}

/// Rows per generation pass: as many as fit [`PASS_BYTES`] of KV cache and
/// logits (a pass's largest buffers), [`PASS_ROWS`], and the sampler's
/// `[rows, vocab]` logits in one storage binding; never fewer than one
/// batch (what a pass held before batches shared them).
fn pass_rows(model: &CausalLm, batch_size: usize, capacity: usize) -> usize {
    let c = &model.cfg;
    let kv = 2 * c.n_layer * capacity * c.n_kv_head * c.head_dim();
    let per_row = 4 * (kv + c.vocab_size);
    let binding = model.gpu().max_binding() as usize / (4 * c.vocab_size).max(1);
    (PASS_BYTES / per_row.max(1))
        .min(PASS_ROWS)
        .min(binding)
        .max(batch_size)
}

/// Bounds of one generation pass of [`generate_all`].
const PASS_BYTES: usize = 256 << 20;
const PASS_ROWS: usize = 512;
