//! row_gather: `out[i, :] = x[idx[i], :]`, picking rows of an activation
//! (the last real token of each sequence for reward heads, every position for
//! the value head).
//!
//! Shapes: `x` f32 with rows N = numel / C of C columns (e.g. [B, T, C] is
//! N = B·T rows), `idx` i32 [M], `out` f32 [M, C]. Backward scatters dout into
//! a zero dx: `dx[r, :] = Σ_{i: idx[i] = r} dout[i, :]`, race-free and
//! deterministic even when idx repeats. Forward saves the host copy of idx.
//!
//! This is literally the embedding mechanism with x as the table, so it has no
//! shader of its own: forward and backward run `shaders/embedding.wgsl`
//! (gather with binding chunking; CSR scatter-add with a fixed summation
//! order). One mechanism, not two copies.

use anyhow::{bail, ensure, Context, Result};

use crate::ops::embedding::{
    embedding_backward, embedding_forward, embedding_forward_into, validate_ids,
};
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

fn as_rows(x: &Tensor) -> Result<Tensor> {
    ensure!(x.dtype() == DType::F32, "row_gather needs an f32 x");
    x.reshape(&[x.rows(), x.cols()])
}

/// Gathers rows of `x` (viewed as [N, C]): returns f32 `idx.shape ++ [C]`.
/// `host_idx`, when given, must equal `idx` and is validated against N; rows
/// for device-only indices outside `[0, N)` come out as zeros.
pub fn row_gather_forward(x: &Tensor, idx: &Tensor, host_idx: Option<&[i32]>) -> Result<Tensor> {
    embedding_forward(&as_rows(x)?, idx, host_idx).context("row_gather")
}

/// [`row_gather_forward`] into a caller-allocated f32 `out` of M·C elements.
pub fn row_gather_forward_into(
    out: &Tensor,
    x: &Tensor,
    idx: &Tensor,
    host_idx: Option<&[i32]>,
) -> Result<()> {
    embedding_forward_into(out, &as_rows(x)?, idx, host_idx).context("row_gather")
}

/// dx of `x_shape` (f32, zero where no index points) from `dout` (M·C
/// elements) and the host indices.
pub fn row_gather_backward(dout: &Tensor, idx: &[i32], x_shape: &[usize]) -> Result<Tensor> {
    let c = x_shape.last().copied().unwrap_or(1);
    let n: usize = x_shape.iter().product::<usize>() / c.max(1);
    ensure!(
        dout.numel() == idx.len() * c,
        "row_gather: dout {:?} for {} indices of width {c}",
        dout.shape(),
        idx.len()
    );
    let dx = if idx.is_empty() {
        Tensor::zeros(dout.gpu(), &[n, c], DType::F32)?
    } else {
        embedding_backward(dout, idx, n).context("row_gather")?
    };
    dx.reshape(x_shape)
}

/// Tape version: picks rows `idx` (host indices, uploaded here) of `x`
/// viewed as [N, C]; returns [M, C].
pub fn row_gather(tape: &Tape, x: &Var, idx: &[i32]) -> Result<Var> {
    let rows = as_rows(x.tensor())?;
    validate_ids(idx, rows.rows()).context("row_gather")?;
    let t = Tensor::from_i32(tape.gpu(), &[idx.len()], idx)?;
    let out = embedding_forward(&rows, &t, Some(idx))?;
    let host = idx.to_vec();
    let x_shape = x.shape().to_vec();
    Ok(tape.record("row_gather", &[x], out, move |dy, _| {
        Ok(vec![Some(row_gather_backward(dy, &host, &x_shape)?)])
    }))
}

/// Tape version of the inverse placement: the rows of `x` [M, C] put at
/// rows `idx` (distinct, in `[0, n)`) of an [n, C] of zeros, the forward of
/// [`row_gather_backward`]; the backward gathers dy's rows `idx`. For work
/// done only on the rows that matter (the LM head on the positions that
/// predict a response token), scattered back among exact zeros so that
/// everything after it sees the shapes and sums it saw before.
pub fn row_scatter(tape: &Tape, x: &Var, idx: &[i32], n: usize) -> Result<Var> {
    validate_ids(idx, n).context("row_scatter")?;
    let mut seen = vec![false; n];
    for (i, &r) in idx.iter().enumerate() {
        ensure!(
            !std::mem::replace(&mut seen[r as usize], true),
            "row_scatter: row {r} is named twice (at index {i})"
        );
    }
    let c = as_rows(x.tensor())?.cols();
    let out = row_gather_backward(x.tensor(), idx, &[n, c])?;
    let (host, x_shape) = (idx.to_vec(), x.shape().to_vec());
    Ok(tape.record("row_scatter", &[x], out, move |dy, _| {
        let t = Tensor::from_i32(dy.gpu(), &[host.len()], &host)?;
        let picked = row_gather_forward(dy, &t, Some(&host))?;
        Ok(vec![Some(picked.reshape(&x_shape)?)])
    }))
}

/// Rows `rows` of `x` (its first dimension; any dtype that
/// [`Tensor::copy_elems_from`] takes, i32 included) into a new tensor of
/// `rows.len()` rows: one buffer copy per run of consecutive rows, so the
/// bits are exact and no shader runs. For state that must survive a batch
/// shrinking unchanged (a KV cache, a sampler's bitmaps), where the f32-only
/// gather above would not take the i32 parts.
pub fn keep_rows(x: &Tensor, rows: &[usize]) -> Result<Tensor> {
    ensure!(!x.shape().is_empty(), "keep_rows: a scalar has no rows");
    let n = x.shape()[0];
    let width = x.numel().checked_div(n).unwrap_or(0);
    if let Some(&bad) = rows.iter().find(|&&r| r >= n) {
        bail!("keep_rows: row {bad} of a tensor with {n} rows ({x:?})");
    }
    let mut shape = x.shape().to_vec();
    shape[0] = rows.len();
    let out = Tensor::empty(x.gpu(), &shape, x.dtype())?;
    let mut i = 0;
    while i < rows.len() {
        let mut run = 1;
        while i + run < rows.len() && rows[i + run] == rows[i] + run {
            run += 1;
        }
        out.copy_elems_from(i * width, x, rows[i] * width, run * width)?;
        i += run;
    }
    Ok(out)
}
