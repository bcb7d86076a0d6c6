//! New models from a shape: the config.json transformers would write for a
//! model of that architecture and size, and freshly initialised weights
//! ([`super::init`]). `engine init` and the support-tiny pipeline start here.

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::sync::Arc;

use super::config::{Head, ModelConfig};
use super::lm::CausalLm;
use super::registry;
use crate::device::Gpu;

pub use super::config::ModelShape;

impl ModelShape {
    /// config.json as transformers writes it for this shape: the
    /// architecture's keys (`Architecture::new_config`), special tokens and dtype.
    pub fn hf_config(&self, eos: u32, pad: Option<u32>) -> Value {
        let arch = registry::architecture(self.arch);
        let mut v = arch.new_config(self);
        let obj = v.as_object_mut().expect("a JSON object");
        let id = arch.identity();
        obj.insert("architectures".into(), json!([id.causal_lm]));
        obj.insert("model_type".into(), json!(id.model_types[0]));
        obj.insert("vocab_size".into(), json!(self.vocab_size));
        obj.insert("initializer_range".into(), json!(0.02));
        obj.insert("use_cache".into(), json!(true));
        obj.insert("bos_token_id".into(), json!(eos));
        obj.insert("eos_token_id".into(), json!(eos));
        if let Some(p) = pad {
            obj.insert("pad_token_id".into(), json!(p));
        }
        obj.insert("torch_dtype".into(), json!("float32"));
        v
    }

    /// The size keys GPT-NeoX, Llama and BERT-style configs share
    /// (transformers' `PreTrainedConfig` spellings; GPT-2 has its own `n_*`
    /// names), followed by an architecture's own keys (`extra`).
    pub fn hf_sizes(&self, extra: Value) -> Value {
        let mut v = json!({
            "hidden_size": self.hidden,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "intermediate_size": self.intermediate,
            "max_position_embeddings": self.context,
        });
        if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), extra) {
            obj.extend(more);
        }
        v
    }

    /// Weights of an LM with this shape (embeddings and heads included),
    /// counted from the parameters its config lists; 0 for a shape that
    /// makes no valid config (which `fresh_model` refuses).
    pub fn param_count(&self) -> usize {
        let Ok(cfg) = ModelConfig::from_json(self.hf_config(0, None), "new model config") else {
            return 0;
        };
        let arch = registry::architecture(self.arch);
        arch.param_shapes(&cfg)
            .iter()
            .map(|(_, shape)| shape.iter().product::<usize>())
            .sum()
    }
}

/// The EOS a new model takes from its tokenizer: GPT-2 / NeoX's
/// `<|endoftext|>`, SentencePiece's `</s>`, Llama 3's `<|end_of_text|>`.
const EOS_TOKENS: [&str; 3] = ["<|endoftext|>", "</s>", "<|end_of_text|>"];
/// Its BOS when the tokenizer has one of its own (else the EOS, as GPT-2).
const BOS_TOKENS: [&str; 2] = ["<s>", "<|begin_of_text|>"];

/// A randomly initialised model of `shape` using `tokenizer` (whose
/// `<|endoftext|>` or `</s>` becomes EOS, `<s>` or else the EOS BOS, and
/// `<|padding|>` the pad id).
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
    let find = |names: &[&str]| names.iter().find_map(|t| tokenizer.token_to_id(t));
    let eos = find(&EOS_TOKENS).with_context(|| {
        format!("the tokenizer has none of {EOS_TOKENS:?} (the EOS every template uses)")
    })?;
    let pad = tokenizer.token_to_id("<|padding|>");
    let mut raw = shape.hf_config(eos, pad);
    raw["bos_token_id"] = json!(find(&BOS_TOKENS).unwrap_or(eos));
    let cfg = ModelConfig::from_json(raw, "new model config")?;
    let mut model = CausalLm::random(gpu, cfg, Head::Lm, seed)?;
    model.tokenizer = Some(tokenizer);
    Ok(model)
}
