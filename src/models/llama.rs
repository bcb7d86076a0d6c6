//! Llama (`model_type: llama`) and the variants that share its layout, as
//! transformers' LlamaForCausalLM, Qwen2ForCausalLM and MistralForCausalLM:
//!
//! ```text
//! x = embed_tokens[ids]
//! per layer:  n = input_layernorm(x)                              (RMSNorm)
//!             q, k, v = q_proj(n), k_proj(n), v_proj(n)           (H, Hkv, Hkv heads)
//!             h = x + o_proj(attn(rope(q), rope(k), v))           (grouped-query)
//!             n = post_attention_layernorm(h)
//!             x = h + down_proj(silu(gate_proj(n)) · up_proj(n))  (SwiGLU)
//! logits = norm(x) · lm_headᵀ        (lm_head = embed_tokens when tied)
//! ```
//!
//! Parameters keep transformers' names (`model.layers.0.self_attn.q_proj.weight`)
//! and `nn.Linear` [out, in] layouts. The variants differ only in biases:
//! Llama's q/k/v/o carry one when `attention_bias` and gate/up/down when
//! `mlp_bias`; Qwen2 always has q/k/v biases and never o_proj or MLP biases;
//! Mistral has none. [`Fwd::linear`] adds a bias wherever the parameter
//! exists, so [`Llama::param_shapes`] is the one place that decides.

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use std::sync::Arc;

use super::arch::{Architecture, Buffers, Cache, Identity, Linears};
use super::checkpoint::Checkpoint;
use super::config::{bool_key, f32_key, str_key, usize_key, Arch, Head, ModelConfig, ModelShape};
use super::layers::Fwd;
use crate::device::Gpu;
use crate::ops::matmul::matmul;
use crate::ops::rotary::{rotary, RopeScaling};
use crate::ops::swiglu::swiglu;
use crate::tape::Var;

const P: &str = "model.";
const EMBED: &str = "model.embed_tokens.weight";
const LM_HEAD: &str = "lm_head.weight";

pub struct Llama;

/// Which biases a config's projections carry (transformers' per-model code).
struct Biases {
    /// q_proj, k_proj, v_proj.
    qkv: bool,
    o: bool,
    mlp: bool,
}

fn model_type(raw: &Value) -> &str {
    str_key(raw, "model_type").unwrap_or("llama")
}

fn biases(raw: &Value) -> Biases {
    match model_type(raw) {
        // Qwen2Attention: q/k/v `bias=True`, o_proj `bias=False`; Qwen2MLP has none.
        "qwen2" => Biases {
            qkv: true,
            o: false,
            mlp: false,
        },
        // MistralAttention / MistralMLP: no biases at all.
        "mistral" => Biases {
            qkv: false,
            o: false,
            mlp: false,
        },
        _ => {
            let attn = bool_key(raw, "attention_bias").unwrap_or(false);
            Biases {
                qkv: attn,
                o: attn,
                mlp: bool_key(raw, "mlp_bias").unwrap_or(false),
            }
        }
    }
}

/// The RoPE type: transformers 5 writes `rope_parameters` (with
/// `rope_theta` inside), older files `rope_scaling`.
fn rope_scaling(raw: &Value, n_ctx: usize, file: &str) -> Result<RopeScaling> {
    let v = raw
        .get("rope_parameters")
        .filter(|v| !v.is_null())
        .or_else(|| raw.get("rope_scaling"));
    RopeScaling::from_hf(v, n_ctx).with_context(|| format!("{file}: reading the RoPE settings"))
}

/// Sliding-window attention is not implemented: a window shorter than the
/// context would attend differently, so such configs are refused.
fn check_sliding_window(raw: &Value, n_ctx: usize, file: &str) -> Result<()> {
    // Qwen2 turns the window on with use_sliding_window (default false);
    // Mistral's sliding_window applies whenever it is set.
    let used = match model_type(raw) {
        "qwen2" => bool_key(raw, "use_sliding_window").unwrap_or(false),
        _ => true,
    };
    // transformers 5 also lists each layer's kind; a sliding one is refused.
    let kinds = raw.get("layer_types").and_then(Value::as_array);
    if let Some(k) = kinds
        .into_iter()
        .flatten()
        .find(|k| k.as_str() != Some("full_attention"))
    {
        bail!(
            "{file}: layer_types lists {k}; engine has only full attention \
             (use a config whose layer_types are all \"full_attention\")"
        );
    }
    if let (true, Some(w)) = (used, raw.get("sliding_window").and_then(Value::as_u64)) {
        ensure!(
            w as usize >= n_ctx,
            "{file}: sliding_window {w} is shorter than the context ({n_ctx} positions); \
             engine has no sliding-window attention (use a config with sliding_window null)"
        );
    }
    Ok(())
}

impl Architecture for Llama {
    fn identity(&self) -> Identity {
        let classes = ["LlamaForCausalLM", "LlamaForSequenceClassification"];
        Identity::new(Arch::Llama, &["llama", "qwen2", "mistral"], classes)
    }

    /// Qwen2 and Mistral files name their own classes.
    fn class_name_for(&self, cfg: &ModelConfig, head: Head) -> &'static str {
        let lm = head != Head::Reward;
        match (model_type(&cfg.raw), lm) {
            ("qwen2", true) => "Qwen2ForCausalLM",
            ("qwen2", false) => "Qwen2ForSequenceClassification",
            ("mistral", true) => "MistralForCausalLM",
            ("mistral", false) => "MistralForSequenceClassification",
            _ => self.class_name(head),
        }
    }

    fn parse_config(&self, cfg: &mut ModelConfig, file: &str) -> Result<()> {
        let raw = &cfg.raw;
        cfg.intermediate = usize_key(raw, &["intermediate_size"], file)?;
        cfg.layer_norm_eps = f32_key(raw, &["rms_norm_eps"]).unwrap_or(1e-6);
        // num_key_value_heads: null or absent means multi-head attention.
        if let Some(kv) = raw.get("num_key_value_heads").and_then(Value::as_u64) {
            cfg.n_kv_head = kv as usize;
        }
        ensure!(
            cfg.n_kv_head >= 1 && cfg.n_head.is_multiple_of(cfg.n_kv_head),
            "{file}: num_key_value_heads {} must divide num_attention_heads {}",
            cfg.n_kv_head,
            cfg.n_head
        );
        cfg.head_size = raw
            .get("head_dim")
            .and_then(Value::as_u64)
            .map(|d| d as usize);
        let d = cfg.head_dim();
        ensure!(
            d > 0 && d.is_multiple_of(4) && d <= 128,
            "{file}: head_dim {d} is not supported (engine's attention needs a multiple of 4, at most 128)"
        );
        // The rotary embedding covers the whole head.
        cfg.rotary_pct = 1.0;
        cfg.tie_word_embeddings = bool_key(raw, "tie_word_embeddings").unwrap_or(false);
        match str_key(raw, "hidden_act").unwrap_or("silu") {
            "silu" | "swish" => {}
            other => bail!("{file}: hidden_act `{other}` is not supported (Llama models use silu)"),
        }
        rope_scaling(raw, cfg.n_ctx, file)?;
        check_sliding_window(raw, cfg.n_ctx, file)
    }

    /// LlamaConfig's defaults (untied, no biases, rope_theta 10000).
    fn new_config(&self, s: &ModelShape) -> Value {
        s.hf_sizes(json!({
            "num_key_value_heads": s.heads,
            "head_dim": s.hidden / s.heads.max(1),
            "hidden_act": "silu",
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "rope_scaling": null,
            "attention_bias": false,
            "mlp_bias": false,
            "tie_word_embeddings": false,
            "attention_dropout": 0.0,
        }))
    }

    fn param_shapes(&self, cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
        let (c, i, d) = (cfg.hidden, cfg.intermediate, cfg.head_dim());
        let (q, kv) = (cfg.n_head * d, cfg.n_kv_head * d);
        let bias = biases(&cfg.raw);
        let mut out = vec![(EMBED.to_string(), vec![cfg.vocab_size, c])];
        for l in 0..cfg.n_layer {
            let h = format!("{P}layers.{l}.");
            let mut linear = |name: &str, o: usize, n: usize, has_bias: bool| {
                out.push((format!("{h}{name}.weight"), vec![o, n]));
                if has_bias {
                    out.push((format!("{h}{name}.bias"), vec![o]));
                }
            };
            linear("self_attn.q_proj", q, c, bias.qkv);
            linear("self_attn.k_proj", kv, c, bias.qkv);
            linear("self_attn.v_proj", kv, c, bias.qkv);
            linear("self_attn.o_proj", c, q, bias.o);
            linear("mlp.gate_proj", i, c, bias.mlp);
            linear("mlp.up_proj", i, c, bias.mlp);
            linear("mlp.down_proj", c, i, bias.mlp);
            out.push((format!("{h}input_layernorm.weight"), vec![c]));
            out.push((format!("{h}post_attention_layernorm.weight"), vec![c]));
        }
        out.push((format!("{P}norm.weight"), vec![c]));
        out.extend(
            self.lm_head_params(cfg)
                .into_iter()
                .map(|n| (n, vec![cfg.vocab_size, c])),
        );
        out
    }

    /// An untied `lm_head`; a sequence-classification checkpoint has none.
    fn lm_head_params(&self, cfg: &ModelConfig) -> Vec<String> {
        if cfg.tie_word_embeddings {
            vec![]
        } else {
            vec![LM_HEAD.into()]
        }
    }

    /// Files written by the bare LlamaModel lack the `model.` prefix; both are
    /// read and stored prefixed. A tied file's `lm_head.weight`, when saved
    /// anyway, is the embedding and is not read.
    fn checkpoint_key(&self, ck: &Checkpoint, name: &str) -> String {
        let bare = !ck.contains(EMBED) && ck.contains("embed_tokens.weight");
        if bare && name.starts_with(P) {
            name.trim_start_matches(P).to_string()
        } else {
            name.to_string()
        }
    }

    fn linears(&self) -> Linears {
        Linears {
            layers: "model.layers",
            modules: &[
                "self_attn.q_proj",
                "self_attn.k_proj",
                "self_attn.v_proj",
                "self_attn.o_proj",
                "mlp.gate_proj",
                "mlp.up_proj",
                "mlp.down_proj",
            ],
            out_in: true,
        }
    }

    /// PEFT's default for llama, qwen2 and mistral.
    fn default_lora_targets(&self) -> &'static [&'static str] {
        &["q_proj", "v_proj"]
    }

    /// The (scaled) cos/sin table over the whole context. A `dynamic` table
    /// for the context equals the default one (NTK scaling starts past
    /// `max_position_embeddings`, which the context never exceeds).
    fn buffers(&self, gpu: &Arc<Gpu>, cfg: &ModelConfig) -> Result<Buffers> {
        // rotary_pct is 1 and rotary_base is rope_theta (ModelConfig::common).
        Buffers::rotary(gpu, cfg, &rope_scaling(&cfg.raw, cfg.n_ctx, "config.json")?)
    }

    fn hidden(&self, f: &Fwd, cfg: &ModelConfig, bufs: &Buffers, mut cache: Cache) -> Result<Var> {
        let tape = f.tape;
        let (b, t) = (f.tokens.batch, f.tokens.seq);
        let (d, eps) = (cfg.head_dim(), cfg.layer_norm_eps);
        let rope = bufs.rope("Llama")?;
        let heads = |x: &Var, h: usize| tape.reshape(x, &[b, t, h, d]);
        let mut x = f.embed(EMBED)?;
        for l in 0..cfg.n_layer {
            let p = format!("{P}layers.{l}.");
            let n = f.rmsnorm(&x, &format!("{p}input_layernorm"), eps)?;
            let proj = |m: &str| f.linear(&n, &format!("{p}self_attn.{m}"), true);
            let q = heads(&proj("q_proj")?, cfg.n_head)?;
            let k = heads(&proj("k_proj")?, cfg.n_kv_head)?;
            let v = heads(&proj("v_proj")?, cfg.n_kv_head)?;
            let q = rotary(tape, &q, &f.positions, rope)?;
            let k = rotary(tape, &k, &f.positions, rope)?;
            let a = f.attention(&q, &k, &v, cache.as_deref_mut().map(|c| (c, l)))?;
            let h = f.linear_onto(&a, &format!("{p}self_attn.o_proj"), true, &x)?;
            let n = f.rmsnorm(&h, &format!("{p}post_attention_layernorm"), eps)?;
            let mlp = |m: &str| f.linear(&n, &format!("{p}mlp.{m}"), true);
            let m = swiglu(tape, &mlp("gate_proj")?, &mlp("up_proj")?)?;
            x = f.linear_onto(&m, &format!("{p}mlp.down_proj"), true, &h)?;
        }
        f.commit(cache);
        f.rmsnorm(&x, &format!("{P}norm"), eps)
    }

    /// Logits through `lm_head` [V, C], or the embedding when tied.
    fn lm_head(&self, f: &Fwd, cfg: &ModelConfig, hidden: &Var) -> Result<Var> {
        let w = if cfg.tie_word_embeddings {
            EMBED
        } else {
            LM_HEAD
        };
        matmul(f.tape, hidden, f.p(w)?, None, false, true)
    }
}
