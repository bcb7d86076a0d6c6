//! The building blocks every architecture's forward pass is written with:
//! named layer norms, RMS norms and projections (dense, LoRA-adapted or over a
//! quantized base), and self-attention with a KV cache.

use anyhow::{ensure, Result};
use std::sync::Arc;

use super::params::{LoraSite, ParamVars};
use crate::device::Gpu;
use crate::ops::attention::{attention, AttnOptions};
use crate::ops::elementwise::add;
use crate::ops::embedding::embedding;
use crate::ops::layernorm::layernorm;
use crate::ops::lora::lora_linear_onto;
use crate::ops::lora::{qlora_linear, LoraSpec};
use crate::ops::matmul::matmul_onto;
use crate::ops::qmatmul::qlinear;
use crate::ops::rmsnorm::rmsnorm;
use crate::ops::row_gather::keep_rows;
use crate::quant::QuantizedWeight;
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

pub use super::tokens::Tokens;

/// Keys and values of every layer for incremental decoding.
pub struct KvCache {
    /// Per layer, [B, capacity, H, D].
    pub k: Vec<Tensor>,
    pub v: Vec<Tensor>,
    /// Positions filled so far.
    pub len: usize,
    pub capacity: usize,
    /// [B, capacity] i32: 1 where a real token was cached.
    pub key_mask: Tensor,
    host_mask: Vec<i32>,
    /// Real tokens seen per sequence (the next token's position).
    pub next_position: Vec<i32>,
}

impl KvCache {
    pub fn new(
        gpu: &Arc<Gpu>,
        layers: usize,
        batch: usize,
        capacity: usize,
        heads: usize,
        head_dim: usize,
    ) -> Result<KvCache> {
        let shape = [batch, capacity, heads, head_dim];
        let mut k = Vec::with_capacity(layers);
        let mut v = Vec::with_capacity(layers);
        for _ in 0..layers {
            k.push(Tensor::zeros(gpu, &shape, DType::F32)?);
            v.push(Tensor::zeros(gpu, &shape, DType::F32)?);
        }
        Ok(KvCache {
            k,
            v,
            len: 0,
            capacity,
            key_mask: Tensor::zeros(gpu, &[batch, capacity], DType::I32)?,
            host_mask: vec![0; batch * capacity],
            next_position: vec![0; batch],
        })
    }

    /// Records `tokens`' padding in the key mask (before the layers run).
    fn admit(&mut self, tokens: &Tokens) -> Result<()> {
        ensure!(
            self.len + tokens.seq <= self.capacity,
            "KV cache full: {} + {} tokens exceed its capacity of {}",
            self.len,
            tokens.seq,
            self.capacity
        );
        for b in 0..tokens.batch {
            for t in 0..tokens.seq {
                self.host_mask[b * self.capacity + self.len + t] = tokens.mask[b * tokens.seq + t];
            }
        }
        self.key_mask.write_i32(&self.host_mask)
    }

    /// Positions for `new_ids` appended to each sequence, all real tokens.
    pub fn next_tokens(&self, new_ids: &[i32]) -> Tokens {
        Tokens {
            batch: new_ids.len(),
            seq: 1,
            ids: new_ids.to_vec(),
            positions: self.next_position.clone(),
            mask: vec![1; new_ids.len()],
        }
    }

    /// Keeps only the sequences `rows` (in that order; indices into the
    /// current batch), dropping the others: keys, values, masks and
    /// positions move on the device by buffer copies (bit-exact), so a kept
    /// sequence continues exactly as it would have in the full batch.
    /// Generation calls this to stop computing rows that have finished.
    pub fn keep_rows(&mut self, rows: &[usize]) -> Result<()> {
        let batch = self.next_position.len();
        ensure!(
            !rows.is_empty() && rows.iter().all(|&r| r < batch),
            "KV cache: cannot keep rows {rows:?} of a batch of {batch}"
        );
        for t in self.k.iter_mut().chain(self.v.iter_mut()) {
            *t = keep_rows(t, rows)?;
        }
        self.key_mask = keep_rows(&self.key_mask, rows)?;
        let cap = self.capacity;
        self.host_mask = rows
            .iter()
            .flat_map(|&r| self.host_mask[r * cap..(r + 1) * cap].iter().copied())
            .collect();
        self.next_position = rows.iter().map(|&r| self.next_position[r]).collect();
        Ok(())
    }

    /// Advances past `tokens` once every layer has appended its keys.
    fn commit(&mut self, tokens: &Tokens) {
        for b in 0..tokens.batch {
            self.next_position[b] += tokens.mask[b * tokens.seq..(b + 1) * tokens.seq]
                .iter()
                .sum::<i32>();
        }
        self.len += tokens.seq;
    }
}

/// One forward pass: the tape, the parameters on it, and the token layout.
pub struct Fwd<'a> {
    pub tape: &'a Tape,
    pub vars: &'a ParamVars,
    pub tokens: &'a Tokens,
    pub gpu: &'a Arc<Gpu>,
    /// [B·T] ids and positions on the GPU.
    pub ids: Tensor,
    pub positions: Tensor,
    /// [B, T] key mask for the uncached case (None without padding).
    mask: Option<Tensor>,
}

impl<'a> Fwd<'a> {
    pub fn new(
        tape: &'a Tape,
        vars: &'a ParamVars,
        tokens: &'a Tokens,
        cache: Option<&mut KvCache>,
    ) -> Result<Fwd<'a>> {
        let gpu = tape.gpu();
        let shape = [tokens.batch, tokens.seq];
        let mask = match cache {
            Some(c) => {
                c.admit(tokens)?;
                None
            }
            None if tokens.has_padding() => Some(Tensor::from_i32(gpu, &shape, &tokens.mask)?),
            None => None,
        };
        Ok(Fwd {
            tape,
            vars,
            tokens,
            gpu,
            ids: Tensor::from_i32(gpu, &shape, &tokens.ids)?,
            positions: Tensor::from_i32(gpu, &shape, &tokens.positions)?,
            mask,
        })
    }

    pub fn p(&self, name: &str) -> Result<&Var> {
        self.vars.get(name)
    }

    /// The rows of embedding table `table` for this pass's token ids.
    pub fn embed(&self, table: &str) -> Result<Var> {
        embedding(self.tape, self.p(table)?, &self.ids, &self.tokens.ids)
    }

    /// LayerNorm with `<prefix>.weight` and `<prefix>.bias`.
    pub fn layernorm(&self, x: &Var, prefix: &str, eps: f32) -> Result<Var> {
        layernorm(
            self.tape,
            x,
            self.p(&format!("{prefix}.weight"))?,
            self.p(&format!("{prefix}.bias"))?,
            eps,
        )
    }

    /// RMSNorm with `<prefix>.weight` (no bias; Llama's `LlamaRMSNorm`).
    pub fn rmsnorm(&self, x: &Var, prefix: &str, eps: f32) -> Result<Var> {
        rmsnorm(self.tape, x, self.p(&format!("{prefix}.weight"))?, eps)
    }

    /// x·W + b with `<prefix>.weight` stored [in, out] (GPT-2's Conv1D) or
    /// [out, in] (`nn.Linear`, `out_in = true`), and an optional `<prefix>.bias`.
    /// A module with a LoRA adapter (while adapters are on) runs the fused
    /// LoRA op instead: `+ s·(dropout(x)·Aᵀ)·Bᵀ` in the same pass.
    pub fn linear(&self, x: &Var, prefix: &str, out_in: bool) -> Result<Var> {
        self.linear_onto_opt(x, prefix, out_in, None)
    }

    /// `onto + linear(x)`: a residual connection, with the add done by the
    /// product's store where the kernel can (f32 weights, with or without a
    /// LoRA adapter), else by an add after it. Either way each element is the
    /// linear's output added to `onto` once, the numbers of
    /// `add(onto, linear(x))`.
    pub fn linear_onto(&self, x: &Var, prefix: &str, out_in: bool, onto: &Var) -> Result<Var> {
        self.linear_onto_opt(x, prefix, out_in, Some(onto))
    }

    fn linear_onto_opt(
        &self,
        x: &Var,
        prefix: &str,
        out_in: bool,
        onto: Option<&Var>,
    ) -> Result<Var> {
        let b = self.vars.get(&format!("{prefix}.bias")).ok();
        // A quantized base (QLoRA) runs the dequantizing kernels, which do
        // not accumulate into their output: the residual is added after.
        if let Some(q) = self.vars.quantized.get(prefix) {
            let y = quantized_linear(self.tape, x, q, b, self.vars.lora_for(prefix)?)?;
            return match onto {
                Some(o) => add(self.tape, o, &y),
                None => Ok(y),
            };
        }
        let w = self.p(&format!("{prefix}.weight"))?;
        if let Some(l) = self.vars.lora_for(prefix)? {
            let (s, d) = (l.scale, l.dropout);
            return lora_linear_onto(self.tape, x, w, b, l.a, l.b, s, out_in, d, onto);
        }
        matmul_onto(self.tape, x, w, b, false, out_in, onto)
    }

    /// Causal self-attention of q, k, v [B, T, H, D] → [B, T, H·D]. With a
    /// cache, this layer's k and v are appended first and q attends to
    /// everything cached (no gradients flow into the cache).
    pub fn attention(
        &self,
        q: &Var,
        k: &Var,
        v: &Var,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Var> {
        let (b, t) = (self.tokens.batch, self.tokens.seq);
        let out = match cache {
            None => attention(
                self.tape,
                q,
                k,
                v,
                self.mask.as_ref(),
                &AttnOptions::default(),
            )?,
            Some((c, layer)) => {
                let row = k.shape()[2] * k.shape()[3];
                for bi in 0..b {
                    let dst = (bi * c.capacity + c.len) * row;
                    c.k[layer].copy_elems_from(dst, k.tensor(), bi * t * row, t * row)?;
                    c.v[layer].copy_elems_from(dst, v.tensor(), bi * t * row, t * row)?;
                }
                let kc = self.tape.constant(c.k[layer].clone());
                let vc = self.tape.constant(c.v[layer].clone());
                let opts = AttnOptions {
                    kv_len: Some(c.len + t),
                    ..Default::default()
                };
                attention(self.tape, q, &kc, &vc, Some(&c.key_mask), &opts)?
            }
        };
        self.merge_heads(&out)
    }

    /// Bidirectional (encoder) self-attention of q, k, v [B, T, H, D] →
    /// [B, T, H·D]: every query sees every real key of its sequence (pads
    /// are masked as keys; pad queries still get outputs, as in transformers).
    pub fn bidirectional_attention(&self, q: &Var, k: &Var, v: &Var) -> Result<Var> {
        let opts = AttnOptions {
            causal: false,
            ..Default::default()
        };
        let out = attention(self.tape, q, k, v, self.mask.as_ref(), &opts)?;
        self.merge_heads(&out)
    }

    /// [B, T, H, D] → [B, T, H·D].
    fn merge_heads(&self, out: &Var) -> Result<Var> {
        let (b, t) = (self.tokens.batch, self.tokens.seq);
        let c = out.shape()[2] * out.shape()[3];
        self.tape.reshape(out, &[b, t, c])
    }

    /// Marks the cache as holding this pass's tokens (after the last layer).
    pub fn commit(&self, cache: Option<&mut KvCache>) {
        if let Some(c) = cache {
            c.commit(self.tokens);
        }
    }
}

/// A linear layer over a quantized base (QLoRA; see `models::quantized`),
/// with an optional LoRA term (fused).
pub fn quantized_linear(
    tape: &Tape,
    x: &Var,
    w: &QuantizedWeight,
    bias: Option<&Var>,
    lora: Option<LoraSite>,
) -> Result<Var> {
    let Some(l) = lora else {
        return qlinear(tape, x, w, bias);
    };
    let spec = LoraSpec {
        dropout: l.dropout,
        ..LoraSpec::new(l.scale, true)
    };
    qlora_linear(tape, &spec, x, w, bias, l.a, l.b)
}
