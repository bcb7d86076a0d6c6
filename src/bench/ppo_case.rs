//! `engine bench --ppo`: PPO steps at the TRL 0.11 example's shape (a GPT-2
//! with hidden 96, 3 layers, 4 heads and the real 50,257 vocab, random
//! weights; batch 8, 24 new tokens, 4 PPO epochs, mini-batch 4, full
//! fine-tuning with a frozen reference copy), with a keyword reward counted
//! on token ids (GPT-2's " good", " great", " happy"), so no tokenizer is
//! needed. Reports the median seconds per step and per phase, each with its
//! MFU: useful FLOPs ÷ time ÷ `fma_peak`. The update phase (`ppo_train`) is
//! split into its forward passes, backward passes and optimizer steps, with
//! the device waited on at each boundary (`sync_phases`).
//! `benches/trl_ppo_step.py` runs TRL 0.11.4 at the same shapes (queries of
//! the same 8 tokens' length) and `benches/ppo_vs_trl.py` both back to back.
//!
//! Useful FLOPs use 2·P per token for a forward and 6·P for forward +
//! backward, P the weights a token meets (the tied LM head counts once,
//! position embeddings do not): generation and the two no-grad passes are
//! 2·P·B·L each (L = prompt + response), the update 6·P·B·L per epoch.

use anyhow::Result;
use std::sync::Arc;

use super::case::{Ceilings, Row};
use crate::device::Gpu;
use crate::models::config::{Arch, ModelShape};
use crate::models::lm::Head;
use crate::models::{CausalLm, ModelConfig};
use crate::rng::Rng;
use crate::train::ppo::{PpoTrainConfig, PpoTrainer, RefSource};

const KEYWORD_IDS: [u32; 3] = [922, 1049, 3772];
const PROMPT: usize = 8;

fn keyword_reward(_prompt: &str, _response: &str, ids: &[u32]) -> f32 {
    KEYWORD_IDS.iter().filter(|k| ids.contains(k)).count() as f32
}

fn row(op: &str, shape: &str, secs: f64, flops: f64, ceil: &Ceilings) -> Row {
    let gflops = flops / secs / 1e9;
    Row {
        op: op.into(),
        shape: shape.into(),
        ms: secs * 1e3,
        gflops: (flops > 0.0).then_some(gflops),
        gbps: None,
        pct_of_ceiling: 100.0 * gflops / ceil.gflops,
        tokens_per_s: None,
        dispatches_per_token: None,
        submits_per_token: None,
        bytes_read_per_token: None,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One warm-up step, then `steps` (quick: 2, else 5) timed ones.
pub fn ppo_rows(gpu: &Arc<Gpu>, quick: bool, ceil: &Ceilings) -> Result<Vec<Row>> {
    let shape = ModelShape {
        arch: Arch::Gpt2,
        vocab_size: 50257,
        hidden: 96,
        layers: 3,
        heads: 4,
        intermediate: 384,
        context: 1024,
    };
    let cfg = ModelConfig::from_json(shape.hf_config(50256, None), "the PPO bench's GPT-2")?;
    let mut policy = CausalLm::random(gpu, cfg, Head::Lm, 0)?;
    policy.add_value_head(1)?;
    let p_eff = (policy.params.numel() - shape.context * shape.hidden) as f64;
    let reference = RefSource::frozen_copy(&policy)?;
    let (batch, new_tokens) = (8, 24);
    let tc = PpoTrainConfig {
        batch_size: batch,
        mini_batch_size: 4,
        max_new_tokens: new_tokens,
        seed: 0,
        sync_phases: true,
        ..Default::default()
    };
    let epochs = tc.ppo.ppo_epochs as f64;
    let mut trainer = PpoTrainer::new(policy, reference, Box::new(keyword_reward), tc)?;
    let mut rng = Rng::new(7);
    let prompts: Vec<Vec<i32>> = (0..batch)
        .map(|_| (0..PROMPT).map(|_| rng.below(50000) as i32).collect())
        .collect();
    let steps = if quick { 2 } else { 5 };
    trainer.step(&prompts)?;
    let mut phases: [Vec<f64>; 9] = Default::default();
    let mut lens = Vec::new();
    for _ in 0..steps {
        let rep = trainer.step(&prompts)?;
        let t = rep.times;
        for (i, v) in [
            t.generate,
            t.forward,
            t.reference,
            t.score,
            t.train,
            t.train_forward,
            t.train_backward,
            t.optimizer,
            rep.total_s,
        ]
        .into_iter()
        .enumerate()
        {
            phases[i].push(v);
        }
        lens.push(rep.tokens as f64);
    }
    if let Some(table) = gpu.profile_table()? {
        eprintln!("{table}");
    }
    // Tokens of the whole sequences (prompt + response) per step.
    let tokens = (batch * PROMPT) as f64 + median(lens);
    let pass = 2.0 * p_eff * tokens;
    let work = [
        pass,
        pass,
        pass,
        0.0,
        3.0 * pass * epochs,
        pass * epochs,
        2.0 * pass * epochs,
        0.0,
    ];
    // ppo_train = its forward + backward + optimizer rows (+ bookkeeping).
    let names = [
        "ppo_generate",
        "ppo_forward",
        "ppo_reference",
        "ppo_score",
        "ppo_train",
        "ppo_train_forward",
        "ppo_train_backward",
        "ppo_optimizer",
    ];
    let label = format!("gpt2-96x3L B={batch} R={new_tokens} ep=4 mb=4");
    let mut rows = vec![row(
        "ppo_step",
        &label,
        median(phases[8].clone()),
        work.iter().sum(),
        ceil,
    )];
    for (i, name) in names.iter().enumerate() {
        rows.push(row(name, &label, median(phases[i].clone()), work[i], ceil));
    }
    Ok(rows)
}
