//! Fused cross-entropy and token log-probs over logits [.., V] (N = B·T rows).
//!
//! - cross-entropy: `loss[n] = logsumexp(x[n]) − x[n, t[n]]`
//! - token log-probs (PPO/DPO): `logp[n] = x[n, t[n]]/T − logsumexp(x[n]/T)`
//!
//! Targets are i32 [N]; [`IGNORE_INDEX`] (−100, as in HF/TRL) gives 0 and a zero
//! gradient; any other target outside [0, V) gives NaN. Outputs are per row
//! (shape = the leading dims of the logits); callers reduce (masked means
//! live elsewhere).
//!
//! Both quantities are one kernel (`shaders/cross_entropy.wgsl`) with a sign:
//! `out = scale·(lse − z[t])`, `dx = scale·dout·(softmax(z) − onehot(t))/T`.
//! Forward saves only the per-row logsumexp [N] (no softmax copy is made);
//! backward recomputes the softmax on the fly in one read of the logits.

use anyhow::{ensure, Result};

use super::softmax::{check_logits, row_shape, run_rows, RowLaunch, RowOp, Variant};
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

/// Targets equal to this contribute 0 and no gradient.
pub const IGNORE_INDEX: i32 = -100;

const OP: RowOp = RowOp {
    rows: "cross_entropy",
    subgroup: "cross_entropy_subgroup",
};

const LOSS: f32 = 1.0;
const LOGPROB: f32 = -1.0;

fn check_targets(logits: &Tensor, targets: &Tensor) -> Result<()> {
    ensure!(
        targets.dtype() == DType::I32 && targets.numel() == logits.rows(),
        "cross_entropy: targets must be i32 with one per row of {logits:?}, got {targets:?}"
    );
    Ok(())
}

fn fused_forward(
    logits: &Tensor,
    targets: &Tensor,
    temperature: f32,
    scale: f32,
    variant: Variant,
) -> Result<(Tensor, Tensor)> {
    let (rows, v, inv_t) = check_logits("cross_entropy", logits, temperature)?;
    check_targets(logits, targets)?;
    let gpu = logits.gpu();
    let out = Tensor::empty(gpu, &row_shape(logits), DType::F32)?;
    let lse = Tensor::empty(gpu, &row_shape(logits), DType::F32)?;
    let launch = RowLaunch {
        wide: &[(1, logits)],
        narrow: &[(2, targets), (3, &out), (4, &lse)],
        inv_t,
        scale,
        mode: 0,
        passes: 1,
    };
    run_rows(gpu, OP, "cross_entropy_forward", variant, rows, v, &launch)?;
    Ok((out, lse))
}

fn fused_backward(
    logits: &Tensor,
    targets: &Tensor,
    lse: &Tensor,
    dout: &Tensor,
    temperature: f32,
    scale: f32,
    variant: Variant,
) -> Result<Tensor> {
    let (rows, v, inv_t) = check_logits("cross_entropy_backward", logits, temperature)?;
    check_targets(logits, targets)?;
    ensure!(
        lse.numel() == rows && dout.numel() == rows,
        "cross_entropy_backward: lse {lse:?} and dout {dout:?} need one value per row of {logits:?}"
    );
    let dx = Tensor::empty(logits.gpu(), logits.shape(), DType::F32)?;
    let launch = RowLaunch {
        wide: &[(1, logits), (7, &dx)],
        narrow: &[(2, targets), (5, lse), (6, dout)],
        inv_t,
        scale,
        mode: 0,
        passes: 1,
    };
    run_rows(
        logits.gpu(),
        OP,
        "cross_entropy_backward",
        variant,
        rows,
        v,
        &launch,
    )?;
    Ok(dx)
}

/// Per-row losses and the saved logsumexp: `(loss [..], lse [..])`.
pub fn cross_entropy_forward(
    logits: &Tensor,
    targets: &Tensor,
    variant: Variant,
) -> Result<(Tensor, Tensor)> {
    fused_forward(logits, targets, 1.0, LOSS, variant)
}

/// dlogits = (softmax − onehot(t))·dloss[row]; zero on ignored rows.
pub fn cross_entropy_backward(
    logits: &Tensor,
    targets: &Tensor,
    lse: &Tensor,
    dloss: &Tensor,
    variant: Variant,
) -> Result<Tensor> {
    fused_backward(logits, targets, lse, dloss, 1.0, LOSS, variant)
}

/// Per-row token log-probs of `targets` under softmax(logits / T), and the
/// saved logsumexp of logits / T: `(logp [..], lse [..])`.
pub fn token_logprobs_forward(
    logits: &Tensor,
    targets: &Tensor,
    temperature: f32,
    variant: Variant,
) -> Result<(Tensor, Tensor)> {
    fused_forward(logits, targets, temperature, LOGPROB, variant)
}

/// dlogits = (onehot(t) − softmax(logits / T))·dlogp[row] / T.
pub fn token_logprobs_backward(
    logits: &Tensor,
    targets: &Tensor,
    lse: &Tensor,
    dlogp: &Tensor,
    temperature: f32,
    variant: Variant,
) -> Result<Tensor> {
    fused_backward(logits, targets, lse, dlogp, temperature, LOGPROB, variant)
}

fn record(
    tape: &Tape,
    name: &'static str,
    logits: &Var,
    targets: &Tensor,
    temperature: f32,
    scale: f32,
) -> Result<Var> {
    let (out, lse) = fused_forward(logits.tensor(), targets, temperature, scale, Variant::Auto)?;
    let (x, t) = (logits.tensor().clone(), targets.clone());
    Ok(tape.record(name, &[logits], out, move |dout, _| {
        let dx = fused_backward(&x, &t, &lse, dout, temperature, scale, Variant::Auto)?;
        Ok(vec![Some(dx)])
    }))
}

/// Per-row cross-entropy losses on the tape (shape = leading dims of `logits`).
pub fn cross_entropy(tape: &Tape, logits: &Var, targets: &Tensor) -> Result<Var> {
    record(tape, "cross_entropy", logits, targets, 1.0, LOSS)
}

/// Per-row log-probs of `targets` under softmax(logits / T), on the tape.
pub fn token_logprobs(
    tape: &Tape,
    logits: &Var,
    targets: &Tensor,
    temperature: f32,
) -> Result<Var> {
    record(
        tape,
        "token_logprobs",
        logits,
        targets,
        temperature,
        LOGPROB,
    )
}
