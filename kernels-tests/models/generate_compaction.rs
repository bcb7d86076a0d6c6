//! Dropping finished rows from the running generation batch
//! (`generate::Compaction`) must not change a single token: every row's ids
//! and finished flag are compared exactly with compaction off, forced on
//! after every step that ends a row, and at the default threshold.
//!
//! The cases make rows end at many different steps: prompts of different
//! lengths (left padding), a stop list of every 11th id (the model's EOS list
//! widened, so `eos` stops on all of them), stop strings (ended on the host)
//! and the length cap; prompts and draws also differ per case. They cover GPT-2 (with and without a LoRA adapter),
//! GPT-NeoX and Llama with grouped-query attention, plain sampling at
//! temperature 1, the repetition penalty with top-k and top-p, and greedy.
//! One batch has 40 rows, more than one 32-row block of the CPU matmul and
//! five 8-row groups of the attention kernel, so compaction changes which
//! rows share a workgroup.

use super::parity::{fixture, root};
use engine::models::generate::{generate_with, Compaction, GenerateConfig, Generation};
use engine::models::sampling::SamplingConfig;
use engine::models::CausalLm;
use std::collections::BTreeSet;

/// `n` prompts of 1 to 9 tokens, seeded.
fn prompts(n: usize, vocab: usize, seed: u64) -> Vec<Vec<i32>> {
    let mut s = seed;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as usize
    };
    (0..n)
        .map(|_| {
            let len = 1 + next() % 9;
            (0..len).map(|_| (next() % vocab) as i32).collect()
        })
        .collect()
}

/// Generates with compaction off, forced on and at the default, asserts the
/// three agree exactly, and returns the result for the case's own checks.
fn same_with_and_without(model: &mut CausalLm, rows: usize, cfg: GenerateConfig) -> Generation {
    let vocab = model.sampling_vocab();
    model.cfg.eos_token_ids = (3..vocab as u32).step_by(11).collect();
    let cfg = GenerateConfig {
        eos: Some(3),
        ..cfg
    };
    let prompts = prompts(rows, vocab, cfg.seed);
    let off = generate_with(model, &prompts, &cfg, Compaction::Off).unwrap();
    for c in [Compaction::AtFraction(0.0), Compaction::default()] {
        let on = generate_with(model, &prompts, &cfg, c).unwrap();
        for (b, (a, o)) in on.new_ids.iter().zip(&off.new_ids).enumerate() {
            assert_eq!(a, o, "row {b} with {c:?} vs without compaction");
        }
        assert_eq!(on.finished, off.finished, "finished flags with {c:?}");
    }
    // The batch must shrink several times.
    let ended: BTreeSet<usize> = off
        .new_ids
        .iter()
        .zip(&off.finished)
        .filter(|(_, &f)| f)
        .map(|(ids, _)| ids.len())
        .collect();
    assert!(
        ended.len() >= 3,
        "rows should end at several steps: {:?}",
        off.new_ids.iter().map(Vec::len).collect::<Vec<_>>()
    );
    off
}

fn sampled(seed: u64) -> GenerateConfig {
    GenerateConfig {
        max_new_tokens: 24,
        sampling: SamplingConfig::sample(),
        seed,
        ..Default::default()
    }
}

#[test]
fn gpt2_sampling_forty_rows() {
    let (mut model, _, _) = fixture("gpt2-tiny");
    same_with_and_without(&mut model, 40, sampled(7));
}

#[test]
fn gpt2_lora_sampling_with_stop_strings() {
    let (mut model, _, _) = fixture("gpt2-tiny");
    model
        .load_adapter(&root().join("models/fixtures/gpt2-tiny-lora"))
        .unwrap();
    let cfg = GenerateConfig {
        stop_strings: vec!["e".into()],
        ..sampled(11)
    };
    let out = same_with_and_without(&mut model, 12, cfg);
    // Some rows ended on the stop string (on the host), not on a stop id.
    let by_text = out
        .new_ids
        .iter()
        .zip(&out.finished)
        .filter(|(ids, &f)| f && !model.cfg.eos_token_ids.contains(ids.last().unwrap()));
    assert!(by_text.count() >= 2);
}

#[test]
fn neox_penalty_top_k_top_p() {
    let (mut model, _, _) = fixture("neox-parallel");
    let cfg = GenerateConfig {
        sampling: SamplingConfig {
            temperature: 0.8,
            top_k: 20,
            top_p: 0.9,
            repetition_penalty: 1.3,
            ..SamplingConfig::sample()
        },
        ..sampled(5)
    };
    same_with_and_without(&mut model, 13, cfg);
}

#[test]
fn llama_gqa_sampling_and_greedy() {
    let (mut model, _, _) = fixture("llama-gqa");
    same_with_and_without(&mut model, 13, sampled(3));
    let greedy = GenerateConfig {
        sampling: SamplingConfig::default(),
        ..sampled(3)
    };
    same_with_and_without(&mut model, 13, greedy);
}
