//! Frozen quantized bases (int8 or NF4) under the models: QLoRA.
//!
//! [`CausalLm::quantize_base`] replaces every linear layer's f32 weight by a
//! `QuantizedWeight` (bitsandbytes layout, [out, in]) and drops the f32 copy,
//! so the base costs ~0.52 (NF4) or ~1 (int8) byte per weight. Biases,
//! embeddings and layer norms stay f32. The forward runs the dequantizing
//! kernels (`qlinear`, through `layers::quantized_linear`), whose backward
//! gives dx only: the base is frozen by type. LoRA on a quantized module runs
//! the fused QLoRA op
//! (`qlora_linear`: the dequantizing kernel adds `s·(dropout(x)·Aᵀ)·Bᵀ` in
//! its epilogue, forward and dx), and "adapters off" is the plain quantized layer.

use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::lm::CausalLm;
use crate::quant::{QuantFormat, QuantizedWeight, WeightLayout};
use crate::tensor::DType;

/// Parses `none`, `int8` or `nf4`.
pub fn parse_quant(s: &str) -> Result<Option<QuantFormat>> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "none" | "" => None,
        "int8" => Some(QuantFormat::Int8),
        "nf4" => Some(QuantFormat::Nf4),
        other => bail!("unknown --quant `{other}` (none, int8 or nf4)"),
    })
}

impl CausalLm {
    /// Quantizes every linear layer's weight (attention and MLP projections),
    /// freezing the base. Call before attaching or loading adapters.
    pub fn quantize_base(&mut self, format: QuantFormat) -> Result<()> {
        if !self.quantized.is_empty() {
            bail!("the base is already quantized");
        }
        if self.lora.as_ref().is_some_and(|a| a.merged) {
            bail!("unmerge the adapters before quantizing the base");
        }
        let mut out = BTreeMap::new();
        for m in self.linear_modules()? {
            let key = format!("{}.weight", m.name);
            let w = self.params.get(&key)?.to_vec()?;
            let layout = if m.out_in {
                WeightLayout::OutIn
            } else {
                WeightLayout::InOut
            };
            let q = QuantizedWeight::from_host_layout(
                self.gpu(),
                &w,
                m.out_features,
                m.in_features,
                layout,
                format,
            )?;
            out.insert(m.name.clone(), q);
        }
        for name in out.keys() {
            self.params.remove(&format!("{name}.weight"));
        }
        self.quantized = Arc::new(out);
        // A quantized base is frozen: only adapters (and heads) can train.
        let adapters = self.lora.is_some();
        self.params
            .set_trainable(|n| n.contains(".lora_") || (!adapters && n.starts_with("v_head.")));
        Ok(())
    }

    /// Bytes on the device per component, for `engine info`.
    pub fn memory_report(&self) -> Vec<(String, u64)> {
        let (mut base, mut lora) = (0u64, 0u64);
        for p in self.params.iter() {
            let b = DType::F32.storage_bytes(p.tensor.numel());
            if p.name.contains(".lora_") {
                lora += b;
            } else {
                base += b;
            }
        }
        let mut rows = vec![(
            "f32 parameters (embeddings, norms, biases, dense weights)".to_string(),
            base,
        )];
        if !self.quantized.is_empty() {
            let (mut codes, mut scales, mut n) = (0u64, 0u64, 0u64);
            for q in self.quantized.values() {
                let b = q.bytes();
                codes += b.codes;
                scales += b.total() - b.codes;
                let (o, i) = q.shape();
                n += (o * i) as u64;
            }
            let fmt =
                format!("{:?}", self.quantized.values().next().unwrap().format()).to_lowercase();
            rows.push((format!("{fmt} codes ({n} quantized weights)"), codes));
            rows.push((
                format!("{fmt} scales and code tables (absmax, double-quant statistics)"),
                scales,
            ));
        }
        if lora > 0 {
            rows.push(("LoRA adapters (f32)".to_string(), lora));
        }
        rows
    }
}
