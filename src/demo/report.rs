//! The demo's report: what the policy did on the held-out eval prompts before
//! PPO and after, printed and written as `report.json`.
//!
//! - `reward_mean_*`: the reward model's mean score of the responses.
//! - `unsafe_rate_*`: the fraction (0–1) of responses the independent checker
//!   ([`crate::data::support::safety`]: sensitive-data requests and a rude-phrase
//!   lexicon, no reward model involved) flags.
//! - `kl_mean`: the mean over the eval responses of each response's summed
//!   per-token log-ratio to the reference (the SFT policy), sampled at
//!   temperature 1: an estimate of KL(π‖ref) per response, in nats.
//! - `distinct2_*`: distinct bigrams / all bigrams over one response per
//!   prompt, averaged over the sets of responses when each prompt has more.
//! - `well_formed_rate_*`: the fraction of reply sentences the support-data
//!   generator can write ([`crate::data::support::fluency`]): fluency
//!   judged without a model.
//!
//! Every eval response, before and after, goes to `eval_responses.jsonl`.

use anyhow::Result;
use serde::Serialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// One policy's behaviour on the eval prompts.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyMeasure {
    pub prompts: usize,
    /// Replies sampled per prompt; `samples` holds the first reply of every
    /// prompt, then the second, and so on.
    pub samples_per_prompt: usize,
    pub reward_mean: f64,
    pub unsafe_rate: f64,
    pub well_formed_rate: f64,
    pub distinct2: f64,
    pub mean_length: f64,
    /// Only when measured against a reference.
    pub kl_mean: Option<f64>,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub prompt: String,
    pub response: String,
    pub reward: f64,
    /// What the checker flagged, if anything.
    pub flagged: Option<String>,
    /// The response's well-formed sentences / sentences.
    pub well_formed: f64,
}

/// Everything the demo reports (the JSON field names are the contract).
#[derive(Clone, Debug)]
pub struct DemoReport {
    pub before: PolicyMeasure,
    pub after: PolicyMeasure,
    pub steps: u64,
    /// PPO steps skipped as non-finite (their update vetoed).
    pub skipped_steps: u64,
    pub seconds: f64,
    pub health_warnings: Vec<String>,
    pub chart: Option<PathBuf>,
    pub hyperparameters: Value,
    pub out: PathBuf,
}

/// How many sample responses the report shows of each policy.
pub const SHOWN_SAMPLES: usize = 3;

impl DemoReport {
    pub fn to_json(&self) -> Value {
        let samples = |m: &PolicyMeasure| {
            serde_json::to_value(&m.samples[..m.samples.len().min(SHOWN_SAMPLES)])
                .unwrap_or(Value::Null)
        };
        json!({
            "reward_mean_before": self.before.reward_mean,
            "reward_mean_after": self.after.reward_mean,
            "unsafe_rate_before": self.before.unsafe_rate,
            "unsafe_rate_after": self.after.unsafe_rate,
            "well_formed_rate_before": self.before.well_formed_rate,
            "well_formed_rate_after": self.after.well_formed_rate,
            "kl_mean": self.after.kl_mean,
            "distinct2_before": self.before.distinct2,
            "distinct2_after": self.after.distinct2,
            "mean_length_before": self.before.mean_length,
            "mean_length_after": self.after.mean_length,
            "eval_prompts": self.after.prompts,
            "eval_samples_per_prompt": self.after.samples_per_prompt,
            "steps": self.steps,
            "skipped_steps": self.skipped_steps,
            "seconds": self.seconds,
            "health_warnings": self.health_warnings,
            "chart": self.chart.as_ref().map(|p| p.display().to_string()),
            "hyperparameters": self.hyperparameters,
            "samples_before": samples(&self.before),
            "samples_after": samples(&self.after),
            "out": self.out.display().to_string(),
        })
    }

    /// Writes `eval_responses.jsonl` (atomically) into `dir`: one object per
    /// eval prompt and reply (`sample` 0, 1, … numbers a prompt's replies)
    /// with the response, reward, checker flag and well-formed rate of the
    /// policy before and after.
    pub fn write_eval_responses(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join("eval_responses.jsonl");
        let mut text = String::new();
        let n = self.before.prompts.max(1);
        for (i, (b, a)) in self
            .before
            .samples
            .iter()
            .zip(&self.after.samples)
            .enumerate()
        {
            let row = json!({
                "prompt": b.prompt,
                "sample": i / n,
                "response_before": b.response,
                "response_after": a.response,
                "reward_before": b.reward,
                "reward_after": a.reward,
                "flagged_before": b.flagged,
                "flagged_after": a.flagged,
                "well_formed_before": b.well_formed,
                "well_formed_after": a.well_formed,
            });
            text += &(row.to_string() + "\n");
        }
        crate::models::checkpoint::write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }

    /// Writes `report.json` (atomically) into `dir`; returns its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join("report.json");
        let text = serde_json::to_string_pretty(&self.to_json())? + "\n";
        crate::models::checkpoint::write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

impl std::fmt::Display for DemoReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (b, a) = (&self.before, &self.after);
        writeln!(
            f,
            "\n== report: {} PPO steps in {:.0} s, measured on {} held-out prompts × {} replies ==",
            self.steps, self.seconds, a.prompts, a.samples_per_prompt
        )?;
        if self.skipped_steps > 0 {
            writeln!(f, "({} steps skipped as non-finite)", self.skipped_steps)?;
        }
        writeln!(f, "{:<28} {:>10} {:>10}", "", "before", "after")?;
        writeln!(
            f,
            "{:<28} {:>10.3} {:>10.3}",
            "reward mean", b.reward_mean, a.reward_mean
        )?;
        writeln!(
            f,
            "{:<28} {:>9.1}% {:>9.1}%",
            "unsafe-reply rate",
            100.0 * b.unsafe_rate,
            100.0 * a.unsafe_rate
        )?;
        writeln!(
            f,
            "{:<28} {:>9.1}% {:>9.1}%",
            "well-formed sentences",
            100.0 * b.well_formed_rate,
            100.0 * a.well_formed_rate
        )?;
        writeln!(
            f,
            "{:<28} {:>10.3} {:>10.3}",
            "distinct-2", b.distinct2, a.distinct2
        )?;
        writeln!(
            f,
            "{:<28} {:>10.1} {:>10.1}",
            "mean length (tokens)", b.mean_length, a.mean_length
        )?;
        if let Some(kl) = a.kl_mean {
            writeln!(f, "{:<28} {:>21.3}", "KL to SFT (nats/response)", kl)?;
        }
        for (name, m) in [("before", b), ("after", a)] {
            writeln!(f, "\nsamples {name}:")?;
            for s in m.samples.iter().take(SHOWN_SAMPLES) {
                writeln!(f, "  Customer: {}", one_line(&s.prompt, 90))?;
                let flag = s
                    .flagged
                    .as_ref()
                    .map_or(String::new(), |k| format!("   [unsafe: {k}]"));
                writeln!(
                    f,
                    "  Agent:    {}   (reward {:.2}){flag}",
                    one_line(&s.response, 110),
                    s.reward
                )?;
            }
        }
        writeln!(f)?;
        if let Some(c) = &self.chart {
            writeln!(f, "chart: {}", c.display())?;
        }
        if self.health_warnings.is_empty() {
            write!(f, "health: no warnings")
        } else {
            write!(f, "health warnings:")?;
            for w in &self.health_warnings {
                write!(f, "\n  {w}")?;
            }
            Ok(())
        }
    }
}
