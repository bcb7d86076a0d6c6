//! Best-of-n on gpt2-tiny: the kept response has the highest score (checked
//! against the reward model scoring each candidate alone, as PPO would), and
//! the JSONL is SFT data that `engine::data::load_sft` reads back.

use crate::train::dpo::{fixture, model, template};
use engine::data::{load_prompts, load_sft, Encoder, LoadOptions, SftRecord, Truncation};
use engine::models::generate::GenerateConfig;
use engine::models::sampling::SamplingConfig;
use engine::train::sample::best_of_n::{best_of_n, BestOfNConfig, BestOfNPrompt};
use engine::train::scoring::{RewardModelScorer, Sample, Scorer};

fn setup() -> (engine::models::CausalLm, Vec<BestOfNPrompt>, BestOfNConfig) {
    let policy = model("gpt2-tiny");
    let t = template();
    let enc = Encoder::new(
        policy.tokenizer.as_ref().unwrap(),
        &t,
        Truncation::truncate(32),
    );
    let rows = load_prompts(&fixture("prompts.jsonl"), &LoadOptions::default()).unwrap();
    let prompts = BestOfNPrompt::encode(&rows.rows, &enc).unwrap();
    let cfg = BestOfNConfig {
        n: 4,
        generate: GenerateConfig {
            max_new_tokens: 6,
            sampling: SamplingConfig::sample(),
            eos: policy.cfg.eos_token_id,
            seed: 11,
            ..Default::default()
        },
        batch_size: 8,
    };
    (policy, prompts, cfg)
}

#[test]
fn best_of_n_keeps_the_reward_models_best_and_writes_sft_jsonl() {
    let (policy, prompts, cfg) = setup();
    let mut rm = RewardModelScorer::new(model("gpt2-tiny-reward")).unwrap();
    rm.batch_size = 5; // batches that cut across prompts
    let report = best_of_n(&policy, &prompts, &rm, &cfg).unwrap();
    assert_eq!(report.samples.len(), 3);
    let mut all = Vec::new();
    for s in &report.samples {
        assert_eq!(s.scores.len(), 4);
        // Each candidate scored alone gives the same score (batching and
        // padding do not change it).
        assert_eq!(s.finished.len(), 4);
        for ((c, &sc), &finished) in s.candidates.iter().zip(&s.scores).zip(&s.finished) {
            let alone = Sample {
                prompt_ids: &[],
                response_ids: &[],
                prompt: &s.prompt_text,
                response: c,
                finished,
            };
            let alone = rm.score(&[alone]).unwrap()[0];
            assert!(
                (alone - sc).abs() <= 1e-5 * sc.abs().max(1.0),
                "{alone} vs {sc}"
            );
        }
        let max = s.scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        if s.usable() {
            assert_eq!(s.score(), max, "{s:?}");
        }
        all.extend(s.scores.iter().map(|&x| x as f64));
    }
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    assert!((report.mean_score - mean).abs() < 1e-9);
    assert!(report.mean_best >= report.mean_score);

    let dir = crate::common::Scratch::new("bon");
    let path = dir.path("best.jsonl");
    let written = report.write_jsonl(&path).unwrap();
    assert_eq!(written, 3 - report.blank);
    let back = load_sft(&path, &LoadOptions::default()).unwrap();
    assert_eq!(back.len(), written);
    for (row, s) in back
        .rows
        .iter()
        .zip(report.samples.iter().filter(|s| s.usable()))
    {
        let SftRecord::PromptCompletion { prompt, .. } = &row.record else {
            panic!("{row:?}")
        };
        assert_eq!(prompt, &s.prompt);
    }
    let line: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["candidates"].as_array().unwrap().len(), 4);
    assert!(line["score"].is_number());
}

#[test]
fn best_of_n_with_a_reward_function_picks_its_max() {
    let (policy, prompts, cfg) = setup();
    // Reward: the number of 'e's in the response.
    let count_e = |_: &str, r: &str, _: &[u32]| r.matches('e').count() as f32;
    let report = best_of_n(&policy, &prompts[..2], &count_e, &cfg).unwrap();
    for s in &report.samples {
        let want: Vec<f32> = s.candidates.iter().map(|c| count_e("", c, &[])).collect();
        assert_eq!(s.scores, want);
        let best = s.completion().matches('e').count() as f32;
        if s.usable() {
            let usable_max = s
                .candidates
                .iter()
                .filter(|c| !c.trim().is_empty())
                .map(|c| c.matches('e').count() as f32)
                .fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(best, usable_max, "{s:?}");
        }
    }
    // Same seed, same samples.
    let again = best_of_n(&policy, &prompts[..2], &count_e, &cfg).unwrap();
    for (a, b) in report.samples.iter().zip(&again.samples) {
        assert_eq!(a.candidates, b.candidates);
    }
}
