//! The shared optimizer step on a real model: loss falls, clipping applies,
//! a non-finite step is skipped without touching weights or moments, and the
//! moments round-trip through their checkpoint file.

use super::parity::fixture;
use crate::common::*;
use engine::models::layers::Tokens;
use engine::ops::adamw::AdamwConfig;
use engine::train::optim::{LrSchedule, Optimizer, Schedule};
use engine::{Tape, Tensor};
use std::collections::BTreeMap;

fn batch() -> Tokens {
    let ids: Vec<i32> = (0..24).map(|i| (i * 37 % 150) + 2).collect();
    Tokens::new(ids, 2).unwrap()
}

fn snapshot(model: &engine::models::CausalLm) -> Vec<Vec<f32>> {
    model
        .params
        .iter()
        .map(|p| p.tensor.to_vec().unwrap())
        .collect()
}

#[test]
fn training_lowers_the_loss_and_skips_non_finite_steps() {
    let (model, _, _) = fixture("gpt2-tiny");
    let sched = LrSchedule {
        base: 3e-3,
        warmup_steps: 2,
        total_steps: 12,
        kind: Schedule::Cosine,
    };
    let mut opt = Optimizer::new(
        AdamwConfig {
            lr: 3e-3,
            ..Default::default()
        },
        sched,
        Some(1.0),
    );
    let tokens = batch();
    let mut losses = Vec::new();
    for _ in 0..12 {
        let tape = Tape::new(&gpu());
        let vars = model.vars(&tape);
        let loss = model.lm_loss(&tape, &vars, &tokens, None).unwrap();
        let l = loss.tensor().item().unwrap();
        let grads = vars.grads(&tape.backward(&loss).unwrap());
        let r = opt.step(&model.params, &grads, l).unwrap();
        assert!(r.applied && r.grad_norm.is_finite());
        losses.push(l);
    }
    assert!(
        losses[11] < 0.7 * losses[0],
        "loss did not fall: {losses:?}"
    );
    assert_eq!(opt.step, 12);

    // A NaN in one gradient vetoes the whole step.
    let before = snapshot(&model);
    let tape = Tape::new(&gpu());
    let vars = model.vars(&tape);
    let loss = model.lm_loss(&tape, &vars, &tokens, None).unwrap();
    let mut grads: BTreeMap<String, Tensor> = vars.grads(&tape.backward(&loss).unwrap());
    let name = "transformer.h.0.ln_1.bias".to_string();
    let mut g = grads[&name].to_vec().unwrap();
    g[3] = f32::NAN;
    grads.insert(name, upload(&[g.len()], &g));
    let r = opt.step(&model.params, &grads, 1.0).unwrap();
    assert!(!r.applied && r.grad_norm.is_nan());
    let r = opt.step(&model.params, &BTreeMap::new(), f32::INFINITY);
    assert!(r.is_err(), "no gradients is an error, not a silent no-op");
    assert_eq!(
        snapshot(&model),
        before,
        "a skipped step must not touch the weights"
    );
    assert_eq!((opt.step, opt.skipped), (12, 1));

    // Moments round-trip.
    let scratch = crate::common::Scratch::new("opt");
    let path = scratch.path("optimizer.safetensors");
    opt.save(&path).unwrap();
    let mut again = Optimizer::new(opt.cfg, opt.schedule, opt.max_grad_norm);
    again.load(&path, &model.params, opt.step).unwrap();
    assert_eq!(again.step, 12);
}
