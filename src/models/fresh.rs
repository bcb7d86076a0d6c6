//! New models from a shape: the config.json transformers would write for a
//! GPT-2 or GPT-NeoX of that size, and freshly initialised weights
//! ([`super::init`]). `engine init` and the support-tiny pipeline start here.

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::sync::Arc;

use super::config::{Arch, ModelConfig};
use super::lm::{CausalLm, Head};
use crate::device::Gpu;

/// The size of a new model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelShape {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    /// MLP width (default 4 × hidden).
    pub intermediate: usize,
    /// Longest sequence (positions).
    pub context: usize,
}

impl ModelShape {
    /// config.json as transformers writes it for this shape (GPT-NeoX with
    /// Pythia's defaults: rotary on a quarter of each head, parallel residual,
    /// untied embeddings; GPT-2 with tied embeddings and gelu_new).
    pub fn hf_config(&self, eos: u32, pad: Option<u32>) -> Value {
        let mut v = match self.arch {
            Arch::GptNeox => json!({
                "architectures": ["GPTNeoXForCausalLM"],
                "model_type": "gpt_neox",
                "vocab_size": self.vocab_size,
                "hidden_size": self.hidden,
                "num_hidden_layers": self.layers,
                "num_attention_heads": self.heads,
                "intermediate_size": self.intermediate,
                "max_position_embeddings": self.context,
                "hidden_act": "gelu",
                "rotary_pct": 0.25,
                "rotary_emb_base": 10000,
                "use_parallel_residual": true,
                "tie_word_embeddings": false,
                "layer_norm_eps": 1e-5,
                "initializer_range": 0.02,
                "attention_bias": true,
                "attention_dropout": 0.0,
                "hidden_dropout": 0.0,
                "use_cache": true,
            }),
            Arch::Gpt2 => json!({
                "architectures": ["GPT2LMHeadModel"],
                "model_type": "gpt2",
                "vocab_size": self.vocab_size,
                "n_embd": self.hidden,
                "n_layer": self.layers,
                "n_head": self.heads,
                "n_inner": self.intermediate,
                "n_positions": self.context,
                "n_ctx": self.context,
                "activation_function": "gelu_new",
                "layer_norm_epsilon": 1e-5,
                "initializer_range": 0.02,
                "resid_pdrop": 0.0,
                "embd_pdrop": 0.0,
                "attn_pdrop": 0.0,
                "tie_word_embeddings": true,
                "use_cache": true,
            }),
        };
        let obj = v.as_object_mut().expect("a JSON object");
        obj.insert("bos_token_id".into(), json!(eos));
        obj.insert("eos_token_id".into(), json!(eos));
        if let Some(p) = pad {
            obj.insert("pad_token_id".into(), json!(p));
        }
        obj.insert("torch_dtype".into(), json!("float32"));
        v
    }

    /// Weights of an LM with this shape (embeddings and heads included).
    pub fn param_count(&self) -> usize {
        let (c, v, l, f) = (self.hidden, self.vocab_size, self.layers, self.intermediate);
        let block = 4 * c * c + 4 * c + 2 * c * f + f + c + 4 * c;
        let embed = match self.arch {
            Arch::GptNeox => 2 * v * c,
            Arch::Gpt2 => v * c + self.context * c,
        };
        embed + l * block + 2 * c
    }
}

/// A randomly initialised model of `shape` using `tokenizer` (whose
/// `<|endoftext|>` becomes BOS/EOS, and `<|padding|>` the pad id).
pub fn fresh_model(
    gpu: &Arc<Gpu>,
    shape: &ModelShape,
    tokenizer: tokenizers::Tokenizer,
    seed: u64,
) -> Result<CausalLm> {
    ensure!(
        shape.heads > 0 && shape.hidden.is_multiple_of(shape.heads),
        "hidden size {} is not divisible by {} heads",
        shape.hidden,
        shape.heads
    );
    let tok_vocab = tokenizer.get_vocab_size(true);
    ensure!(
        tok_vocab <= shape.vocab_size,
        "the tokenizer has {tok_vocab} tokens but the model's vocab is {}",
        shape.vocab_size
    );
    let eos = tokenizer
        .token_to_id("<|endoftext|>")
        .context("the tokenizer has no <|endoftext|> token (the EOS every template uses)")?;
    let pad = tokenizer.token_to_id("<|padding|>");
    let cfg = ModelConfig::from_json(shape.hf_config(eos, pad), "new model config")?;
    let mut model = CausalLm::random(gpu, cfg, Head::Lm, seed)?;
    model.tokenizer = Some(tokenizer);
    Ok(model)
}
