//! `engine info --ppo / --seq-len`: the memory plan of a run from
//! config.json alone (see `engine::models::memory_plan`), so a model can be
//! sized before its weights are downloaded.

use anyhow::{ensure, Result};

use super::models::InfoArgs;
use engine::models::lora::LoraConfig;
use engine::models::memory_plan::{memory_plan, PlanOptions};
use engine::models::quantized::parse_quant;
use engine::models::registry::architecture;
use engine::models::ModelConfig;

pub fn plan_cmd(a: &InfoArgs) -> Result<()> {
    let cfg = ModelConfig::from_file(&a.model.model.join("config.json"))?;
    ensure!(a.batch_size > 0, "--batch-size must be at least 1");
    let seq_len = a.seq_len.unwrap_or(cfg.n_ctx);
    ensure!(
        seq_len > 0 && seq_len <= cfg.n_ctx,
        "--seq-len {seq_len} must be between 1 and the model's context of {}",
        cfg.n_ctx
    );
    let lora = a.lora_r.map(|r| {
        let targets: Vec<&str> = a.lora_targets.split(',').map(str::trim).collect();
        LoraConfig::new(r, 2.0 * r as f32, &targets)
    });
    let opts = PlanOptions {
        quant: parse_quant(&a.model.quant)?,
        lora,
        value_head: a.ppo,
        kv_cache: (a.batch_size, seq_len),
    };
    let rows = memory_plan(architecture(cfg.arch), &cfg, &opts)?;
    let total: u64 = rows.iter().map(|r| r.bytes).sum();
    if a.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"what": r.what, "bytes": r.bytes}))
            .collect();
        let v = serde_json::json!({
            "architecture": format!("{:?}", cfg.arch), "layers": cfg.n_layer, "hidden": cfg.hidden,
            "heads": cfg.n_head, "kv_heads": cfg.n_kv_head, "head_dim": cfg.head_dim(),
            "vocab": cfg.vocab_size, "batch": a.batch_size, "seq_len": seq_len,
            "plan": rows, "total_bytes": total,
        });
        println!("{v}");
        return Ok(());
    }
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    println!(
        "memory plan: {:?}, {} layers, hidden {}, {} heads / {} KV heads, vocab {}",
        cfg.arch, cfg.n_layer, cfg.hidden, cfg.n_head, cfg.n_kv_head, cfg.vocab_size
    );
    for r in &rows {
        println!(
            "  {:<78} {:>14} bytes {:>8.3} GiB",
            r.what,
            r.bytes,
            gib(r.bytes)
        );
    }
    println!(
        "  {:<78} {total:>14} bytes {:>8.3} GiB",
        "total (without activations)",
        gib(total)
    );
    Ok(())
}
