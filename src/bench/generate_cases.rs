//! `generate` rows: KV-cached decoding of a randomly initialised GPT-2 at
//! GPT-2-small width (hidden 768, 12 heads, the 50,257 vocab), with tokens
//! chosen on the device. Each row times a run of 1 + N new tokens minus a run
//! of 1, so the figures are per decode step (the prefill is excluded), and
//! reports the device counters per step: dispatches, submits and bytes read
//! back (the sampler reads B × 4).

use anyhow::Result;
use std::sync::Arc;
use std::time::Instant;

use super::case::{Ceilings, Row};
use crate::device::Gpu;
use crate::models::config::{Arch, ModelShape};
use crate::models::generate::{generate, GenerateConfig};
use crate::models::lm::Head;
use crate::models::sampling::SamplingConfig;
use crate::models::{CausalLm, ModelConfig};

const PROMPT: usize = 8;

fn gpt2_small_width(layers: usize) -> Result<ModelConfig> {
    let shape = ModelShape {
        arch: Arch::Gpt2,
        vocab_size: 50257,
        hidden: 768,
        layers,
        heads: 12,
        intermediate: 3072,
        context: 1024,
    };
    ModelConfig::from_json(shape.hf_config(50256, None), "the generate bench's GPT-2")
}

/// One timed run: seconds and the counters' change.
fn timed(model: &CausalLm, prompts: &[Vec<i32>], new: usize) -> Result<(f64, [u64; 3])> {
    let cfg = GenerateConfig {
        max_new_tokens: new,
        sampling: SamplingConfig::sample(),
        seed: 1,
        ..Default::default()
    };
    let gpu = model.gpu();
    gpu.sync()?;
    let c0 = gpu.counters();
    let t0 = Instant::now();
    generate(model, prompts, &cfg)?;
    gpu.sync()?;
    let dt = t0.elapsed().as_secs_f64();
    let c1 = gpu.counters();
    Ok((
        dt,
        [
            c1.dispatches - c0.dispatches,
            c1.submits - c0.submits,
            c1.bytes_read - c0.bytes_read,
        ],
    ))
}

/// Rows for batch 1 and 8 (quick: 2 layers and 4 steps; else 12 and 16).
pub fn generate_rows(gpu: &Arc<Gpu>, quick: bool, ceil: &Ceilings) -> Result<Vec<Row>> {
    let (layers, steps) = if quick { (2, 4) } else { (12, 16) };
    let cfg = gpt2_small_width(layers)?;
    let model = CausalLm::random(gpu, cfg, Head::Lm, 0)?;
    let params = model.params.numel();
    let mut rows = Vec::new();
    for batch in [1usize, 8] {
        let prompts: Vec<Vec<i32>> = (0..batch)
            .map(|b| {
                (0..PROMPT)
                    .map(|i| ((b * 131 + i * 17) % 50000) as i32)
                    .collect()
            })
            .collect();
        timed(&model, &prompts, 2)?; // compiles every pipeline
        let (t1, c1) = timed(&model, &prompts, 1)?;
        let (tn, cn) = timed(&model, &prompts, 1 + steps)?;
        let per_step = ((tn - t1) / steps as f64).max(1e-9);
        let per = |i: usize| (cn[i] - c1[i]) as f64 / steps as f64;
        // Two FLOPs per weight per token (attention over the short cache aside).
        let gflops = 2.0 * params as f64 * batch as f64 / per_step / 1e9;
        rows.push(Row {
            op: "generate".into(),
            shape: format!("B={batch} gpt2-768x{layers}L V=50257"),
            ms: per_step * 1e3,
            gflops: Some(gflops),
            gbps: None,
            pct_of_ceiling: 100.0 * gflops / ceil.gflops,
            tokens_per_s: Some(batch as f64 / per_step),
            dispatches_per_token: Some(per(0)),
            submits_per_token: Some(per(1)),
            bytes_read_per_token: Some(per(2)),
        });
    }
    Ok(rows)
}
