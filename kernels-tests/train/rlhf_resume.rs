//! `train-ppo` and `train-dpo` resume exactly: a tiny seeded run stopped
//! after step k (`--stop-after`) and continued with only `--resume` gives
//! the same non-timing metrics and bit-identical weights (the value head
//! included) and optimizer moments as an uninterrupted run. PPO: LoRA with
//! dropout, score scaling and the adaptive KL controller, and full
//! fine-tuning; DPO: full fine-tuning (precomputed reference cache) with
//! eval, and LoRA IPO.

use super::{metric_rows, model_dir, parse, root, scratch, Scratch};
use engine::train::dpo::{train_dpo, DpoArgs};
use engine::train::ppo::{train_ppo, PpoArgs};
use std::path::Path;

fn data(rel: &str) -> String {
    root()
        .join("kernels-tests/fixtures")
        .join(rel)
        .display()
        .to_string()
}

fn flags(out: &Path, data_file: &str, extra: &[&str]) -> Vec<String> {
    let mut f: Vec<String> = [
        "--model",
        &model_dir("gpt2-tiny"),
        "--data",
        data_file,
        "--template",
        "plain",
        "--out",
        &out.display().to_string(),
        "--progress",
        "silent",
        "--seed",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    f.extend(extra.iter().map(|s| s.to_string()));
    f
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn same_file(a: &Path, b: &Path, rel: &str) {
    let (x, y) = (std::fs::read(a.join(rel)), std::fs::read(b.join(rel)));
    let (x, y) = (
        x.unwrap_or_else(|e| panic!("{}: {e}", a.join(rel).display())),
        y.unwrap_or_else(|e| panic!("{}: {e}", b.join(rel).display())),
    );
    assert!(x == y, "{rel} differs after resume");
}

/// The safetensors file holds a tensor of that name.
fn has_tensor(path: &Path, name: &str) -> bool {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    String::from_utf8_lossy(&bytes[8..8 + n]).contains(&format!("\"{name}\""))
}

/// Straight run of `steps` vs stopped after `stop` and resumed.
/// Returns the stopped-and-resumed run's directory.
fn check_ppo(name: &str, extra: &[&str], weights: &[&str]) -> Scratch {
    let gpu = crate::common::gpu();
    let (a, b) = (scratch(&format!("{name}-a")), scratch(&format!("{name}-b")));
    let prompts = data("dpo/prompts.jsonl");
    let mut common = vec![
        "--steps",
        "4",
        "--batch-size",
        "3",
        "--mini-batch-size",
        "2",
        "--max-new-tokens",
        "3",
        "--ppo-epochs",
        "2",
        "--lr",
        "1e-2",
        "--reward-target-token",
        "38",
        "--init-kl-coef",
        "0.5",
        "--target-kl-value",
        "0.1",
        "--horizon",
        "10",
    ];
    common.extend_from_slice(extra);
    let (_, s) = train_ppo(&gpu, parse(&strs(&flags(&a, &prompts, &common)))).unwrap();
    assert!(s.run.finished && s.run.steps == 4, "{s}");

    let mut stop = common.clone();
    stop.extend_from_slice(&[
        "--stop-after",
        "2",
        "--save-every",
        "1",
        "--keep-checkpoints",
    ]);
    let (_, s) = train_ppo(&gpu, parse(&strs(&flags(&b, &prompts, &stop)))).unwrap();
    assert!(
        !s.run.finished
            && s.run.steps == 2
            && s.run.saved.model.is_none()
            && s.run.saved.adapter.is_none()
    );
    assert!(format!("{s}").contains("stopped after step 2 of 4"), "{s}");
    assert!(b.join("checkpoint-1/trainer_state.json").is_file());
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(b.join("checkpoint/trainer_state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["trainer"], "ppo");
    assert_eq!(state["extra"]["ppo"]["step"], 2);
    assert_eq!(state["extra"]["prompt_cursor"], 6);
    assert!(
        state["extra"]["ppo"]["kl_coef"].as_f64().unwrap() != 0.5,
        "β adapted"
    );
    assert!(state["rng"]["ppo_next_sampling_seed"].is_u64());

    let ckpt = b.join("checkpoint").display().to_string();
    let resumed: PpoArgs = parse(&["--resume", &ckpt, "--progress", "silent"]);
    let (_, s) = train_ppo(&gpu, resumed).unwrap();
    assert!(s.run.finished && s.run.steps == 4, "{s}");
    let (ra, rb) = (metric_rows(&a), metric_rows(&b));
    assert_eq!(ra.len(), 4);
    assert_eq!(ra, rb, "metrics differ after resume");
    for w in weights {
        same_file(&a, &b, w);
    }
    same_file(&a, &b, "checkpoint/optimizer.safetensors");
    b
}

#[test]
fn ppo_lora_resumes_exactly() {
    let b = check_ppo(
        "ppo-resume-lora",
        &[
            "--lora-r",
            "2",
            "--lora-dropout",
            "0.1",
            "--use-score-scaling",
            "true",
            "--use-score-norm",
            "true",
        ],
        &[
            "adapter/adapter_model.safetensors",
            "adapter/heads.safetensors",
        ],
    );
    // The value head sits beside the adapter, in checkpoints too.
    assert!(has_tensor(
        &b.join("checkpoint/heads.safetensors"),
        "v_head.summary.weight"
    ));
}

#[test]
fn ppo_full_fine_tuning_resumes_exactly() {
    let b = check_ppo("ppo-resume-full", &[], &["model/model.safetensors"]);
    assert!(has_tensor(
        &b.join("checkpoint/model/model.safetensors"),
        "v_head.summary.weight"
    ));
}

fn check_dpo(name: &str, extra: &[&str], weights: &str) {
    let gpu = crate::common::gpu();
    let (a, b) = (scratch(&format!("{name}-a")), scratch(&format!("{name}-b")));
    let prefs = data("train/prefs_train.jsonl");
    let eval = data("train/prefs_eval.jsonl");
    let mut common = vec![
        "--steps",
        "5",
        "--batch-size",
        "3",
        "--lr",
        "1e-3",
        "--warmup-steps",
        "2",
        "--schedule",
        "cosine",
        "--eval-data",
        &eval,
        "--eval-every",
        "2",
    ];
    common.extend_from_slice(extra);
    let (_, s) = train_dpo(&gpu, parse(&strs(&flags(&a, &prefs, &common)))).unwrap();
    assert!(s.run.finished && s.run.steps == 5, "{s}");
    let mut stop = common.clone();
    stop.extend_from_slice(&["--stop-after", "3"]);
    let (_, s) = train_dpo(&gpu, parse(&strs(&flags(&b, &prefs, &stop)))).unwrap();
    assert!(!s.run.finished && s.run.steps == 3);
    let ckpt = b.join("checkpoint").display().to_string();
    let resumed: DpoArgs = parse(&["--resume", &ckpt, "--progress", "silent"]);
    let (_, s) = train_dpo(&gpu, resumed).unwrap();
    assert!(s.run.finished && s.run.steps == 5);
    let (ra, rb) = (metric_rows(&a), metric_rows(&b));
    assert_eq!(ra.len(), 5);
    assert!(ra[1].contains_key("eval_loss") && ra[4].contains_key("eval_loss"));
    assert_eq!(ra, rb, "metrics differ after resume");
    same_file(&a, &b, weights);
    same_file(&a, &b, "checkpoint/optimizer.safetensors");
}

#[test]
fn dpo_full_fine_tuning_resumes_exactly() {
    // No adapters: the reference is the initial policy, scored once; its
    // cache travels in the checkpoint.
    check_dpo(
        "dpo-resume-full",
        &["--loss", "dpo"],
        "model/model.safetensors",
    );
}

#[test]
fn ipo_lora_resumes_exactly() {
    check_dpo(
        "dpo-resume-lora",
        &["--loss", "ipo", "--lora-r", "2", "--lora-dropout", "0.1"],
        "adapter/adapter_model.safetensors",
    );
}
