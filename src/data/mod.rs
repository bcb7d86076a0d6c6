//! Training data in TRL's dataset formats: loading, the per-model chat
//! template, tokenisation with explicit truncation, padding into
//! [`Tokens`](crate::models::layers::Tokens),
//! and seeded splits and epochs. Nothing here touches the GPU.
//!
//! # Files
//! JSONL (one object per line; blank lines ignored) or CSV/TSV (a header row),
//! chosen by the name (`.csv`, `.tsv`, else JSONL, looked up after stripping
//! `.gz`) or by [`LoadOptions::format`]. Any file may be gzip-compressed; that
//! is detected from the magic bytes, whatever the name.
//!
//! | loader | fields |
//! |---|---|
//! | [`load_sft`] | `prompt`+`completion`, `text`, or `messages` (`[{role, content}]`) |
//! | [`load_preferences`] | `prompt`+`chosen`+`rejected`; or `chosen`+`rejected` only (hh-rlhf dialogues, or message lists), the shared prompt extracted |
//! | [`load_kto`] | `prompt`+`completion`+`label` (bool, or 0/1) |
//! | [`load_prompts`] | `prompt`, or `messages` (a final assistant turn is dropped) |
//! | [`load_classifier`] | `text`+`label` (integer class; -1 = unlabelled, skipped and counted) |
//!
//! `prompt`, `completion`, `chosen` and `rejected` hold a string (standard
//! data) or a list of messages (conversational data); roles are `system`,
//! `user`, `assistant`. [`ColumnMap`] renames columns first (`prompt=instruction`).
//!
//! # Errors
//! A bad row (invalid JSON, a missing or wrongly typed field, an empty
//! completion, a label that is not 0/1/bool) fails the load with
//! `FILE:LINE: what is wrong` (1-based lines; a CSV record's first line).
//! With [`LoadOptions::skip_bad_rows`] such rows are skipped and counted in the
//! [`LoadReport`] with the first few reasons.
//!
//! # Template
//! [`ChatTemplate`] is set per model: the file [`TEMPLATE_FILE`]
//! (`engine_template.json`) in the model directory, or the `template` field
//! of a run config, holds its JSON. Every stage renders prompts with it.

mod batch;
pub mod bpe;
mod encode;
mod fields;
mod records;
mod source;
mod split;
pub mod support;
mod template;

pub use batch::{
    classifier_batch, kto_batch, pad_id, preference_batch, prompt_batch, right_padded, sft_batch,
    ClassifierBatch, KtoBatch, LmBatch, PreferenceBatch,
};
pub use encode::{
    encode_all, ClassifierExample, Encoder, KtoExample, Overflow, PreferenceExample, PromptExample,
    SftExample, Truncation,
};
pub use records::{
    extract_prompt, load_classifier, load_kto, load_preferences, load_prompts, load_sft,
    parse_hh_dialogue, ClassifierRecord, Content, KtoRecord, Message, PreferenceRecord,
    PromptRecord, Role, SftRecord,
};
pub use source::{ColumnMap, FileFormat};
pub use split::{shuffled, train_eval_split, EpochSampler};
pub use template::{ChatTemplate, Segment, TEMPLATE_FILE};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a row came from: its file and 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<Path>,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One parsed row and its origin (kept so later errors can name it).
#[derive(Clone, Debug, PartialEq)]
pub struct Row<T> {
    pub origin: Origin,
    pub record: T,
}

/// The rows of one file and what was skipped on the way.
#[derive(Clone, Debug)]
pub struct Dataset<T> {
    pub rows: Vec<Row<T>>,
    pub report: LoadReport,
}

impl<T> Dataset<T> {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// How to read a file.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Renames columns before the fields are read.
    pub columns: ColumnMap,
    /// Skip bad rows (counted in the report) instead of failing.
    pub skip_bad_rows: bool,
    /// Stop after this many kept rows.
    pub max_rows: Option<usize>,
    /// Overrides the format guessed from the file name.
    pub format: Option<FileFormat>,
    /// Classifier labels must be below this (default 2).
    pub num_labels: usize,
    /// Preferences: turn implicit-prompt hh-rlhf dialogues into messages
    /// (prompt turns, assistant responses) so the model's template renders
    /// them, instead of TRL's plain strings. [`ChatTemplate::hh`] renders
    /// them back to the original text.
    pub hh_as_messages: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            columns: ColumnMap::default(),
            skip_bad_rows: false,
            max_rows: None,
            format: None,
            num_labels: 2,
            hh_as_messages: false,
        }
    }
}

/// How many reasons a report keeps.
pub const REPORTED_REASONS: usize = 5;

/// What a load kept and skipped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    pub file: PathBuf,
    pub gzip: bool,
    pub kept: usize,
    /// Bad rows skipped under `skip_bad_rows`.
    pub skipped_bad: usize,
    /// Classifier rows with label -1.
    pub skipped_unlabelled: usize,
    /// `FILE:LINE: reason` of the first [`REPORTED_REASONS`] skipped bad rows.
    pub reasons: Vec<String>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} rows", self.file.display(), self.kept)?;
        if self.skipped_unlabelled > 0 {
            write!(f, ", {} unlabelled skipped", self.skipped_unlabelled)?;
        }
        if self.skipped_bad > 0 {
            write!(f, ", {} bad rows skipped", self.skipped_bad)?;
            for r in &self.reasons {
                write!(f, "\n  {r}")?;
            }
        }
        Ok(())
    }
}
