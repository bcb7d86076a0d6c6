//! Scoring PPO responses: with a reward model (a [`CausalLm`] with
//! [`Head::Reward`], possibly with its own tokenizer) or with a reward
//! function of the decoded text ([`RewardFn`]). One score per (prompt,
//! response); the trainer adds it at the last response token (TRL).

use anyhow::{ensure, Result};

use crate::data::right_padded;
use crate::models::layers::{Fwd, Tokens};
use crate::models::lm::{CausalLm, Head};
use crate::tape::Tape;

/// One (prompt, response) pair to score.
#[derive(Clone, Copy, Debug)]
pub struct Sample<'a> {
    /// The prompt's token ids (unpadded), in the policy's vocabulary.
    pub prompt_ids: &'a [i32],
    /// The sampled response, with the EOS that ended it (if any).
    pub response_ids: &'a [u32],
    /// The prompt decoded with the policy's tokenizer ("" without one).
    pub prompt: &'a str,
    /// The response decoded without its EOS ("" without a tokenizer).
    pub response: &'a str,
    /// Whether the response ended on EOS (else it hit `max_new_tokens`).
    pub finished: bool,
}

/// A reward function: one scalar per (prompt, response). `response_ids`
/// includes the EOS when the response ended on one.
pub trait RewardFn {
    fn score(&self, prompt: &str, response: &str, response_ids: &[u32]) -> f32;
}

impl<F: Fn(&str, &str, &[u32]) -> f32> RewardFn for F {
    fn score(&self, prompt: &str, response: &str, response_ids: &[u32]) -> f32 {
        self(prompt, response, response_ids)
    }
}

/// The fraction of response tokens equal to `token` (EOS included in the
/// count of tokens): a simple deterministic reward for tests and demos.
#[derive(Clone, Copy, Debug)]
pub struct TargetTokenRate {
    pub token: u32,
}

impl RewardFn for TargetTokenRate {
    fn score(&self, _prompt: &str, _response: &str, ids: &[u32]) -> f32 {
        if ids.is_empty() {
            return 0.0;
        }
        ids.iter().filter(|&&t| t == self.token).count() as f32 / ids.len() as f32
    }
}

/// +1 for each keyword that occurs in the response text (each counted once).
#[derive(Clone, Debug)]
pub struct Keyword {
    pub keywords: Vec<String>,
    pub case_sensitive: bool,
}

impl Keyword {
    pub fn new(keywords: &[&str]) -> Keyword {
        Keyword {
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            case_sensitive: false,
        }
    }
}

impl RewardFn for Keyword {
    fn score(&self, _prompt: &str, response: &str, _ids: &[u32]) -> f32 {
        let fold = |s: &str| {
            if self.case_sensitive {
                s.to_string()
            } else {
                s.to_lowercase()
            }
        };
        let text = fold(response);
        self.keywords
            .iter()
            .filter(|k| text.contains(&fold(k)))
            .count() as f32
    }
}

/// How the reward model reads a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmInput {
    /// `prompt_ids ++ response_ids` as generated: the RM shares the
    /// policy's tokenizer (exact, no decode/encode round trip).
    SameTokens,
    /// Decode, format the texts (`format`, default `prompt + response`) and
    /// encode with the RM's own tokenizer; when the response ended on EOS,
    /// the RM's EOS id is appended (`append_eos`), so an RM trained on
    /// template-rendered completions (which end in EOS) is scored where it
    /// was trained to be.
    Retokenize,
}

/// A text formatter for [`RmInput::Retokenize`]: `(prompt, response) → text`.
pub type RmFormat = Box<dyn Fn(&str, &str) -> String>;

/// Scores with a sequence-classification model at the last real token (as
/// transformers' `...ForSequenceClassification` does).
pub struct RewardModelScorer {
    pub model: CausalLm,
    pub input: RmInput,
    pub format: Option<RmFormat>,
    pub append_eos: bool,
    /// Which logit is the reward (0 for a one-label RM; e.g. the "positive"
    /// class of a sentiment classifier).
    pub label: usize,
    /// Sequences per RM forward pass.
    pub batch_size: usize,
}

impl RewardModelScorer {
    /// Re-tokenizes when the RM has a tokenizer, else feeds the policy's ids.
    pub fn new(model: CausalLm) -> Result<RewardModelScorer> {
        ensure!(
            model.head == Head::Reward,
            "a reward model needs a sequence-classification head (score.weight), got {:?}",
            model.head
        );
        let input = if model.tokenizer.is_some() {
            RmInput::Retokenize
        } else {
            RmInput::SameTokens
        };
        Ok(RewardModelScorer {
            model,
            input,
            format: None,
            append_eos: true,
            label: 0,
            batch_size: 16,
        })
    }

    /// The RM's input ids for one sample, cut to its context from the left
    /// (the scored last token is kept).
    pub fn encode(&self, s: &Sample) -> Result<Vec<i32>> {
        let mut ids = match self.input {
            RmInput::SameTokens => {
                let mut ids = s.prompt_ids.to_vec();
                ids.extend(s.response_ids.iter().map(|&t| t as i32));
                ids
            }
            RmInput::Retokenize => {
                let text = match &self.format {
                    Some(f) => f(s.prompt, s.response),
                    None => format!("{}{}", s.prompt, s.response),
                };
                let mut ids = self.model.encode(&text)?;
                if let (true, true, Some(eos)) =
                    (self.append_eos, s.finished, self.model.cfg.eos_token_id)
                {
                    ids.push(eos as i32);
                }
                ids
            }
        };
        ensure!(!ids.is_empty(), "the reward model got an empty input");
        let n_ctx = self.model.cfg.n_ctx;
        if ids.len() > n_ctx {
            ids.drain(..ids.len() - n_ctx);
        }
        Ok(ids)
    }

    pub fn score(&self, samples: &[Sample]) -> Result<Vec<f32>> {
        ensure!(self.batch_size > 0, "reward model batch_size must be > 0");
        let labels = self.model.cfg.num_labels;
        ensure!(
            self.label < labels,
            "reward label {} but the model has {labels}",
            self.label
        );
        let pad = self
            .model
            .cfg
            .pad_token_id
            .or(self.model.cfg.eos_token_id)
            .unwrap_or(0) as i32;
        let mut out = Vec::with_capacity(samples.len());
        for chunk in samples.chunks(self.batch_size) {
            let seqs: Vec<Vec<i32>> = chunk
                .iter()
                .map(|s| self.encode(s))
                .collect::<Result<_>>()?;
            let tokens: Tokens = right_padded(&seqs, pad)?;
            let tape = Tape::new(self.model.gpu());
            let _no_grad = tape.no_grad();
            let vars = self.model.vars(&tape);
            let f = Fwd::new(&tape, &vars, &tokens, None)?;
            let h = self.model.hidden(&f, None)?;
            let s = self.model.scores(&f, &h)?.tensor().to_vec()?;
            out.extend((0..chunk.len()).map(|b| s[b * labels + self.label]));
        }
        Ok(out)
    }
}

/// What scores the responses in a PPO step.
pub enum Scorer {
    RewardModel(Box<RewardModelScorer>),
    Function(Box<dyn RewardFn>),
}

impl Scorer {
    pub fn function(f: impl RewardFn + 'static) -> Scorer {
        Scorer::Function(Box::new(f))
    }

    pub fn reward_model(model: CausalLm) -> Result<Scorer> {
        Ok(Scorer::RewardModel(Box::new(RewardModelScorer::new(
            model,
        )?)))
    }

    /// One score per sample.
    pub fn score(&self, samples: &[Sample]) -> Result<Vec<f32>> {
        match self {
            Scorer::RewardModel(rm) => rm.score(samples),
            Scorer::Function(f) => Ok(samples
                .iter()
                .map(|s| f.score(s.prompt, s.response, s.response_ids))
                .collect()),
        }
    }
}
