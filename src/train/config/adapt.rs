//! The model-adaptation hook every trainer runs after loading its model:
//! [`apply_adaptation`] quantizes the frozen base (`--quant`) and attaches
//! fresh LoRA adapters (`--lora-*`); task heads stay trainable beside them,
//! as PEFT's `modules_to_save`.

use anyhow::{ensure, Context, Result};
use std::sync::Arc;

use super::{CommonArgs, Quant};
use crate::device::Gpu;
use crate::models::lm::{CausalLm, Head};
use crate::models::lora::is_adapter_param;

/// Seed offset of LoRA's initialisation (distinct from data order seeds).
const LORA_INIT_STREAM: u64 = 0x4c6f_5241;

/// Adapts a loaded model as the flags ask: quantizes the frozen base
/// (`--quant`), then attaches fresh LoRA adapters (`--lora-*`). With
/// adapters, task heads (`v_head.*`, `score.weight`) stay trainable, as
/// PEFT's `modules_to_save`; everything else is frozen.
pub fn apply_adaptation(model: &mut CausalLm, args: &CommonArgs) -> Result<()> {
    args.validate()?;
    if args.quant != Quant::None {
        quantize_base(model, args.quant)?;
    }
    if let Some(cfg) = args.lora_config(model) {
        model
            .attach_lora(&cfg, args.seed ^ LORA_INIT_STREAM)
            .with_context(|| format!("--lora-r {}", args.lora_r))?;
        keep_heads_trainable(model);
    }
    Ok(())
}

/// Loads `--model` for a trainer of its LM head (`trainer`, e.g. "SFT",
/// names it in the error for a reward model) and adapts it as the flags ask
/// ([`apply_adaptation`]).
pub fn load_adapted_lm(gpu: &Arc<Gpu>, args: &CommonArgs, trainer: &str) -> Result<CausalLm> {
    let mut model = CausalLm::load(gpu, args.model_dir()?)?;
    ensure!(
        model.head != Head::Reward,
        "{} is a sequence-classification model; {trainer} needs an LM head",
        args.model_dir()?.display()
    );
    apply_adaptation(&mut model, args)?;
    Ok(model)
}

/// Stores the frozen base as int8/NF4 (`CausalLm::quantize_base`).
fn quantize_base(model: &mut CausalLm, quant: Quant) -> Result<()> {
    let format = match quant {
        Quant::None => return Ok(()),
        Quant::Int8 => crate::quant::QuantFormat::Int8,
        Quant::Nf4 => crate::quant::QuantFormat::Nf4,
    };
    model.quantize_base(format)
}

/// True for head parameters that train alongside LoRA adapters (PEFT's
/// SEQ_CLS `modules_to_save`: `score`, and `classifier` matched as a name
/// suffix, so DistilBERT's `pre_classifier` too).
pub fn is_head_param(name: &str) -> bool {
    name.starts_with("v_head.")
        || name == "score.weight"
        || name.starts_with("classifier.")
        || name.starts_with("pre_classifier.")
}

/// Adapters and heads trainable, the rest frozen (after attaching or
/// loading adapters, which freeze everything else).
pub fn keep_heads_trainable(model: &mut CausalLm) {
    model
        .params
        .set_trainable(|n| is_adapter_param(n) || is_head_param(n));
}
