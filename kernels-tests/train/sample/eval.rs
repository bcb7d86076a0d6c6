//! `eval` on gpt2-tiny: KL of a model to itself is exactly 0, the other
//! metrics are in range, and the same seed gives the same report.

use crate::train::dpo::{fixture, lora_model, model, template};
use engine::data::{load_sft, Encoder, LoadOptions, Truncation};
use engine::models::generate::GenerateConfig;
use engine::models::sampling::SamplingConfig;
use engine::train::sample::eval::{evaluate, EvalConfig, EvalPrompt, KlReference};
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
