//! Trainers never read storage that nothing wrote: each run on a device
//! that fills every buffer it hands out with NaN (`poisoning_gpu`) logs the
//! same metrics and saves the same weights as on the shared device.
//!
//! Why: a reused buffer holds whatever its last tensor left, and another
//! test running at the same time can leave NaN there. A kernel that read
//! such lanes, even only to multiply them by zero (the LoRA epilogue, for
//! ranks that are not a multiple of 4), made a PPO LoRA run's generations
//! depend on which tests ran beside it. LoRA ranks below are odd on purpose.

use super::{fixture, metric_rows, model_dir, parse, root, scratch};
use crate::common::{gpu, poisoning_gpu};
use engine::train::dpo::train_dpo;
use engine::train::ppo::train_ppo;
use engine::train::sft::train_sft;
use engine::Gpu;
use std::path::Path;
use std::sync::Arc;

fn args(out: &Path, model_data: [&str; 2], extra: &[&str]) -> Vec<String> {
    let [model, data] = model_data;
    let mut f: Vec<String> = ["--model", model, "--data", data, "--out"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    f.push(out.display().to_string());
    f.extend(["--progress", "silent", "--seed", "5"].map(String::from));
    f.extend(extra.iter().map(|s| s.to_string()));
    f
}

/// Runs `train` on both devices and compares the metrics and `weights`.
fn same_on_poisoned_storage(name: &str, weights: &str, train: impl Fn(&Arc<Gpu>, &Path)) {
    let (plain, poisoned) = (
        scratch(&format!("{name}-plain")),
        scratch(&format!("{name}-nan")),
    );
    train(&gpu(), &plain);
    train(&poisoning_gpu(), &poisoned);
    let (a, b) = (metric_rows(&plain), metric_rows(&poisoned));
    assert!(!a.is_empty());
    assert_eq!(
        a, b,
        "{name}: metrics differ on a device that poisons its buffers"
    );
    let read = |d: &Path| std::fs::read(d.join(weights)).unwrap();
    assert!(read(&plain) == read(&poisoned), "{name}: {weights} differs");
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn ppo_lora_reads_only_what_it_wrote() {
    let model = model_dir("gpt2-tiny");
    let prompts = root().join("kernels-tests/fixtures/dpo/prompts.jsonl");
    let prompts = prompts.display().to_string();
    same_on_poisoned_storage(
        "nan-ppo-lora",
        "adapter/adapter_model.safetensors",
        |g, out| {
            let flags = args(
                out,
                [&model, &prompts],
                &[
                    "--template",
                    "plain",
                    "--steps",
                    "2",
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
                    "--lora-r",
                    "2",
                    "--lora-dropout",
                    "0.1",
                ],
            );
            train_ppo(g, parse(&strs(&flags))).unwrap();
        },
    );
}

#[test]
fn dpo_lora_reads_only_what_it_wrote() {
    let model = model_dir("gpt2-tiny");
    let prefs = root().join("kernels-tests/fixtures/train/prefs_train.jsonl");
    let prefs = prefs.display().to_string();
    same_on_poisoned_storage(
        "nan-dpo-lora",
        "adapter/adapter_model.safetensors",
        |g, out| {
            let flags = args(
                out,
                [&model, &prefs],
                &[
                    "--steps",
                    "2",
                    "--batch-size",
                    "3",
                    "--lr",
                    "1e-3",
                    "--lora-r",
                    "3",
                ],
            );
            train_dpo(g, parse(&strs(&flags))).unwrap();
        },
    );
}

#[test]
fn sft_lora_reads_only_what_it_wrote() {
    let model = model_dir("gpt2-tiny");
    let data = fixture("sft_train.jsonl");
    same_on_poisoned_storage(
        "nan-sft-lora",
        "adapter/adapter_model.safetensors",
        |g, out| {
            let flags = args(
                out,
                [&model, &data],
                &[
                    "--steps",
                    "2",
                    "--batch-size",
                    "4",
                    "--lr",
                    "1e-2",
                    "--lora-r",
                    "5",
                ],
            );
            train_sft(g, parse(&strs(&flags))).unwrap();
        },
    );
}
