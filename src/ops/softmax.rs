//! softmax / log-softmax over the last dim, with a temperature:
//! x [.., V] (N rows of V) -> y = softmax(x / T) or log_softmax(x / T), same shape.
//!
//! Forward saves only y (its own output). Backward, dy [.., V] -> dx:
//! softmax `dx = y∘(dy − Σ dy∘y) / T`, log-softmax `dx = (dy − softmax·Σ dy) / T`.
//! Each row is read twice (online max+sum, then the write pass).
//!
//! This module also holds what the three logits ops (softmax, cross_entropy,
//! entropy) share on the host: [`LogitsParams`] (mirrors `common/logit_rows`),
//! the kernel [`Variant`] choice and the row-chunked dispatch, so that logits
//! larger than one storage binding (1024 × 50257 f32 = 206 MB) run in row ranges.

use anyhow::{bail, ensure, Result};

use crate::device::Gpu;
use crate::kernel::{groups_1d, Bind, Kernel};
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

/// Uniform params of every logits kernel (`LogitsParams` in `common/logit_rows.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LogitsParams {
    /// Rows in this chunk.
    pub rows: u32,
    /// Row length (vocabulary).
    pub v: u32,
    /// Residual element offset of the `[rows, V]` bindings.
    pub x_off: u32,
    /// Residual element offset of the per-row `[rows]` bindings.
    pub r_off: u32,
    /// 1 / temperature.
    pub inv_t: f32,
    /// Op-specific factor (cross_entropy: +1 loss, −1 log-prob).
    pub scale: f32,
    /// Op-specific flag (softmax: 1 = log-softmax).
    pub mode: u32,
    pub _pad0: u32,
}

/// How a row is mapped onto invocations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Variant {
    /// [`Variant::Subgroup`] where the adapter has subgroups, else [`Variant::Rows`].
    #[default]
    Auto,
    /// One invocation per row looping over V (`<op>.wgsl`; works everywhere, GL included).
    Rows,
    /// One subgroup per row, lanes striding over V, combined with one
    /// `subgroupMax`/`subgroupAdd` and no barrier (`<op>_subgroup.wgsl`).
    Subgroup,
}

impl Variant {
    /// The concrete variant used on `gpu`; errors if subgroups are asked for
    /// on an adapter without them.
    pub fn resolve(self, gpu: &Gpu) -> Result<Variant> {
        match self {
            Variant::Auto if gpu.has_subgroups() => Ok(Variant::Subgroup),
            Variant::Auto => Ok(Variant::Rows),
            Variant::Subgroup if !gpu.has_subgroups() => {
                bail!("the subgroup variant needs the SUBGROUP feature, which this adapter lacks")
            }
            v => Ok(v),
        }
    }
}

/// The two shader stems of one logits op.
#[derive(Clone, Copy)]
pub(crate) struct RowOp {
    pub rows: &'static str,
    pub subgroup: &'static str,
}

/// A row-chunked launch: tensors bound per row range `[lo, hi)`.
pub(crate) struct RowLaunch<'a> {
    /// `[N, V]` tensors (f32), bound as elements `[lo·V, hi·V)`.
    pub wide: &'a [(u32, &'a Tensor)],
    /// Per-row `[N]` tensors (f32 or i32), bound as elements `[lo, hi)`.
    pub narrow: &'a [(u32, &'a Tensor)],
    pub inv_t: f32,
    pub scale: f32,
    pub mode: u32,
    /// Passes over each row (for llvmpipe's loop budget).
    pub passes: usize,
}

/// llvmpipe ends a shader invocation after this many loop iterations in
/// total over all its loops (gallivm's `LP_MAX_TGSI_LOOP_ITERATIONS`).
const CPU_LOOP_BUDGET: usize = 65535;

/// Refuses launches whose per-invocation loops would hit llvmpipe's budget and
/// silently stop early: a pass costs at most V / (4·lanes) + 8 iterations.
fn check_loop_budget(gpu: &Gpu, variant: Variant, v: usize, passes: usize) -> Result<()> {
    let lanes = match variant {
        Variant::Subgroup => gpu.info.subgroup_min_size.max(1) as usize,
        _ => 1,
    };
    let iters = passes * (v.div_ceil(4 * lanes) + 8);
    ensure!(
        !gpu.is_cpu() || iters < CPU_LOOP_BUDGET,
        "rows of {v} need ~{iters} loop iterations per invocation with the {variant:?} variant, \
         beyond the CPU adapter's limit of {CPU_LOOP_BUDGET}{}",
        if gpu.has_subgroups() {
            ""
        } else {
            " (no subgroups here to split rows)"
        }
    );
    Ok(())
}

/// Rows per chunk such that `[rows·V]` plus the alignment slack of
/// `bind_elems` fits one binding.
pub(crate) fn rows_per_chunk(gpu: &Gpu, v: usize) -> Result<usize> {
    let max = (gpu.max_binding() / 4) as usize;
    let slack = (gpu.binding_alignment() / 4).max(1) as usize - 1;
    ensure!(
        v + slack <= max,
        "a row of {v} f32 exceeds one storage binding ({} bytes)",
        gpu.max_binding()
    );
    Ok((max - slack) / v)
}

/// Runs `entry` of `op` over all `rows` rows of length `v`, chunk by chunk.
pub(crate) fn run_rows(
    gpu: &Gpu,
    op: RowOp,
    entry: &'static str,
    variant: Variant,
    rows: usize,
    v: usize,
    launch: &RowLaunch,
) -> Result<()> {
    let variant = variant.resolve(gpu)?;
    check_loop_budget(gpu, variant, v, launch.passes)?;
    let per = rows_per_chunk(gpu, v)?;
    // CPU adapters run a workgroup as one task of 8-wide SIMD: small groups
    // keep both cores busy at small N. GPUs want fuller groups.
    let wg: u32 = if gpu.is_cpu() { 8 } else { 64 };
    let (stem, rows_per_group) = match variant {
        // Each subgroup takes one row; a group holds at least wg / max size of them.
        Variant::Subgroup => (op.subgroup, (wg / gpu.info.subgroup_max_size.max(1)).max(1)),
        _ => (op.rows, wg),
    };
    let consts = [("WG", wg as f64)];
    let kernel = Kernel::new(stem, entry).with(&consts);
    for lo in (0..rows).step_by(per.max(1)) {
        let hi = (lo + per).min(rows);
        let mut binds: Vec<Bind> = Vec::new();
        let (mut x_off, mut r_off) = (None, None);
        for &(b, t) in launch.wide {
            let (bind, off) = t.bind_elems(b, lo * v, hi * v);
            debug_assert!(x_off.is_none_or(|o| o == off));
            x_off = Some(off);
            binds.push(bind);
        }
        for &(b, t) in launch.narrow {
            let (bind, off) = t.bind_elems(b, lo, hi);
            debug_assert!(r_off.is_none_or(|o| o == off));
            r_off = Some(off);
            binds.push(bind);
        }
        let params = LogitsParams {
            rows: (hi - lo) as u32,
            v: v as u32,
            x_off: x_off.unwrap_or(0),
            r_off: r_off.unwrap_or(0),
            inv_t: launch.inv_t,
            scale: launch.scale,
            mode: launch.mode,
            _pad0: 0,
        };
        let groups = params.rows.div_ceil(rows_per_group);
        gpu.dispatch(&kernel, &params, &binds, groups_1d(gpu, groups))?;
    }
    Ok(())
}

/// Checks an f32 logits tensor and a temperature; returns (rows, V, 1/T).
pub(crate) fn check_logits(
    what: &str,
    x: &Tensor,
    temperature: f32,
) -> Result<(usize, usize, f32)> {
    ensure!(
        x.dtype() == DType::F32 && !x.shape().is_empty(),
        "{what}: needs f32 logits [.., V], got {x:?}"
    );
    ensure!(
        temperature.is_finite() && temperature > 0.0,
        "{what}: temperature must be positive and finite, got {temperature}"
    );
    ensure!(x.cols() > 0, "{what}: empty rows in {x:?}");
    Ok((x.rows(), x.cols(), 1.0 / temperature))
}

/// Shape of a per-row result: the leading dims of `x` (`[1]` for a 1-D row).
pub(crate) fn row_shape(x: &Tensor) -> Vec<usize> {
    let s = &x.shape()[..x.shape().len() - 1];
    if s.is_empty() {
        vec![1]
    } else {
        s.to_vec()
    }
}

const OP: RowOp = RowOp {
    rows: "softmax",
    subgroup: "softmax_subgroup",
};

/// y = softmax(x / T) (or log_softmax when `log`) over the last dim.
pub fn softmax_forward(
    x: &Tensor,
    temperature: f32,
    log: bool,
    variant: Variant,
) -> Result<Tensor> {
    let (rows, v, inv_t) = check_logits("softmax", x, temperature)?;
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let launch = RowLaunch {
        wide: &[(1, x), (3, &y)],
        narrow: &[],
        inv_t,
        scale: 1.0,
        mode: log as u32,
        passes: 2,
    };
    run_rows(x.gpu(), OP, "softmax_forward", variant, rows, v, &launch)?;
    Ok(y)
}

/// dx from the saved forward output `y` and `dy` (same shape).
pub fn softmax_backward(
    y: &Tensor,
    dy: &Tensor,
    temperature: f32,
    log: bool,
    variant: Variant,
) -> Result<Tensor> {
    let (rows, v, inv_t) = check_logits("softmax_backward", y, temperature)?;
    ensure!(
        dy.shape() == y.shape() && dy.dtype() == DType::F32,
        "softmax_backward: dy {dy:?} for y {y:?}"
    );
    let dx = Tensor::empty(y.gpu(), y.shape(), DType::F32)?;
    let launch = RowLaunch {
        wide: &[(1, y), (2, dy), (3, &dx)],
        narrow: &[],
        inv_t,
        scale: 1.0,
        mode: log as u32,
        passes: 2,
    };
    run_rows(y.gpu(), OP, "softmax_backward", variant, rows, v, &launch)?;
    Ok(dx)
}

fn record(tape: &Tape, x: &Var, temperature: f32, log: bool) -> Result<Var> {
    let y = softmax_forward(x.tensor(), temperature, log, Variant::Auto)?;
    let saved = y.clone();
    let name = if log { "log_softmax" } else { "softmax" };
    Ok(tape.record(name, &[x], y, move |dy, _| {
        Ok(vec![Some(softmax_backward(
            &saved,
            dy,
            temperature,
            log,
            Variant::Auto,
        )?)])
    }))
}

/// softmax(x / T) over the last dim, on the tape.
pub fn softmax(tape: &Tape, x: &Var, temperature: f32) -> Result<Var> {
    record(tape, x, temperature, false)
}

/// log_softmax(x / T) over the last dim, on the tape.
pub fn log_softmax(tape: &Tape, x: &Var, temperature: f32) -> Result<Var> {
    record(tape, x, temperature, true)
}
