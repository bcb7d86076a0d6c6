//! Reward models: Bradley-Terry training lifts held-out pairwise accuracy
//! from chance; the saved directory is an HF sequence-classification model
//! that reloads with identical scores; the classifier loss and LoRA paths.

use super::{fixture, metric, metric_rows, model_dir, parse, scratch};
use engine::data::{preference_batch, Encoder, Truncation};
use engine::models::lm::Head;
use engine::models::CausalLm;
use engine::tape::Tape;
use engine::train::reward::data::{detect_loss, load_reward_file, RewardData, RewardLoss};
use engine::train::reward::model::{reward_eval, reward_model_from, score_tokens};
use engine::train::reward::{train_reward, RewardArgs};
use std::path::Path;

fn args(out: &Path, data: &str, extra: &[&str]) -> RewardArgs {
    let (m, d, o) = (
        model_dir("gpt2-tiny"),
        fixture(data),
        out.display().to_string(),
    );
    let mut flags = vec![
        "--model",
        &m,
        "--data",
        &d,
        "--out",
        &o,
        "--progress",
        "silent",
        "--lr",
        "1e-2",
        "--batch-size",
        "4",
        "--template",
        "plain",
    ];
    flags.extend_from_slice(extra);
    parse(&flags)
}

/// Scores [B] of the first `n` eval pairs' chosen and rejected rows.
fn scores(model: &CausalLm, data: &RewardData, n: usize) -> Vec<f32> {
    let RewardData::Pairs(v) = data else {
        panic!("pairs")
    };
    let b = preference_batch(&v[..n], 1).unwrap();
    let tape = Tape::new(model.gpu());
    let _g = tape.no_grad();
    let vars = model.vars(&tape);
    score_tokens(model, &tape, &vars, &b.batch.tokens)
        .unwrap()
        .tensor()
        .to_vec()
        .unwrap()
}

#[test]
fn bt_training_beats_chance_and_reloads() {
    let gpu = crate::common::gpu();
    let out = scratch("rm-bt");
    let a = args(
        &out,
        "prefs_train.jsonl",
        &["--steps", "12", "--schedule", "constant"],
    );
    assert_eq!(
        detect_loss(a.common.data_file().unwrap(), &Default::default()).unwrap(),
        RewardLoss::Bt
    );

    // Held-out accuracy of the untrained head (same seed, so the same init).
    let lm = CausalLm::load(&gpu, Path::new(&model_dir("gpt2-tiny"))).unwrap();
    let init = reward_model_from(lm, a.common.seed).unwrap();
    let template = a.common.chat_template().unwrap();
    let tok = init.tokenizer.as_ref().unwrap();
    let enc = Encoder::new(tok, &template, Truncation::truncate(64));
    let eval = load_reward_file(
        Path::new(&fixture("prefs_eval.jsonl")),
        RewardLoss::Bt,
        &a.common,
        &enc,
    )
    .unwrap();
    let (loss0, acc0) = reward_eval(&init, &eval, 4, 1).unwrap();
    assert!(
        acc0 <= 0.5,
        "the fixture should start at chance, got {acc0}"
    );

    let mut a = a;
    a.common.eval_data = Some(fixture("prefs_eval.jsonl").into());
    let (model, summary) = train_reward(&gpu, a).unwrap();
    let rows = metric_rows(&out);
    let last = rows.last().unwrap();
    assert!(metric(last, "eval_accuracy") >= 0.99, "{last:?}");
    assert!(
        metric(last, "eval_loss") < 0.5 * loss0,
        "{last:?} vs initial {loss0}"
    );
    assert!(metric(last, "margin") > 0.0);
    assert_eq!(
        reward_eval(&model, &eval, 4, 1).unwrap().1,
        metric(last, "eval_accuracy")
    );
    assert!(acc0 < metric(last, "eval_accuracy"));

    // The saved directory: an HF sequence-classification model.
    let dir = summary.saved.model.unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "GPT2ForSequenceClassification");
    assert_eq!(cfg["num_labels"], 1);
    assert_eq!(cfg["id2label"]["0"], "LABEL_0");
    assert!(cfg["pad_token_id"].is_u64());
    let back = CausalLm::load(&gpu, &dir).unwrap();
    assert_eq!(back.head, Head::Reward);
    assert_eq!(
        scores(&back, &eval, 6),
        scores(&model, &eval, 6),
        "scores changed on reload"
    );
}

#[test]
fn classifier_loss_and_lora_reward_model() {
    let gpu = crate::common::gpu();
    let out = scratch("rm-cls");
    let a = args(
        &out,
        "classifier.jsonl",
        &["--steps", "2", "--eval-fraction", "0.25"],
    );
    let (_, s) = train_reward(&gpu, a).unwrap();
    let last = metric_rows(&out).pop().unwrap();
    assert!(last.contains_key("eval_accuracy") && last.contains_key("accuracy"));
    let cfg = std::fs::read_to_string(s.saved.model.unwrap().join("config.json")).unwrap();
    assert!(cfg.contains("multi_label_classification"));

    // LoRA: adapters and the new head train; the merged model is saved too.
    let out = scratch("rm-lora");
    let extra = [
        "--steps",
        "3",
        "--lora-r",
        "2",
        "--eval-data",
        &fixture("prefs_eval.jsonl"),
    ];
    let (model, s) = train_reward(&gpu, args(&out, "prefs_train.jsonl", &extra)).unwrap();
    let trainable: Vec<&str> = model
        .params
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.name.as_str())
        .collect();
    assert!(
        trainable.contains(&"score.weight") && trainable.len() == 5,
        "{trainable:?}"
    );
    assert!(s.saved.adapter.unwrap().join("heads.safetensors").is_file());
    let merged = CausalLm::load(&gpu, &s.saved.model.unwrap()).unwrap();
    let template = engine::data::ChatTemplate::plain();
    let tok = merged.tokenizer.as_ref().unwrap();
    let enc = Encoder::new(tok, &template, Truncation::truncate(64));
    let common = &args(&out, "prefs_train.jsonl", &[]).common;
    let eval = load_reward_file(
        Path::new(&fixture("prefs_eval.jsonl")),
        RewardLoss::Bt,
        common,
        &enc,
    )
    .unwrap();
    for (x, y) in scores(&merged, &eval, 6)
        .iter()
        .zip(scores(&model, &eval, 6))
    {
        assert!((x - y).abs() < 1e-4, "merged {x} vs adapters {y}");
    }
}

#[test]
fn neox_reward_head_round_trips() {
    let gpu = crate::common::gpu();
    let lm = CausalLm::load(&gpu, Path::new(&model_dir("neox-parallel"))).unwrap();
    let rm = lm.into_reward_model(1, 5).unwrap();
    assert!(!rm.params.contains("embed_out.weight"));
    let dir = scratch("rm-neox");
    rm.save(&dir, engine::models::checkpoint::SaveDtype::F32)
        .unwrap();
    let back = CausalLm::load(&gpu, &dir).unwrap();
    assert_eq!(back.head, Head::Reward);
    assert_eq!(
        back.cfg.raw["architectures"][0],
        "GPTNeoXForSequenceClassification"
    );
    assert_eq!(
        back.params.get("score.weight").unwrap().to_vec().unwrap(),
        rm.params.get("score.weight").unwrap().to_vec().unwrap()
    );
}

#[test]
fn lora_reward_resume_is_exact() {
    let gpu = crate::common::gpu();
    let (a, b) = (scratch("rm-resume-a"), scratch("rm-resume-b"));
    let flags = [
        "--steps",
        "4",
        "--lora-r",
        "2",
        "--grad-accum",
        "2",
        "--lora-dropout",
        "0.2",
    ];
    train_reward(&gpu, args(&a, "prefs_train.jsonl", &flags)).unwrap();
    let mut stop = flags.to_vec();
    stop.extend_from_slice(&[
        "--stop-after",
        "2",
        "--keep-checkpoints",
        "--save-every",
        "1",
    ]);
    train_reward(&gpu, args(&b, "prefs_train.jsonl", &stop)).unwrap();
    assert!(b.join("checkpoint-1/heads.safetensors").is_file());
    let ckpt = b.display().to_string();
    train_reward(&gpu, parse(&["--resume", &ckpt])).unwrap();
    assert_eq!(metric_rows(&a), metric_rows(&b));
    for f in [
        "adapter/adapter_model.safetensors",
        "adapter/heads.safetensors",
        "model/model.safetensors",
    ] {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
}

/// `--skip-bad-rows` on reward data is counted and reported (the load
/// report reaches the notes the trainer prints), not silent.
#[test]
fn skipped_reward_rows_are_reported() {
    use engine::train::reward::data::load_reward_file_noted;
    let out = scratch("rm-skip");
    let data = out.join("pairs.jsonl");
    std::fs::write(
        &data,
        concat!(
            r#"{"chosen": "\n\nHuman: hi\n\nAssistant: hello there", "rejected": "\n\nHuman: hi\n\nAssistant: go away"}"#,
            "\n",
            r#"{"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: "}"#,
            "\n"
        ),
    )
    .unwrap();
    let mut a = args(&out, "prefs_train.jsonl", &["--skip-bad-rows"]);
    a.common.format.template = Some("hh".into());
    let tok =
        tokenizers::Tokenizer::from_file(Path::new(&model_dir("gpt2-tiny")).join("tokenizer.json"))
            .unwrap();
    let template = a.common.chat_template().unwrap();
    let enc = Encoder::new(&tok, &template, Truncation::truncate(64));
    let mut notes = Vec::new();
    let d = load_reward_file_noted(&data, RewardLoss::Bt, &a.common, &enc, &mut notes).unwrap();
    assert_eq!(d.len(), 1);
    let all = notes.join("\n");
    assert!(all.contains("1 rows, 1 bad rows skipped"), "{all}");
    assert!(all.contains("pairs.jsonl:2"), "{all}");
    assert!(all.contains("empty rejected response"), "{all}");
}
