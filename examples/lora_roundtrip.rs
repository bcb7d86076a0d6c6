//! Writes a LoRA adapter that engine trained, for PEFT to load
//! (kernels-tests/fixtures/check_peft_roundtrip.py drives it).
//!
//! ```text
//! cargo run --release --example lora_roundtrip -- MODEL_DIR OUT_DIR TARGETS R ALPHA RSLORA
//! ```
//! attaches adapters (`TARGETS` comma-separated PEFT names), trains them for 8
//! AdamW steps (lr 1e-2) on a fixed batch so that B is no longer zero, saves
//! the adapter to `OUT_DIR` (adapter_config.json + adapter_model.safetensors)
//! and writes `OUT_DIR/engine_logits.json` with the batch and engine's logits
//! with adapters on (`logits`) and off (`base_logits`), flattened [B, T, V].

use anyhow::{Context, Result};
use engine::models::layers::Tokens;
use engine::models::lora::LoraConfig;
use engine::models::CausalLm;
use engine::ops::adamw::{adamw_step, AdamwConfig};
use engine::{DType, Gpu, GpuOptions, Tape, Tensor};
use std::path::PathBuf;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        args.len() == 6,
        "usage: lora_roundtrip MODEL_DIR OUT_DIR TARGETS R ALPHA RSLORA"
    );
    let (model_dir, out) = (PathBuf::from(&args[0]), PathBuf::from(&args[1]));
    let targets: Vec<&str> = args[2].split(',').collect();
    let r: usize = args[3].parse().context("R")?;
    let alpha: f32 = args[4].parse().context("ALPHA")?;
    let gpu = Gpu::new(&GpuOptions::from_env()?)?;
    let mut model = CausalLm::load(&gpu, &model_dir)?;
    let cfg = LoraConfig {
        use_rslora: args[5] == "true",
        ..LoraConfig::new(r, alpha, &targets)
    };
    model.attach_lora(&cfg, 7)?;

    let text = [
        "The miller opened the wooden doors and the water turned the wheel.",
        "A good engine gives the same answer every time.",
    ];
    let seqs: Vec<Vec<i32>> = text
        .iter()
        .map(|t| Ok(model.encode(t)?[..10].to_vec()))
        .collect::<Result<_>>()?;
    let tokens = Tokens::new(seqs.concat(), seqs.len())?;
    let opt = AdamwConfig {
        lr: 1e-2,
        ..Default::default()
    };
    let train: Vec<_> = model.params.iter().filter(|p| p.trainable).collect();
    let zeros = |t: &Tensor| Tensor::zeros(&gpu, t.shape(), DType::F32);
    let state = train
        .iter()
        .map(|p| Ok((zeros(&p.tensor)?, zeros(&p.tensor)?)))
        .collect::<Result<Vec<_>>>()?;
    for step in 1..=8 {
        let tape = Tape::new(&gpu);
        let vars = model.vars(&tape);
        let loss = model.lm_loss(&tape, &vars, &tokens, None)?;
        eprintln!("step {step}: loss {}", loss.tensor().item()?);
        let grads = vars.grads(&tape.backward(&loss)?);
        for (p, (m, v)) in train.iter().zip(&state) {
            adamw_step(&p.tensor, &grads[&p.name], m, v, &opt, step)?;
        }
    }
    drop(train);
    model.save_adapter(&out)?;

    let run = |adapters: bool| -> Result<Vec<f32>> {
        let tape = Tape::new(&gpu);
        let vars = if adapters {
            model.vars(&tape)
        } else {
            model.reference_vars(&tape)?
        };
        model.forward(&tape, &vars, &tokens)?.1.tensor().to_vec()
    };
    let json = serde_json::json!({
        "input_ids": seqs,
        "logits": run(true)?,
        "base_logits": run(false)?,
        "vocab": model.cfg.vocab_size,
    });
    std::fs::write(out.join("engine_logits.json"), json.to_string())?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
