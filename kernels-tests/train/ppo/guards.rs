//! The guards of a PPO step, each forced: the ratio threshold, early
//! stopping, NaN losses and weights, a non-finite reward; and the
//! checkpointable state (a restored trainer continues exactly).

use super::{policy, prompts, tiny_cfg, weights};
use engine::train::ppo::{Fault, PpoTrainConfig, PpoTrainer, PromptCycle, PromptSource, RefSource};
use engine::train::reward_fn::TargetTokenRate;

fn trainer(cfg: PpoTrainConfig) -> (PpoTrainer, Vec<Vec<i32>>) {
    let model = policy("gpt2-tiny");
    let ps = prompts(&model);
    let reference = RefSource::frozen_copy(&model).unwrap();
    let scorer = Box::new(TargetTokenRate { token: 38 });
    (PpoTrainer::new(model, reference, scorer, cfg).unwrap(), ps)
}

#[test]
fn ratio_threshold_skips_minibatches_without_stepping() {
    let mut cfg = tiny_cfg();
    cfg.ppo.ratio_threshold = 0.5; // the mean ratio starts at 1
    let (mut tr, ps) = trainer(cfg);
    let before = weights(&tr.policy);
    let r = tr.step(&ps).unwrap();
    assert_eq!((r.minibatches, r.skipped_ratio, r.epochs), (4, 4, 2));
    assert_eq!(r.skipped_nonfinite, 0);
    assert_eq!(
        (r.loss.policy.pg_loss, r.loss.value.vf_loss, r.loss.total),
        (0.0, 0.0, 0.0),
        "skipped minibatches log zero losses, as TRL"
    );
    assert!(r.loss.policy.approxkl.is_finite() && r.loss.value.vpred.is_finite());
    assert_eq!(
        tr.optimizer.step, 0,
        "engine does not step on a skipped minibatch"
    );
    assert_eq!(weights(&tr.policy), before);
}

#[test]
fn early_stopping_ends_the_epochs() {
    let mut cfg = tiny_cfg();
    cfg.ppo.early_stopping = true;
    cfg.ppo.target_kl = -1e9; // policykl > 1.5·target_kl always holds
    let (mut tr, ps) = trainer(cfg);
    let r = tr.step(&ps).unwrap();
    assert!(r.early_stopped);
    assert_eq!((r.epochs, r.minibatches), (1, 2));
    assert_eq!(tr.optimizer.step, 2);
    tr.cfg.ppo.target_kl = 1e9; // never
    let r = tr.step(&ps).unwrap();
    assert!(!r.early_stopped);
    assert_eq!((r.epochs, r.minibatches), (2, 4));
}

#[test]
fn nan_loss_is_skipped_and_nan_weights_are_restored() {
    let (mut tr, ps) = trainer(tiny_cfg());
    let before = weights(&tr.policy);
    tr.fault = Some(Fault::NanLoss);
    let r = tr.step(&ps).unwrap();
    assert_eq!((r.minibatches, r.skipped_nonfinite), (4, 4));
    assert!(!r.restored && r.grad_norm.is_nan());
    assert_eq!((tr.optimizer.step, tr.optimizer.skipped), (0, 4));
    assert_eq!(
        weights(&tr.policy),
        before,
        "a NaN step must not move weights"
    );

    // A NaN that reaches a weight anyway: the whole update is undone.
    tr.fault = Some(Fault::NanWeight);
    let r = tr.step(&ps).unwrap();
    assert!(r.restored && r.skipped_nonfinite == 0);
    assert_eq!(tr.optimizer.step, 4, "the updates ran, then were undone");
    assert_eq!(weights(&tr.policy), before);

    tr.fault = None;
    let r = tr.step(&ps).unwrap();
    assert!(!r.restored && r.skipped_nonfinite == 0);
    assert_ne!(weights(&tr.policy), before);
}

#[test]
fn non_finite_scores_fail_the_step() {
    let model = policy("gpt2-tiny");
    let ps = prompts(&model);
    let reference = RefSource::frozen_copy(&model).unwrap();
    let nan = |_: &str, _: &str, _: &[u32]| f32::NAN;
    let mut tr = PpoTrainer::new(model, reference, Box::new(nan), tiny_cfg()).unwrap();
    let before = weights(&tr.policy);
    let err = format!("{:#}", tr.step(&ps).unwrap_err());
    assert!(
        err.contains("PPO step 1") && err.contains("non-finite reward (NaN)"),
        "{err}"
    );
    assert_eq!(tr.steps_done(), 0);
    assert_eq!(weights(&tr.policy), before);
}

/// Everything a step reports except wall-clock timings.
fn non_timing(r: &engine::train::ppo::PpoStepReport) -> Vec<(&'static str, u64)> {
    r.metrics()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("time/"))
        .map(|(n, v)| (n, v.to_bits()))
        .collect()
}

#[test]
fn state_restore_continues_exactly() {
    let mut cfg = tiny_cfg();
    cfg.seed = 4;
    let (mut a, ps) = trainer(cfg.clone());
    let mut src = PromptCycle {
        prompts: ps.clone(),
        seed: 9,
    };
    for s in 1..=2 {
        a.step(&src.batch(s, 8).unwrap()).unwrap();
    }
    // Checkpoint: scalar state (through text), moments, weights.
    let state: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&a.state()).unwrap()).unwrap();
    let dir = crate::common::Scratch::new("ppo-opt");
    let opt = dir.path("optimizer.safetensors");
    a.optimizer.save(&opt).unwrap();
    let saved = weights(&a.policy);

    let mut other = cfg.clone();
    other.seed = 99; // restored from the state
    let (mut b, _) = trainer(other);
    for p in b.policy.params.iter() {
        p.tensor.write(&saved[&p.name]).unwrap();
    }
    b.optimizer
        .load(&opt, &b.policy.params, a.optimizer.step)
        .unwrap();
    b.restore(&state).unwrap();
    assert_eq!((b.steps_done(), b.kl_coef()), (2, a.kl_coef()));
    assert_eq!(b.cfg.seed, 4);

    let batch = src.batch(3, 8).unwrap();
    let (ra, rb) = (a.step(&batch).unwrap(), b.step(&batch).unwrap());
    assert_eq!(ra.responses, rb.responses);
    assert_eq!(non_timing(&ra), non_timing(&rb));
    assert_eq!(weights(&a.policy), weights(&b.policy));
    assert_eq!(a.state(), b.state());
    assert!(b.restore(&serde_json::json!({"step": 1})).is_err());
}
