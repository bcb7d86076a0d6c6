//! Batched generation with a KV cache.
//!
//! Prompts of different lengths are left-padded into one batch; positions
//! count real tokens only and pads are masked out of attention, so every row
//! gives the tokens it would give alone. One prefill pass fills the cache,
//! then each step feeds one token per row.
//!
//! Tokens are chosen on the device ([`DeviceSampler`]): per token the host
//! reads back only the B chosen ids, and stop ids end rows there too; stop
//! strings, which need the tokenizer, are checked here.

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
    let idx: Vec<i32> = (0..t.batch)
        .map(|b| (b * t.seq + t.seq - 1) as i32)
        .collect();
    let flat = f
        .tape
        .reshape(hidden, &[t.batch * t.seq, model.cfg.hidden])?;
    let last = row_gather(f.tape, &flat, &idx)?;
    Ok(model.logits(f, &last)?.tensor().clone())
}

/// Generates continuations of `prompts` (token ids).
pub fn generate(
    model: &CausalLm,
    prompts: &[Vec<i32>],
    cfg: &GenerateConfig,
) -> Result<Generation> {
    cfg.sampling.validate()?;
    if model.arch().is_encoder() {
        bail!(
            "{} is an encoder classifier: it has no LM head and cannot generate",
            model.arch().class_name(model.head)
        );
    }
    ensure!(!prompts.is_empty(), "no prompts to generate from");
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
    for _ in 0..cfg.max_new_tokens {
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
                cfg.seed,
                &contexts,
            )?);
        }
        let s = sampler.as_mut().expect("made above");
        let ids = s.step(&logits)?;
        let mut next = vec![pad; batch];
        for (b, id) in ids.into_iter().enumerate() {
            let Some(tok) = id else { continue };
            next[b] = tok as i32;
            out.new_ids[b].push(tok);
            if hits_stop(model, &out.new_ids[b], &cfg.stop_strings)? {
                s.finish(b);
            }
        }
        out.finished.copy_from_slice(s.finished());
        if out.finished.iter().all(|&f| f) {
            break;
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
