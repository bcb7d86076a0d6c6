//! Trainer framework tests (`engine::train`): run configuration, checkpoints
//! and resume (SFT, reward, PPO, DPO), SFT, reward models, chart, and the
//! run files of best-of-n and eval. Everything runs on gpt2-tiny with
//! the committed fixtures in `kernels-tests/fixtures/train`, a few steps each.
//! Other trainers' test modules are listed here too.

mod checkpoint;
mod cli_rlhf;
mod config;
mod divergence;
mod dpo;
mod encoder_reward;
mod examples;
mod export_run;
mod llama_e2e;
mod poisoned_storage;
mod ppo;
mod report_to;
mod reward;
mod reward_mix;
mod rlhf_resume;
mod sample;
mod sample_config;
mod sft;
mod trl_parity;
mod trl_parity_kto;

pub use crate::common::Scratch;
use serde_json::{Map, Value};
use std::path::Path;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> String {
    root()
        .join("kernels-tests/fixtures/train")
        .join(name)
        .display()
        .to_string()
}

pub fn model_dir(name: &str) -> String {
    root()
        .join("models/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// A fresh, empty scratch directory for one test, removed when it passes.
pub fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("train-{name}"))
}

/// `metrics.jsonl` rows without timing metrics.
pub fn metric_rows(out: &Path) -> Vec<Map<String, Value>> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut m: Map<String, Value> = serde_json::from_str(l).unwrap();
            m.retain(|k, _| !engine::train::session::is_timing_metric(k));
            m
        })
        .collect()
}

pub fn metric(row: &Map<String, Value>, key: &str) -> f64 {
    row.get(key)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no {key} in {row:?}"))
}

/// Parses training flags for `T` (program name added).
pub fn parse<T>(flags: &[&str]) -> T
where
    T: engine::train::config::run_file::RunArgs + clap::Args + clap::FromArgMatches,
{
    let mut argv = vec!["engine"];
    argv.extend_from_slice(flags);
    engine::train::config::run_file::parse_args(&argv)
        .unwrap_or_else(|e| panic!("{flags:?}: {e:#}"))
}
