//! `eval` on gpt2-tiny: KL of a model to itself is exactly 0, the other
//! metrics are in range, and the same seed gives the same report; batches
//! that share a generation pass sample what they sample alone.

use crate::train::dpo::{fixture, lora_model, model, template};
use engine::data::{load_sft, Encoder, LoadOptions, Truncation};
use engine::models::generate::{generate, GenerateConfig};
use engine::models::sampling::SamplingConfig;
use engine::train::sample::eval::{
    batch_seed, evaluate, generate_all, pass_plan, EvalConfig, EvalPrompt, KlReference,
};
use engine::train::scoring::RewardModelScorer;

#[test]
fn eval_kl_to_itself_is_zero_and_metrics_are_in_range() {
    let policy = model("gpt2-tiny");
    let t = template();
    let enc = Encoder::new(
        policy.tokenizer.as_ref().unwrap(),
        &t,
        Truncation::truncate(32),
    );
    let rows = load_sft(&fixture("prompts.jsonl"), &LoadOptions::default()).unwrap();
    let prompts = EvalPrompt::from_sft(&rows.rows, &enc).unwrap();
    assert_eq!(prompts[2].references, ["turned the wheel of the mill."]);
    let cfg = EvalConfig {
        generate: GenerateConfig {
            max_new_tokens: 8,
            sampling: SamplingConfig::sample(),
            eos: policy.cfg.eos_token_id,
            seed: 5,
            ..Default::default()
        },
        batch_size: 2,
    };
    let rm = RewardModelScorer::new(model("gpt2-tiny-reward")).unwrap();
    let r = evaluate(
        &policy,
        &prompts,
        &cfg,
        Some(&rm),
        Some(KlReference::Model(&policy)),
    )
    .unwrap();
    assert_eq!(r.kl, Some(0.0));
    assert!(r.samples.iter().all(|s| s.kl == Some(0.0)));
    assert!(r.reward_mean.unwrap().is_finite() && r.reward_std.unwrap() >= 0.0);
    for v in [r.rouge1, r.rouge2, r.rouge_l] {
        assert!((0.0..=1.0).contains(&v.unwrap()), "{r:?}");
    }
    assert!((0.0..=1.0).contains(&r.distinct_1) && (0.0..=1.0).contains(&r.distinct_2));
    assert!(r.mean_length > 0.0 && r.mean_length <= 8.0);
    let json = r.to_json();
    assert_eq!(json["samples"].as_array().unwrap().len(), 3);
    assert!(json["rouge_l"].is_number());
    assert!(r.named().iter().any(|(k, _)| *k == "eval/kl"));

    // Same config, same responses.
    let again = evaluate(&policy, &prompts, &cfg, None, None).unwrap();
    for (a, b) in r.samples.iter().zip(&again.samples) {
        assert_eq!(a.response, b.response);
    }
    assert_eq!((again.kl, again.reward_mean), (None, None));

    // Adapters with B = 0 leave the policy at its base: KL ≈ 0.
    let lora = lora_model();
    let r = evaluate(&lora, &prompts, &cfg, None, Some(KlReference::AdaptersOff)).unwrap();
    assert!(r.kl.unwrap().abs() < 1e-4, "{:?}", r.kl);
}

/// `generate_all` runs seed batches whose longest prompts are equally long
/// in one pass (three of the four here), so each prompt keeps the left
/// padding of its own batch, and every prompt gets exactly the tokens that
/// generating its batch alone, with that batch's seed, gives. Rows end on
/// EOS at different steps; the repetition penalty and top-k are on.
#[test]
fn batches_sharing_a_pass_sample_what_they_sample_alone() {
    let policy = model("gpt2-tiny");
    let text = "The miller turned the wheel of the mill and the river ran on past the town";
    let ids = policy.encode(text).unwrap();
    let lengths = [9, 2, 5, 6, 1, 3, 4, 9, 7, 9, 9, 1];
    let prompts: Vec<Vec<i32>> = lengths
        .iter()
        .enumerate()
        .map(|(i, &n)| ids[i..i + n].to_vec())
        .collect();
    let batch_size = 3;
    assert_eq!(
        pass_plan(&prompts, batch_size, 512),
        [vec![0, 2, 3], vec![1]]
    );
    assert_eq!(
        pass_plan(&prompts, batch_size, 6),
        [vec![0, 2], vec![1], vec![3]]
    );
    let cfg = GenerateConfig {
        max_new_tokens: 10,
        sampling: SamplingConfig {
            repetition_penalty: 1.2,
            top_k: 40,
            ..SamplingConfig::sample()
        },
        eos: Some(ids[3] as u32),
        seed: 17,
        ..Default::default()
    };
    let together = generate_all(&policy, &prompts, &cfg, batch_size).unwrap();
    assert_eq!(together.len(), prompts.len());
    let mut ended = 0;
    for (k, batch) in prompts.chunks(batch_size).enumerate() {
        let alone = GenerateConfig {
            seed: batch_seed(cfg.seed, k),
            ..cfg.clone()
        };
        let g = generate(&policy, batch, &alone).unwrap();
        for (i, (ids, finished)) in g.new_ids.iter().zip(&g.finished).enumerate() {
            let r = &together[k * batch_size + i];
            assert_eq!((&r.ids, r.finished), (ids, *finished), "batch {k}, row {i}");
            ended += (*finished && ids.len() < cfg.max_new_tokens) as usize;
        }
    }
    assert!(ended > 0, "some rows should end early on EOS");
}
