//! Unary elementwise ops `y = f(x)`: the raw kernels and their tape
//! functions (see the module docs of [`super`] for what each saves).

use anyhow::{ensure, Result};

use super::{check_f32, launch, Broadcast};
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

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

fixed_op_fns! {
    neg(tape, x) = scale(tape, x, -1.0, 0.0);
    exp(tape, x) = unary(tape, UnaryOp::Exp, x);
    log(tape, x) = unary(tape, UnaryOp::Log, x);
    sigmoid(tape, x) = unary(tape, UnaryOp::Sigmoid, x);
    tanh(tape, x) = unary(tape, UnaryOp::Tanh, x);
    relu(tape, x) = unary(tape, UnaryOp::Relu, x);
    square(tape, x) = unary(tape, UnaryOp::Square, x);
    sqrt(tape, x) = unary(tape, UnaryOp::Sqrt, x);
    abs(tape, x) = unary(tape, UnaryOp::Abs, x);
    /// `log σ(x)`, numerically stable (no `log(0)` for x ≪ 0).
    log_sigmoid(tape, x) = unary(tape, UnaryOp::LogSigmoid, x);
    /// `log(1 + eˣ)`, numerically stable.
    softplus(tape, x) = unary(tape, UnaryOp::Softplus, x);
}

pub fn clamp(tape: &Tape, x: &Var, min: f32, max: f32) -> Result<Var> {
    unary(tape, UnaryOp::Clamp { min, max }, x)
}
