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

use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::sync::Arc;

use super::arch::{Architecture, Buffers, Cache, Identity, Linears};
use super::checkpoint::Checkpoint;
use super::config::{bool_key, f32_key, str_key, usize_key, Activation, Arch};
use super::config::{ModelConfig, ModelShape};
use super::layers::Fwd;
use crate::device::Gpu;
use crate::ops::gelu::gelu;
use crate::ops::head_slice::QkvLayout;
use crate::ops::matmul::matmul;
use crate::ops::rotary::RopeScaling;
use crate::tape::Var;

const P: &str = "gpt_neox.";
const EMBED_OUT: &str = "embed_out.weight";

pub struct GptNeox;

impl Architecture for GptNeox {
    fn identity(&self) -> Identity {
        let classes = ["GPTNeoXForCausalLM", "GPTNeoXForSequenceClassification"];
        Identity::new(Arch::GptNeox, &["gpt_neox"], classes)
    }

    fn parse_config(&self, cfg: &mut ModelConfig, file: &str) -> Result<()> {
        let raw = &cfg.raw;
        cfg.intermediate = usize_key(raw, &["intermediate_size"], file)?;
        cfg.activation = Activation::parse(str_key(raw, "hidden_act").unwrap_or("gelu"), file)?;
        // Published Pythia configs say rotary_pct; transformers 5 writes
        // rope_parameters.partial_rotary_factor.
        cfg.rotary_pct = f32_key(
            raw,
            &[
                "rotary_pct",
                "rope_parameters.partial_rotary_factor",
                "partial_rotary_factor",
            ],
        )
        .unwrap_or(0.25);
        cfg.parallel_residual = bool_key(raw, "use_parallel_residual").unwrap_or(true);
        cfg.tie_word_embeddings = bool_key(raw, "tie_word_embeddings").unwrap_or(false);
        let rot = cfg.rotary_dims();
        if !(0.0..=1.0).contains(&cfg.rotary_pct) || !rot.is_multiple_of(2) {
            bail!(
                "{file}: rotary_pct {} gives {rot} rotary dims of {}; need an even count",
                cfg.rotary_pct,
                cfg.head_dim()
            );
        }
        Ok(())
    }

    /// Pythia's defaults: rotary on a quarter of each head, parallel
    /// residual, untied embeddings.
    fn new_config(&self, s: &ModelShape) -> Value {
        s.hf_sizes(json!({
            "hidden_act": "gelu",
            "rotary_pct": 0.25,
            "rotary_emb_base": 10000,
            "use_parallel_residual": true,
            "tie_word_embeddings": false,
            "layer_norm_eps": 1e-5,
            "attention_bias": true,
            "attention_dropout": 0.0,
            "hidden_dropout": 0.0,
        }))
    }

    fn param_shapes(&self, cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
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
        out.push((EMBED_OUT.into(), vec![cfg.vocab_size, c]));
        out
    }

    /// A sequence-classification checkpoint has no `embed_out`.
    fn lm_head_params(&self, _cfg: &ModelConfig) -> Vec<String> {
        vec![EMBED_OUT.into()]
    }

    /// `embed_out` may be saved as `lm_head.weight`; `attention.bias`,
    /// `masked_bias` and `rotary_emb.inv_freq` buffers in older files are
    /// never read.
    fn checkpoint_key(&self, ck: &Checkpoint, name: &str) -> String {
        if name == EMBED_OUT && !ck.contains(name) {
            "lm_head.weight".into()
        } else {
            name.into()
        }
    }

    /// The causal-mask and rotary buffers older files hold.
    fn unused_tensor(&self, name: &str) -> bool {
        [
            ".attention.bias",
            ".attention.masked_bias",
            ".rotary_emb.inv_freq",
        ]
        .iter()
        .any(|b| name.ends_with(b))
    }

    fn linears(&self) -> Linears {
        Linears {
            layers: "gpt_neox.layers",
            modules: &[
                "attention.query_key_value",
                "attention.dense",
                "mlp.dense_h_to_4h",
                "mlp.dense_4h_to_h",
            ],
            out_in: true,
        }
    }

    fn default_lora_targets(&self) -> &'static [&'static str] {
        &["query_key_value"]
    }

    /// The cos/sin table for this config's partial rotary.
    fn buffers(&self, gpu: &Arc<Gpu>, cfg: &ModelConfig) -> Result<Buffers> {
        Buffers::rotary(gpu, cfg, &RopeScaling::Default)
    }

    fn hidden(&self, f: &Fwd, cfg: &ModelConfig, bufs: &Buffers, mut cache: Cache) -> Result<Var> {
        let tape = f.tape;
        let (h, d, eps) = (cfg.n_head, cfg.head_dim(), cfg.layer_norm_eps);
        let rope = bufs.rope("GPT-NeoX")?;
        let mut x = f.embed(&format!("{P}embed_in.weight"))?;
        for l in 0..cfg.n_layer {
            let b = format!("{P}layers.{l}.");
            let (ln1, ln2) = (
                format!("{b}input_layernorm"),
                format!("{b}post_attention_layernorm"),
            );
            // With a parallel residual both norms read x: one pass where no
            // gradient is wanted.
            let paired = if cfg.parallel_residual {
                f.layernorm_pair(&x, [&ln1, &ln2], eps)?
            } else {
                None
            };
            let (a, m_in) = match paired {
                Some([a, m]) => (a, Some(m)),
                None => (f.layernorm(&x, &ln1, eps)?, None),
            };
            let qkv = f.linear(&a, &format!("{b}attention.query_key_value"), true)?;
            // query_key_value is fused per head: its output is [..., H, 3·D] with
            // q, k and v contiguous inside each head (not [q | k | v]).
            // Partial rotary: only the first rotary_pct·D dims of q and k
            // rotate, read straight out of the projection.
            let cache_l = cache.as_deref_mut().map(|c| (c, l));
            let a = f.qkv_attention(&qkv, QkvLayout::PerHead, (h, d), Some(rope), cache_l)?;
            // The MLP up to its output projection, which adds onto the
            // residual stream in its store (Fwd::linear_onto).
            let mlp_up = |normed: &Var| -> Result<Var> {
                let m = f.linear(normed, &format!("{b}mlp.dense_h_to_4h"), true)?;
                gelu(tape, &m, cfg.activation.gelu_kind())
            };
            let dense = format!("{b}attention.dense");
            let down = format!("{b}mlp.dense_4h_to_h");
            x = if cfg.parallel_residual {
                // use_parallel_residual: attention and MLP both read the block
                // input; transformers adds (x + attn) + mlp, in that order.
                let normed = match m_in {
                    Some(normed) => normed,
                    None => f.layernorm(&x, &ln2, eps)?,
                };
                let m = mlp_up(&normed)?;
                let x1 = f.linear_onto(&a, &dense, true, &x)?;
                f.linear_onto(&m, &down, true, &x1)?
            } else {
                let x1 = f.linear_onto(&a, &dense, true, &x)?;
                let m = mlp_up(&f.layernorm(&x1, &ln2, eps)?)?;
                f.linear_onto(&m, &down, true, &x1)?
            };
        }
        f.commit(cache);
        f.layernorm(&x, &format!("{P}final_layer_norm"), eps)
    }

    /// Logits through the untied `embed_out` [V, C].
    fn lm_head(&self, f: &Fwd, _cfg: &ModelConfig, hidden: &Var) -> Result<Var> {
        matmul(f.tape, hidden, f.p(EMBED_OUT)?, None, false, true)
    }
}
