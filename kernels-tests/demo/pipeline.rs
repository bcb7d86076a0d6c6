//! The support-tiny pipeline end to end on a smoke budget (a few steps), then
//! the no-model `train-ppo` demo on its output, and the embedded defaults
//! through the binary: the report's fields and its last line.

use clap::{Args, FromArgMatches};
use engine::demo::pipeline::{run_pipeline, PipelineArgs};
use engine::demo::ppo_default::run_demo;
use engine::train::ppo::PpoArgs;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

use crate::common::gpu;
use crate::common::Scratch;

fn ppo_args(argv: &[&str]) -> (PpoArgs, clap::ArgMatches) {
    let cmd = PpoArgs::augment_args(clap::Command::new("engine"));
    let m = cmd.try_get_matches_from(argv).unwrap();
    (PpoArgs::from_arg_matches(&m).unwrap(), m)
}

/// The report's contract: every field, rates in 0..=1, finite numbers; its
/// paths are as the run printed them (relative to the run's directory `cwd`).
fn check_report(path: &Path, cwd: &Path, steps: u64) -> Value {
    let r: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for k in [
        "reward_mean_before",
        "reward_mean_after",
        "kl_mean",
        "distinct2_before",
        "distinct2_after",
        "seconds",
    ] {
        assert!(r[k].as_f64().is_some_and(f64::is_finite), "{k}: {}", r[k]);
    }
    for k in ["unsafe_rate_before", "unsafe_rate_after"] {
        let v = r[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    assert_eq!(r["steps"].as_u64(), Some(steps));
    assert!(r["health_warnings"].is_array());
    assert!(r["hyperparameters"].is_object());
    let prompts = r["eval_prompts"].as_u64().unwrap();
    assert!(prompts >= 64);
    // One eval_responses.jsonl row per prompt and reply, replies numbered.
    let per_prompt = r["eval_samples_per_prompt"].as_u64().unwrap();
    assert!(per_prompt >= 1);
    let rows = std::fs::read_to_string(path.with_file_name("eval_responses.jsonl")).unwrap();
    let rows: Vec<Value> = rows
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len() as u64, prompts * per_prompt);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["sample"].as_u64(), Some(i as u64 / prompts), "row {i}");
        assert!(row["response_after"].is_string(), "row {i}");
    }
    let chart = r["chart"].as_str().expect("chart path");
    assert!(cwd.join(chart).is_file(), "{chart}");
    r
}

#[test]
fn pipeline_smoke_then_demo_on_its_output() {
    let gpu = gpu();
    let dir = Scratch::new("pipeline");
    let args = PipelineArgs {
        preset: "support-tiny".into(),
        out: Some(dir.join("defaults")),
        work: Some(dir.join("work")),
        seed: 3,
        sft_steps: Some(2),
        reward_steps: Some(2),
    };
    let out = run_pipeline(&gpu, &args).unwrap();
    for f in [
        "policy/config.json",
        "policy/model.safetensors",
        "policy/tokenizer.json",
        "policy/engine_template.json",
        "reward/model.safetensors",
        "data/prompts.jsonl",
        "data/eval.jsonl",
        "demo.toml",
        "README.md",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let run = dir.join("run");
    let (a, m) = ppo_args(&[
        "engine",
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--mini-batch-size",
        "4",
        "--ppo-epochs",
        "1",
        "--max-new-tokens",
        "8",
        "--progress",
        "silent",
        "--out",
        run.to_str().unwrap(),
    ]);
    let report = run_demo(&gpu, a, &m, &out).unwrap();
    assert_eq!(report, run.join("report.json"));
    let r = check_report(&report, Path::new("."), 2);
    assert_eq!(
        r["hyperparameters"]["lora-r"].as_u64(),
        Some(16),
        "demo.toml applies"
    );
    assert_eq!(
        r["hyperparameters"]["batch-size"].as_u64(),
        Some(4),
        "flags win"
    );
}

#[test]
fn pipeline_refuses_an_unknown_preset() {
    let args = PipelineArgs {
        preset: "huge".into(),
        out: None,
        work: None,
        seed: 1,
        sft_steps: None,
        reward_steps: None,
    };
    let err = run_pipeline(&gpu(), &args).unwrap_err().to_string();
    assert!(err.contains("unknown preset `huge`"), "{err}");
}

/// What CI's full default run on GL checks too: the embedded defaults,
/// through the binary, from another working directory (here on a few steps
/// with an NF4 base).
#[test]
fn binary_runs_the_embedded_demo_and_ends_with_the_report_path() {
    assert!(
        engine::demo::embedded::available(),
        "the binary has no embedded defaults: run `{}`",
        engine::demo::embedded::MAKE_DEFAULTS
    );
    let dir = Scratch::new("demo-cli");
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .current_dir(&dir)
        .args([
            "train-ppo",
            "--steps",
            "1",
            "--batch-size",
            "4",
            "--mini-batch-size",
            "4",
            "--ppo-epochs",
            "1",
            "--max-new-tokens",
            "8",
            "--quant",
            "nf4",
            "--progress",
            "plain",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    let path = last
        .strip_prefix("report: ")
        .unwrap_or_else(|| panic!("last line: {last}"));
    let path = dir.join(path);
    assert!(path.starts_with(dir.join("runs")), "{}", path.display());
    let r = check_report(&path, &dir, 1);
    assert_eq!(r["hyperparameters"]["quant"].as_str(), Some("nf4"));
}

/// The committed `models/support-tiny/demo.toml` (embedded as the demo's
/// defaults) is the run file the pipeline writes, so remaking the defaults
/// never changes the demo's hyper-parameters.
#[test]
fn committed_demo_toml_is_the_pipelines_demo_config() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/support-tiny/demo.toml");
    let committed = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        committed,
        engine::demo::ppo_default::DEMO_CONFIG,
        "{} differs from DEMO_CONFIG (src/demo/ppo_default.rs)",
        path.display()
    );
}

/// A run file that names a model is a real run, not the demo, even without
/// `--model` on the command line: the missing model is the error.
#[test]
fn a_config_naming_a_model_does_not_start_the_demo() {
    let dir = Scratch::new("demo-config-model");
    let missing = dir.join("no-such-model");
    let config = dir.join("run.toml");
    let toml = format!(
        "model = {:?}\nreward-keyword = [\"thanks\"]\n",
        missing.display().to_string()
    );
    std::fs::write(&config, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .current_dir(&dir)
        .args([
            "train-ppo",
            "--config",
            config.to_str().unwrap(),
            "--steps",
            "1",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("support-tiny demo"), "{stdout}");
    assert!(stderr.contains("no-such-model"), "{stderr}");
}
