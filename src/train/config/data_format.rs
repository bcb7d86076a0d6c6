//! [`DataFormatArgs`]: how data rows are read and rendered (`--template`,
//! `--skip-bad-rows`, `--columns`), one group flattened into every command
//! that loads rows: the trainers' [`super::CommonArgs`] and the sampling
//! commands' `SampleArgs` (which word two helps for prompts, with clap's
//! `mut_arg`). Run files name these keys flat (`template = "hh"`).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::data::{ChatTemplate, ColumnMap, LoadOptions};

// (A `///` comment here would become the `about` of every command this
// group is flattened into.)
#[derive(clap::Args, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DataFormatArgs {
    /// Chat template: an engine preset (gpt2, plain, hh, support), an
    /// engine_template.json, or a .jinja file (default: the model
    /// directory's engine_template.json, else its tokenizer's chat_template).
    #[arg(long)]
    pub template: Option<String>,
    /// Skip (and count) bad data rows instead of failing.
    #[arg(long)]
    #[serde(default)]
    pub skip_bad_rows: bool,
    /// Column renames, `field=column,...`.
    #[arg(long)]
    pub columns: Option<String>,
}

impl DataFormatArgs {
    /// `--columns` (`field=column,...`), or no renames.
    pub fn column_map(&self) -> Result<ColumnMap> {
        match &self.columns {
            Some(s) => s.parse().context("--columns"),
            None => Ok(ColumnMap::default()),
        }
    }

    /// Load options from `--columns` and `--skip-bad-rows`.
    pub fn load_options(&self) -> Result<LoadOptions> {
        Ok(LoadOptions {
            columns: self.column_map()?,
            skip_bad_rows: self.skip_bad_rows,
            ..LoadOptions::default()
        })
    }

    /// `--template`, else `model_dir`'s template (see [`ChatTemplate::resolve`]).
    pub fn chat_template(&self, model_dir: Result<&Path>) -> Result<ChatTemplate> {
        ChatTemplate::resolve(self.template.as_deref(), model_dir)
    }
}
