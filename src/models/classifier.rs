//! A sequence classifier's labels and losses, and text → logits the way
//! transformers' pipeline does it: `tokenizer(text, truncation=True,
//! max_length=N)` (special tokens included), padded on the right, the
//! architecture's head. Works for the encoder classifiers and for the causal
//! LMs' `score` head alike.
//!
//! Losses follow `*ForSequenceClassification` by `problem_type`:
//! regression `mean((x − y)²)`, single-label `mean(CE(x, y))`, multi-label
//! `BCEWithLogits = mean(softplus(x) − y·x)` over every logit.

use anyhow::{anyhow, bail, ensure, Result};
use serde_json::Value;

use super::config::{Arch, ModelConfig};
use super::layers::{Fwd, Tokens};
use super::lm::{CausalLm, Head};
use crate::ops::cross_entropy::cross_entropy;
use crate::ops::elementwise::{mul, softplus, square, sub};
use crate::ops::reduce::mean;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// What the labels of a classifier are (`problem_type` in config.json).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemType {
    Regression,
    SingleLabel,
    MultiLabel,
}

/// The targets of one batch.
#[derive(Clone, Debug)]
pub enum Labels {
    /// One class index per row (single-label).
    Classes(Vec<i32>),
    /// [B·labels] 0/1 per logit (multi-label) or [B] values (regression).
    Values(Vec<f32>),
}

impl ModelConfig {
    /// `problem_type`, or transformers' choice when it is unset: regression
    /// for one label, else single-label classification.
    pub fn problem_type(&self) -> Result<ProblemType> {
        Ok(match self.raw.get("problem_type").and_then(Value::as_str) {
            Some("regression") => ProblemType::Regression,
            Some("single_label_classification") => ProblemType::SingleLabel,
            Some("multi_label_classification") => ProblemType::MultiLabel,
            Some(other) => bail!("config.json: unknown problem_type `{other}`"),
            None if self.num_labels == 1 => ProblemType::Regression,
            None => ProblemType::SingleLabel,
        })
    }

    /// The label names by index (`id2label`; `LABEL_i` where it has none).
    pub fn id2label(&self) -> Vec<String> {
        let map = self.raw.get("id2label").and_then(Value::as_object);
        (0..self.num_labels)
            .map(|i| {
                map.and_then(|m| m.get(&i.to_string()))
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("LABEL_{i}"), str::to_string)
            })
            .collect()
    }

    /// A label given by name (as `id2label` spells it) or by index.
    pub fn label_index(&self, label: &str) -> Result<usize> {
        let names = self.id2label();
        if let Some(i) = names.iter().position(|n| n == label) {
            return Ok(i);
        }
        match label.parse::<usize>() {
            Ok(i) if i < self.num_labels => Ok(i),
            _ => bail!(
                "label `{label}` is not one of the classifier's labels ({}) or an index below {}",
                names.join(", "),
                self.num_labels
            ),
        }
    }
}

/// The classifier's loss for `logits` [B, labels], as transformers computes it.
pub fn classification_loss(tape: &Tape, logits: &Var, labels: &Labels) -> Result<Var> {
    let (b, n) = (logits.shape()[0], logits.shape()[1]);
    match labels {
        Labels::Classes(y) => {
            ensure!(y.len() == b, "{} labels for {b} rows", y.len());
            if let Some(bad) = y.iter().find(|&&c| c < 0 || c as usize >= n) {
                bail!("label {bad} is outside the classifier's {n} labels");
            }
            let t = Tensor::from_i32(tape.gpu(), &[b], y)?;
            mean(tape, &cross_entropy(tape, logits, &t)?)
        }
        Labels::Values(y) if y.len() == b * n && n > 1 => {
            // BCEWithLogits: softplus(x) − y·x = −[y·log σ(x) + (1−y)·log(1−σ(x))].
            let y = tape.constant(Tensor::from_f32(tape.gpu(), &[b, n], y)?);
            mean(
                tape,
                &sub(tape, &softplus(tape, logits)?, &mul(tape, &y, logits)?)?,
            )
        }
        Labels::Values(y) => {
            ensure!(
                y.len() == b * n,
                "{} target values for logits [{b}, {n}]",
                y.len()
            );
            let y = tape.constant(Tensor::from_f32(tape.gpu(), &[b, n], y)?);
            mean(tape, &square(tape, &sub(tape, logits, &y)?)?)
        }
    }
}

/// The probabilities of one row of logits as transformers' pipeline gives
/// them: softmax, or per-logit sigmoids for a multi-label classifier or a
/// single logit.
pub fn scores(logits: &[f32], problem: ProblemType) -> Vec<f32> {
    if problem == ProblemType::MultiLabel || logits.len() == 1 {
        return logits.iter().map(|&x| 1.0 / (1.0 + (-x).exp())).collect();
    }
    let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = logits.iter().map(|&x| ((x - m) as f64).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|v| (v / z) as f32).collect()
}

/// Rows scored per forward pass.
const CHUNK: usize = 16;

impl CausalLm {
    /// The default truncation length: the tokenizer's `model_max_length`
    /// when it is set, else the positions the model has (RoBERTa's start
    /// after `padding_idx`, so two fewer).
    pub fn max_length(&self) -> usize {
        let from_tokenizer = self
            .tokenizer_config
            .as_ref()
            .and_then(|c| c.get("model_max_length"))
            .and_then(Value::as_f64)
            .filter(|n| (1.0..1e9).contains(n));
        let positions = match self.cfg.arch {
            Arch::Roberta => self
                .cfg
                .n_ctx
                .saturating_sub(self.cfg.pad_token_id.unwrap_or(1) as usize + 1),
            _ => self.cfg.n_ctx,
        };
        from_tokenizer.map_or(positions, |n| (n as usize).min(positions))
    }

    /// Token ids of each text as `tokenizer(text, truncation=True,
    /// max_length=N)` gives them (N: `max_length`, default [`Self::max_length`]).
    pub fn encode_truncated(
        &self,
        texts: &[&str],
        max_length: Option<usize>,
    ) -> Result<Vec<Vec<i32>>> {
        let n = max_length.unwrap_or_else(|| self.max_length());
        ensure!(n > 0, "--max-length must be at least 1");
        let mut tok = self
            .tokenizer
            .clone()
            .ok_or_else(|| anyhow!("the classifier directory has no tokenizer.json"))?;
        tok.with_truncation(Some(tokenizers::TruncationParams {
            max_length: n,
            ..Default::default()
        }))
        .map_err(|e| anyhow!("truncation to {n} tokens: {e}"))?;
        tok.with_padding(None);
        texts
            .iter()
            .map(|t| {
                let enc = tok
                    .encode(*t, true)
                    .map_err(|e| anyhow!("tokenizing: {e}"))?;
                Ok(enc.get_ids().iter().map(|&i| i as i32).collect())
            })
            .collect()
    }

    /// Classification logits of token sequences, right-padded in chunks.
    pub fn classify_ids(&self, seqs: &[Vec<i32>]) -> Result<Vec<Vec<f32>>> {
        ensure!(
            self.head == Head::Reward,
            "this model has no sequence-classification head"
        );
        let pad = self.cfg.pad_token_id.unwrap_or(0) as i32;
        let mut out = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(CHUNK) {
            if let Some(i) = chunk.iter().position(Vec::is_empty) {
                bail!("input {} has no tokens", out.len() + i);
            }
            let tokens = Tokens::right_padded(chunk, pad)?;
            let tape = Tape::new(self.gpu());
            let _g = tape.no_grad();
            let vars = self.vars(&tape);
            let f = Fwd::new(&tape, &vars, &tokens, None)?;
            let h = self.hidden(&f, None)?;
            let logits = self.scores(&f, &h)?.tensor().to_vec()?;
            out.extend(logits.chunks(self.cfg.num_labels).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// Classification logits of texts (see [`Self::encode_truncated`]).
    pub fn classify_texts(
        &self,
        texts: &[&str],
        max_length: Option<usize>,
    ) -> Result<Vec<Vec<f32>>> {
        self.classify_ids(&self.encode_truncated(texts, max_length)?)
    }
}
