//! Records to token ids through the model's template and tokenizer, with an
//! explicit length limit: prompts give way from the left (their end, next to
//! the completion, matters most), completions from the right, or either
//! fails naming the row's file and line.

use anyhow::{anyhow, bail, ensure, Result};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::dataset::{Origin, Row, REPORTED_REASONS};
use super::records::SftRecord;
use super::records::{ClassifierRecord, Content, KtoRecord, PreferenceRecord, PromptRecord};
use super::template::ChatTemplate;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overflow {
    /// Cut to fit: a prompt keeps its last tokens, a completion its first.
    Truncate,
    /// Fail with the row's file and line.
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncation {
    /// Most tokens of one sequence: prompt + completion, or a prompt alone,
    /// or a classifier text. At most the model's context.
    pub max_len: usize,
    /// Most prompt tokens (TRL's `max_prompt_length`). Without it a prompt
    /// may take `max_len`, less one token for a completion when there is one.
    pub max_prompt_len: Option<usize>,
    pub prompt: Overflow,
    /// Also governs `text`-only SFT rows, conversations and classifier texts.
    pub completion: Overflow,
}

impl Truncation {
    /// Cuts whatever is too long.
    pub fn truncate(max_len: usize) -> Truncation {
        Truncation {
            max_len,
            max_prompt_len: None,
            prompt: Overflow::Truncate,
            completion: Overflow::Truncate,
        }
    }

    /// Fails on anything too long.
    pub fn strict(max_len: usize) -> Truncation {
        Truncation {
            prompt: Overflow::Error,
            completion: Overflow::Error,
            ..Truncation::truncate(max_len)
        }
    }
}

/// `ids` and a `loss_mask` aligned with them: 1 where the token is a target
/// of the loss (the mask `CausalLm::lm_loss` takes), 0 for prompt tokens
/// under completion-only training.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SftExample {
    pub ids: Vec<i32>,
    pub loss_mask: Vec<i32>,
    pub origin: Origin,
}

/// Responses without the prompt; the batch joins them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreferenceExample {
    pub prompt_ids: Vec<i32>,
    pub chosen_ids: Vec<i32>,
    pub rejected_ids: Vec<i32>,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KtoExample {
    pub prompt_ids: Vec<i32>,
    pub completion_ids: Vec<i32>,
    pub label: bool,
    pub origin: Origin,
}

/// A generation prompt (PPO, eval), ending at the template's generation point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptExample {
    pub prompt_ids: Vec<i32>,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassifierExample {
    pub ids: Vec<i32>,
    pub label: usize,
    pub origin: Origin,
}

/// Renders with the model's template, tokenizes, and fits `truncation`.
pub struct Encoder<'a> {
    pub tokenizer: &'a Tokenizer,
    pub template: &'a ChatTemplate,
    pub truncation: Truncation,
    /// SFT loss only on completions / assistant answers (TRL's
    /// `completion_only_loss` and `assistant_only_loss`); default true.
    pub completion_only: bool,
}

impl<'a> Encoder<'a> {
    pub fn new(
        tokenizer: &'a Tokenizer,
        template: &'a ChatTemplate,
        truncation: Truncation,
    ) -> Encoder<'a> {
        Encoder {
            tokenizer,
            template,
            truncation,
            completion_only: true,
        }
    }

    /// Token ids of `text` as the model sees it (no special tokens added;
    /// special-token text such as `<|endoftext|>` maps to its id).
    pub fn encode_text(&self, text: &str) -> Result<Vec<i32>> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| anyhow!("tokenizing: {e}"))?;
        Ok(enc.get_ids().iter().map(|&i| i as i32).collect())
    }

    fn encode_at(&self, text: &str, origin: &Origin) -> Result<Vec<i32>> {
        self.encode_text(text).map_err(|e| anyhow!("{origin}: {e}"))
    }

    /// The first text of an example: standard (string) data gets the special
    /// tokens the tokenizer's post-processor adds (Llama's BOS; GPT-2's and
    /// NeoX's add none), as TRL's `processing_class(text=...)` does. Text a
    /// model's Jinja chat template rendered is encoded as it is: the template
    /// writes its own BOS (transformers' `apply_chat_template` adds none).
    fn encode_start(&self, text: &str, standard: bool, origin: &Origin) -> Result<Vec<i32>> {
        let enc = self
            .tokenizer
            .encode(text, standard)
            .map_err(|e| anyhow!("{origin}: tokenizing: {e}"))?;
        Ok(enc.get_ids().iter().map(|&i| i as i32).collect())
    }

    /// A rendered conversation encoded as one text, as TRL does (SentencePiece
    /// would start each piece encoded alone with `▁`); a token belongs to the
    /// segment of its first byte. The mask is 1 on trainable segments.
    fn encode_segments(
        &self,
        segments: &[super::template::Segment],
        standard: bool,
        origin: &Origin,
    ) -> Result<(Vec<i32>, Vec<i32>)> {
        ensure!(
            !segments.is_empty(),
            "{origin}: the conversation renders to nothing"
        );
        let text: String = segments.iter().map(|s| s.text.as_str()).collect();
        let enc = self
            .tokenizer
            .encode(text.as_str(), standard)
            .map_err(|e| anyhow!("{origin}: tokenizing: {e}"))?;
        let mut ends = Vec::with_capacity(segments.len());
        for s in segments {
            ends.push(ends.last().copied().unwrap_or(0) + s.text.len());
        }
        let mask = enc
            .get_offsets()
            .iter()
            .map(|&(start, _)| {
                let seg = ends
                    .iter()
                    .position(|&e| start < e)
                    .unwrap_or(segments.len() - 1);
                i32::from(segments[seg].trainable)
            })
            .collect();
        Ok((enc.get_ids().iter().map(|&i| i as i32).collect(), mask))
    }

    /// Whether `prompt` is TRL's standard data: a string, or any record under an engine template.
    fn standard(&self, prompt: &Content) -> bool {
        matches!(prompt, Content::Plain(_)) || matches!(self.template, ChatTemplate::Engine(_))
    }

    /// Fits a prompt, leaving `reserve` tokens for a completion.
    fn fit_prompt(&self, mut ids: Vec<i32>, reserve: usize, origin: &Origin) -> Result<Vec<i32>> {
        let t = &self.truncation;
        let cap = t
            .max_prompt_len
            .unwrap_or(t.max_len)
            .min(t.max_len.saturating_sub(reserve));
        ensure!(cap > 0, "max_len {} leaves no room for a prompt", t.max_len);
        ensure!(!ids.is_empty(), "{origin}: the prompt has no tokens");
        if ids.len() > cap {
            if t.prompt == Overflow::Error {
                bail!(
                    "{origin}: prompt of {} tokens is longer than the context: at most {cap} \
                     prompt tokens (max_len {})",
                    ids.len(),
                    t.max_len
                );
            }
            ids.drain(..ids.len() - cap);
        }
        Ok(ids)
    }

    /// Fits a completion after `used` tokens.
    fn fit_rest(
        &self,
        mut ids: Vec<i32>,
        used: usize,
        what: &str,
        origin: &Origin,
    ) -> Result<Vec<i32>> {
        let t = &self.truncation;
        let room = t.max_len.saturating_sub(used);
        if ids.len() > room {
            if t.completion == Overflow::Error {
                bail!(
                    "{origin}: {what} of {} tokens does not fit: {room} of max_len {} left",
                    ids.len(),
                    t.max_len
                );
            }
            ids.truncate(room);
        }
        ensure!(!ids.is_empty(), "{origin}: the {what} has no tokens");
        Ok(ids)
    }

    /// Prompt and completion ids of a rendered pair.
    fn pair(
        &self,
        p: &str,
        c: &str,
        standard: bool,
        origin: &Origin,
    ) -> Result<(Vec<i32>, Vec<i32>)> {
        let p = self.fit_prompt(self.encode_start(p, standard, origin)?, 1, origin)?;
        let c = self.fit_rest(self.encode_at(c, origin)?, p.len(), "completion", origin)?;
        Ok((p, c))
    }

    pub fn sft(&self, row: &Row<SftRecord>) -> Result<SftExample> {
        let origin = &row.origin;
        let prompt_flag = if self.completion_only { 0 } else { 1 };
        let (ids, loss_mask) = match &row.record {
            SftRecord::Text(t) => {
                let ids = self.fit_rest(self.encode_start(t, true, origin)?, 0, "text", origin)?;
                let n = ids.len();
                (ids, vec![1; n])
            }
            SftRecord::PromptCompletion { prompt, completion } => {
                let (p, c) = self
                    .template
                    .render_example(prompt, completion)
                    .map_err(|e| anyhow!("{origin}: {e:#}"))?;
                let (p, c) = self.pair(&p, &c, self.standard(prompt), origin)?;
                let mask = [vec![prompt_flag; p.len()], vec![1; c.len()]].concat();
                ([p, c].concat(), mask)
            }
            SftRecord::Messages(m) => {
                let segments = self
                    .template
                    .render_conversation(m)
                    .map_err(|e| anyhow!("{origin}: {e:#}"))?;
                let standard = matches!(self.template, ChatTemplate::Engine(_));
                let (mut ids, mut mask) = self.encode_segments(&segments, standard, origin)?;
                for m in &mut mask {
                    *m = if *m == 1 { 1 } else { prompt_flag };
                }
                let max = self.truncation.max_len;
                if ids.len() > max {
                    if self.truncation.completion == Overflow::Error {
                        bail!(
                            "{origin}: conversation of {} tokens is longer than max_len {max}",
                            ids.len()
                        );
                    }
                    ids.truncate(max);
                    mask.truncate(max);
                }
                (ids, mask)
            }
        };
        // Position 0 is never a target: something after it must be.
        ensure!(
            loss_mask.iter().skip(1).any(|&m| m == 1),
            "{origin}: no completion token left to train on within max_len {}",
            self.truncation.max_len
        );
        Ok(SftExample {
            ids,
            loss_mask,
            origin: origin.clone(),
        })
    }

    pub fn preference(&self, row: &Row<PreferenceRecord>) -> Result<PreferenceExample> {
        let (origin, r) = (&row.origin, &row.record);
        let render = |c| {
            self.template
                .render_example(&r.prompt, c)
                .map_err(|e| anyhow!("{origin}: {e:#}"))
        };
        let ((p, c), (_, rej)) = (render(&r.chosen)?, render(&r.rejected)?);
        let p = self.encode_start(&p, self.standard(&r.prompt), origin)?;
        let prompt_ids = self.fit_prompt(p, 1, origin)?;
        let n = prompt_ids.len();
        Ok(PreferenceExample {
            chosen_ids: self.fit_rest(self.encode_at(&c, origin)?, n, "chosen response", origin)?,
            rejected_ids: self.fit_rest(
                self.encode_at(&rej, origin)?,
                n,
                "rejected response",
                origin,
            )?,
            prompt_ids,
            origin: origin.clone(),
        })
    }

    pub fn kto(&self, row: &Row<KtoRecord>) -> Result<KtoExample> {
        let r = &row.record;
        let (p, c) = self
            .template
            .render_example(&r.prompt, &r.completion)
            .map_err(|e| anyhow!("{}: {e:#}", row.origin))?;
        let standard = self.standard(&r.prompt);
        let (prompt_ids, completion_ids) = self.pair(&p, &c, standard, &row.origin)?;
        Ok(KtoExample {
            prompt_ids,
            completion_ids,
            label: r.label,
            origin: row.origin.clone(),
        })
    }

    pub fn prompt(&self, row: &Row<PromptRecord>) -> Result<PromptExample> {
        let p = self
            .template
            .render_prompt(&row.record.prompt)
            .map_err(|e| anyhow!("{}: {e:#}", row.origin))?;
        let ids = self.encode_start(&p, self.standard(&row.record.prompt), &row.origin)?;
        Ok(PromptExample {
            prompt_ids: self.fit_prompt(ids, 0, &row.origin)?,
            origin: row.origin.clone(),
        })
    }

    /// The text as it is (no template), cut from the right.
    pub fn classifier(&self, row: &Row<ClassifierRecord>) -> Result<ClassifierExample> {
        let ids = self.encode_start(&row.record.text, true, &row.origin)?;
        Ok(ClassifierExample {
            ids: self.fit_rest(ids, 0, "text", &row.origin)?,
            label: row.record.label,
            origin: row.origin.clone(),
        })
    }
}

/// Applies `encode` to every row; with `skip_bad_rows` a failing row (e.g.
/// an over-long prompt under [`Overflow::Error`]) is skipped and counted,
/// and the first few reasons kept, else the first failure is returned.
/// When every row fails, the error gives the count and the first reasons.
pub fn encode_all<T, E>(
    rows: &[Row<T>],
    skip_bad_rows: bool,
    mut encode: impl FnMut(&Row<T>) -> Result<E>,
) -> Result<(Vec<E>, usize, Vec<String>)> {
    let (mut out, mut skipped, mut reasons) = (Vec::with_capacity(rows.len()), 0, Vec::new());
    for row in rows {
        match encode(row) {
            Ok(e) => out.push(e),
            Err(e) if skip_bad_rows => {
                skipped += 1;
                if reasons.len() < REPORTED_REASONS {
                    reasons.push(format!("{e:#}"));
                }
            }
            Err(e) => return Err(e),
        }
    }
    if out.is_empty() && skipped > 0 {
        let file = rows
            .first()
            .map(|r| r.origin.file.to_path_buf())
            .unwrap_or_default();
        anyhow::bail!("{}", super::source::every_row_bad(&file, skipped, &reasons));
    }
    Ok((out, skipped, reasons))
}
