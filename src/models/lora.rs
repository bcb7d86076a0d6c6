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
//! The parameter-level side (`LoraConfig`, names, a pass's [`LoraVars`]) is
//! `models::params::adapters`, below the layers that read it.
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

use super::lm::CausalLm;
use super::params::ParamVars;
use crate::ops::matmul::matmul_forward;
use crate::rng::Rng;
use crate::tape::Tape;
use crate::tensor::axpy::axpy;
use crate::tensor::Tensor;

pub mod peft;

pub use super::params::{
    is_adapter_param, lora_a_name, lora_b_name, Adapters, LoraConfig, LoraSite, LoraVars,
};

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

impl CausalLm {
    /// Every block linear that can carry an adapter, in model order.
    pub fn linear_modules(&self) -> Result<Vec<LinearModule>> {
        let linears = self.arch().linears();
        let out_in = linears.out_in;
        let mut out = Vec::new();
        for l in 0..self.cfg.n_layer {
            for module in linears.modules {
                let name = format!("{}.{l}.{module}", linears.layers);
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
        // Checked on every target before anything is allocated: a rank past
        // the layer's smaller side adds parameters and no expressiveness.
        for m in &targets {
            let limit = m.in_features.min(m.out_features);
            ensure!(
                cfg.r <= limit,
                "LoRA rank r = {} exceeds min(in, out) = {limit} of `{}` ({} in, {} out)",
                cfg.r,
                m.name,
                m.in_features,
                m.out_features
            );
        }
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
        self.lora.as_ref().map(Adapters::vars)
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
