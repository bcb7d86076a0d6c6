//! LoRA adapters on a [`CausalLm`], as PEFT makes them.
//!
//! **Parameters.** Each adapted linear `<module>` (transformers' module path,
//! e.g. `transformer.h.0.attn.c_attn`) gets two trainable parameters in the
//! model's [`ParamStore`](super::params::ParamStore): `<module>.lora_A.weight`
//! `[r, in]` and `<module>.lora_B.weight` `[out, r]` -- PEFT's saved key minus
//! the `base_model.model.` prefix. Attaching freezes every other parameter.
//! [`Fwd::linear`](super::layers::Fwd::linear) runs adapted modules through
//! the fused op [`crate::ops::lora::lora_linear`].
//!
//! **Targets** use PEFT's rule for a list: a module is adapted when its path
//! equals a target or ends with `.` + target. So `c_proj` adapts both GPT-2's
//! `attn.c_proj` and `mlp.c_proj`, while `attn.c_proj` / `mlp.c_proj` pick one;
//! NeoX's `dense` matches `attention.dense` only (`mlp.dense_h_to_4h` does not
//! end in `.dense`). `all-linear` adapts every block linear. A target that
//! matches no linear is an error (as in PEFT). Only block linears can be
//! adapted (not embeddings or LM heads).
//!
//! **Adapters off** ([`ParamVars::set_adapters_enabled`], or
//! [`CausalLm::reference_vars`]) runs the plain base matmul in that pass and
//! copies nothing: PPO/DPO reference models are the same weights.
//!
//! **Merge** adds `s·ΔW` into the f32 base (`ΔW = (B·A)ᵀ` `[in, out]` for
//! Conv1D, `B·A` `[out, in]` for nn.Linear); unmerge subtracts it again, which
//! round-trips to within f32 rounding of `W + s·ΔW` (an f16/bf16 base would also
//! round the merged weight to its own precision). While merged, adapted
//! modules run the plain matmul and the adapters-off switch is refused.
//!
//! PEFT's file format (`adapter_config.json`, `adapter_model.safetensors`) is
//! in [`peft`].

use anyhow::{bail, ensure, Result};
use std::collections::BTreeMap;

use super::config::Arch;
use super::lm::CausalLm;
use super::params::ParamVars;
use crate::tensor::axpy::axpy;
use crate::ops::lora::LoraDropout;
use crate::ops::matmul::matmul_forward;
use crate::rng::Rng;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

pub mod peft;

/// PEFT's `LoraConfig`, the fields engine uses.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f32,
    /// Dropout on the input of A, in training passes only.
    pub dropout: f32,
    /// PEFT names: module-path suffixes (see the module docs) or `all-linear`.
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

/// One adaptable linear of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearModule {
    /// transformers' module path, e.g. `gpt_neox.layers.0.attention.dense`.
    pub name: String,
    pub in_features: usize,
    pub out_features: usize,
    /// Weight stored `[out, in]` (nn.Linear) rather than `[in, out]` (Conv1D).
    pub out_in: bool,
}

/// The adapters attached to a model.
#[derive(Clone, Debug)]
pub struct Adapters {
    pub config: LoraConfig,
    /// Adapted module path -> scale.
    pub modules: BTreeMap<String, f32>,
    pub merged: bool,
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

/// What [`Fwd::linear`](super::layers::Fwd::linear) needs for one adapted module.
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

impl CausalLm {
    /// Every block linear that can carry an adapter, in model order.
    pub fn linear_modules(&self) -> Result<Vec<LinearModule>> {
        let (prefix, kinds, out_in) = match self.cfg.arch {
            Arch::Gpt2 => (
                "transformer.h",
                ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"],
                false,
            ),
            Arch::GptNeox => (
                "gpt_neox.layers",
                [
                    "attention.query_key_value",
                    "attention.dense",
                    "mlp.dense_h_to_4h",
                    "mlp.dense_4h_to_h",
                ],
                true,
            ),
        };
        let mut out = Vec::new();
        for l in 0..self.cfg.n_layer {
            for kind in kinds {
                let name = format!("{prefix}.{l}.{kind}");
                let (i, o) = match self.quantized.get(&name) {
                    // A quantized base keeps its shape as (out, in).
                    Some(q) => (q.shape().1, q.shape().0),
                    None => {
                        let s = self.params.get(&format!("{name}.weight"))?.shape().to_vec();
                        if out_in {
                            (s[1], s[0])
                        } else {
                            (s[0], s[1])
                        }
                    }
                };
                out.push(LinearModule {
                    name,
                    in_features: i,
                    out_features: o,
                    out_in,
                });
            }
        }
        Ok(out)
    }

    /// The modules `cfg` adapts; fails on a target that matches none.
    pub fn lora_targets(&self, cfg: &LoraConfig) -> Result<Vec<LinearModule>> {
        let all = self.linear_modules()?;
        for t in &cfg.target_modules {
            let one = LoraConfig {
                target_modules: vec![t.clone()],
                ..cfg.clone()
            };
            ensure!(
                all.iter().any(|m| one.matches(&m.name)),
                "LoRA target module `{t}` matches none of this model's linears \
                 (e.g. `{}`); engine adapts block linears only",
                all.first().map_or("", |m| m.name.as_str())
            );
        }
        Ok(all.into_iter().filter(|m| cfg.matches(&m.name)).collect())
    }

    /// Attaches fresh adapters as PEFT initialises them: A kaiming-uniform
    /// (a = √5, i.e. U(±1/√in)), B zeros, from a seeded RNG. Every other
    /// parameter becomes frozen. Replaces adapters already attached.
    pub fn attach_lora(&mut self, cfg: &LoraConfig, seed: u64) -> Result<()> {
        ensure!(cfg.r > 0, "LoRA rank r must be positive");
        ensure!(
            !self.lora.as_ref().is_some_and(|a| a.merged),
            "unmerge the current adapters before attaching new ones"
        );
        let targets = self.lora_targets(cfg)?;
        let mut rng = Rng::new(seed);
        let mut modules = BTreeMap::new();
        for m in &targets {
            let bound = 1.0 / (m.in_features as f32).sqrt();
            let a: Vec<f32> = (0..cfg.r * m.in_features)
                .map(|_| rng.uniform(-bound, bound))
                .collect();
            let a = Tensor::from_f32(self.gpu(), &[cfg.r, m.in_features], &a)?;
            let b = Tensor::zeros(self.gpu(), &[m.out_features, cfg.r], crate::DType::F32)?;
            self.insert_adapter(&m.name, a, b)?;
            modules.insert(m.name.clone(), cfg.scale_for(cfg.r));
        }
        self.set_adapters(cfg.clone(), modules);
        Ok(())
    }

    /// Stores one module's A and B (shapes checked by the caller).
    pub(crate) fn insert_adapter(&mut self, module: &str, a: Tensor, b: Tensor) -> Result<()> {
        self.params.insert(&lora_a_name(module), a);
        self.params.insert(&lora_b_name(module), b);
        Ok(())
    }

    /// Records the attached adapters and freezes everything but them.
    pub(crate) fn set_adapters(&mut self, config: LoraConfig, modules: BTreeMap<String, f32>) {
        let names: Vec<String> = modules
            .keys()
            .flat_map(|m| [lora_a_name(m), lora_b_name(m)])
            .collect();
        self.params.set_trainable(|n| names.iter().any(|x| x == n));
        self.lora = Some(Adapters {
            config,
            modules,
            merged: false,
        });
    }

    /// The adapters' view for one pass (None without adapters).
    pub fn lora_vars(&self) -> Option<LoraVars> {
        self.lora.as_ref().map(|a| LoraVars {
            modules: a.modules.clone(),
            enabled: !a.merged,
            dropout: a.config.dropout,
            dropout_seed: None,
        })
    }

    /// This pass's parameters with adapters off: the base model, sharing its
    /// weights (a PPO/DPO reference model). Frozen weights record no graph.
    pub fn reference_vars(&self, tape: &Tape) -> Result<ParamVars> {
        if self.lora.as_ref().is_some_and(|a| a.merged) {
            bail!(
                "the adapters are merged into the base weights; unmerge them for a reference pass"
            );
        }
        let mut v = self.vars(tape);
        v.set_adapters_enabled(false);
        Ok(v)
    }

    /// Adds `s·ΔW` of every adapter into its base weight.
    pub fn merge_lora(&mut self) -> Result<()> {
        self.merge_sign(false)
    }

    /// Subtracts what [`CausalLm::merge_lora`] added.
    pub fn unmerge_lora(&mut self) -> Result<()> {
        self.merge_sign(true)
    }

    fn merge_sign(&mut self, unmerge: bool) -> Result<()> {
        let Some(ad) = &self.lora else {
            bail!("no LoRA adapters attached");
        };
        ensure!(
            ad.merged == unmerge,
            "adapters are {} merged",
            if unmerge { "not" } else { "already" }
        );
        for m in self.linear_modules()? {
            let Some(&s) = ad.modules.get(&m.name) else {
                continue;
            };
            let a = self.params.get(&lora_a_name(&m.name))?;
            let b = self.params.get(&lora_b_name(&m.name))?;
            let delta = if m.out_in {
                matmul_forward(b, a, None, false, false)? // B·A [out, in]
            } else {
                matmul_forward(a, b, None, true, true)? // (B·A)ᵀ [in, out]
            };
            let w = self.params.get(&format!("{}.weight", m.name))?;
            axpy(w, if unmerge { -s } else { s }, &delta)?;
        }
        self.lora.as_mut().unwrap().merged = !unmerge;
        Ok(())
    }
}
