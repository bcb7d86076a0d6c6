//! What a GPT-2-small-sized Llama costs on the current adapter: the real
//! SmolLM2-135M shapes (kernels-tests/fixtures/configs/smollm2-135m-instruct:
//! 30 layers, 576 wide, 9 heads / 3 KV heads, SwiGLU 1536, 49,152 tied vocab)
//! with random weights. Times one forward+backward step at B=1, T tokens
//! (median of 3 after a warm-up) and greedy decoding through the KV cache
//! (per generated token, prefill excluded: (time for 1 + N tokens − time for
//! 1 token) / N). Not a test; the figures go in examples/smollm_dpo/README.md.
//!
//!     cargo run --release --example llama_random_cost [T] [CONFIG_DIR]

use anyhow::Result;
use engine::models::generate::{generate, GenerateConfig};
use engine::models::layers::Tokens;
use engine::models::lm::Head;
use engine::models::{CausalLm, ModelConfig};
use engine::{Gpu, Tape};
use std::time::Instant;

fn secs(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let t0 = Instant::now();
    f()?;
    Ok(t0.elapsed().as_secs_f64())
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let t: usize = args.next().map_or(Ok(64), |s| s.parse())?;
    let dir = args.next().map_or_else(
        || {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("kernels-tests/fixtures/configs/smollm2-135m-instruct")
        },
        Into::into,
    );
    let gpu = Gpu::shared()?;
    println!("adapter: {}", gpu.describe());
    let cfg = ModelConfig::from_file(&dir.join("config.json"))?;
    let vocab = cfg.vocab_size as i32;
    let model = CausalLm::random(&gpu, cfg, Head::Lm, 0)?;
    println!("{} parameters ({})", model.params.numel(), dir.display());
    let ids: Vec<i32> = (0..t as i32).map(|i| (i * 7919) % vocab).collect();
    let tokens = Tokens::new(ids.clone(), 1)?;
    let mut steps = Vec::new();
    for _ in 0..4 {
        steps.push(secs(|| {
            let tape = Tape::new(&gpu);
            let vars = model.vars(&tape);
            let loss = model.lm_loss(&tape, &vars, &tokens, None)?;
            let grads = vars.grads(&tape.backward(&loss)?);
            gpu.sync()?;
            anyhow::ensure!(!grads.is_empty());
            Ok(())
        })?);
    }
    let mut timed = steps[1..].to_vec();
    timed.sort_by(f64::total_cmp);
    println!(
        "forward+backward, B=1 T={t}: {:.2} s (median of 3; runs {steps:.2?})",
        timed[1]
    );
    let prompt = vec![ids[..16.min(t)].to_vec()];
    let run = |n: usize| {
        secs(|| {
            let cfg = GenerateConfig {
                max_new_tokens: n,
                eos: None,
                ..Default::default()
            };
            generate(&model, &prompt, &cfg).map(|_| ())
        })
    };
    let n = 16;
    let (one, many) = (run(1)?, run(1 + n)?);
    println!(
        "greedy decoding: prefill ({} tokens) + 1 token {one:.2} s, {:.3} s per further token",
        prompt[0].len(),
        (many - one) / n as f64
    );
    Ok(())
}
