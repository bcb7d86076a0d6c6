//! layernorm over the last dim C of `x` [N, C] (any leading shape, N = B·T
//! rows), with weight γ [C], bias β [C] and `eps` (GPT-2: 1e-5; GPT-NeoX:
//! `layer_norm_eps`). Forward returns y (x's shape) and saves mean [N] and
//! rstd [N] = 1/sqrt(var + eps) for the backward, which returns dx, dγ, dβ.
//!
//! Two variants of the row kernels ([`LayerNormVariant`]):
//! `shaders/layernorm.wgsl` (one invocation per row, no barriers: fastest on
//! CPU adapters, and the fallback without subgroups) and
//! `shaders/layernorm_subgroup.wgsl` (one 64-wide workgroup per row with
//! subgroupAdd, for GPUs). dγ/dβ (sums over rows) come from per-block partial
//! sums plus a final per-column reduce, race-free and without float atomics;
//! both variants share those kernels. Rows are processed in chunks that fit one
//! storage binding. The backward kernels' host side is `layernorm/backward.rs`
//! (re-exported here).

use anyhow::{bail, ensure, Result};

mod backward;
mod pair;
pub(crate) use backward::{check_backward_inputs, column_sums, empty_f32_if};
pub use backward::{layernorm_backward, layernorm_backward_into, layernorm_backward_with};
pub use pair::{layernorm_pair_forward, layernorm_pair_forward_into};

use crate::device::Gpu;
use crate::kernel::{groups_1d, with_vec4_twins, Kernel};
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

/// Mirrors `LayerNormParams` in `shaders/common/layernorm_params.wgsl`, which
/// both variants include (and, as `RmsNormParams`, `shaders/rmsnorm.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LayerNormParams {
    /// Rows in this chunk.
    pub rows: u32,
    pub cols: u32,
    pub eps: f32,
    /// Where the chunk's first row starts in its [rows, C] bindings.
    pub x_base: u32,
    /// Where the chunk's first row starts in its [rows] bindings.
    pub r_base: u32,
    /// First partial-sum block of this chunk (weight gradients).
    pub blk0: u32,
    /// Rows per partial-sum block.
    pub blk_rows: u32,
    /// Partial-sum blocks in all (final weight-gradient reduce).
    pub nblk: u32,
}

/// Which row kernels to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerNormVariant {
    /// [`Row`](Self::Row) on CPU adapters or without subgroups, else
    /// [`Subgroup`](Self::Subgroup).
    Auto,
    /// One invocation per row (`layernorm.wgsl`).
    Row,
    /// One 64-wide workgroup per row with subgroup reductions
    /// (`layernorm_subgroup.wgsl`).
    Subgroup,
}

impl LayerNormVariant {
    /// The concrete variant for `gpu` (never `Auto`).
    pub fn resolve(self, gpu: &Gpu) -> Result<LayerNormVariant> {
        Ok(match self {
            LayerNormVariant::Auto if gpu.is_cpu() || !gpu.has_subgroups() => LayerNormVariant::Row,
            LayerNormVariant::Auto => LayerNormVariant::Subgroup,
            LayerNormVariant::Subgroup if !gpu.has_subgroups() => {
                bail!(
                    "layernorm: the subgroup variant needs subgroups, which {} lacks",
                    gpu.describe()
                )
            }
            v => v,
        })
    }
}

/// Dispatches a row kernel (`entry`) of a resolved variant over `rows` rows.
fn dispatch_rows(
    gpu: &Gpu,
    variant: LayerNormVariant,
    entry: &'static str,
    params: &LayerNormParams,
    binds: &[crate::kernel::Bind],
    rows: u32,
) -> Result<()> {
    let (shader, groups) = match variant {
        LayerNormVariant::Subgroup => ("layernorm_subgroup", groups_1d(gpu, rows)),
        _ => ("layernorm", groups_1d(gpu, rows.div_ceil(ROW_WG))),
    };
    // The row-per-invocation kernels read and write whole vec4s when C and
    // the chunk start allow it (bindings 1..4, 7, 8 seen again at 15..20).
    let quads = shader == "layernorm"
        && params.cols.is_multiple_of(4)
        && params.x_base.is_multiple_of(4)
        && binds.iter().all(|b| b.offset.is_multiple_of(16));
    if !quads {
        return gpu.dispatch(&Kernel::new(shader, entry), params, binds, groups);
    }
    let entry = match entry {
        "layernorm_forward" => "layernorm_forward4",
        "layernorm_backward" => "layernorm_backward4",
        other => other,
    };
    let twins = [(1, 15), (2, 16), (3, 17), (4, 18), (7, 19), (8, 20)];
    let all = with_vec4_twins(binds, &twins);
    gpu.dispatch(&Kernel::new(shader, entry), params, &all, groups)
}

/// Forward results: `y` has x's shape, `mean` and `rstd` are [N].
pub struct LayerNormOutput {
    pub y: Tensor,
    pub mean: Tensor,
    pub rstd: Tensor,
}

/// Backward results; `None` where not requested.
pub struct LayerNormGrads {
    pub dx: Option<Tensor>,
    pub dw: Option<Tensor>,
    pub db: Option<Tensor>,
}

const ROW_WG: u32 = 32;

/// `t` is f32 with `numel` elements, else an error naming the norm `op` and
/// the tensor (shared by layernorm's and rmsnorm's checks).
pub(crate) fn check_f32(op: &str, what: &str, t: &Tensor, numel: usize) -> Result<()> {
    ensure!(
        t.dtype() == DType::F32 && t.numel() == numel,
        "{op}: {what} is {t:?}, expected {numel} f32 elements"
    );
    Ok(())
}

/// Row ranges [r0, r1) whose [rows, C] bindings fit one storage binding.
fn row_chunks(gpu: &Gpu, rows: usize, cols: usize) -> Result<Vec<(usize, usize)>> {
    let room = gpu.max_binding().saturating_sub(gpu.binding_alignment());
    let per = (room / (4 * cols as u64)) as usize;
    ensure!(
        per > 0,
        "layernorm: one row of {cols} floats exceeds a storage binding"
    );
    Ok((0..rows.max(1))
        .step_by(per)
        .map(|r0| (r0, (r0 + per).min(rows)))
        .collect())
}

pub(crate) fn params(
    rows: usize,
    cols: usize,
    eps: f32,
    x_base: u32,
    r_base: u32,
) -> LayerNormParams {
    LayerNormParams {
        rows: rows as u32,
        cols: cols as u32,
        eps,
        x_base,
        r_base,
        blk0: 0,
        blk_rows: 0,
        nblk: 0,
    }
}

/// `layernorm(x)` with the adapter's preferred variant.
pub fn layernorm_forward(x: &Tensor, w: &Tensor, b: &Tensor, eps: f32) -> Result<LayerNormOutput> {
    layernorm_forward_with(x, w, b, eps, LayerNormVariant::Auto)
}

/// `layernorm(x)` with a chosen variant (tests, benchmarks).
pub fn layernorm_forward_with(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f32,
    variant: LayerNormVariant,
) -> Result<LayerNormOutput> {
    let gpu = x.gpu();
    let out = LayerNormOutput {
        y: Tensor::empty(gpu, x.shape(), DType::F32)?,
        mean: Tensor::empty(gpu, &[x.rows()], DType::F32)?,
        rstd: Tensor::empty(gpu, &[x.rows()], DType::F32)?,
    };
    layernorm_forward_into(x, w, b, eps, variant, &out)?;
    Ok(out)
}

/// Forward into existing tensors (`y` with x's element count, `mean`/`rstd` with N).
pub fn layernorm_forward_into(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f32,
    variant: LayerNormVariant,
    out: &LayerNormOutput,
) -> Result<()> {
    let (n, c) = (x.rows(), x.cols());
    check_f32("layernorm", "x", x, n * c)?;
    check_f32("layernorm", "weight", w, c)?;
    check_f32("layernorm", "bias", b, c)?;
    check_f32("layernorm", "y", &out.y, n * c)?;
    check_f32("layernorm", "mean", &out.mean, n)?;
    check_f32("layernorm", "rstd", &out.rstd, n)?;
    ensure!(!out.y.same_storage(x), "layernorm: y must not alias x");
    let gpu = x.gpu();
    let variant = variant.resolve(gpu)?;
    if n == 0 || c == 0 {
        return Ok(());
    }
    for (r0, r1) in row_chunks(gpu, n, c)? {
        let (xb, x_base) = x.bind_elems(1, r0 * c, r1 * c);
        let (mb, r_base) = out.mean.bind_elems(5, r0, r1);
        let binds = [
            xb,
            w.bind(2),
            b.bind(3),
            out.y.bind_elems(4, r0 * c, r1 * c).0,
            mb,
            out.rstd.bind_elems(6, r0, r1).0,
        ];
        let p = params(r1 - r0, c, eps, x_base, r_base);
        dispatch_rows(
            gpu,
            variant,
            "layernorm_forward",
            &p,
            &binds,
            (r1 - r0) as u32,
        )?;
    }
    Ok(())
}

/// Records `layernorm(x; w, b, eps)` on the tape. The backward keeps x, w and
/// the saved mean/rstd, and computes only the gradients that are needed.
pub fn layernorm(tape: &Tape, x: &Var, w: &Var, b: &Var, eps: f32) -> Result<Var> {
    let c = x.tensor().cols();
    ensure!(
        w.tensor().numel() == c && b.tensor().numel() == c,
        "layernorm: weight {:?} / bias {:?} for x {:?}",
        w.shape(),
        b.shape(),
        x.shape()
    );
    let out = layernorm_forward(x.tensor(), w.tensor(), b.tensor(), eps)?;
    let (xs, ws, mean, rstd) = (x.tensor().clone(), w.tensor().clone(), out.mean, out.rstd);
    let (w_shape, b_shape) = (w.shape().to_vec(), b.shape().to_vec());
    Ok(
        tape.record("layernorm", &[x, w, b], out.y, move |dy, needs| {
            let g = layernorm_backward_with(
                dy,
                &xs,
                &ws,
                &mean,
                &rstd,
                LayerNormVariant::Auto,
                needs[0],
                needs[1] || needs[2],
            )?;
            Ok(vec![
                g.dx,
                g.dw.filter(|_| needs[1])
                    .map(|t| t.reshape(&w_shape))
                    .transpose()?,
                g.db.filter(|_| needs[2])
                    .map(|t| t.reshape(&b_shape))
                    .transpose()?,
            ])
        }),
    )
}
