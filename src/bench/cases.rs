//! The op benchmarks, at GPT-2-small / Pythia-160m block sizes (C = 768,
//! 12 heads of 64, MLP 3072, 1024 tokens per step; GPT-2's vocab of 50,257).
//! Shapes read M×K×N for matmul, B×H×T×D for attention, N×C or N×V for rows.

use anyhow::Result;
use std::sync::Arc;

use super::{Case, Run, Work};
use crate::device::Gpu;
use crate::ops::attention::{
    attention_backward, attention_forward, attention_naive_forward, AttnOptions,
};
use crate::ops::cross_entropy::cross_entropy_forward;
use crate::ops::layernorm::{layernorm_backward, layernorm_forward};
use crate::ops::matmul::matmul_forward;
use crate::ops::softmax::Variant;
use crate::rng::Rng;
use crate::tensor::Tensor;

fn random(gpu: &Arc<Gpu>, shape: &[usize], seed: u64, scale: f32) -> Result<Tensor> {
    let n = shape.iter().product();
    let mut rng = Rng::new(seed);
    Tensor::from_f32(gpu, shape, &rng.vec(n, scale))
}

fn matmul_case(m: usize, k: usize, n: usize) -> Case {
    Case {
        op: "matmul",
        shape: format!("{m}x{k}x{n}"),
        work: Work::Flops(2.0 * (m * k * n) as f64),
        prepare: Box::new(move |gpu, seed| {
            let a = random(gpu, &[m, k], seed, 1.0)?;
            let b = random(gpu, &[k, n], seed + 1000, 1.0)?;
            Ok(Box::new(move || matmul_forward(&a, &b, None, false, false).map(drop)) as Run)
        }),
    }
}

/// q, k, v [B, T, H, D] and a gradient of the output.
fn qkv(gpu: &Arc<Gpu>, s: [usize; 4], seed: u64) -> Result<[Tensor; 4]> {
    let shape = [s[0], s[2], s[1], s[3]];
    Ok([
        random(gpu, &shape, seed, 1.0)?,
        random(gpu, &shape, seed + 1, 1.0)?,
        random(gpu, &shape, seed + 2, 1.0)?,
        random(gpu, &shape, seed + 3, 1.0)?,
    ])
}

/// Causal attention does half of the 4·B·H·T²·D multiply-adds of the full one.
fn attention_flops(s: [usize; 4]) -> f64 {
    2.0 * (s[0] * s[1] * s[2] * s[2] * s[3]) as f64
}

fn attention_cases(s: [usize; 4]) -> Vec<Case> {
    let shape = format!("{}x{}x{}x{}", s[0], s[1], s[2], s[3]);
    let fwd = |op: &'static str, naive: bool| Case {
        op,
        shape: shape.clone(),
        work: Work::Flops(attention_flops(s)),
        prepare: Box::new(move |gpu, seed| {
            let [q, k, v, _] = qkv(gpu, s, seed)?;
            let opts = AttnOptions::default();
            Ok(Box::new(move || {
                if naive {
                    attention_naive_forward(&q, &k, &v, None, &opts).map(drop)
                } else {
                    attention_forward(&q, &k, &v, None, &opts).map(drop)
                }
            }) as Run)
        }),
    };
    let bwd = Case {
        op: "attention_bwd",
        shape: shape.clone(),
        // dV, dP, dQ, dK plus the recomputed scores: 2.5× the forward.
        work: Work::Flops(2.5 * attention_flops(s)),
        prepare: Box::new(move |gpu, seed| {
            let [q, k, v, dout] = qkv(gpu, s, seed)?;
            let opts = AttnOptions::default();
            let (out, lse) = attention_forward(&q, &k, &v, None, &opts)?;
            Ok(Box::new(move || {
                attention_backward(&q, &k, &v, None, &out, &lse, &dout, &opts).map(drop)
            }) as Run)
        }),
    };
    vec![
        fwd("attention_fwd", false),
        fwd("attention_naive_fwd", true),
        bwd,
    ]
}

fn layernorm_cases(n: usize, c: usize) -> Vec<Case> {
    let inputs = move |gpu: &Arc<Gpu>, seed| -> Result<[Tensor; 4]> {
        Ok([
            random(gpu, &[n, c], seed, 2.0)?,
            random(gpu, &[c], seed + 1, 1.0)?,
            random(gpu, &[c], seed + 2, 1.0)?,
            random(gpu, &[n, c], seed + 3, 1.0)?,
        ])
    };
    let bytes = (n * c * 4) as f64;
    vec![
        Case {
            op: "layernorm_fwd",
            shape: format!("{n}x{c}"),
            work: Work::Bytes(2.0 * bytes),
            prepare: Box::new(move |gpu, seed| {
                let [x, w, b, _] = inputs(gpu, seed)?;
                Ok(Box::new(move || layernorm_forward(&x, &w, &b, 1e-5).map(drop)) as Run)
            }),
        },
        Case {
            op: "layernorm_bwd",
            shape: format!("{n}x{c}"),
            work: Work::Bytes(3.0 * bytes),
            prepare: Box::new(move |gpu, seed| {
                let [x, w, b, dy] = inputs(gpu, seed)?;
                let out = layernorm_forward(&x, &w, &b, 1e-5)?;
                Ok(
                    Box::new(move || {
                        layernorm_backward(&dy, &x, &w, &out.mean, &out.rstd).map(drop)
                    }) as Run,
                )
            }),
        },
    ]
}

fn cross_entropy_case(n: usize, v: usize) -> Case {
    Case {
        op: "cross_entropy_fwd",
        shape: format!("{n}x{v}"),
        work: Work::Bytes((n * v * 4) as f64),
        prepare: Box::new(move |gpu, seed| {
            let logits = random(gpu, &[n, v], seed, 4.0)?;
            let mut rng = Rng::new(seed);
            let t: Vec<i32> = (0..n).map(|_| rng.below(v) as i32).collect();
            let targets = Tensor::from_i32(gpu, &[n], &t)?;
            Ok(
                Box::new(move || cross_entropy_forward(&logits, &targets, Variant::Auto).map(drop))
                    as Run,
            )
        }),
    }
}

/// Every benchmark; `quick` keeps the run to about a minute on llvmpipe and
/// still includes matmul at 1024³.
pub fn cases(quick: bool) -> Vec<Case> {
    let mut out = vec![matmul_case(1024, 1024, 1024)];
    if !quick {
        // GPT-2 small / Pythia-160m projections over 1024 tokens.
        out.extend([
            matmul_case(1024, 768, 2304),
            matmul_case(1024, 768, 3072),
            matmul_case(1024, 3072, 768),
        ]);
    }
    out.extend(attention_cases([1, 12, 256, 64]));
    if !quick {
        out.extend(attention_cases([1, 12, 1024, 64]));
    }
    out.extend(layernorm_cases(1024, 768));
    out.push(cross_entropy_case(if quick { 64 } else { 256 }, 50257));
    out.extend(super::lora_cases::cases(quick));
    out.extend(super::quant_cases::cases(quick));
    out
}
