//! LoRA at the parameter level: PEFT's `LoraConfig`, the adapters a model
//! carries, their parameter names, and a forward pass's view of them
//! ([`LoraVars`] on [`ParamVars`], read by `Fwd::linear`). Attaching,
//! merging and PEFT files are `models::lora`.

use anyhow::Result;
use std::collections::BTreeMap;

use super::ParamVars;
use crate::ops::lora::LoraDropout;
use crate::tape::Var;

/// PEFT's `LoraConfig`, the fields engine uses.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f32,
    /// Dropout on the input of A, in training passes only.
    pub dropout: f32,
    /// PEFT names: module-path suffixes (see `models::lora`) or `all-linear`.
    pub target_modules: Vec<String>,
    /// Scale `alpha / √r` instead of `alpha / r`.
    pub use_rslora: bool,
    /// PEFT's flag for `[in, out]` weights (GPT-2 Conv1D); engine knows each
    /// architecture's layout, so this is only recorded and written back.
    pub fan_in_fan_out: bool,
}

impl LoraConfig {
    pub fn new(r: usize, alpha: f32, target_modules: &[&str]) -> LoraConfig {
        LoraConfig {
            r,
            alpha,
            dropout: 0.0,
            target_modules: target_modules.iter().map(|s| s.to_string()).collect(),
            use_rslora: false,
            fan_in_fan_out: false,
        }
    }

    /// The factor on `B·A` for a module of rank `r`.
    pub fn scale_for(&self, r: usize) -> f32 {
        if self.use_rslora {
            self.alpha / (r as f32).sqrt()
        } else {
            self.alpha / r as f32
        }
    }

    /// PEFT's list rule: `module == t` or `module` ends with `.t`.
    pub fn matches(&self, module: &str) -> bool {
        self.target_modules.iter().any(|t| {
            t == "all-linear"
                || module == t
                || (module.ends_with(t.as_str()) && module[..module.len() - t.len()].ends_with('.'))
        })
    }
}

/// The adapters attached to a model.
#[derive(Clone, Debug)]
pub struct Adapters {
    pub config: LoraConfig,
    /// Adapted module path -> scale.
    pub modules: BTreeMap<String, f32>,
    pub merged: bool,
}

impl Adapters {
    /// The adapters' view for one pass: on unless merged, no dropout seed.
    pub fn vars(&self) -> LoraVars {
        LoraVars {
            modules: self.modules.clone(),
            enabled: !self.merged,
            dropout: self.config.dropout,
            dropout_seed: None,
        }
    }
}

/// A pass's view of the adapters (carried by [`ParamVars`]).
#[derive(Clone, Debug)]
pub struct LoraVars {
    pub modules: BTreeMap<String, f32>,
    /// False: adapted modules run the plain base matmul.
    pub enabled: bool,
    pub dropout: f32,
    /// Dropout runs only in passes given a seed (training steps); `None` is
    /// PEFT's eval mode.
    pub dropout_seed: Option<u64>,
}

/// What `Fwd::linear` needs for one adapted module.
pub struct LoraSite<'a> {
    pub a: &'a Var,
    pub b: &'a Var,
    pub scale: f32,
    pub dropout: Option<LoraDropout>,
}

pub fn lora_a_name(module: &str) -> String {
    format!("{module}.lora_A.weight")
}

pub fn lora_b_name(module: &str) -> String {
    format!("{module}.lora_B.weight")
}

/// True for the parameter names adapters add.
pub fn is_adapter_param(name: &str) -> bool {
    name.ends_with(".lora_A.weight") || name.ends_with(".lora_B.weight")
}

/// A distinct dropout offset per module (FNV-1a of its path).
fn site_offset(module: &str) -> u64 {
    module.bytes().fold(0xcbf2_9ce4_8422_2325, |h, c| {
        (h ^ c as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

impl ParamVars {
    /// Turns adapters on or off for this pass (no weights are copied).
    pub fn set_adapters_enabled(&mut self, on: bool) {
        if let Some(l) = &mut self.lora {
            l.enabled = on;
        }
    }

    pub fn adapters_enabled(&self) -> bool {
        self.lora.as_ref().is_some_and(|l| l.enabled)
    }

    /// Enables LoRA dropout for this (training) pass with a per-step seed.
    pub fn set_lora_dropout_seed(&mut self, seed: Option<u64>) {
        if let Some(l) = &mut self.lora {
            l.dropout_seed = seed;
        }
    }

    /// The adapter of `module` when it is adapted and adapters are on.
    pub fn lora_for(&self, module: &str) -> Result<Option<LoraSite<'_>>> {
        let Some(l) = self.lora.as_ref().filter(|l| l.enabled) else {
            return Ok(None);
        };
        let Some(&scale) = l.modules.get(module) else {
            return Ok(None);
        };
        let dropout = l
            .dropout_seed
            .filter(|_| l.dropout > 0.0)
            .map(|seed| LoraDropout {
                p: l.dropout,
                seed,
                offset: site_offset(module),
            });
        Ok(Some(LoraSite {
            a: self.get(&lora_a_name(module))?,
            b: self.get(&lora_b_name(module))?,
            scale,
            dropout,
        }))
    }
}
