//! New models from a shape: the config.json transformers would write for a
//! model of that architecture and size, and freshly initialised weights
//! ([`super::init`]). `engine init` and the support-tiny pipeline start here:
//! a causal LM ([`fresh_model`]) or an encoder classifier ([`fresh_classifier`]).

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::sync::Arc;

use super::config::{Arch, Head, ModelConfig};
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

/// Special tokens a new encoder classifier takes its pad id from: BERT's
/// `[PAD]` or RoBERTa's `<pad>`.
const ENCODER_PAD_TOKENS: [&str; 2] = ["[PAD]", "<pad>"];

/// A randomly initialised encoder classifier (BERT, DistilBERT, RoBERTa) of
/// `shape` with one logit per name in `labels` (its `id2label`), as
/// transformers' `*ForSequenceClassification(config)` builds one: the
/// config.json says the classifier class, `problem_type`
/// single-label, and the tokenizer's pad token (`[PAD]` or `<pad>`).
pub fn fresh_classifier(
    gpu: &Arc<Gpu>,
    shape: &ModelShape,
    tokenizer: tokenizers::Tokenizer,
    labels: &[String],
    seed: u64,
) -> Result<CausalLm> {
    let arch = registry::architecture(shape.arch);
    ensure!(
        arch.is_encoder(),
        "{:?} is a causal LM, not an encoder classifier",
        shape.arch
    );
    ensure!(
        shape.heads > 0 && shape.hidden.is_multiple_of(shape.heads),
        "hidden size {} is not divisible by {} heads",
        shape.hidden,
        shape.heads
    );
    ensure!(!labels.is_empty(), "a classifier needs at least one label");
    let tok_vocab = tokenizer.get_vocab_size(true);
    ensure!(
        tok_vocab <= shape.vocab_size,
        "the tokenizer has {tok_vocab} tokens but the model's vocab is {}",
        shape.vocab_size
    );
    let pad = ENCODER_PAD_TOKENS
        .iter()
        .find_map(|t| tokenizer.token_to_id(t))
        .with_context(|| {
            format!("the tokenizer has none of {ENCODER_PAD_TOKENS:?} (an encoder pads with it)")
        })?;
    let mut raw = arch.new_config(shape);
    let id2label: serde_json::Map<String, Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), json!(l)))
        .collect();
    let label2id: serde_json::Map<String, Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), json!(i)))
        .collect();
    let obj = raw.as_object_mut().expect("a JSON object");
    obj.insert("architectures".into(), json!([arch.identity().classifier]));
    obj.insert("vocab_size".into(), json!(shape.vocab_size));
    obj.insert("pad_token_id".into(), json!(pad));
    if shape.arch == Arch::Roberta {
        // RoBERTa's positions start after padding_idx (the pad id), so
        // `context` tokens need pad + 1 more rows (roberta-base: 512 → 514).
        let rows = shape.context + pad as usize + 1;
        obj.insert("max_position_embeddings".into(), json!(rows));
    }
    obj.insert("id2label".into(), Value::Object(id2label));
    obj.insert("label2id".into(), Value::Object(label2id));
    obj.insert("problem_type".into(), json!("single_label_classification"));
    obj.insert("torch_dtype".into(), json!("float32"));
    let cfg = ModelConfig::from_json(raw, "new classifier config")?;
    let mut model = CausalLm::random(gpu, cfg, Head::Reward, seed)?;
    model.tokenizer = Some(tokenizer);
    Ok(model)
}
