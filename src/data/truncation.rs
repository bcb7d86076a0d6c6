//! The length limit of encoded examples ([`Truncation`]) and the count of
//! what it cut ([`TruncationCount`]), which the trainers report as a warning.

use serde::{Deserialize, Serialize};

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

/// Rows and tokens that truncation cut, counted by an [`Encoder`](super::Encoder).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TruncationCount {
    pub rows: usize,
    pub tokens: usize,
}
