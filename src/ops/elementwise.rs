//! elementwise: binary ops with one broadcast operand, and unary ops, all f32.
//!
//! Binary: `y = a op b` with `a`, `y` of any shape (N elements) and `b` read
//! at `b[(i / div) % modulo]` ([`Broadcast`]); [`Broadcast::infer`] derives
//! `div`/`modulo` from numpy-style shapes. Forward saves `a` and `b` (only for
//! mul, div, maximum, minimum). Backward: `da = dy·∂y/∂a`, `db` = the
//! per-element `dy·∂y/∂b` summed over the broadcast (see
//! [`reduce::sum_broadcast`]).
//!
//! Unary: `y = f(x)`; forward saves `y` (exp, sigmoid, tanh, sqrt) or `x`
//! (log, relu, square, clamp, abs, log-sigmoid, softplus); scale saves nothing.
//! Log-sigmoid and softplus are the stable forms (no overflow for large |x|,
//! log σ(x) → x for x ≪ 0 instead of log(0)), for the preference losses.
//!
//! Every op picks its function with the `OP` override constant, so each
//! (entry, op) pair is one pipeline. Tensors larger than one storage binding
//! are processed in pieces; `b` is bound whole when it fits, else per piece
//! over the contiguous range of `b` that the piece reads.

use anyhow::{bail, ensure, Result};

use crate::device::Gpu;
use crate::kernel::{elem_chunks, groups_1d, Bind, Kernel};
use crate::ops::reduce;
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct EwParams {
    pub n: u32,
    pub off: u32,
    pub base: u32,
    pub div: u32,
    pub modulo: u32,
    pub b_lo: u32,
    pub b_off: u32,
    pub alpha: f32,
    pub beta: f32,
    pub _pad: [u32; 3],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// Elementwise max (torch.maximum); ties split the gradient in halves.
    Maximum,
    Minimum,
    /// `1.0` where a > b else `0.0`; not differentiable.
    Gt,
}

impl BinaryOp {
    fn code(self) -> f64 {
        self as u32 as f64
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// `alpha * x + beta` (neg is `Scale { alpha: -1.0, beta: 0.0 }`).
    Scale {
        alpha: f32,
        beta: f32,
    },
    Exp,
    Log,
    Sigmoid,
    Tanh,
    Relu,
    Square,
    Sqrt,
    /// Gradient passes where `min <= x <= max`, as in torch.
    Clamp {
        min: f32,
        max: f32,
    },
    /// Gradient `sign(x)` (0 at 0).
    Abs,
    /// `log σ(x) = −softplus(−x)`, stable for every x; gradient `σ(−x)`.
    LogSigmoid,
    /// `log(1 + eˣ)`, stable for every x; gradient `σ(x)`.
    Softplus,
}

impl UnaryOp {
    fn code(self) -> (f64, f32, f32) {
        match self {
            UnaryOp::Scale { alpha, beta } => (0.0, alpha, beta),
            UnaryOp::Exp => (1.0, 0.0, 0.0),
            UnaryOp::Log => (2.0, 0.0, 0.0),
            UnaryOp::Sigmoid => (3.0, 0.0, 0.0),
            UnaryOp::Tanh => (4.0, 0.0, 0.0),
            UnaryOp::Relu => (5.0, 0.0, 0.0),
            UnaryOp::Square => (6.0, 0.0, 0.0),
            UnaryOp::Sqrt => (7.0, 0.0, 0.0),
            UnaryOp::Clamp { min, max } => (8.0, min, max),
            UnaryOp::Abs => (9.0, 0.0, 0.0),
            UnaryOp::LogSigmoid => (10.0, 0.0, 0.0),
            UnaryOp::Softplus => (11.0, 0.0, 0.0),
        }
    }

    /// Whether backward needs the output (else the input).
    pub fn saves_output(self) -> bool {
        matches!(
            self,
            UnaryOp::Exp | UnaryOp::Sigmoid | UnaryOp::Tanh | UnaryOp::Sqrt
        )
    }
}

/// How the second operand maps onto the first: `b[(i / div) % modulo]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Broadcast {
    pub div: usize,
    pub modulo: usize,
}

impl Broadcast {
    /// `b` has the same element count as `a`.
    pub fn same(n: usize) -> Broadcast {
        Broadcast { div: 1, modulo: n }
    }

    /// Numpy-style suffix broadcasting of `b` into `a`'s shape (the result
    /// has `a`'s shape). `b` may have lower rank and size-1 dims; its
    /// non-broadcast dims must form one contiguous block of `a`'s dims.
    pub fn infer(a: &[usize], b: &[usize]) -> Result<Broadcast> {
        ensure!(
            b.len() <= a.len(),
            "cannot broadcast {b:?} into {a:?}: higher rank"
        );
        let pad = a.len() - b.len();
        // Dims of `a` (of size > 1) that `b` keeps.
        let mut kept = Vec::new();
        for (d, &ad) in a.iter().enumerate() {
            let bd = if d < pad { 1 } else { b[d - pad] };
            if bd == ad {
                if ad > 1 {
                    kept.push(d);
                }
            } else if bd != 1 {
                bail!("cannot broadcast {b:?} into {a:?}: dim {d} is {bd} vs {ad}");
            }
        }
        let (Some(&first), Some(&last)) = (kept.first(), kept.last()) else {
            return Ok(Broadcast { div: 1, modulo: 1 });
        };
        if let Some(d) = (first..=last).find(|&d| a[d] > 1 && !kept.contains(&d)) {
            bail!(
                "cannot broadcast {b:?} into {a:?}: b's kept dims are not contiguous \
                 (dim {d} is broadcast between them)"
            );
        }
        Ok(Broadcast {
            div: a[last + 1..].iter().product(),
            modulo: a[first..=last].iter().product(),
        })
    }
}

/// One launch: full elements `[lo, hi)` and the elements `[b_lo, b_hi)` of b.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Piece {
    pub lo: usize,
    pub hi: usize,
    pub b_lo: usize,
    pub b_hi: usize,
}

/// Splits `n` full elements into launches whose operands each fit one
/// binding. Full chunks come from [`elem_chunks`] (aligned starts); b is bound
/// whole when it fits, else each chunk is cut where b's index wraps around or
/// its range would outgrow a binding.
pub(crate) fn pieces(gpu: &Gpu, n: usize, bc: Broadcast) -> Vec<Piece> {
    let align = (gpu.binding_alignment() / 4).max(1) as usize;
    let max_b = (gpu.max_binding() / 4) as usize - align;
    let mut out = Vec::new();
    for (lo, hi) in elem_chunks(gpu, n) {
        if bc.modulo <= max_b + align {
            out.push(Piece {
                lo,
                hi,
                b_lo: 0,
                b_hi: bc.modulo,
            });
            continue;
        }
        let mut cur = lo;
        while cur < hi {
            let q = cur / bc.div;
            let j0 = q % bc.modulo;
            let wrap = (q - j0 + bc.modulo) * bc.div;
            let end = hi.min(wrap).min((q + max_b) * bc.div);
            let j1 = j0 + ((end - 1) / bc.div - q) + 1;
            out.push(Piece {
                lo: cur,
                hi: end,
                b_lo: j0,
                b_hi: j1,
            });
            cur = end;
        }
    }
    out
}

fn check_f32(what: &str, ts: &[&Tensor]) -> Result<()> {
    for t in ts {
        ensure!(
            t.dtype() == DType::F32,
            "{what} needs f32 tensors, got {t:?}"
        );
    }
    Ok(())
}

fn check_bcast(a: &Tensor, b: &Tensor, bc: Broadcast) -> Result<()> {
    ensure!(
        bc.div >= 1 && bc.modulo == b.numel() && a.numel().is_multiple_of(bc.div * bc.modulo),
        "broadcast {bc:?} of {b:?} over {a:?}"
    );
    Ok(())
}

/// Runs `entry` over every piece. `full` are the full-size operands as
/// (binding, tensor); `b` the broadcast operand at binding 2.
fn launch(
    entry: &'static str,
    op: f64,
    n: usize,
    bc: Broadcast,
    (alpha, beta): (f32, f32),
    full: &[(u32, &Tensor)],
    b: Option<&Tensor>,
) -> Result<()> {
    let gpu = full[0].1.gpu();
    let consts = [("OP", op)];
    let kernel = Kernel::new("elementwise", entry).with(&consts);
    for pc in pieces(gpu, n, bc) {
        let mut binds: Vec<Bind> = Vec::with_capacity(full.len() + 1);
        let mut off = 0;
        for &(slot, t) in full {
            let (bind, o) = t.bind_elems(slot, pc.lo, pc.hi);
            binds.push(bind);
            off = o;
        }
        let mut b_off = 0;
        if let Some(b) = b {
            let (bind, o) = b.bind_elems(2, pc.b_lo, pc.b_hi);
            binds.push(bind);
            b_off = o;
        }
        let count = (pc.hi - pc.lo) as u32;
        let params = EwParams {
            n: count,
            off,
            base: pc.lo as u32,
            div: bc.div as u32,
            modulo: bc.modulo as u32,
            b_lo: pc.b_lo as u32,
            b_off,
            alpha,
            beta,
            _pad: [0; 3],
        };
        gpu.dispatch(
            &kernel,
            &params,
            &binds,
            groups_1d(gpu, count.div_ceil(256)),
        )?;
    }
    Ok(())
}

/// `y = a op b[(i / div) % modulo]`, shaped like `a`.
pub fn binary_forward(op: BinaryOp, a: &Tensor, b: &Tensor, bc: Broadcast) -> Result<Tensor> {
    check_f32("elementwise", &[a, b])?;
    check_bcast(a, b, bc)?;
    let y = Tensor::empty(a.gpu(), a.shape(), DType::F32)?;
    launch(
        "elementwise_forward",
        op.code(),
        a.numel(),
        bc,
        (0.0, 0.0),
        &[(1, a), (4, &y)],
        Some(b),
    )?;
    Ok(y)
}

/// Gradients of `binary_forward` for the inputs flagged in `needs`:
/// `da` shaped like `a`, `db` shaped like `b` (summed over the broadcast).
pub fn binary_backward(
    op: BinaryOp,
    dy: &Tensor,
    a: &Tensor,
    b: &Tensor,
    bc: Broadcast,
    needs: [bool; 2],
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    check_f32("elementwise backward", &[dy, a, b])?;
    check_bcast(a, b, bc)?;
    ensure!(dy.numel() == a.numel(), "dy {dy:?} for a {a:?}");
    if matches!(op, BinaryOp::Add | BinaryOp::Sub) {
        return pass_through_grads(op, dy, a.shape(), b.shape(), bc, needs);
    }
    ensure!(op != BinaryOp::Gt, "gt is not differentiable");
    let da = Tensor::empty(a.gpu(), a.shape(), DType::F32)?;
    let gb = Tensor::empty(a.gpu(), a.shape(), DType::F32)?;
    launch(
        "elementwise_backward",
        op.code(),
        a.numel(),
        bc,
        (0.0, 0.0),
        &[(3, dy), (1, a), (4, &da), (5, &gb)],
        Some(b),
    )?;
    let db = if needs[1] {
        Some(reduce::sum_broadcast(&gb, bc)?.reshape(b.shape())?)
    } else {
        None
    };
    Ok((needs[0].then_some(da), db))
}

/// add/sub: `da = dy` (an alias), `db = ±Σ dy` over the broadcast. Needs
/// only the shapes, so the tape saves no tensors for them.
fn pass_through_grads(
    op: BinaryOp,
    dy: &Tensor,
    a_shape: &[usize],
    b_shape: &[usize],
    bc: Broadcast,
    needs: [bool; 2],
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let da = if needs[0] {
        Some(dy.reshape(a_shape)?)
    } else {
        None
    };
    let db = if needs[1] {
        let g = reduce::sum_broadcast(dy, bc)?.reshape(b_shape)?;
        Some(if op == BinaryOp::Sub {
            unary_forward(
                UnaryOp::Scale {
                    alpha: -1.0,
                    beta: 0.0,
                },
                &g,
            )?
        } else {
            g
        })
    } else {
        None
    };
    Ok((da, db))
}

/// `y[i] = alpha * b[(i / div) % modulo]` for a `y` of `shape`.
pub fn expand(b: &Tensor, shape: &[usize], bc: Broadcast, alpha: f32) -> Result<Tensor> {
    check_f32("expand", &[b])?;
    let y = Tensor::empty(b.gpu(), shape, DType::F32)?;
    check_bcast(&y, b, bc)?;
    launch(
        "elementwise_expand",
        0.0,
        y.numel(),
        bc,
        (alpha, 0.0),
        &[(4, &y)],
        Some(b),
    )?;
    Ok(y)
}

pub fn unary_forward(op: UnaryOp, x: &Tensor) -> Result<Tensor> {
    check_f32("elementwise", &[x])?;
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let (code, alpha, beta) = op.code();
    let bc = Broadcast::same(1);
    launch(
        "elementwise_unary_forward",
        code,
        x.numel(),
        bc,
        (alpha, beta),
        &[(1, x), (4, &y)],
        None,
    )?;
    Ok(y)
}

/// `dx = dy * f'`; `saved` is the forward output when
/// [`UnaryOp::saves_output`], else the input.
pub fn unary_backward(op: UnaryOp, dy: &Tensor, saved: &Tensor) -> Result<Tensor> {
    check_f32("elementwise backward", &[dy, saved])?;
    ensure!(dy.numel() == saved.numel(), "dy {dy:?} vs saved {saved:?}");
    let dx = Tensor::empty(dy.gpu(), saved.shape(), DType::F32)?;
    let (code, alpha, beta) = op.code();
    launch(
        "elementwise_unary_backward",
        code,
        dy.numel(),
        Broadcast::same(1),
        (alpha, beta),
        &[(3, dy), (1, saved), (4, &dx)],
        None,
    )?;
    Ok(dx)
}

/// `a op b` on the tape with an explicit broadcast of `b`.
pub fn binary_bcast(tape: &Tape, op: BinaryOp, a: &Var, b: &Var, bc: Broadcast) -> Result<Var> {
    let y = binary_forward(op, a.tensor(), b.tensor(), bc)?;
    if op == BinaryOp::Gt {
        return Ok(tape.constant(y));
    }
    let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
    // add/sub need only the shapes: saving nothing lets a and b be freed.
    let saved = (!matches!(op, BinaryOp::Add | BinaryOp::Sub))
        .then(|| (a.tensor().clone(), b.tensor().clone()));
    Ok(tape.record("elementwise", &[a, b], y, move |dy, needs| {
        let needs = [needs[0], needs[1]];
        let (da, db) = match &saved {
            Some((ta, tb)) => binary_backward(op, dy, ta, tb, bc, needs)?,
            None => pass_through_grads(op, dy, &sa, &sb, bc, needs)?,
        };
        Ok(vec![da, db])
    }))
}

/// `a op b` with `b` broadcast numpy-style into `a`'s shape.
pub fn binary(tape: &Tape, op: BinaryOp, a: &Var, b: &Var) -> Result<Var> {
    let bc = Broadcast::infer(a.shape(), b.shape())?;
    binary_bcast(tape, op, a, b, bc)
}

pub fn add(tape: &Tape, a: &Var, b: &Var) -> Result<Var> {
    binary(tape, BinaryOp::Add, a, b)
}
pub fn sub(tape: &Tape, a: &Var, b: &Var) -> Result<Var> {
    binary(tape, BinaryOp::Sub, a, b)
}
pub fn mul(tape: &Tape, a: &Var, b: &Var) -> Result<Var> {
    binary(tape, BinaryOp::Mul, a, b)
}
pub fn div(tape: &Tape, a: &Var, b: &Var) -> Result<Var> {
    binary(tape, BinaryOp::Div, a, b)
}
pub fn maximum(tape: &Tape, a: &Var, b: &Var) -> Result<Var> {
    binary(tape, BinaryOp::Maximum, a, b)
}
pub fn minimum(tape: &Tape, a: &Var, b: &Var) -> Result<Var> {
    binary(tape, BinaryOp::Minimum, a, b)
}
/// `1.0` where `a > b`, else `0.0`: a constant (no gradient flows).
pub fn gt(tape: &Tape, a: &Var, b: &Var) -> Result<Var> {
    binary(tape, BinaryOp::Gt, a, b)
}

/// `f(x)` on the tape.
pub fn unary(tape: &Tape, op: UnaryOp, x: &Var) -> Result<Var> {
    let y = unary_forward(op, x.tensor())?;
    // scale needs nothing saved: its backward binds dy in the saved slot.
    let saved = match op {
        UnaryOp::Scale { .. } => None,
        _ if op.saves_output() => Some(y.clone()),
        _ => Some(x.tensor().clone()),
    };
    Ok(tape.record("unary", &[x], y, move |dy, _| {
        let saved = saved.as_ref().unwrap_or(dy);
        Ok(vec![Some(unary_backward(op, dy, saved)?)])
    }))
}

/// `alpha * x + beta`.
pub fn scale(tape: &Tape, x: &Var, alpha: f32, beta: f32) -> Result<Var> {
    unary(tape, UnaryOp::Scale { alpha, beta }, x)
}
pub fn neg(tape: &Tape, x: &Var) -> Result<Var> {
    scale(tape, x, -1.0, 0.0)
}
pub fn exp(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Exp, x)
}
pub fn log(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Log, x)
}
pub fn sigmoid(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Sigmoid, x)
}
pub fn tanh(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Tanh, x)
}
pub fn relu(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Relu, x)
}
pub fn square(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Square, x)
}
pub fn sqrt(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Sqrt, x)
}
pub fn clamp(tape: &Tape, x: &Var, min: f32, max: f32) -> Result<Var> {
    unary(tape, UnaryOp::Clamp { min, max }, x)
}
pub fn abs(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Abs, x)
}
/// `log σ(x)`, numerically stable (no `log(0)` for x ≪ 0).
pub fn log_sigmoid(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::LogSigmoid, x)
}
/// `log(1 + eˣ)`, numerically stable.
pub fn softplus(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Softplus, x)
}
