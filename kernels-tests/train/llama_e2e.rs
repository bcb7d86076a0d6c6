//! The trainers on a Llama checkpoint end to end through the binary: SFT,
//! DPO and PPO, each 2 steps with LoRA (r 8) on an NF4-quantized base of
//! models/fixtures/llama-gqa (grouped-query attention, SentencePiece tokenizer).

use super::{model_dir, root, scratch};
use std::process::Command;

fn data(rel: &str) -> String {
    root()
        .join("kernels-tests/fixtures")
        .join(rel)
        .display()
        .to_string()
}

fn run(cmd: &str, name: &str, extra: &[&str]) {
    run_on("llama-gqa", cmd, name, extra)
}

fn run_on(model: &str, cmd: &str, name: &str, extra: &[&str]) {
    let out = scratch(name);
    let (m, o) = (model_dir(model), out.display().to_string());
    let mut args = vec![cmd, "--model", &m, "--template", "plain", "--steps", "2"];
    args.extend_from_slice(&["--batch-size", "2", "--quant", "nf4", "--lora-r", "8"]);
    args.extend_from_slice(&["--out", &o, "--progress", "silent"]);
    args.extend_from_slice(extra);
    let res = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "engine {args:?}:\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(metrics.lines().count() >= 2, "{cmd}: {metrics}");
    assert!(
        !metrics.contains("NaN") && !metrics.contains("null"),
        "{cmd}: {metrics}"
    );
    assert!(out.join("adapter/adapter_config.json").is_file(), "{cmd}");
}

#[test]
fn sft_dpo_and_ppo_train_lora_on_an_nf4_llama() {
    let sft = data("train/sft_train.jsonl");
    run(
        "train-sft",
        "llama-sft",
        &["--data", &sft, "--max-len", "48"],
    );
    let prefs = data("dpo/prefs.jsonl");
    run(
        "train-dpo",
        "llama-dpo",
        &["--data", &prefs, "--max-len", "48"],
    );
    let prompts = data("dpo/prompts.jsonl");
    let ppo = [
        "--data",
        &prompts,
        "--max-new-tokens",
        "4",
        "--ppo-epochs",
        "1",
        "--reward-keyword",
        "the,river",
    ];
    run("train-ppo", "llama-ppo", &ppo);
}

/// PPO with QLoRA on directories exactly as transformers writes them
/// (make_llama_hf_fixtures.py): a bf16 Llama with llama3 RoPE and a
/// generation_config EOS list, and a tied one-KV-head Qwen2 without BOS
/// whose embedding is padded past its tokenizer.
#[test]
fn ppo_trains_qlora_on_transformers_written_llama_and_qwen2() {
    let prompts = data("dpo/prompts.jsonl");
    let ppo = [
        "--data",
        &prompts,
        "--max-new-tokens",
        "4",
        "--ppo-epochs",
        "1",
        "--reward-keyword",
        "the,river",
    ];
    for model in ["llama3-sp-bf16", "qwen2-mqa-tied"] {
        run_on(model, "train-ppo", &format!("ppo-{model}"), &ppo);
    }
}
