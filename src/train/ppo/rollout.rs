//! PPO rollout: sample responses with the policy, then, without gradients,
//! the policy's log-probs and values of the sampled tokens, the reference's
//! log-probs, and one score per (prompt, response), as `[B, R]` arrays
//! (the layout is described in `responses.rs`).
//!
//! Responses stop after EOS (kept, and scored as a response token, as TRL
//! does) or at `max_new_tokens`; nothing after EOS is generated or masked in.

use anyhow::{bail, ensure, Result};
use std::time::Instant;

use super::readback::read_together;
use crate::models::generate::{generate, GenerateConfig, Generation};
use crate::models::lm::{CausalLm, Head};
use crate::models::sampling::SamplingConfig;
use crate::tape::Tape;
use crate::tensor::Tensor;
use crate::train::scoring::{score_checked_parts, Sample, Scorer};

pub use super::responses::{pad_of, response_forward, response_mask, ResponseBatch, ResponseOut};

/// Where the reference log-probs come from.
pub enum RefSource {
    /// The policy itself with its LoRA adapters off (same weights, no copy;
    /// [`CausalLm::reference_vars`]). Needs adapters on the policy.
    AdaptersOff,
    /// A separate frozen model, e.g. [`CausalLm::frozen_copy`] of the
    /// initial policy (one more copy of the weights in GPU memory, no
    /// gradients or optimizer state) or the SFT model loaded again.
    Model(Box<CausalLm>),
}

impl RefSource {
    /// A frozen copy of the policy as it is now (full fine-tuning).
    pub fn frozen_copy(policy: &CausalLm) -> Result<RefSource> {
        Ok(RefSource::Model(Box::new(policy.frozen_copy()?)))
    }

    /// Fails when this reference cannot serve `policy`.
    pub fn check(&self, policy: &CausalLm) -> Result<()> {
        match self {
            RefSource::AdaptersOff => ensure!(
                policy.lora.is_some(),
                "reference = adapters off needs LoRA adapters on the policy"
            ),
            RefSource::Model(m) => {
                ensure!(m.head != Head::Reward, "the reference needs an LM head");
                ensure!(
                    m.cfg.vocab_size == policy.cfg.vocab_size,
                    "reference vocab {} vs policy vocab {}",
                    m.cfg.vocab_size,
                    policy.cfg.vocab_size
                );
            }
        }
        Ok(())
    }
}

/// Rollout options.
#[derive(Clone, Debug)]
pub struct RolloutConfig {
    pub max_new_tokens: usize,
    /// Responses end after this token (kept); None: only the length cap.
    pub eos: Option<u32>,
    /// Seed of this rollout's sampling.
    pub seed: u64,
    /// Sequences per no-grad forward pass (TRL's `forward_batch_size`).
    pub forward_batch_size: usize,
    /// Wait for the device at the end of the policy's pass, so that
    /// [`PhaseTimes::forward`] is its own work (otherwise it is counted in
    /// [`PhaseTimes::reference`], where the one read-back of both waits).
    pub sync_phases: bool,
}

/// Seconds spent in each phase of a PPO step (wall clock; the device's work
/// is counted where the host waits for it, exactly so with
/// [`PpoTrainConfig::sync_phases`](super::PpoTrainConfig::sync_phases)).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseTimes {
    pub generate: f64,
    /// The policy's no-grad pass (old log-probs and values).
    pub forward: f64,
    pub reference: f64,
    pub score: f64,
    /// The whole update phase (the next three and the bookkeeping).
    pub train: f64,
    /// Its forward passes with gradients, losses and statistics.
    pub train_forward: f64,
    /// Its backward passes and gradient accumulation.
    pub train_backward: f64,
    /// Its optimizer steps (grad norm, clipping, Adam).
    pub optimizer: f64,
}

/// Everything a PPO step needs from the rollout; `[B, R]` arrays row-major.
pub struct Rollout {
    pub queries: Vec<Vec<i32>>,
    /// Sampled tokens per row, with the EOS that ended it (if any).
    pub responses: Vec<Vec<u32>>,
    /// Whether each response ended on EOS.
    pub finished: Vec<bool>,
    pub prompt_texts: Vec<String>,
    /// Responses decoded without their EOS ("" when the policy has no tokenizer).
    pub response_texts: Vec<String>,
    /// R.
    pub t: usize,
    pub mask: Vec<f32>,
    pub logp: Vec<f32>,
    pub values: Vec<f32>,
    pub ref_logp: Vec<f32>,
    pub scores: Vec<f32>,
    /// The mean raw score of each named reward component (a mix's parts).
    pub reward_components: Vec<(String, f64)>,
    pub times: PhaseTimes,
}

impl Rollout {
    /// Whether every log-prob, value and score is finite (else the step
    /// skips its update).
    pub fn is_finite(&self) -> bool {
        self.non_finite().is_none()
    }

    /// The first of the policy's log-probs, values, the reference's
    /// log-probs and the scores that holds a NaN/Inf, by name.
    pub fn non_finite(&self) -> Option<&'static str> {
        [
            ("policy log-probs", &self.logp),
            ("values", &self.values),
            ("reference log-probs", &self.ref_logp),
            ("scores", &self.scores),
        ]
        .into_iter()
        .find(|(_, x)| x.iter().any(|v| !v.is_finite()))
        .map(|(name, _)| name)
    }
}

/// Pure sampling from the policy (temperature 1, no top-k/top-p), as TRL's
/// PPO examples generate; truncated sampling biases the KL estimate.
pub fn sample_responses(
    policy: &CausalLm,
    prompts: &[Vec<i32>],
    cfg: &RolloutConfig,
) -> Result<Generation> {
    let gen = GenerateConfig {
        max_new_tokens: cfg.max_new_tokens,
        sampling: SamplingConfig::sample(),
        eos: cfg.eos,
        stop_strings: Vec::new(),
        seed: cfg.seed,
    };
    generate(policy, prompts, &gen)
}

fn decode_or_empty(model: &CausalLm, ids: &[u32]) -> Result<String> {
    match model.tokenizer {
        Some(_) => model.decode(ids),
        None => Ok(String::new()),
    }
}

/// No-grad log-probs (and values) of `responses` under `model`, one
/// `[rows, t]` tensor per pass of `chunk` sequences, left on the device.
/// `reference` turns the adapters off.
pub fn no_grad_passes(
    model: &CausalLm,
    queries: &[Vec<i32>],
    responses: &[Vec<u32>],
    t: usize,
    chunk: usize,
    reference: bool,
    with_values: bool,
) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
    ensure!(chunk > 0, "forward_batch_size must be > 0");
    let (mut logp, mut values) = (Vec::new(), Vec::new());
    for (qs, rs) in queries.chunks(chunk).zip(responses.chunks(chunk)) {
        let batch = ResponseBatch::new(qs, rs, t, pad_of(model))?;
        let tape = Tape::new(model.gpu());
        let _no_grad = tape.no_grad();
        let vars = if reference {
            model.reference_vars(&tape)?
        } else {
            model.vars(&tape)
        };
        let out = response_forward(model, &tape, &vars, &batch, with_values)?;
        logp.push(out.logp.tensor().clone());
        if let Some(v) = out.values {
            values.push(v.tensor().clone());
        }
    }
    Ok((logp, values))
}

/// Generate, forward the policy and the reference, score.
pub fn rollout(
    policy: &CausalLm,
    reference: &RefSource,
    scorer: &dyn Scorer,
    prompts: &[Vec<i32>],
    cfg: &RolloutConfig,
) -> Result<Rollout> {
    ensure!(
        policy.head == Head::LmWithValue,
        "the PPO policy needs a value head (CausalLm::add_value_head)"
    );
    let mut times = PhaseTimes::default();
    let gpu = policy.gpu();
    gpu.profile_phase("generate")?;
    let clock = Instant::now();
    let gen = sample_responses(policy, prompts, cfg)?;
    times.generate = clock.elapsed().as_secs_f64();
    let t = gen.new_ids.iter().map(Vec::len).max().unwrap_or(0);
    if t == 0 {
        bail!("the rollout produced no tokens (max_new_tokens = 0?)");
    }
    let queries = prompts.to_vec();
    let responses = gen.new_ids;

    gpu.profile_phase("forward")?;
    let clock = Instant::now();
    let chunk = cfg.forward_batch_size;
    let (logp, values) = no_grad_passes(policy, &queries, &responses, t, chunk, false, true)?;
    if cfg.sync_phases {
        gpu.sync()?;
    }
    times.forward = clock.elapsed().as_secs_f64();

    gpu.profile_phase("reference")?;
    let clock = Instant::now();
    let (ref_logp, _) = match reference {
        RefSource::AdaptersOff => {
            no_grad_passes(policy, &queries, &responses, t, chunk, true, false)?
        }
        RefSource::Model(m) => no_grad_passes(m, &queries, &responses, t, chunk, false, false)?,
    };
    // The host math after the rollout (KL rewards, GAE, whitening, in f64)
    // needs all three, and nothing before it does: one read-back for all.
    let (n, m) = (logp.len(), values.len());
    let all: Vec<&Tensor> = logp.iter().chain(&values).chain(&ref_logp).collect();
    let host = read_together(&all)?;
    let (logp, values, ref_logp) = (
        host[..n].concat(),
        host[n..n + m].concat(),
        host[n + m..].concat(),
    );
    times.reference = clock.elapsed().as_secs_f64();

    gpu.profile_phase("score")?;
    let clock = Instant::now();
    let mut prompt_texts = Vec::with_capacity(prompts.len());
    let mut response_texts = Vec::with_capacity(prompts.len());
    for (q, (r, &done)) in queries.iter().zip(responses.iter().zip(&gen.finished)) {
        let q: Vec<u32> = q.iter().map(|&x| x as u32).collect();
        prompt_texts.push(decode_or_empty(policy, &q)?);
        let body = if done { &r[..r.len() - 1] } else { &r[..] };
        response_texts.push(decode_or_empty(policy, body)?);
    }
    let samples: Vec<Sample> = (0..prompts.len())
        .map(|b| Sample {
            prompt_ids: &queries[b],
            response_ids: &responses[b],
            prompt: &prompt_texts[b],
            response: &response_texts[b],
            finished: gen.finished[b],
        })
        .collect();
    let (scores, reward_components) = score_checked_parts(scorer, &samples)?;
    times.score = clock.elapsed().as_secs_f64();
    gpu.profile_phase("step (host)")?;

    let mask = response_mask(&responses, t);
    Ok(Rollout {
        queries,
        responses,
        finished: gen.finished,
        prompt_texts,
        response_texts,
        t,
        mask,
        logp,
        values,
        ref_logp,
        scores,
        reward_components,
        times,
    })
}
