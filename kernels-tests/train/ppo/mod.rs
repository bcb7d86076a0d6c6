//! The PPO trainer (`engine::train::ppo`) on tiny models: a seeded
//! end-to-end run that raises a target token's rate with bounded KL (full
//! fine-tuning and LoRA), the rollout against direct log-prob computations,
//! reward-model scoring, the skip/stop/NaN guards, state round trips, TRL's
//! score/whitening/accumulation options, every health check on synthetic
//! traces, and the step's read-backs counted by the profiler.

mod e2e;
mod guards;
mod health;
mod options;
mod readbacks;
mod rollout;

use crate::common::gpu;
use engine::models::lm::CausalLm;
use engine::train::ppo::PpoTrainConfig;
use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// models/fixtures/<name> with a fresh value head (seeded).
pub fn policy(name: &str) -> CausalLm {
    let mut m = CausalLm::load(&gpu(), &root().join("models/fixtures").join(name)).unwrap();
    m.add_value_head(7).unwrap();
    m
}

/// Prompts from the fixture tokenizer (short texts of the tiny corpus).
pub fn prompts(model: &CausalLm) -> Vec<Vec<i32>> {
    [
        "The miller opened",
        "A good engine",
        "In the morning the baker",
        "The river turned",
        "The dog was",
        "A letter about the",
        "The fisher and the",
        "In the mill",
    ]
    .iter()
    .map(|t| model.encode(t).unwrap())
    .collect()
}

/// A tiny, fast configuration for tests.
pub fn tiny_cfg() -> PpoTrainConfig {
    let mut cfg = PpoTrainConfig {
        batch_size: 8,
        mini_batch_size: 4,
        max_new_tokens: 8,
        lr: 3e-3,
        max_grad_norm: Some(1.0),
        seed: 1,
        ..Default::default()
    };
    cfg.ppo.ppo_epochs = 2;
    cfg
}

/// Host copies of every parameter, by name.
pub fn weights(model: &CausalLm) -> std::collections::BTreeMap<String, Vec<f32>> {
    model
        .params
        .iter()
        .map(|p| (p.name.clone(), p.tensor.to_vec().unwrap()))
        .collect()
}
