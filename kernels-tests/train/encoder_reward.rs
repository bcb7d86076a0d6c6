//! An encoder classifier as the reward (`--reward-model DIR --reward-label
//! NAME|INDEX [--reward-kind prob]`): the decoded `prompt + response` is
//! re-tokenized with the classifier's own tokenizer and truncated as
//! transformers truncates, the same scorer for PPO, best-of-n and eval;
//! scores against transformers' outputs from make_encoder_fixtures.py.

use super::model_dir;
use crate::common::gpu;
use engine::models::classifier::{scores, ProblemType};
use engine::train::scoring::{OwnedSample, RewardKind, RewardLabelArgs, RewardModelScorer, Scorer};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn reference(name: &str) -> Value {
    let p = super::root().join(format!("kernels-tests/fixtures/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Each reference text split into a prompt (its first word) and a response.
fn samples(cases: &[&Value]) -> Vec<OwnedSample> {
    cases
        .iter()
        .map(|c| {
            let text = c["text"].as_str().unwrap();
            let cut = text.find(' ').unwrap_or(text.len());
            OwnedSample {
                prompt_ids: vec![1],
                response_ids: vec![2, 3],
                prompt: text[..cut].into(),
                response: text[cut..].into(),
                finished: true,
            }
        })
        .collect()
}

fn load(name: &str, label: Option<&str>, kind: RewardKind) -> anyhow::Result<RewardModelScorer> {
    let flags = RewardLabelArgs {
        reward_label: label.map(str::to_string),
        reward_kind: kind,
    };
    RewardModelScorer::load_with(&gpu(), Path::new(&model_dir(name)), &flags)
}

#[test]
fn classifier_rewards_are_transformers_logits_and_probabilities() {
    for (name, label, index) in [
        ("distilbert-tiny-cls", "POSITIVE", 1),
        ("roberta-tiny-cls", "0", 0),
    ] {
        let json = reference(name);
        // The classifier's default limit (model_max_length); long texts are cut.
        let cases: Vec<&Value> = json["classify"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["max_length"].is_null())
            .collect();
        let owned = samples(&cases);
        let views: Vec<_> = owned.iter().map(OwnedSample::view).collect();
        for kind in [RewardKind::Logit, RewardKind::Prob] {
            let mut rm = load(name, Some(label), kind).unwrap();
            rm.batch_size = 2;
            let got = rm.score(&views).unwrap();
            for (g, c) in got.iter().zip(&cases) {
                let logits: Vec<f32> = c["logits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect();
                let want = match kind {
                    RewardKind::Logit => logits[index],
                    RewardKind::Prob => scores(&logits, ProblemType::SingleLabel)[index],
                };
                assert!((g - want).abs() < 2e-5, "{name} {kind:?}: {g} vs {want}");
            }
        }
    }
    let e = load("distilbert-tiny-cls", None, RewardKind::Logit)
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("NEGATIVE, POSITIVE"), "{e:#}");
    let e = load("distilbert-tiny-cls", Some("happy"), RewardKind::Logit)
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("--reward-label"), "{e:#}");
}

fn engine(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// PPO, best-of-n and eval on gpt2-tiny with a DistilBERT classifier's
/// POSITIVE logit (probability for eval) as the reward.
#[test]
fn ppo_best_of_n_and_eval_take_an_encoder_classifier() {
    let out = super::scratch("cli-ppo-encoder");
    let o = out.display().to_string();
    let (m, rm) = (model_dir("gpt2-tiny"), model_dir("distilbert-tiny-cls"));
    let d = super::root()
        .join("kernels-tests/fixtures/dpo/prompts.jsonl")
        .display()
        .to_string();
    let common = ["--model", &m, "--data", &d, "--template", "plain", "--reward-model", &rm];
    let mut args = vec!["train-ppo", "--reward-label", "POSITIVE", "--steps", "1"];
    args.extend(common);
    args.extend(["--batch-size", "2", "--max-new-tokens", "4", "--ppo-epochs", "1"]);
    args.extend(["--out", &o, "--progress", "silent"]);
    engine(&args);
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let row: Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert!(row["env/reward_mean"].as_f64().is_some(), "{row}");

    let best = out.join("best.jsonl").display().to_string();
    let mut args = vec!["best-of-n", "--reward-label", "1", "--n", "2", "--out", &best];
    args.extend(common);
    args.extend(["--max-new-tokens", "4"]);
    assert!(engine(&args).contains("mean best score"));

    let mut args = vec!["eval", "--reward-label", "POSITIVE", "--reward-kind", "prob"];
    args.extend(common);
    args.extend(["--max-new-tokens", "4", "--json"]);
    let v: Value = serde_json::from_str(&engine(&args)).unwrap();
    let r = v["reward_mean"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&r), "{v}");
}
