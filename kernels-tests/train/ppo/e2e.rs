//! Seeded end-to-end PPO runs on gpt2-tiny with a fresh value head: the
//! target token's rate rises with the KL bounded (full fine-tuning), and a
//! LoRA policy with the adapters-off reference trains only its adapters and
//! value head.

use super::{policy, prompts, tiny_cfg, weights};
use engine::models::lora::LoraConfig;
use engine::models::CausalLm;
use engine::train::metrics::MetricsLog;
use engine::train::ppo::{PpoStepReport, PpoTrainer, PromptCycle, RefSource};
use engine::train::reward_fn::TargetTokenRate;
use engine::train::scoring::{RewardModelScorer, Scorer};

/// " the", the most frequent token of gpt2-tiny's samples (~9%).
const TARGET: u32 = 38;

/// TRL's metric names that every step must log.
const TRL_NAMES: [&str; 15] = [
    "objective/kl",
    "objective/kl_coef",
    "objective/entropy",
    "env/reward_mean",
    "env/reward_std",
    "ppo/mean_non_score_reward",
    "ppo/returns/mean",
    "ppo/val/vpred",
    "ppo/val/error",
    "ppo/policy/approxkl",
    "ppo/policy/clipfrac",
    "ppo/policy/entropy",
    "ppo/loss/policy",
    "ppo/loss/value",
    "ppo/loss/total",
];

/// Measured on llvmpipe (seed 1): the rate goes 0.090 → 0.25 (mean of the
/// last 3 of 12 steps) with the KL at most 5.7 nats; seeds 2–4 gave
/// +0.15…+0.26 and at most 6.2 nats. Asserted: +0.08 and < 10 nats.
#[test]
fn ppo_raises_target_token_rate_with_bounded_kl() {
    let model = policy("gpt2-tiny");
    let ps = prompts(&model);
    let reference = RefSource::frozen_copy(&model).unwrap();
    let scorer = Box::new(TargetTokenRate { token: TARGET });
    let mut cfg = tiny_cfg();
    cfg.batch_size = 64;
    cfg.mini_batch_size = 32;
    cfg.max_new_tokens = 4;
    cfg.lr = 1e-3;
    cfg.ppo.init_kl_coef = 0.05;
    cfg.ppo.ppo_epochs = 4;
    let mut tr = PpoTrainer::new(model, reference, scorer, cfg).unwrap();
    let dir = crate::common::Scratch::new("ppo-e2e");
    let mut log = MetricsLog::open(&dir, false).unwrap();
    let mut src = PromptCycle {
        prompts: ps,
        seed: 3,
    };
    let mut reports: Vec<PpoStepReport> = Vec::new();
    let mut betas = vec![tr.kl_coef()];
    let summary = {
        let mut cb = |r: &PpoStepReport| reports.push(r.clone());
        tr.run(12, &mut src, Some(&mut log), &mut cb).unwrap()
    };
    betas.push(tr.kl_coef());
    for r in &reports {
        eprintln!(
            "step {:2}: rate {:.3} kl {:.3} (k3 {:.3}) β {:.4} entropy/token {:.3} {:.2}s",
            r.step, r.reward_mean, r.kl, r.kl_k3, r.kl_coef, r.entropy_per_token, r.total_s
        );
        assert!(r.kl < 10.0, "step {}: KL {} ≥ 10 nats", r.step, r.kl);
        assert_eq!((r.epochs, r.minibatches), (4, 8));
        assert_eq!(r.skipped_nonfinite + r.skipped_ratio, 0);
        assert!(r.skipped.is_none() && !r.restored);
        for (name, v) in r.metrics() {
            assert!(
                v.is_finite() || name == "ppo/val/var_explained",
                "{name} = {v}"
            );
        }
    }
    eprintln!("health: {summary:?}");
    let first = reports[0].reward_mean;
    let last = reports[9..].iter().map(|r| r.reward_mean).sum::<f64>() / 3.0;
    assert!(
        last >= first + 0.08,
        "target-token rate {first:.3} → {last:.3}: did not rise by 0.08"
    );
    // The adaptive controller: β ← β·(1 + clip(KL/6 − 1, ±0.2)·64/10000).
    let mut beta = 0.05;
    for r in &reports {
        assert!((r.kl_coef - beta).abs() < 1e-12, "β at step {}", r.step);
        beta *= 1.0 + (r.kl / 6.0 - 1.0).clamp(-0.2, 0.2) * 64.0 / 10_000.0;
    }
    assert!((tr.kl_coef() - beta).abs() < 1e-12);
    // Every step is a row with TRL's names.
    assert_eq!(log.rows.len(), 12);
    for name in TRL_NAMES {
        assert_eq!(
            log.series(name).len(),
            12,
            "{name} missing from metrics.jsonl"
        );
    }
    // The no-EOS-in-4-tokens responses trip the never-ending check.
    assert!(summary.iter().any(|l| l.starts_with("NeverEnding")));
}

#[test]
fn lora_policy_with_adapters_off_reference() {
    let mut model = CausalLm::load(
        &crate::common::gpu(),
        &super::root().join("models/fixtures/gpt2-tiny"),
    )
    .unwrap();
    let lora = LoraConfig {
        dropout: 0.1,
        ..LoraConfig::new(4, 8.0, &["c_attn", "c_fc"])
    };
    model.attach_lora(&lora, 5).unwrap();
    model.add_value_head(7).unwrap();
    assert!(
        RefSource::frozen_copy(&model).is_err(),
        "with LoRA the reference is adapters off"
    );
    assert!(model.add_value_head(8).is_err(), "one value head");
    let ps = prompts(&model);
    let before = weights(&model);
    let scorer = Box::new(TargetTokenRate { token: TARGET });
    let mut cfg = tiny_cfg();
    cfg.lr = 1e-2;
    let mut tr = PpoTrainer::new(model, RefSource::AdaptersOff, scorer, cfg).unwrap();
    let r1 = tr.step(&ps).unwrap();
    // B = 0 at attach: adapters on and off are the same model.
    assert!(
        r1.kl_k1.abs() < 1e-3 && r1.kl_k3 < 1e-3,
        "KL at step 1: {r1:?}"
    );
    let r2 = tr.step(&ps).unwrap();
    let r3 = tr.step(&ps).unwrap();
    for r in [&r1, &r2, &r3] {
        assert!(r.kl.is_finite() && r.loss.total.is_finite());
        assert_eq!(r.skipped_nonfinite, 0);
    }
    assert!(r3.kl_k3 > 0.0, "the adapters did not move the policy");
    let after = weights(&tr.policy);
    for (name, w) in &before {
        let moved = after[name] != *w;
        if name.contains(".lora_") || name.starts_with("v_head.") {
            assert!(moved, "{name} did not train");
        } else {
            assert!(!moved, "frozen {name} changed");
        }
    }
}

/// Seconds per PPO step by phase on this adapter (by hand: `cargo test
/// --release --test trainers ppo::e2e::step_timing -- --ignored --nocapture`).
#[test]
#[ignore]
fn step_timing() {
    let runs = [
        (8, 4, 8, 2, false),
        (64, 32, 4, 4, false),
        (16, 8, 32, 4, false),
        (16, 8, 32, 4, true),
    ];
    for (bs, mbs, new, epochs, rm) in runs {
        let model = policy("gpt2-tiny");
        let ps = prompts(&model);
        let reference = RefSource::frozen_copy(&model).unwrap();
        let scorer: Box<dyn Scorer> = if rm {
            let dir = super::root().join("models/fixtures/gpt2-tiny-reward");
            Box::new(RewardModelScorer::load(&crate::common::gpu(), &dir).unwrap())
        } else {
            Box::new(TargetTokenRate { token: TARGET })
        };
        let mut cfg = tiny_cfg();
        (cfg.batch_size, cfg.mini_batch_size, cfg.max_new_tokens) = (bs, mbs, new);
        cfg.ppo.ppo_epochs = epochs;
        cfg.eos = Some(u32::MAX); // never: every response has `new` tokens
        let mut tr = PpoTrainer::new(model, reference, scorer, cfg).unwrap();
        let mut src = PromptCycle {
            prompts: ps,
            seed: 3,
        };
        let mut reps = Vec::new();
        tr.run(6, &mut src, None, &mut |r: &PpoStepReport| {
            reps.push(r.clone())
        })
        .unwrap();
        let warm = &reps[1..]; // step 1 compiles the pipelines
        let avg =
            |f: &dyn Fn(&PpoStepReport) -> f64| warm.iter().map(f).sum::<f64>() / warm.len() as f64;
        eprintln!(
            "B={bs} mb={mbs} new={new} epochs={epochs} rm={rm}: {:.3}s/step (first {:.2}s) = generate \
             {:.3} + forward {:.3} + ref {:.3} + score {:.4} + train {:.3}; {:.0} tokens/s",
            avg(&|r| r.total_s),
            reps[0].total_s,
            avg(&|r| r.times.generate),
            avg(&|r| r.times.forward),
            avg(&|r| r.times.reference),
            avg(&|r| r.times.score),
            avg(&|r| r.times.train),
            avg(&|r| r.tokens_per_s),
        );
    }
}
