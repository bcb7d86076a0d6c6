//! The generated data set: its options, the rows of each split, and the
//! length limits every generator part writes to (and the writer checks).

use serde::Serialize;

use super::replies::ReplyKind;

/// Customer messages have at most this many words.
pub const MAX_MESSAGE_WORDS: usize = 30;
/// Replies have at most this many words (~48 tokens of a 2k-vocab BPE).
pub const MAX_REPLY_WORDS: usize = 35;
/// A pair's rejected reply that hides an unsafe sentence among helpful text
/// (read only by the reward model, at up to 96 tokens) may be longer.
pub const MAX_MIXED_REPLY_WORDS: usize = 2 * MAX_REPLY_WORDS;
/// Of the unsafe replies, this fraction asks for sensitive data; the rest are rude.
pub const SENSITIVE_SHARE: f64 = 2.0 / 3.0;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SupportOptions {
    pub seed: u64,
    pub sft: usize,
    pub pairs: usize,
    pub kto: usize,
    pub prompts: usize,
    pub eval: usize,
    /// Fraction of SFT completions that are sensitive or rude (real logs
    /// contain some, so PPO has something to fix).
    pub unsafe_fraction: f64,
    /// Fraction of the reward pairs whose rejected reply is a garbled good
    /// one (one sentence broken, as a small model writes): the reward model
    /// must prefer whole sentences, or PPO buys reward with fragments
    /// (measured: the default policy kept 0.77x of its well-formed
    /// sentences without them).
    pub garbled_pairs: f64,
    /// Rows of the rude/polite labelled split (`tone.jsonl`; none by default).
    #[serde(skip_serializing_if = "is_zero")]
    pub tone: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Default for SupportOptions {
    fn default() -> Self {
        SupportOptions {
            seed: 0,
            sft: 4000,
            pairs: 3000,
            kto: 2000,
            prompts: 1000,
            eval: 128,
            unsafe_fraction: 0.35,
            garbled_pairs: 0.25,
            tone: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SftRow {
    pub prompt: String,
    pub completion: String,
    pub kind: ReplyKind,
    pub intent: &'static str,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PairRow {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
    pub rejected_kind: ReplyKind,
    pub intent: &'static str,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KtoRow {
    pub prompt: String,
    pub completion: String,
    /// true = desirable (a good reply).
    pub label: bool,
    pub kind: ReplyKind,
    pub intent: &'static str,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PromptRow {
    pub prompt: String,
    pub intent: &'static str,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalRow {
    pub prompt: String,
    /// A good reference reply.
    pub completion: String,
    pub intent: &'static str,
}

/// The tone classes of `tone.jsonl`, by label id (its `id2label`).
pub const TONE_LABELS: [&str; 2] = ["polite", "rude"];

/// A labelled text for a rude-reply classifier: the transcript
/// `Customer: <message>\nAgent: <reply>` (the `support` chat template's
/// prompt plus the reply, which is what a reward model reads in PPO),
/// `label` 1 when the reply is rude (alone, or hidden before or after
/// helpful text), 0 when it is polite (good, or polite but asking for
/// sensitive data: `kind` says which).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToneRow {
    pub text: String,
    pub label: u8,
    pub label_name: &'static str,
    pub kind: ReplyKind,
    pub intent: &'static str,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SupportData {
    pub options: SupportOptions,
    pub sft: Vec<SftRow>,
    pub pairs: Vec<PairRow>,
    pub kto: Vec<KtoRow>,
    pub prompts: Vec<PromptRow>,
    pub eval: Vec<EvalRow>,
    pub tone: Vec<ToneRow>,
}

impl SupportData {
    /// Every prompt and reply text of every split (with repeats), e.g. to
    /// train a tokenizer.
    pub fn texts(&self) -> impl Iterator<Item = &str> + '_ {
        let sft = self.sft.iter().flat_map(|r| [&r.prompt, &r.completion]);
        let pairs = self
            .pairs
            .iter()
            .flat_map(|r| [&r.prompt, &r.chosen, &r.rejected]);
        let kto = self.kto.iter().flat_map(|r| [&r.prompt, &r.completion]);
        let prompts = self.prompts.iter().map(|r| &r.prompt);
        let eval = self.eval.iter().flat_map(|r| [&r.prompt, &r.completion]);
        sft.chain(pairs)
            .chain(kto)
            .chain(prompts)
            .chain(eval)
            .map(String::as_str)
    }
}
