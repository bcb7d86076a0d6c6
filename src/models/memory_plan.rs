//! A memory plan from config.json alone (`engine info --ppo --batch-size
//! --seq-len`): what a run would hold on the device, computed from the
//! shapes, with no weights loaded. Every row uses the sizes the allocating
//! code uses (parameters from [`Architecture::param_shapes`], quantized
//! weights from [`QuantBytes::planned`], adapters `r·(in + out)` per
//! adapted module), so a model with weights reports the same numbers.
//!
//! PPO with LoRA, as the trainers run it:
//! - the policy is the (optionally quantized) base plus f32 adapters;
//! - the reference policy is the same base with the adapters switched off,
//!   so it costs nothing more (TRL's `ref_model=None` with PEFT);
//! - TRL's value head `v_head.summary` Linear(C, 1) sits on the policy's trunk;
//! - the trainable parameters (adapters + value head) have an f32 gradient
//!   and AdamW's two f32 moments each;
//! - the KV cache of a rollout holds, per layer, keys and values of the KV
//!   heads only: `2 · B · L · n_kv_head · head_dim` f32.
//!
//! Activations are not in the plan: they depend on the micro-batch and the
//! kernels' scratch, which `--batch-size` and `--seq-len` only bound.

use anyhow::Result;
use std::collections::BTreeSet;

use super::arch::Architecture;
use super::config::ModelConfig;
use super::lora::LoraConfig;
use crate::quant::{QuantBytes, QuantFormat};

/// What to plan for: the base's quantization; LoRA rank and targets (PEFT
/// names or `all-linear`; None plans the frozen model only); a TRL value
/// head; the KV cache's sequences × positions (prompt + response).
#[derive(Clone, Debug)]
pub struct PlanOptions {
    pub quant: Option<QuantFormat>,
    pub lora: Option<LoraConfig>,
    pub value_head: bool,
    pub kv_cache: (usize, usize),
}

/// One line of the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanRow {
    pub what: String,
    pub bytes: u64,
}

/// The plan's rows, in the order `engine info` prints them.
pub fn memory_plan(
    arch: &dyn Architecture,
    cfg: &ModelConfig,
    opts: &PlanOptions,
) -> Result<Vec<PlanRow>> {
    let linears = arch.linears();
    let modules: BTreeSet<String> = (0..cfg.n_layer)
        .flat_map(|l| {
            let layers = linears.layers;
            linears
                .modules
                .iter()
                .map(move |m| format!("{layers}.{l}.{m}"))
        })
        .collect();
    // (out, in) of a block linear from its stored weight shape.
    let out_in = |shape: &[usize]| {
        if linears.out_in {
            (shape[0], shape[1])
        } else {
            (shape[1], shape[0])
        }
    };
    let (mut f32_params, mut q, mut lora) = (0u64, QuantBytes::default(), 0u64);
    let mut quantized_weights = 0u64;
    for (name, shape) in arch.param_shapes(cfg) {
        let numel: usize = shape.iter().product();
        let module = name
            .strip_suffix(".weight")
            .filter(|m| modules.contains(*m));
        if let Some(m) = module {
            let (o, i) = out_in(&shape);
            if let Some(l) = opts.lora.as_ref().filter(|l| l.matches(m)) {
                lora += 4 * (l.r * (i + o)) as u64;
            }
            if let Some(format) = opts.quant {
                q.add(&QuantBytes::planned(format, o, i));
                quantized_weights += numel as u64;
                continue;
            }
        }
        f32_params += 4 * numel as u64;
    }
    let mut rows = vec![PlanRow {
        what: "policy base: f32 parameters (embeddings, norms, biases, unquantized weights)".into(),
        bytes: f32_params,
    }];
    if let Some(format) = opts.quant {
        let fmt = format!("{format:?}").to_lowercase();
        rows.push(PlanRow {
            what: format!("policy base: {fmt} codes ({quantized_weights} weights)"),
            bytes: q.codes,
        });
        rows.push(PlanRow {
            what: format!("policy base: {fmt} scales and code tables"),
            bytes: q.scales + q.tables,
        });
    }
    let mut trainable = 0u64;
    if opts.lora.is_some() {
        rows.push(PlanRow {
            what: "policy LoRA adapters (f32)".into(),
            bytes: lora,
        });
        rows.push(PlanRow {
            what: "reference policy (the base with adapters off: shared)".into(),
            bytes: 0,
        });
        trainable += lora;
    }
    if opts.value_head {
        let v = 4 * (cfg.hidden as u64 + 1);
        rows.push(PlanRow {
            what: "value head v_head.summary (f32)".into(),
            bytes: v,
        });
        trainable += v;
    }
    if trainable > 0 {
        rows.push(PlanRow {
            what: "gradients of the trainable parameters (f32)".into(),
            bytes: trainable,
        });
        rows.push(PlanRow {
            what: "AdamW moments m and v (2 × f32)".into(),
            bytes: 2 * trainable,
        });
    }
    let (batch, positions) = opts.kv_cache;
    let kv = 2 * cfg.n_layer * batch * positions * cfg.n_kv_head * cfg.head_dim();
    rows.push(PlanRow {
        what: format!(
            "KV cache (f32): batch {batch} × {positions} positions × {} KV heads",
            cfg.n_kv_head
        ),
        bytes: 4 * kv as u64,
    });
    Ok(rows)
}
