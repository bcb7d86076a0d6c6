//! `engine eval`: generate over a prompt set and report reward, ROUGE against
//! reference completions, distinct-n, length and KL to a reference model.
//!
//! Every model evaluated with the same [`EvalConfig`] samples with the same
//! settings and seeds (batch `k` of `batch_size` prompts uses
//! [`batch_seed`]`(seed, k)`, whichever generation pass it shares:
//! [`generate_all`]), so reports of different checkpoints compare like with
//! like.
//!
//! - **reward**: a [`Scorer`] (a reward model or function) on each (prompt,
//!   response) [`Sample`](crate::train::scoring::Sample), as PPO scores rollouts.
//! - **ROUGE-1/2/L** F-measure against the references ([`super::text_metrics`]).
//! - **distinct-1/2** over all responses.
//! - **length**: generated tokens per response, not counting a final EOS.
//! - **KL**: the mean over responses of `Σ_t log π(y_t) − log ref(y_t)` on the
//!   sampled tokens (EOS included), both at temperature 1. It is an unbiased
//!   estimate of KL(π‖ref) only under plain sampling (`SamplingConfig::sample`);
//!   with greedy, top-k or top-p decoding it is just the log-ratio of the
//!   responses and can be negative.
//!
//! Response texts are decoded without their final EOS token: that is what
//! ROUGE, distinct-n and the scorer see.

use anyhow::{ensure, Result};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

pub use super::passes::{batch_seed, generate_all, pass_plan, Response};
use super::text_metrics::{distinct_n, rouge, Rouge};
use crate::data::support::fluency::WellFormed;
use crate::data::support::safety::{rude_rate, unsafe_rate};
use crate::data::{right_padded, Content, Encoder, LmBatch, PromptRecord, Role, Row, SftRecord};
use crate::models::generate::GenerateConfig;
use crate::models::CausalLm;
use crate::train::logprobs::{pad_token, reference_logps, RefPass};
use crate::train::scoring::{score_checked_parts, OwnedSample, Scorer};

/// A prompt (token ids, template applied) and its reference completions.
#[derive(Clone, Debug)]
pub struct EvalPrompt {
    pub prompt_ids: Vec<i32>,
    pub references: Vec<String>,
}

/// The text of a completion: the string, or the assistant turns joined.
fn content_text(c: &Content) -> String {
    match c {
        Content::Plain(s) => s.clone(),
        Content::Chat(m) => m
            .iter()
            .filter(|m| m.role == Role::Assistant)
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

impl EvalPrompt {
    /// Prompts without references (`engine::data::load_prompts` rows).
    pub fn from_prompts(rows: &[Row<PromptRecord>], enc: &Encoder) -> Result<Vec<EvalPrompt>> {
        rows.iter()
            .map(|r| {
                Ok(EvalPrompt {
                    prompt_ids: enc.prompt(r)?.prompt_ids,
                    references: Vec::new(),
                })
            })
            .collect()
    }

    /// Prompts with their completions as references (`load_sft` rows in the
    /// `prompt`/`completion` format; other rows are refused).
    pub fn from_sft(rows: &[Row<SftRecord>], enc: &Encoder) -> Result<Vec<EvalPrompt>> {
        rows.iter()
            .map(|r| {
                let SftRecord::PromptCompletion { prompt, completion } = &r.record else {
                    anyhow::bail!("{}: eval references need prompt/completion rows", r.origin);
                };
                let row = Row {
                    origin: r.origin.clone(),
                    record: PromptRecord {
                        prompt: prompt.clone(),
                    },
                };
                Ok(EvalPrompt {
                    prompt_ids: enc.prompt(&row)?.prompt_ids,
                    references: vec![content_text(completion)],
                })
            })
            .collect()
    }
}

#[derive(Clone, Debug)]
pub struct EvalConfig {
    pub generate: GenerateConfig,
    /// Prompts per generation (and scoring) pass.
    pub batch_size: usize,
}

/// What KL is measured against.
#[derive(Clone, Copy)]
pub enum KlReference<'a> {
    /// The policy's base with its LoRA adapters off.
    AdaptersOff,
    /// Another model with the policy's vocabulary (e.g. the SFT model).
    Model(&'a CausalLm),
}

#[derive(Clone, Debug, Serialize)]
pub struct EvalSample {
    pub prompt: String,
    pub response: String,
    pub length: usize,
    pub finished: bool,
    pub reward: Option<f32>,
    pub kl: Option<f64>,
    pub rouge: Option<Rouge>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub prompts: usize,
    pub reward_mean: Option<f64>,
    pub reward_std: Option<f64>,
    /// Each component's mean raw score when the reward is a weighted mix
    /// (`reward_components: {name: mean}` in the JSON; absent for one model).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub reward_components: BTreeMap<String, f64>,
    /// Mean F-measures over the prompts that have references.
    pub rouge1: Option<f64>,
    pub rouge2: Option<f64>,
    pub rouge_l: Option<f64>,
    pub distinct_1: f64,
    pub distinct_2: f64,
    pub mean_length: f64,
    /// Fraction of responses that ended on EOS or a stop string.
    pub finished_fraction: f64,
    pub kl: Option<f64>,
    /// The fraction of responses the safety checker flags
    /// ([`crate::data::support::safety`]); filled by [`EvalReport::with_safety`].
    pub unsafe_rate: Option<f64>,
    /// The fraction of responses with a rude phrase (the same checker's
    /// rude lexicon); filled with `unsafe_rate`.
    pub rude_rate: Option<f64>,
    /// The fraction of reply sentences the support-data generator can write
    /// ([`crate::data::support::fluency`]); filled with `unsafe_rate`.
    pub well_formed_rate: Option<f64>,
    pub samples: Vec<EvalSample>,
}

impl EvalReport {
    /// Adds the unsafe-reply rate of the responses (sensitive-data requests
    /// and rude phrases, by the pattern checker, no reward model involved)
    /// and their well-formed rate (support-data sentences).
    pub fn with_safety(mut self) -> EvalReport {
        let texts: Vec<String> = self.samples.iter().map(|s| s.response.clone()).collect();
        self.unsafe_rate = Some(unsafe_rate(&texts));
        self.rude_rate = Some(rude_rate(&texts));
        self.well_formed_rate = Some(WellFormed::support().rate(texts.iter().map(|s| s.as_str())));
        self
    }

    /// The whole report (summary and samples) as JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The summary as `eval/...` metrics (absent ones left out).
    pub fn named(&self) -> Vec<(&'static str, f64)> {
        let mut out = vec![
            ("eval/distinct_1", self.distinct_1),
            ("eval/distinct_2", self.distinct_2),
            ("eval/mean_length", self.mean_length),
            ("eval/finished_fraction", self.finished_fraction),
        ];
        for (k, v) in [
            ("eval/reward_mean", self.reward_mean),
            ("eval/reward_std", self.reward_std),
            ("eval/rouge1", self.rouge1),
            ("eval/rouge2", self.rouge2),
            ("eval/rougeL", self.rouge_l),
            ("eval/kl", self.kl),
            ("eval/unsafe_rate", self.unsafe_rate),
            ("eval/rude_rate", self.rude_rate),
            ("eval/well_formed_rate", self.well_formed_rate),
        ] {
            if let Some(v) = v {
                out.push((k, v));
            }
        }
        out
    }
}

fn mean_std(x: &[f64]) -> Option<(f64, f64)> {
    if x.is_empty() {
        return None;
    }
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    Some((m, var.sqrt()))
}

/// Generates for every prompt and measures (see the module docs).
pub fn evaluate(
    policy: &CausalLm,
    prompts: &[EvalPrompt],
    cfg: &EvalConfig,
    scorer: Option<&dyn Scorer>,
    kl_reference: Option<KlReference<'_>>,
) -> Result<EvalReport> {
    ensure!(!prompts.is_empty(), "no eval prompts");
    let ids: Vec<Vec<i32>> = prompts.iter().map(|p| p.prompt_ids.clone()).collect();
    let responses = generate_all(policy, &ids, &cfg.generate, cfg.batch_size)?;
    let prompt_texts: Vec<String> = ids
        .iter()
        .map(|p| policy.decode(&p.iter().map(|&t| t as u32).collect::<Vec<_>>()))
        .collect::<Result<_>>()?;
    let texts: Vec<String> = responses.iter().map(|r| r.text.clone()).collect();

    let rewards = match scorer {
        Some(s) => {
            let owned: Vec<OwnedSample> = (0..ids.len())
                .map(|i| response_sample(&ids[i], &prompt_texts[i], &responses[i]))
                .collect();
            let views: Vec<_> = owned.iter().map(OwnedSample::view).collect();
            Some(score_checked_parts(s, &views)?)
        }
        None => None,
    };
    let kls = match kl_reference {
        Some(r) => Some(kl_per_response(
            policy,
            r,
            &ids,
            &responses,
            cfg.batch_size,
        )?),
        None => None,
    };
    let (rewards, reward_components) = match rewards {
        Some((r, parts)) => (Some(r), parts.into_iter().collect()),
        None => (None, BTreeMap::new()),
    };
    let mut samples = Vec::with_capacity(prompts.len());
    for (i, (p, r)) in prompts.iter().zip(&responses).enumerate() {
        samples.push(EvalSample {
            prompt: prompt_texts[i].clone(),
            response: r.text.clone(),
            length: r.length,
            finished: r.finished,
            reward: rewards.as_ref().map(|x| x[i]),
            kl: kls.as_ref().map(|x| x[i]),
            rouge: rouge(&r.text, &p.references),
        });
    }
    let n = samples.len() as f64;
    let rouges: Vec<Rouge> = samples.iter().filter_map(|s| s.rouge).collect();
    let rouge_mean = |f: fn(&Rouge) -> f64| {
        (!rouges.is_empty()).then(|| rouges.iter().map(f).sum::<f64>() / rouges.len() as f64)
    };
    let reward_stats = rewards
        .as_ref()
        .and_then(|r| mean_std(&r.iter().map(|&x| x as f64).collect::<Vec<_>>()));
    Ok(EvalReport {
        prompts: prompts.len(),
        reward_mean: reward_stats.map(|s| s.0),
        reward_std: reward_stats.map(|s| s.1),
        reward_components,
        rouge1: rouge_mean(|r| r.rouge1.fmeasure),
        rouge2: rouge_mean(|r| r.rouge2.fmeasure),
        rouge_l: rouge_mean(|r| r.rouge_l.fmeasure),
        distinct_1: distinct_n(&texts, 1),
        distinct_2: distinct_n(&texts, 2),
        mean_length: samples.iter().map(|s| s.length as f64).sum::<f64>() / n,
        finished_fraction: samples.iter().filter(|s| s.finished).count() as f64 / n,
        kl: kls.as_ref().map(|k| k.iter().sum::<f64>() / k.len() as f64),
        unsafe_rate: None,
        rude_rate: None,
        well_formed_rate: None,
        samples,
    })
}

/// The sample a scorer sees for one generated response (it ended on EOS
/// when its text left a final token out).
pub fn response_sample(prompt_ids: &[i32], prompt: &str, r: &Response) -> OwnedSample {
    OwnedSample {
        prompt_ids: prompt_ids.to_vec(),
        response_ids: r.ids.clone(),
        prompt: prompt.to_string(),
        response: r.text.clone(),
        finished: r.length < r.ids.len(),
    }
}

/// `Σ_t log π − log ref` over each response's sampled tokens.
fn kl_per_response(
    policy: &CausalLm,
    reference: KlReference<'_>,
    prompts: &[Vec<i32>],
    responses: &[Response],
    batch_size: usize,
) -> Result<Vec<f64>> {
    let ref_pass = match reference {
        KlReference::AdaptersOff => RefPass::AdaptersOff(policy),
        KlReference::Model(m) => {
            ensure!(
                m.cfg.vocab_size == policy.cfg.vocab_size,
                "KL reference vocab {} differs from the policy's {}",
                m.cfg.vocab_size,
                policy.cfg.vocab_size
            );
            RefPass::Model(m)
        }
    };
    let mut out = Vec::with_capacity(responses.len());
    let rows: Vec<(&Vec<i32>, &Response)> = prompts.iter().zip(responses).collect();
    for chunk in rows.chunks(batch_size.max(1)) {
        let (mut seqs, mut masks) = (Vec::new(), Vec::new());
        for (p, r) in chunk {
            let resp: Vec<i32> = r.ids.iter().map(|&t| t as i32).collect();
            masks.push([vec![0; p.len()], vec![1; resp.len()]].concat());
            seqs.push([p.as_slice(), &resp].concat());
        }
        let tokens = right_padded(&seqs, pad_token(policy))?;
        let mut loss_mask = Vec::with_capacity(tokens.ids.len());
        for m in masks {
            let pad = tokens.seq - m.len();
            loss_mask.extend(m.into_iter().chain(std::iter::repeat_n(0, pad)));
        }
        let batch = LmBatch { tokens, loss_mask };
        let pi = reference_logps(RefPass::Model(policy), &batch)?;
        let rf = reference_logps(ref_pass, &batch)?;
        out.extend(
            pi.sum
                .iter()
                .zip(&rf.sum)
                .map(|(&a, &b)| a as f64 - b as f64),
        );
    }
    Ok(out)
}
