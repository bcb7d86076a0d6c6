//! Entropy of softmax(x / T) per row over logits [.., V] (N = B·T rows):
//! `H = logsumexp(z) − Σ p·z` with z = x / T, p = softmax(z). PPO's entropy
//! bonus and statistics use it.
//!
//! Forward is one streaming pass over each row (online max, Σ e, Σ e·(z − max))
//! and writes h [..] (the leading dims of x). It saves, per row, lse [..] and
//! mean = Σ p·z [..]; no softmax copy is made. Backward recomputes p on the fly
//! in one read: `dx_j = −dh·p_j·(z_j − mean)/T`.

use anyhow::{ensure, Result};

use super::softmax::{check_logits, row_shape, run_rows, RowLaunch, RowOp, Variant};
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

const OP: RowOp = RowOp {
    rows: "entropy",
    subgroup: "entropy_subgroup",
};

/// What the forward pass saves for backward (one value per row each).
#[derive(Clone, Debug)]
pub struct EntropySaved {
    /// logsumexp(x / T).
    pub lse: Tensor,
    /// Σ p·z, the softmax-weighted mean of x / T.
    pub mean: Tensor,
}

/// Per-row entropies `h [..]` and the saved statistics.
pub fn entropy_forward(
    logits: &Tensor,
    temperature: f32,
    variant: Variant,
) -> Result<(Tensor, EntropySaved)> {
    let (rows, v, inv_t) = check_logits("entropy", logits, temperature)?;
    let gpu = logits.gpu();
    let shape = row_shape(logits);
    let h = Tensor::empty(gpu, &shape, DType::F32)?;
    let lse = Tensor::empty(gpu, &shape, DType::F32)?;
    let mean = Tensor::empty(gpu, &shape, DType::F32)?;
    let launch = RowLaunch {
        wide: &[(1, logits)],
        narrow: &[(2, &h), (3, &lse), (4, &mean)],
        inv_t,
        scale: 1.0,
        mode: 0,
        passes: 1,
    };
    run_rows(gpu, OP, "entropy_forward", variant, rows, v, &launch)?;
    Ok((h, EntropySaved { lse, mean }))
}

/// dlogits from the saved statistics and dh [..].
pub fn entropy_backward(
    logits: &Tensor,
    saved: &EntropySaved,
    dh: &Tensor,
    temperature: f32,
    variant: Variant,
) -> Result<Tensor> {
    let (rows, v, inv_t) = check_logits("entropy_backward", logits, temperature)?;
    ensure!(
        saved.lse.numel() == rows && saved.mean.numel() == rows && dh.numel() == rows,
        "entropy_backward: saved stats and dh {dh:?} need one value per row of {logits:?}"
    );
    let dx = Tensor::empty(logits.gpu(), logits.shape(), DType::F32)?;
    let launch = RowLaunch {
        wide: &[(1, logits), (8, &dx)],
        narrow: &[(5, &saved.lse), (6, &saved.mean), (7, dh)],
        inv_t,
        scale: 1.0,
        mode: 0,
        passes: 1,
    };
    run_rows(
        logits.gpu(),
        OP,
        "entropy_backward",
        variant,
        rows,
        v,
        &launch,
    )?;
    Ok(dx)
}

/// Per-row entropy of softmax(logits / T), on the tape.
pub fn entropy(tape: &Tape, logits: &Var, temperature: f32) -> Result<Var> {
    let (h, saved) = entropy_forward(logits.tensor(), temperature, Variant::Auto)?;
    let x = logits.tensor().clone();
    Ok(tape.record("entropy", &[logits], h, move |dh, _| {
        let dx = entropy_backward(&x, &saved, dh, temperature, Variant::Auto)?;
        Ok(vec![Some(dx)])
    }))
}
