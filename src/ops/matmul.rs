//! matmul: batched `C = op(A)·op(B) (+ bias)`, f32, row-major contiguous.
//!
//! Shapes: A is `[batch.., M, K]` (`[batch.., K, M]` when `trans_a`), B is
//! `[batch.., K, N]` (`[batch.., N, K]` when `trans_b`) or has no batch dims (a
//! weight shared by every batch), bias is `[N]`; C is `[batch.., M, N]`.
//!
//! Forward saves A and B (shared handles, no copies) for the backward:
//! `dA = dC·op(B)ᵀ`, `dB = op(A)ᵀ·dC` (summed over the batch for a shared B),
//! `dbias = Σ_rows dC`. Both products run through the same forward kernel with
//! other transpose flags and operand roles (one mechanism); the bias gradient
//! is a column-sum entry (`matmul_backward_bias`).
//!
//! Four kernels, all always correct: `matmul_cpu.wgsl` (register blocking, no
//! shared memory), `matmul_cpu_subgroup.wgsl` (the same blocks, A's panels
//! loaded once per workgroup and broadcast; chosen on CPU adapters that have
//! subgroups), `matmul.wgsl` (shared-memory tiles; real GPUs) and
//! `matmul_rows.wgsl` (a few rows, the reduction split across lanes; real
//! GPUs when decoding). [`MatmulVariant`] forces one.
//!
//! Huge operands (an LM head is 154 MB > lavapipe's 128 MiB binding) are split
//! (`matmul/gemm.rs`) into sub-problems whose bound ranges each fit one
//! binding: along the batch, or along the dimension that is the oversized
//! operand's storage row (M for A or C, N for a transposed B, K for B or a
//! transposed A; K chunks accumulate into C), then its storage column.
//!
//! LoRA: [`matmul_lowrank_into`] adds `scale·U·Vᵀ` to every output element in
//! the same pass (the epilogue of `shaders/common/lora_epilogue.wgsl`, enabled
//! by an override constant; see [`crate::ops::lora`]).

use anyhow::{bail, ensure, Result};

mod backward;
mod gemm;
pub use backward::{bias_grad, matmul_backward, matmul_backward_with};
use gemm::gemm;
pub(crate) use gemm::gemm_staged;

use crate::ops::lora::epilogue::{LoraEpilogueParams, LowRank};
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

/// Mirrors `MatmulParams` in both shaders. Offsets are residual element
/// offsets inside the bound ranges; `*_bs` are batch strides (0 = shared).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub batch: u32,
    pub a_off: u32,
    pub lda: u32,
    pub a_bs: u32,
    pub accumulate: u32,
    pub b_off: u32,
    pub ldb: u32,
    pub b_bs: u32,
    pub has_bias: u32,
    pub c_off: u32,
    pub ldc: u32,
    pub c_bs: u32,
    pub bias_off: u32,
    /// The LoRA epilogue's part (zero when the pipeline has none).
    pub lora: LoraEpilogueParams,
}

/// Which kernel runs the products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MatmulVariant {
    /// `CpuSubgroup` on CPU adapters (`gpu.is_cpu()`; `Cpu` where they lack
    /// subgroups); elsewhere `Rows` for products of at most
    /// [`ROWS_MAX`] rows (decoding), `Tiled` for the rest.
    #[default]
    Auto,
    /// Register-blocked, no shared memory (`matmul_cpu.wgsl`).
    Cpu,
    /// `Cpu` with A's panels loaded once per workgroup and shared by
    /// subgroup broadcasts (`matmul_cpu_subgroup.wgsl`; `Cpu` without subgroups).
    CpuSubgroup,
    /// Shared-memory 64×64 tiles (`matmul.wgsl`).
    Tiled,
    /// 4 rows × 32 columns per workgroup, the reduction split over its
    /// lanes (`matmul_rows.wgsl`): GEMV-like products on real GPUs.
    Rows,
}

/// The most rows `Auto` gives the `Rows` kernel on a non-CPU adapter. On an
/// H200, 768 → 3072 took 0.39 ms at 1 row and 0.36 ms at 8 with `Rows`, 0.90
/// with `Tiled` (`engine bench`'s variant rows, one run).
pub const ROWS_MAX: usize = 8;

impl MatmulVariant {
    /// The variant that runs an `m`-row product: `Auto` resolved where the
    /// choice depends on the shape (CPU adapters resolve in `kernel`).
    pub(crate) fn for_rows(self, gpu: &crate::Gpu, m: usize) -> MatmulVariant {
        match self {
            MatmulVariant::Auto if !gpu.is_cpu() && m <= ROWS_MAX => MatmulVariant::Rows,
            v => v,
        }
    }

    /// (shader stem, output rows per workgroup, output columns per workgroup).
    pub(crate) fn kernel(self, gpu: &crate::Gpu) -> (&'static str, usize, usize) {
        match self {
            MatmulVariant::Auto if gpu.is_cpu() => MatmulVariant::CpuSubgroup.kernel(gpu),
            MatmulVariant::Cpu => ("matmul_cpu", 16, 64),
            // Without subgroups (GL), or with subgroups narrower than the 8
            // lanes that share one A panel (WARP can run 4 wide), the same
            // blocks with A loaded per lane.
            MatmulVariant::CpuSubgroup if gpu.subgroup_min_size() < 8 => {
                MatmulVariant::Cpu.kernel(gpu)
            }
            MatmulVariant::CpuSubgroup => ("matmul_cpu_subgroup", 32, 64),
            MatmulVariant::Rows => ("matmul_rows", 4, 32),
            _ => ("matmul", 64, 64),
        }
    }
}

/// Gradients returned by [`matmul_backward`] (each only when asked for).
#[derive(Debug, Default)]
pub struct MatmulGrads {
    pub da: Option<Tensor>,
    pub db: Option<Tensor>,
    pub dbias: Option<Tensor>,
}

/// Problem sizes of a public call, checked against the tensors.
struct Dims {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    b_shared: bool,
    out: Vec<usize>,
}

fn dims(a: &Tensor, b: &Tensor, bias: Option<&Tensor>, ta: bool, tb: bool) -> Result<Dims> {
    let (sa, sb) = (a.shape(), b.shape());
    ensure!(
        a.dtype() == DType::F32 && b.dtype() == DType::F32,
        "matmul needs f32 tensors, got {a:?} and {b:?}"
    );
    ensure!(
        sa.len() >= 2 && sb.len() >= 2,
        "matmul of {a:?} and {b:?}: need matrices"
    );
    let (ra, rb) = (sa.len() - 2, sb.len() - 2);
    let b_shared = rb == 0 && ra > 0;
    if !b_shared && sa[..ra] != sb[..rb] {
        bail!("matmul of {a:?} and {b:?}: batch dims differ (B may also have none)");
    }
    let (m, ka) = if ta {
        (sa[ra + 1], sa[ra])
    } else {
        (sa[ra], sa[ra + 1])
    };
    let (kb, n) = if tb {
        (sb[rb + 1], sb[rb])
    } else {
        (sb[rb], sb[rb + 1])
    };
    ensure!(
        ka == kb,
        "matmul of {a:?} (trans {ta}) and {b:?} (trans {tb}): inner dims {ka} vs {kb}"
    );
    if let Some(t) = bias {
        ensure!(
            t.shape() == [n] && t.dtype() == DType::F32,
            "matmul bias {t:?} for N = {n}"
        );
    }
    let mut out = sa[..ra].to_vec();
    out.extend([m, n]);
    Ok(Dims {
        batch: sa[..ra].iter().product(),
        m,
        n,
        k: ka,
        b_shared,
        out,
    })
}

/// `C = op(A)·op(B) (+ bias)` with the adapter's default kernel.
pub fn matmul_forward(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    trans_a: bool,
    trans_b: bool,
) -> Result<Tensor> {
    matmul_forward_with(MatmulVariant::Auto, a, b, bias, trans_a, trans_b)
}

/// [`matmul_forward`] with a chosen kernel (tests and benchmarks).
pub fn matmul_forward_with(
    variant: MatmulVariant,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    trans_a: bool,
    trans_b: bool,
) -> Result<Tensor> {
    let d = dims(a, b, bias, trans_a, trans_b)?;
    let c = Tensor::empty(a.gpu(), &d.out, DType::F32)?;
    matmul_into(variant, &c, a, b, bias, trans_a, trans_b, false)?;
    Ok(c)
}

/// Writes `C = op(A)·op(B) (+ bias)` into an existing `c`, or adds it to
/// `c`'s contents when `accumulate` (beta = 1).
#[allow(clippy::too_many_arguments)]
pub fn matmul_into(
    variant: MatmulVariant,
    c: &Tensor,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
) -> Result<()> {
    into(
        variant,
        c,
        (a, b, bias),
        (trans_a, trans_b),
        accumulate,
        None,
    )
}

/// [`matmul_into`] for 2-D operands (no batch) plus a low-rank term: `C (+)= op(A)·op(B)
/// (+ bias) + lr.scale·U·Vᵀ`, added in registers before the one store of each
/// output element (LoRA's fused forward and dx pass).
#[allow(clippy::too_many_arguments)]
pub fn matmul_lowrank_into(
    variant: MatmulVariant,
    c: &Tensor,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
    lr: &LowRank,
) -> Result<()> {
    let lr = Some(*lr);
    into(variant, c, (a, b, bias), (trans_a, trans_b), accumulate, lr)
}

fn into(
    variant: MatmulVariant,
    c: &Tensor,
    (a, b, bias): (&Tensor, &Tensor, Option<&Tensor>),
    (ta, tb): (bool, bool),
    accumulate: bool,
    lr: Option<LowRank>,
) -> Result<()> {
    let d = dims(a, b, bias, ta, tb)?;
    ensure!(
        c.shape() == d.out && c.dtype() == DType::F32,
        "matmul output {c:?}, expected {:?} f32",
        d.out
    );
    let b_bs = if d.b_shared { 0 } else { d.k * d.n };
    let sizes = (d.m, d.n, d.k, d.batch);
    let ops = (c, a, b);
    gemm(
        variant,
        ops,
        bias,
        (ta, tb),
        sizes,
        (d.m * d.k, b_bs),
        accumulate,
        false,
        lr,
    )
}

/// Records `C = op(A)·op(B) (+ bias)` on the tape (shapes as in the module
/// docs). The backward keeps handles to `a` and `b`.
pub fn matmul(
    tape: &Tape,
    a: &Var,
    b: &Var,
    bias: Option<&Var>,
    trans_a: bool,
    trans_b: bool,
) -> Result<Var> {
    matmul_onto(tape, a, b, bias, trans_a, trans_b, None)
}

/// [`matmul`], plus `onto` when given, as one tape node: a residual
/// connection whose add is the product's store (`accumulate` onto a copy of
/// `onto`) rather than a separate pass. The same numbers as
/// `add(onto, matmul(a, b, bias))`: the product is rounded as alone, then
/// added to `onto` once (IEEE addition commutes); the backward gives `onto`
/// the output gradient itself, as the add's does.
pub fn matmul_onto(
    tape: &Tape,
    a: &Var,
    b: &Var,
    bias: Option<&Var>,
    trans_a: bool,
    trans_b: bool,
    onto: Option<&Var>,
) -> Result<Var> {
    let (at, bt) = (a.tensor().clone(), b.tensor().clone());
    let bias_t = bias.map(|v| v.tensor());
    let out = match onto {
        None => matmul_forward(&at, &bt, bias_t, trans_a, trans_b)?,
        Some(o) => {
            let d = dims(&at, &bt, bias_t, trans_a, trans_b)?;
            ensure!(
                o.shape() == d.out,
                "matmul_onto: {:?} cannot take a product of shape {:?}",
                o.tensor(),
                d.out
            );
            let out = o.tensor().deep_copy()?;
            let (ta, tb) = (trans_a, trans_b);
            matmul_into(MatmulVariant::Auto, &out, &at, &bt, bias_t, ta, tb, true)?;
            out
        }
    };
    let mut inputs = vec![a, b];
    inputs.extend(bias);
    inputs.extend(onto);
    let (has_bias, has_onto) = (bias.is_some(), onto.is_some());
    let name = if has_onto { "matmul_onto" } else { "matmul" };
    Ok(tape.record(name, &inputs, out, move |dc, needs| {
        let want = [needs[0], needs[1], has_bias && needs[2]];
        let mut grads = if want.contains(&true) {
            let g = matmul_backward(dc, &at, &bt, trans_a, trans_b, want)?;
            vec![g.da, g.db, g.dbias]
        } else {
            vec![None, None, None]
        };
        grads.truncate(2 + has_bias as usize);
        if has_onto {
            grads.push(Some(dc.clone()));
        }
        Ok(grads)
    }))
}

/// A linear layer in GPT-2's Conv1D layout: `y[.., N] = x[.., K]·w[K, N] + b`.
/// `x` may have any number of leading dims (or none: `[K]` gives `[N]`); `w`
/// is shared by all rows. Weights stored as `[N, K]` (PyTorch `nn.Linear`, as
/// in GPT-NeoX) go through `matmul(tape, x, w, bias, false, true)` instead: a
/// square weight's layout cannot be told from its shape, so `linear` never guesses.
pub fn linear(tape: &Tape, x: &Var, w: &Var, bias: Option<&Var>) -> Result<Var> {
    if x.shape().len() >= 2 {
        return matmul(tape, x, w, bias, false, false);
    }
    ensure!(x.shape().len() == 1, "linear input {:?}", x.tensor());
    let (xt, wt) = (x.tensor().clone(), w.tensor().clone());
    let x2 = xt.reshape(&[1, xt.numel()])?;
    let out = matmul_forward(&x2, &wt, bias.map(|v| v.tensor()), false, false)?;
    let n = out.numel();
    let out = out.reshape(&[n])?;
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    Ok(tape.record("linear", &inputs, out, move |dy, needs| {
        let want = [needs[0], needs[1], needs.get(2) == Some(&true)];
        let g = matmul_backward(&dy.reshape(&[1, n])?, &x2, &wt, false, false, want)?;
        let mut grads = vec![g.da.map(|t| t.reshape(xt.shape())).transpose()?, g.db];
        if needs.len() > 2 {
            grads.push(g.dbias);
        }
        Ok(grads)
    }))
}
