//! What a reward model trains on: preference pairs (Bradley-Terry) or
//! labelled texts (a binary classifier), told apart by the data's fields,
//! loaded and encoded.

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::data::{
    drop_ties, encode_all, load_classifier, load_preferences, train_eval_split, ClassifierExample,
    Encoder, LoadOptions, PreferenceExample,
};
use crate::models::lm::CausalLm;
use crate::train::config::CommonArgs;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RewardLoss {
    /// Pairwise Bradley-Terry on chosen/rejected.
    Bt,
    /// Binary cross-entropy on labelled texts.
    Classifier,
}

/// bt when the file reads as preferences, classifier when it reads as
/// labelled texts (judged on its first row).
pub fn detect_loss(path: &Path, opts: &LoadOptions) -> Result<RewardLoss> {
    let one = LoadOptions {
        max_rows: Some(1),
        skip_bad_rows: false,
        ..opts.clone()
    };
    let pref = load_preferences(path, &one);
    if pref.as_ref().is_ok_and(|d| !d.is_empty()) {
        return Ok(RewardLoss::Bt);
    }
    match load_classifier(path, &one) {
        Ok(d) if !d.is_empty() => Ok(RewardLoss::Classifier),
        other => bail!(
            "{}: neither preference rows ({:#}) nor labelled texts ({:#}); pass --loss",
            path.display(),
            pref.err().map_or("no rows".into(), |e| format!("{e:#}")),
            other.err().map_or("no rows".into(), |e| format!("{e:#}")),
        ),
    }
}

/// Encoded reward data of either kind.
pub enum RewardData {
    Pairs(Vec<PreferenceExample>),
    Labels(Vec<ClassifierExample>),
}

impl RewardData {
    pub fn len(&self) -> usize {
        match self {
            RewardData::Pairs(v) => v.len(),
            RewardData::Labels(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn split(self, fraction: f64, seed: u64) -> Result<(RewardData, RewardData)> {
        Ok(match self {
            RewardData::Pairs(v) => {
                let (a, b) = train_eval_split(v, fraction, seed)?;
                (RewardData::Pairs(a), RewardData::Pairs(b))
            }
            RewardData::Labels(v) => {
                let (a, b) = train_eval_split(v, fraction, seed)?;
                (RewardData::Labels(a), RewardData::Labels(b))
            }
        })
    }
}

/// Loads and encodes one file for `loss`.
pub fn load_reward_file(
    path: &Path,
    loss: RewardLoss,
    common: &CommonArgs,
    enc: &Encoder,
) -> Result<RewardData> {
    load_reward_file_noted(path, loss, common, enc, &mut Vec::new())
}

/// [`load_reward_file`], adding the load report (rows kept, bad rows skipped
/// under `--skip-bad-rows`, unlabelled rows) and encoding skips to `notes`.
pub fn load_reward_file_noted(
    path: &Path,
    loss: RewardLoss,
    common: &CommonArgs,
    enc: &Encoder,
    notes: &mut Vec<String>,
) -> Result<RewardData> {
    let opts = common.load_options()?;
    let skip = common.format.skip_bad_rows;
    let (data, skipped, reasons) = match loss {
        RewardLoss::Bt => {
            let ds = load_preferences(path, &opts)?;
            notes.push(ds.report.to_string());
            let (v, n, r) = encode_all(&ds.rows, skip, |r| enc.reward_pair(r))?;
            (
                RewardData::Pairs(drop_ties(v, &path.display().to_string(), notes)),
                n,
                r,
            )
        }
        RewardLoss::Classifier => {
            let ds = load_classifier(path, &opts)?;
            notes.push(ds.report.to_string());
            let (v, n, r) = encode_all(&ds.rows, skip, |r| enc.classifier(r))?;
            (RewardData::Labels(v), n, r)
        }
    };
    notes.extend(enc.truncation_note(data.len() + skipped, &path.display().to_string()));
    if skipped > 0 {
        notes.push(format!(
            "{skipped} rows skipped while encoding: {reasons:?}"
        ));
    }
    ensure!(!data.is_empty(), "{}: no usable examples", path.display());
    Ok(data)
}

/// Labelled texts for an encoder classifier: labels below its `num_labels`,
/// each text tokenized by its own tokenizer as `tokenizer(text,
/// truncation=True, max_length=--max-len)` (default: its limit).
pub fn load_encoder_labels(
    path: &Path,
    common: &CommonArgs,
    model: &CausalLm,
    notes: &mut Vec<String>,
) -> Result<RewardData> {
    let mut opts = common.load_options()?;
    opts.num_labels = model.cfg.num_labels;
    let ds = load_classifier(path, &opts)?;
    notes.push(ds.report.to_string());
    let texts: Vec<&str> = ds.rows.iter().map(|r| r.record.text.as_str()).collect();
    let max_length = common.max_len.map(|m| m.min(model.max_length()));
    let ids = model.encode_truncated(&texts, max_length)?;
    let examples: Vec<ClassifierExample> = ds
        .rows
        .iter()
        .zip(ids)
        .map(|(r, ids)| ClassifierExample {
            ids,
            label: r.record.label,
            origin: r.origin.clone(),
        })
        .collect();
    ensure!(
        !examples.is_empty(),
        "{}: no usable examples",
        path.display()
    );
    Ok(RewardData::Labels(examples))
}
