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
//! [`ChatTemplate`] is set per model: by default the model's own Jinja
//! `chat_template` (tokenizer_config.json, rendered by [`jinja`] as
//! transformers does) for conversational data and TRL's plain concatenation
//! for strings; engine's own templates only when asked for (`--template`,
//! a run config's `template`, or [`TEMPLATE_FILE`] in the model directory).
//! Every stage renders prompts with it.

mod batch;
pub mod bpe;
mod dataset;
mod encode;
mod examples;
mod fields;
pub mod jinja;
mod pairs;
mod records;
mod source;
mod split;
pub mod support;
mod template;
mod truncation;
pub mod wordpiece;

pub use batch::{
    classifier_batch, kto_batch, pad_id, preference_batch, prompt_batch, right_padded, sft_batch,
    ClassifierBatch, KtoBatch, LmBatch, PreferenceBatch,
};
pub use dataset::{
    ColumnMap, Dataset, FileFormat, LoadOptions, LoadReport, Origin, Row, REPORTED_REASONS,
};
pub use encode::{
    encode_all, ClassifierExample, Encoder, KtoExample, Overflow, PreferenceExample, PromptExample,
    SftExample, Truncation, TruncationCount,
};
pub use pairs::drop_ties;
pub use records::{
    extract_prompt, load_classifier, load_kto, load_preferences, load_prompts, load_sft,
    parse_hh_dialogue, ClassifierRecord, Content, KtoRecord, Message, PreferenceRecord,
    PromptRecord, Role, SftRecord,
};
pub use split::{shuffled, train_eval_split, EpochSampler};
pub use template::{
    read_tokenizer_config, ChatTemplate, EngineTemplate, HfTemplate, Segment, TokenizerConfig,
    TEMPLATE_FILE,
};
