//! Scoring responses, the one mechanism PPO, eval and best-of-n share: the
//! [`Scorer`] trait over [`Sample`]s (a prompt, its response, as ids and as
//! text). Two kinds implement it:
//! - [`RewardModelScorer`], a sequence-classification model scored at the
//!   last real token (as transformers' `...ForSequenceClassification`
//!   does, and as TRL scores PPO rollouts);
//! - every reward function of the text ([`super::reward_fn::RewardFn`]:
//!   closures `Fn(&str, &str, &[u32]) -> f32`, `TargetTokenRate`, `Keyword`).
//!
//! A reward model reads the sample either as the policy's own ids (when it
//! has no tokenizer: [`RmInput::SameTokens`]) or as `prompt + response`
//! text through its own tokenizer ([`RmInput::Retokenize`]), with its EOS
//! appended when the response ended on EOS, so a model trained on
//! template-rendered completions (which end in EOS) is scored where it was
//! trained to be. PPO rewards and eval/best-of-n scores are thus the same
//! numbers for the same response.

use anyhow::{bail, ensure, Context, Result};
use std::path::Path;
use std::sync::Arc;

use crate::data::right_padded;
use crate::device::Gpu;
use crate::models::classifier::scores;
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

/// Named per-component scores of a combined reward (one `Vec` per
/// component, one score per sample); empty for a single source.
pub type ScoreParts = Vec<(String, Vec<f32>)>;

/// Scores samples: one scalar per sample, higher is better.
pub trait Scorer {
    fn score(&self, samples: &[Sample]) -> Result<Vec<f32>>;
    /// The scores with the components they sum (a weighted mix,
    /// [`super::reward_mix::RewardMix`], names its parts; a single source has none).
    fn score_parts(&self, samples: &[Sample]) -> Result<(Vec<f32>, ScoreParts)> {
        Ok((self.score(samples)?, Vec::new()))
    }
    /// What scores, in errors ("the reward model", "the reward function").
    fn describe(&self) -> String {
        "the reward function".to_string()
    }
}

/// How the reward model reads a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmInput {
    /// `prompt_ids ++ response_ids` as generated: the RM shares the
    /// policy's tokenizer (exact, no decode/encode round trip).
    SameTokens,
    /// Decode, format the texts (`format`, default `prompt + response`) and
    /// encode with the RM's own tokenizer, appending the RM's EOS id to a
    /// response that ended on EOS (`append_eos`).
    Retokenize,
}

/// Which number of the classifier's output is the reward.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RewardKind {
    /// The label's logit (TRL's sentiment recipe: `function_to_apply="none"`).
    #[default]
    Logit,
    /// Its probability: softmax over the labels (sigmoid for a multi-label
    /// or one-logit classifier).
    Prob,
}

/// Which label of one reward model is the reward, and as what: one
/// `--reward-model`'s share of `--reward-label` / `--reward-kind` (the flags
/// themselves are [`super::reward_mix::RewardModelArgs`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewardLabelArgs {
    /// A name from the model's id2label (e.g. POSITIVE) or an index
    /// (default 0; an encoder classifier with several labels needs one).
    pub reward_label: Option<String>,
    /// The label's logit (default) or its probability.
    pub reward_kind: RewardKind,
}

/// A text formatter for [`RmInput::Retokenize`]: `(prompt, response) → text`.
pub type RmFormat = Box<dyn Fn(&str, &str) -> String>;

/// Scores with a sequence-classification model at the last real token.
pub struct RewardModelScorer {
    pub model: CausalLm,
    pub input: RmInput,
    pub format: Option<RmFormat>,
    pub append_eos: bool,
    /// Which logit is the reward (0 for a one-label RM; e.g. the "positive"
    /// class of a sentiment classifier).
    pub label: usize,
    /// The label's logit or its probability.
    pub kind: RewardKind,
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
        ensure!(
            model.tokenizer.is_some() || !model.arch().is_encoder(),
            "an encoder classifier needs its own tokenizer.json to read the policy's text"
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
            kind: RewardKind::Logit,
            batch_size: 16,
        })
    }

    /// Loads a reward model directory; errors name it.
    pub fn load(gpu: &Arc<Gpu>, dir: &Path) -> Result<RewardModelScorer> {
        CausalLm::load(gpu, dir)
            .and_then(RewardModelScorer::new)
            .with_context(|| format!("reward model {}", dir.display()))
    }

    /// [`RewardModelScorer::load`] with the label and kind the flags name.
    /// An encoder classifier with several labels needs `--reward-label`.
    pub fn load_with(
        gpu: &Arc<Gpu>,
        dir: &Path,
        flags: &RewardLabelArgs,
    ) -> Result<RewardModelScorer> {
        let mut rm = RewardModelScorer::load(gpu, dir)?;
        rm.pick_label(dir, flags)?;
        Ok(rm)
    }

    /// Sets the label and kind the flags name (see [`RewardModelScorer::load_with`]).
    pub fn pick_label(&mut self, dir: &Path, flags: &RewardLabelArgs) -> Result<()> {
        let rm = self;
        let cfg = &rm.model.cfg;
        rm.label = match &flags.reward_label {
            Some(l) => cfg
                .label_index(l)
                .with_context(|| format!("--reward-label for {}", dir.display()))?,
            None if rm.model.arch().is_encoder() && cfg.num_labels > 1 => bail!(
                "{}: a classifier with labels {}: pass --reward-label NAME|INDEX",
                dir.display(),
                cfg.id2label().join(", ")
            ),
            None => 0,
        };
        rm.kind = flags.reward_kind;
        Ok(())
    }

    /// The input ids of `chunk`: an encoder classifier reads `prompt +
    /// response` through its own tokenizer truncated on the right at its
    /// limit, as `tokenizer(text, truncation=True)` (special tokens, no EOS
    /// appended); other models as [`RewardModelScorer::encode`] says.
    fn encode_chunk(&self, chunk: &[Sample]) -> Result<Vec<Vec<i32>>> {
        if !(self.model.arch().is_encoder() && self.input == RmInput::Retokenize) {
            return chunk.iter().map(|s| self.encode(s)).collect();
        }
        let texts: Vec<String> = chunk.iter().map(|s| self.text(s)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.model.encode_truncated(&refs, None)
    }

    fn text(&self, s: &Sample) -> String {
        match &self.format {
            Some(f) => f(s.prompt, s.response),
            None => format!("{}{}", s.prompt, s.response),
        }
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
                let mut ids = self.model.encode(&self.text(s))?;
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
}

impl Scorer for RewardModelScorer {
    fn describe(&self) -> String {
        "the reward model".to_string()
    }

    fn score(&self, samples: &[Sample]) -> Result<Vec<f32>> {
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
            let seqs = self.encode_chunk(chunk)?;
            ensure!(
                seqs.iter().all(|s| !s.is_empty()),
                "the reward model got an empty input"
            );
            let tokens: Tokens = right_padded(&seqs, pad)?;
            let tape = Tape::new(self.model.gpu());
            let _no_grad = tape.no_grad();
            let vars = self.model.vars(&tape);
            let f = Fwd::new(&tape, &vars, &tokens, None)?;
            let h = self.model.hidden(&f, None)?;
            let s = self.model.scores(&f, &h)?.tensor().to_vec()?;
            let problem = self.model.cfg.problem_type()?;
            out.extend(s.chunks(labels).map(|row| match self.kind {
                RewardKind::Logit => row[self.label],
                RewardKind::Prob => scores(row, problem)[self.label],
            }));
        }
        Ok(out)
    }
}

/// `scorer` on `samples`, checked to give one finite score each: a NaN/Inf
/// reward can be neither trained on (PPO) nor ranked or averaged
/// (best-of-n, eval), so it is an error naming the sample.
pub fn score_checked(scorer: &dyn Scorer, samples: &[Sample]) -> Result<Vec<f32>> {
    Ok(score_checked_parts(scorer, samples)?.0)
}

/// Each named component's mean score (a mix's parts; none for one source).
pub type PartMeans = Vec<(String, f64)>;

/// [`score_checked`] with the mean of each named component's scores.
pub fn score_checked_parts(
    scorer: &dyn Scorer,
    samples: &[Sample],
) -> Result<(Vec<f32>, PartMeans)> {
    let (scores, parts) = scorer.score_parts(samples).context("scoring responses")?;
    let means = parts
        .into_iter()
        .map(|(name, s)| {
            let mean = s.iter().map(|&x| x as f64).sum::<f64>() / s.len().max(1) as f64;
            (name, mean)
        })
        .collect();
    ensure!(
        scores.len() == samples.len(),
        "the scorer gave {} scores for {} samples",
        scores.len(),
        samples.len()
    );
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        let short = |t: &str| -> String {
            let cut: String = t.chars().take(60).collect();
            if cut.len() < t.len() {
                format!("{cut}…")
            } else {
                cut
            }
        };
        bail!(
            "{} gave a non-finite reward ({}) for response {} of {} (prompt {:?}, response {:?}); \
             a NaN/Inf reward can be neither trained on nor ranked",
            scorer.describe(),
            scores[i],
            i + 1,
            samples.len(),
            short(samples[i].prompt),
            short(samples[i].response)
        );
    }
    Ok((scores, means))
}

/// Owned texts and ids of samples (eval and best-of-n build their batches
/// from generated responses); [`OwnedSample::view`] lends a [`Sample`].
#[derive(Clone, Debug)]
pub struct OwnedSample {
    pub prompt_ids: Vec<i32>,
    pub response_ids: Vec<u32>,
    pub prompt: String,
    pub response: String,
    pub finished: bool,
}

impl OwnedSample {
    pub fn view(&self) -> Sample<'_> {
        Sample {
            prompt_ids: &self.prompt_ids,
            response_ids: &self.response_ids,
            prompt: &self.prompt,
            response: &self.response,
            finished: self.finished,
        }
    }
}
