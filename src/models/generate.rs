//! Batched generation with a KV cache.
//!
//! Prompts of different lengths are left-padded into one batch; positions
//! count real tokens only and pads are masked out of attention, so every row
//! gives the tokens it would give alone, up to rounding: the attention
//! kernels sum a row's keys in blocks counted from the first cache slot, so
//! the number of pads before a prompt can move its logits by an ulp (on
//! llvmpipe, any number but a multiple of 8 does). One prefill pass fills
//! the cache, then each step feeds one token per row.
//!
//! Tokens are chosen on the device ([`DeviceSampler`]): per token the host
//! reads back only the B chosen ids, and stop ids end rows there too; stop
//! strings, which need the tokenizer, are checked here.
//!
//! Finished rows leave the running batch ([`Compaction`]): once enough of
//! them have ended, the cache and the sampler keep only the rows still
//! running, so later tokens stop paying for rows that only emit pads. Every
//! kernel computes a row from that row's data alone, in an order that does
//! not depend on the batch size (the tests compare both ways exactly), and
//! the sampler's draws skip finished rows, so the result is the same.

use anyhow::{bail, ensure, Result};

use super::layers::{Fwd, KvCache, Tokens};
use super::lm::CausalLm;
use super::sampling::SamplingConfig;
use crate::ops::row_gather::row_gather;
use crate::ops::sample::DeviceSampler;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct GenerateConfig {
    pub max_new_tokens: usize,
    pub sampling: SamplingConfig,
    /// Generation of a row stops after this token (which is kept). When it
    /// is one of the model's EOS ids, every id of the config's
    /// `eos_token_id` list stops it (Llama 3 lists several).
    pub eos: Option<u32>,
    /// Generation of a row stops once its decoded text contains one of these.
    pub stop_strings: Vec<String>,
    pub seed: u64,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            max_new_tokens: 32,
            sampling: SamplingConfig::default(),
            eos: None,
            stop_strings: Vec::new(),
            seed: 0,
        }
    }
}

/// When [`generate_with`] drops finished rows from the running batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Compaction {
    /// Never: every row is fed (a pad) until the last one finishes.
    Off,
    /// After a step in which at least one row and at least this fraction of
    /// the running rows have finished. Each compaction copies the cache
    /// (every layer's keys and values of the kept rows), so a small
    /// fraction compacts often for little gain; 0 compacts after every step
    /// that ends a row (the tests use it to compact as often as possible).
    AtFraction(f32),
}

impl Default for Compaction {
    /// A quarter: measured on the PPO demo (see `COMPACT_AT`).
    fn default() -> Self {
        Compaction::AtFraction(COMPACT_AT)
    }
}

/// The default fraction of finished rows that triggers a compaction.
const COMPACT_AT: f32 = 0.25;

impl Compaction {
    fn due(self, finished: usize, running: usize) -> bool {
        match self {
            Compaction::Off => false,
            Compaction::AtFraction(f) => finished > 0 && finished as f32 >= f * running as f32,
        }
    }
}

/// What each row produced.
#[derive(Clone, Debug)]
pub struct Generation {
    /// New tokens per row, including the EOS that ended it (if any).
    pub new_ids: Vec<Vec<u32>>,
    /// Whether each row stopped on EOS or a stop string (vs. the length cap).
    pub finished: Vec<bool>,
}

/// Logits [B, V] of each row's last position (rows are left-padded, so it is
/// the last column for every row).
fn last_logits(model: &CausalLm, f: &Fwd, hidden: &Var) -> Result<Tensor> {
    let t = f.tokens;
    let flat = f
        .tape
        .reshape(hidden, &[t.batch * t.seq, model.cfg.hidden])?;
    // Decoding feeds one token per row: every row is already its last.
    let last = if t.seq == 1 {
        flat
    } else {
        let idx: Vec<i32> = (0..t.batch)
            .map(|b| (b * t.seq + t.seq - 1) as i32)
            .collect();
        row_gather(f.tape, &flat, &idx)?
    };
    Ok(model.logits(f, &last)?.tensor().clone())
}

/// Generates continuations of `prompts` (token ids).
pub fn generate(
    model: &CausalLm,
    prompts: &[Vec<i32>],
    cfg: &GenerateConfig,
) -> Result<Generation> {
    generate_with(model, prompts, cfg, Compaction::default())
}

/// [`generate`] with a chosen [`Compaction`] (the result does not depend on
/// it; tests force it on and off).
pub fn generate_with(
    model: &CausalLm,
    prompts: &[Vec<i32>],
    cfg: &GenerateConfig,
    compaction: Compaction,
) -> Result<Generation> {
    generate_seeded(
        model,
        prompts,
        cfg,
        &vec![cfg.seed; prompts.len()],
        compaction,
    )
}

/// [`generate_with`] with a seed per row instead of `cfg.seed`: rows that
/// share a seed draw from its stream in row order. One batch made of chunks
/// with a seed each, whose longest prompts are equally long (so each row is
/// padded as in its own chunk, see above), gives exactly what generating the
/// chunks one at a time gives, in fewer, fuller dispatches.
pub fn generate_seeded(
    model: &CausalLm,
    prompts: &[Vec<i32>],
    cfg: &GenerateConfig,
    seeds: &[u64],
    compaction: Compaction,
) -> Result<Generation> {
    cfg.sampling.validate()?;
    if model.arch().is_encoder() {
        bail!(
            "{} is an encoder classifier: it has no LM head and cannot generate",
            model.arch().class_name(model.head)
        );
    }
    ensure!(!prompts.is_empty(), "no prompts to generate from");
    ensure!(
        seeds.len() == prompts.len(),
        "{} seeds for {} prompts",
        seeds.len(),
        prompts.len()
    );
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    for (i, p) in prompts.iter().enumerate() {
        ensure!(!p.is_empty(), "prompt {i} is empty");
        ensure!(
            p.len() + cfg.max_new_tokens <= model.cfg.n_ctx,
            "prompt {i} is {} tokens; with {} new tokens it exceeds the model's context of {}",
            p.len(),
            cfg.max_new_tokens,
            model.cfg.n_ctx
        );
    }
    let gpu = model.gpu();
    let tape = Tape::new(gpu);
    let _no_grad = tape.no_grad();
    let vars = model.vars(&tape);
    let pad = model
        .cfg
        .pad_token_id
        .or(model.cfg.eos_token_id)
        .unwrap_or(0) as i32;
    let batch = prompts.len();
    // The cache holds the KV heads only (grouped-query attention shares them).
    let (h, d) = (model.cfg.n_kv_head, model.cfg.head_dim());
    let capacity = longest + cfg.max_new_tokens;
    let mut cache = KvCache::new(gpu, model.cfg.n_layer, batch, capacity, h, d)?;
    let stop_ids = stop_ids(model, cfg);
    let contexts: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| p.iter().map(|&t| t as u32).collect())
        .collect();
    let mut out = Generation {
        new_ids: vec![Vec::new(); batch],
        finished: vec![false; batch],
    };

    let mut tokens = Tokens::left_padded(prompts, pad)?;
    let mut sampler: Option<DeviceSampler> = None;
    // running[r]: the prompt that row r of the running batch continues.
    let mut running: Vec<usize> = (0..batch).collect();
    for step in 0..cfg.max_new_tokens {
        let f = Fwd::new(&tape, &vars, &tokens, Some(&mut cache))?;
        let hidden = model.hidden(&f, Some(&mut cache))?;
        let logits = last_logits(model, &f, &hidden)?;
        if sampler.is_none() {
            sampler = Some(DeviceSampler::new(
                gpu,
                batch,
                logits.cols(),
                model.sampling_vocab(),
                &cfg.sampling.spec(),
                &stop_ids,
                pad as u32,
                seeds,
                &contexts,
            )?);
        }
        let s = sampler.as_mut().expect("made above");
        let ids = s.step(&logits)?;
        let mut next = vec![pad; running.len()];
        for (r, id) in ids.into_iter().enumerate() {
            let Some(tok) = id else { continue };
            let b = running[r];
            next[r] = tok as i32;
            out.new_ids[b].push(tok);
            if hits_stop(model, &out.new_ids[b], &cfg.stop_strings)? {
                s.finish(r);
            }
        }
        for (&b, &f) in running.iter().zip(s.finished()) {
            out.finished[b] = f;
        }
        let live: Vec<usize> = (0..running.len()).filter(|&r| !s.finished()[r]).collect();
        if live.is_empty() {
            break;
        }
        // (After the last step there is nothing left to save.)
        let last = step + 1 == cfg.max_new_tokens;
        if !last && compaction.due(running.len() - live.len(), running.len()) {
            cache.keep_rows(&live)?;
            s.keep_rows(&live)?;
            running = live.iter().map(|&r| running[r]).collect();
            next = live.iter().map(|&r| next[r]).collect();
        }
        tokens = cache.next_tokens(&next);
    }
    Ok(out)
}

/// The ids that end a row: `cfg.eos`, widened to all of the model's EOS ids
/// (generation_config.json's list, else config.json's) when it is the
/// model's own EOS or one of them.
fn stop_ids(model: &CausalLm, cfg: &GenerateConfig) -> Vec<u32> {
    let own = &model.cfg.eos_token_ids;
    match cfg.eos {
        Some(e) if own.contains(&e) => own.clone(),
        Some(e) if Some(e) == model.cfg.eos_token_id => [vec![e], own.clone()].concat(),
        e => e.into_iter().collect(),
    }
}

fn hits_stop(model: &CausalLm, new_ids: &[u32], stops: &[String]) -> Result<bool> {
    if stops.is_empty() {
        return Ok(false);
    }
    let text = model.decode(new_ids)?;
    Ok(stops.iter().any(|s| text.contains(s.as_str())))
}
