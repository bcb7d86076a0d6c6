//! The length limit of encoded examples ([`Truncation`]) and the count of
//! what it cut ([`TruncationCount`]), which the trainers report as a warning.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::encode::Encoder;

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

/// Rows and tokens that truncation cut, counted by an [`Encoder`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TruncationCount {
    pub rows: usize,
    pub tokens: usize,
}

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
