//! Trainers never read storage that nothing wrote: each run on a device
//! that fills every buffer it hands out with NaN (`poisoning_gpu`) logs the
//! same metrics and saves the same adapter as on the shared device.
//!
//! Why: a reused buffer holds whatever its last tensor left, and another
//! test running at the same time can leave NaN there. A kernel that read
//! such lanes, even only to multiply them by zero (the LoRA epilogue, for
//! ranks that are not a multiple of 4), made a PPO LoRA run's generations
//! depend on which tests ran beside it. LoRA ranks below are odd on purpose.

use super::{metric_rows, model_dir, parse, root, scratch};
use crate::common::{gpu, poisoning_gpu};
use engine::train::dpo::train_dpo;
use engine::train::ppo::train_ppo;
use engine::train::sft::train_sft;
use engine::Gpu;
use std::path::Path;
use std::sync::Arc;

const ADAPTER: &str = "adapter/adapter_model.safetensors";

/// Flags for gpt2-tiny on `data` (under kernels-tests/fixtures) into `out`,
/// then `extra` (space-separated).
fn flags(out: &Path, data: &str, extra: &str) -> Vec<String> {
    let data = root().join("kernels-tests/fixtures").join(data);
    let mut f: Vec<String> = vec![
        "--model".into(),
        model_dir("gpt2-tiny"),
        "--data".into(),
        data.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    f.extend("--progress silent --seed 5".split(' ').map(String::from));
    f.extend(extra.split(' ').map(String::from));
    f
}

/// Runs `train` (given a device and its flags) on both devices and compares
/// the metrics and the adapter.
fn same_on_poisoned_storage(name: &str, data: &str, extra: &str, train: fn(&Arc<Gpu>, &[&str])) {
    let (plain, poisoned) = (
        scratch(&format!("{name}-plain")),
        scratch(&format!("{name}-nan")),
    );
    for (gpu, out) in [(gpu(), &plain), (poisoning_gpu(), &poisoned)] {
        let f = flags(out, data, extra);
        train(&gpu, &f.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let (a, b) = (metric_rows(&plain), metric_rows(&poisoned));
    assert!(!a.is_empty());
    assert_eq!(
        a, b,
        "{name}: metrics differ on a device that poisons its buffers"
    );
    let read = |d: &Path| std::fs::read(d.join(ADAPTER)).unwrap();
    assert!(read(&plain) == read(&poisoned), "{name}: {ADAPTER} differs");
}

#[test]
fn ppo_lora_reads_only_what_it_wrote() {
    same_on_poisoned_storage(
        "nan-ppo-lora",
        "dpo/prompts.jsonl",
        "--template plain --steps 2 --batch-size 3 --mini-batch-size 2 --max-new-tokens 3 \
         --ppo-epochs 2 --lr 1e-2 --reward-target-token 38 --lora-r 2 --lora-dropout 0.1",
        |g, f| {
            train_ppo(g, parse(f)).unwrap();
        },
    );
}

#[test]
fn dpo_lora_reads_only_what_it_wrote() {
    same_on_poisoned_storage(
        "nan-dpo-lora",
        "train/prefs_train.jsonl",
        "--steps 2 --batch-size 3 --lr 1e-3 --lora-r 3",
        |g, f| {
            train_dpo(g, parse(f)).unwrap();
        },
    );
}

#[test]
fn sft_lora_reads_only_what_it_wrote() {
    same_on_poisoned_storage(
        "nan-sft-lora",
        "train/sft_train.jsonl",
        "--steps 2 --batch-size 4 --lr 1e-2 --lora-r 5",
        |g, f| {
            train_sft(g, parse(f)).unwrap();
        },
    );
}
