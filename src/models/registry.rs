//! The architectures engine knows, and the lookups that pick one: by a
//! config.json's `model_type` (load) or by [`Arch`] (a config in memory).
//!
//! Adding an architecture: one file implementing [`Architecture`] and its
//! line in [`ARCHITECTURES`], plus the bookkeeping Rust asks for: its
//! `pub mod` in models/mod.rs and its [`Arch`] variant (the config identity).
//! A variant of a family already here (Mistral or Qwen2 next to Llama) can
//! instead add its `model_type` to that file's [`Identity`](super::arch::Identity).

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::path::Path;

use super::arch::Architecture;
use super::config::{Arch, ModelConfig};
use super::{bert, distilbert, gpt2, gpt_neox, llama, roberta};

/// Every architecture, in the order error messages list them.
pub const ARCHITECTURES: &[&dyn Architecture] = &[
    &gpt2::Gpt2,
    &gpt_neox::GptNeox,
    &llama::Llama,
    &bert::Bert,
    &distilbert::DistilBert,
    &roberta::Roberta,
];

/// The architecture that reads `model_type`, if any.
pub fn by_model_type(model_type: &str) -> Option<&'static dyn Architecture> {
    ARCHITECTURES
        .iter()
        .copied()
        .find(|a| a.identity().model_types.contains(&model_type))
}

/// The implementation of `arch`.
pub fn architecture(arch: Arch) -> &'static dyn Architecture {
    ARCHITECTURES
        .iter()
        .copied()
        .find(|a| a.identity().arch == arch)
        .unwrap_or_else(|| panic!("{arch:?} is not in models::registry::ARCHITECTURES"))
}

impl ModelConfig {
    pub fn from_file(path: &Path) -> Result<ModelConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let raw: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        ModelConfig::from_json(raw, &path.display().to_string())
    }

    /// Parses config.json with the architecture its `model_type` names.
    pub fn from_json(raw: Value, file: &str) -> Result<ModelConfig> {
        let model_type = raw
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("{file}: missing `model_type`"))?;
        let Some(arch) = by_model_type(model_type) else {
            let known: Vec<&str> = ARCHITECTURES
                .iter()
                .map(|a| a.identity().model_types[0])
                .collect();
            bail!(
                "{file}: unknown model_type `{model_type}` (engine supports {})",
                known.join(", ")
            );
        };
        let mut cfg = ModelConfig::common(raw, file, arch.identity().arch)?;
        arch.parse_config(&mut cfg, file)?;
        Ok(cfg)
    }
}
