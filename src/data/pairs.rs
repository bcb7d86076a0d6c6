//! Preference pairs to token ids, as TRL 0.11.4 tokenizes them.
//!
//! DPO/IPO/kto_pair ([`Encoder::preference`]) follow `DPOTrainer`'s
//! `_tokenize` (trl/trainer/dpo_trainer.py, 0.11.4):
//! - `build_tokenized_answer`: `prompt + response` is tokenized as one text
//!   and the response's ids are what follows the prompt's own ids in it;
//!   when the prompt's last token merges with the response, the boundary
//!   moves one token left. Chosen and rejected prompts may then differ in
//!   their last token ([`PreferenceExample::prompt_tails`]).
//! - `add_bos_token_if_needed`: the tokenizer's BOS (tokenizer_config.json's
//!   `bos_token`) is prepended to each prompt unless it is already first.
//!   TRL 0.11 does this whatever the tokenizer adds itself (GPT-2's BOS is
//!   `<|endoftext|>`).
//! - `add_eos_token_if_needed`: the EOS id is appended to each response
//!   unless it already ends with it (conversational completions too).
//! - `_truncate_tokens` with `truncation_mode="keep_end"`: when a prompt and
//!   the longer response exceed `max_length`, the prompt keeps its last
//!   `max_prompt_length` tokens; if still too long, each response keeps its
//!   first `max_length − max_prompt_length`. Without `max_prompt_len` the
//!   prompt keeps at most `max_len − 1` tokens and each response what is
//!   left (engine's rule; TRL would assume 128).
//!
//! BOS and EOS ids come only with the model's own (HF) template; engine's
//! templates carry their own EOS text and add no BOS.
//!
//! Reward pairs ([`Encoder::reward_pair`]) are whole texts, prompt and
//! response together, tokenized with the tokenizer's own special tokens
//! (TRL's reward_modeling example calls `tokenizer(text)`): so a BOS only
//! where the tokenizer adds one, and no shared prompt is needed.

use anyhow::{anyhow, bail, ensure, Result};

use super::dataset::{Origin, Row};
use super::encode::{Encoder, Overflow, PreferenceExample};
use super::records::{Content, PreferenceRecord};

/// One side's prompt and response ids.
struct Side {
    prompt: Vec<i32>,
    response: Vec<i32>,
}

impl Encoder<'_> {
    /// The id of the HF template's special token `name`, if any.
    fn special_id(&self, name: &str) -> Option<i32> {
        let text = self.template.hf_token(name)?;
        self.tokenizer.token_to_id(text).map(|i| i as i32)
    }

    /// TRL's `build_tokenized_answer`: the ids of `prompt + response` split
    /// after the prompt's own ids, one token earlier if the prompt's last
    /// token merged with the response.
    fn side(&self, prompt: &str, response: &str, origin: &Origin) -> Result<Side> {
        let full = self.encode_at(&format!("{prompt}{response}"), origin)?;
        let p = self.encode_at(prompt, origin)?;
        let mut start = p.len().min(full.len());
        if full[..start] != p[..] {
            start = start.saturating_sub(1);
        }
        Ok(Side {
            prompt: full[..start].to_vec(),
            response: full[start..].to_vec(),
        })
    }

    /// A preference pair for DPO/IPO/kto_pair (and KTO from pairs), as TRL
    /// 0.11's DPOTrainer tokenizes it (see the module header).
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
        let mut sides = [self.side(&p, &c, origin)?, self.side(&p, &rej, origin)?];
        let (bos, eos) = (self.special_id("bos_token"), self.special_id("eos_token"));
        for s in &mut sides {
            if let Some(b) = bos.filter(|&b| s.prompt.first() != Some(&b)) {
                s.prompt.insert(0, b);
            }
            if let Some(e) = eos.filter(|&e| s.response.last() != Some(&e)) {
                s.response.push(e);
            }
            ensure!(!s.prompt.is_empty(), "{origin}: the prompt has no tokens");
        }
        self.truncate_pair(&mut sides, origin)?;
        for (what, s) in ["chosen response", "rejected response"].iter().zip(&sides) {
            ensure!(!s.response.is_empty(), "{origin}: the {what} has no tokens");
        }
        let [c, r] = sides;
        let shared = c
            .prompt
            .iter()
            .zip(&r.prompt)
            .take_while(|(a, b)| a == b)
            .count();
        ensure!(
            c.prompt.len().max(r.prompt.len()) - shared <= 1,
            "{origin}: chosen and rejected tokenize the prompt differently beyond its last token"
        );
        Ok(PreferenceExample {
            prompt_ids: c.prompt[..shared].to_vec(),
            prompt_tails: [c.prompt[shared..].to_vec(), r.prompt[shared..].to_vec()],
            chosen_ids: c.response,
            rejected_ids: r.response,
            origin: origin.clone(),
        })
    }

    /// TRL 0.11's `_truncate_tokens` (keep_end) on both sides.
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

    /// KTO's (prompt, completion) ids as TRL 0.11's KTOTrainer builds them
    /// (`_process_tokens`): split as [`Encoder::preference`] does, cut to
    /// max_len less the BOS/EOS still to add (prompt first, keep_end), then
    /// BOS and EOS added, so a cut completion still ends with EOS.
    pub(super) fn kto_pair(
        &self,
        p: &str,
        c: &str,
        origin: &Origin,
    ) -> Result<(Vec<i32>, Vec<i32>)> {
        let Side {
            mut prompt,
            mut response,
        } = self.side(p, c, origin)?;
        let (bos, eos) = (self.special_id("bos_token"), self.special_id("eos_token"));
        let bos = bos.filter(|&b| prompt.first() != Some(&b));
        let eos = eos.filter(|&e| response.last() != Some(&e));
        let t = &self.truncation;
        let max = t
            .max_len
            .saturating_sub(bos.is_some() as usize + eos.is_some() as usize);
        let keep_prompt = t.max_prompt_len.unwrap_or(max.saturating_sub(1));
        ensure!(
            keep_prompt < max,
            "max_len {} leaves no room for a completion",
            t.max_len
        );
        let (n, a) = (prompt.len(), response.len());
        if n + a > max && n > keep_prompt {
            if t.prompt == Overflow::Error {
                bail!("{origin}: prompt of {n} tokens is longer than the context: at most {keep_prompt} prompt tokens (max_len {})", t.max_len);
            }
            self.count_cut(n - keep_prompt);
            prompt.drain(..n - keep_prompt);
        }
        let room = match t.max_prompt_len {
            Some(p) => max - p,
            None => max - prompt.len(),
        };
        if prompt.len() + a > max && a > room {
            if t.completion == Overflow::Error {
                bail!(
                    "{origin}: completion of {a} tokens does not fit: {room} of max_len {} left",
                    t.max_len
                );
            }
            self.count_cut(a - room);
            response.truncate(room);
        }
        prompt.splice(0..0, bos);
        response.extend(eos);
        ensure!(!prompt.is_empty(), "{origin}: the prompt has no tokens");
        ensure!(
            !response.is_empty(),
            "{origin}: the completion has no tokens"
        );
        Ok((prompt, response))
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
                prompt_tails: Default::default(),
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
