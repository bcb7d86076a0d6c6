//! GPT-2 (`model_type: gpt2`), as transformers' GPT2LMHeadModel:
//!
//! ```text
//! x = wte[ids] + wpe[positions]
//! per block:  x = x + c_proj(attn(c_attn(ln_1(x))))
//!             x = x + mlp.c_proj(gelu_new(c_fc(ln_2(x))))
//! logits = ln_f(x) · wteᵀ
//! ```
//!
//! Parameters keep transformers' names (`transformer.h.0.attn.c_attn.weight`)
//! and layouts, so loading and saving are plain copies.

use anyhow::Result;
use std::sync::Arc;

use super::checkpoint::Checkpoint;
use super::config::ModelConfig;
use super::layers::{Fwd, KvCache};
use super::params::ParamStore;
use crate::device::Gpu;
use crate::ops::elementwise::add;
use crate::ops::embedding::embedding;
use crate::ops::gelu::{gelu, GeluKind};
use crate::ops::head_slice::{split_qkv, QkvLayout};
use crate::ops::matmul::matmul;
use crate::tape::Var;

const P: &str = "transformer.";

/// Every parameter name with its shape, in checkpoint order.
pub fn param_shapes(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (c, i) = (cfg.hidden, cfg.intermediate);
    let mut out = vec![
        (format!("{P}wte.weight"), vec![cfg.vocab_size, c]),
        (format!("{P}wpe.weight"), vec![cfg.n_ctx, c]),
    ];
    for l in 0..cfg.n_layer {
        let h = format!("{P}h.{l}.");
        // Conv1D weights are stored [in, out]: y = x·W + b, the transpose of nn.Linear.
        out.extend([
            (format!("{h}ln_1.weight"), vec![c]),
            (format!("{h}ln_1.bias"), vec![c]),
            (format!("{h}attn.c_attn.weight"), vec![c, 3 * c]),
            (format!("{h}attn.c_attn.bias"), vec![3 * c]),
            (format!("{h}attn.c_proj.weight"), vec![c, c]),
            (format!("{h}attn.c_proj.bias"), vec![c]),
            (format!("{h}ln_2.weight"), vec![c]),
            (format!("{h}ln_2.bias"), vec![c]),
            (format!("{h}mlp.c_fc.weight"), vec![c, i]),
            (format!("{h}mlp.c_fc.bias"), vec![i]),
            (format!("{h}mlp.c_proj.weight"), vec![i, c]),
            (format!("{h}mlp.c_proj.bias"), vec![c]),
        ]);
    }
    out.push((format!("{P}ln_f.weight"), vec![c]));
    out.push((format!("{P}ln_f.bias"), vec![c]));
    out
}

/// Loads the trunk. Files written by GPT2Model lack the `transformer.` prefix
/// that GPT2LMHeadModel writes; both are accepted and stored prefixed.
/// `lm_head.weight`, when present, is the tied `wte` and is not loaded;
/// `attn.bias` / `attn.masked_bias` are causal-mask buffers, not parameters.
pub fn load(
    gpu: &Arc<Gpu>,
    cfg: &ModelConfig,
    ck: &Checkpoint,
    store: &mut ParamStore,
) -> Result<()> {
    let bare = !ck.contains(&format!("{P}wte.weight")) && ck.contains("wte.weight");
    for (name, shape) in param_shapes(cfg) {
        let key = if bare {
            name.trim_start_matches(P)
        } else {
            name.as_str()
        };
        store.load(gpu, ck, key, &name, &shape)?;
    }
    Ok(())
}

/// The final hidden states [B, T, C] (after ln_f).
pub fn hidden(f: &Fwd, cfg: &ModelConfig, mut cache: Option<&mut KvCache>) -> Result<Var> {
    let (tape, tokens) = (f.tape, f.tokens);
    let (h, d) = (cfg.n_head, cfg.head_dim());
    let tok = embedding(tape, f.p(&format!("{P}wte.weight"))?, &f.ids, &tokens.ids)?;
    // Learned positions, counted from each sequence's first real token.
    let pos = embedding(
        tape,
        f.p(&format!("{P}wpe.weight"))?,
        &f.positions,
        &tokens.positions,
    )?;
    let mut x = add(tape, &tok, &pos)?;
    for l in 0..cfg.n_layer {
        let b = format!("{P}h.{l}.");
        let a = f.layernorm(&x, &format!("{b}ln_1"), cfg.layer_norm_eps)?;
        let qkv = f.linear(&a, &format!("{b}attn.c_attn"), false)?;
        // c_attn's output is [q | k | v] over all heads, each block split into heads.
        let [q, k, v] = split_qkv(tape, &qkv, QkvLayout::Blocked, h, d)?;
        let a = f.attention(&q, &k, &v, cache.as_deref_mut().map(|c| (c, l)))?;
        x = add(tape, &x, &f.linear(&a, &format!("{b}attn.c_proj"), false)?)?;
        let m = f.layernorm(&x, &format!("{b}ln_2"), cfg.layer_norm_eps)?;
        let m = gelu(
            tape,
            &f.linear(&m, &format!("{b}mlp.c_fc"), false)?,
            GeluKind::Tanh,
        )?;
        x = add(tape, &x, &f.linear(&m, &format!("{b}mlp.c_proj"), false)?)?;
    }
    f.commit(cache);
    f.layernorm(&x, &format!("{P}ln_f"), cfg.layer_norm_eps)
}

/// Logits [B, T, V]: the LM head is tied to `wte`, so logits = h·wteᵀ.
pub fn lm_head(f: &Fwd, hidden: &Var) -> Result<Var> {
    matmul(
        f.tape,
        hidden,
        f.p(&format!("{P}wte.weight"))?,
        None,
        false,
        true,
    )
}
