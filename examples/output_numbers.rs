//! engine's numbers for one output directory, for
//! kernels-tests/fixtures/check_hf_outputs.py to compare with what
//! transformers, PEFT and TRL compute from the same files.
//!
//! ```text
//! cargo run --release --example output_numbers -- KIND DIR IDS
//! ```
//! KIND: `lm` (a full model: logits), `adapter` (a PEFT adapter on its
//! `base_model_name_or_path`: logits), `value` (a PPO LoRA adapter with its
//! value head in DIR/model.safetensors, TRL's layout: logits and values),
//! `reward` (a sequence-classification model: the score). IDS: token ids,
//! comma-separated, one sequence. Prints one JSON object: `logits` [T·V],
//! `values` [T], `score` [1], whichever apply.

use anyhow::{bail, Context, Result};
use engine::models::checkpoint::Checkpoint;
use engine::models::layers::{Fwd, Tokens};
use engine::models::CausalLm;
use engine::{Gpu, GpuOptions, Tape};
use serde_json::{json, Map, Value};
use std::path::Path;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(args.len() == 3, "usage: output_numbers KIND DIR IDS");
    let (kind, dir) = (args[0].as_str(), Path::new(&args[1]));
    let ids: Vec<i32> = args[2]
        .split(',')
        .map(|s| s.trim().parse().context("IDS"))
        .collect::<Result<_>>()?;
    let gpu = Gpu::new(&GpuOptions::from_env()?)?;
    let model = match kind {
        "lm" | "reward" => CausalLm::load(&gpu, dir)?,
        "adapter" | "value" => {
            let cfg: Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("adapter_config.json"))?)?;
            let base = cfg["base_model_name_or_path"]
                .as_str()
                .context("adapter_config.json names no base model")?;
            let mut m = CausalLm::load(&gpu, Path::new(base))?;
            m.load_adapter(dir)?;
            if kind == "value" {
                m.add_value_head(0)?;
                let ck = Checkpoint::open_file(&dir.join("model.safetensors"))?;
                for p in m.params.iter().filter(|p| p.name.starts_with("v_head.")) {
                    p.tensor
                        .write(&ck.get_shaped(&p.name, p.tensor.shape())?.data)?;
                }
            }
            m
        }
        other => bail!("unknown KIND `{other}`: lm, adapter, value or reward"),
    };
    let tokens = Tokens::new(ids, 1)?;
    let tape = Tape::new(&gpu);
    let _g = tape.no_grad();
    let vars = model.vars(&tape);
    let f = Fwd::new(&tape, &vars, &tokens, None)?;
    let h = model.hidden(&f, None)?;
    let mut out = Map::new();
    if kind == "reward" {
        out.insert(
            "score".into(),
            json!(model.scores(&f, &h)?.tensor().to_vec()?),
        );
    } else {
        out.insert(
            "logits".into(),
            json!(model.logits(&f, &h)?.tensor().to_vec()?),
        );
    }
    if kind == "value" {
        out.insert(
            "values".into(),
            json!(model.values(&f, &h)?.tensor().to_vec()?),
        );
    }
    println!("{}", Value::Object(out));
    Ok(())
}
