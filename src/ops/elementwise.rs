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
//!
//! Layout: this file holds the params, the one launcher and the binary ops;
//! `elementwise/broadcast.rs` the broadcast and piece arithmetic,
//! `elementwise/unary.rs` the unary ops (re-exported here).

use anyhow::{ensure, Result};

mod broadcast;
mod unary;

use broadcast::pieces;
pub use broadcast::Broadcast;
pub use unary::{
    abs, clamp, exp, log, log_sigmoid, neg, relu, scale, sigmoid, softplus, sqrt, square, tanh,
    unary, unary_backward, unary_forward, UnaryOp,
};

use crate::kernel::{groups_1d, with_vec4_twins, Bind, Kernel};
use crate::ops::reduce;
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

/// Mirrors `EwParams` in `shaders/elementwise.wgsl`.
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
    // Only the vec4 entry reads B_MODE, so only its pipelines differ by it.
    let quad_consts = [0.0, 1.0, 2.0, 3.0].map(|mode| [("OP", op), ("B_MODE", mode)]);
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
        // The binary forward over vec4s when the full operands allow it (see
        // the shader); bindings 6..8 see a, b and y as vec4s.
        let quads = entry == "elementwise_forward"
            && count.is_multiple_of(4)
            && off.is_multiple_of(4)
            && pc.lo.is_multiple_of(4)
            && binds.iter().all(|b| b.offset.is_multiple_of(16));
        // How the vec4 entry reads b (B_MODE in the shader).
        let b_aligned = (b_off as usize + 4 - pc.b_lo % 4).is_multiple_of(4);
        let b_mode = if bc.div == 1 && bc.modulo == n && b_aligned {
            3
        } else if bc.div == 1 && bc.modulo.is_multiple_of(4) && b_aligned {
            1
        } else if bc.div.is_multiple_of(4) || bc.modulo == 1 {
            2
        } else {
            0
        };
        let (entry, per, consts) = if quads {
            binds = with_vec4_twins(&binds, &[(1, 6), (2, 7), (4, 8)]);
            ("elementwise_forward4", 4, &quad_consts[b_mode][..])
        } else {
            (entry, 1, &consts[..])
        };
        let kernel = Kernel::new("elementwise", entry).with(consts);
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
            groups_1d(gpu, (count / per).div_ceil(256)),
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

fixed_op_fns! {
    add(tape, a, b) = binary(tape, BinaryOp::Add, a, b);
    sub(tape, a, b) = binary(tape, BinaryOp::Sub, a, b);
    mul(tape, a, b) = binary(tape, BinaryOp::Mul, a, b);
    div(tape, a, b) = binary(tape, BinaryOp::Div, a, b);
    maximum(tape, a, b) = binary(tape, BinaryOp::Maximum, a, b);
    minimum(tape, a, b) = binary(tape, BinaryOp::Minimum, a, b);
    /// `1.0` where `a > b`, else `0.0`: a constant (no gradient flows).
    gt(tape, a, b) = binary(tape, BinaryOp::Gt, a, b);
}
