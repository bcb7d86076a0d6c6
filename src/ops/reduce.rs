//! reduce: sum / mean / max of f32 tensors over the last dim (`[.., C]` →
//! `[..]`, a 1-D input gives `[1]`) or over all elements (→ `[1]`).
//!
//! Forward saves the argmax (an I32 tensor: the column for [`Axis::Last`], the
//! flat index for [`Axis::All`]; first index on ties, NaN wins) for max, and
//! nothing for sum / mean. Backward: sum / mean broadcast `dy` (times 1/C or
//! 1/N) with [`elementwise::expand`]; max scatters `dy` to the argmax.
//!
//! Row reductions chunk by whole rows (a row must fit one binding); full
//! reductions chunk by elements, each chunk writing ≤ 64 partials that one
//! final workgroup adds. Also [`sum_broadcast`] (the `db` of broadcast
//! elementwise ops) and TRL's [`masked_mean`].

use anyhow::{bail, ensure, Result};

use crate::device::Gpu;
use crate::kernel::{elem_chunks, groups_1d, Bind, Kernel};
use crate::ops::elementwise::{self, Broadcast};
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ReduceParams {
    pub n: u32,
    pub cols: u32,
    pub x_off: u32,
    pub y_off: u32,
    pub base: u32,
    pub extra: u32,
    pub row0: u32,
    pub scale: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// Over the last dim: `[.., C]` → `[..]`.
    Last,
    /// Over every element → `[1]`.
    All,
}

const WG: usize = 64;
/// Rows per block of the column-sum kernel.
const COL_BLOCK: usize = 256;

pub fn out_shape(shape: &[usize], axis: Axis) -> Vec<usize> {
    match axis {
        Axis::Last if shape.len() > 1 => shape[..shape.len() - 1].to_vec(),
        _ => vec![1],
    }
}

/// Row ranges of an `[rows, cols]` tensor that fit one binding (whole rows,
/// any start), with chunk sizes a multiple of `multiple` where possible.
fn row_chunks(gpu: &Gpu, rows: usize, cols: usize, multiple: usize) -> Result<Vec<(usize, usize)>> {
    let align = (gpu.binding_alignment() / 4).max(1) as usize;
    let max_rows = ((gpu.max_binding() / 4) as usize - align) / cols.max(1);
    ensure!(
        max_rows >= 1,
        "reduce: a row of {cols} elements does not fit one storage binding"
    );
    let step = if max_rows >= multiple {
        max_rows / multiple * multiple
    } else {
        max_rows
    };
    Ok((0..rows.max(1))
        .step_by(step)
        .map(|r| (r, (r + step).min(rows)))
        .collect())
}

fn run(
    entry: &'static str,
    p: ReduceParams,
    binds: &[Bind],
    groups: [u32; 3],
    gpu: &Gpu,
) -> Result<()> {
    gpu.dispatch(&Kernel::new("reduce", entry), &p, binds, groups)
}

fn params(n: usize, cols: usize, scale: f32) -> ReduceParams {
    ReduceParams {
        n: n as u32,
        cols: cols as u32,
        scale,
        ..Default::default()
    }
}

/// `[R, C]` → `[R]`: `scale·Σ` (entry `reduce_forward`) or max + argmax.
fn rows_forward(x: &Tensor, op: ReduceOp, out: &[usize]) -> Result<(Tensor, Option<Tensor>)> {
    let gpu = x.gpu();
    let (rows, cols) = (x.rows(), x.cols());
    let y = Tensor::empty(gpu, out, DType::F32)?;
    let arg = (op == ReduceOp::Max)
        .then(|| Tensor::empty(gpu, out, DType::I32))
        .transpose()?;
    let scale = if op == ReduceOp::Mean {
        1.0 / cols as f32
    } else {
        1.0
    };
    for (r0, r1) in row_chunks(gpu, rows, cols, 1)? {
        let (xb, x_off) = x.bind_elems(1, r0 * cols, r1 * cols);
        let (yb, y_off) = y.bind_elems(2, r0, r1);
        let mut binds = vec![xb, yb];
        if let Some(arg) = &arg {
            binds.push(arg.bind_elems(3, r0, r1).0);
        }
        let p = ReduceParams {
            x_off,
            y_off,
            ..params(r1 - r0, cols, scale)
        };
        let entry = if arg.is_some() {
            "reduce_max_forward"
        } else {
            "reduce_forward"
        };
        run(
            entry,
            p,
            &binds,
            groups_1d(gpu, (r1 - r0).div_ceil(WG) as u32),
            gpu,
        )?;
    }
    Ok((y, arg))
}

/// Full reduction to `[1]`: per-chunk partials, then one workgroup.
fn all_forward(x: &Tensor, op: ReduceOp) -> Result<(Tensor, Option<Tensor>)> {
    let gpu = x.gpu();
    let n = x.numel();
    let chunks = elem_chunks(gpu, n);
    let groups: Vec<usize> = chunks
        .iter()
        .map(|(lo, hi)| (hi - lo).div_ceil(WG * 8).clamp(1, WG))
        .collect();
    let total: usize = groups.iter().sum();
    let is_max = op == ReduceOp::Max;
    let part = Tensor::empty(gpu, &[total], DType::F32)?;
    let part_arg = Tensor::empty(gpu, &[total], DType::I32)?;
    let mut slot = 0;
    for (&(lo, hi), &g) in chunks.iter().zip(&groups) {
        let p = ReduceParams {
            y_off: slot as u32,
            base: lo as u32,
            ..params(hi - lo, 0, 1.0)
        };
        let binds = [x.bind_elems(1, lo, hi).0, part.bind(2), part_arg.bind(3)];
        let entry = if is_max {
            "reduce_max_partials"
        } else {
            "reduce_partials"
        };
        run(entry, p, &binds, [g as u32, 1, 1], gpu)?;
        slot += g;
    }
    let y = Tensor::empty(gpu, &[1], DType::F32)?;
    let arg = Tensor::empty(gpu, &[1], DType::I32)?;
    let scale = if op == ReduceOp::Mean {
        1.0 / n as f32
    } else {
        1.0
    };
    let binds = [part.bind(1), y.bind(2), arg.bind(3), part_arg.bind(4)];
    let entry = if is_max {
        "reduce_max_final"
    } else {
        "reduce_partials"
    };
    run(entry, params(total, 0, scale), &binds, [1, 1, 1], gpu)?;
    Ok((y, is_max.then_some(arg)))
}

/// Returns the reduced tensor and, for max, the argmax (I32, same shape).
pub fn reduce_forward(x: &Tensor, op: ReduceOp, axis: Axis) -> Result<(Tensor, Option<Tensor>)> {
    ensure!(
        x.dtype() == DType::F32,
        "reduce needs an f32 tensor, got {x:?}"
    );
    ensure!(x.numel() > 0, "reduce of an empty tensor {x:?}");
    match axis {
        Axis::Last => rows_forward(x, op, &out_shape(x.shape(), axis)),
        Axis::All => all_forward(x, op),
    }
}

/// Gradient of [`reduce_forward`] w.r.t. an input of `x_shape`.
pub fn reduce_backward(
    dy: &Tensor,
    x_shape: &[usize],
    op: ReduceOp,
    axis: Axis,
    argmax: Option<&Tensor>,
) -> Result<Tensor> {
    let n: usize = x_shape.iter().product();
    let cols = if axis == Axis::All {
        n
    } else {
        *x_shape.last().unwrap_or(&1)
    };
    let rows = n / cols.max(1);
    ensure!(
        dy.numel() == rows,
        "reduce backward: dy {dy:?} for input {x_shape:?}"
    );
    let bc = match axis {
        Axis::Last => Broadcast {
            div: cols,
            modulo: rows,
        },
        Axis::All => Broadcast { div: 1, modulo: 1 },
    };
    match op {
        ReduceOp::Sum => elementwise::expand(dy, x_shape, bc, 1.0),
        ReduceOp::Mean => elementwise::expand(dy, x_shape, bc, 1.0 / cols as f32),
        ReduceOp::Max => {
            let Some(arg) = argmax else {
                bail!("max backward needs the saved argmax");
            };
            let gpu = dy.gpu();
            let dx = Tensor::zeros(gpu, x_shape, DType::F32)?;
            // Whole rows per launch for Last; for All one "row" (dy, arg bound
            // whole) against each element chunk of dx.
            let launches: Vec<(usize, usize, usize, usize)> = match axis {
                Axis::Last => row_chunks(gpu, rows, cols, 1)?
                    .into_iter()
                    .map(|(r0, r1)| (r0, r1, r0 * cols, r1 * cols))
                    .collect(),
                Axis::All => elem_chunks(gpu, n)
                    .into_iter()
                    .map(|(lo, hi)| (0, 1, lo, hi))
                    .collect(),
            };
            for (r0, r1, lo, hi) in launches {
                let (db, x_off) = dx.bind_elems(2, lo, hi);
                let (gb, y_off) = dy.bind_elems(1, r0, r1);
                let ab = arg.bind_elems(4, r0, r1).0;
                let p = ReduceParams {
                    x_off,
                    y_off,
                    base: lo as u32,
                    extra: (hi - lo) as u32,
                    row0: r0 as u32,
                    ..params(r1 - r0, cols, 1.0)
                };
                let groups = groups_1d(gpu, (r1 - r0).div_ceil(WG) as u32);
                run("reduce_max_backward", p, &[db, gb, ab], groups, gpu)?;
            }
            Ok(dx)
        }
    }
}

/// Column sums of `x` viewed as `[rows, m]` → `[m]`, in blocks of rows.
fn sum_cols(x: &Tensor, rows: usize, m: usize) -> Result<Tensor> {
    let gpu = x.gpu();
    let align = (gpu.binding_alignment() / 4).max(1) as usize;
    let max_elems = (gpu.max_binding() / 4) as usize - align;
    if max_elems / m < 2 {
        return sum_long_cols(x, rows, m, max_elems);
    }
    let mut cur = x.reshape(&[rows, m])?;
    while cur.shape()[0] > 1 {
        let rows = cur.shape()[0];
        let chunks = row_chunks(gpu, rows, m, COL_BLOCK)?;
        let block = COL_BLOCK.min(chunks[0].1 - chunks[0].0);
        let nblk = rows.div_ceil(block);
        let out = Tensor::empty(gpu, &[nblk, m], DType::F32)?;
        for (r0, r1) in chunks {
            let (b0, nb) = (r0 / block, (r1 - r0).div_ceil(block));
            let (xb, x_off) = cur.bind_elems(1, r0 * m, r1 * m);
            let (yb, y_off) = out.bind_elems(2, b0 * m, (b0 + nb) * m);
            let p = ReduceParams {
                x_off,
                y_off,
                base: m as u32,
                extra: block as u32,
                ..params(r1 - r0, m, 1.0)
            };
            let groups = groups_1d(gpu, (m.div_ceil(WG) * nb) as u32);
            run("reduce_cols", p, &[xb, yb], groups, gpu)?;
        }
        cur = out;
    }
    cur.reshape(&[m])
}

/// Column sums when two rows do not fit one binding: one row at a time,
/// in column ranges, accumulating into the output.
fn sum_long_cols(x: &Tensor, rows: usize, m: usize, max_elems: usize) -> Result<Tensor> {
    let gpu = x.gpu();
    let out = Tensor::empty(gpu, &[m], DType::F32)?;
    for r in 0..rows {
        for j0 in (0..m).step_by(max_elems) {
            let j1 = (j0 + max_elems).min(m);
            let (xb, x_off) = x.bind_elems(1, r * m + j0, r * m + j1);
            let (yb, y_off) = out.bind_elems(2, j0, j1);
            let p = ReduceParams {
                x_off,
                y_off,
                base: (j1 - j0) as u32,
                extra: 1,
                row0: (r > 0) as u32,
                ..params(1, m, 1.0)
            };
            let groups = groups_1d(gpu, (j1 - j0).div_ceil(WG) as u32);
            run("reduce_cols", p, &[xb, yb], groups, gpu)?;
        }
    }
    Ok(out)
}

/// `db[j] = Σ_{i : (i / div) % modulo == j} g[i]`: sums a full-shape
/// gradient over the dims that [`Broadcast`] `bc` broadcast. Returns
/// `[modulo]`; may alias `g` when nothing was broadcast.
pub fn sum_broadcast(g: &Tensor, bc: Broadcast) -> Result<Tensor> {
    let n = g.numel();
    ensure!(
        bc.div >= 1 && bc.modulo >= 1 && n.is_multiple_of(bc.div * bc.modulo),
        "sum_broadcast: {bc:?} over {g:?}"
    );
    let outer = n / (bc.div * bc.modulo);
    if bc.modulo == 1 {
        return Ok(all_forward(g, ReduceOp::Sum)?.0);
    }
    let h = if bc.div > 1 {
        let rows = g.reshape(&[outer * bc.modulo, bc.div])?;
        rows_forward(&rows, ReduceOp::Sum, &[outer * bc.modulo])?.0
    } else {
        g.reshape(&[n])?
    };
    if outer == 1 {
        return Ok(h);
    }
    sum_cols(&h, outer, bc.modulo)
}

/// Reduction on the tape.
pub fn reduce(tape: &Tape, x: &Var, op: ReduceOp, axis: Axis) -> Result<Var> {
    let (y, arg) = reduce_forward(x.tensor(), op, axis)?;
    let shape = x.shape().to_vec();
    Ok(tape.record("reduce", &[x], y, move |dy, _| {
        Ok(vec![Some(reduce_backward(
            dy,
            &shape,
            op,
            axis,
            arg.as_ref(),
        )?)])
    }))
}

fixed_op_fns! {
    /// Σ of all elements → `[1]`.
    sum(tape, x) = reduce(tape, x, ReduceOp::Sum, Axis::All);
    mean(tape, x) = reduce(tape, x, ReduceOp::Mean, Axis::All);
    max(tape, x) = reduce(tape, x, ReduceOp::Max, Axis::All);
    /// Σ over the last dim.
    sum_last(tape, x) = reduce(tape, x, ReduceOp::Sum, Axis::Last);
    mean_last(tape, x) = reduce(tape, x, ReduceOp::Mean, Axis::Last);
    max_last(tape, x) = reduce(tape, x, ReduceOp::Max, Axis::Last);
}

/// TRL's `masked_mean(values, mask)` over all elements: `Σ x·m / Σ m` → `[1]`.
/// `mask` has `x`'s shape and is usually a constant.
pub fn masked_mean(tape: &Tape, x: &Var, mask: &Var) -> Result<Var> {
    ensure!(
        x.shape() == mask.shape(),
        "masked_mean: mask {:?} for values {:?}",
        mask.shape(),
        x.shape()
    );
    let num = sum(tape, &elementwise::mul(tape, x, mask)?)?;
    let den = sum(tape, mask)?;
    elementwise::div(tape, &num, &den)
}
