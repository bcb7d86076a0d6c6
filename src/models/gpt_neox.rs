//! GPT-NeoX / Pythia (`model_type: gpt_neox`), as transformers'
//! GPTNeoXForCausalLM:
//!
//! ```text
//! x = embed_in[ids]
//! per layer:  a = dense(attn(rotary(query_key_value(input_layernorm(x)))))
//!   parallel:   x = x + a + mlp(post_attention_layernorm(x))
//!   sequential: x = x + a;  x = x + mlp(post_attention_layernorm(x))
//! logits = final_layer_norm(x) · embed_outᵀ
//! ```
//!
//! Parameters keep transformers' names and `nn.Linear` [out, in] layouts.

use anyhow::Result;
use std::sync::Arc;

use super::checkpoint::Checkpoint;
use super::config::{Activation, ModelConfig};
use super::layers::{Fwd, KvCache};
use super::params::ParamStore;
use crate::device::Gpu;
use crate::ops::elementwise::add;
use crate::ops::embedding::embedding;
use crate::ops::gelu::{gelu, GeluKind};
use crate::ops::head_slice::{split_qkv, QkvLayout};
use crate::ops::matmul::matmul;
use crate::ops::rotary::{rotary, RotaryTable};
use crate::tape::Var;

const P: &str = "gpt_neox.";

/// Every parameter name with its shape, in checkpoint order.
pub fn param_shapes(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (c, i) = (cfg.hidden, cfg.intermediate);
    // The embedding is padded past the tokenizer (Pythia: 50,304 rows for
    // 50,277 tokens); the pad rows are real parameters and stay in the softmax.
    let mut out = vec![(format!("{P}embed_in.weight"), vec![cfg.vocab_size, c])];
    for l in 0..cfg.n_layer {
        let h = format!("{P}layers.{l}.");
        out.extend([
            (format!("{h}input_layernorm.weight"), vec![c]),
            (format!("{h}input_layernorm.bias"), vec![c]),
            (format!("{h}post_attention_layernorm.weight"), vec![c]),
            (format!("{h}post_attention_layernorm.bias"), vec![c]),
            (
                format!("{h}attention.query_key_value.weight"),
                vec![3 * c, c],
            ),
            (format!("{h}attention.query_key_value.bias"), vec![3 * c]),
            (format!("{h}attention.dense.weight"), vec![c, c]),
            (format!("{h}attention.dense.bias"), vec![c]),
            (format!("{h}mlp.dense_h_to_4h.weight"), vec![i, c]),
            (format!("{h}mlp.dense_h_to_4h.bias"), vec![i]),
            (format!("{h}mlp.dense_4h_to_h.weight"), vec![c, i]),
            (format!("{h}mlp.dense_4h_to_h.bias"), vec![c]),
        ]);
    }
    out.push((format!("{P}final_layer_norm.weight"), vec![c]));
    out.push((format!("{P}final_layer_norm.bias"), vec![c]));
    // Untied output embedding (transformers 5 calls it lm_head in memory but
    // still saves `embed_out`, like the published Pythia files).
    out.push(("embed_out.weight".into(), vec![cfg.vocab_size, c]));
    out
}

/// Loads every parameter; `attention.bias`, `masked_bias` and
/// `rotary_emb.inv_freq` buffers in older files are ignored. A
/// sequence-classification checkpoint (`trunk_only`) has no `embed_out`.
pub fn load(
    gpu: &Arc<Gpu>,
    cfg: &ModelConfig,
    ck: &Checkpoint,
    store: &mut ParamStore,
    trunk_only: bool,
) -> Result<()> {
    for (name, shape) in param_shapes(cfg) {
        if trunk_only && name == "embed_out.weight" {
            continue;
        }
        let key = if name == "embed_out.weight" && !ck.contains(&name) {
            "lm_head.weight"
        } else {
            name.as_str()
        };
        store.load(gpu, ck, key, &name, &shape)?;
    }
    Ok(())
}

/// The cos/sin table for this config's partial rotary.
pub fn rotary_table(gpu: &Arc<Gpu>, cfg: &ModelConfig) -> Result<RotaryTable> {
    RotaryTable::new(
        gpu,
        cfg.head_dim(),
        cfg.rotary_pct as f64,
        cfg.rotary_base,
        cfg.n_ctx,
    )
}

fn act(cfg: &ModelConfig) -> GeluKind {
    match cfg.activation {
        Activation::GeluErf => GeluKind::Erf,
        Activation::GeluTanh => GeluKind::Tanh,
    }
}

/// The final hidden states [B, T, C] (after final_layer_norm).
pub fn hidden(
    f: &Fwd,
    cfg: &ModelConfig,
    rope: &RotaryTable,
    mut cache: Option<&mut KvCache>,
) -> Result<Var> {
    let tape = f.tape;
    let (h, d, eps) = (cfg.n_head, cfg.head_dim(), cfg.layer_norm_eps);
    let mut x = embedding(
        tape,
        f.p(&format!("{P}embed_in.weight"))?,
        &f.ids,
        &f.tokens.ids,
    )?;
    for l in 0..cfg.n_layer {
        let b = format!("{P}layers.{l}.");
        let a = f.layernorm(&x, &format!("{b}input_layernorm"), eps)?;
        let qkv = f.linear(&a, &format!("{b}attention.query_key_value"), true)?;
        // query_key_value is fused per head: its output is [..., H, 3·D] with
        // q, k and v contiguous inside each head (not [q | k | v]).
        let [q, k, v] = split_qkv(tape, &qkv, QkvLayout::PerHead, h, d)?;
        // Partial rotary: only the first rotary_pct·D dims of q and k rotate.
        let q = rotary(tape, &q, &f.positions, rope)?;
        let k = rotary(tape, &k, &f.positions, rope)?;
        let a = f.attention(&q, &k, &v, cache.as_deref_mut().map(|c| (c, l)))?;
        let a = f.linear(&a, &format!("{b}attention.dense"), true)?;
        let mlp = |input: &Var| -> Result<Var> {
            let m = f.layernorm(input, &format!("{b}post_attention_layernorm"), eps)?;
            let m = gelu(
                tape,
                &f.linear(&m, &format!("{b}mlp.dense_h_to_4h"), true)?,
                act(cfg),
            )?;
            f.linear(&m, &format!("{b}mlp.dense_4h_to_h"), true)
        };
        x = if cfg.parallel_residual {
            // use_parallel_residual: attention and MLP both read the block input.
            let m = mlp(&x)?;
            add(tape, &add(tape, &x, &a)?, &m)?
        } else {
            let x1 = add(tape, &x, &a)?;
            let m = mlp(&x1)?;
            add(tape, &x1, &m)?
        };
    }
    f.commit(cache);
    f.layernorm(&x, &format!("{P}final_layer_norm"), eps)
}

/// Logits [B, T, V] through the untied `embed_out` [V, C].
pub fn lm_head(f: &Fwd, hidden: &Var) -> Result<Var> {
    matmul(f.tape, hidden, f.p("embed_out.weight")?, None, false, true)
}
