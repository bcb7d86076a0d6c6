//! Benchmarks of the quantized-weight matmuls (`ops::qmatmul`, NF4 and
//! int8) next to the f32 matmul at the same shapes, all with
//! the weight in the nn.Linear layout W [N, K] (f32: `trans_b`). Shapes read
//! M×K×N. GEMV cases (M = 1, generation) report bytes moved (the weight as
//! stored plus x and y); GEMM cases report FLOPs. The weight is made once per
//! case (quantized on the GPU) and reused; x is fresh for every run. Ops
//! ending in `_fused` force the tiled dequantizing kernels (`QgemmPath::Fused`).

use anyhow::Result;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::case::{Case, Run, Work};
use crate::device::Gpu;
use crate::ops::matmul::matmul_forward;
use crate::ops::qmatmul::{qmatmul_forward_into, quantize, QgemmPath};
use crate::quant::{QuantFormat, QuantizedWeight};
use crate::rng::Rng;
use crate::tensor::{DType, Tensor};

fn random(gpu: &Arc<Gpu>, shape: &[usize], seed: u64, scale: f32) -> Result<Tensor> {
    let n = shape.iter().product();
    Tensor::from_f32(gpu, shape, &Rng::new(seed).vec(n, scale))
}

/// The weight of one case, made on first use: f32 N(0, 0.02²) [n, k],
/// or its quantization.
type Weight = Rc<RefCell<Option<(Option<Tensor>, Option<QuantizedWeight>)>>>;

fn weight(
    cell: &Weight,
    gpu: &Arc<Gpu>,
    n: usize,
    k: usize,
    format: Option<QuantFormat>,
) -> Result<(Option<Tensor>, Option<QuantizedWeight>)> {
    if let Some(w) = cell.borrow().as_ref() {
        return Ok(w.clone());
    }
    let f = Tensor::from_f32(gpu, &[n, k], &Rng::new(7).normals(n * k, 0.02))?;
    let w = match format {
        None => (Some(f), None),
        Some(fmt) => (None, Some(quantize(&f, fmt)?)),
    };
    *cell.borrow_mut() = Some(w.clone());
    Ok(w)
}

fn case(op: &'static str, m: usize, k: usize, n: usize, format: Option<QuantFormat>) -> Case {
    // `*_fused` ops force the tiled dequantizing kernels; the others take the
    // adapter's choice (staged on CPU adapters, see `ops::qmatmul`).
    let path = if op.ends_with("_fused") {
        QgemmPath::Fused
    } else {
        QgemmPath::Auto
    };
    let cell: Weight = Rc::new(RefCell::new(None));
    let bytes_per_weight = match format {
        None => 4.0,
        Some(QuantFormat::Int8) => 1.0 + 4.0 / k as f64,
        // 4 bits + an 8-bit absmax code per 64 + an f32 per 256·64.
        Some(QuantFormat::Nf4) => 0.5 + 1.0 / 64.0 + 4.0 / (64.0 * 256.0),
    };
    let work = if m == 1 {
        Work::Bytes(bytes_per_weight * (n * k) as f64 + 4.0 * (k + n) as f64)
    } else {
        Work::Flops(2.0 * (m * k * n) as f64)
    };
    Case {
        op,
        shape: format!("{m}x{k}x{n}"),
        work,
        prepare: Box::new(move |gpu, seed| {
            let (f, q) = weight(&cell, gpu, n, k, format)?;
            let x = random(gpu, &[m, k], seed, 1.0)?;
            Ok(match (f, q) {
                (Some(w), _) => {
                    Box::new(move || matmul_forward(&x, &w, None, false, true).map(drop)) as Run
                }
                (_, Some(w)) => Box::new(move || {
                    let y = Tensor::empty(x.gpu(), &[m, n], DType::F32)?;
                    qmatmul_forward_into(path, &y, &x, &w, None, None)
                }) as Run,
                _ => unreachable!(),
            })
        }),
    }
}

/// GEMV at the GPT-2 LM head (768 → 50,257) and MLP (768 → 3072) sizes; the
/// GEMM of the MLP's first projection at T = 256 (training) and at 32 rows
/// (a batch of 32 sequences generating one token each), by the adapter's
/// kernel and by the fused one. `quick` drops the f32 LM-head GEMV (154 MB
/// of weight) and the fused and 32-row cases.
pub fn cases(quick: bool) -> Vec<Case> {
    let mut out = Vec::new();
    for n in [50257, 3072] {
        out.push(case("qmatmul_nf4_gemv", 1, 768, n, Some(QuantFormat::Nf4)));
        if !quick || n != 50257 {
            out.push(case("matmul_gemv", 1, 768, n, None));
        }
    }
    let rows: &[usize] = if quick { &[256] } else { &[256, 32] };
    for &m in rows {
        out.push(case("qmatmul_nf4", m, 768, 3072, Some(QuantFormat::Nf4)));
        out.push(case("qmatmul_int8", m, 768, 3072, Some(QuantFormat::Int8)));
        if !quick {
            out.push(case(
                "qmatmul_nf4_fused",
                m,
                768,
                3072,
                Some(QuantFormat::Nf4),
            ));
            out.push(case(
                "qmatmul_int8_fused",
                m,
                768,
                3072,
                Some(QuantFormat::Int8),
            ));
        }
        out.push(case("matmul", m, 768, 3072, None));
    }
    out
}
