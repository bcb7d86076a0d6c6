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
use serde_json::{json, Value};

use super::arch::{Architecture, Buffers, Cache, Identity, Linears};
use super::checkpoint::Checkpoint;
use super::config::{bool_key, str_key, usize_key, Activation, Arch, ModelConfig, ModelShape};
use super::layers::Fwd;
use crate::ops::elementwise::add;
use crate::ops::embedding::embedding;
use crate::ops::gelu::{gelu, GeluKind};
use crate::ops::head_slice::QkvLayout;
use crate::ops::matmul::matmul;
use crate::tape::Var;

const P: &str = "transformer.";

pub struct Gpt2;

impl Architecture for Gpt2 {
    fn identity(&self) -> Identity {
        let classes = ["GPT2LMHeadModel", "GPT2ForSequenceClassification"];
        Identity::new(Arch::Gpt2, &["gpt2"], classes)
    }

    fn parse_config(&self, cfg: &mut ModelConfig, file: &str) -> Result<()> {
        let raw = &cfg.raw;
        // n_inner: null (the usual) means 4 × n_embd.
        if raw.get("n_inner").is_some_and(|n| !n.is_null()) {
            cfg.intermediate = usize_key(raw, &["n_inner"], file)?;
        }
        let act = str_key(raw, "activation_function").unwrap_or("gelu_new");
        cfg.activation = Activation::parse(act, file)?;
        cfg.tie_word_embeddings = bool_key(raw, "tie_word_embeddings").unwrap_or(true);
        Ok(())
    }

    fn new_config(&self, s: &ModelShape) -> Value {
        json!({
            "n_embd": s.hidden,
            "n_layer": s.layers,
            "n_head": s.heads,
            "n_inner": s.intermediate,
            "n_positions": s.context,
            "n_ctx": s.context,
            "activation_function": "gelu_new",
            "layer_norm_epsilon": 1e-5,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
            "tie_word_embeddings": true,
        })
    }

    fn param_shapes(&self, cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
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

    /// The LM head is tied to `wte`: it has no parameter of its own.
    fn lm_head_params(&self, _cfg: &ModelConfig) -> Vec<String> {
        vec![]
    }

    /// Files written by GPT2Model lack the `transformer.` prefix that
    /// GPT2LMHeadModel writes; both are read and stored prefixed.
    /// `lm_head.weight`, when present, is the tied `wte` and is not read;
    /// `attn.bias` / `attn.masked_bias` are causal-mask buffers, not parameters.
    fn checkpoint_key(&self, ck: &Checkpoint, name: &str) -> String {
        let bare = !ck.contains(&format!("{P}wte.weight")) && ck.contains("wte.weight");
        if bare {
            name.trim_start_matches(P).to_string()
        } else {
            name.to_string()
        }
    }

    /// transformers' `_keys_to_ignore_on_load_unexpected` for GPT-2.
    fn unused_tensor(&self, name: &str) -> bool {
        name.ends_with(".attn.bias")
            || name.ends_with(".attn.masked_bias")
            || name == "lm_head.weight"
    }

    /// GPT-2 scales the projections that write into the residual stream by
    /// 1/√(2·n_layer).
    fn init_std(&self, cfg: &ModelConfig, name: &str, std: f32) -> f32 {
        if name.ends_with("c_proj.weight") {
            std / (2.0 * cfg.n_layer as f32).sqrt()
        } else {
            std
        }
    }

    fn linears(&self) -> Linears {
        Linears {
            layers: "transformer.h",
            modules: &["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"],
            out_in: false,
        }
    }

    fn default_lora_targets(&self) -> &'static [&'static str] {
        &["c_attn"]
    }

    fn hidden(&self, f: &Fwd, cfg: &ModelConfig, _: &Buffers, mut cache: Cache) -> Result<Var> {
        let (tape, tokens) = (f.tape, f.tokens);
        let (h, d) = (cfg.n_head, cfg.head_dim());
        let tok = f.embed(&format!("{P}wte.weight"))?;
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
            let cache_l = cache.as_deref_mut().map(|c| (c, l));
            let a = f.qkv_attention(&qkv, QkvLayout::Blocked, (h, d), None, cache_l)?;
            x = f.linear_onto(&a, &format!("{b}attn.c_proj"), false, &x)?;
            let m = f.layernorm(&x, &format!("{b}ln_2"), cfg.layer_norm_eps)?;
            let m = gelu(
                tape,
                &f.linear(&m, &format!("{b}mlp.c_fc"), false)?,
                // Always the tanh form, whatever `activation_function` says
                // (kept as it was; transformers would honour the config).
                GeluKind::Tanh,
            )?;
            x = f.linear_onto(&m, &format!("{b}mlp.c_proj"), false, &x)?;
        }
        f.commit(cache);
        f.layernorm(&x, &format!("{P}ln_f"), cfg.layer_norm_eps)
    }

    /// The LM head is tied to `wte`, so logits = h·wteᵀ.
    fn lm_head(&self, f: &Fwd, _cfg: &ModelConfig, hidden: &Var) -> Result<Var> {
        matmul(
            f.tape,
            hidden,
            f.p(&format!("{P}wte.weight"))?,
            None,
            false,
            true,
        )
    }
}
