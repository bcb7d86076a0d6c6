//! Scoring responses: the [`Scorer`] trait (a reward model, or any reward
//! function) used by best-of-n and eval.
//!
//! A reward model reads `prompt + response` as one text through its **own**
//! tokenizer (it need not share the policy's), right-padded, and is scored at
//! each row's last real token (`CausalLm::scores`), as TRL scores PPO rollouts
//! with a sequence-classification model.

use anyhow::{ensure, Context, Result};

use super::logprobs::pad_token;
use crate::data::right_padded;
use crate::models::layers::Fwd;
use crate::models::lm::Head;
use crate::models::CausalLm;
use crate::tape::Tape;

/// Scores `responses[i]` to `prompts[i]` (higher is better). `prompts` are the
/// prompt texts the policy was given (its template already applied).
pub trait Scorer {
    fn score(&self, prompts: &[String], responses: &[String]) -> Result<Vec<f32>>;
}

/// Any `Fn(prompts, responses) -> scores` is a scorer (reward functions).
impl<F> Scorer for F
where
    F: Fn(&[String], &[String]) -> Result<Vec<f32>>,
{
    fn score(&self, prompts: &[String], responses: &[String]) -> Result<Vec<f32>> {
        self(prompts, responses)
    }
}

/// A sequence-classification reward model.
pub struct RewardModelScorer {
    pub model: CausalLm,
    /// Texts per forward pass.
    pub batch_size: usize,
    /// The logit used as the score (0 for TRL reward models, which have one
    /// label; e.g. 1 for a positive-sentiment class).
    pub label: usize,
}

impl RewardModelScorer {
    pub fn new(model: CausalLm) -> Result<RewardModelScorer> {
        ensure!(
            model.head == Head::Reward,
            "the reward model needs a sequence-classification head (score.weight)"
        );
        ensure!(
            model.tokenizer.is_some(),
            "the reward model directory has no tokenizer.json"
        );
        Ok(RewardModelScorer {
            model,
            batch_size: 16,
            label: 0,
        })
    }

    /// Scores whole texts. A text longer than the model's context keeps its
    /// last tokens (the response end, where the score is read).
    pub fn score_texts(&self, texts: &[String]) -> Result<Vec<f32>> {
        let m = &self.model;
        let labels = m.cfg.num_labels;
        ensure!(
            self.label < labels,
            "label {} of a {labels}-label reward model",
            self.label
        );
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.batch_size.max(1)) {
            let mut seqs = Vec::with_capacity(chunk.len());
            for t in chunk {
                let mut ids = m.encode(t)?;
                ensure!(!ids.is_empty(), "nothing to score: {t:?} has no tokens");
                if ids.len() > m.cfg.n_ctx {
                    ids.drain(..ids.len() - m.cfg.n_ctx);
                }
                seqs.push(ids);
            }
            let tokens = right_padded(&seqs, pad_token(m))?;
            let tape = Tape::new(m.gpu());
            let _no_grad = tape.no_grad();
            let vars = m.vars(&tape);
            let f = Fwd::new(&tape, &vars, &tokens, None)?;
            let hidden = m.hidden(&f, None)?;
            let scores = m.scores(&f, &hidden)?.tensor().to_vec()?;
            out.extend(scores.chunks(labels).map(|row| row[self.label]));
        }
        Ok(out)
    }
}

impl Scorer for RewardModelScorer {
    fn score(&self, prompts: &[String], responses: &[String]) -> Result<Vec<f32>> {
        ensure!(
            prompts.len() == responses.len(),
            "{} prompts for {} responses",
            prompts.len(),
            responses.len()
        );
        let texts: Vec<String> = prompts
            .iter()
            .zip(responses)
            .map(|(p, r)| format!("{p}{r}"))
            .collect();
        self.score_texts(&texts).context("reward model scoring")
    }
}
