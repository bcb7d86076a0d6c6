//! The op benchmarks, at GPT-2-small / Pythia-160m block sizes (C = 768,
//! 12 heads of 64, MLP 3072, 1024 tokens per step; GPT-2's vocab of 50,257).
//! Shapes read M×K×N for matmul, B×H×T×D for attention (B×H/Hkv×T×D with
//! grouped KV heads), N×C or N×V for rows. The Llama ops (rmsnorm, swiglu,
//! GQA attention) run at a Llama-style block: C = 768, 12 query heads sharing
//! 4 KV heads, MLP width 2048.

use anyhow::Result;
use std::sync::Arc;

use super::case::{Case, Prepare, Run, Work};
use crate::device::Gpu;
use crate::ops::attention::{
    attention_backward, attention_forward, attention_naive_forward, AttnInputs, AttnOptions,
};
use crate::ops::cross_entropy::cross_entropy_forward;
use crate::ops::layernorm::{layernorm_backward, layernorm_forward};
use crate::ops::matmul::{matmul_forward, matmul_forward_with, MatmulVariant};
use crate::ops::rmsnorm::{rmsnorm_backward, rmsnorm_forward};
use crate::ops::softmax::Variant;
use crate::ops::swiglu::{swiglu_backward, swiglu_forward};
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

/// The matmul kernels side by side (same run, same inputs), with B
/// stored [K, N] or, with `tb`, [N, K] (a linear layer / the LM head): what
/// `MatmulVariant::Auto` picks per adapter is read off these rows.
fn matmul_variant_cases(m: usize, k: usize, n: usize, tb: bool) -> Vec<Case> {
    let row = |op: &'static str, variant: MatmulVariant| Case {
        op,
        shape: format!("{m}x{k}x{n}{}", if tb { " tB" } else { "" }),
        work: Work::Flops(2.0 * (m * k * n) as f64),
        prepare: Box::new(move |gpu, seed| {
            let a = random(gpu, &[m, k], seed, 1.0)?;
            let b = random(gpu, &if tb { [n, k] } else { [k, n] }, seed + 1000, 1.0)?;
            Ok(
                Box::new(move || matmul_forward_with(variant, &a, &b, None, false, tb).map(drop))
                    as Run,
            )
        }),
    };
    let mut rows = vec![
        row("matmul_cpu", MatmulVariant::Cpu),
        row("matmul_cpu_subgroup", MatmulVariant::CpuSubgroup),
        row("matmul_tiled", MatmulVariant::Tiled),
    ];
    // The few-rows kernel at decoding sizes: up to 64 rows, beyond the
    // ROWS_MAX it is chosen at, so the threshold can be read off a run.
    if m <= 64 {
        rows.push(row("matmul_rows", MatmulVariant::Rows));
    }
    rows
}

/// q [B, T, H, D], k and v [B, T, Hkv, D], and a gradient of the output.
fn qkv(gpu: &Arc<Gpu>, s: [usize; 4], hkv: usize, seed: u64) -> Result<[Tensor; 4]> {
    let shape = [s[0], s[2], s[1], s[3]];
    let kv = [s[0], s[2], hkv, s[3]];
    Ok([
        random(gpu, &shape, seed, 1.0)?,
        random(gpu, &kv, seed + 1, 1.0)?,
        random(gpu, &kv, seed + 2, 1.0)?,
        random(gpu, &shape, seed + 3, 1.0)?,
    ])
}

/// Causal attention does half of the 4·B·H·T²·D multiply-adds of the full one.
fn attention_flops(s: [usize; 4]) -> f64 {
    2.0 * (s[0] * s[1] * s[2] * s[2] * s[3]) as f64
}

/// Attention at s = [B, H, T, D] with `hkv` KV heads: the flash forward and
/// backward, and the naive forward when every head has its own KV head.
fn attention_cases(s: [usize; 4], hkv: usize) -> Vec<Case> {
    let gqa = hkv < s[1];
    let shape = if gqa {
        format!("{}x{}/{}x{}x{}", s[0], s[1], hkv, s[2], s[3])
    } else {
        format!("{}x{}x{}x{}", s[0], s[1], s[2], s[3])
    };
    let fwd = |op: &'static str, naive: bool| Case {
        op,
        shape: shape.clone(),
        work: Work::Flops(attention_flops(s)),
        prepare: Box::new(move |gpu, seed| {
            let [q, k, v, _] = qkv(gpu, s, hkv, seed)?;
            let opts = AttnOptions::default();
            Ok(Box::new(move || {
                let x = AttnInputs::new(&q, &k, &v, None);
                if naive {
                    attention_naive_forward(x, &opts).map(drop)
                } else {
                    attention_forward(x, &opts).map(drop)
                }
            }) as Run)
        }),
    };
    let bwd = Case {
        op: if gqa {
            "gqa_attention_bwd"
        } else {
            "attention_bwd"
        },
        shape: shape.clone(),
        // dV, dP, dQ, dK plus the recomputed scores: 2.5× the forward.
        work: Work::Flops(2.5 * attention_flops(s)),
        prepare: Box::new(move |gpu, seed| {
            let [q, k, v, dout] = qkv(gpu, s, hkv, seed)?;
            let opts = AttnOptions::default();
            let (out, lse) = attention_forward(AttnInputs::new(&q, &k, &v, None), &opts)?;
            Ok(Box::new(move || {
                let x = AttnInputs::new(&q, &k, &v, None);
                attention_backward(x, (&out, &lse), &dout, &opts).map(drop)
            }) as Run)
        }),
    };
    if gqa {
        return vec![fwd("gqa_attention_fwd", false), bwd];
    }
    vec![
        fwd("attention_fwd", false),
        fwd("attention_naive_fwd", true),
        bwd,
    ]
}

/// A row op's forward and backward cases over `rows`×`cols`, on fresh random
/// inputs (shape, scale) drawn from consecutive seeds; `traffic` is each
/// case's bytes moved, in [rows, cols] f32 tensors. `fwd` and `bwd` turn the
/// inputs into the timed runs (the row ops' cases differ only in these).
fn row_op_cases<const N: usize, F, B>(
    ops: [&'static str; 2],
    (rows, cols): (usize, usize),
    traffic: [f64; 2],
    inputs: [(Vec<usize>, f32); N],
    fwd: impl Fn([Tensor; N]) -> Result<F> + 'static,
    bwd: impl Fn([Tensor; N]) -> Result<B> + 'static,
) -> Vec<Case>
where
    F: FnMut() -> Result<()> + 'static,
    B: FnMut() -> Result<()> + 'static,
{
    let bytes = (rows * cols * 4) as f64;
    let draw = move |gpu: &Arc<Gpu>, seed: u64| -> Result<[Tensor; N]> {
        let mut ts = Vec::with_capacity(N);
        for (i, (shape, scale)) in inputs.iter().enumerate() {
            ts.push(random(gpu, shape, seed + i as u64, *scale)?);
        }
        Ok(ts.try_into().unwrap_or_else(|_| unreachable!()))
    };
    let case = |op, work, prepare: Prepare| Case {
        op,
        shape: format!("{rows}x{cols}"),
        work: Work::Bytes(work * bytes),
        prepare,
    };
    let d = draw.clone();
    vec![
        case(
            ops[0],
            traffic[0],
            Box::new(move |gpu, seed| Ok(Box::new(fwd(d(gpu, seed)?)?) as Run)),
        ),
        case(
            ops[1],
            traffic[1],
            Box::new(move |gpu, seed| Ok(Box::new(bwd(draw(gpu, seed)?)?) as Run)),
        ),
    ]
}

/// rmsnorm over N×C: forward reads x and writes y; the backward reads x and
/// dy twice (dx, then dw) and writes dx.
fn rmsnorm_cases(n: usize, c: usize) -> Vec<Case> {
    row_op_cases(
        ["rmsnorm_fwd", "rmsnorm_bwd"],
        (n, c),
        [2.0, 5.0],
        [(vec![n, c], 2.0), (vec![c], 1.0), (vec![n, c], 1.0)],
        |[x, w, _]| Ok(move || rmsnorm_forward(&x, &w, 1e-6).map(drop)),
        |[x, w, dy]| {
            let rstd = rmsnorm_forward(&x, &w, 1e-6)?.rstd;
            Ok(move || rmsnorm_backward(&dy, &x, &w, &rstd, true, true).map(drop))
        },
    )
}

/// swiglu over N×I: forward reads g, u and writes h; backward reads g, u, dh
/// and writes dg, du.
fn swiglu_cases(n: usize, i: usize) -> Vec<Case> {
    row_op_cases(
        ["swiglu_fwd", "swiglu_bwd"],
        (n, i),
        [3.0, 5.0],
        [(vec![n, i], 4.0), (vec![n, i], 1.0), (vec![n, i], 1.0)],
        |[g, u, _]| Ok(move || swiglu_forward(&g, &u).map(drop)),
        |[g, u, dh]| Ok(move || swiglu_backward(&dh, &g, &u).map(drop)),
    )
}

fn layernorm_cases(n: usize, c: usize) -> Vec<Case> {
    let inputs = [
        (vec![n, c], 2.0),
        (vec![c], 1.0),
        (vec![c], 1.0),
        (vec![n, c], 1.0),
    ];
    row_op_cases(
        ["layernorm_fwd", "layernorm_bwd"],
        (n, c),
        [2.0, 3.0],
        inputs,
        |[x, w, b, _]| Ok(move || layernorm_forward(&x, &w, &b, 1e-5).map(drop)),
        |[x, w, b, dy]| {
            let out = layernorm_forward(&x, &w, &b, 1e-5)?;
            Ok(move || layernorm_backward(&dy, &x, &w, &out.mean, &out.rstd).map(drop))
        },
    )
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
    out.extend(matmul_variant_cases(1024, 1024, 1024, false));
    out.extend(matmul_variant_cases(1024, 1024, 1024, true));
    out.extend(matmul_variant_cases(96, 96, 50257, true));
    if !quick {
        // GPT-2 small / Pythia-160m projections over 1024 tokens.
        out.extend([
            matmul_case(1024, 768, 2304),
            matmul_case(1024, 768, 3072),
            matmul_case(1024, 3072, 768),
        ]);
        // Decoding one token (GEMV; 8 sequences; the LM head) and a
        // 256-token training pass.
        out.extend(matmul_variant_cases(1, 768, 3072, false));
        out.extend(matmul_variant_cases(8, 768, 3072, false));
        out.extend(matmul_variant_cases(1, 768, 50257, true));
        out.extend(matmul_variant_cases(32, 768, 3072, false));
        out.extend(matmul_variant_cases(64, 768, 3072, false));
        // The default demo's decoding step: 48 replies, hidden 128, MLP
        // 512, vocabulary 2,048.
        out.extend(matmul_variant_cases(48, 128, 384, true));
        out.extend(matmul_variant_cases(48, 512, 128, true));
        out.extend(matmul_variant_cases(48, 128, 2048, true));
        out.extend(matmul_variant_cases(256, 768, 3072, false));
        out.extend(matmul_variant_cases(256, 3072, 768, true));
    }
    out.extend(attention_cases([1, 12, 256, 64], 12));
    out.extend(attention_cases([1, 12, 256, 64], 4));
    // Llama-style head dim 128: the subgroup kernels' per-row arrays are
    // twice as long, where llvmpipe once left the chunk loop rolled (5-8x
    // slower) without any 64-wide row showing it.
    out.extend(attention_cases([1, 6, 256, 128], 6));
    if !quick {
        out.extend(attention_cases([1, 12, 1024, 64], 12));
        out.extend(attention_cases([1, 12, 1024, 64], 4));
    }
    out.extend(layernorm_cases(1024, 768));
    out.extend(rmsnorm_cases(1024, 768));
    out.extend(swiglu_cases(1024, 2048));
    out.push(cross_entropy_case(if quick { 64 } else { 256 }, 50257));
    out.extend(super::lora_cases::cases(quick));
    out.extend(super::quant_cases::cases(quick));
    out
}
