//! A loaded file: its rows with their origins, the options it was read
//! with, and the report of what was kept and skipped.

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
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
    /// them, instead of TRL's plain strings. [`ChatTemplate::hh`](super::ChatTemplate::hh) renders
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Jsonl,
    Csv,
    Tsv,
}

impl FileFormat {
    /// From the name, ignoring a `.gz`/`.gzip` suffix: `.csv`, `.tsv`, else JSONL.
    pub fn from_path(path: &Path) -> FileFormat {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let name = name
            .strip_suffix(".gz")
            .or_else(|| name.strip_suffix(".gzip"))
            .unwrap_or(&name);
        if name.ends_with(".csv") {
            FileFormat::Csv
        } else if name.ends_with(".tsv") {
            FileFormat::Tsv
        } else {
            FileFormat::Jsonl
        }
    }
}

/// Column renames, `field=column`: the loader reads `field` from `column`.
/// Parsed from `"prompt=instruction,completion=response"` (a CLI flag's form).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnMap(pub Vec<(String, String)>);

impl ColumnMap {
    pub fn new(pairs: &[(&str, &str)]) -> ColumnMap {
        ColumnMap(
            pairs
                .iter()
                .map(|(f, c)| (f.to_string(), c.to_string()))
                .collect(),
        )
    }

    /// The column that `field` is read from.
    pub fn source<'a>(&'a self, field: &'a str) -> &'a str {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map_or(field, |(_, c)| c.as_str())
    }

    pub(super) fn apply(&self, map: &mut Map<String, Value>) {
        // Take every source first so swaps (a=b,b=a) work.
        let taken: Vec<(String, Option<Value>)> = self
            .0
            .iter()
            .map(|(f, c)| (f.clone(), map.remove(c)))
            .collect();
        for (field, value) in taken {
            if let Some(v) = value {
                map.insert(field, v);
            }
        }
    }
}

impl FromStr for ColumnMap {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<ColumnMap> {
        let mut pairs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, column) = part
                .split_once('=')
                .ok_or_else(|| anyhow!("column mapping {part:?} is not field=column"))?;
            let (field, column) = (field.trim(), column.trim());
            if field.is_empty() || column.is_empty() {
                bail!("column mapping {part:?} has an empty side");
            }
            if pairs.iter().any(|(f, _): &(String, String)| f == field) {
                bail!("column mapping names {field:?} twice");
            }
            pairs.push((field.to_string(), column.to_string()));
        }
        Ok(ColumnMap(pairs))
    }
}
