//! `config.json`: the fields every architecture shares, the head on the
//! trunk, and the key readers each architecture's `parse_config` uses for
//! its own spellings (see [`super::arch::Architecture`]). Which architecture
//! reads a file is the registry's choice ([`super::registry`], where
//! `ModelConfig::from_file` / `from_json` live).
//!
//! The original JSON is kept, so saving writes back every field transformers
//! wrote (only the ones engine changes are updated).

use anyhow::{bail, Result};
use serde_json::Value;

use crate::ops::gelu::GeluKind;

/// Which architecture a config describes: its identity (`engine init --arch`,
/// `engine info`). Everything an architecture does is behind its
/// [`Architecture`](super::arch::Architecture) in the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Gpt2,
    GptNeox,
    /// Llama and its variants (Qwen2, Mistral without a sliding window).
    Llama,
    /// Encoder classifiers (bidirectional, post-LN; `*ForSequenceClassification` only).
    Bert,
    DistilBert,
    Roberta,
}

/// The MLP activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `gelu_new` / `gelu_pytorch_tanh` (GPT-2).
    GeluTanh,
    /// `gelu`, the exact erf form (Pythia).
    GeluErf,
}

impl Activation {
    /// transformers' activation name, as `activation_function` / `hidden_act` spell it.
    pub fn parse(name: &str, file: &str) -> Result<Activation> {
        Ok(match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "gelu" => Activation::GeluErf,
            other => {
                bail!("{file}: unsupported activation `{other}` (engine has gelu and gelu_new)")
            }
        })
    }

    /// The kernel variant that computes it.
    pub fn gelu_kind(self) -> GeluKind {
        match self {
            Activation::GeluErf => GeluKind::Erf,
            Activation::GeluTanh => GeluKind::Tanh,
        }
    }
}

/// TRL's value head `v_head.summary`: Linear(C, 1).
pub const V_HEAD_W: &str = "v_head.summary.weight";
pub const V_HEAD_B: &str = "v_head.summary.bias";
/// transformers' sequence-classification head: `score.weight` [labels, C].
pub const SCORE: &str = "score.weight";

/// Which head sits on the trunk, as found in the checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// A causal LM (GPT2LMHeadModel, GPTNeoXForCausalLM).
    Lm,
    /// A causal LM plus TRL's `v_head.summary` Linear(C, 1).
    LmWithValue,
    /// GPT2/GPTNeoXForSequenceClassification: `score.weight` [labels, C], no LM head.
    Reward,
}

impl Head {
    /// The head a checkpoint holds weights for.
    pub fn detect(has: impl Fn(&str) -> bool) -> Head {
        if has(SCORE) {
            Head::Reward
        } else if has(V_HEAD_W) {
            Head::LmWithValue
        } else {
            Head::Lm
        }
    }

    /// The head's own parameters (the LM head belongs to the architecture).
    pub fn param_shapes(self, cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
        let c = cfg.hidden;
        match self {
            Head::Lm => vec![],
            Head::LmWithValue => vec![(V_HEAD_W.into(), vec![1, c]), (V_HEAD_B.into(), vec![1])],
            Head::Reward => vec![(SCORE.into(), vec![cfg.num_labels, c])],
        }
    }
}

/// The size of a new model (`engine init`, the demo pipeline).
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

#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// Key/value heads of grouped-query attention (`num_key_value_heads`;
    /// `n_head` unless an architecture reads it).
    pub n_kv_head: usize,
    /// An explicit `head_dim` (Llama-family configs); else hidden / n_head.
    pub head_size: Option<usize>,
    /// Maximum sequence length (n_positions / max_position_embeddings).
    pub n_ctx: usize,
    pub intermediate: usize,
    pub layer_norm_eps: f32,
    pub activation: Activation,
    /// GPT-NeoX: fraction of each head's dims that rotate.
    pub rotary_pct: f32,
    /// GPT-NeoX: rotary base (theta).
    pub rotary_base: f32,
    /// GPT-NeoX: attention and MLP read the same input and add in parallel.
    pub parallel_residual: bool,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    /// Every EOS id when the config lists several (Llama 3); generation
    /// stops on each of them. Holds `eos_token_id` when it is one id.
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
    /// Sequence-classification heads: number of labels.
    pub num_labels: usize,
    /// The JSON as read, written back on save.
    pub raw: Value,
}

/// `key` in `v`, unless absent or null; `a.b` looks up nested keys
/// (transformers 5 nests rope settings).
fn lookup<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.pointer(&format!("/{}", key.replace('.', "/")))
        .filter(|x| !x.is_null())
}

/// The first of `keys` present in `v`, with its value.
fn find_key<'a, 'k>(v: &'a Value, keys: &[&'k str]) -> Option<(&'k str, &'a Value)> {
    keys.iter().find_map(|k| lookup(v, k).map(|x| (*k, x)))
}

/// The value of `key` as a positive integer: a key that is present but
/// negative, zero, fractional or not a number is invalid (never "missing").
fn positive_int(key: &str, x: &Value, file: &str) -> Result<usize> {
    match x.as_u64() {
        Some(n) if n > 0 => Ok(n as usize),
        _ => bail!("{file}: `{key}` = {x} is invalid: expected a positive integer"),
    }
}

/// The first of `keys` that is present, as a positive integer.
pub fn usize_key(v: &Value, keys: &[&str], file: &str) -> Result<usize> {
    sized_key(v, keys, file, usize::MAX).map(|(_, n)| n)
}

/// The first of `keys` that is present, as a positive integer of at most
/// `max` (sizes allocated from), with the key it was read from.
fn sized_key<'k>(v: &Value, keys: &[&'k str], file: &str, max: usize) -> Result<(&'k str, usize)> {
    let Some((key, x)) = find_key(v, keys) else {
        bail!("{file}: missing integer `{}`", keys.join("` or `"))
    };
    let n = positive_int(key, x, file)?;
    if n > max {
        bail!("{file}: `{key}` = {n} is not a plausible size (engine allows at most {max})");
    }
    Ok((key, n))
}

/// Upper bounds on the config's sizes, far above any published model, so a
/// typo is refused before anything is allocated from it.
const MAX_LAYERS: usize = 4096;
const MAX_HIDDEN: usize = 1 << 17;
const MAX_VOCAB: usize = 1 << 22;
const MAX_CONTEXT: usize = 1 << 24;
/// The keys each size is read from, first found wins.
/// (`dim`, `n_heads`, `n_layers`: DistilBERT's spellings.)
const HIDDEN_KEYS: &[&str] = &["n_embd", "hidden_size", "dim"];
const HEAD_KEYS: &[&str] = &["n_head", "num_attention_heads", "n_heads"];
const LAYER_KEYS: &[&str] = &["n_layer", "num_hidden_layers", "n_layers"];
const CONTEXT_KEYS: &[&str] = &["n_positions", "max_position_embeddings", "n_ctx"];

/// The first of `keys` that holds a number; `a.b` looks up nested keys
/// (transformers 5 nests rope settings).
pub fn f32_key(v: &Value, keys: &[&str]) -> Option<f32> {
    keys.iter()
        .find_map(|k| lookup(v, k).and_then(Value::as_f64))
        .map(|x| x as f32)
}

/// Like [`f32_key`], but a value present that is not a positive finite
/// number (a string, 1e300) is an error naming it.
pub fn finite_key(v: &Value, keys: &[&str], file: &str) -> Result<Option<f32>> {
    let Some((key, x)) = find_key(v, keys) else {
        return Ok(None);
    };
    match x.as_f64().map(|f| f as f32) {
        Some(f) if f.is_finite() && f > 0.0 => Ok(Some(f)),
        _ => bail!("{file}: `{key}` = {x} is invalid: expected a positive finite number"),
    }
}

pub fn bool_key(v: &Value, key: &str) -> Option<bool> {
    v.get(key).and_then(Value::as_bool)
}

pub fn str_key<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn token_id(v: &Value, key: &str) -> Option<u32> {
    token_ids(v, key).first().copied()
}

/// Every id of `key`: some configs list several EOS ids (the first is the
/// one written as the pad / appended EOS; generation stops on any).
fn token_ids(v: &Value, key: &str) -> Vec<u32> {
    match v.get(key) {
        Some(Value::Number(n)) => n.as_u64().map(|x| x as u32).into_iter().collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_u64)
            .map(|x| x as u32)
            .collect(),
        _ => vec![],
    }
}

impl ModelConfig {
    /// The keys every architecture reads alike (sizes, epsilon, rotary base,
    /// special tokens, labels). The architecture's own fields start at
    /// GPT-2's values (no rotary, sequential residual, tied embeddings,
    /// `gelu_new`, MLP 4 × hidden) for its `parse_config` to overwrite.
    pub fn common(raw: Value, file: &str, arch: Arch) -> Result<ModelConfig> {
        let (hidden_key, hidden) = sized_key(&raw, HIDDEN_KEYS, file, MAX_HIDDEN)?;
        let (head_key, n_head) = sized_key(&raw, HEAD_KEYS, file, MAX_HIDDEN)?;
        if hidden % n_head != 0 {
            bail!("{file}: `{hidden_key}` = {hidden} is not divisible by `{head_key}` = {n_head}");
        }
        let num_labels = match raw.get("id2label").and_then(Value::as_object) {
            Some(m) if !m.is_empty() => m.len(),
            _ => raw.get("num_labels").and_then(Value::as_u64).unwrap_or(2) as usize,
        };
        let layer_norm_eps = finite_key(&raw, &["layer_norm_epsilon", "layer_norm_eps"], file)?;
        let rotary_base = finite_key(
            &raw,
            // Published Pythia configs say rotary_emb_base; transformers 5
            // writes rope_parameters.rope_theta.
            &[
                "rotary_emb_base",
                "rope_parameters.rope_theta",
                "rope_theta",
            ],
            file,
        )?;
        Ok(ModelConfig {
            arch,
            vocab_size: sized_key(&raw, &["vocab_size"], file, MAX_VOCAB)?.1,
            hidden,
            n_layer: sized_key(&raw, LAYER_KEYS, file, MAX_LAYERS)?.1,
            n_head,
            n_kv_head: n_head,
            head_size: None,
            n_ctx: sized_key(&raw, CONTEXT_KEYS, file, MAX_CONTEXT)?.1,
            intermediate: 4 * hidden,
            layer_norm_eps: layer_norm_eps.unwrap_or(1e-5),
            activation: Activation::GeluTanh,
            rotary_pct: 0.0,
            rotary_base: rotary_base.unwrap_or(10000.0),
            parallel_residual: false,
            tie_word_embeddings: true,
            bos_token_id: token_id(&raw, "bos_token_id"),
            eos_token_id: token_id(&raw, "eos_token_id"),
            eos_token_ids: token_ids(&raw, "eos_token_id"),
            pad_token_id: token_id(&raw, "pad_token_id"),
            num_labels,
            raw,
        })
    }

    /// The config key the layer count was read from (`n_layer` or
    /// `num_hidden_layers`), for errors about the checkpoint's layers.
    pub fn layer_key(&self) -> &'static str {
        find_key(&self.raw, LAYER_KEYS).map_or(LAYER_KEYS[0], |(k, _)| k)
    }

    pub fn head_dim(&self) -> usize {
        self.head_size.unwrap_or(self.hidden / self.n_head)
    }

    /// GPT-NeoX: `int(head_dim * rotary_pct)`, as transformers truncates it.
    pub fn rotary_dims(&self) -> usize {
        (self.head_dim() as f64 * self.rotary_pct as f64) as usize
    }

    /// The JSON to save: the original fields, with `torch_dtype`/`dtype` set to
    /// what the weights are stored as.
    pub fn to_json(&self, dtype: &str) -> Value {
        let mut v = self.raw.clone();
        if let Some(obj) = v.as_object_mut() {
            let key = if obj.contains_key("dtype") {
                "dtype"
            } else {
                "torch_dtype"
            };
            obj.insert(key.to_string(), Value::String(dtype.to_string()));
        }
        v
    }
}
