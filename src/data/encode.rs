//! Records to token ids through the model's template and tokenizer, with an
//! explicit length limit: prompts give way from the left (their end, next to
//! the completion, matters most), completions from the right, or either
//! fails naming the row's file and line.

use anyhow::{anyhow, bail, ensure, Result};
use std::cell::Cell;
use tokenizers::Tokenizer;

use super::dataset::{Origin, Row, REPORTED_REASONS};
pub use super::examples::{
    ClassifierExample, KtoExample, PreferenceExample, PromptExample, SftExample,
};
use super::records::{ClassifierRecord, Content, KtoRecord, PromptRecord, SftRecord};
use super::template::ChatTemplate;
pub use super::truncation::{Overflow, Truncation, TruncationCount};

impl Encoder<'_> {
    /// Rows and tokens cut by truncation in every row encoded so far.
    pub fn truncated(&self) -> TruncationCount {
        self.cut.get()
    }

    /// A warning line for what truncation cut out of `rows` rows, if any.
    pub fn truncation_note(&self, rows: usize, what: &str) -> Option<String> {
        let c = self.cut.get();
        let t = &self.truncation;
        let prompt = t
            .max_prompt_len
            .map_or(String::new(), |p| format!(", max_prompt_len {p}"));
        (c.rows > 0).then(|| {
            format!(
                "warning: {what}: truncated {} of {rows} rows to max_len {}{prompt}: {} tokens cut",
                c.rows, t.max_len, c.tokens
            )
        })
    }

    /// Runs the encoding of one row, counting its cuts when it succeeds.
    pub(super) fn counted<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.begin_row();
        let out = f();
        if out.is_ok() {
            self.end_row();
        }
        out
    }

    /// Starts counting the cuts of one row.
    pub(super) fn begin_row(&self) {
        self.row_cut.set(0);
    }

    /// Counts `n` tokens cut from the current row.
    pub(super) fn count_cut(&self, n: usize) {
        self.row_cut.set(self.row_cut.get() + n);
    }

    /// Adds the current row's cuts to the totals.
    pub(super) fn end_row(&self) {
        let n = self.row_cut.replace(0);
        if n > 0 {
            let mut c = self.cut.get();
            c.rows += 1;
            c.tokens += n;
            self.cut.set(c);
        }
    }
}

/// Renders with the model's template, tokenizes, and fits `truncation`.
pub struct Encoder<'a> {
    pub tokenizer: &'a Tokenizer,
    pub template: &'a ChatTemplate,
    pub truncation: Truncation,
    /// SFT loss only on completions / assistant answers (TRL's
    /// `completion_only_loss` and `assistant_only_loss`); default true.
    pub completion_only: bool,
    /// What truncation cut so far (rows, tokens).
    pub(super) cut: Cell<TruncationCount>,
    /// Tokens cut from the row being encoded.
    pub(super) row_cut: Cell<usize>,
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
            cut: Cell::default(),
            row_cut: Cell::default(),
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

    pub(super) fn encode_at(&self, text: &str, origin: &Origin) -> Result<Vec<i32>> {
        self.encode_text(text).map_err(|e| anyhow!("{origin}: {e}"))
    }

    /// The first text of an example: standard (string) data gets the special
    /// tokens the tokenizer's post-processor adds (Llama's BOS; GPT-2's and
    /// NeoX's add none), as TRL's `processing_class(text=...)` does. Text a
    /// model's Jinja chat template rendered is encoded as it is: the template
    /// writes its own BOS (transformers' `apply_chat_template` adds none).
    pub(super) fn encode_start(
        &self,
        text: &str,
        standard: bool,
        origin: &Origin,
    ) -> Result<Vec<i32>> {
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
    pub(super) fn standard(&self, prompt: &Content) -> bool {
        matches!(prompt, Content::Plain(_)) || matches!(self.template, ChatTemplate::Engine(_))
    }

    /// Fits a prompt, leaving `reserve` tokens for a completion.
    pub(super) fn fit_prompt(
        &self,
        mut ids: Vec<i32>,
        reserve: usize,
        origin: &Origin,
    ) -> Result<Vec<i32>> {
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
            self.count_cut(ids.len() - cap);
            ids.drain(..ids.len() - cap);
        }
        Ok(ids)
    }

    /// Fits a completion after `used` tokens.
    pub(super) fn fit_rest(
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
            self.count_cut(ids.len() - room);
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
        self.counted(|| self.sft_row(row))
    }

    fn sft_row(&self, row: &Row<SftRecord>) -> Result<SftExample> {
        let origin = &row.origin;
        let prompt_flag = if self.completion_only { 0 } else { 1 };
        let (ids, loss_mask) = match &row.record {
            SftRecord::Text(t) => {
                // EOS appended as TRL's SFTTrainer does (`render_text`).
                let t = self.template.render_text(t);
                let ids = self.fit_rest(self.encode_start(&t, true, origin)?, 0, "text", origin)?;
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
                    self.count_cut(ids.len() - max);
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

    pub fn kto(&self, row: &Row<KtoRecord>) -> Result<KtoExample> {
        self.counted(|| self.kto_row(row))
    }

    fn kto_row(&self, row: &Row<KtoRecord>) -> Result<KtoExample> {
        let (prompt_ids, completion_ids) = self.kto_pair(row)?;
        Ok(KtoExample {
            prompt_ids,
            completion_ids,
            label: row.record.label,
            origin: row.origin.clone(),
        })
    }

    pub fn prompt(&self, row: &Row<PromptRecord>) -> Result<PromptExample> {
        self.counted(|| self.prompt_row(row))
    }

    fn prompt_row(&self, row: &Row<PromptRecord>) -> Result<PromptExample> {
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
        self.counted(|| self.classifier_row(row))
    }

    fn classifier_row(&self, row: &Row<ClassifierRecord>) -> Result<ClassifierExample> {
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
