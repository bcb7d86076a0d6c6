//! `config.json` for GPT-2 and GPT-NeoX, in every spelling users bring.
//!
//! The original JSON is kept, so saving writes back every field transformers
//! wrote (only the ones engine changes are updated).

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Gpt2,
    GptNeox,
}

/// The MLP activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `gelu_new` / `gelu_pytorch_tanh` (GPT-2).
    GeluTanh,
    /// `gelu`, the exact erf form (Pythia).
    GeluErf,
}

#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden: usize,
    pub n_layer: usize,
    pub n_head: usize,
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
    pub pad_token_id: Option<u32>,
    /// Sequence-classification heads: number of labels.
    pub num_labels: usize,
    /// The JSON as read, written back on save.
    pub raw: Value,
}

fn usize_key(v: &Value, keys: &[&str], file: &str) -> Result<usize> {
    for k in keys {
        if let Some(x) = v.get(*k).and_then(Value::as_u64) {
            return Ok(x as usize);
        }
    }
    bail!("{file}: missing integer `{}`", keys.join("` or `"))
}

fn f32_key(v: &Value, keys: &[&str]) -> Option<f32> {
    keys.iter()
        .find_map(|k| pointer(v, k).and_then(Value::as_f64))
        .map(|x| x as f32)
}

/// `a.b` looks up nested keys (transformers 5 nests rope settings).
fn pointer<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.pointer(&format!("/{}", key.replace('.', "/")))
}

fn token_id(v: &Value, key: &str) -> Option<u32> {
    match v.get(key)? {
        Value::Number(n) => n.as_u64().map(|x| x as u32),
        // Some configs list several EOS ids; the first is the one generation stops on.
        Value::Array(a) => a.first().and_then(Value::as_u64).map(|x| x as u32),
        _ => None,
    }
}

impl ModelConfig {
    pub fn from_file(path: &Path) -> Result<ModelConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let raw: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        ModelConfig::from_json(raw, &path.display().to_string())
    }

    pub fn from_json(raw: Value, file: &str) -> Result<ModelConfig> {
        let model_type = raw
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("{file}: missing `model_type`"))?;
        let arch = match model_type {
            "gpt2" => Arch::Gpt2,
            "gpt_neox" => Arch::GptNeox,
            other => {
                bail!("{file}: unknown model_type `{other}` (engine supports gpt2 and gpt_neox)")
            }
        };
        let gpt2 = arch == Arch::Gpt2;
        let hidden = usize_key(&raw, &["n_embd", "hidden_size"], file)?;
        let n_head = usize_key(&raw, &["n_head", "num_attention_heads"], file)?;
        if n_head == 0 || hidden % n_head != 0 {
            bail!("{file}: hidden size {hidden} is not divisible by {n_head} heads");
        }
        let intermediate = match raw
            .get(if gpt2 { "n_inner" } else { "intermediate_size" })
            .and_then(Value::as_u64)
        {
            Some(n) => n as usize,
            None if gpt2 => 4 * hidden,
            None => bail!("{file}: missing integer `intermediate_size`"),
        };
        let act_key = if gpt2 {
            "activation_function"
        } else {
            "hidden_act"
        };
        let act = raw.get(act_key).and_then(Value::as_str).unwrap_or(if gpt2 {
            "gelu_new"
        } else {
            "gelu"
        });
        let activation = match act {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "gelu" => Activation::GeluErf,
            other => {
                bail!("{file}: unsupported activation `{other}` (engine has gelu and gelu_new)")
            }
        };
        // Published Pythia configs say rotary_pct / rotary_emb_base; transformers 5
        // writes rope_parameters.{partial_rotary_factor, rope_theta}.
        let rotary_pct = f32_key(
            &raw,
            &[
                "rotary_pct",
                "rope_parameters.partial_rotary_factor",
                "partial_rotary_factor",
            ],
        )
        .unwrap_or(if gpt2 { 0.0 } else { 0.25 });
        let rotary_base = f32_key(
            &raw,
            &[
                "rotary_emb_base",
                "rope_parameters.rope_theta",
                "rope_theta",
            ],
        )
        .unwrap_or(10000.0);
        let num_labels = match raw.get("id2label").and_then(Value::as_object) {
            Some(m) if !m.is_empty() => m.len(),
            _ => raw.get("num_labels").and_then(Value::as_u64).unwrap_or(2) as usize,
        };
        let cfg = ModelConfig {
            arch,
            vocab_size: usize_key(&raw, &["vocab_size"], file)?,
            hidden,
            n_layer: usize_key(&raw, &["n_layer", "num_hidden_layers"], file)?,
            n_head,
            n_ctx: usize_key(
                &raw,
                &["n_positions", "max_position_embeddings", "n_ctx"],
                file,
            )?,
            intermediate,
            layer_norm_eps: f32_key(&raw, &["layer_norm_epsilon", "layer_norm_eps"])
                .unwrap_or(1e-5),
            activation,
            rotary_pct,
            rotary_base,
            parallel_residual: raw
                .get("use_parallel_residual")
                .and_then(Value::as_bool)
                .unwrap_or(!gpt2),
            tie_word_embeddings: raw
                .get("tie_word_embeddings")
                .and_then(Value::as_bool)
                .unwrap_or(gpt2),
            bos_token_id: token_id(&raw, "bos_token_id"),
            eos_token_id: token_id(&raw, "eos_token_id"),
            pad_token_id: token_id(&raw, "pad_token_id"),
            num_labels,
            raw,
        };
        if !gpt2 {
            let rot = cfg.rotary_dims();
            if !(0.0..=1.0).contains(&cfg.rotary_pct) || !rot.is_multiple_of(2) {
                bail!(
                    "{file}: rotary_pct {} gives {rot} rotary dims of {}; need an even count",
                    cfg.rotary_pct,
                    cfg.head_dim()
                );
            }
        }
        Ok(cfg)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden / self.n_head
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
