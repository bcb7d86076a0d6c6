//! layernorm backward: dx from the row kernels of either variant, dγ/dβ from
//! per-block partial sums and a final per-column reduce (`layernorm.wgsl`).

use anyhow::{ensure, Result};
use std::sync::Arc;

use super::{
    check_f32, dispatch_rows, params, row_chunks, LayerNormGrads, LayerNormParams, LayerNormVariant,
};
use crate::device::Gpu;
use crate::kernel::{groups_1d, Bind, Kernel};
use crate::tensor::{DType, Tensor};

/// All three gradients with the adapter's preferred variant.
pub fn layernorm_backward(
    dy: &Tensor,
    x: &Tensor,
    w: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
) -> Result<LayerNormGrads> {
    layernorm_backward_with(dy, x, w, mean, rstd, LayerNormVariant::Auto, true, true)
}

/// The gradients asked for (`want_dx`; `want_dwb` gives both dγ and dβ) with a
/// chosen variant.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward_with(
    dy: &Tensor,
    x: &Tensor,
    w: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    variant: LayerNormVariant,
    want_dx: bool,
    want_dwb: bool,
) -> Result<LayerNormGrads> {
    let gpu = x.gpu();
    let c = x.cols();
    let dx = empty_f32_if(want_dx, gpu, x.shape())?;
    let dw = empty_f32_if(want_dwb, gpu, &[c])?;
    let db = empty_f32_if(want_dwb, gpu, &[c])?;
    layernorm_backward_into(
        dy,
        x,
        w,
        mean,
        rstd,
        variant,
        dx.as_ref(),
        dw.as_ref().zip(db.as_ref()),
    )?;
    Ok(LayerNormGrads { dx, dw, db })
}

/// An f32 tensor of `shape` when `want`: a gradient buffer the caller asked for.
pub(crate) fn empty_f32_if(want: bool, gpu: &Arc<Gpu>, shape: &[usize]) -> Result<Option<Tensor>> {
    want.then(|| Tensor::empty(gpu, shape, DType::F32))
        .transpose()
}

/// The checks every norm backward shares (`op` names the norm in errors): `x`
/// and `dy` f32 [N, C], the weight [C], the saved per-row `stats` [N] each,
/// and a `dx` of x's size that aliases neither `dy` nor `x`.
pub(crate) fn check_backward_inputs(
    op: &str,
    dy: &Tensor,
    x: &Tensor,
    w: &Tensor,
    stats: &[(&str, &Tensor)],
    dx: Option<&Tensor>,
) -> Result<()> {
    let (n, c) = (x.rows(), x.cols());
    let check = |what: &str, t: &Tensor, numel: usize| check_f32(op, what, t, numel);
    check("x", x, n * c)?;
    check("dy", dy, n * c)?;
    check("weight", w, c)?;
    for (what, t) in stats {
        check(what, t, n)?;
    }
    if let Some(dx) = dx {
        check("dx", dx, n * c)?;
        ensure!(
            !dx.same_storage(dy) && !dx.same_storage(x),
            "{op}: dx must not alias an input"
        );
    }
    Ok(())
}

/// Backward into existing tensors: `dx` (x's element count) and/or `(dγ, dβ)` ([C] each).
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward_into(
    dy: &Tensor,
    x: &Tensor,
    w: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    variant: LayerNormVariant,
    dx: Option<&Tensor>,
    dwb: Option<(&Tensor, &Tensor)>,
) -> Result<()> {
    let (n, c) = (x.rows(), x.cols());
    check_backward_inputs("layernorm", dy, x, w, &[("mean", mean), ("rstd", rstd)], dx)?;
    if let Some((dw, db)) = dwb {
        check_f32("layernorm", "dweight", dw, c)?;
        check_f32("layernorm", "dbias", db, c)?;
    }
    let gpu = x.gpu();
    let variant = variant.resolve(gpu)?;
    if c == 0 {
        return Ok(());
    }
    let chunks = row_chunks(gpu, n, c)?;
    if let Some(dx) = dx {
        for &(r0, r1) in &chunks {
            let (xb, x_base) = x.bind_elems(1, r0 * c, r1 * c);
            let (mb, r_base) = mean.bind_elems(9, r0, r1);
            let binds = [
                xb,
                w.bind(2),
                dy.bind_elems(7, r0 * c, r1 * c).0,
                dx.bind_elems(8, r0 * c, r1 * c).0,
                mb,
                rstd.bind_elems(10, r0, r1).0,
            ];
            let p = params(r1 - r0, c, 0.0, x_base, r_base);
            dispatch_rows(
                gpu,
                variant,
                "layernorm_backward",
                &p,
                &binds,
                (r1 - r0) as u32,
            )?;
        }
    }
    if let Some((dw, db)) = dwb {
        weight_grads(gpu, dy, x, mean, rstd, &chunks, dw, db)?;
    }
    Ok(())
}

/// Rows per partial-sum block and the number of blocks, for a weight
/// gradient over C columns summed across the rows of `chunks`: 64 rows per
/// block, doubled until the [nblk, C] partials fit one binding and each
/// chunk's blocks fit one grid dimension.
fn partial_sum_blocks(
    gpu: &Gpu,
    chunks: &[(usize, usize)],
    c: usize,
    op: &str,
) -> Result<(usize, usize)> {
    let max_groups = gpu.limits.max_compute_workgroups_per_dimension as usize;
    ensure!(c.div_ceil(64) <= max_groups, "{op}: C = {c} is too wide");
    let mut blk_rows = 64usize;
    loop {
        let nblk: usize = chunks
            .iter()
            .map(|(r0, r1)| (r1 - r0).div_ceil(blk_rows))
            .sum();
        let fits = (nblk.max(1) * c * 4) as u64 <= gpu.max_binding();
        let longest = chunks.iter().map(|(r0, r1)| r1 - r0).max().unwrap_or(0);
        if fits && longest.div_ceil(blk_rows) <= max_groups {
            return Ok((blk_rows, nblk));
        }
        blk_rows *= 2;
    }
}

/// dγ, dβ: per-(block of rows, column) partial sums, then one sum per column.
#[allow(clippy::too_many_arguments)]
fn weight_grads(
    gpu: &Arc<Gpu>,
    dy: &Tensor,
    x: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    chunks: &[(usize, usize)],
    dw: &Tensor,
    db: &Tensor,
) -> Result<()> {
    let c = x.cols();
    let chunk_inputs = |r0: usize, r1: usize| {
        let (xb, x_base) = x.bind_elems(1, r0 * c, r1 * c);
        let (mb, r_base) = mean.bind_elems(9, r0, r1);
        let binds = vec![
            xb,
            dy.bind_elems(7, r0 * c, r1 * c).0,
            mb,
            rstd.bind_elems(10, r0, r1).0,
        ];
        (binds, x_base, r_base)
    };
    let entries = [
        "layernorm_backward_weight_partial",
        "layernorm_backward_weight",
    ];
    let outs = [(11, 13, dw), (12, 14, db)];
    column_sums(gpu, ("layernorm", entries), chunks, c, &outs, chunk_inputs)
}

/// Sums over the rows of `chunks`, one per column, race-free and without
/// float atomics (the weight gradients of layernorm and rmsnorm, which share
/// the params and the two-pass layout): the `partial` entry writes each
/// chunk's per-(block of rows, column) sums into one [nblk, C] buffer per
/// output, then the `total` entry sums each column into the outputs. `outs`
/// are (partials binding, output binding, output [C]); `chunk_inputs(r0, r1)`
/// binds a chunk's inputs and gives its (x_base, r_base).
pub(crate) fn column_sums<'a>(
    gpu: &Arc<Gpu>,
    (shader, [partial, total]): (&'static str, [&'static str; 2]),
    chunks: &[(usize, usize)],
    c: usize,
    outs: &[(u32, u32, &Tensor)],
    chunk_inputs: impl Fn(usize, usize) -> (Vec<Bind<'a>>, u32, u32),
) -> Result<()> {
    let (blk_rows, nblk) = partial_sum_blocks(gpu, chunks, c, shader)?;
    let parts = outs
        .iter()
        .map(|_| Tensor::empty(gpu, &[nblk.max(1), c], DType::F32))
        .collect::<Result<Vec<_>>>()?;
    let part_binds = || parts.iter().zip(outs).map(|(t, &(slot, ..))| t.bind(slot));
    let mut blk0 = 0;
    for &(r0, r1) in chunks {
        let (mut binds, x_base, r_base) = chunk_inputs(r0, r1);
        binds.extend(part_binds());
        let blocks = (r1 - r0).div_ceil(blk_rows);
        let p = LayerNormParams {
            blk0: blk0 as u32,
            blk_rows: blk_rows as u32,
            ..params(r1 - r0, c, 0.0, x_base, r_base)
        };
        gpu.dispatch(
            &Kernel::new(shader, partial),
            &p,
            &binds,
            [c.div_ceil(64) as u32, blocks as u32, 1],
        )?;
        blk0 += blocks;
    }
    let p = LayerNormParams {
        nblk: nblk as u32,
        ..params(0, c, 0.0, 0, 0)
    };
    let mut binds: Vec<Bind> = part_binds().collect();
    binds.extend(outs.iter().map(|&(_, slot, t)| t.bind(slot)));
    gpu.dispatch(
        &Kernel::new(shader, total),
        &p,
        &binds,
        groups_1d(gpu, c.div_ceil(64) as u32),
    )
}
