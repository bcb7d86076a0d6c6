//! Best-of-n / rejection sampling (Llama 2): sample n responses per prompt,
//! score them, keep the best, and write the kept pairs in the SFT
//! `prompt`/`completion` format, so `engine train-sft` can fine-tune on them.
//!
//! JSONL rows: `{"prompt", "completion", "score", "candidates": [n scores]}`.
//! The prompt is the record's own (a string or messages, rendered again by
//! the SFT template); the completion is the response text without its EOS
//! (the template adds it back), as a string for a string prompt or as one
//! assistant message for a conversational prompt. A prompt whose every
//! response is blank is reported but not written (SFT refuses empty
//! completions).

use anyhow::{ensure, Result};
use serde::Serialize;
use serde_json::json;
use std::path::Path;

use super::eval::{generate_all, response_sample};
use crate::data::{Content, Encoder, Message, PromptRecord, Row};
use crate::models::checkpoint::write_atomic;
use crate::models::generate::GenerateConfig;
use crate::models::CausalLm;
use crate::train::scoring::{score_checked_parts, OwnedSample, Scorer};

#[derive(Clone, Debug)]
pub struct BestOfNConfig {
    /// Responses per prompt.
    pub n: usize,
    /// Sampling settings; each pass uses `eval::batch_seed(seed, k)`.
    pub generate: GenerateConfig,
    /// Sequences per generation pass (the n copies of a prompt may straddle passes).
    pub batch_size: usize,
}

/// A prompt as the record gives it and as the policy sees it.
#[derive(Clone, Debug)]
pub struct BestOfNPrompt {
    pub prompt: Content,
    pub prompt_ids: Vec<i32>,
}

impl BestOfNPrompt {
    /// Encodes `engine::data::load_prompts` rows with the policy's encoder.
    pub fn encode(rows: &[Row<PromptRecord>], enc: &Encoder) -> Result<Vec<BestOfNPrompt>> {
        rows.iter()
            .map(|r| {
                Ok(BestOfNPrompt {
                    prompt: r.record.prompt.clone(),
                    prompt_ids: enc.prompt(r)?.prompt_ids,
                })
            })
            .collect()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct BestOfNSample {
    pub prompt: Content,
    /// The decoded prompt the policy and the scorer saw.
    pub prompt_text: String,
    pub candidates: Vec<String>,
    /// Whether each candidate ended on EOS (what the scorer was told).
    pub finished: Vec<bool>,
    pub scores: Vec<f32>,
    /// Index of the kept candidate: the highest score among non-blank ones
    /// (NaN scores never win).
    pub best: usize,
}

impl BestOfNSample {
    pub fn completion(&self) -> &str {
        &self.candidates[self.best]
    }
    pub fn score(&self) -> f32 {
        self.scores[self.best]
    }
    /// Whether the kept response can be written as an SFT row.
    pub fn usable(&self) -> bool {
        !self.completion().trim().is_empty()
    }

    /// The SFT JSONL row.
    pub fn to_json(&self) -> serde_json::Value {
        let completion = match &self.prompt {
            Content::Plain(_) => json!(self.completion()),
            // The template puts `assistant_lead` before an assistant turn.
            Content::Chat(_) => json!([Message::assistant(self.completion().trim_start())]),
        };
        json!({
            "prompt": self.prompt,
            "completion": completion,
            "score": self.score(),
            "candidates": self.scores,
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct BestOfNReport {
    pub n: usize,
    pub samples: Vec<BestOfNSample>,
    /// Mean over prompts of the kept score.
    pub mean_best: f64,
    /// Mean over all n·prompts candidates (what plain sampling gets).
    pub mean_score: f64,
    /// Prompts whose every response was blank (not written).
    pub blank: usize,
    /// Each component's mean raw score over all candidates when the reward
    /// is a weighted mix (empty for one reward model).
    pub reward_components: Vec<(String, f64)>,
}

impl BestOfNReport {
    /// Writes the usable samples as SFT JSONL (atomically); returns the count.
    pub fn write_jsonl(&self, path: &Path) -> Result<usize> {
        let mut text = String::new();
        let mut written = 0;
        for s in self.samples.iter().filter(|s| s.usable()) {
            text.push_str(&s.to_json().to_string());
            text.push('\n');
            written += 1;
        }
        write_atomic(path, text.as_bytes())?;
        Ok(written)
    }
}

/// Samples `cfg.n` responses per prompt from `policy`, scores them with
/// `scorer` and keeps the best of each.
pub fn best_of_n(
    policy: &CausalLm,
    prompts: &[BestOfNPrompt],
    scorer: &dyn Scorer,
    cfg: &BestOfNConfig,
) -> Result<BestOfNReport> {
    ensure!(cfg.n > 0, "best-of-n needs n > 0");
    ensure!(!prompts.is_empty(), "no prompts");
    let ids: Vec<Vec<i32>> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.prompt_ids.clone(), cfg.n))
        .collect();
    let responses = generate_all(policy, &ids, &cfg.generate, cfg.batch_size)?;
    let mut prompt_texts = Vec::with_capacity(prompts.len());
    for p in prompts {
        let ids: Vec<u32> = p.prompt_ids.iter().map(|&t| t as u32).collect();
        prompt_texts.push(policy.decode(&ids)?);
    }
    let owned: Vec<OwnedSample> = responses
        .iter()
        .enumerate()
        .map(|(j, r)| response_sample(&ids[j], &prompt_texts[j / cfg.n], r))
        .collect();
    let views: Vec<_> = owned.iter().map(OwnedSample::view).collect();
    let (scores, reward_components) = score_checked_parts(scorer, &views)?;
    let finished: Vec<bool> = owned.iter().map(|o| o.finished).collect();
    let texts: Vec<String> = responses.into_iter().map(|r| r.text).collect();

    let mut samples = Vec::with_capacity(prompts.len());
    let mut blank = 0;
    for (i, p) in prompts.iter().enumerate() {
        let range_of = |i: usize| i * cfg.n..(i + 1) * cfg.n;
        let range = range_of(i);
        let (cands, sc) = (&texts[range.clone()], &scores[range]);
        let key = |j: usize| {
            let ok = !cands[j].trim().is_empty() && !sc[j].is_nan();
            (
                ok,
                if sc[j].is_nan() {
                    f32::NEG_INFINITY
                } else {
                    sc[j]
                },
            )
        };
        // The first of equal best scores wins.
        let best = (0..cfg.n).fold(0, |b, j| {
            let (kb, kj) = (key(b), key(j));
            if (kj.0 && !kb.0) || (kj.0 == kb.0 && kj.1 > kb.1) {
                j
            } else {
                b
            }
        });
        let s = BestOfNSample {
            prompt: p.prompt.clone(),
            prompt_text: prompt_texts[i].clone(),
            candidates: cands.to_vec(),
            finished: finished[range_of(i)].to_vec(),
            scores: sc.to_vec(),
            best,
        };
        blank += !s.usable() as usize;
        samples.push(s);
    }
    let mean_best = samples.iter().map(|s| s.score() as f64).sum::<f64>() / samples.len() as f64;
    let mean_score = scores.iter().map(|&s| s as f64).sum::<f64>() / scores.len() as f64;
    Ok(BestOfNReport {
        n: cfg.n,
        samples,
        mean_best,
        mean_score,
        blank,
        reward_components,
    })
}
