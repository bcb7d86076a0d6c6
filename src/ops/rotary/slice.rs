//! rotary_slice: q or k taken out of a fused QKV projection and rotated in
//! one pass, i.e. `rotary(head_slice(qkv))` without the intermediate.
//!
//! Shapes: `qkv` [..., 3·H·D] (GPT-2's `[q | k | v]` or GPT-NeoX's per-head
//! `[q k v]`, see [`QkvLayout`](crate::ops::head_slice::QkvLayout)), the
//! [`Slice`] naming q or k, `positions` i32 with one entry per row of qkv;
//! out [..., H, D], contiguous. The same rotary kernel reads the slice's
//! columns in place (its x view has the projection's token and head strides).
//! Backward writes `Rᵀ·dy` into the slice's columns of a zeroed `dqkv`, as
//! head_slice's backward scatters, so the tape sums the q, k and v parts of
//! dqkv exactly as it does for head_slice. Forward saves the positions and
//! the table; the values are those of the two passes it replaces, bit for bit
//! (the same reads and the same arithmetic).

use anyhow::{ensure, Result};

use super::{run, RotaryForm, RotaryTable, Rotation, View};
use crate::ops::head_slice::Slice;
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

/// The kernel's [1, rows, H, D] shape, the slice's view of `qkv_shape`, and
/// the output's shape [..., H, D].
fn layout(qkv_shape: &[usize], s: &Slice) -> Result<([usize; 4], View, Vec<usize>)> {
    let (h, d) = (s.heads, s.head_dim);
    let width = 3 * h * d;
    ensure!(
        qkv_shape.last() == Some(&width),
        "rotary_slice: {qkv_shape:?} is not a fused QKV of width {width} (H = {h}, D = {d})"
    );
    let rows = qkv_shape[..qkv_shape.len() - 1].iter().product();
    let (offset, head_stride) = s.columns();
    let view = View {
        token_stride: width,
        head_stride,
        offset,
    };
    let mut out = qkv_shape[..qkv_shape.len() - 1].to_vec();
    out.extend([h, d]);
    Ok(([1, rows, h, d], view, out))
}

/// q or k of `qkv`, rotated at `positions`: [..., H, D].
pub fn rotary_slice_forward(
    qkv: &Tensor,
    s: &Slice,
    positions: &Tensor,
    table: &RotaryTable,
) -> Result<Tensor> {
    let (shape, view, out_shape) = layout(qkv.shape(), s)?;
    let out = Tensor::empty(qkv.gpu(), &out_shape, DType::F32)?;
    let plain = View::contiguous(shape);
    run(
        RotaryForm::Auto,
        Rotation::Forward,
        shape,
        (&out, plain),
        (qkv, view),
        positions,
        table,
    )?;
    Ok(out)
}

/// dqkv shaped like `qkv_shape`: `Rᵀ·dy` in the slice's columns, zero elsewhere.
pub fn rotary_slice_backward(
    dy: &Tensor,
    qkv_shape: &[usize],
    s: &Slice,
    positions: &Tensor,
    table: &RotaryTable,
) -> Result<Tensor> {
    let (shape, view, out_shape) = layout(qkv_shape, s)?;
    ensure!(
        dy.shape() == out_shape,
        "rotary_slice backward: dy {dy:?}, expected {out_shape:?}"
    );
    let dqkv = Tensor::zeros(dy.gpu(), qkv_shape, DType::F32)?;
    let plain = View::contiguous(shape);
    run(
        RotaryForm::Auto,
        Rotation::Backward,
        shape,
        (&dqkv, view),
        (dy, plain),
        positions,
        table,
    )?;
    Ok(dqkv)
}

/// Tape version of [`rotary_slice_forward`].
pub fn rotary_slice(
    tape: &Tape,
    qkv: &Var,
    s: Slice,
    positions: &Tensor,
    table: &RotaryTable,
) -> Result<Var> {
    let out = rotary_slice_forward(qkv.tensor(), &s, positions, table)?;
    let (shape, positions, table) = (qkv.shape().to_vec(), positions.clone(), table.clone());
    Ok(tape.record("rotary_slice", &[qkv], out, move |dy, _| {
        Ok(vec![Some(rotary_slice_backward(
            dy, &shape, &s, &positions, &table,
        )?)])
    }))
}
