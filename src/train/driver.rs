//! What the command drivers share ([`super::ppo::train_ppo`], [`super::dpo::train_dpo`],
//! and the sampling commands in [`super::sample`]): the PPO/DPO end-of-run
//! summary, metric rows and resumed trainer state for the session, the
//! prompt encoder, the no-model error and the `true`/`false` flag parser.
//!
//! `train-ppo` and `train-dpo` run through [`super::session::Session`] like
//! the SFT and reward trainers: `--save-every`, `--keep-checkpoints`,
//! `--resume DIR` (exact: same non-timing metrics and weights as an
//! uninterrupted run), `--stop-after` and `<out>/metrics.jsonl`.

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;

use super::session::{is_timing_metric, RunSummary};
use crate::data::{ChatTemplate, Encoder, Truncation};
use crate::models::lm::CausalLm;

pub(super) fn bool_arg(s: &str) -> Result<bool, String> {
    match s {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("`{s}`: expected true or false")),
    }
}

/// What a PPO or DPO run left behind: the session's [`RunSummary`] and what
/// the RLHF commands print on top of it.
#[derive(Debug)]
pub struct RlhfSummary {
    pub trainer: &'static str,
    /// Steps, outputs, checkpoint, chart and skip counts of the run.
    pub run: RunSummary,
    /// Last-step metrics shown in the summary.
    pub last: Vec<(String, f64)>,
    /// Health warnings (PPO) and data notes.
    pub notes: Vec<String>,
    /// The health warnings alone.
    pub warnings: Vec<String>,
}

impl RlhfSummary {
    /// From the session's summary, keeping the `shown` metrics of the last row.
    pub(super) fn new(
        trainer: &'static str,
        run: RunSummary,
        shown: &[&str],
        notes: Vec<String>,
    ) -> RlhfSummary {
        let last = run
            .last
            .iter()
            .filter(|(k, _)| !is_timing_metric(k) && shown.contains(&k.as_str()))
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect();
        RlhfSummary {
            trainer,
            run,
            last,
            notes,
            warnings: Vec::new(),
        }
    }

    /// Adds the health warnings (also listed among the notes).
    pub(super) fn with_warnings(mut self, warnings: Vec<String>) -> RlhfSummary {
        self.notes.extend(warnings.iter().cloned());
        self.warnings = warnings;
        self
    }

    /// `<out>/metrics.jsonl`, the run's metric rows.
    pub fn metrics(&self) -> PathBuf {
        self.run.out.join("metrics.jsonl")
    }
}

impl std::fmt::Display for RlhfSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let run = &self.run;
        if run.finished {
            writeln!(f, "{}: {} steps done", self.trainer, run.steps)?;
        } else {
            writeln!(
                f,
                "{}: stopped after step {} of {}",
                self.trainer, run.steps, run.total_steps
            )?;
        }
        for (k, v) in &self.last {
            writeln!(f, "  {k:<24} {v:.6}")?;
        }
        if run.skipped_steps + run.skipped_updates > 0 {
            writeln!(
                f,
                "  {} non-finite steps skipped ({} optimizer updates vetoed)",
                run.skipped_steps, run.skipped_updates
            )?;
        }
        if self.notes.is_empty() {
            write!(f, "no warnings")?;
        } else {
            write!(f, "notes and warnings:")?;
            for n in &self.notes {
                write!(f, "\n  {n}")?;
            }
        }
        Ok(())
    }
}

/// A metric row as the session logs it.
pub(super) fn owned_row(metrics: Vec<(&str, f64)>) -> Vec<(String, f64)> {
    metrics
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// `key` of a resumed trainer state's `extra`, or an error naming it.
pub(super) fn resumed_extra<'a>(extra: &'a Value, key: &str) -> Result<&'a Value> {
    extra
        .get(key)
        .filter(|v| !v.is_null())
        .with_context(|| format!("the checkpoint's trainer state has no `{key}` state"))
}

pub(super) fn no_model_error(cmd: &str, needs: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "no model: the no-argument demo (embedded default models) is not available yet; \
         pass --model DIR and --data FILE{needs} (e.g. `engine {cmd} --model models/fixtures/gpt2-tiny \
         --data prompts.jsonl ...`)"
    )
}

/// Prompts of a PPO/best-of-n/eval prompt file, encoded with the template;
/// prompts are cut to leave room for `max_new_tokens`.
pub(crate) fn prompt_encoder<'a>(
    model: &'a CausalLm,
    template: &'a ChatTemplate,
    max_len: usize,
    max_new_tokens: usize,
) -> Result<Encoder<'a>> {
    let tok = model
        .tokenizer
        .as_ref()
        .context("the model directory has no tokenizer.json")?;
    let room = max_len.saturating_sub(max_new_tokens).max(1);
    Ok(Encoder::new(tok, template, Truncation::truncate(room)))
}
