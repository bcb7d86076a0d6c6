//! LoRA benchmarks at GPT-2 small's `c_attn` over 256 tokens: x [256, 768],
//! W [768, 2304] (Conv1D layout) + bias, rank 16 (A [16, 768], B [2304, 16]).
//! `lora_base_matmul` is the plain base product of the same shape (the bar:
//! `lora_fused_fwd` within 1.15× of it, and faster than `lora_unfused_fwd`).
//! Shapes read M×K×N/r; work counts the base and the low-rank FLOPs.
//!
//! The `qlora_nf4_*` cases are the same on a frozen NF4 base (W [N, K],
//! quantized once per case): `qlora_nf4_base` is the plain dequantizing
//! product with bias, the bar for `qlora_nf4_fused_fwd`.

use anyhow::Result;
use std::sync::Arc;

use super::case::{Case, Run, Work};
use crate::device::Gpu;
use crate::ops::lora::{lora_backward, lora_forward, LoraBase, LoraSpec};
use crate::ops::matmul::matmul_forward;
use crate::ops::qmatmul::{qmatmul_forward, quantize};
use crate::quant::QuantFormat;
use crate::rng::Rng;
use crate::tensor::Tensor;
use std::cell::RefCell;
use std::rc::Rc;

const M: usize = 256;
const K: usize = 768;
const N: usize = 2304;
const R: usize = 16;

fn random(gpu: &Arc<Gpu>, shape: &[usize], seed: u64, scale: f32) -> Result<Tensor> {
    let n = shape.iter().product();
    Tensor::from_f32(gpu, shape, &Rng::new(seed).vec(n, scale))
}

/// x, W, bias, A, B, dy.
fn inputs(gpu: &Arc<Gpu>, seed: u64) -> Result<[Tensor; 6]> {
    Ok([
        random(gpu, &[M, K], seed, 1.0)?,
        random(gpu, &[K, N], seed + 1, 0.05)?,
        random(gpu, &[N], seed + 2, 0.05)?,
        random(gpu, &[R, K], seed + 3, 0.05)?,
        random(gpu, &[N, R], seed + 4, 0.05)?,
        random(gpu, &[M, N], seed + 5, 1.0)?,
    ])
}

fn flops(f: f64) -> Work {
    Work::Flops(f)
}

/// The NF4 base of the `qlora_nf4_*` cases, quantized on first use.
fn nf4_base(cell: &Rc<RefCell<Option<LoraBase>>>, gpu: &Arc<Gpu>) -> Result<LoraBase> {
    if let Some(b) = cell.borrow().as_ref() {
        return Ok(b.clone());
    }
    let w = random(gpu, &[N, K], 99, 0.05)?;
    let b = LoraBase::quantized(&quantize(&w, QuantFormat::Nf4)?);
    *cell.borrow_mut() = Some(b.clone());
    Ok(b)
}

/// LoRA on a frozen NF4 base: plain base, fused and unfused forward, fused backward.
fn qlora_cases(spec: LoraSpec) -> Vec<Case> {
    let (m, k, n, r) = (M as f64, K as f64, N as f64, R as f64);
    let base = 2.0 * m * k * n;
    let low = 2.0 * m * k * r + 2.0 * m * r * n;
    let cell = Rc::new(RefCell::new(None));
    let case = |op: &'static str, work: f64| {
        let cell = cell.clone();
        Case {
            op,
            shape: format!("{M}x{K}x{N}/r{R}"),
            work: flops(work),
            prepare: Box::new(move |gpu, seed| {
                let wb = nf4_base(&cell, gpu)?;
                let [x, _, bias, a, b, dy] = inputs(gpu, seed)?;
                let bias = Some(bias);
                Ok(match op {
                    "qlora_nf4_base" => Box::new(move || {
                        let LoraBase::Quantized { w, .. } = &wb else {
                            unreachable!()
                        };
                        qmatmul_forward(&x, w, bias.as_ref()).map(drop)
                    }) as Run,
                    "qlora_nf4_fused_fwd" => Box::new(move || {
                        lora_forward(&spec, &wb, &x, bias.as_ref(), &a, &b).map(drop)
                    }) as Run,
                    "qlora_nf4_unfused_fwd" => Box::new(move || {
                        let unfused = LoraSpec {
                            unfused: true,
                            ..spec
                        };
                        lora_forward(&unfused, &wb, &x, bias.as_ref(), &a, &b).map(drop)
                    }) as Run,
                    _ => {
                        let (_, xa) = lora_forward(&spec, &wb, &x, bias.as_ref(), &a, &b)?;
                        let needs = [true, false, false, true, true];
                        Box::new(move || {
                            lora_backward(&spec, &wb, &dy, &x, &a, &b, &xa, needs).map(drop)
                        }) as Run
                    }
                })
            }),
        }
    };
    vec![
        case("qlora_nf4_base", base),
        case("qlora_nf4_fused_fwd", base + low),
        case("qlora_nf4_unfused_fwd", base + low),
        case("qlora_nf4_fused_bwd", base + 2.0 * low),
    ]
}

pub fn cases(_quick: bool) -> Vec<Case> {
    let (m, k, n, r) = (M as f64, K as f64, N as f64, R as f64);
    let base = 2.0 * m * k * n;
    let low = 2.0 * m * k * r + 2.0 * m * r * n;
    let shape = format!("{M}x{K}x{N}/r{R}");
    let spec = LoraSpec::new(2.0, false);
    let fwd = |op: &'static str, fused: bool| Case {
        op,
        shape: shape.clone(),
        work: flops(base + low),
        prepare: Box::new(move |gpu, seed| {
            let [x, w, bias, a, b, _] = inputs(gpu, seed)?;
            let w = LoraBase::dense(&w, spec.trans_b);
            Ok(Box::new(move || {
                let spec = LoraSpec {
                    unfused: !fused,
                    ..spec
                };
                lora_forward(&spec, &w, &x, Some(&bias), &a, &b).map(drop)
            }) as Run)
        }),
    };
    let mut out = vec![
        Case {
            op: "lora_base_matmul",
            shape: format!("{M}x{K}x{N}"),
            work: flops(base),
            prepare: Box::new(move |gpu, seed| {
                let [x, w, bias, ..] = inputs(gpu, seed)?;
                Ok(
                    Box::new(move || matmul_forward(&x, &w, Some(&bias), false, false).map(drop))
                        as Run,
                )
            }),
        },
        fwd("lora_fused_fwd", true),
        fwd("lora_unfused_fwd", false),
        Case {
            op: "lora_fused_bwd",
            shape: shape.clone(),
            // dy·B, dx (base + epilogue), dA, dB; the base weight is frozen.
            work: flops(base + 2.0 * low),
            prepare: Box::new(move |gpu, seed| {
                let [x, w, bias, a, b, dy] = inputs(gpu, seed)?;
                let w = LoraBase::dense(&w, spec.trans_b);
                let (_, xa) = lora_forward(&spec, &w, &x, Some(&bias), &a, &b)?;
                let needs = [true, false, false, true, true];
                Ok(
                    Box::new(move || {
                        lora_backward(&spec, &w, &dy, &x, &a, &b, &xa, needs).map(drop)
                    }) as Run,
                )
            }),
        },
    ];
    out.extend(qlora_cases(spec));
    out
}
