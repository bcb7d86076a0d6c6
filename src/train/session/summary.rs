//! What a run reports when it ends ([`RunSummary`], written as
//! `summary.json` by the session): done, stopped by `--stop-after`, or
//! stopped by the divergence guard, with the steps skipped as non-finite.

use serde::Serialize;
use serde_json::{Map, Value};
use std::path::PathBuf;

use crate::train::run::SavedModel;

/// Metric names under `time/` are timings: they differ between runs and
/// are left out of resume comparisons.
pub fn is_timing_metric(key: &str) -> bool {
    key.starts_with("time/")
}

/// What a finished (or stopped) run reports.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub trainer: String,
    pub out: PathBuf,
    pub steps: u64,
    pub total_steps: u64,
    /// False when stopped early (`--stop-after`, or diverged).
    pub finished: bool,
    /// Trainer steps skipped as non-finite over the whole run (their
    /// update vetoed; see `train::divergence`).
    pub skipped_steps: u64,
    /// Optimizer updates vetoed as non-finite over the whole run (PPO makes
    /// several per step; the other trainers one).
    pub skipped_updates: u64,
    /// Why the divergence guard stopped the run (the error it exited with).
    pub diverged: Option<String>,
    pub checkpoint: Option<PathBuf>,
    pub saved: SavedModel,
    pub chart: Option<PathBuf>,
    /// The last logged value of every metric.
    pub last: Map<String, Value>,
    pub seconds: f64,
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match (self.finished, &self.diverged) {
            (true, _) => "done",
            (false, None) => "stopped",
            (false, Some(_)) => "diverged",
        };
        write!(
            f,
            "{} {state}: step {}/{}",
            self.trainer, self.steps, self.total_steps
        )?;
        for (k, v) in &self.last {
            if let (false, Some(x)) = (is_timing_metric(k) || k == "step", v.as_f64()) {
                write!(f, "  {k} {}", crate::train::progress::fmt_value(x))?;
            }
        }
        if self.skipped_steps > 0 {
            write!(f, "  ({} non-finite steps skipped)", self.skipped_steps)?;
        }
        write!(f, "  [{:.1}s]", self.seconds)
    }
}
