//! lora: a linear layer with a LoRA adapter, fused.
//!
//! ```text
//! y = x·op(W) (+ bias) + s·(dropout(x)·Aᵀ)·Bᵀ      s = alpha/r (alpha/√r with rsLoRA)
//! ```
//! Shapes: x `[.., K]` (any leading dims, flattened to M rows), W `[K, N]`
//! (GPT-2 Conv1D, `trans_b = false`) or `[N, K]` (`nn.Linear`, `trans_b =
//! true`), bias `[N]`, A `[r, K]` and B `[N, r]` (PEFT's `lora_A` / `lora_B`
//! layouts), y `[.., N]`. f32 activations. Dropout (PEFT's `lora_dropout`)
//! applies to the input of A only.
//!
//! **Bases.** W is a [`LoraBase`]: f32 ([`LoraBase::dense`]) or a frozen
//! int8 / NF4 weight `[N, K]` ([`LoraBase::quantized`], and [`qlora_linear`]:
//! QLoRA). Every function takes the base, so one path serves both.
//!
//! **Kernels.** This op has no shader of its own: the base product runs on
//! the matmul kernels (`shaders/matmul_cpu.wgsl`, `shaders/matmul.wgsl`) or
//! the dequantizing ones (`shaders/qmatmul_{int8,nf4}.wgsl`, GEMM and GEMV)
//! and the low-rank terms are added by their shared LoRA epilogue
//! (`shaders/common/lora_epilogue.wgsl`, host side in [`epilogue`]), which is
//! compiled in by the `LORA` override constant only.
//!
//! Forward (two dispatches): `xa = dropout(x)·Aᵀ` `[M, r]` (a small matmul),
//! then one pass over y: `x·op(W) + bias`, with `s·xa·Bᵀ` added in registers
//! before the store. Saves handles to x, W, A, B and the new `xa` (the dropout
//! mask is regenerated from its seed, never stored).
//!
//! Backward, given dy:
//! - `dxa = s·dy·B` `[M, r]`,
//! - `dx = dy·op(W)ᵀ + dropout'(dxa·A)`; without dropout the second term is
//!   the epilogue of the same pass over dx (U = dxa, V = A read as `[r, K]`),
//! - `dA = dxaᵀ·dropout(x)`, `dB = s·dyᵀ·xa`, `dbias = Σ_rows dy`,
//! - `dW = x`-side product only if W is asked for (it is normally a frozen
//!   constant: a LoRA model's base weights get no gradient; a quantized base
//!   cannot have one).
//!
//! [`LoraSpec::unfused`] is the reference the benchmark compares with: the
//! base product, `x·Aᵀ`, `·Bᵀ` and an add, each its own pass.

use anyhow::{ensure, Result};

mod base;
pub mod epilogue;
mod tape;
pub use base::LoraBase;
pub use epilogue::{LoraEpilogueParams, LowRank};
pub use tape::{lora_linear, lora_linear_on, lora_linear_onto, qlora_linear};

use crate::ops::dropout::{dropout_backward, dropout_forward};
use crate::ops::elementwise::{self as ew, unary_forward, Broadcast, UnaryOp};
use crate::ops::matmul::{bias_grad, matmul_forward_with, MatmulVariant};
use crate::tensor::axpy::axpy;
use crate::tensor::{DType, Tensor};

/// LoRA dropout on the input of A: probability `p`, and the `(seed, offset)`
/// that make the mask (see [`crate::ops::dropout`]; one pair per site and step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoraDropout {
    pub p: f32,
    pub seed: u64,
    pub offset: u64,
}

/// Everything about a LoRA linear that is not a tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoraSpec {
    /// `alpha / r` (or `alpha / √r` with rsLoRA).
    pub scale: f32,
    /// W is stored `[N, K]` (`nn.Linear`) rather than `[K, N]` (Conv1D): the
    /// layout [`lora_linear`] gives its f32 base (a [`LoraBase`] carries its own).
    pub trans_b: bool,
    pub dropout: Option<LoraDropout>,
    /// Kernel of the f32 products (the low-rank ones, and a dense base's).
    pub variant: MatmulVariant,
    /// The forward's low-rank term in passes of its own (`x·Aᵀ`, `·Bᵀ`, an
    /// add) instead of the fused epilogue: the benchmark's reference.
    pub unfused: bool,
}

impl LoraSpec {
    pub fn new(scale: f32, trans_b: bool) -> LoraSpec {
        LoraSpec {
            scale,
            trans_b,
            dropout: None,
            variant: MatmulVariant::Auto,
            unfused: false,
        }
    }

    fn active_dropout(&self) -> Option<LoraDropout> {
        self.dropout.filter(|d| d.p > 0.0)
    }
}

/// Gradients from [`lora_backward`] (each only when asked for).
#[derive(Debug, Default)]
pub struct LoraGrads {
    pub dx: Option<Tensor>,
    pub dw: Option<Tensor>,
    pub dbias: Option<Tensor>,
    pub da: Option<Tensor>,
    pub db: Option<Tensor>,
}

/// (M rows, K, N, r) after checking every shape.
fn dims(
    x: &Tensor,
    base: &LoraBase,
    bias: Option<&Tensor>,
    a: &Tensor,
    b: &Tensor,
) -> Result<(usize, usize, usize, usize)> {
    for t in [x, a, b].into_iter().chain(bias) {
        ensure!(t.dtype() == DType::F32, "lora needs f32 tensors, got {t:?}");
    }
    ensure!(
        !x.shape().is_empty() && a.shape().len() == 2 && b.shape().len() == 2,
        "lora: x {x:?}, A {a:?} and B {b:?}: need an input and matrices"
    );
    let (wk, n) = base.in_out()?;
    let k = x.cols();
    let r = a.shape()[0];
    ensure!(
        wk == k && a.shape()[1] == k && b.shape() == [n, r] && r > 0,
        "lora: x {x:?}, a base of {wk} inputs and {n} outputs, A {a:?} [r, in] and B {b:?} [out, r] disagree"
    );
    if let Some(t) = bias {
        ensure!(t.shape() == [n], "lora: bias {t:?} for {n} outputs");
    }
    Ok((x.rows(), k, n, r))
}

fn out_shape(x: &Tensor, n: usize) -> Vec<usize> {
    let mut s = x.shape().to_vec();
    match s.last_mut() {
        Some(last) => *last = n,
        None => s.push(n),
    }
    s
}

/// The input of A: x itself, or dropout(x) with the spec's mask.
fn a_input(spec: &LoraSpec, x2: &Tensor) -> Result<Tensor> {
    match spec.active_dropout() {
        Some(d) => dropout_forward(x2, d.p, d.seed, d.offset),
        None => Ok(x2.clone()),
    }
}

fn scaled(t: Tensor, s: f32) -> Result<Tensor> {
    if s == 1.0 {
        return Ok(t);
    }
    unary_forward(
        UnaryOp::Scale {
            alpha: s,
            beta: 0.0,
        },
        &t,
    )
}

/// Forward: `(y [.., N], xa [M, r])`, xa being what the backward needs:
/// `xa = dropout(x)·Aᵀ`, then one pass over y with `s·xa·Bᵀ` in its epilogue
/// (or, with `spec.unfused`, the base product, `·Bᵀ` and an add).
pub fn lora_forward(
    spec: &LoraSpec,
    base: &LoraBase,
    x: &Tensor,
    bias: Option<&Tensor>,
    a: &Tensor,
    b: &Tensor,
) -> Result<(Tensor, Tensor)> {
    lora_forward_onto(spec, base, x, bias, a, b, None)
}

/// [`lora_forward`] with `y` = `onto` + the linear's output when `onto` is
/// given (a residual connection): the fused form on an f32 base accumulates
/// onto a copy of `onto` in its one store, after the bias and the low-rank
/// term, so each element is the linear's value added to `onto` once, as a
/// separate add would give; the other forms add after the fact.
pub fn lora_forward_onto(
    spec: &LoraSpec,
    base: &LoraBase,
    x: &Tensor,
    bias: Option<&Tensor>,
    a: &Tensor,
    b: &Tensor,
    onto: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let (m, k, n, _) = dims(x, base, bias, a, b)?;
    if let Some(o) = onto {
        ensure!(
            o.dtype() == DType::F32 && o.numel() == m * n,
            "lora: cannot add a [{m}, {n}] output onto {o:?}"
        );
    }
    let v = spec.variant;
    let x2 = x.reshape(&[m, k])?;
    let xa = matmul_forward_with(v, &a_input(spec, &x2)?, a, None, false, true)?;
    let fused_onto = onto.filter(|_| !spec.unfused && matches!(base, LoraBase::Dense { .. }));
    let y = match fused_onto {
        Some(o) => o.deep_copy()?.reshape(&[m, n])?,
        None => Tensor::empty(x.gpu(), &[m, n], DType::F32)?,
    };
    if spec.unfused {
        base.forward_into(v, &y, &x2, bias, None, false)?;
        let z = matmul_forward_with(v, &xa, b, None, false, true)?;
        axpy(&y, spec.scale, &z)?;
    } else {
        let lr = LowRank::new(&xa, b, false, spec.scale)?;
        base.forward_into(v, &y, &x2, bias, Some(&lr), fused_onto.is_some())?;
    }
    let y = match (onto, fused_onto) {
        (Some(o), None) => ew::binary_forward(ew::BinaryOp::Add, o, &y, Broadcast::same(m * n))?,
        _ => y,
    };
    Ok((y.reshape(&out_shape(x, n))?, xa))
}

/// Gradients for `dy`, given the forward's inputs and its saved `xa`; `needs`
/// = [dx, dW, dbias, dA, dB] (a quantized base refuses dW).
#[allow(clippy::too_many_arguments)]
pub fn lora_backward(
    spec: &LoraSpec,
    base: &LoraBase,
    dy: &Tensor,
    x: &Tensor,
    a: &Tensor,
    b: &Tensor,
    xa: &Tensor,
    needs: [bool; 5],
) -> Result<LoraGrads> {
    let (m, k, n, r) = dims(x, base, None, a, b)?;
    ensure!(
        dy.numel() == m * n && xa.shape() == [m, r],
        "lora backward: dy {dy:?} / xa {xa:?} for {m} rows of {n} outputs, rank {r}"
    );
    let (v, s) = (spec.variant, spec.scale);
    let (x2, dy2) = (x.reshape(&[m, k])?, dy.reshape(&[m, n])?);
    let mut g = LoraGrads::default();
    // dxa = s·dy·B [M, r], shared by dx and dA.
    let dxa = if needs[0] || needs[3] {
        Some(scaled(
            matmul_forward_with(v, &dy2, b, None, false, false)?,
            s,
        )?)
    } else {
        None
    };
    if needs[0] {
        let dxa = dxa.as_ref().unwrap();
        let dx = Tensor::empty(x.gpu(), &[m, k], DType::F32)?;
        match spec.active_dropout() {
            // One pass over dx: dy·op(W)ᵀ with dxa·A in the epilogue.
            None => {
                let lr = LowRank::new(dxa, a, true, 1.0)?;
                base.input_grad_into(v, &dx, &dy2, Some(&lr))?;
            }
            Some(d) => {
                base.input_grad_into(v, &dx, &dy2, None)?;
                let t = matmul_forward_with(v, dxa, a, None, false, false)?;
                axpy(&dx, 1.0, &dropout_backward(&t, d.p, d.seed, d.offset)?)?;
            }
        }
        g.dx = Some(dx.reshape(x.shape())?);
    }
    if needs[1] {
        g.dw = Some(base.weight_grad(v, &dy2, &x2)?);
    }
    if needs[2] {
        g.dbias = Some(bias_grad(&dy2)?);
    }
    if needs[3] {
        let xd = a_input(spec, &x2)?;
        g.da = Some(matmul_forward_with(
            v,
            dxa.as_ref().unwrap(),
            &xd,
            None,
            true,
            false,
        )?);
    }
    if needs[4] {
        g.db = Some(scaled(
            matmul_forward_with(v, &dy2, xa, None, true, false)?,
            s,
        )?);
    }
    Ok(g)
}
