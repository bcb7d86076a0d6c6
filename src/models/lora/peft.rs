//! PEFT's adapter directory: `adapter_config.json` + `adapter_model.safetensors`.
//!
//! Keys are `base_model.model.<module>.lora_A.weight` `[r, in]` and
//! `base_model.model.<module>.lora_B.weight` `[out, r]` (no adapter name), f32.
//! On load the adapted modules are the ones the file holds keys for (so
//! regex-style `target_modules` need no regex engine); `target_modules` is
//! kept to write back. `task_type` may be missing or null. Features that would
//! change the math and that engine does not implement (`use_dora`, trained
//! biases, `modules_to_save`, `layer_replication`, `target_parameters`,
//! `trainable_token_indices`, QALoRA, and the per-module/per-layer selectors
//! `rank_pattern`, `alpha_pattern`, `layers_to_transform`, `layers_pattern`)
//! are refused with an error naming the file and the key: ignoring them would
//! give logits that differ from PEFT's. Every error names the file and, where
//! there is one, the key. Every module's rank must equal `r`.

use anyhow::{anyhow, ensure, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

use super::{lora_a_name, lora_b_name, LoraConfig};
use crate::models::checkpoint::{
    save_safetensors, write_atomic, Checkpoint, HostTensor, SaveDtype,
};
use crate::models::lm::CausalLm;
use crate::tensor::Tensor;

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
const PREFIX: &str = "base_model.model.";

/// Parses an `adapter_config.json` (PEFT `LoraConfig`).
pub fn read_config(path: &Path) -> Result<LoraConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let file = path.display();
    if let Some(t) = v.get("peft_type").and_then(Value::as_str) {
        ensure!(
            t == "LORA",
            "{file}: peft_type is {t}; engine loads LORA adapters"
        );
    }
    let r = v["r"]
        .as_u64()
        .ok_or_else(|| anyhow!("{file}: `r` missing or not an integer"))? as usize;
    let num = |k: &str, default: f64| -> Result<f64> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(default),
            Some(x) => x
                .as_f64()
                .ok_or_else(|| anyhow!("{file}: `{k}` is not a number")),
        }
    };
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let empty = |k: &str| match v.get(k) {
        None | Some(Value::Null) => true,
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    for k in ["use_dora", "lora_bias", "use_qalora"] {
        ensure!(!flag(k), "{file}: `{k}: true` adapters are not supported");
    }
    let bias = v.get("bias").and_then(Value::as_str).unwrap_or("none");
    ensure!(
        bias == "none",
        "{file}: bias `{bias}` (trained biases) is not supported"
    );
    let unsupported = [
        "modules_to_save",
        "rank_pattern",
        "alpha_pattern",
        "layers_to_transform",
        "layers_pattern",
        "layer_replication",
        "target_parameters",
        "trainable_token_indices",
    ];
    for k in unsupported {
        ensure!(
            empty(k),
            "{file}: `{k}` is set ({}); engine does not implement it, and ignoring it \
             would give logits that differ from PEFT's",
            v[k]
        );
    }
    let target_modules = match v.get("target_modules") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("{file}: non-string in target_modules"))
            })
            .collect::<Result<Vec<_>>>()?,
        Some(Value::String(s)) => vec![s.clone()],
        _ => vec![],
    };
    Ok(LoraConfig {
        r,
        alpha: num("lora_alpha", 8.0)? as f32,
        dropout: num("lora_dropout", 0.0)? as f32,
        target_modules,
        use_rslora: flag("use_rslora"),
        fan_in_fan_out: flag("fan_in_fan_out"),
    })
}

/// The JSON PEFT writes for `cfg` (the fields `LoraConfig` reads back);
/// `base` is the base model's path as given (AutoPeftModel loads it).
pub fn config_json(cfg: &LoraConfig, fan_in_fan_out: bool, base: Option<&str>) -> Value {
    json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "revision": null,
        "inference_mode": true,
        "r": cfg.r,
        "lora_alpha": cfg.alpha,
        "lora_dropout": cfg.dropout,
        "target_modules": cfg.target_modules,
        "fan_in_fan_out": fan_in_fan_out,
        "bias": "none",
        "use_rslora": cfg.use_rslora,
        "use_dora": false,
        "init_lora_weights": true,
        "modules_to_save": null,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
    })
}

impl CausalLm {
    /// Writes the attached adapters to `dir` in PEFT's format, each file
    /// atomically. Merged adapters are written as they are (A and B).
    pub fn save_adapter(&self, dir: &Path) -> Result<()> {
        let ad = self
            .lora
            .as_ref()
            .ok_or_else(|| anyhow!("no LoRA adapters attached"))?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut tensors = BTreeMap::new();
        for m in ad.modules.keys() {
            for name in [lora_a_name(m), lora_b_name(m)] {
                let t = self.params.get(&name)?;
                tensors.insert(
                    format!("{PREFIX}{name}"),
                    HostTensor::new(t.shape(), t.to_vec()?),
                );
            }
        }
        save_safetensors(&dir.join(WEIGHTS_FILE), &tensors, SaveDtype::F32)?;
        // PEFT's flag for Conv1D's [in, out] weights.
        let fan_in_fan_out = !self.arch().linears().out_in;
        let cfg = serde_json::to_string_pretty(&config_json(
            &ad.config,
            fan_in_fan_out,
            self.name_or_path.as_deref(),
        ))?;
        write_atomic(&dir.join(CONFIG_FILE), cfg.as_bytes())
    }

    /// Loads a PEFT LoRA adapter directory onto this model (replacing any
    /// attached adapters; the base stays frozen).
    pub fn load_adapter(&mut self, dir: &Path) -> Result<()> {
        ensure!(
            !self.lora.as_ref().is_some_and(|a| a.merged),
            "unmerge the current adapters before loading others"
        );
        let cfg = read_config(&dir.join(CONFIG_FILE))?;
        let path = dir.join(WEIGHTS_FILE);
        let ck = Checkpoint::open_file(&path)?;
        let file = path.display();
        let linears = self.linear_modules()?;
        let mut found: BTreeMap<String, [bool; 2]> = BTreeMap::new();
        for key in ck.names() {
            let (module, which) = key
                .strip_prefix(PREFIX)
                .and_then(|k| {
                    (k.strip_suffix(".lora_A.weight").map(|m| (m, 0)))
                        .or_else(|| k.strip_suffix(".lora_B.weight").map(|m| (m, 1)))
                })
                .ok_or_else(|| {
                    anyhow!("{file}: key `{key}` is not `{PREFIX}<module>.lora_A/B.weight`")
                })?;
            ensure!(
                linears.iter().any(|l| l.name == module),
                "{file}: key `{key}`: this model has no linear `{module}`"
            );
            found.entry(module.to_string()).or_default()[which] = true;
        }
        ensure!(!found.is_empty(), "{file}: no LoRA weights");
        let mut modules = BTreeMap::new();
        let mut loaded = Vec::new();
        for m in linears.iter().filter(|l| found.contains_key(&l.name)) {
            let [a_key, b_key] =
                [lora_a_name(&m.name), lora_b_name(&m.name)].map(|n| format!("{PREFIX}{n}"));
            for (k, have) in [(&a_key, found[&m.name][0]), (&b_key, found[&m.name][1])] {
                ensure!(
                    have,
                    "{file}: missing `{k}` (the module's other factor is present)"
                );
            }
            let a = ck.get(&a_key)?;
            ensure!(
                a.shape.len() == 2 && a.shape[1] == m.in_features && a.shape[0] > 0,
                "{file}: `{a_key}` has shape {:?}, expected [r, {}]",
                a.shape,
                m.in_features
            );
            let r = a.shape[0];
            ensure!(
                r == cfg.r,
                "{file}: `{a_key}` has rank {r}, but {CONFIG_FILE} says r = {}",
                cfg.r
            );
            let b = ck.get_shaped(&b_key, &[m.out_features, r])?;
            loaded.push((m.name.clone(), a, b));
            modules.insert(m.name.clone(), cfg.scale_for(r));
        }
        for (name, a, b) in loaded {
            let a = Tensor::from_f32(self.gpu(), &a.shape, &a.data)?;
            let b = Tensor::from_f32(self.gpu(), &b.shape, &b.data)?;
            self.insert_adapter(&name, a, b)?;
        }
        self.set_adapters(cfg, modules);
        Ok(())
    }
}
