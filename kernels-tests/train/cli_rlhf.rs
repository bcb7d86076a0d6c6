//! The RLHF commands end to end through the binary: `train-ppo` (keyword
//! reward, and a reward model with LoRA), `train-dpo` (dpo, kto_pair),
//! `best-of-n` and `eval`, a couple of steps each on gpt2-tiny; and a PPO
//! run stopped and resumed through the binary.

use super::{model_dir, root, scratch};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn data(rel: &str) -> String {
    root()
        .join("kernels-tests/fixtures")
        .join(rel)
        .display()
        .to_string()
}

/// Runs `engine <args>`, asserting exit 0; returns stdout.
pub(super) fn engine(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .output()
        .expect("running engine");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "engine {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn rows(path: &Path) -> Vec<serde_json::Map<String, Value>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Two PPO steps on gpt2-tiny with `reward`'s flags, checking the metrics.
pub(super) fn ppo(out: &Path, reward: &[&str]) {
    let o = out.display().to_string();
    let (m, d) = (model_dir("gpt2-tiny"), data("dpo/prompts.jsonl"));
    let mut args = vec![
        "train-ppo",
        "--model",
        &m,
        "--data",
        &d,
        "--template",
        "plain",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--max-new-tokens",
        "4",
        "--ppo-epochs",
        "1",
        "--out",
        &o,
        "--progress",
        "silent",
    ];
    args.extend_from_slice(reward);
    let stdout = engine(&args);
    assert!(stdout.contains("ppo: 2 steps done"), "{stdout}");
    let r = rows(&out.join("metrics.jsonl"));
    assert_eq!(r.len(), 2);
    for row in &r {
        for k in ["objective/kl", "env/reward_mean", "ppo/loss/total"] {
            assert!(
                row.get(k).and_then(Value::as_f64).is_some(),
                "no {k} in {row:?}"
            );
        }
    }
    assert!(out.join("chart.svg").is_file());
}

#[test]
fn train_ppo_keyword_and_reward_model() {
    let out = scratch("cli-ppo-keyword");
    ppo(&out, &["--reward-keyword", "the,bread"]);
    assert!(out.join("model/config.json").is_file());
    let out = scratch("cli-ppo-rm");
    let rm = model_dir("gpt2-tiny-reward");
    ppo(
        &out,
        &[
            "--reward-model",
            &rm,
            "--lora-r",
            "2",
            "--kl-estimator",
            "k3",
            "--adaptive-kl",
            "false",
        ],
    );
    assert!(out.join("adapter/adapter_config.json").is_file());
}

fn dpo(out: &Path, loss: &str, file: &str, extra: &[&str]) {
    let o = out.display().to_string();
    let (m, d) = (model_dir("gpt2-tiny"), data(file));
    let mut args = vec![
        "train-dpo",
        "--model",
        &m,
        "--data",
        &d,
        "--template",
        "plain",
        "--loss",
        loss,
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--out",
        &o,
        "--progress",
        "silent",
    ];
    args.extend_from_slice(extra);
    engine(&args);
    let r = rows(&out.join("metrics.jsonl"));
    assert!(r.len() >= 2, "{r:?}");
    assert!(r[0].contains_key("loss") && r[0].contains_key("rewards/margins"));
}

#[test]
fn train_dpo_and_kto_pair() {
    let out = scratch("cli-dpo");
    dpo(&out, "dpo", "dpo/prefs.jsonl", &[]);
    assert!(out.join("model/config.json").is_file());
    let out = scratch("cli-kto-pair");
    let ev = data("train/prefs_eval.jsonl");
    dpo(
        &out,
        "kto_pair",
        "train/prefs_train.jsonl",
        &["--lora-r", "2", "--eval-data", &ev],
    );
    assert!(out.join("adapter/adapter_config.json").is_file());
}

#[test]
fn best_of_n_and_eval() {
    let dir = scratch("cli-bon");
    let file = dir.join("best.jsonl");
    let (m, rm, d) = (
        model_dir("gpt2-tiny"),
        model_dir("gpt2-tiny-reward"),
        data("dpo/prompts.jsonl"),
    );
    let f = file.display().to_string();
    let stdout = engine(&[
        "best-of-n",
        "--model",
        &m,
        "--reward-model",
        &rm,
        "--data",
        &d,
        "--template",
        "plain",
        "--n",
        "2",
        "--max-new-tokens",
        "4",
        "--out",
        &f,
    ]);
    assert!(stdout.contains("mean best score"), "{stdout}");
    let r = rows(&file);
    assert!(!r.is_empty());
    assert!(r
        .iter()
        .all(|row| row["candidates"].as_array().unwrap().len() == 2));

    let stdout = engine(&[
        "eval",
        "--model",
        &m,
        "--data",
        &d,
        "--template",
        "plain",
        "--reward-model",
        &rm,
        "--reference-model",
        &m,
        "--max-new-tokens",
        "4",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    for k in ["reward_mean", "rouge1", "distinct_1", "mean_length", "kl"] {
        assert!(v[k].as_f64().is_some(), "no {k} in {v}");
    }
    // Same weights as the reference: KL of the sampled tokens is ~0.
    assert!(v["kl"].as_f64().unwrap().abs() < 1e-3, "{v}");
}

#[test]
fn train_ppo_stops_and_resumes_through_the_cli() {
    let out = scratch("cli-ppo-resume");
    let o = out.display().to_string();
    let (m, d) = (model_dir("gpt2-tiny"), data("dpo/prompts.jsonl"));
    let stdout = engine(&[
        "train-ppo",
        "--model",
        &m,
        "--data",
        &d,
        "--template",
        "plain",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--max-new-tokens",
        "3",
        "--ppo-epochs",
        "1",
        "--reward-keyword",
        "the",
        "--out",
        &o,
        "--progress",
        "silent",
        "--stop-after",
        "1",
    ]);
    assert!(stdout.contains("stopped after step 1 of 2"), "{stdout}");
    assert!(stdout.contains("resume with --resume"), "{stdout}");
    let ckpt = out.join("checkpoint").display().to_string();
    let stdout = engine(&["train-ppo", "--resume", &ckpt, "--progress", "silent"]);
    assert!(stdout.contains("ppo: 2 steps done"), "{stdout}");
    assert_eq!(rows(&out.join("metrics.jsonl")).len(), 2);
    assert!(out.join("model/model.safetensors").is_file());
}
