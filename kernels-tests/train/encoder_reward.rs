//! An encoder classifier as the reward (`--reward-model DIR --reward-label
//! NAME|INDEX [--reward-kind prob]`): the decoded `prompt + response` is
//! re-tokenized with the classifier's own tokenizer and truncated as
//! transformers truncates, the same scorer for PPO, best-of-n and eval;
//! scores against transformers' outputs from make_encoder_fixtures.py.

use super::cli_rlhf::{engine, ppo};
use super::model_dir;
use crate::common::gpu;
use engine::models::classifier::{scores, ProblemType};
use engine::train::scoring::{OwnedSample, RewardKind, RewardLabelArgs, RewardModelScorer, Scorer};
use serde_json::Value;
use std::path::Path;

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

/// PPO, best-of-n and eval on gpt2-tiny with a DistilBERT classifier's
/// POSITIVE logit (probability for eval) as the reward.
#[test]
fn ppo_best_of_n_and_eval_take_an_encoder_classifier() {
    let out = super::scratch("cli-ppo-encoder");
    let (m, rm) = (model_dir("gpt2-tiny"), model_dir("distilbert-tiny-cls"));
    ppo(&out, &["--reward-model", &rm, "--reward-label", "POSITIVE"]);
    let d = super::root()
        .join("kernels-tests/fixtures/dpo/prompts.jsonl")
        .display()
        .to_string();
    let common = ["--model", &m, "--data", &d, "--reward-model", &rm];
    let common = [
        &common[..],
        &["--template", "plain", "--max-new-tokens", "4"],
    ]
    .concat();
    let best = out.join("best.jsonl").display().to_string();
    let mut args = vec![
        "best-of-n",
        "--reward-label",
        "1",
        "--n",
        "2",
        "--out",
        &best,
    ];
    args.extend(&common);
    assert!(engine(&args).contains("mean best score"));

    let mut args = vec![
        "eval",
        "--reward-label",
        "POSITIVE",
        "--reward-kind",
        "prob",
    ];
    args.extend(&common);
    args.push("--json");
    let v: Value = serde_json::from_str(&engine(&args)).unwrap();
    let r = v["reward_mean"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&r), "{v}");
}

/// Separable labelled texts: positive words → 1, negative words → 0.
fn sentiment_file(dir: &Path) -> String {
    let (pos, neg) = (["good", "great", "wonderful"], ["bad", "terrible", "awful"]);
    let mut rows = Vec::new();
    for (i, subject) in ["movie", "film", "story", "engine"].iter().enumerate() {
        for k in 0..3 {
            let p = format!("The {subject} was {} and {}.", pos[k], pos[(k + i) % 3]);
            let n = format!("The {subject} was {} and {}.", neg[k], neg[(k + i) % 3]);
            rows.push(serde_json::json!({"text": p, "label": 1}).to_string());
            rows.push(serde_json::json!({"text": n, "label": 0}).to_string());
        }
    }
    let path = dir.join("sentiment.jsonl");
    std::fs::write(&path, rows.join("\n") + "\n").unwrap();
    path.display().to_string()
}

/// `train-reward` on an encoder classifier: cross-entropy on `label` with
/// its own head and labels (full fine-tuning lifts eval accuracy to 1 on
/// separable data; the saved directory reloads with the same logits), and
/// LoRA on query/value with the classifier head trainable.
#[test]
fn train_reward_fine_tunes_encoder_classifiers() {
    use engine::train::reward::{train_reward, RewardArgs};
    let gpu = gpu();
    let out = super::scratch("rm-encoder");
    let data = sentiment_file(&out);
    let flags = |model: &str, run: &str, extra: &[&str]| -> RewardArgs {
        let (m, o) = (model_dir(model), out.join(run).display().to_string());
        let mut f = vec![
            "--model",
            &m,
            "--data",
            &data,
            "--out",
            &o,
            "--progress",
            "silent",
        ];
        f.extend(extra);
        super::parse(&f)
    };
    let full = [
        "--lr",
        "3e-3",
        "--batch-size",
        "8",
        "--steps",
        "12",
        "--eval-fraction",
        "0.25",
    ];
    let (model, s) = train_reward(&gpu, flags("distilbert-tiny-cls", "full", &full)).unwrap();
    let rows = super::metric_rows(&out.join("full"));
    let first = rows[0]["loss"].as_f64().unwrap();
    let last = rows.last().unwrap();
    assert!(last["loss"].as_f64().unwrap() < first, "{rows:?}");
    assert_eq!(last["eval_accuracy"].as_f64().unwrap(), 1.0, "{last:?}");
    let saved = s.saved.model.unwrap();
    let back = engine::models::CausalLm::load(&gpu, &saved).unwrap();
    assert_eq!(back.cfg.id2label(), ["NEGATIVE", "POSITIVE"]);
    let text = ["The film was good and great."];
    let (a, b) = (
        model.classify_texts(&text, None).unwrap(),
        back.classify_texts(&text, None).unwrap(),
    );
    for (x, y) in a[0].iter().zip(&b[0]) {
        assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }

    let lora = ["--batch-size", "4", "--steps", "2", "--lora-r", "2"];
    let (model, _) = train_reward(&gpu, flags("roberta-tiny-cls", "lora", &lora)).unwrap();
    let trains = |part: &str| {
        model
            .params
            .iter()
            .any(|p| p.trainable && p.name.contains(part))
    };
    assert!(trains("attention.self.query.lora_A") && trains("attention.self.value.lora_B"));
    assert!(!trains("key.lora") && !trains("word_embeddings"));
    assert!(trains("classifier.out_proj.weight"));
}
