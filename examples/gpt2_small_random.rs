//! A full GPT-2-small-shaped model (kernels-tests/fixtures/configs/gpt2.config.json: 12
//! layers, 768 wide, 50,257 vocab) with random weights: one forward and
//! backward step at B=1, T=64, timed. Not a test: it shows that the real
//! shapes run (the 154 MB tied embedding is chunked across bindings where
//! needed) and what a step costs on the current adapter.
//!
//!     cargo run --release --example gpt2_small_random [T]

use anyhow::Result;
use engine::models::layers::Tokens;
use engine::models::lm::Head;
use engine::models::{CausalLm, ModelConfig};
use engine::{Gpu, Tape};
use std::time::Instant;

fn main() -> Result<()> {
    let t: usize = std::env::args().nth(1).map_or(Ok(64), |s| s.parse())?;
    let gpu = Gpu::shared()?;
    println!("adapter: {}", gpu.describe());
    let cfg_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("kernels-tests/fixtures/configs/gpt2.config.json");
    let cfg = ModelConfig::from_file(&cfg_path)?;
    let t0 = Instant::now();
    let model = CausalLm::random(&gpu, cfg, Head::Lm, 0)?;
    gpu.sync()?;
    println!(
        "init: {} parameters in {:.1} s",
        model.params.numel(),
        t0.elapsed().as_secs_f64()
    );
    let ids: Vec<i32> = (0..t as i32).map(|i| (i * 7919) % 50257).collect();
    let tokens = Tokens::new(ids, 1)?;
    for step in 0..3 {
        let t0 = Instant::now();
        let tape = Tape::new(&gpu);
        let vars = model.vars(&tape);
        let loss = model.lm_loss(&tape, &vars, &tokens, None)?;
        let l = loss.tensor().item()?;
        let t_fwd = t0.elapsed().as_secs_f64();
        let grads = vars.grads(&tape.backward(&loss)?);
        gpu.sync()?;
        println!(
            "step {step}: loss {l:.4} (ln V = {:.4}), forward {:.2} s, forward+backward {:.2} s, {} gradients",
            (50257f64).ln(),
            t_fwd,
            t0.elapsed().as_secs_f64(),
            grads.len()
        );
    }
    Ok(())
}
