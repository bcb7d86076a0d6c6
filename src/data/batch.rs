//! Examples to padded batches for the model: right padding for training
//! (real tokens from column 0, so each row's predictions line up with its
//! targets), left padding for generation prompts (every row ends at the
//! last column, where new tokens are appended).

use anyhow::{ensure, Result};
use tokenizers::Tokenizer;

use super::encode::{ClassifierExample, KtoExample, PreferenceExample, PromptExample, SftExample};
use crate::models::layers::Tokens;

/// Training rows right-padded with `pad` to the longest
/// ([`Tokens::padded`], the one padding mechanism).
pub fn right_padded(seqs: &[Vec<i32>], pad: i32) -> Result<Tokens> {
    Tokens::right_padded(seqs, pad)
}

/// The id to pad with: the tokenizer's padding id, else `<|padding|>`
/// (Pythia), else `<|endoftext|>` (GPT-2), else `</s>` (Llama). Pads are masked, so any id works.
pub fn pad_id(tokenizer: &Tokenizer) -> Option<i32> {
    tokenizer
        .get_padding()
        .map(|p| p.pad_id)
        .or_else(|| tokenizer.token_to_id("<|padding|>"))
        .or_else(|| tokenizer.token_to_id("<|endoftext|>"))
        // SentencePiece-style (Llama) tokenizers: pad with EOS.
        .or_else(|| tokenizer.token_to_id("</s>"))
        .map(|i| i as i32)
}

/// Right-padded sequences with a loss mask [B·T] aligned to `tokens.ids`
/// (0 on pads): the `loss_mask` argument of `CausalLm::lm_loss`.
#[derive(Clone, Debug)]
pub struct LmBatch {
    pub tokens: Tokens,
    pub loss_mask: Vec<i32>,
}

fn lm_batch(rows: Vec<(Vec<i32>, Vec<i32>)>, pad: i32) -> Result<LmBatch> {
    ensure!(!rows.is_empty(), "no examples to batch");
    let seqs: Vec<Vec<i32>> = rows.iter().map(|r| r.0.clone()).collect();
    let mut tokens = right_padded(&seqs, pad)?;
    // transformers' causal LMs give right pads the positions `arange(T)`
    // would (no position_ids from the collators TRL uses). Pads are masked as
    // keys and never scored, so only their own logits change: those TRL 0.11's
    // `logits/chosen`/`logits/rejected` average over.
    for (i, (p, &m)) in tokens.positions.iter_mut().zip(&tokens.mask).enumerate() {
        if m == 0 {
            *p = (i % tokens.seq) as i32;
        }
    }
    let mut loss_mask = Vec::with_capacity(tokens.ids.len());
    for (ids, mask) in &rows {
        debug_assert_eq!(ids.len(), mask.len());
        loss_mask.extend(mask.iter().copied());
        loss_mask.extend(std::iter::repeat_n(0, tokens.seq - ids.len()));
    }
    Ok(LmBatch { tokens, loss_mask })
}

pub fn sft_batch<'e>(
    examples: impl IntoIterator<Item = &'e SftExample>,
    pad: i32,
) -> Result<LmBatch> {
    lm_batch(
        examples
            .into_iter()
            .map(|e| (e.ids.clone(), e.loss_mask.clone()))
            .collect(),
        pad,
    )
}

/// prompt + response, loss mask on the response.
fn joined(prompt: &[i32], response: &[i32]) -> (Vec<i32>, Vec<i32>) {
    let mask = [vec![0; prompt.len()], vec![1; response.len()]].concat();
    ([prompt, response].concat(), mask)
}

/// Rows `0..pairs` are prompt + chosen, rows `pairs..2·pairs` prompt +
/// rejected (one forward pass for both), loss mask on the responses.
#[derive(Clone, Debug)]
pub struct PreferenceBatch {
    pub batch: LmBatch,
    pub pairs: usize,
}

pub fn preference_batch<'e>(
    examples: impl IntoIterator<Item = &'e PreferenceExample>,
    pad: i32,
) -> Result<PreferenceBatch> {
    let ex: Vec<&PreferenceExample> = examples.into_iter().collect();
    let rows = ex
        .iter()
        .map(|e| joined(&e.prompt_ids, &e.chosen_ids))
        .chain(ex.iter().map(|e| joined(&e.prompt_ids, &e.rejected_ids)))
        .collect();
    Ok(PreferenceBatch {
        batch: lm_batch(rows, pad)?,
        pairs: ex.len(),
    })
}

/// prompt + completion rows, loss mask on the completions.
#[derive(Clone, Debug)]
pub struct KtoBatch {
    pub batch: LmBatch,
    pub labels: Vec<bool>,
}

pub fn kto_batch<'e>(
    examples: impl IntoIterator<Item = &'e KtoExample>,
    pad: i32,
) -> Result<KtoBatch> {
    let ex: Vec<&KtoExample> = examples.into_iter().collect();
    Ok(KtoBatch {
        batch: lm_batch(
            ex.iter()
                .map(|e| joined(&e.prompt_ids, &e.completion_ids))
                .collect(),
            pad,
        )?,
        labels: ex.iter().map(|e| e.label).collect(),
    })
}

/// Right-padded texts; `CausalLm::scores` reads each row's last real token.
#[derive(Clone, Debug)]
pub struct ClassifierBatch {
    pub tokens: Tokens,
    pub labels: Vec<i32>,
}

pub fn classifier_batch<'e>(
    examples: impl IntoIterator<Item = &'e ClassifierExample>,
    pad: i32,
) -> Result<ClassifierBatch> {
    let ex: Vec<&ClassifierExample> = examples.into_iter().collect();
    ensure!(!ex.is_empty(), "no examples to batch");
    let seqs: Vec<Vec<i32>> = ex.iter().map(|e| e.ids.clone()).collect();
    Ok(ClassifierBatch {
        tokens: right_padded(&seqs, pad)?,
        labels: ex.iter().map(|e| e.label as i32).collect(),
    })
}

/// Generation prompts, left-padded so every row ends at the last column.
pub fn prompt_batch<'e>(
    examples: impl IntoIterator<Item = &'e PromptExample>,
    pad: i32,
) -> Result<Tokens> {
    let seqs: Vec<Vec<i32>> = examples.into_iter().map(|e| e.prompt_ids.clone()).collect();
    ensure!(!seqs.is_empty(), "no examples to batch");
    Tokens::left_padded(&seqs, pad)
}
