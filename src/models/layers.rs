//! The building blocks every architecture's forward pass is written with:
//! named layer norms, RMS norms and projections (dense, LoRA-adapted or over a
//! quantized base), and self-attention with a KV cache.

use anyhow::Result;
use std::sync::Arc;

use super::params::{LoraSite, ParamVars};
use crate::device::Gpu;
use crate::ops::attention::{attention, AttnOptions};
use crate::ops::elementwise::add;
use crate::ops::embedding::embedding;
use crate::ops::head_slice::{head_slice, QkvLayout, Slice};
use crate::ops::layernorm::{layernorm, layernorm_pair_forward};
use crate::ops::lora::lora_linear_onto;
use crate::ops::lora::{qlora_linear, LoraSpec};
use crate::ops::matmul::matmul_onto;
use crate::ops::qkv_heads::{qkv_heads_forward, qkv_heads_into, Dest, QkvShape};
use crate::ops::qmatmul::qlinear;
use crate::ops::rmsnorm::rmsnorm;
use crate::ops::rotary::{rotary_slice, RotaryTable};
use crate::quant::QuantizedWeight;
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

pub use super::kv_cache::KvCache;
pub use super::tokens::Tokens;

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

    /// Both layer norms of `x` (prefixes as for [`layernorm`](Self::layernorm))
    /// in one pass where no gradient is wanted, else None: the caller runs
    /// them one at a time, where the tape expects them.
    pub fn layernorm_pair(
        &self,
        x: &Var,
        prefixes: [&str; 2],
        eps: f32,
    ) -> Result<Option<[Var; 2]>> {
        let [w1, b1, w2, b2] = [(0, "weight"), (0, "bias"), (1, "weight"), (1, "bias")]
            .map(|(i, what)| self.p(&format!("{}.{what}", prefixes[i])));
        let (w1, b1, w2, b2) = (w1?, b1?, w2?, b2?);
        let wanted = [x, w1, b1, w2, b2].iter().any(|v| v.requires_grad());
        if wanted && self.tape.is_recording() {
            return Ok(None);
        }
        let (w1, b1, w2, b2) = (w1.tensor(), b1.tensor(), w2.tensor(), b2.tensor());
        let ys = layernorm_pair_forward(x.tensor(), (w1, b1), (w2, b2), eps)?;
        Ok(Some(ys.map(|y| self.tape.constant(y))))
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
        let t = self.tokens.seq;
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
                for (slot, new) in c.slots(layer).iter().zip([k, v]) {
                    for bi in 0..self.tokens.batch {
                        let dst = slot.offset + bi * slot.seq_stride;
                        slot.tensor
                            .copy_elems_from(dst, new.tensor(), bi * t * row, t * row)?;
                    }
                }
                self.attend_cached(q, c, layer)?
            }
        };
        self.merge_heads(&out)
    }

    /// q [B, T, H, D] attending to layer `layer`'s cached keys and values,
    /// this pass's already appended.
    fn attend_cached(&self, q: &Var, c: &KvCache, layer: usize) -> Result<Var> {
        let kc = self.tape.constant(c.k[layer].clone());
        let vc = self.tape.constant(c.v[layer].clone());
        let opts = AttnOptions {
            kv_len: Some(c.len + self.tokens.seq),
            ..Default::default()
        };
        attention(self.tape, q, &kc, &vc, Some(&c.key_mask), &opts)
    }

    /// [`attention`](Self::attention) over a fused QKV projection [B, T,
    /// 3·H·D] in `layout`, q and k rotated by `rope` (GPT-NeoX; None for
    /// GPT-2). Where no gradient is wanted (generation, scoring, reference
    /// passes) one `qkv_heads` pass splits and rotates the three parts and,
    /// with a cache, writes k and v straight into it; otherwise the
    /// differentiable `rotary_slice` and `head_slice`, whose values it
    /// reproduces bit for bit.
    pub fn qkv_attention(
        &self,
        qkv: &Var,
        layout: QkvLayout,
        (heads, head_dim): (usize, usize),
        rope: Option<&RotaryTable>,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Var> {
        let slice = |which| Slice {
            layout,
            which,
            heads,
            head_dim,
        };
        let part = |which| match rope {
            Some(r) if which < 2 => rotary_slice(self.tape, qkv, slice(which), &self.positions, r),
            _ => head_slice(self.tape, qkv, slice(which)),
        };
        if qkv.requires_grad() {
            return self.attention(&part(0)?, &part(1)?, &part(2)?, cache);
        }
        let s = QkvShape {
            layout,
            batch: self.tokens.batch,
            seq: self.tokens.seq,
            heads,
            head_dim,
        };
        let Some((c, layer)) = cache else {
            let [q, k, v] = qkv_heads_forward(qkv.tensor(), &s, &self.positions, rope)?;
            let [q, k, v] = [q, k, v].map(|t| self.tape.constant(t));
            return self.attention(&q, &k, &v, None);
        };
        let q = Tensor::empty(self.gpu, &[s.batch, s.seq, heads, head_dim], DType::F32)?;
        let [k, v] = c.slots(layer);
        qkv_heads_into(
            qkv.tensor(),
            &s,
            &self.positions,
            rope,
            [Dest::contiguous(&q, &s), k, v],
        )?;
        let out = self.attend_cached(&self.tape.constant(q), c, layer)?;
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
