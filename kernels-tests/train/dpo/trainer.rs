//! DpoTrainer on gpt2-tiny with LoRA (reference = adapters off) and tiny
//! committed data: exact step-0 values, learning, the other losses, the
//! precomputed reference, and state round trips.

use super::{load, lora_model, model};
use engine::train::dpo::config::{DirectLoss, DpoConfig, Reference};
use engine::train::dpo::trainer::DpoTrainer;
use engine::train::metrics::MetricsLog;

fn cfg(loss: DirectLoss) -> DpoConfig {
    DpoConfig {
        loss,
        batch_size: 4,
        lr: 2e-2,
        seed: 3,
        ..Default::default()
    }
}

fn trainer(loss: DirectLoss, file: &str, c: DpoConfig) -> DpoTrainer {
    let m = lora_model();
    let data = load(&m, file, loss);
    DpoTrainer::new(m, c, data.clone())
        .unwrap()
        .with_eval_data(data)
        .unwrap()
}

#[test]
fn dpo_step_zero_is_ln2_with_zero_rewards() {
    let mut t = trainer(DirectLoss::Dpo, "prefs.jsonl", cfg(DirectLoss::Dpo));
    let r = t.step().unwrap();
    // B = 0 adapters: the policy is its reference, so h = 0 and
    // −log σ(0) = ln 2, every reward 0 and no pair strictly ahead.
    assert_eq!(r.loss as f32, std::f32::consts::LN_2, "{r:?}");
    let m = &r.metrics;
    assert_eq!(
        (m.rewards_chosen, m.rewards_rejected, m.rewards_margins),
        (0.0, 0.0, 0.0)
    );
    assert_eq!(m.rewards_accuracies, Some(0.0));
    assert!(r.applied && r.grad_norm > 0.0);
}

#[test]
fn dpo_raises_accuracy_and_margins() {
    let dir = crate::common::Scratch::new("dpo");
    let mut t = trainer(DirectLoss::Dpo, "prefs.jsonl", cfg(DirectLoss::Dpo))
        .with_metrics_log(MetricsLog::open(&dir, false).unwrap());
    let before = t.evaluate().unwrap();
    assert_eq!(before.metrics.rewards_accuracies, Some(0.0));
    assert!((before.loss - std::f64::consts::LN_2).abs() < 1e-6);
    let mut last = None;
    for _ in 0..20 {
        last = Some(t.step().unwrap());
    }
    let after = t.evaluate().unwrap();
    let acc = after.metrics.rewards_accuracies.unwrap();
    println!("before {before:?}\nafter {after:?}\nlast step {last:?}");
    assert!(acc >= 0.75, "accuracy {acc}");
    assert!(after.metrics.rewards_margins > 0.05, "{after:?}");
    assert!(after.loss < before.loss - 0.02, "{after:?}");
    // Metrics rows: 20 steps and 2 evals, with TRL's names.
    let log = t.metrics().unwrap();
    assert_eq!(log.series("loss").len(), 20);
    assert_eq!(log.series("eval_rewards/accuracies").len(), 2);
    assert_eq!(log.series("rewards/margins").len(), 20);
}

/// Eval loss on the training data falls over a few steps.
fn falls(loss: DirectLoss, file: &str, steps: usize, lr: f32) -> (f64, f64) {
    let mut t = trainer(loss, file, DpoConfig { lr, ..cfg(loss) });
    let before = t.evaluate().unwrap();
    for _ in 0..steps {
        let r = t.step().unwrap();
        assert!(r.loss.is_finite() && r.applied, "{r:?}");
    }
    let after = t.evaluate().unwrap();
    println!("{loss:?}: {before:?} -> {after:?}");
    assert!(
        after.loss < before.loss,
        "{loss:?}: {} -> {}",
        before.loss,
        after.loss
    );
    (before.loss, after.loss)
}

#[test]
fn ipo_loss_falls() {
    // IPO at h = 0: (1/(2β))² = 25 for β = 0.1.
    let (before, _) = falls(DirectLoss::Ipo, "prefs.jsonl", 4, 2e-2);
    assert!((before - 25.0).abs() < 1e-4, "{before}");
}

#[test]
fn kto_unpaired_loss_falls() {
    // At the start every 1 − σ(0) = 1/2.
    let (before, _) = falls(DirectLoss::Kto, "kto.jsonl", 4, 2e-2);
    assert!((before - 0.5).abs() < 1e-6, "{before}");
}

#[test]
fn kto_pair_loss_falls() {
    let (before, _) = falls(DirectLoss::KtoPair, "prefs.jsonl", 4, 2e-2);
    assert!((before - 0.5).abs() < 1e-6, "{before}");
}

#[test]
fn kto_reports_kl_and_group_rewards() {
    let mut t = trainer(DirectLoss::Kto, "kto.jsonl", cfg(DirectLoss::Kto));
    let r = t.step().unwrap();
    let m = &r.metrics;
    assert_eq!(m.kl, Some(0.0));
    assert_eq!(m.rewards_accuracies, None);
    assert_eq!(m.count_chosen + m.count_rejected, 4);
    let names: Vec<&str> = r.named().iter().map(|x| x.0).collect();
    assert!(
        names.contains(&"kl") && names.contains(&"loss"),
        "{names:?}"
    );
}

#[test]
fn precomputed_reference_matches_on_the_fly() {
    let mut live = trainer(DirectLoss::Dpo, "prefs.jsonl", cfg(DirectLoss::Dpo));
    let pre_cfg = DpoConfig {
        precompute_ref_log_probs: true,
        ..cfg(DirectLoss::Dpo)
    };
    let mut pre = trainer(DirectLoss::Dpo, "prefs.jsonl", pre_cfg);
    for step in 1..=2 {
        let (a, b) = (live.step().unwrap(), pre.step().unwrap());
        println!("step {step}: {a:?}\n        {b:?}");
        assert_eq!(a.loss, b.loss, "step {step}");
        assert_eq!(a.metrics, b.metrics, "step {step}");
    }
    // The cache travels in the state; a fresh trainer takes it over.
    let state = pre.state();
    assert_eq!(state["step"], 2);
    let mut again = trainer(
        DirectLoss::Dpo,
        "prefs.jsonl",
        DpoConfig {
            precompute_ref_log_probs: true,
            ..cfg(DirectLoss::Dpo)
        },
    );
    again.restore(&state).unwrap();
    assert_eq!(again.steps_done(), 2);
    assert_eq!(again.optimizer().step, 2);
    assert_eq!(again.state(), state);
}

#[test]
fn full_fine_tuning_uses_the_initial_policy_as_reference() {
    // No LoRA: the reference is the policy before the first step, scored once.
    let m = model("gpt2-tiny");
    let data = load(&m, "prefs.jsonl", DirectLoss::Dpo);
    let c = DpoConfig {
        batch_size: 8,
        lr: 1e-3,
        ..cfg(DirectLoss::Dpo)
    };
    let mut t = DpoTrainer::new(m, c, data.clone())
        .unwrap()
        .with_eval_data(data)
        .unwrap();
    let first = t.step().unwrap();
    assert_eq!(first.loss as f32, std::f32::consts::LN_2);
    let second = t.step().unwrap();
    assert!(second.metrics.rewards_margins > 0.0, "{second:?}");
    assert!(!t.state()["ref_cache"]["train"].is_null());
    // A separate frozen reference works too (here: the same weights).
    let m2 = model("gpt2-tiny");
    let data = load(&m2, "prefs.jsonl", DirectLoss::Dpo);
    let mut t2 = DpoTrainer::new(m2, cfg(DirectLoss::Dpo), data)
        .unwrap()
        .with_reference(Reference::Model(Box::new(model("gpt2-tiny"))))
        .unwrap();
    let r = t2.step().unwrap();
    assert_eq!(r.loss as f32, std::f32::consts::LN_2);
    assert!(t2.state()["ref_cache"]["train"].is_null());
}

#[test]
fn paired_losses_refuse_unpaired_data() {
    let m = lora_model();
    let data = load(&m, "kto.jsonl", DirectLoss::Kto);
    let err = DpoTrainer::new(m, cfg(DirectLoss::Dpo), data)
        .err()
        .unwrap();
    assert!(err.to_string().contains("pairs"), "{err}");
}

/// Gradient accumulation (TRL's semantics): 2 micro-batches of 2 pairs take
/// the same steps as one batch of 4: equal losses, metrics and weights.
#[test]
fn grad_accumulation_equals_one_big_batch() {
    for loss in [DirectLoss::Dpo, DirectLoss::Ipo] {
        let mut one = trainer(loss, "prefs.jsonl", cfg(loss));
        let split = DpoConfig {
            batch_size: 2,
            grad_accum: 2,
            ..cfg(loss)
        };
        let mut two = trainer(loss, "prefs.jsonl", split);
        for step in 0..3 {
            let (a, b) = (one.step().unwrap(), two.step().unwrap());
            // Relative: IPO's loss is ~27 here, and f32 sums over 2 or 4
            // rows round differently.
            assert!(
                (a.loss - b.loss).abs() < 1e-6 * a.loss.abs().max(1.0),
                "{loss:?} step {step}: {a:?} vs {b:?}"
            );
            let (ma, mb) = (&a.metrics, &b.metrics);
            assert!(
                (ma.rewards_margins - mb.rewards_margins).abs() < 1e-5,
                "{a:?} vs {b:?}"
            );
            assert_eq!(
                ma.rewards_accuracies, mb.rewards_accuracies,
                "{loss:?} step {step}"
            );
            assert_eq!(a.epoch, b.epoch);
            assert!((a.grad_norm - b.grad_norm).abs() <= 1e-5 * a.grad_norm.max(1.0));
        }
        for p in one.model().params.iter() {
            let (x, y) = (
                p.tensor.to_vec().unwrap(),
                two.model().params.get(&p.name).unwrap().to_vec().unwrap(),
            );
            for (i, (u, v)) in x.iter().zip(&y).enumerate() {
                assert!(
                    (u - v).abs() <= 1e-5,
                    "{loss:?} {}[{i}]: {u} vs {v}",
                    p.name
                );
            }
        }
    }
}
