//! Preference pairs and KTO rows to token ids, as TRL 1.16.0 tokenizes them.
//!
//! DPO/IPO/kto_pair ([`Encoder::preference`]) follow `DPOTrainer._prepare_dataset`
//! (trl/trainer/dpo_trainer.py, 1.16.0); KTO ([`Encoder::kto_pair`]) follows
//! `KTOTrainer._prepare_dataset` (trl/trainer/kto_trainer.py), which is the same
//! with one completion:
//! - EOS: standard (string) data gets the tokenizer's `eos_token` text appended
//!   to each completion unless it already ends with it (the HF template's
//!   `with_eos`); conversational data gets none beyond what the chat template
//!   renders. engine's own templates carry their own EOS text.
//! - BOS only where the tokenizer adds it: standard data is tokenized with the
//!   tokenizer's own special tokens (`processing_class(text=...)`: Llama's BOS,
//!   none for GPT-2 or NeoX); a rendered chat template is tokenized as it is
//!   (`apply_chat_template` writes its own BOS). TRL 0.11 prepended the BOS to
//!   every prompt; TRL 1.16 does not.
//! - Splitting: the prompt, prompt + chosen and prompt + rejected are each
//!   tokenized as one text; the prompt is their common prefix
//!   (`common_prefix_length`, the minimum over both sides), so when the
//!   prompt's last token merges with a completion the merged token starts
//!   both completions. Chosen and rejected share one prompt (TRL 0.11 kept a
//!   per-side prompt tail instead).
//! - Labels: the prompt is masked, every completion token (EOS included) is
//!   scored; log-probs are summed over the completion (`ld_alpha` unset).
//! - Truncation: TRL 1.16 has no `max_prompt_length`; its collator cuts each
//!   prompt + completion sequence to `max_length` (`truncation_mode`
//!   "keep_start", the default: the completion's end, EOS included, goes) and
//!   drops rows whose prompt alone fills `max_length`. engine does the same
//!   while the prompt is shorter than `max_len`; a longer prompt keeps its
//!   last `max_len − 1` tokens instead of dropping the row. `max_prompt_len`
//!   is engine's (TRL 0.11's `max_prompt_length`): the prompt first keeps its
//!   last `max_prompt_len` tokens, and each completion then at most
//!   `max_len − max_prompt_len`.
//!
//! Reward pairs ([`Encoder::reward_pair`]) follow `RewardTrainer._prepare_dataset`
//! (trl/trainer/reward_trainer.py, 1.16.0): prompt + response (+ EOS text for
//! standard data) as one text with the tokenizer's own special tokens, no
//! prompt split, so no shared prompt is needed. TRL drops pairs longer than
//! `max_length`; engine keeps their last `max_len` tokens (where the score is
//! read) or fails under [`Overflow::Error`].

use anyhow::{anyhow, bail, ensure, Result};

use super::dataset::{Origin, Row};
use super::encode::{Encoder, Overflow, PreferenceExample};
use super::records::{Content, KtoRecord, PreferenceRecord};

/// One side's prompt and response ids.
struct Side {
    prompt: Vec<i32>,
    response: Vec<i32>,
}

/// How many leading ids `a` and `b` share (TRL's `common_prefix_length`).
fn common_prefix(a: &[i32], b: &[i32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Encoder<'_> {
    /// TRL 1.16's split: `prompt`, and `prompt + response` for each response,
    /// each tokenized as one text (`standard`: with the tokenizer's special
    /// tokens); the prompt is the prefix all of them share.
    fn split<const N: usize>(
        &self,
        prompt: &str,
        responses: [&str; N],
        standard: bool,
        origin: &Origin,
    ) -> Result<[Side; N]> {
        let p = self.encode_start(prompt, standard, origin)?;
        let mut full = Vec::with_capacity(N);
        for r in responses {
            full.push(self.encode_start(&format!("{prompt}{r}"), standard, origin)?);
        }
        let shared = full.iter().map(|f| common_prefix(&p, f)).min().unwrap_or(0);
        ensure!(shared > 0, "{origin}: the prompt has no tokens");
        Ok(full
            .into_iter()
            .map(|f| Side {
                prompt: f[..shared].to_vec(),
                response: f[shared..].to_vec(),
            })
            .collect::<Vec<_>>()
            .try_into()
            .unwrap_or_else(|_| unreachable!("one side per response")))
    }

    /// A preference pair for DPO/IPO/kto_pair (and KTO from pairs), as TRL
    /// 1.16's DPOTrainer tokenizes it (see the module header).
    pub fn preference(&self, row: &Row<PreferenceRecord>) -> Result<PreferenceExample> {
        self.counted(|| self.preference_row(row))
    }

    fn preference_row(&self, row: &Row<PreferenceRecord>) -> Result<PreferenceExample> {
        let (origin, r) = (&row.origin, &row.record);
        ensure!(
            !r.prompt.is_empty(),
            "{origin}: chosen and rejected share no prompt; DPO/IPO/KTO need one \
             (train-reward takes whole texts and conversations)"
        );
        let render = |c| {
            self.template
                .render_example(&r.prompt, c)
                .map_err(|e| anyhow!("{origin}: {e:#}"))
        };
        let ((p, c), (_, rej)) = (render(&r.chosen)?, render(&r.rejected)?);
        let mut sides = self.split(&p, [&c, &rej], self.standard(&r.prompt), origin)?;
        self.truncate_pair(&mut sides, origin)?;
        for (what, s) in ["chosen response", "rejected response"].iter().zip(&sides) {
            ensure!(!s.response.is_empty(), "{origin}: the {what} has no tokens");
        }
        let [c, r] = sides;
        Ok(PreferenceExample {
            prompt_ids: c.prompt,
            chosen_ids: c.response,
            rejected_ids: r.response,
            origin: origin.clone(),
        })
    }

    /// TRL 1.16's keep_start cut of each side (see the module header), or
    /// engine's `max_prompt_len` first.
    fn truncate_pair(&self, sides: &mut [Side; 2], origin: &Origin) -> Result<()> {
        let t = &self.truncation;
        let max = t.max_len;
        let longer = sides.iter().map(|s| s.response.len()).max().unwrap_or(0);
        let keep_prompt = match t.max_prompt_len {
            Some(p) => {
                ensure!(
                    p < max,
                    "max_prompt_len {p} leaves no room in max_len {max}"
                );
                p
            }
            None => max - 1,
        };
        // The prompt is one text: its cut is counted once.
        let mut prompt_cut = 0;
        for s in sides.iter_mut() {
            let n = s.prompt.len();
            if n + longer > max && n > keep_prompt {
                if t.prompt == Overflow::Error {
                    bail!(
                        "{origin}: prompt of {n} tokens and response of {longer} exceed max_len \
                         {max}: at most {keep_prompt} prompt tokens"
                    );
                }
                prompt_cut = prompt_cut.max(n - keep_prompt);
                s.prompt.drain(..n - keep_prompt);
            }
        }
        self.count_cut(prompt_cut);
        for s in sides.iter_mut() {
            if s.prompt.len() + longer <= max {
                continue;
            }
            let room = match t.max_prompt_len {
                Some(p) => max - p,
                None => max - s.prompt.len(),
            };
            if s.response.len() > room {
                if t.completion == Overflow::Error {
                    bail!(
                        "{origin}: response of {} tokens does not fit: {room} of max_len {max} left",
                        s.response.len()
                    );
                }
                self.count_cut(s.response.len() - room);
                s.response.truncate(room);
            }
        }
        Ok(())
    }

    /// KTO's (prompt, completion) ids as TRL 1.16's KTOTrainer builds them:
    /// split as [`Encoder::preference`] does, then cut as one side of a pair
    /// (a cut completion loses its EOS, as TRL's keep_start collator cuts it).
    pub(super) fn kto_pair(&self, row: &Row<KtoRecord>) -> Result<(Vec<i32>, Vec<i32>)> {
        let (origin, r) = (&row.origin, &row.record);
        let (p, c) = self
            .template
            .render_example(&r.prompt, &r.completion)
            .map_err(|e| anyhow!("{origin}: {e:#}"))?;
        let [mut side] = self.split(&p, [&c], self.standard(&r.prompt), origin)?;
        let t = &self.truncation;
        let max = t.max_len;
        let keep_prompt = t.max_prompt_len.unwrap_or(max.saturating_sub(1));
        ensure!(
            keep_prompt < max,
            "max_len {max} leaves no room for a completion"
        );
        let (n, a) = (side.prompt.len(), side.response.len());
        if n + a > max && n > keep_prompt {
            if t.prompt == Overflow::Error {
                bail!("{origin}: prompt of {n} tokens is longer than the context: at most {keep_prompt} prompt tokens (max_len {max})");
            }
            self.count_cut(n - keep_prompt);
            side.prompt.drain(..n - keep_prompt);
        }
        let room = match t.max_prompt_len {
            Some(p) => max - p,
            None => max - side.prompt.len(),
        };
        if side.prompt.len() + a > max && a > room {
            if t.completion == Overflow::Error {
                bail!(
                    "{origin}: completion of {a} tokens does not fit: {room} of max_len {max} left"
                );
            }
            self.count_cut(a - room);
            side.response.truncate(room);
        }
        ensure!(
            !side.response.is_empty(),
            "{origin}: the completion has no tokens"
        );
        Ok((side.prompt, side.response))
    }

    /// A reward-model pair: prompt + chosen and prompt + rejected each as one
    /// text with the tokenizer's own special tokens, no prompt split (the
    /// prompt may be empty: pairs with no shared prefix, conversations then
    /// rendered whole). A text longer than
    /// max_len keeps its last tokens (where the responses differ and the
    /// score is read), or fails under [`Overflow::Error`].
    pub fn reward_pair(&self, row: &Row<PreferenceRecord>) -> Result<PreferenceExample> {
        self.counted(|| {
            let (origin, r) = (&row.origin, &row.record);
            let whole = |c: &Content, what: &str| -> Result<Vec<i32>> {
                let text = match c {
                    // No shared prompt: the whole conversation, as TRL
                    // renders a pair without a prompt.
                    Content::Chat(m) if r.prompt.is_empty() => self.template.render_messages(m),
                    _ => self
                        .template
                        .render_example(&r.prompt, c)
                        .map(|(p, c)| p + &c),
                };
                let text = text.map_err(|e| anyhow!("{origin}: {e:#}"))?;
                let enc = self
                    .tokenizer
                    .encode(text, true)
                    .map_err(|e| anyhow!("{origin}: tokenizing: {e}"))?;
                let mut ids: Vec<i32> = enc.get_ids().iter().map(|&i| i as i32).collect();
                let max = self.truncation.max_len;
                if ids.len() > max {
                    ensure!(
                        self.truncation.completion == Overflow::Truncate,
                        "{origin}: {what} of {} tokens is longer than max_len {max}",
                        ids.len()
                    );
                    // The score is read at the last token: keep the end.
                    self.count_cut(ids.len() - max);
                    ids.drain(..ids.len() - max);
                }
                ensure!(!ids.is_empty(), "{origin}: the {what} has no tokens");
                Ok(ids)
            };
            Ok(PreferenceExample {
                prompt_ids: Vec::new(),
                chosen_ids: whole(&r.chosen, "chosen text")?,
                rejected_ids: whole(&r.rejected, "rejected text")?,
                origin: origin.clone(),
            })
        })
    }
}

/// `pairs` less those whose chosen and rejected tokens are the same (after
/// truncation), with a warning in `notes` naming how many and the first.
pub fn drop_ties(
    pairs: Vec<PreferenceExample>,
    what: &str,
    notes: &mut Vec<String>,
) -> Vec<PreferenceExample> {
    let n = pairs.len();
    let (ties, kept): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|p| p.is_tie());
    if let Some(first) = ties.first() {
        notes.push(format!(
            "warning: {what}: skipped {} of {n} pairs whose chosen and rejected tokens are identical \
             after truncation (first: {}); raise --max-len",
            ties.len(),
            first.origin
        ));
    }
    kept
}
